//! `goldgate history prune --keep-full N`: a year of nightly runs of a 10,000-item set is
//! mostly answer text nobody reads again. Older runs are thinned to what history, `diff` and
//! `--baseline` need — the manifest, `summary.json`, and a compact results file (pass, checks,
//! scores, latency, tokens and cost of every trial; no answer text) over items without their
//! contexts — and marked with `pruned.json`. The newest N runs of each evaluation, its accepted
//! baseline, and runs still being written are left whole.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::rundir::{items_path, read_items, results_path};

pub const PRUNED_FILE: &str = "pruned.json";
pub const PRUNED_SCHEMA: &str = "goldgate/pruned/v1";

/// The reports a pruned run no longer keeps (`goldgate report DIR` renders them again, without
/// answers).
const REPORTS: &[&str] = &["report.html", "report.md", "junit.xml"];

/// `pruned.json`: when a run was thinned, and what that saved.
#[derive(Debug, Serialize, Deserialize)]
pub struct Pruned {
    pub schema: String,
    pub pruned_at: String,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

pub fn is_pruned(dir: &Path) -> bool {
    dir.join(PRUNED_FILE).exists()
}

/// What a prune did.
#[derive(Debug, Default)]
pub struct PruneReport {
    pub pruned: Vec<(PathBuf, Pruned)>,
    pub kept_whole: usize,
    pub already_pruned: usize,
    /// Runs left alone, with why (being written, unreadable).
    pub left: Vec<(PathBuf, String)>,
}

/// Thin every run of every evaluation under `out` but the newest `keep_full` and the accepted.
pub fn prune(out: &Path, keep_full: usize) -> anyhow::Result<PruneReport> {
    let (by_evaluation, _) = super::gather(out, &[]);
    let mut report = PruneReport::default();
    for (name, runs) in &by_evaluation {
        let accepted = super::accepted::Accepted::read(out, name)?.map(|a| a.run_id);
        let older = runs.len().saturating_sub(keep_full);
        report.kept_whole += runs.len() - older;
        for run in &runs[..older] {
            if Some(&run.manifest.run_id) == accepted.as_ref() {
                report.kept_whole += 1;
            } else if run.pruned {
                report.already_pruned += 1;
            } else {
                match prune_run(&run.dir) {
                    Ok(p) => report.pruned.push((run.dir.clone(), p)),
                    Err(e) => report.left.push((run.dir.clone(), format!("{e:#}"))),
                }
            }
        }
    }
    Ok(report)
}

/// Thin one run directory in place. Each file is rewritten beside itself and renamed over, so
/// an interrupted prune leaves every file whole (old or new).
pub fn prune_run(dir: &Path) -> anyhow::Result<Pruned> {
    // Not while a run, resume or another prune writes it.
    let _lock = crate::rundir::RunLock::acquire(dir)?;
    let before = dir_bytes(dir);

    let results = results_path(dir);
    if results.exists() {
        let tmp = results.with_extension("jsonl.pruning");
        let mut out = BufWriter::new(
            std::fs::File::create(&tmp)
                .with_context(|| format!("cannot create {}", tmp.display()))?,
        );
        let mut failed = None;
        crate::record::read_results(&results, |mut r| {
            r.compact();
            if failed.is_none() {
                failed = serde_json::to_writer(&mut out, &r)
                    .map_err(anyhow::Error::from)
                    .and_then(|()| out.write_all(b"\n").map_err(anyhow::Error::from))
                    .err();
            }
        })?;
        if let Some(e) = failed {
            return Err(e.context(format!("cannot write {}", tmp.display())));
        }
        out.flush()
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        drop(out);
        std::fs::rename(&tmp, &results)
            .with_context(|| format!("cannot replace {}", results.display()))?;
    }

    let items = items_path(dir);
    if items.exists() {
        let read = read_items(dir)?;
        let tmp = items.with_extension("jsonl.pruning");
        let mut out = BufWriter::new(
            std::fs::File::create(&tmp)
                .with_context(|| format!("cannot create {}", tmp.display()))?,
        );
        for i in 0..read.len() {
            let mut item: crate::golden::Item = serde_json::from_slice(read.json(i))?;
            item.context.clear();
            item.expected = None;
            serde_json::to_writer(&mut out, &item)?;
            out.write_all(b"\n")?;
        }
        out.flush()
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        drop(out);
        std::fs::rename(&tmp, &items)
            .with_context(|| format!("cannot replace {}", items.display()))?;
    }

    for name in REPORTS {
        let path = dir.join(name);
        if path.exists() {
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot remove {}", path.display()))?;
        }
    }
    let mut pruned = Pruned {
        schema: PRUNED_SCHEMA.to_owned(),
        pruned_at: crate::rundir::now_rfc3339(),
        bytes_before: before,
        bytes_after: 0,
    };
    crate::rundir::write_json(&dir.join(PRUNED_FILE), &pruned)?;
    pruned.bytes_after = dir_bytes(dir);
    crate::rundir::write_json(&dir.join(PRUNED_FILE), &pruned)?;
    Ok(pruned)
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .filter(std::fs::Metadata::is_file)
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}
