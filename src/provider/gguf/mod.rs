//! `kind = "gguf"`: a GGUF model run in-process on the CPU, so an evaluation needs no key, no
//! server and no network.
//!
//! Inference uses candle's quantized CPU kernels (`candle-core`, `candle-nn`; pure Rust, behind
//! the `gguf` cargo feature so the default build stays light). The weights are loaded once per
//! provider and shared; each generation runs on a blocking thread with its own KV cache, and at
//! most `[limits] concurrency` run at once (default 1 for this kind). The tokenizer is rebuilt
//! from the file's metadata ([`tokenizer`]) and the model's chat template applied ([`template`]);
//! those two need no inference crate and are built and tested without the feature.
//!
//! Decoding is greedy unless `temperature > 0`, then sampled with a generator seeded from `seed`,
//! the prompt and the trial, so runs reproduce. Usage is exact: the prompt's tokens as the model
//! saw them, and every token sampled (the end-of-turn token included).

pub mod template;
pub mod tokenizer;

#[cfg(feature = "gguf")]
pub mod engine;
#[cfg(feature = "gguf")]
mod model;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use sha2::{Digest, Sha256};

use super::Provider;
use crate::config::{NumberRule, ProviderConfig};
use crate::error::{Error, Location, Problem};

/// What to run when the weights are missing.
pub const FETCH_HINT: &str = "fetch the shipped example's models with `just models` (or `bash scripts/fetch-models.sh`); for your own model, point [gguf] path at its .gguf file";

/// Where the weights of a provider file are: `~/` and `${VAR}` / `${VAR:-default}` expanded, a
/// relative path taken from the provider file's directory.
pub fn resolve_path(raw: &str, provider_file: &Path) -> Result<PathBuf, String> {
    let expanded = super::env::expand(raw, |name| std::env::var(name).ok())?;
    let expanded = match expanded.strip_prefix("~/") {
        Some(rest) => {
            let home = std::env::var("HOME")
                .ok()
                .filter(|h| !h.is_empty())
                .ok_or("`~` needs HOME to be set")?;
            Path::new(&home).join(rest)
        }
        None => PathBuf::from(expanded),
    };
    Ok(if expanded.is_relative() {
        provider_file
            .parent()
            .unwrap_or(Path::new("."))
            .join(expanded)
    } else {
        expanded
    })
}

/// The SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(crate::text::hex(&hasher.finalize()))
}

/// The checks of a `kind = "gguf"` file's `[gguf]` table, without touching the weights (they
/// are found and their hash checked when the model is loaded).
pub(super) fn check(path: &Path, cfg: &ProviderConfig) -> Vec<Problem> {
    let at = |field: &str| Location::file(path).field(field);
    let mut problems = Vec::new();
    let Some(g) = &cfg.gguf else {
        problems.push(
            Problem::new(at("gguf"), "kind = \"gguf\" needs a [gguf] table")
                .fix("add [gguf] with path = \"….gguf\" and sha256 = \"…\""),
        );
        return problems;
    };
    if !(g.sha256.len() == 64 && g.sha256.bytes().all(|b| b.is_ascii_hexdigit())) {
        problems.push(
            Problem::new(at("gguf.sha256"), "not a SHA-256 (64 hex digits)")
                .fix("write the output of `sha256sum FILE.gguf`"),
        );
    }
    if g.path.trim().is_empty() {
        problems.push(
            Problem::new(at("gguf.path"), "the path is empty").fix("point it at the .gguf file"),
        );
    }
    problems.extend(g.threads.and_then(|t| {
        NumberRule::new("gguf.threads", 1.0, 1024.0)
            .fix("remove it to use one thread per core")
            .check(at, t)
    }));
    // Below 16 tokens there is no room for a prompt and an answer.
    problems.extend(g.context.and_then(|c| {
        NumberRule::new("gguf.context", 16.0, 131_072.0)
            .fix("remove it, or give e.g. context = 2048")
            .check(at, c)
    }));
    problems
}

/// Find the weights of a provider file and check their hash: a missing file or a mismatch is a
/// configuration error that says how to get the right file.
pub fn locate_weights(provider_file: &Path, cfg: &ProviderConfig) -> Result<PathBuf, Error> {
    let Some(g) = &cfg.gguf else {
        return Err(Error::input(
            Location::file(provider_file).field("gguf"),
            "kind = \"gguf\" needs a [gguf] table",
            "add [gguf] with path and sha256",
        ));
    };
    let at = || Location::file(provider_file).field("gguf.path");
    let path = resolve_path(&g.path, provider_file)
        .map_err(|e| Error::input(at(), e, "fix the path, or set the variable it names"))?;
    if !path.is_file() {
        return Err(Error::input(
            at(),
            format!("the weights file {} does not exist", path.display()),
            FETCH_HINT,
        ));
    }
    let actual = sha256_file(&path).map_err(|e| {
        Error::input(
            at(),
            format!("cannot read {}: {e}", path.display()),
            FETCH_HINT,
        )
    })?;
    if !actual.eq_ignore_ascii_case(&g.sha256) {
        return Err(Error::input(
            Location::file(provider_file).field("gguf.sha256"),
            format!(
                "{} has SHA-256 {actual}, not the {} this file records (a different or damaged file)",
                path.display(),
                g.sha256
            ),
            format!(
                "{FETCH_HINT}; if you replaced the model on purpose, record its hash: sha256 = \"{actual}\""
            ),
        ));
    }
    Ok(path)
}

