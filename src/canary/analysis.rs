//! The canary's judgement: per-arm metrics, each gate's test on two unpaired arms, the
//! sample-ratio check and the decision, as `decision.json` holds them (docs/canary.md).
//!
//! Fixed analysis (one look at a finished window): means and rates by the difference of two
//! clustered means (users as clusters), `harm` gates Holm-adjusted as a run's are; the p50 by the
//! Hodges-Lehmann shift of Mann-Whitney's test (Kayenta's judge); p90–p99 by a Poisson bootstrap
//! of the percentile ratio. Sequential analysis (`--sequential`, looked at again and again on a
//! growing log): every interval is an always-valid confidence sequence, each gate's at
//! `1 − α/G` (Bonferroni over the G gates), intersected with the same gate's at earlier looks,
//! so the chance of any false rollback over all looks stays within α.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::log::ReadReport;
use super::tally::{ArmTally, Mean, Tally};
use super::{Arm, Decision};
use crate::gate::{Bound, Gate, GateResult, GateTest, Outcome};
use crate::metrics::{MetricKind, Unit};
use crate::stats::canary::{
    ClusterMoments, Counted, GroupedSample, Resampling, SampleRatio, grouped_quantile,
    grouped_quantile_ratio, normal_mixture_half_width, quantile_ratio, quantile_sequence,
    sample_ratio, scaled_difference, shift_test_counted,
};
use crate::stats::sequential::ratio_interval;
use crate::stats::{self, Decide, Interval, MeanEstimate, Settings};

/// `decision.json`'s schema name; bumped on an incompatible change.
pub const SCHEMA: &str = "goldgate-canary-decision/1";

/// Kayenta's NetflixACAJudge: its Mann-Whitney interval at 98%, and a shift counts as one only
/// when the interval clears a quarter of the estimate (its hard-coded `fraction`).
pub const KAYENTA_CONFIDENCE: f64 = 0.98;
pub const KAYENTA_TOLERANCE: f64 = 0.25;

/// What the analysis is asked to do.
pub struct Plan<'a> {
    pub gates: &'a [Gate],
    pub settings: Settings,
    pub min_requests: u64,
    /// The candidate's configured share, percent (the sample-ratio test's null).
    pub candidate_percent: Option<f64>,
    /// With `--sequential`: each gate's running interval from earlier looks.
    pub sequential: Option<&'a [Option<Interval>]>,
}

/// `decision.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Analysis {
    pub schema: String,
    pub decision: Decision,
    /// False when the split of traffic is not what was configured: nothing measured can then be
    /// trusted (exit 3).
    pub trustworthy: bool,
    pub exit_code: i32,
    pub reasons: Vec<String>,
    /// Every arm had `min_requests`: a `continue` then means the gates need more traffic, and
    /// the flag steps on; without it, the flag holds where it is.
    pub enough_data: bool,
    pub mode: Mode,
    pub confidence: f64,
    /// Each gate's interval level: `confidence`, or in sequential mode `1 − (1 − confidence)/G`.
    pub gate_confidence: f64,
    pub min_requests: u64,
    pub counts: Counts,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<Split>,
    pub gates: Vec<CanaryGate>,
    pub arms: Arms,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, Arms>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_shift: Option<LatencyShift>,
    pub judge: Judge,
    pub timeline: Timeline,
    pub distributions: Distributions,
    /// The logs read, with their recognised formats.
    pub files: Vec<super::log::FileRead>,
    /// With `--sequential`: the state file and every look so far, this one last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequential: Option<Looks>,
    /// The first instant judged (RFC 3339), when the look did not start at the logs' start:
    /// `--since`, or the last step goldgate took on the flag (a minute on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Whether `since` is the flag's last step: the records before it were served at the old
    /// split.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub since_step: bool,
    /// With `--flag-file`: what was changed in the flag file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flag: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Looks {
    pub state_file: String,
    pub looks: Vec<super::state::Look>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Fixed,
    Sequential,
}

/// What was read, and what was not.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Counts {
    pub records: u64,
    pub current: u64,
    pub candidate: u64,
    /// Distinct users per arm (0 when the logs carry none); estimated from a sample of them
    /// when `users_sampled_one_in` is above 1.
    pub users: [u64; 2],
    /// The users were counted from one in this many (chosen by a hash of the id), above a
    /// million users; 1 = every user. The split's test on users uses the sample.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub users_sampled_one_in: u64,
    pub malformed: u64,
    pub examples: Vec<String>,
    pub unknown_variants: BTreeMap<String, u64>,
    pub outside_window: u64,
    pub invalid_values: BTreeMap<String, u64>,
    /// First and last record, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<String>,
}

/// The sample-ratio check.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Split {
    /// What was counted: `users, and requests clustered on users` when traffic is split by user
    /// (at most 1% of the users in both arms), else `requests`.
    pub unit: String,
    pub expected_candidate_percent: f64,
    /// The candidate's share of requests.
    pub observed_candidate_percent: f64,
    /// The candidate's share of users, when traffic is split by user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_user_percent: Option<f64>,
    pub chi_square: f64,
    pub p_value: f64,
    /// p below [`crate::stats::canary::SRM_ALPHA`].
    pub mismatch: bool,
}

/// One gate's result: the run's gate row, whether it is critical, and Kayenta's word for it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CanaryGate {
    #[serde(flatten)]
    pub result: GateResult,
    pub critical: bool,
    /// Requests per arm the test used.
    pub n: [u64; 2],
}

