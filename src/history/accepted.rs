//! The accepted baseline of an evaluation: `goldgate accept RUN_DIR` writes
//! `<out>/accepted/<evaluation>.json`, naming the run (and which of its models) everybody agreed
//! on; `run --baseline accepted` compares tonight's model with that run's stored answers, and
//! `history` compares every night with it. One small file per evaluation, so several evaluations
//! can share one `reports/`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::manifest::{GoldenRef, ModelRef};
use crate::record::Side;

pub const ACCEPTED_SCHEMA: &str = "goldgate/accepted/v1";

/// The directory under the output directory that holds the accepted files.
pub const ACCEPTED_DIR: &str = "accepted";

/// `<out>/accepted/<evaluation>.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Accepted {
    pub schema: String,
    /// The evaluation's name, as its runs record it.
    pub evaluation: String,
    pub run_id: String,
    /// The run directory's name under the output directory (not an absolute path: a CI job
    /// restores `reports/` elsewhere than where it was written).
    pub run_dir: String,
    /// Which model of that run is the accepted one.
    pub side: Side,
    pub model: ModelRef,
    pub golden: GoldenRef,
    pub accepted_at: String,
}

/// The file name of an evaluation's accepted baseline: its name made safe for a file name,
/// and a hash of the exact name so two names that clean up alike never share a file.
pub fn file_name(evaluation: &str) -> String {
    use sha2::Digest;
    let mut slug: String = evaluation
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(60)
        .collect();
    if slug.is_empty() {
        slug.push_str("evaluation");
    }
    let hash = crate::text::hex(&sha2::Sha256::digest(evaluation.as_bytes())[..4]);
    format!("{slug}-{hash}.json")
}

pub fn path(out: &Path, evaluation: &str) -> PathBuf {
    out.join(ACCEPTED_DIR).join(file_name(evaluation))
}

impl Accepted {
    /// The evaluation's accepted baseline under `out`, if one was accepted.
    pub fn read(out: &Path, evaluation: &str) -> anyhow::Result<Option<Accepted>> {
        let path = path(out, evaluation);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let accepted: Accepted = serde_json::from_str(&text).map_err(|e| {
            Error::Usage(format!(
                "{} is not an accepted-baseline file ({e}); accept a run again with `goldgate accept RUN_DIR`",
                path.display()
            ))
        })?;
        if accepted.schema != ACCEPTED_SCHEMA {
            return Err(Error::Usage(format!(
                "{} has schema {:?}, not {ACCEPTED_SCHEMA:?}; accept a run again with `goldgate accept RUN_DIR`",
                path.display(),
                accepted.schema
            ))
            .into());
        }
        Ok(Some(accepted))
    }

    /// Write it, atomically; the file it replaces is kept beside it as `.previous.json`, so an
    /// acceptance can be undone by hand.
    pub fn write(&self, out: &Path) -> anyhow::Result<PathBuf> {
        let path = path(out, &self.evaluation);
        let dir = path.parent().expect("a file under accepted/");
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        if path.exists() {
            let previous = path.with_extension("previous.json");
            std::fs::copy(&path, &previous)
                .with_context(|| format!("cannot keep {}", previous.display()))?;
        }
        crate::rundir::write_json(&path, self)?;
        Ok(path)
    }

    /// The accepted run's directory under `out`.
    pub fn dir(&self, out: &Path) -> PathBuf {
        out.join(&self.run_dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_safe_and_distinct() {
        let a = file_name("support-faq");
        assert!(a.starts_with("support-faq-") && a.ends_with(".json"), "{a}");
        let b = file_name("support faq");
        let c = file_name("support/faq");
        assert_ne!(b, c, "names that clean up alike keep their own files");
        for n in [&a, &b, &c, &file_name("../../etc/passwd"), &file_name("")] {
            assert!(!n.contains('/') && !n.starts_with('.'), "{n}");
        }
    }
}
