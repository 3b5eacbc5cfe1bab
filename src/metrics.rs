//! Per-model tallies as results arrive, and the metrics of `summary.json` computed from them.
//!
//! Only counters and HDR histograms are kept — never the answers — so memory does not grow with
//! the size of what the models say. Histograms are serialised into the summary (HdrHistogram's
//! standard compressed V2 format, base64) so `diff` and `merge` can recompute any percentile exactly.

pub mod evidence;

use std::collections::BTreeMap;

use base64::Engine;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use serde::{Deserialize, Serialize};

use crate::check::CheckKind;
use crate::provider::ErrorKind;
use crate::record::{ResultRecord, Side, Sides};
use crate::score::{ClassificationMetrics, Confusion, JudgeUsage};
use crate::stats::Interval;

pub use evidence::{Comparison, Evidence, RepeatStats};

/// Three significant digits, as the spec requires; values in microseconds.
const SIGFIG: u8 = 3;

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new(SIGFIG).expect("3 significant digits is a valid histogram")
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Complete,
    Interrupted,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Complete => "complete",
            Status::Interrupted => "interrupted",
            Status::Failed => "failed",
        }
    }

    /// How a run ended, from its tallies and the evaluation's error ceiling (see [`failure`]).
    pub fn of(
        tallies: &Sides<ModelTally>,
        interrupted: bool,
        max_error_rate: Option<f64>,
    ) -> Status {
        if interrupted {
            Status::Interrupted
        } else if failure(tallies, max_error_rate).is_some() {
            Status::Failed
        } else {
            Status::Complete
        }
    }
}

/// Why a finished run cannot be judged, if it cannot: a model answered nothing, or its requests
/// failed more often than `max_error_rate`. Both make the comparison measure an outage rather
/// than the models: with 70% of both sides' requests failed, "candidate errors <= current
/// errors" passes and accuracy on the few answers left says nothing. `None` for the ceiling
/// (run directories written before it existed) keeps only the first rule.
pub fn failure(tallies: &Sides<ModelTally>, max_error_rate: Option<f64>) -> Option<String> {
    tallies.iter().find_map(|(side, t)| {
        let t = &t.all;
        if t.requests == 0 {
            return None;
        }
        if t.answered == 0 {
            return Some(format!("the {} model answered nothing", side.as_str()));
        }
        let rate = t.errors as f64 / t.requests as f64;
        let ceiling = max_error_rate?;
        (rate > ceiling + 1e-12).then(|| {
            format!(
                "{:.1}% of the {} model's requests failed ({} of {}), above the {}% ceiling (max_error_rate in goldgate.toml)",
                rate * 100.0,
                side.as_str(),
                t.errors,
                t.requests,
                ceiling * 100.0
            )
        })
    })
}

/// Per item, per model: trials passed and trials done, and what they scored, summed (the paired
/// statistics compare the two models item by item). Compact: this is all a run keeps per item.
#[derive(Debug, Clone, Copy, Default)]
pub struct ItemTally {
    pub passed: Sides<u32>,
    pub done: Sides<u32>,
    pub sums: Sides<TrialSums>,
}

/// One item's trials on one model, summed: 52 bytes, so a 100,000-item run holds 10 MB of them.
/// Counts saturate (a run has at most 1,000 trials per item); sums are `f32`, ample for means of
/// at most 1,000 scores.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TrialSums {
    pub errors: u16,
    pub forbidden: u16,
    pub answered: u16,
    pub faithfulness_n: u16,
    pub support_n: u16,
    pub similarity_n: u16,
    pub faithfulness: f32,
    pub support: f32,
    pub similarity: f32,
    pub cost_usd: f32,
    /// A shadow replay's: answers that refused, said nothing, matched production's exactly
    /// (of those compared), were JSON (where production's was), and their length ratio.
    pub refusals: u16,
    pub empty: u16,
    pub exact: u16,
    pub exact_n: u16,
    pub json_valid: u16,
    pub json_n: u16,
    pub length_n: u16,
    pub length_ratio: f32,
}

impl TrialSums {
    fn record(&mut self, r: &ResultRecord) {
        let inc = |n: &mut u16| *n = n.saturating_add(1);
        if r.ok {
            inc(&mut self.answered);
            self.cost_usd += r.cost_usd as f32;
            if r.checks.get(&CheckKind::Forbidden).is_some_and(|c| !c.pass) {
                inc(&mut self.forbidden);
            }
        } else {
            inc(&mut self.errors);
        }
        if let Some(f) = &r.faithfulness {
            inc(&mut self.faithfulness_n);
            self.faithfulness += f.score as f32;
            if let Some(s) = f.support {
                inc(&mut self.support_n);
                self.support += s as f32;
            }
        }
        if let Some(s) = &r.similarity {
            inc(&mut self.similarity_n);
            self.similarity += s.token_set as f32;
        }
        if let Some(s) = &r.shadow {
            if s.refusal {
                inc(&mut self.refusals);
            }
            if r.answer_is_empty() {
                inc(&mut self.empty);
            }
            if let Some(exact) = s.exact {
                inc(&mut self.exact_n);
                self.exact += u16::from(exact);
            }
            if let Some(valid) = s.json_valid {
                inc(&mut self.json_n);
                self.json_valid += u16::from(valid);
            }
            if let Some(ratio) = s.length_ratio {
                inc(&mut self.length_n);
                self.length_ratio += ratio as f32;
            }
        }
    }
}

/// Every item's tally, and every answered trial's latency with its item: what the intervals and
/// paired comparisons of a run are computed from. Reads as the slice of item tallies.
#[derive(Debug, Clone, Default)]
pub struct ItemTallies {
    items: Vec<ItemTally>,
    /// Per model, (item index, latency in ms) of each answered trial: 8 bytes a trial.
    latency_ms: Sides<Vec<(u32, f32)>>,
    /// Per model, (item index, expected label, predicted label) of each answered labelled trial,
    /// as indices into `labels`: macro-F1's bootstrap resamples items.
    predictions: Sides<Vec<(u32, u32, u32)>>,
    labels: Vec<String>,
}