/// Both arms' figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Arms {
    pub current: ArmFigures,
    pub candidate: ArmFigures,
}

/// One arm's figures, each with its own interval where it has one.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ArmFigures {
    pub requests: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<Estimate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<Percentiles>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<Percentiles>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csat: Option<Estimate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbs_up_rate: Option<Estimate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<Estimate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_per_1k: Option<Estimate>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Estimate {
    pub value: f64,
    pub interval: Interval,
    /// Observations, and the independent units (users) among them.
    pub n: f64,
    pub clusters: usize,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub mean: f64,
    pub n: u64,
}

/// Mann-Whitney's test of the latencies with the Hodges-Lehmann shift, at Kayenta's 98%, and its
/// classification: `High` when the interval clears +25% of the shift, `Low` when it clears −25%.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LatencyShift {
    pub shift_ms: f64,
    pub interval: Interval,
    pub p_value: f64,
    /// The chance a candidate latency exceeds a current one.
    pub cles: f64,
    pub classification: String,
}

/// A Kayenta-shaped summary (`CanaryJudgeResult`): per gate `Pass` / `High` / `Low` / `Nodata`,
/// and a score (passed / judged × 100).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Judge {
    pub judge_name: String,
    pub results: Vec<JudgeResult>,
    pub score: JudgeScore,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JudgeResult {
    pub name: String,
    pub classification: String,
    pub classification_reason: String,
    pub critical: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JudgeScore {
    pub score: f64,
    pub classification: String,
}

/// The metrics per time bucket.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Timeline {
    pub width_s: f64,
    pub buckets: Vec<Bucket>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Bucket {
    pub start: String,
    pub current: BucketFigures,
    pub candidate: BucketFigures,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BucketFigures {
    pub requests: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_p50_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_p95_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csat: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbs_up_rate: Option<f64>,
}

/// What the reports draw: latency histograms on shared log-spaced bins, CSAT and thumbs counts.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Distributions {
    /// Bin edges in ms (one more than the counts).
    pub latency_edges: Vec<f64>,
    pub latency: [Vec<u64>; 2],
    pub csat: [[u64; 5]; 2],
    /// [down, up] per arm.
    pub thumbs: [[u64; 2]; 2],
}

/// One arm's data for one gate: overall or within a tag.
struct ArmData<'a> {
    tally: &'a ArmTally,
    moments: &'a [ClusterMoments; 5],
    latency: Counted,
}

fn mean_of(kind: MetricKind) -> Option<Mean> {
    match kind {
        MetricKind::ErrorRate => Some(Mean::Error),
        MetricKind::Csat => Some(Mean::Csat),
        MetricKind::ThumbsUpRate => Some(Mean::ThumbsUp),
        MetricKind::Accuracy => Some(Mean::Correct),
        MetricKind::CostPer1k => Some(Mean::Cost),
        _ => None,
    }
}

fn quantile_of(kind: MetricKind) -> Option<f64> {
    match kind {
        MetricKind::LatencyP50 => Some(0.50),
        MetricKind::LatencyP90 => Some(0.90),
        MetricKind::LatencyP95 => Some(0.95),
        MetricKind::LatencyP99 => Some(0.99),
        _ => None,
    }
}

fn one() -> u64 {
    1
}

fn is_one(n: &u64) -> bool {
    *n == 1
}

/// The unit a mean is shown in: cost per request becomes cost per 1,000 requests.
fn scale(m: Mean) -> f64 {
    if m == Mean::Cost { 1000.0 } else { 1.0 }
}

