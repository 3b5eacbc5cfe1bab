//! `summary.json`: the machine-readable result of a run (schema `goldgate/summary/v1`).

use serde::{Deserialize, Serialize};

use crate::gate::{GateResult, Verdict};
use crate::golden::Items;
use crate::manifest::{GoldenRef, Manifest};
use crate::metrics::{Comparison, Evidence, ItemClass, ItemTallies, ItemTally, MetricRef, Status};
use crate::metrics::{Metrics, ModelTally};
use crate::record::{Side, Sides};
use crate::stats::ItemPass;

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
    /// How the intervals were computed (absent in summaries written before them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statistics: Option<StatisticsInfo>,
    /// The two models compared item by item, per metric: the paired difference and its interval.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub comparisons: Vec<Comparison>,
    /// With repeats: items that passed some trials and failed others, on either model.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flaky: Vec<FlakyItem>,
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
    /// Set by `goldgate run --baseline`: the stored run whose answers are the current model's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<crate::manifest::BaselineOf>,
    /// Set by `goldgate run --until-decided`: how many items it took, and why it stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequential: Option<crate::gate::sequential::SequentialInfo>,
    /// The machine when the run started (CPUs, load average).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<crate::manifest::Machine>,
    /// Set by `goldgate shadow`: the logged traffic replayed, and production's side of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<crate::manifest::ShadowOf>,
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

/// How a run's intervals were computed, so anyone can recompute them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StatisticsInfo {
    pub confidence: f64,
    pub seed: u64,
    pub resamples: u32,
    /// Independent units: items, or groups of items where items carry a `group`.
    pub clusters: usize,
    pub grouped_items: usize,
    pub item_pass: ItemPass,
}

/// An item whose trials disagreed on a model: passed some, failed others.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FlakyItem {
    pub id: String,
    /// Trials passed and trials run, per model.
    pub current: [u32; 2],
    pub candidate: [u32; 2],
}

/// The most flaky items a summary lists by name; the counts are in each model's `repeats`.
const FLAKY_LISTED: usize = 200;

