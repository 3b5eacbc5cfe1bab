//! Integration tests: the real binary, against real HTTP servers on loopback.
//! One test binary, so linking stays cheap.

mod action;
mod architecture;
mod browser;
mod canary;
mod canary_reports;
mod cli;
mod faults;
mod flagd;
mod gguf;
mod golden_from_log;
mod history;
mod hostile;
mod hostile_reports;
mod interop;
mod properties;
mod providers;
mod recipes;
mod reports;
mod resilience;
mod schema;
mod scoring;
mod secrets;
mod sequential;
mod server;
mod shadow;
mod shards;
mod statistics;
mod support;
mod validate;
