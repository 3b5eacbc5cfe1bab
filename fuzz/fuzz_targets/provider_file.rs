//! providers/*.toml: any text loads and builds a client, or is refused; never a panic (a number
//! that passed the checks must be one a Duration, a semaphore and a rate limiter can take).

#![no_main]

use goldgate::provider::{Client, load_config};
use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    let dir = common::scratch("provider_file", &[]);
    let path = dir.join("provider.toml");
    common::write(&path, data);
    if let Ok(cfg) = load_config(&path) {
        let _ = Client::from_config(&path, &cfg);
    }
});