/// Judge the tally.
pub fn analyse(tally: &Tally, read: &ReadReport, plan: &Plan) -> Analysis {
    let settings = plan.settings;
    let g = plan.gates.len().max(1) as f64;
    let gate_confidence = match plan.sequential {
        Some(_) => 1.0 - (1.0 - settings.confidence) / g,
        None => settings.confidence,
    };
    let moments = tally.moments();
    let overall = [0, 1].map(|a| ArmData {
        tally: &tally.arms[a],
        moments: &moments.overall[a],
        latency: tally.arms[a].latency(),
    });
    let requests = [tally.arms[0].requests, tally.arms[1].requests];
    let short = requests.iter().any(|&n| n < plan.min_requests);

    let mut results: Vec<CanaryGate> = Vec::new();
    for (i, gate) in plan.gates.iter().enumerate() {
        let tag_data;
        let data: &[ArmData; 2] = match &gate.metric.tag {
            None => &overall,
            Some(tag) => match read.tags.iter().position(|t| t == tag) {
                Some(t) if t < tally.tags.len() => {
                    tag_data = [0, 1].map(|a| ArmData {
                        tally: &tally.tags[t][a],
                        moments: &moments.tags[t][a],
                        latency: tally.tags[t][a].latency(),
                    });
                    &tag_data
                }
                Some(t) if t >= super::tally::MAX_TAGS => {
                    results.push(skipped(
                        gate,
                        format!(
                            "the tag `{tag}` came after the first {} the logs named, and only those are tallied",
                            super::tally::MAX_TAGS
                        ),
                    ));
                    continue;
                }
                _ => {
                    results.push(skipped(gate, format!("no record carries the tag `{tag}`")));
                    continue;
                }
            },
        };
        let earlier = plan.sequential.and_then(|s| s.get(i).copied().flatten());
        let mut r = judge_gate(gate, data, read, &settings, gate_confidence, plan, earlier);
        if short && !gate.critical && r.result.outcome != Outcome::Skipped {
            r.result.outcome = Outcome::Inconclusive;
            r.result.pass = false;
            r.result.note.get_or_insert_with(|| {
                format!(
                    "each arm needs {} requests before this gate decides (current {}, candidate {})",
                    plan.min_requests, requests[0], requests[1]
                )
            });
        }
        results.push(r);
    }
    if plan.sequential.is_none() {
        holm(&mut results, settings.alpha_one_sided());
    }

    // The split is tested on the unit traffic is assigned by. Split by user (each user in one
    // arm): the users per arm, and the candidate's share of requests with users as clusters (a
    // heavy user moves the request counts far more than chance does, and a log that loses
    // requests but no user is still caught); both at half the threshold. Split by request: the
    // requests per arm.
    // On the sampled users when there are too many to count: the test is as valid on a
    // sample chosen by hash.
    let users = tally.sampled_users();
    let total_users = users[0] + users[1];
    let by_user = total_users >= 2 && tally.users_in_both() * 100 <= total_users;
    let split = plan.candidate_percent.and_then(|pct| {
        let observed = |u: [u64; 2]| 100.0 * u[1] as f64 / (u[0] + u[1]).max(1) as f64;
        if by_user {
            let s: SampleRatio = sample_ratio(users, [100.0 - pct, pct])?;
            let share = tally.share_moments().estimate()?;
            let p_share = if share.se > 0.0 {
                let z = (share.mean - pct / 100.0).abs() / share.se;
                (2.0 * (1.0 - crate::stats::dist::normal_cdf(z))).min(1.0)
            } else {
                1.0
            };
            let p_value = (2.0 * s.p_value.min(p_share)).min(1.0);
            Some(Split {
                unit: "users, and requests clustered on users".to_owned(),
                expected_candidate_percent: pct,
                observed_candidate_percent: observed(requests),
                observed_user_percent: Some(observed(users)),
                chi_square: s.chi_square,
                p_value,
                mismatch: p_value < crate::stats::canary::SRM_ALPHA,
            })
        } else {
            let s: SampleRatio = sample_ratio(requests, [100.0 - pct, pct])?;
            Some(Split {
                unit: "requests".to_owned(),
                expected_candidate_percent: pct,
                observed_candidate_percent: observed(requests),
                observed_user_percent: None,
                chi_square: s.chi_square,
                p_value: s.p_value,
                mismatch: s.mismatch(),
            })
        }
    });

    let (decision, trustworthy, reasons) = decide(&results, &split, requests, plan);
    let exit_code = if trustworthy { decision.exit_code() } else { 3 };
    let arms = Arms {
        current: figures(&overall[0], read, &settings),
        candidate: figures(&overall[1], read, &settings),
    };
    let tags = read
        .tags
        .iter()
        .enumerate()
        .filter(|(t, _)| *t < tally.tags.len())
        .map(|(t, name)| {
            let d = [0, 1].map(|a| ArmData {
                tally: &tally.tags[t][a],
                moments: &moments.tags[t][a],
                latency: tally.tags[t][a].latency(),
            });
            (
                name.clone(),
                Arms {
                    current: figures(&d[0], read, &settings),
                    candidate: figures(&d[1], read, &settings),
                },
            )
        })
        .collect();
    let latency_shift =
        shift_test_counted(&overall[0].latency, &overall[1].latency, KAYENTA_CONFIDENCE).map(|t| {
            let tolerance = KAYENTA_TOLERANCE * t.shift.abs();
            let classification = if t.shift > 0.0 && t.interval.low > tolerance {
                "High"
            } else if t.shift < 0.0 && t.interval.high < -tolerance {
                "Low"
            } else {
                "Pass"
            };
            LatencyShift {
                shift_ms: t.shift,
                interval: t.interval,
                p_value: t.p_value,
                cles: t.cles,
                classification: classification.to_owned(),
            }
        });
    let judge = judge(&results);
    let counts = Counts {
        records: read.records,
        current: requests[0],
        candidate: requests[1],
        users: tally.users(),
        users_sampled_one_in: tally.users_sampled_one_in(),
        malformed: read.malformed,
        examples: read.examples.clone(),
        unknown_variants: read.unknown_variants.clone(),
        outside_window: read.outside_window,
        invalid_values: read.invalid_values.clone(),
        first: read.first_ms.map(rfc3339),
        last: read.last_ms.map(rfc3339),
    };
    Analysis {
        schema: SCHEMA.to_owned(),
        decision,
        trustworthy,
        exit_code,
        reasons,
        enough_data: !short,
        mode: if plan.sequential.is_some() {
            Mode::Sequential
        } else {
            Mode::Fixed
        },
        confidence: settings.confidence,
        gate_confidence,
        min_requests: plan.min_requests,
        counts,
        split,
        gates: results,
        arms,
        tags,
        latency_shift,
        judge,
        timeline: timeline(tally),
        distributions: distributions(tally, &overall),
        files: read.files.clone(),
        sequential: None,
        since: None,
        since_step: false,
        flag: None,
    }
}

