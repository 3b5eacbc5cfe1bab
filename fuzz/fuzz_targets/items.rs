//! items.jsonl, whole: any bytes load as a golden set or are refused with located problems.

#![no_main]

use goldgate::golden::GoldenSet;
use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    let dir = common::scratch("items", &[("golden.toml", common::GOLDEN_TOML)]);
    common::write(&dir.join("items.jsonl"), data);
    match GoldenSet::load(dir) {
        Ok(set) => {
            // What validate, stats and every run do with a loaded set.
            let _ = set.stats();
            let _ = set.lock_state();
            for (i, item) in set.items.iter().enumerate() {
                assert_eq!(set.items.id(i), item.id);
                let _ = item.context_text();
            }
        }
        Err(goldgate::error::Error::Input(problems)) => assert!(!problems.is_empty()),
        Err(e) => panic!("not an input error: {e}"),
    }
});
