//! Shadow mode (issue 19): captured production traffic replayed through the candidate. Being
//! built; `log` reads traffic logs, `redact` removes personal data before anything is written.

pub mod log;
pub mod redact;