/// A gate that cannot be judged at all: no data for it either side.
fn skipped(gate: &Gate, note: String) -> CanaryGate {
    CanaryGate {
        result: GateResult {
            metric: gate.metric.clone(),
            rule: gate.bound.to_string(),
            current: None,
            candidate: None,
            limit: None,
            pass: false,
            outcome: Outcome::Skipped,
            note: Some(note),
            bound: gate.bound,
            decide: gate.decide(),
            point: None,
            test: None,
        },
        critical: gate.critical,
        n: [0, 0],
    }
}

/// Whether the logs carry what a metric needs.
fn carried(kind: MetricKind, read: &ReadReport) -> bool {
    let c = read.carried;
    match kind {
        MetricKind::ErrorRate => c.error,
        MetricKind::Csat => c.csat,
        MetricKind::ThumbsUpRate => c.feedback,
        MetricKind::Accuracy => c.correct,
        MetricKind::CostPer1k => c.cost || c.tokens,
        k if quantile_of(k).is_some() => c.latency,
        _ => false,
    }
}

fn field_of(kind: MetricKind) -> &'static str {
    match kind {
        MetricKind::ErrorRate => "error",
        MetricKind::Csat => "csat",
        MetricKind::ThumbsUpRate => "feedback",
        MetricKind::Accuracy => "correct (or label and expected_label)",
        MetricKind::CostPer1k => "cost_usd (or tokens with [canary.price])",
        _ => "latency_ms",
    }
}

#[allow(clippy::too_many_arguments)]
fn judge_gate(
    gate: &Gate,
    data: &[ArmData; 2],
    read: &ReadReport,
    settings: &Settings,
    confidence: f64,
    plan: &Plan,
    earlier: Option<Interval>,
) -> CanaryGate {
    let kind = gate.metric.kind;
    if !carried(kind, read) {
        return skipped(
            gate,
            format!(
                "the logs carry no `{}`, so {} is not measured",
                field_of(kind),
                kind.name()
            ),
        );
    }
    let sequential = plan.sequential.is_some();
    let decide = gate.decide();
    let lower_is_worse = matches!(gate.bound, Bound::Min(_) | Bound::MinRatio(_));
    let mut result = GateResult {
        metric: gate.metric.clone(),
        rule: gate.bound.to_string(),
        current: None,
        candidate: None,
        limit: None,
        pass: false,
        outcome: Outcome::Inconclusive,
        note: None,
        bound: gate.bound,
        decide,
        point: None,
        test: None,
    };
    let n;
    let test: Option<GateTest> = if let Some(m) = mean_of(kind) {
        let est = [0, 1].map(|a| data[a].moments[m as usize].estimate());
        n = [0, 1].map(|a| data[a].moments[m as usize].observations() as u64);
        if n == [0, 0] {
            return skipped(
                gate,
                format!(
                    "no record has a value for {} (for cost: `cost_usd`, or tokens with [canary.price])",
                    kind.name()
                ),
            );
        }
        if sequential && m.range().is_none() {
            return skipped(
                gate,
                format!(
                    "{} is unbounded, so it has no always-valid interval: gate it in a fixed analysis (without --sequential)",
                    kind.name()
                ),
            );
        }
        let k = scale(m);
        result.current = est[0].map(|e| e.mean * k);
        result.candidate = est[1].map(|e| e.mean * k);
        if sequential {
            mean_sequence_test(gate, data, m, confidence, lower_is_worse)
        } else {
            match (est[0], est[1]) {
                (Some(a), Some(b)) => mean_test(gate, a, b, k, confidence, lower_is_worse),
                _ => None,
            }
        }
    } else {
        let p = quantile_of(kind).expect("a canary metric is a mean or a percentile");
        let (a, b) = (&data[0].latency, &data[1].latency);
        n = [a.total(), b.total()];
        result.current = a.quantile(p);
        result.candidate = b.quantile(p);
        // With users, the bootstrap resamples them (in their groups), not requests.
        let groups = match (
            data[0].tally.latency_groups(),
            data[1].tally.latency_groups(),
        ) {
            (Some(x), Some(y)) => Some([x, y]),
            _ => None,
        };
        latency_test(
            gate,
            a,
            b,
            groups.as_ref(),
            p,
            settings,
            confidence,
            sequential,
            lower_is_worse,
        )
    };
    result.limit = match gate.bound {
        Bound::Min(v) | Bound::Max(v) => Some(v),
        Bound::MinRatio(r) | Bound::MaxRatio(r) => result.current.map(|c| c * r),
    };
    result.point = match (result.candidate, result.limit) {
        (Some(c), Some(l)) => Some(
            if (lower_is_worse && c >= l) || (!lower_is_worse && c <= l) {
                Outcome::Pass
            } else {
                Outcome::Fail
            },
        ),
        _ => None,
    };
    let Some(mut test) = test else {
        let missing = if n[0] == 0 {
            "the current model has no data for it yet"
        } else if n[1] == 0 {
            "the candidate has no data for it yet"
        } else {
            "too few observations (or users) for an interval yet"
        };
        result.note = Some(missing.to_owned());
        return CanaryGate {
            result,
            critical: gate.critical,
            n,
        };
    };
    if let Some(before) = earlier {
        // The running intersection of a confidence sequence is one too, and never widens.
        let low = test.interval.low.max(before.low);
        let high = test.interval.high.min(before.high);
        if low <= high {
            test.interval = Interval::new(low, high);
        }
    }
    result.outcome = match decide {
        Decide::Point => result.point.unwrap_or(Outcome::Inconclusive),
        Decide::Noninferiority => test.noninferiority(),
        Decide::Harm => {
            // Fails only on a significant worsening: the whole interval on the worse side. In a
            // fixed analysis the Holm step below decides it from the p-value instead.
            if test.noninferiority() == Outcome::Fail {
                Outcome::Fail
            } else {
                Outcome::Pass
            }
        }
    };
    result.pass = result.outcome == Outcome::Pass;
    result.test = Some(test);
    CanaryGate {
        result,
        critical: gate.critical,
        n,
    }
}

