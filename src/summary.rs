//! `summary.json`: the machine-readable result of a run (schema `goldgate/summary/v1`).

use serde::{Deserialize, Serialize};

use crate::gate::{GateResult, Verdict};
use crate::manifest::{GoldenRef, Manifest};
use crate::metrics::{ItemClass, ItemTally, Status};
use crate::metrics::{Metrics, ModelTally};
use crate::record::Sides;

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
    pub models: Sides<ModelSummary>,
    pub items: ItemDiff,
    pub gates: Vec<GateResult>,
    pub verdict: Verdict,
    /// Why a run whose status is `failed` could not be judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Set by `goldgate diff`: the two stored runs compared, so every view names them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff_of: Option<crate::manifest::DiffOf>,
    /// Set by `goldgate run --rerun`: the run whose items this one re-runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun_of: Option<crate::manifest::RerunOf>,
    /// The machine when the run started (CPUs, load average).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<crate::manifest::Machine>,
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
            match it.class(repeats) {
                ItemClass::Regressed => d.regressed += 1,
                ItemClass::Improved => d.improved += 1,
                ItemClass::BothPass => d.both_pass += 1,
                ItemClass::BothFail => d.both_fail += 1,
                ItemClass::Incomplete => d.incomplete += 1,
            }
        }
        d
    }
}

impl Summary {
    /// The summary of a run: its manifest, and the tallies folded from its results.
    pub fn build(
        manifest: &Manifest,
        tallies: &Sides<ModelTally>,
        items: &[ItemTally],
        status: Status,
        finished_at: String,
    ) -> Summary {
        let models = Sides::new(|side| {
            let r = &manifest.models[side];
            ModelSummary {
                provider: r.provider.clone(),
                kind: r.kind,
                model: r.model.clone(),
                metrics: tallies[side].metrics(),
            }
        });
        let results: Vec<GateResult> = manifest
            .gates
            .iter()
            .map(|g| g.evaluate(&models.current.metrics, &models.candidate.metrics))
            .collect();
        let verdict = crate::gate::verdict(&results, status);
        Summary {
            schema: SCHEMA.to_owned(),
            run_id: manifest.run_id.clone(),
            status,
            goldgate_version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at: manifest.started_at.clone(),
            finished_at,
            golden: manifest.golden.clone(),
            repeats: manifest.repeats,
            models,
            items: ItemDiff::from_items(items, manifest.repeats),
            gates: results,
            verdict,
            failure: (status == Status::Failed)
                .then(|| crate::metrics::failure(tallies, manifest.max_error_rate))
                .flatten(),
            warnings: manifest.warnings.clone(),
            diff_of: manifest.diff_of().cloned(),
            rerun_of: manifest.rerun_of().cloned(),
            machine: manifest.machine.clone(),
        }
    }

    /// What the views call the two compared sides: the two models of a run, or for a diff the
    /// model of run A (the baseline) and of run B.
    pub fn side_names(&self) -> Sides<String> {
        match &self.diff_of {
            Some(d) => Sides {
                current: format!("A: {}", d.a_side.as_str()),
                candidate: format!("B: {}", d.b_side.as_str()),
            },
            None => Sides::new(|side| side.as_str().to_owned()),
        }
    }
}