/// Build the provider of a `kind = "gguf"` file.
#[cfg(not(feature = "gguf"))]
pub(super) fn build(
    path: &Path,
    _cfg: &ProviderConfig,
    _key: Option<SecretString>,
    _timeout: Duration,
) -> Result<Arc<dyn Provider>, Error> {
    Err(Error::input(
        Location::file(path).field("kind"),
        "this goldgate was built without the gguf feature, so it cannot run kind = \"gguf\"",
        "build with `cargo build --release --features gguf` (or run with `cargo run --release --features gguf -- …`)",
    ))
}

/// Build the provider of a `kind = "gguf"` file: verify and load the weights (once). It needs
/// no key, and takes its timeout from `[limits]` itself.
#[cfg(feature = "gguf")]
pub(super) fn build(
    path: &Path,
    cfg: &ProviderConfig,
    _key: Option<SecretString>,
    _timeout: Duration,
) -> Result<Arc<dyn Provider>, Error> {
    Ok(Arc::new(engine::Gguf::load(path, cfg)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_are_relative_to_the_provider_file() {
        let p = resolve_path("weights/a.gguf", Path::new("/x/providers/p.toml")).unwrap();
        assert_eq!(p, Path::new("/x/providers/weights/a.gguf"));
        let p = resolve_path("/abs/a.gguf", Path::new("/x/providers/p.toml")).unwrap();
        assert_eq!(p, Path::new("/abs/a.gguf"));
    }

    fn gguf_provider(dir: &Path, path: &str, sha256: &str) -> (PathBuf, ProviderConfig) {
        let p = dir.join("p.toml");
        std::fs::write(
            &p,
            format!(
                "kind = \"gguf\"\nmodel = \"m\"\n[gguf]\npath = \"{path}\"\nsha256 = \"{sha256}\"\n"
            ),
        )
        .unwrap();
        let cfg = ProviderConfig::load(&p).unwrap();
        (p, cfg)
    }

    #[test]
    fn missing_weights_name_the_fetch_command() {
        let d = tempfile::tempdir().unwrap();
        let (p, cfg) = gguf_provider(d.path(), "absent.gguf", &"0".repeat(64));
        assert_eq!(
            cfg.limits.concurrency, 1,
            "one generation at a time by default"
        );
        let err = locate_weights(&p, &cfg).unwrap_err();
        assert_eq!(err.exit(), crate::error::Exit::BadInput);
        let msg = err.to_string();
        assert!(
            msg.contains("absent.gguf") && msg.contains("does not exist"),
            "{msg}"
        );
        assert!(
            msg.contains("just models") && msg.contains("scripts/fetch-models.sh"),
            "{msg}"
        );
    }

    #[test]
    fn a_wrong_hash_is_refused_and_the_right_file_accepted() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("w.gguf"), b"abc").unwrap();
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let (p, cfg) = gguf_provider(d.path(), "w.gguf", &"1".repeat(64));
        let msg = locate_weights(&p, &cfg).unwrap_err().to_string();
        assert!(msg.contains("gguf.sha256") && msg.contains(abc), "{msg}");
        let (p, cfg) = gguf_provider(d.path(), "w.gguf", abc);
        assert_eq!(locate_weights(&p, &cfg).unwrap(), d.path().join("w.gguf"));
    }

    #[test]
    fn a_gguf_provider_file_is_checked() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("p.toml");
        std::fs::write(
            &p,
            "kind = \"gguf\"\nmodel = \"m\"\n[gguf]\npath = \"a.gguf\"\nsha256 = \"xyz\"\nthreads = 0\n",
        )
        .unwrap();
        let msg = ProviderConfig::load(&p).unwrap_err().to_string();
        assert!(
            msg.contains("gguf.sha256") && msg.contains("gguf.threads"),
            "{msg}"
        );
        std::fs::write(&p, "kind = \"gguf\"\nmodel = \"m\"\n").unwrap();
        let msg = ProviderConfig::load(&p).unwrap_err().to_string();
        assert!(msg.contains("needs a [gguf] table"), "{msg}");
        std::fs::write(
            &p,
            "kind = \"reference\"\nmodel = \"m\"\n[gguf]\npath = \"a\"\nsha256 = \"b\"\n",
        )
        .unwrap();
        let msg = ProviderConfig::load(&p).unwrap_err().to_string();
        assert!(msg.contains("applies only to kind = \"gguf\""), "{msg}");
    }

    #[cfg(not(feature = "gguf"))]
    #[test]
    fn without_the_feature_a_gguf_provider_says_how_to_build_one() {
        let d = tempfile::tempdir().unwrap();
        let (p, cfg) = gguf_provider(d.path(), "a.gguf", &"0".repeat(64));
        let msg = match crate::provider::Client::from_config(&p, &cfg) {
            Ok(_) => panic!("a gguf client without the feature"),
            Err(e) => e.to_string(),
        };
        assert!(msg.contains("--features gguf"), "{msg}");
    }
}