/// A fixed analysis of a mean: `candidate − r × current` for a ratio bound, the candidate's
/// interval for an absolute one.
fn mean_test(
    gate: &Gate,
    a: MeanEstimate,
    b: MeanEstimate,
    k: f64,
    confidence: f64,
    lower_is_worse: bool,
) -> Option<GateTest> {
    let clusters = a.clusters.min(b.clusters);
    match gate.bound {
        Bound::MinRatio(r) | Bound::MaxRatio(r) => {
            let d = scaled_difference(a, b, r, confidence)?;
            let se = d.se * k;
            Some(GateTest {
                statistic: format!("candidate - {r} x current"),
                estimate: d.difference * k,
                interval: d.interval.map(|x| x * k),
                null: 0.0,
                lower_is_worse,
                p_value: Some(stats::one_sided_p(
                    d.difference * k,
                    se,
                    0.0,
                    lower_is_worse,
                    f64::INFINITY,
                )),
                p_adjusted: None,
                method: "difference of two clustered means (unpaired arms, users as clusters)"
                    .to_owned(),
                items: (a.n + b.n) as usize,
                clusters: a.clusters + b.clusters,
                se,
                mde: Some(stats::minimum_detectable(se, confidence)),
                items_to_decide: None,
            })
        }
        Bound::Min(v) | Bound::Max(v) => {
            if !b.se.is_finite() || clusters < 1 || b.clusters < 2 {
                return None;
            }
            let se = b.se * k;
            let half = stats::z(confidence) * se;
            let est = b.mean * k;
            Some(GateTest {
                statistic: "candidate".to_owned(),
                estimate: est,
                interval: Interval::new(est - half, est + half),
                null: v,
                lower_is_worse,
                p_value: Some(stats::one_sided_p(
                    est,
                    se,
                    v,
                    lower_is_worse,
                    f64::INFINITY,
                )),
                p_adjusted: None,
                method: "clustered mean (users as clusters)".to_owned(),
                items: b.n as usize,
                clusters: b.clusters,
                se,
                mde: Some(stats::minimum_detectable(se, confidence)),
                items_to_decide: None,
            })
        }
    }
}

/// A sequential analysis of a mean: each arm's confidence sequence at half the gate's error,
/// combined crosswise.
fn mean_sequence_test(
    gate: &Gate,
    data: &[ArmData; 2],
    m: Mean,
    confidence: f64,
    lower_is_worse: bool,
) -> Option<GateTest> {
    // Each arm at half of the gate's error, bounded crosswise.
    let each = 1.0 - (1.0 - confidence) / 2.0;
    let clustered = data.iter().any(|d| d.tally.with_user > 0);
    // (interval, observations, independent units)
    let arm = |d: &ArmData| -> Option<(Interval, usize, usize)> {
        if clustered {
            let (lo, hi) = m.range()?;
            let e = d.moments[m as usize].estimate()?;
            // An arm without variation (no error yet, every rating a 5) has a clustered SE of
            // 0, which would make the interval a point; the SE of independent values with the
            // mean pulled one observation inwards (Laplace) is the floor.
            let scaled = ((e.mean - lo) / (hi - lo) * e.n + 1.0) / (e.n + 2.0);
            let floor = (hi - lo) * (scaled * (1.0 - scaled) / e.n).sqrt();
            // Asymptotic: below SMALL_SAMPLE units of users the clustered SE is no basis.
            let half = if e.clusters >= stats::SMALL_SAMPLE {
                normal_mixture_half_width(e.se.max(floor), MIXTURE_SCALE * (hi - lo), each)
            } else {
                f64::INFINITY
            };
            Some((
                Interval::new((e.mean - half).max(lo), (e.mean + half).min(hi)),
                e.n as usize,
                e.clusters,
            ))
        } else {
            let (iv, n) = d.tally.sequence(m)?;
            Some((iv, n, n))
        }
    };
    let (a, na, ca) = arm(&data[0])?;
    let (b, nb, cb) = arm(&data[1])?;
    if na == 0 || nb == 0 {
        return None;
    }
    let (statistic, interval, null, estimate) = match gate.bound {
        Bound::MinRatio(r) | Bound::MaxRatio(r) => (
            format!("candidate - {r} x current"),
            Interval::new(b.low - r * a.high, b.high - r * a.low),
            0.0,
            (b.low + b.high) / 2.0 - r * (a.low + a.high) / 2.0,
        ),
        Bound::Min(v) | Bound::Max(v) => ("candidate".to_owned(), b, v, (b.low + b.high) / 2.0),
    };
    let method = if clustered {
        "always-valid: asymptotic confidence sequence per arm on the mean clustered on users (normal mixture; Waudby-Smith et al. 2024), Bonferroni over gates"
    } else {
        "always-valid: empirical-Bernstein confidence sequence per arm (Waudby-Smith & Ramdas 2024), Bonferroni over gates"
    };
    Some(GateTest {
        statistic,
        estimate,
        interval,
        null,
        lower_is_worse,
        p_value: None,
        p_adjusted: None,
        method: method.to_owned(),
        items: na + nb,
        clusters: ca + cb,
        se: (interval.high - interval.low) / 2.0 / stats::z(0.95),
        mde: None,
        items_to_decide: None,
    })
}