impl ItemTallies {
    pub fn new(items: usize) -> ItemTallies {
        ItemTallies {
            items: vec![ItemTally::default(); items],
            ..ItemTallies::default()
        }
    }

    /// Count one result of item `i`.
    pub fn record(&mut self, i: usize, r: &ResultRecord) {
        self.items[i].record(r);
        let item = u32::try_from(i).expect("fewer than 2^32 items");
        if r.ok
            && let Some(ms) = r.latency_ms
        {
            self.latency_ms[r.model].push((item, ms as f32));
        }
        if let Some((expected, predicted)) = r.label() {
            let (e, p) = (self.label(expected), self.label(predicted));
            self.predictions[r.model].push((item, e, p));
        }
    }

    fn label(&mut self, name: &str) -> u32 {
        match self.labels.iter().position(|l| l == name) {
            Some(i) => i as u32,
            None => {
                self.labels.push(name.to_owned());
                (self.labels.len() - 1) as u32
            }
        }
    }

    /// Each answered trial's latency on one model, with its item.
    pub fn latencies(&self, side: Side) -> &[(u32, f32)] {
        &self.latency_ms[side]
    }

    /// Each labelled trial's (item, expected, predicted) on one model, and the label count.
    pub fn predictions(&self, side: Side) -> (&[(u32, u32, u32)], usize) {
        (&self.predictions[side], self.labels.len())
    }
}

impl std::ops::Deref for ItemTallies {
    type Target = [ItemTally];
    fn deref(&self) -> &[ItemTally] {
        &self.items
    }
}

/// How the two models compare on one item; where repeats > 1, an item regressed when the
/// candidate passed fewer of its trials than the current model. The summary counts these and the
/// reports group items by them: one classification for both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemClass {
    Regressed,
    Improved,
    BothPass,
    BothFail,
    /// Not run to the end on both sides (an interrupted run).
    Incomplete,
}

impl ItemTally {
    pub fn record(&mut self, r: &ResultRecord) {
        self.done[r.model] += 1;
        self.passed[r.model] += u32::from(r.ok && r.pass);
        self.sums[r.model].record(r);
    }

    /// Whether both models ran all `repeats` trials of this item.
    pub fn is_complete(&self, repeats: u32) -> bool {
        self.done.current == repeats && self.done.candidate == repeats
    }

    /// How the models compare on this item: each passes it or not by `rule` over its trials
    /// (with one trial, whether that trial passed).
    pub fn class(&self, repeats: u32, rule: crate::stats::ItemPass) -> ItemClass {
        if !self.is_complete(repeats) {
            return ItemClass::Incomplete;
        }
        let passes = |side| rule.passes(self.passed[side], self.done[side]);
        match (passes(Side::Current), passes(Side::Candidate)) {
            (true, false) => ItemClass::Regressed,
            (false, true) => ItemClass::Improved,
            (true, true) => ItemClass::BothPass,
            (false, false) => ItemClass::BothFail,
        }
    }
}

/// Counters for one model, or one tag of one model.
#[derive(Debug, Clone)]
pub struct Tally {
    pub requests: u64,
    pub errors: u64,
    pub errors_by_kind: BTreeMap<ErrorKind, u64>,
    pub passed: u64,
    pub answered: u64,
    /// Answered, with nothing (or only whitespace) in the answer.
    pub empty: u64,
    /// Answered by repeating the prompt or the context (the echo guard failed them).
    pub echoed: u64,
    pub latency_us: Histogram<u64>,
    pub ttft_us: Histogram<u64>,
    pub tokens_input: u64,
    pub tokens_output: u64,
    pub tokens_estimated: bool,
    pub cost_usd: f64,
    pub faithfulness_sum: f64,
    pub faithfulness_scored: u64,
    /// The continuous support (0..1) summed over the answers that have one (the lexical scorer).
    pub support_sum: f64,
    pub support_scored: u64,
    /// Answers in which a forbidden string was found.
    pub forbidden: u64,
    pub retries: u64,
    pub cached: u64,
    pub similarity_sum: (f64, f64),
    pub similarity_scored: u64,
    pub confusion: Confusion,
    pub judge: JudgeTally,
    pub shadow: ShadowTally,
}

/// A shadow replay's answers, counted: (hits, of how many) where a measure applies to some.
#[derive(Debug, Clone, Copy, Default)]
pub struct ShadowTally {
    /// Answers scored against production's (every answered replay).
    pub scored: u64,
    pub refusals: u64,
    pub exact: (u64, u64),
    pub json_valid: (u64, u64),
    pub length_ratio: (f64, u64),
}

/// The judge's work on this model's answers, kept apart from the model's own.
#[derive(Debug, Clone, Copy, Default)]
pub struct JudgeTally {
    pub answers: u64,
    pub errors: u64,
    pub usage: JudgeUsage,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            requests: 0,
            errors: 0,
            errors_by_kind: BTreeMap::new(),
            passed: 0,
            answered: 0,
            empty: 0,
            echoed: 0,
            latency_us: new_histogram(),
            ttft_us: new_histogram(),
            tokens_input: 0,
            tokens_output: 0,
            tokens_estimated: false,
            cost_usd: 0.0,
            faithfulness_sum: 0.0,
            faithfulness_scored: 0,
            support_sum: 0.0,
            support_scored: 0,
            forbidden: 0,
            retries: 0,
            cached: 0,
            similarity_sum: (0.0, 0.0),
            similarity_scored: 0,
            confusion: Confusion::default(),
            judge: JudgeTally::default(),
            shadow: ShadowTally::default(),
        }
    }
}