impl ItemDiff {
    pub fn from_items(items: &[ItemTally], repeats: u32, rule: ItemPass) -> ItemDiff {
        let mut d = ItemDiff::default();
        for it in items {
            match it.class(repeats, rule) {
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
        golden_items: &Items,
        items: &ItemTallies,
        status: Status,
        finished_at: String,
    ) -> Summary {
        let settings = manifest.statistics.unwrap_or_default();
        let item_pass = manifest.item_pass.unwrap_or_default();
        let ev = Evidence::new(golden_items, items, settings);
        let models = Sides::new(|side| {
            let r = &manifest.models[side];
            let mut metrics = tallies[side].metrics();
            metrics.intervals = ev.intervals(side, None, &metrics);
            metrics.repeats = ev.repeat_stats(side, manifest.repeats);
            if let Some(by_tag) = metrics.by_tag.as_mut() {
                for (tag, m) in by_tag.iter_mut() {
                    m.intervals = ev.intervals(side, Some(tag), m);
                }
            }
            ModelSummary {
                provider: r.provider.clone(),
                kind: r.kind,
                model: r.model.clone(),
                metrics,
            }
        });
        let results = crate::gate::evaluate_all(
            &manifest.gates,
            &models.current.metrics,
            &models.candidate.metrics,
            &ev,
        );
        let comparisons = crate::metrics::CATALOGUE
            .iter()
            .filter(|info| {
                (info.value)(&models.current.metrics).is_some()
                    && (info.value)(&models.candidate.metrics).is_some()
            })
            .filter_map(|info| {
                ev.compare(&MetricRef {
                    kind: info.kind,
                    tag: None,
                })
            })
            .collect();
        let flaky = if manifest.repeats > 1 {
            items
                .iter()
                .enumerate()
                .filter(|(_, t)| {
                    Side::BOTH
                        .iter()
                        .any(|&s| t.passed[s] > 0 && t.passed[s] < t.done[s])
                })
                .take(FLAKY_LISTED)
                .map(|(i, t)| FlakyItem {
                    id: golden_items.id(i).to_owned(),
                    current: [t.passed.current, t.done.current],
                    candidate: [t.passed.candidate, t.done.candidate],
                })
                .collect()
        } else {
            Vec::new()
        };
        let statistics = Some(StatisticsInfo {
            confidence: settings.confidence,
            seed: settings.seed,
            resamples: settings.resamples,
            clusters: ev.clusters(),
            grouped_items: ev.grouped_items,
            item_pass,
        });
        // A `--until-decided` run is judged by the intervals it stopped on: anytime-valid ones.
        let mut results = results;
        let sequential = manifest.sequential.map(|plan| {
            use crate::gate::sequential as seq;
            // The items complete on both models, from the first in the run's order.
            let complete = items
                .iter()
                .take_while(|t| t.is_complete(manifest.repeats))
                .count();
            let replay = seq::replay(
                &manifest.gates,
                &plan,
                golden_items,
                items,
                complete,
                manifest.repeats,
                settings.confidence,
                status != Status::Interrupted,
            );
            seq::apply(&mut results, &replay.looks);
            seq::SequentialInfo {
                seed: plan.seed,
                batch: plan.batch,
                min_items: plan.min_items,
                items_used: complete,
                items_total: plan.items_total,
                decided_at: replay.decided.then_some(replay.at),
                stopped: if replay.decided {
                    "decided"
                } else if status == Status::Interrupted {
                    "interrupted"
                } else {
                    "exhausted"
                }
                .to_owned(),
            }
        });
        let verdict = crate::gate::verdict(&results, status);
        Summary {
            schema: SCHEMA.to_owned(),
            run_id: manifest.run_id.clone(),
            status,
            goldgate_version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at: manifest.started_at.clone(),
            finished_at,
            // The items the run holds (a `--until-decided` run that stopped: those it used).
            golden: GoldenRef {
                items: golden_items.len(),
                ..manifest.golden.clone()
            },
            repeats: manifest.repeats,
            models,
            items: ItemDiff::from_items(items, manifest.repeats, item_pass),
            gates: results,
            verdict,
            statistics,
            comparisons,
            flaky,
            failure: (status == Status::Failed)
                .then(|| crate::metrics::failure(tallies, manifest.max_error_rate))
                .flatten(),
            warnings: manifest.warnings.clone(),
            diff_of: manifest.diff_of().cloned(),
            rerun_of: manifest.rerun_of().cloned(),
            baseline: manifest.baseline.clone(),
            sequential,
            machine: manifest.machine.clone(),
            shadow: manifest.shadow.clone(),
        }
    }

    /// For a shadow run, what was read and production's side, a line each (after
    /// [`Summary::shadow_text`]).
    pub fn shadow_lines(&self) -> Vec<String> {
        let Some(s) = &self.shadow else {
            return Vec::new();
        };
        let c = &s.counts;
        let mut lines = vec![format!(
            "Log lines read: {}; usable requests {}, malformed {}, unusable {}, duplicates {}, outside the window {}, left out of the sample {}, without a production answer {}, replayed {}.",
            c.lines,
            c.usable,
            c.malformed,
            c.unusable,
            c.duplicates,
            c.outside_window,
            c.sampled_out,
            c.no_answer,
            c.replayed
        )];
        let models = s
            .production
            .models
            .iter()
            .map(|(m, n)| format!("{m} ({n})"))
            .collect::<Vec<_>>()
            .join(", ");
        let latency = s.production.latency_ms.as_ref().map_or_else(
            || "no latency logged".to_owned(),
            |l| {
                format!(
                    "logged latency p50 {:.0} ms, p95 {:.0} ms (another environment's: shown, never gated)",
                    l.p50, l.p95
                )
            },
        );
        lines.push(format!(
            "Production: {models}; {latency}; {} answer(s) were tool calls, {} refused.",
            s.production.tool_calls, s.production.refusals
        ));
        lines.push(if s.redacted {
            let made = s
                .redactions
                .iter()
                .map(|(k, n)| format!("{n} {k}"))
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "Personal data redacted before anything was written{}.",
                if made.is_empty() {
                    String::new()
                } else {
                    format!(" ({made} in the logs)")
                }
            )
        } else {
            "Not redacted (--no-redact): text is as logged and answered.".to_owned()
        });
        if let (Some(n), false) = (s.read.sample, c.strata.is_empty()) {
            let strata = c
                .strata
                .iter()
                .map(|st| {
                    format!(
                        "{} {} of {}",
                        st.value.as_deref().unwrap_or("(none)"),
                        st.kept,
                        st.seen
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            lines.push(format!(
                "Sample of {n} (seed {}{}): {strata}.",
                s.read.seed,
                s.read
                    .stratify
                    .as_deref()
                    .map(|f| format!(", stratified on {f}"))
                    .unwrap_or_default()
            ));
        }
        lines.extend(c.examples.iter().map(|e| format!("Skipped: {e}")));
        lines
    }

    /// For a shadow run, what it compared, in a sentence every view shows.
    pub fn shadow_text(&self) -> Option<String> {
        self.shadow.as_ref().map(|s| {
            let files = s
                .logs
                .iter()
                .map(|p| p.file_name().map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into_owned()))
                .collect::<Vec<_>>()
                .join(", ");
            let baseline = if s.noise_baseline {
                "the current model answered them again as the noise baseline: a difference counts only where the candidate moved from production's answers more than the current model's replay did"
            } else {
                "no noise baseline (--no-current): the candidate's agreement with production is judged on absolute bounds"
            };
            format!(
                "Shadow replay of {} logged request(s) from {files}: each item's expected answer is the one production gave; {baseline}.",
                s.counts.replayed
            )
        })
    }

    /// For a `--baseline` run: `The current model was not called: its answers are the stored
    /// ones of run X's candidate (the accepted baseline)`.
    pub fn baseline_text(&self) -> Option<String> {
        self.baseline.as_ref().map(|b| {
            format!(
                "The current model was not called: its answers are the stored ones of run {}'s {}{}",
                b.run_id,
                b.side.as_str(),
                if b.accepted {
                    " (the accepted baseline)"
                } else {
                    ""
                }
            )
        })
    }

    /// How many gates ended with this outcome.
    pub fn gates_with(&self, outcome: crate::gate::Outcome) -> usize {
        self.gates.iter().filter(|g| g.outcome == outcome).count()
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
