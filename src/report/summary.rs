//! `summary.json`: the machine-readable result of a run (schema `goldgate/summary/v1`).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::gate::{GateResult, Verdict};
use crate::metrics::Metrics;
use crate::runner::{ItemTally, Status};

pub const SCHEMA: &str = "goldgate/summary/v1";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    pub schema: String,
    pub run_id: String,
    pub status: Status,
    pub goldgate_version: String,
    pub started_at: String,
    pub finished_at: String,
    pub golden: GoldenRef,
    pub repeats: u32,
    pub models: Models,
    pub items: ItemDiff,
    pub gates: Vec<GateResult>,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GoldenRef {
    pub name: String,
    pub version: u64,
    pub sha256: String,
    /// Items evaluated in this run (after `--limit`).
    pub items: usize,
    /// Whether the items matched the locked hash; a run with `--allow-unlocked` says so here.
    pub locked: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Models {
    pub current: ModelSummary,
    pub candidate: ModelSummary,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelSummary {
    pub provider: String,
    pub kind: crate::config::ProviderKind,
    pub model: String,
    pub metrics: Metrics,
}

/// How the two models compare item by item (an item-trial count where repeats > 1 is folded per item:
/// an item regressed when the candidate passed fewer of its trials than the current model).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct ItemDiff {
    pub regressed: usize,
    pub improved: usize,
    pub both_pass: usize,
    pub both_fail: usize,
    /// Items not run to the end on both sides (an interrupted run).
    pub incomplete: usize,
}

impl ItemDiff {
    pub fn from_items(items: &[ItemTally], repeats: u32) -> ItemDiff {
        let mut d = ItemDiff::default();
        for it in items {
            if it.done != [repeats, repeats] {
                d.incomplete += 1;
                continue;
            }
            let [cur, cand] = it.passed;
            match cand.cmp(&cur) {
                std::cmp::Ordering::Less => d.regressed += 1,
                std::cmp::Ordering::Greater => d.improved += 1,
                std::cmp::Ordering::Equal if cur == repeats => d.both_pass += 1,
                std::cmp::Ordering::Equal => d.both_fail += 1,
            }
        }
        d
    }
}

impl Summary {
    /// Write beside and rename, so a reader never sees half a summary.
    pub fn write(&self, run_dir: &Path) -> anyhow::Result<()> {
        use anyhow::Context as _;
        let path = run_dir.join("summary.json");
        let tmp = run_dir.join(".summary.json.tmp");
        let mut bytes = serde_json::to_vec_pretty(self)?;
        bytes.push(b'\n');
        std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .with_context(|| format!("cannot write {}", path.display()))
    }
}