impl Tally {
    /// Count one (item, model, trial) result.
    pub fn record(&mut self, r: &ResultRecord) {
        self.requests += 1;
        self.retries += u64::from(r.attempts.saturating_sub(1));
        self.cached += u64::from(r.cached);
        if r.ok {
            self.answered += 1;
            self.empty += u64::from(r.answer_is_empty());
            self.echoed += u64::from(r.checks.contains_key(&CheckKind::Echo));
            self.forbidden +=
                u64::from(r.checks.get(&CheckKind::Forbidden).is_some_and(|c| !c.pass));
            if let Some(us) = r.latency_us() {
                self.latency_us
                    .record(us)
                    .expect("auto-resizing histograms accept any value");
            }
            if let Some(us) = r.ttft_us() {
                self.ttft_us
                    .record(us)
                    .expect("auto-resizing histograms accept any value");
            }
            if let Some(t) = r.tokens {
                self.tokens_input = self.tokens_input.saturating_add(t.input);
                self.tokens_output = self.tokens_output.saturating_add(t.output);
                self.tokens_estimated |= t.estimated;
            }
            self.cost_usd += r.cost_usd;
        } else {
            self.errors += 1;
            let kind = r.error.as_ref().map_or(ErrorKind::BadResponse, |e| e.kind);
            *self.errors_by_kind.entry(kind).or_default() += 1;
        }
        self.passed += u64::from(r.ok && r.pass);
        if let Some(f) = &r.faithfulness {
            self.faithfulness_sum += f.score;
            self.faithfulness_scored += 1;
            if let Some(s) = f.support {
                self.support_sum += s;
                self.support_scored += 1;
            }
        }
        if let Some(s) = &r.similarity {
            self.similarity_sum.0 += s.levenshtein;
            self.similarity_sum.1 += s.token_set;
            self.similarity_scored += 1;
        }
        if let Some((expected, predicted)) = r.label() {
            self.confusion.add(expected, predicted);
        }
        if let Some(s) = &r.shadow {
            let t = &mut self.shadow;
            t.scored += 1;
            t.refusals += u64::from(s.refusal);
            if let Some(exact) = s.exact {
                t.exact.0 += u64::from(exact);
                t.exact.1 += 1;
            }
            if let Some(valid) = s.json_valid {
                t.json_valid.0 += u64::from(valid);
                t.json_valid.1 += 1;
            }
            if let Some(ratio) = s.length_ratio {
                t.length_ratio.0 += ratio;
                t.length_ratio.1 += 1;
            }
        }
        if let Some(j) = &r.judge {
            self.judge.answers += 1;
            self.judge.errors += u64::from(j.error.is_some());
            self.judge.usage.requests += j.usage.requests;
            self.judge.usage.input = self.judge.usage.input.saturating_add(j.usage.input);
            self.judge.usage.output = self.judge.usage.output.saturating_add(j.usage.output);
            self.judge.usage.cost_usd += j.usage.cost_usd;
        }
    }

    pub fn metrics(&self) -> Metrics {
        let ratio = |n: u64, d: u64| (d > 0).then(|| n as f64 / d as f64);
        Metrics {
            requests: self.requests,
            errors: self.errors,
            error_rate: ratio(self.errors, self.requests),
            errors_by_kind: ErrorKind::ALL
                .iter()
                .map(|k| {
                    (
                        k.as_str().to_owned(),
                        self.errors_by_kind.get(k).copied().unwrap_or(0),
                    )
                })
                .collect(),
            retries: self.retries,
            empty_answers: self.empty,
            echoed_answers: self.echoed,
            cached: self.cached,
            accuracy: ratio(self.passed, self.requests),
            passed: self.passed,
            faithfulness: (self.faithfulness_scored > 0)
                .then(|| self.faithfulness_sum / self.faithfulness_scored as f64),
            faithfulness_scored: self.faithfulness_scored,
            faithfulness_support: (self.support_scored > 0)
                .then(|| self.support_sum / self.support_scored as f64),
            forbidden_found: self.forbidden,
            forbidden_rate: ratio(self.forbidden, self.requests),
            latency_ms: LatencyMs::from_histogram(&self.latency_us),
            // Mean over answered requests: a request that failed reported no tokens to price.
            cost_per_1k: (self.answered > 0).then(|| self.cost_usd * 1000.0 / self.answered as f64),
            cost_usd: self.cost_usd,
            tokens: Tokens {
                input: self.tokens_input,
                output: self.tokens_output,
                estimated: self.tokens_estimated,
            },
            histogram_us: encode_histogram(&self.latency_us),
            ttft_ms: LatencyMs::from_histogram(&self.ttft_us),
            histogram_ttft_us: (!self.ttft_us.is_empty()).then(|| encode_histogram(&self.ttft_us)),
            similarity: (self.similarity_scored > 0).then(|| {
                let n = self.similarity_scored as f64;
                SimilarityMeans {
                    levenshtein: self.similarity_sum.0 / n,
                    token_set: self.similarity_sum.1 / n,
                    scored: self.similarity_scored,
                }
            }),
            classification: self.confusion.metrics(),
            judge: (self.judge.answers > 0).then_some(JudgeMetrics {
                answers: self.judge.answers,
                errors: self.judge.errors,
                requests: self.judge.usage.requests,
                tokens: Tokens {
                    input: self.judge.usage.input,
                    output: self.judge.usage.output,
                    estimated: false,
                },
                cost_usd: self.judge.usage.cost_usd,
            }),
            shadow: (self.shadow.scored > 0).then(|| {
                let t = &self.shadow;
                let share = |(n, d): (u64, u64)| (d > 0).then(|| n as f64 / d as f64);
                let requests = self.requests as f64;
                ShadowMetrics {
                    refusal_rate: t.refusals as f64 / requests,
                    empty_rate: self.empty as f64 / requests,
                    exact_match: share(t.exact),
                    exact_compared: t.exact.1,
                    json_validity: share(t.json_valid),
                    json_expected: t.json_valid.1,
                    length_ratio: (t.length_ratio.1 > 0)
                        .then(|| t.length_ratio.0 / t.length_ratio.1 as f64),
                }
            }),
            intervals: BTreeMap::new(),
            repeats: None,
            by_tag: None,
        }
    }
}

