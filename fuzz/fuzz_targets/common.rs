//! What the targets that read files share: a directory of their own, where each input is written
//! for goldgate's loader to read, exactly as a user's file would be.

// Each target uses part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// This process's directory under fuzz/target/scratch (`scripts/fuzz.sh` removes them), made
/// once with the fixed files the target does not fuzz.
pub fn scratch(target: &str, fixed: &[(&str, &str)]) -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target/scratch")
            .join(format!("{target}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the scratch directory");
        for (name, text) in fixed {
            std::fs::write(dir.join(name), text).expect("write a fixed file");
        }
        dir
    })
}

/// Write one input where the loader reads it.
pub fn write(path: &Path, data: &[u8]) {
    std::fs::write(path, data).expect("write the input");
}

/// A golden.toml and an items.jsonl that load: what the targets on the other file keep fixed.
pub const GOLDEN_TOML: &str = "name = \"fuzz\"\nversion = 1\n";
pub const ITEMS: &str = "{\"id\": \"q1\", \"question\": \"How long do refunds take?\", \"context\": \"Refunds take 5 days.\", \"keywords\": [\"5 days\"], \"tags\": [\"billing\"]}\n";