/// The scale, in log units, of the deviations the latency sequences over users weigh: 0.05, a
/// ratio 5% off, near the tolerance latency gates are written with (`max_ratio = 1.10`).
const LATENCY_MIXTURE_SCALE: f64 = 0.05;

/// The scale of the deviations the clustered sequences' normal mixture weighs, as a share of
/// the metric's range: 0.02 (2 points of an error rate, 0.08 of a CSAT point) keeps the
/// sequence within 4–4.5 standard errors from a hundred requests to a million.
const MIXTURE_SCALE: f64 = 0.02;

/// A latency percentile: the ratio candidate / current (ratio bounds) or the candidate's value
/// (absolute bounds).
#[allow(clippy::too_many_arguments)]
fn latency_test(
    gate: &Gate,
    a: &Counted,
    b: &Counted,
    groups: Option<&[GroupedSample; 2]>,
    p: f64,
    settings: &Settings,
    confidence: f64,
    sequential: bool,
    lower_is_worse: bool,
) -> Option<GateTest> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let z = stats::z(confidence);
    // With users, a bootstrap over them: its percentile interval in a fixed analysis, an
    // asymptotic confidence sequence from its spread under --sequential.
    let resampling = Resampling {
        resamples: settings.resamples as usize,
        seed: settings.seed,
        confidence,
        always_valid: sequential.then_some(LATENCY_MIXTURE_SCALE),
    };
    let over_users = |what: &str, groups: usize| {
        if sequential {
            format!(
                "always-valid: asymptotic confidence sequence (normal mixture) on the log of the {what}, its standard error from a Poisson bootstrap over users ({groups} groups of users; {} resamples, seed {})",
                settings.resamples, settings.seed
            )
        } else {
            format!(
                "Poisson bootstrap of the {what} over users ({groups} groups of users; {} resamples, seed {})",
                settings.resamples, settings.seed
            )
        }
    };
    let (statistic, estimate, interval, null, method) = match gate.bound {
        Bound::MinRatio(r) | Bound::MaxRatio(r) => {
            let (estimate, interval, method) = if let Some([ga, gb]) = groups {
                let estimate = b.quantile(p)? / a.quantile(p)?;
                let iv = grouped_quantile_ratio(ga, gb, p, estimate, resampling)?;
                (
                    estimate,
                    iv,
                    over_users("percentile ratio", ga.groups() + gb.groups()),
                )
            } else if sequential {
                let each = 1.0 - (1.0 - confidence) / 2.0;
                let iv =
                    ratio_interval(quantile_sequence(b, p, each), quantile_sequence(a, p, each));
                (
                    b.quantile(p)? / a.quantile(p)?,
                    iv,
                    "always-valid: quantile confidence sequence per arm (Howard & Ramdas 2022), ratio bounded crosswise".to_owned(),
                )
            } else if p == 0.5 {
                // The median by the Hodges-Lehmann shift: Mann-Whitney's distribution-free
                // interval, read as a ratio to the current median.
                let t = shift_test_counted(a, b, confidence)?;
                let med = a.quantile(0.5)?;
                if med <= 0.0 {
                    return None;
                }
                (
                    1.0 + t.shift / med,
                    t.interval.map(|x| 1.0 + x / med),
                    "Hodges-Lehmann shift with Mann-Whitney's interval, as a ratio to the current median".to_owned(),
                )
            } else {
                let (est, iv) = quantile_ratio(
                    a,
                    b,
                    p,
                    settings.resamples as usize,
                    settings.seed,
                    confidence,
                )?;
                (
                    est,
                    iv,
                    format!(
                        "Poisson bootstrap of the percentile ratio ({} resamples, seed {})",
                        settings.resamples, settings.seed
                    ),
                )
            };
            (
                "candidate / current".to_owned(),
                estimate,
                interval,
                r,
                method,
            )
        }
        Bound::Min(v) | Bound::Max(v) => {
            let grouped = groups.and_then(|[_, gb]| {
                let estimate = b.quantile(p)?;
                grouped_quantile(gb, p, estimate, resampling)
            });
            let iv = if let Some(iv) = grouped {
                iv
            } else if sequential {
                quantile_sequence(b, p, confidence)
            } else {
                // Order statistics around rank n·p: the distribution-free interval of a quantile.
                let n = b.total() as f64;
                let half = z * (n * p * (1.0 - p)).sqrt();
                let lo = (n * p - half).floor();
                let hi = (n * p + half).ceil() + 1.0;
                Interval::new(
                    if lo >= 1.0 {
                        b.at_rank(lo as u64).unwrap_or(f64::NEG_INFINITY)
                    } else {
                        f64::NEG_INFINITY
                    },
                    if hi <= n {
                        b.at_rank(hi as u64).unwrap_or(f64::INFINITY)
                    } else {
                        f64::INFINITY
                    },
                )
            };
            (
                "candidate".to_owned(),
                b.quantile(p)?,
                iv,
                v,
                match (grouped, groups) {
                    (Some(_), Some([_, gb])) => over_users("candidate's percentile", gb.groups()),
                    _ if sequential => {
                        "always-valid: quantile confidence sequence (Howard & Ramdas 2022)"
                            .to_owned()
                    }
                    _ => "order statistics of the candidate's latencies".to_owned(),
                },
            )
        }
    };
    let width = interval.high - interval.low;
    let se = if width.is_finite() {
        width / (2.0 * z)
    } else {
        f64::INFINITY
    };
    let p_value = (!sequential)
        .then(|| stats::one_sided_p(estimate, se, null, lower_is_worse, f64::INFINITY));
    Some(GateTest {
        statistic,
        estimate,
        interval,
        null,
        lower_is_worse,
        p_value,
        p_adjusted: None,
        method,
        items: (a.total() + b.total()) as usize,
        // With users, the groups of users the bootstrap resampled.
        clusters: match groups {
            Some([ga, gb]) => ga.groups() + gb.groups(),
            None => (a.total() + b.total()) as usize,
        },
        se,
        mde: None,
        items_to_decide: None,
    })
}