/// What a shadow replay's answers are next to production's (`metrics.shadow` in summary.json).
/// Rates are of the requests sent, as `error_rate` is.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ShadowMetrics {
    pub refusal_rate: f64,
    pub empty_rate: f64,
    /// Of the requests whose production answer was short or structured.
    pub exact_match: Option<f64>,
    pub exact_compared: u64,
    /// Of the requests production answered with JSON.
    pub json_validity: Option<f64>,
    pub json_expected: u64,
    /// The mean over answers of (answer words / production answer words).
    pub length_ratio: Option<f64>,
}

/// One model's tallies, overall and per tag.
#[derive(Debug, Clone, Default)]
pub struct ModelTally {
    pub all: Tally,
    pub by_tag: BTreeMap<String, Tally>,
}

impl ModelTally {
    pub fn record<'t>(&mut self, tags: impl IntoIterator<Item = &'t str>, r: &ResultRecord) {
        self.all.record(r);
        for tag in tags {
            // Look up before inserting: a tag's tally exists after its first result, and cloning
            // the tag for every result would be an allocation per line.
            match self.by_tag.get_mut(tag) {
                Some(t) => t.record(r),
                None => self.by_tag.entry(tag.to_owned()).or_default().record(r),
            }
        }
    }

    pub fn metrics(&self) -> Metrics {
        let mut m = self.all.metrics();
        m.by_tag = Some(
            self.by_tag
                .iter()
                .map(|(tag, t)| (tag.clone(), t.metrics()))
                .collect(),
        );
        m
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LatencyMs {
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl LatencyMs {
    pub fn from_histogram(h: &Histogram<u64>) -> Option<LatencyMs> {
        if h.is_empty() {
            return None;
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Some(LatencyMs {
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p95: ms(h.value_at_quantile(0.95)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
            mean: h.mean() / 1000.0,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SimilarityMeans {
    pub levenshtein: f64,
    pub token_set: f64,
    pub scored: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JudgeMetrics {
    /// Answers the judge was asked about.
    pub answers: u64,
    /// Answers it could not judge (request failed, or no usable JSON twice).
    pub errors: u64,
    pub requests: u32,
    pub tokens: Tokens,
    pub cost_usd: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Tokens {
    pub input: u64,
    pub output: u64,
    pub estimated: bool,
}

/// The catalogue of metrics a gate can be put on. Each kind's facts — its name in goldgate.toml
/// and summary.json, its label in the views, where its value is in [`Metrics`], how it reads, and
/// why it can be undefined — are one row of [`CATALOGUE`]: adding a metric is that row, the
/// variant, and the tally that computes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricKind {
    Accuracy,
    Faithfulness,
    LatencyP50,
    LatencyP90,
    LatencyP95,
    LatencyP99,
    ErrorRate,
    CostPer1k,
    MacroF1,
    Similarity,
    FaithfulnessSupport,
    ForbiddenRate,
    RefusalRate,
    EmptyRate,
    ExactMatch,
    JsonValidity,
    LengthRatio,
    Csat,
    ThumbsUpRate,
}

/// How a metric's values read, and how a change in one is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A share of the requests, shown as a percentage; a change in points.
    Proportion,
    /// Faithfulness's 1–5 scale; a change as a difference.
    Score,
    /// A 0–1 measure, three decimals; a change relative.
    Fraction,
    /// Milliseconds; a change relative.
    Millis,
    /// US dollars; a change relative.
    Usd,
    /// A ratio around 1 (`1.25×`); a change relative.
    Ratio,
}

/// One row of the catalogue.
pub struct MetricInfo {
    pub kind: MetricKind,
    /// The name in goldgate.toml's `[[gate]] metric` and in summary.json.
    pub name: &'static str,
    /// The name in the views' metric tables.
    pub label: &'static str,
    pub unit: Unit,
    /// Where the value is in a model's metrics; `None` when the run has no data for it.
    pub value: fn(&Metrics) -> Option<f64>,
    /// Why neither model has a value (a gate on it is then skipped, with this note).
    pub undefined: &'static str,
}

const NO_VALUE: &str = "neither model has a value for this metric";

/// Every gateable metric, in the order the docs and error messages list them.
pub const CATALOGUE: [MetricInfo; 19] = [
    MetricInfo {
        kind: MetricKind::Accuracy,
        name: "accuracy",
        label: "accuracy",
        unit: Unit::Proportion,
        value: |m| m.accuracy,
        undefined: NO_VALUE,
    },
    MetricInfo {
        kind: MetricKind::Faithfulness,
        name: "faithfulness",
        label: "faithfulness",
        unit: Unit::Score,
        value: |m| m.faithfulness,
        undefined: "no item with a context was answered, so faithfulness is undefined",
    },
    MetricInfo {
        kind: MetricKind::LatencyP50,
        name: "latency_p50_ms",
        label: "latency p50",
        unit: Unit::Millis,
        value: |m| m.latency_ms.as_ref().map(|l| l.p50),
        undefined: NO_VALUE,
    },
    MetricInfo {
        kind: MetricKind::LatencyP90,
        name: "latency_p90_ms",
        label: "latency p90",
        unit: Unit::Millis,
        value: |m| m.latency_ms.as_ref().map(|l| l.p90),
        undefined: NO_VALUE,
    },
    MetricInfo {
        kind: MetricKind::LatencyP95,
        name: "latency_p95_ms",
        label: "latency p95",
        unit: Unit::Millis,
        value: |m| m.latency_ms.as_ref().map(|l| l.p95),
        undefined: NO_VALUE,
    },
    MetricInfo {
        kind: MetricKind::LatencyP99,
        name: "latency_p99_ms",
        label: "latency p99",
        unit: Unit::Millis,
        value: |m| m.latency_ms.as_ref().map(|l| l.p99),
        undefined: NO_VALUE,
    },
    MetricInfo {
        kind: MetricKind::ErrorRate,
        name: "error_rate",
        label: "error rate",
        unit: Unit::Proportion,
        value: |m| m.error_rate,
        undefined: NO_VALUE,
    },
    MetricInfo {
        kind: MetricKind::CostPer1k,
        name: "cost_per_1k",
        label: "cost per 1k",
        unit: Unit::Usd,
        value: |m| m.cost_per_1k,
        undefined: NO_VALUE,
    },
    MetricInfo {
        kind: MetricKind::MacroF1,
        name: "macro_f1",
        label: "macro-F1",
        unit: Unit::Fraction,
        value: |m| m.classification.as_ref().map(|c| c.macro_f1),
        undefined: "no item with a label was answered, so macro-F1 is undefined",
    },
    MetricInfo {
        kind: MetricKind::Similarity,
        name: "similarity",
        label: "similarity (token set)",
        unit: Unit::Fraction,
        // The word-set measure: it rewards the right facts, not the same phrasing.
        value: |m| m.similarity.as_ref().map(|s| s.token_set),
        undefined: "no item with an expected answer was answered, so similarity is undefined",
    },
    MetricInfo {
        kind: MetricKind::FaithfulnessSupport,
        name: "faithfulness_support",
        label: "faithfulness support",
        unit: Unit::Fraction,
        value: |m| m.faithfulness_support,
        undefined: NO_VALUE,
    },
    MetricInfo {
        kind: MetricKind::ForbiddenRate,
        name: "forbidden_rate",
        label: "forbidden rate",
        unit: Unit::Proportion,
        value: |m| m.forbidden_rate,
        undefined: NO_VALUE,
    },
    MetricInfo {
        kind: MetricKind::RefusalRate,
        name: "refusal_rate",
        label: "refusal rate",
        unit: Unit::Proportion,
        value: |m| m.shadow.as_ref().map(|s| s.refusal_rate),
        undefined: NOT_SHADOW,
    },
    MetricInfo {
        kind: MetricKind::EmptyRate,
        name: "empty_rate",
        label: "empty rate",
        unit: Unit::Proportion,
        value: |m| m.shadow.as_ref().map(|s| s.empty_rate),
        undefined: NOT_SHADOW,
    },
    MetricInfo {
        kind: MetricKind::ExactMatch,
        name: "exact_match",
        label: "exact match",
        unit: Unit::Proportion,
        value: |m| m.shadow.as_ref().and_then(|s| s.exact_match),
        undefined: "no short or structured production answer was replayed, so exact match is undefined",
    },
    MetricInfo {
        kind: MetricKind::JsonValidity,
        name: "json_validity",
        label: "JSON validity",
        unit: Unit::Proportion,
        value: |m| m.shadow.as_ref().and_then(|s| s.json_validity),
        undefined: "production answered no request with JSON, so JSON validity is undefined",
    },
    MetricInfo {
        kind: MetricKind::LengthRatio,
        name: "length_ratio",
        label: "length ratio",
        unit: Unit::Ratio,
        value: |m| m.shadow.as_ref().and_then(|s| s.length_ratio),
        undefined: NOT_SHADOW,
    },
    MetricInfo {
        kind: MetricKind::Csat,
        name: "csat",
        label: "CSAT",
        unit: Unit::Score,
        value: |_| None,
        undefined: NOT_CANARY,
    },
    MetricInfo {
        kind: MetricKind::ThumbsUpRate,
        name: "thumbs_up_rate",
        label: "thumbs-up rate",
        unit: Unit::Proportion,
        value: |_| None,
        undefined: NOT_CANARY,
    },
];

/// Why a metric of users' feedback has no value outside a canary analysis.
const NOT_CANARY: &str =
    "only a canary analysis (goldgate canary) measures this, from users' feedback in its logs";

/// Why a metric of shadow replays has no value in a run that is not one.
const NOT_SHADOW: &str =
    "only a shadow replay (goldgate shadow) measures this against production's answers";

impl MetricKind {
    pub fn info(self) -> &'static MetricInfo {
        // The catalogue is in declaration order (a test holds it so).
        &CATALOGUE[self as usize]
    }

    pub fn name(self) -> &'static str {
        self.info().name
    }

    pub fn names() -> impl Iterator<Item = &'static str> {
        CATALOGUE.iter().map(|i| i.name)
    }

    pub fn parse(name: &str) -> Option<MetricKind> {
        CATALOGUE.iter().find(|i| i.name == name).map(|i| i.kind)
    }

    pub fn value(self, m: &Metrics) -> Option<f64> {
        (self.info().value)(m)
    }

    /// How a value of this metric reads to a person.
    pub fn format(self, v: f64) -> String {
        match self.info().unit {
            Unit::Proportion => format!("{:.1}%", v * 100.0),
            Unit::Score => format!("{v:.2}"),
            Unit::Fraction => format!("{v:.3}"),
            Unit::Millis if v >= 100.0 => format!("{v:.0} ms"),
            Unit::Millis => format!("{v:.1} ms"),
            Unit::Usd => format!("${v:.4}"),
            Unit::Ratio => format!("{v:.2}×"),
        }
    }

    /// An interval in the unit [`MetricKind::format`] shows the value in, without repeating the
    /// unit: `[48.4, 74.9]` after `62.5%`; an unbounded side reads `∞`.
    pub fn format_interval(self, i: Interval) -> String {
        let f = |v: f64| {
            if v.is_infinite() {
                return if v > 0.0 { "∞" } else { "-∞" }.to_owned();
            }
            match self.info().unit {
                Unit::Proportion => format!("{:.1}", v * 100.0),
                Unit::Score => format!("{v:.2}"),
                Unit::Fraction => format!("{v:.3}"),
                Unit::Millis if v >= 100.0 => format!("{v:.0}"),
                Unit::Millis => format!("{v:.1}"),
                Unit::Usd => format!("{v:.4}"),
                Unit::Ratio => format!("{v:.2}"),
            }
        };
        format!("[{}, {}]", f(i.low), f(i.high))
    }

    /// A difference (candidate − current) and its interval as the views show it:
    /// `+4.2 [-6.1, +14.5] pts` for a share, `+0.12 [-0.05, +0.30]` for a score.
    pub fn format_difference(self, d: f64, i: Interval) -> String {
        let f = |v: f64| match self.info().unit {
            Unit::Proportion => format!("{:+.1}", v * 100.0),
            Unit::Score => format!("{v:+.2}"),
            Unit::Fraction => format!("{v:+.3}"),
            Unit::Millis => format!("{v:+.1}"),
            Unit::Usd => format!("{v:+.4}"),
            Unit::Ratio => format!("{v:+.2}"),
        };
        let unit = match self.info().unit {
            Unit::Proportion => " pts",
            Unit::Millis => " ms",
            _ => "",
        };
        format!("{} [{}, {}]{unit}", f(d), f(i.low), f(i.high))
    }

    /// How far the candidate moved from the current value, as the views show it; empty when
    /// there is nothing to compare (a ratio to zero, a missing value).
    pub fn change(self, current: f64, candidate: f64) -> String {
        match self.info().unit {
            Unit::Proportion => format!("{:+.1} pts", (candidate - current) * 100.0),
            Unit::Score => format!("{:+.2}", candidate - current),
            _ if current != 0.0 => format!("{:+.1}%", (candidate / current - 1.0) * 100.0),
            _ => String::new(),
        }
    }
}

/// A metric, overall or restricted to one tag (`accuracy[tag=billing]`). Written and read as
/// that text in goldgate.toml, run.json and summary.json; a value of this type everywhere between.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MetricRef {
    pub kind: MetricKind,
    pub tag: Option<String>,
}

impl MetricRef {
    pub fn parse(s: &str) -> Option<MetricRef> {
        let s = s.trim();
        let (base, tag) = match s.split_once('[') {
            Some((base, rest)) => {
                let tag = rest.strip_suffix(']')?.trim().strip_prefix("tag=")?.trim();
                if tag.is_empty() {
                    return None;
                }
                (base.trim(), Some(tag.to_owned()))
            }
            None => (s, None),
        };
        Some(MetricRef {
            kind: MetricKind::parse(base)?,
            tag,
        })
    }

    pub fn value(&self, m: &Metrics) -> Option<f64> {
        match &self.tag {
            None => self.kind.value(m),
            Some(tag) => m
                .by_tag
                .as_ref()
                .and_then(|t| t.get(tag))
                .and_then(|m| self.kind.value(m)),
        }
    }
}

impl std::fmt::Display for MetricRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, so a table's `{:<width$}` lines the names up.
        match &self.tag {
            None => f.pad(self.kind.name()),
            Some(tag) => f.pad(&format!("{}[tag={tag}]", self.kind.name())),
        }
    }
}

impl Serialize for MetricRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MetricRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<MetricRef, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        MetricRef::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown gate metric `{text}` (known: {})",
                MetricKind::names().collect::<Vec<_>>().join(", ")
            ))
        })
    }
}

