//! What a run writes and shows. `summary.json` is the contract; everything else is a view of it.

pub mod summary;
pub mod terminal;

pub use summary::Summary;