/// Holm's step-down over the fixed analysis's `harm` gates, as a run's gates are adjusted.
fn holm(results: &mut [CanaryGate], alpha: f64) {
    let harm: Vec<&mut GateResult> = results
        .iter_mut()
        .map(|g| &mut g.result)
        .filter(|r| {
            r.decide == Decide::Harm
                && r.outcome != Outcome::Skipped
                && r.note.is_none()
                && r.test.as_ref().is_some_and(|t| t.p_value.is_some())
        })
        .collect();
    crate::gate::decide_harm_by_holm(harm, alpha);
}

fn describe(g: &CanaryGate) -> String {
    let r = &g.result;
    let name = r.metric.to_string();
    let fmt = |v: Option<f64>| v.map_or_else(|| "n/a".to_owned(), |v| r.metric.kind.format(v));
    format!(
        "{name} {} -> {} ({})",
        fmt(r.current),
        fmt(r.candidate),
        r.rule
    )
}

fn decide(
    results: &[CanaryGate],
    split: &Option<Split>,
    requests: [u64; 2],
    plan: &Plan,
) -> (Decision, bool, Vec<String>) {
    let mut reasons = Vec::new();
    if let Some(s) = split
        && s.mismatch
    {
        reasons.push(format!(
            "sample-ratio mismatch: the candidate has {:.2}% of requests{} where {:.2}% were configured (tested on {}, p = {:.2e}); traffic is being lost or routed unevenly, so no comparison can be trusted",
            s.observed_candidate_percent,
            s.observed_user_percent.map_or(String::new(), |u| format!(" and {u:.2}% of users")),
            s.expected_candidate_percent, s.unit, s.p_value
        ));
        return (Decision::Continue, false, reasons);
    }
    let failed: Vec<&CanaryGate> = results
        .iter()
        .filter(|g| g.result.outcome == Outcome::Fail)
        .collect();
    if !failed.is_empty() {
        for g in &failed {
            reasons.push(format!(
                "{}gate failed: {}",
                if g.critical { "critical " } else { "" },
                describe(g)
            ));
        }
        return (Decision::Rollback, true, reasons);
    }
    for (arm, &n) in Arm::BOTH.iter().zip(&requests) {
        if n == 0 {
            reasons.push(format!(
                "the {} arm has no requests in the logs",
                arm.as_str()
            ));
        } else if n < plan.min_requests {
            reasons.push(format!(
                "the {} arm has {n} request(s); gates decide from {} per arm ([canary] min_requests)",
                arm.as_str(),
                plan.min_requests
            ));
        }
    }
    if !reasons.is_empty() {
        return (Decision::Continue, true, reasons);
    }
    let judged: Vec<&CanaryGate> = results
        .iter()
        .filter(|g| g.result.outcome != Outcome::Skipped)
        .collect();
    if judged.is_empty() {
        reasons.push(
            "no gate could be judged: the logs carry none of the values the gates need".to_owned(),
        );
        return (Decision::Continue, true, reasons);
    }
    let open: Vec<&&CanaryGate> = judged
        .iter()
        .filter(|g| g.result.outcome == Outcome::Inconclusive)
        .collect();
    if open.is_empty() {
        reasons.push(format!(
            "every gate passed ({} judged, {} skipped for want of data)",
            judged.len(),
            results.len() - judged.len()
        ));
        return (Decision::Promote, true, reasons);
    }
    for g in open {
        let why = g.result.note.clone().unwrap_or_else(|| {
            "its interval still straddles the bound: more traffic is needed".to_owned()
        });
        reasons.push(format!("undecided: {} — {why}", describe(g)));
    }
    (Decision::Continue, true, reasons)
}

