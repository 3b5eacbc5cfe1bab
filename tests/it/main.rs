//! Integration tests: the real binary, against real HTTP servers on loopback.
//! One test binary, so linking stays cheap.

mod cli;
mod faults;
mod server;
mod support;
