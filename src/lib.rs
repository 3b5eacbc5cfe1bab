//! goldgate: gate a model change on a versioned golden set.
//!
//! The pipeline, one way, each stage a module that imports only the ones before it (the order
//! `tests/it/architecture.rs` holds the tree to; `docs/architecture.md` is the map):
//!
//! ```text
//!   files       config, golden, check, prompt      what the user wrote, parsed and checked
//!   calls       provider                           one request to one model, with retries,
//!                                                   rate limits, cache
//!   scoring     score                              checks and scores of one answer
//!   statistics  stats                              intervals, paired tests, bootstrap, power:
//!                                                   pure functions of numbers
//!   results     record → metrics → gate            a result line; the fold of many into
//!                                                   metrics and their intervals; the gates'
//!                                                   outcomes (pass / fail / inconclusive)
//!   run files   manifest, summary, rundir          run.json, summary.json, the run directory
//!   running     evaluation, runner                 everything loaded; both models over the items
//!   views       report                             HTML, Markdown, JUnit, terminal
//!   nights      history                            runs of one evaluation across nights:
//!                                                   series, change points, drift, the
//!                                                   accepted baseline, pruning
//!   commands    cli, commands                      one file per command; those that make a
//!                                                   run directory end in commands::conclude
//! ```
//!
//! `main.rs` only parses the command line and maps the result of [`main`] to an exit code.

pub mod canary;
pub mod check;
pub mod cli;
mod commands;
pub mod config;
pub mod error;
mod evaluation;
pub mod gate;
pub mod golden;
mod history;
pub mod manifest;
pub mod metrics;
mod progress;
mod prompt;
pub mod provider;
pub mod record;
mod report;
mod rundir;
mod runner;
pub mod score;
pub mod shadow;
pub mod stats;
pub mod summary;
mod text;
mod tokens;

pub use commands::main;

/// The parsers of what a server sends, for the fuzz targets in `fuzz/`: not an API, and it
/// changes with them. Everything a file holds is reached through the public loaders instead.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::provider::http::{MAX_SERVER_WAIT, retry_after, server_wait};
    pub use crate::provider::openai::read_stream_chunks;
    pub use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
}