fn judge(results: &[CanaryGate]) -> Judge {
    let mut passed = 0usize;
    let mut judged = 0usize;
    let list = results
        .iter()
        .map(|g| {
            let r = &g.result;
            let higher_is_bad = matches!(r.bound, Bound::Max(_) | Bound::MaxRatio(_));
            let (class, reason) = match r.outcome {
                Outcome::Pass => ("Pass", String::new()),
                Outcome::Fail if higher_is_bad => ("High", format!("{} above its bound", r.metric)),
                Outcome::Fail => ("Low", format!("{} below its bound", r.metric)),
                Outcome::Inconclusive | Outcome::Skipped => (
                    "Nodata",
                    r.note
                        .clone()
                        .unwrap_or_else(|| "not decided yet".to_owned()),
                ),
            };
            if class != "Nodata" {
                judged += 1;
                passed += usize::from(class == "Pass");
            }
            JudgeResult {
                name: r.metric.to_string(),
                classification: class.to_owned(),
                classification_reason: reason,
                critical: g.critical,
                ratio: match (r.current, r.candidate) {
                    (Some(c), Some(d)) if c > 0.0 => Some(d / c),
                    _ => None,
                },
            }
        })
        .collect::<Vec<_>>();
    let critical_failed = list
        .iter()
        .any(|r| r.critical && matches!(r.classification.as_str(), "High" | "Low"));
    let score = if critical_failed || judged == 0 {
        0.0
    } else {
        100.0 * passed as f64 / judged as f64
    };
    Judge {
        judge_name: "goldgate-canary-v1".to_owned(),
        results: list,
        score: JudgeScore {
            score,
            classification: if score >= 100.0 {
                "Pass"
            } else if score >= 75.0 {
                "Marginal"
            } else {
                "Fail"
            }
            .to_owned(),
        },
    }
}

fn figures(d: &ArmData, read: &ReadReport, settings: &Settings) -> ArmFigures {
    let c = read.carried;
    let conf = settings.confidence;
    let mean = |m: Mean, proportion: bool| -> Option<Estimate> {
        let e = d.moments[m as usize].estimate()?;
        let k = scale(m);
        let interval = if proportion {
            stats::proportion_interval(&e, conf)
        } else if e.se.is_finite() {
            let half = stats::z(conf) * e.se;
            Interval::new(e.mean - half, e.mean + half)
        } else {
            Interval::UNBOUNDED
        };
        Some(Estimate {
            value: e.mean * k,
            interval: interval.map(|x| x * k),
            n: e.n,
            clusters: e.clusters,
        })
    };
    let pct = |h: &Counted| -> Option<Percentiles> {
        Some(Percentiles {
            p50: h.quantile(0.5)?,
            p90: h.quantile(0.9)?,
            p95: h.quantile(0.95)?,
            p99: h.quantile(0.99)?,
            mean: h.mean()?,
            n: h.total(),
        })
    };
    ArmFigures {
        requests: d.tally.requests,
        error_rate: c.error.then(|| mean(Mean::Error, true)).flatten(),
        latency_ms: pct(&d.latency),
        ttft_ms: pct(&d.tally.ttft()),
        csat: mean(Mean::Csat, false),
        thumbs_up_rate: mean(Mean::ThumbsUp, true),
        accuracy: mean(Mean::Correct, true),
        cost_per_1k: mean(Mean::Cost, false),
    }
}

pub(crate) fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

fn timeline(tally: &Tally) -> Timeline {
    let width = tally.timeline.width_ms;
    let buckets = tally
        .timeline
        .buckets
        .iter()
        .map(|(&k, arms)| {
            let fig = |a: &super::tally::BucketArm| BucketFigures {
                requests: a.requests,
                error_rate: (a.requests > 0).then(|| a.errors as f64 / a.requests as f64),
                latency_p50_ms: a.latency_quantile(0.5),
                latency_p95_ms: a.latency_quantile(0.95),
                csat: (a.csat_n > 0).then(|| a.csat_sum / a.csat_n as f64),
                thumbs_up_rate: (a.thumbs_n > 0).then(|| a.thumbs_up as f64 / a.thumbs_n as f64),
            };
            Bucket {
                start: rfc3339(k * width),
                current: fig(&arms[0]),
                candidate: fig(&arms[1]),
            }
        })
        .collect();
    Timeline {
        width_s: width as f64 / 1000.0,
        buckets,
    }
}

/// Latency on 40 log-spaced bins from the smaller arm's p0.5 to the larger's p99.5, so a long
/// tail does not squash the bulk of the distribution.
fn distributions(tally: &Tally, overall: &[ArmData; 2]) -> Distributions {
    let mut d = Distributions {
        csat: [tally.arms[0].csat_counts, tally.arms[1].csat_counts],
        thumbs: [tally.arms[0].thumbs, tally.arms[1].thumbs],
        ..Distributions::default()
    };
    let lows: Vec<f64> = overall
        .iter()
        .filter_map(|a| a.latency.quantile(0.005))
        .collect();
    let highs: Vec<f64> = overall
        .iter()
        .filter_map(|a| a.latency.quantile(0.995))
        .collect();
    let (Some(lo), Some(hi)) = (
        lows.iter().copied().reduce(f64::min),
        highs.iter().copied().reduce(f64::max),
    ) else {
        return d;
    };
    let lo = lo.max(0.001);
    let hi = hi.max(lo * 1.01);
    const BINS: usize = 40;
    let step = (hi / lo).ln() / BINS as f64;
    d.latency_edges = (0..=BINS).map(|i| lo * (step * i as f64).exp()).collect();
    for (a, arm) in overall.iter().enumerate() {
        let mut counts = vec![0u64; BINS];
        for (v, c) in arm.latency.runs() {
            let i = if v <= lo {
                0
            } else {
                (((v / lo).ln() / step) as usize).min(BINS - 1)
            };
            counts[i] += c;
        }
        d.latency[a] = counts;
    }
    d
}

impl Analysis {
    /// The unit a gate's values are shown in, for the views.
    pub fn unit(kind: MetricKind) -> Unit {
        kind.info().unit
    }
}