/// The `metrics` object of `summary.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Metrics {
    pub requests: u64,
    pub errors: u64,
    pub error_rate: Option<f64>,
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Attempts beyond the first, summed: how hard the provider made us work.
    pub retries: u64,
    /// Answers that say nothing although the server called them complete. Older summaries
    /// have no such count: read as 0.
    #[serde(default)]
    pub empty_answers: u64,
    /// Answers that repeat the prompt or the context instead of answering (the echo guard).
    #[serde(default)]
    pub echoed_answers: u64,
    /// Answers served from the response cache.
    #[serde(default)]
    pub cached: u64,
    pub accuracy: Option<f64>,
    pub passed: u64,
    pub faithfulness: Option<f64>,
    pub faithfulness_scored: u64,
    /// The mean continuous support (0..1) of the lexical scorer: a finer ranking of answers than
    /// the 1–5 score (held-out ROC-AUC 0.933 against 0.875). Null with the judge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faithfulness_support: Option<f64>,
    /// Answers in which a forbidden string was found, and their share of the requests.
    #[serde(default)]
    pub forbidden_found: u64,
    #[serde(default)]
    pub forbidden_rate: Option<f64>,
    pub latency_ms: Option<LatencyMs>,
    pub cost_per_1k: Option<f64>,
    pub cost_usd: f64,
    pub tokens: Tokens,
    /// The latency histogram in microseconds, HdrHistogram V2 compressed, base64.
    pub histogram_us: String,
    /// Time to first token, for streamed answers (`null` when nothing was streamed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<LatencyMs>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub histogram_ttft_us: Option<String>,
    /// Mean similarity to `expected`, over answered items that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub similarity: Option<SimilarityMeans>,
    /// Per-class precision, recall, F1, macro-F1 and the confusion matrix, over items with a `label`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification: Option<ClassificationMetrics>,
    /// What judging this model's answers took: never part of its own tokens, cost or latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge: Option<JudgeMetrics>,
    /// The confidence interval of each metric above, by its gate name (`accuracy`,
    /// `latency_p95_ms`…), at `statistics.confidence`; `null` for an unbounded side.
    /// A shadow replay's measures against production's answers; absent in other runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ShadowMetrics>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub intervals: BTreeMap<String, Interval>,
    /// With repeats: pass@k, pass^k, flaky items, and how much of the variance is within items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeats: Option<RepeatStats>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub by_tag: Option<BTreeMap<String, Metrics>>,
}

