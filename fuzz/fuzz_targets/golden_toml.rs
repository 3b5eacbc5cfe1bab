//! golden.toml: any text loads or is refused, and `golden lock`, when it says it locked, has
//! written a file that loads as locked and that a second lock leaves alone.

#![no_main]

use goldgate::golden::{GoldenSet, LockState, lock};
use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    let dir = common::scratch("golden_toml", &[("items.jsonl", common::ITEMS)]);
    let meta = dir.join("golden.toml");
    common::write(&meta, data);
    if GoldenSet::load(dir).is_err() {
        return;
    }
    let Ok(_) = lock(dir) else { return };
    let written = std::fs::read_to_string(&meta).expect("golden.toml after a lock");
    let set = GoldenSet::load(dir)
        .unwrap_or_else(|e| panic!("lock wrote a golden.toml that does not load: {e}\n{written}"));
    assert_eq!(
        set.lock_state(),
        LockState::Locked,
        "lock said locked:\n{written}"
    );
    lock(dir).expect("a second lock");
    assert_eq!(
        std::fs::read_to_string(&meta).unwrap(),
        written,
        "a second lock changed the file"
    );
});