impl Metrics {
    /// The interval of a metric (overall, or on the metric's tag).
    pub fn interval(&self, metric: &MetricRef) -> Option<Interval> {
        let m = match &metric.tag {
            None => self,
            Some(tag) => self.by_tag.as_ref()?.get(tag)?,
        };
        m.intervals.get(metric.kind.name()).copied()
    }
}

pub fn encode_histogram(h: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut bytes)
        .expect("serialising a histogram to memory cannot fail");
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// HdrHistogram's V2 encoding cookies (with the 8-byte word-size flag, as hdrhistogram writes
/// them): plain, and deflated (zlib) around a plain one.
const V2_COOKIE: u32 = 0x1c84_9303 | 0x10;
const V2_DEFLATE_COOKIE: u32 = 0x1c84_9304 | 0x10;
/// A plain V2 histogram's header: cookie, payload length, normalising offset, significant
/// digits (4 bytes each), lowest, highest, conversion ratio (8 bytes each).
const V2_HEADER: usize = 40;
/// The most a stored histogram may inflate to. goldgate's own (3 significant digits, any u64
/// value) take at most about a megabyte of counts, and usually a few hundred bytes.
const MAX_INFLATED: u64 = 4 << 20;

/// A histogram stored by [`encode_histogram`], or `None` for anything else. `summary.json` files
/// come from other runs, other machines and hand edits, and hdrhistogram allocates what a header
/// claims before finding the bytes missing (up to 4 GiB of payload, or counts for 5 significant
/// digits over the whole u64 range): so the header is checked first, against the bytes that are
/// really there and the precision goldgate writes, and the deflated form is inflated under a cap.
pub fn decode_histogram(s: &str) -> Option<Histogram<u64>> {
    use std::io::Read as _;
    let bytes = base64::engine::general_purpose::STANDARD.decode(s).ok()?;
    let be32 = |b: &[u8], at: usize| -> Option<u32> {
        Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
    };
    let plain = match be32(&bytes, 0)? {
        V2_COOKIE => bytes,
        V2_DEFLATE_COOKIE => {
            let len = usize::try_from(be32(&bytes, 4)?).ok()?;
            let deflated = bytes.get(8..8usize.checked_add(len)?)?;
            let mut plain = Vec::new();
            flate2::read::ZlibDecoder::new(deflated)
                .take(MAX_INFLATED + 1)
                .read_to_end(&mut plain)
                .ok()?;
            if plain.len() as u64 > MAX_INFLATED || be32(&plain, 0)? != V2_COOKIE {
                return None;
            }
            plain
        }
        _ => return None,
    };
    let payload = usize::try_from(be32(&plain, 4)?).ok()?;
    let sigfig = be32(&plain, 12)?;
    if payload > plain.len().saturating_sub(V2_HEADER) || sigfig > u32::from(SIGFIG) {
        return None;
    }
    Deserializer::new().deserialize(&mut plain.as_slice()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::CallError;
    use crate::record::{Side, TokenCount};

    fn ok(ms: u64, cost: f64) -> ResultRecord {
        ResultRecord {
            id: "x".into(),
            model: Side::Current,
            trial: 0,
            ok: true,
            pass: true,
            answer: Some("a".into()),
            latency_ms: Some(ms as f64),
            ttft_ms: None,
            server_ms: None,
            cached: false,
            attempts: 1,
            tokens: Some(TokenCount {
                input: 10,
                output: 5,
                estimated: false,
            }),
            cost_usd: cost,
            checks: BTreeMap::new(),
            faithfulness: None,
            error: None,
            similarity: None,
            judge: None,
            answer_hash: None,
            shadow: None,
        }
    }

    #[test]
    fn percentiles_errors_and_cost() {
        let mut t = Tally::default();
        for ms in 1..=100 {
            t.record(&ok(ms, 0.002));
        }
        let mut failed = ok(0, 0.0);
        failed.ok = false;
        failed.pass = false;
        failed.latency_ms = None;
        failed.attempts = 5;
        failed.error = Some(CallError::new(ErrorKind::Timeout, "slow"));
        t.record(&failed);
        let m = t.metrics();
        assert_eq!(m.requests, 101);
        assert_eq!(m.errors, 1);
        assert_eq!(m.retries, 4);
        assert_eq!(m.errors_by_kind["timeout"], 1);
        assert!((m.accuracy.unwrap() - 100.0 / 101.0).abs() < 1e-12);
        let l = m.latency_ms.unwrap();
        assert!((l.p50 - 50.0).abs() < 0.1, "{l:?}");
        assert!((l.p99 - 99.0).abs() < 0.1, "{l:?}");
        assert!((m.cost_per_1k.unwrap() - 2.0).abs() < 1e-9);
        assert_eq!(m.tokens.input, 1000);
    }

    #[test]
    fn histograms_round_trip_exactly() {
        let mut t = Tally::default();
        for ms in [3, 50, 51, 52, 900] {
            t.record(&ok(ms, 0.0));
        }
        let decoded = decode_histogram(&encode_histogram(&t.latency_us)).unwrap();
        assert_eq!(decoded, t.latency_us);
    }

    #[test]
    fn the_catalogue_is_in_declaration_order_and_names_round_trip() {
        for (i, info) in CATALOGUE.iter().enumerate() {
            assert_eq!(info.kind as usize, i, "{} is out of place", info.name);
            assert_eq!(MetricKind::parse(info.name), Some(info.kind));
        }
        let tagged = MetricRef::parse(" accuracy[tag= billing ]").unwrap();
        assert_eq!(tagged.to_string(), "accuracy[tag=billing]");
        let json = serde_json::to_string(&tagged).unwrap();
        assert_eq!(serde_json::from_str::<MetricRef>(&json).unwrap(), tagged);
        assert!(serde_json::from_str::<MetricRef>("\"acuracy\"").is_err());
    }

    #[test]
    fn nothing_answered_gives_nulls_not_zeros() {
        let m = Tally::default().metrics();
        assert!(m.accuracy.is_none() && m.latency_ms.is_none() && m.cost_per_1k.is_none());
    }
}

/// Properties of what files name and store: metric names and per-tag references as
/// goldgate.toml, run.json and summary.json write them, and the stored latency histograms.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    fn kind() -> impl Strategy<Value = MetricKind> {
        proptest::sample::select(CATALOGUE.iter().map(|i| i.kind).collect::<Vec<_>>())
    }

    /// What a `[[gate]] metric` may say by mistake: names, near-names, brackets in any order.
    fn reference_text() -> impl Strategy<Value = String> {
        let name = prop_oneof![
            proptest::sample::select(MetricKind::names().collect::<Vec<_>>())
                .prop_map(str::to_owned),
            "[a-z_0-9]{0,16}",
        ];
        let rest = proptest::collection::vec(
            prop_oneof![
                Just("[".to_owned()),
                Just("]".to_owned()),
                Just("tag=".to_owned()),
                Just(" ".to_owned()),
                "[^\\[\\]]{0,6}",
            ],
            0..6,
        );
        (name, rest).prop_map(|(name, rest)| name + &rest.concat())
    }

    /// A tag as a golden set may carry one: no outer whitespace (an item's tag is matched as
    /// written), any character inside, brackets included.
    fn tag() -> impl Strategy<Value = String> {
        "[^\\s]([^\\n]{0,10}[^\\s])?"
    }

    proptest! {
        #[test]
        fn a_metric_name_is_its_kind_and_nothing_else_is(kind in kind(), text in "[a-z_0-9]{0,20}") {
            prop_assert_eq!(MetricKind::parse(kind.name()), Some(kind));
            if let Some(k) = MetricKind::parse(&text) {
                prop_assert_eq!(k.name(), text);
            }
        }

        #[test]
        fn any_reference_text_reads_as_one_it_writes_back(text in reference_text()) {
            if let Some(r) = MetricRef::parse(&text) {
                prop_assert_eq!(MetricRef::parse(&r.to_string()), Some(r));
            }
        }

        #[test]
        fn a_reference_round_trips_through_its_files(kind in kind(), tag in proptest::option::of(tag())) {
            let r = MetricRef { kind, tag };
            let back = MetricRef::parse(&r.to_string());
            prop_assert_eq!(back.as_ref(), Some(&r));
            let json = serde_json::to_string(&r).unwrap();
            prop_assert_eq!(serde_json::from_str::<MetricRef>(&json).unwrap(), r);
        }

        #[test]
        fn any_value_formats_without_panic(kind in kind(), a in proptest::num::f64::ANY, b in proptest::num::f64::ANY) {
            prop_assert!(!kind.format(a).is_empty());
            let _ = kind.change(a, b);
        }

        #[test]
        fn a_stored_histogram_reads_back_exactly(values in proptest::collection::vec(1u64..3_600_000_000, 0..50)) {
            let mut h = new_histogram();
            for v in &values {
                h.record(*v).unwrap();
            }
            let back = decode_histogram(&encode_histogram(&h)).expect("a histogram it wrote");
            prop_assert_eq!(back.len(), h.len());
            for q in [0.5, 0.9, 0.95, 0.99, 1.0] {
                prop_assert_eq!(back.value_at_quantile(q), h.value_at_quantile(q));
            }
        }

        #[test]
        fn any_stored_histogram_text_decodes_or_is_refused(
            bytes in proptest::collection::vec(any::<u8>(), 0..64),
            text in "[A-Za-z0-9+/=]{0,40}",
        ) {
            // A summary.json edited by hand, or cut: a histogram or none, never a panic.
            let _ = decode_histogram(&text);
            let _ = decode_histogram(&base64::engine::general_purpose::STANDARD.encode(bytes));
        }
    }

    /// Headers that claim what is not there: refused before anything is allocated for them.
    #[test]
    fn a_histogram_header_that_claims_too_much_is_refused() {
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let mut huge = Vec::new();
        huge.extend(V2_COOKIE.to_be_bytes());
        huge.extend(u32::MAX.to_be_bytes()); // a 4 GiB payload
        huge.extend(0u32.to_be_bytes());
        huge.extend(3u32.to_be_bytes());
        huge.extend(1u64.to_be_bytes());
        huge.extend(u64::MAX.to_be_bytes());
        huge.extend(1f64.to_bits().to_be_bytes());
        assert!(decode_histogram(&b64(&huge)).is_none());
        let mut precise = huge.clone();
        precise[4..8].copy_from_slice(&0u32.to_be_bytes());
        precise[12..16].copy_from_slice(&5u32.to_be_bytes()); // counts for 5 digits over u64
        assert!(decode_histogram(&b64(&precise)).is_none());
        let mut deflated = Vec::new();
        deflated.extend(V2_DEFLATE_COOKIE.to_be_bytes());
        deflated.extend(u32::MAX.to_be_bytes()); // more deflated bytes than there are
        deflated.extend([0x78, 0x9c]);
        assert!(decode_histogram(&b64(&deflated)).is_none());
        // A zip bomb: a megabyte-scale run of zeros behind a valid cookie inflates past the cap.
        let mut bomb = V2_COOKIE.to_be_bytes().to_vec();
        bomb.resize(64 << 20, 0);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut z, &bomb).unwrap();
        let z = z.finish().unwrap();
        let mut framed = V2_DEFLATE_COOKIE.to_be_bytes().to_vec();
        framed.extend(u32::try_from(z.len()).unwrap().to_be_bytes());
        framed.extend(z);
        assert!(decode_histogram(&b64(&framed)).is_none());
        // What goldgate writes still reads back.
        let mut h = new_histogram();
        h.record(1234).unwrap();
        assert_eq!(decode_histogram(&encode_histogram(&h)).unwrap().len(), 1);
    }

    proptest! {
        // decode_histogram checks the header before hdrhistogram allocates what it claims: each
        // case takes microseconds (it took up to a second, and gigabytes, before).
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn a_damaged_histogram_decodes_or_is_refused(
            values in proptest::collection::vec(1u64..3_600_000_000, 1..20),
            damage in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut h = new_histogram();
            for v in &values {
                h.record(*v).unwrap();
            }
            // Uncompressed, so the damage lands in the header and the counts, not only in deflate.
            let mut bytes = Vec::new();
            hdrhistogram::serialization::V2Serializer::new().serialize(&h, &mut bytes).unwrap();
            for (at, byte) in &damage {
                let i = at.index(bytes.len());
                bytes[i] = *byte;
            }
            bytes.truncate(cut.index(bytes.len() + 1));
            let _ = decode_histogram(&base64::engine::general_purpose::STANDARD.encode(&bytes));
        }
    }
}
