//! Promotion gates: rules on the candidate's metrics, absolute or relative to the current model,
//! and the verdict they give.

pub mod sequential;

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::{GateConfig, MAX_TIMEOUT_S, NumberRule};
use crate::error::{Error, Location, Problem};
use crate::metrics::{Evidence, MetricKind, MetricRef, Metrics, Unit};
use crate::record::Side;
use crate::stats::{self, Decide, Interval};

/// Comparisons allow this much floating-point slack, so 0.95 × 0.8 is not a failure of 0.76.
const EPSILON: f64 = 1e-9;

/// One bound of a gate; serialised as `{"min_ratio": 0.95}` so a stored run can be re-gated.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    Min(f64),
    Max(f64),
    MinRatio(f64),
    MaxRatio(f64),
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bound::Min(v) => write!(f, "candidate >= {v}"),
            Bound::Max(v) => write!(f, "candidate <= {v}"),
            Bound::MinRatio(r) => write!(f, "candidate >= {r} x current"),
            Bound::MaxRatio(r) => write!(f, "candidate <= {r} x current"),
        }
    }
}

/// One rule: a metric and one bound. A `[[gate]]` table with several bounds becomes several rules.
/// Stored in run.json as `{"metric": "accuracy", "bound": {"min_ratio": 0.95}}`, so a stored run
/// can be gated again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gate {
    pub metric: MetricRef,
    pub bound: Bound,
    /// How it decides; `None` takes the metric's default ([`Gate::decide`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decide: Option<Decide>,
    /// A canary gate whose failure rolls back on its own ([`crate::config::GateConfig::critical`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub critical: bool,
}

/// The spec's default gate set, used when the evaluation names none.
pub fn default_gates() -> Vec<Gate> {
    vec![
        default_gate("accuracy", Bound::MinRatio(0.95), false),
        default_gate("faithfulness", Bound::Min(4.0), false),
        default_gate("latency_p95_ms", Bound::MaxRatio(1.10), false),
        default_gate("error_rate", Bound::MaxRatio(1.0), false),
    ]
}

/// A shadow run's gates when `[[shadow.gate]]` names none: against the noise baseline (the
/// current model's replay of the same requests), the candidate agrees with production's answers
/// about as often, fails, refuses and says nothing no more often, and is about as fast.
pub fn default_shadow_gates() -> Vec<Gate> {
    vec![
        default_gate("accuracy", Bound::MinRatio(0.95), false),
        default_gate("error_rate", Bound::MaxRatio(1.0), false),
        default_gate("refusal_rate", Bound::MaxRatio(1.0), false),
        default_gate("empty_rate", Bound::MaxRatio(1.0), false),
        default_gate("latency_p95_ms", Bound::MaxRatio(1.10), false),
    ]
}

/// A canary's gates when `[[canary.gate]]` names none: the candidate fails no more often (a
/// critical gate: a significant rise rolls back on its own), is about as fast at p95, and its
/// users are no less satisfied (CSAT, thumbs-up) nor less often right, where the logs say so.
/// Gates on values the logs do not carry are skipped.
pub fn default_canary_gates() -> Vec<Gate> {
    vec![
        default_gate("error_rate", Bound::MaxRatio(1.0), true),
        default_gate("latency_p95_ms", Bound::MaxRatio(1.10), false),
        default_gate("csat", Bound::MinRatio(1.0), false),
        default_gate("thumbs_up_rate", Bound::MinRatio(1.0), false),
        default_gate("accuracy", Bound::MinRatio(0.95), false),
    ]
}

/// A gate of the default sets above: a metric named by goldgate itself, decided as the metric's
/// default is.
fn default_gate(name: &str, bound: Bound, critical: bool) -> Gate {
    Gate {
        metric: MetricRef::parse(name).expect("default gate metrics are valid"),
        bound,
        decide: None,
        critical,
    }
}

/// The metrics a canary's logs can measure: what users and servers report of live requests.
pub const CANARY_METRICS: [MetricKind; 9] = [
    MetricKind::Accuracy,
    MetricKind::ErrorRate,
    MetricKind::LatencyP50,
    MetricKind::LatencyP90,
    MetricKind::LatencyP95,
    MetricKind::LatencyP99,
    MetricKind::CostPer1k,
    MetricKind::Csat,
    MetricKind::ThumbsUpRate,
];

/// The values a metric can take, in its unit: a bound outside them can never be met (`min = 5`
/// on accuracy, which is a share from 0 to 1) or always is.
fn value_range(kind: MetricKind) -> (f64, f64, &'static str) {
    match kind.info().unit {
        Unit::Proportion => (0.0, 1.0, "a share from 0 to 1: write 0.95 for 95%"),
        Unit::Fraction => (0.0, 1.0, "a measure from 0 to 1, e.g. 0.8"),
        Unit::Score => (1.0, 5.0, "a score on a 1-5 scale, e.g. min = 4.0"),
        Unit::Millis => (0.0, MAX_TIMEOUT_S * 1000.0, "milliseconds, e.g. max = 1500"),
        Unit::Usd => (0.0, 1e9, "US dollars per 1,000 queries, e.g. max = 2.50"),
        Unit::Ratio => (
            0.0,
            1e6,
            "a ratio, e.g. max = 1.5 for at most half as long again",
        ),
    }
}

/// The largest ratios a gate may give. "At least 10 x the current model" is no regression gate
/// and `min_ratio = 95` is a percentage written as a ratio; "at most 100 x" bounds nothing a
/// person means.
const MAX_MIN_RATIO: f64 = 10.0;
const MAX_MAX_RATIO: f64 = 100.0;

/// What is wrong with one bound, if anything: not a finite number, outside what the metric can
/// take, or a ratio that cannot mean what it says.
fn bound_problem(
    kind: MetricKind,
    bound: Bound,
    at: impl Fn(&str) -> Location + Copy,
) -> Option<Problem> {
    match bound {
        Bound::Min(v) | Bound::Max(v) => {
            let name = if matches!(bound, Bound::Min(_)) {
                "min"
            } else {
                "max"
            };
            let (lo, hi, unit) = value_range(kind);
            let rule = NumberRule::new("", lo, hi).fix(unit);
            rule.check(|_| at(name), v)
        }
        Bound::MinRatio(r) | Bound::MaxRatio(r) => {
            let name = if matches!(bound, Bound::MinRatio(_)) {
                "min_ratio"
            } else {
                "max_ratio"
            };
            if r == 0.0 {
                let says = if name == "min_ratio" {
                    "min_ratio = 0 always passes"
                } else {
                    "max_ratio = 0 says the candidate may have no value at all"
                };
                return Some(Problem::new(at(name), says).fix(
                    "a ratio multiplies the current model's value: e.g. min_ratio = 0.95 for at least 95% of it; for an absolute bound use min or max",
                ));
            }
            let most = if name == "min_ratio" {
                MAX_MIN_RATIO
            } else {
                MAX_MAX_RATIO
            };
            NumberRule::new("", 0.0, most)
                .fix(
                    "a ratio multiplies the current model's value: 0.95 is 95% of it, 1.10 is 110%",
                )
                .check(|_| at(name), r)
        }
    }
}

/// Bounds of one gate that no candidate can meet together: `min` above `max`, or `min_ratio`
/// above `max_ratio` (both multiply the same current value).
fn contradiction(metric: &str, bounds: &[Bound], at: impl Fn() -> Location) -> Option<Problem> {
    let (mut lower, mut upper) = (None::<f64>, None::<f64>);
    let (mut lower_ratio, mut upper_ratio) = (None::<f64>, None::<f64>);
    for b in bounds {
        match *b {
            Bound::Min(v) => lower = Some(v),
            Bound::Max(v) => upper = Some(v),
            Bound::MinRatio(r) => lower_ratio = Some(r),
            Bound::MaxRatio(r) => upper_ratio = Some(r),
        }
    }
    let says = match (lower, upper, lower_ratio, upper_ratio) {
        (Some(lo), Some(hi), ..) if lo > hi => format!("min = {lo} is above max = {hi}"),
        (.., Some(lo), Some(hi)) if lo > hi => {
            format!("min_ratio = {lo} is above max_ratio = {hi}")
        }
        _ => return None,
    };
    Some(
        Problem::new(
            at(),
            format!("the gate on `{metric}` can never pass: {says}"),
        )
        .fix("swap or correct the bounds"),
    )
}

impl Gate {
    /// Check the `[[gate]]` tables of an evaluation file; `tags` are those of the golden set, so a
    /// per-tag gate on a tag no item carries is caught before anything runs.
    pub fn parse_all(
        configs: &[GateConfig],
        file: &Path,
        tags: &std::collections::BTreeSet<&str>,
    ) -> Result<Vec<Gate>, Error> {
        if configs.is_empty() {
            return Ok(default_gates());
        }
        Gate::parse_table(configs, file, tags, "gate")
    }

    /// The gates of one array of tables (`gate`, `shadow.gate`), named so in every problem.
    pub fn parse_table(
        configs: &[GateConfig],
        file: &Path,
        tags: &std::collections::BTreeSet<&str>,
        table: &str,
    ) -> Result<Vec<Gate>, Error> {
        let mut gates = Vec::new();
        let mut problems = Vec::new();
        for (i, c) in configs.iter().enumerate() {
            let at = || Location::file(file).field(format!("{table}[{i}]"));
            let Some(metric) = MetricRef::parse(&c.metric) else {
                // A canary's gates name what its logs measure; other gates, every metric.
                let known: Vec<_> = if table == "canary.gate" {
                    CANARY_METRICS.iter().map(|k| k.name()).collect()
                } else {
                    MetricKind::names().collect()
                };
                problems.push(
                    Problem::new(at(), format!("unknown gate metric `{}`", c.metric)).fix(format!(
                        "use one of {}, optionally per tag as `accuracy[tag=billing]`",
                        known.join(", ")
                    )),
                );
                continue;
            };
            if let Some(tag) = &metric.tag
                && !tags.contains(tag.as_str())
            {
                problems.push(
                    Problem::new(
                        at(),
                        format!("no item of the golden set has the tag `{tag}`"),
                    )
                    .fix("correct the tag, or add it to the items it applies to"),
                );
            }
            let bounds: Vec<Bound> = [
                c.min.map(Bound::Min),
                c.max.map(Bound::Max),
                c.min_ratio.map(Bound::MinRatio),
                c.max_ratio.map(Bound::MaxRatio),
            ]
            .into_iter()
            .flatten()
            .collect();
            if bounds.is_empty() {
                problems.push(
                    Problem::new(at(), format!("the gate on `{}` has no bound", c.metric))
                        .fix("add one of min, max (absolute, on the candidate), min_ratio, max_ratio (relative to the current model)"),
                );
            }
            let field = |name: &str| Location::file(file).field(format!("{table}[{i}].{name}"));
            problems.extend(
                bounds
                    .iter()
                    .filter_map(|b| bound_problem(metric.kind, *b, field)),
            );
            problems.extend(contradiction(&c.metric, &bounds, at));
            let canary = table == "canary.gate";
            if c.critical && !canary {
                problems.push(
                    Problem::new(field("critical"), "only a canary's gates can be critical")
                        .fix("remove `critical`, or move the gate to [[canary.gate]]"),
                );
            }
            if canary && !CANARY_METRICS.contains(&metric.kind) {
                let known: Vec<_> = CANARY_METRICS.iter().map(|k| k.name()).collect();
                problems.push(
                    Problem::new(
                        at(),
                        format!("a canary's logs do not measure `{}`", metric.kind.name()),
                    )
                    .fix(format!("gate a canary on one of {}", known.join(", "))),
                );
            }
            gates.extend(bounds.into_iter().map(|bound| Gate {
                metric: metric.clone(),
                bound,
                decide: c.decide,
                critical: c.critical,
            }));
        }
        if problems.is_empty() {
            Ok(gates)
        } else {
            Err(Error::Input(problems))
        }
    }

    /// How this gate decides: as written, or the metric's default. A bound that can never be
    /// shown to hold — zero margin (`max_ratio = 1.0`: "no worse at all") or the edge of the
    /// metric's range (`max = 0` on a rate) — fails only on a significant worsening (`harm`);
    /// every other bound must be shown to hold (`noninferiority`).
    pub fn decide(&self) -> Decide {
        if let Some(d) = self.decide {
            return d;
        }
        let (lo, hi, _) = value_range(self.metric.kind);
        let zero_margin = match self.bound {
            Bound::MinRatio(r) | Bound::MaxRatio(r) => (r - 1.0).abs() < EPSILON,
            Bound::Min(v) => v <= lo + EPSILON,
            Bound::Max(v) => v <= lo + EPSILON || v >= hi - EPSILON,
        };
        if zero_margin {
            Decide::Harm
        } else {
            Decide::Noninferiority
        }
    }

    /// The gate on the point estimates alone, and where the data allow, its test; the outcome of
    /// a `harm` gate waits for [`evaluate_all`]'s Holm adjustment.
    pub fn evaluate(&self, current: &Metrics, candidate: &Metrics, ev: &Evidence) -> GateResult {
        let cur = self.metric.value(current);
        let cand = self.metric.value(candidate);
        let limit = match self.bound {
            Bound::Min(v) | Bound::Max(v) => Some(v),
            Bound::MinRatio(r) | Bound::MaxRatio(r) => cur.map(|c| c * r),
        };
        let decide = self.decide();
        let mut result = GateResult {
            metric: self.metric.clone(),
            rule: self.bound.to_string(),
            current: cur,
            candidate: cand,
            limit,
            pass: false,
            outcome: Outcome::Fail,
            note: None,
            bound: self.bound,
            decide,
            point: None,
            test: None,
        };
        let (outcome, note) = match (cand, limit) {
            (Some(v), Some(l)) => {
                let ok = match self.bound {
                    Bound::Min(_) | Bound::MinRatio(_) => v >= l - EPSILON,
                    Bound::Max(_) | Bound::MaxRatio(_) => v <= l + EPSILON,
                };
                (if ok { Outcome::Pass } else { Outcome::Fail }, None)
            }
            // Undefined on both sides (faithfulness with no context anywhere, macro-F1 with no
            // label): nothing to judge, and saying so beats failing a set that lacks the data.
            (None, _) if cur.is_none() => {
                (Outcome::Skipped, Some(self.metric.kind.info().undefined))
            }
            // The candidate has no value where the baseline has one (e.g. every request failed,
            // so no latency): that cannot pass.
            (None, _) => (
                Outcome::Fail,
                Some("the candidate has no value for this metric"),
            ),
            (Some(_), None) => (
                Outcome::Skipped,
                Some(
                    "the current model has no value for this metric, so the ratio has no baseline",
                ),
            ),
        };
        result.note = note.map(str::to_owned);
        result.point = Some(outcome);
        result.outcome = outcome;
        if outcome == Outcome::Skipped || note.is_some() {
            result.pass = outcome != Outcome::Fail;
            return result;
        }
        result.test = self.test(ev, cur, cand);
        result.outcome = match (decide, &result.test) {
            (Decide::Point, _) => outcome,
            (Decide::Noninferiority, Some(t)) => t.noninferiority(),
            // Decided with the other harm gates, once their p-values are adjusted together.
            (Decide::Harm, Some(_)) => outcome,
            (_, None) => {
                result.note = Some(
                    "no interval could be computed (too few items or trials): decided on the point estimates"
                        .to_owned(),
                );
                outcome
            }
        };
        result.pass = result.outcome == Outcome::Pass;
        result
    }

    /// The statistical test of this gate, in the direction of its bound.
    fn test(&self, ev: &Evidence, cur: Option<f64>, cand: Option<f64>) -> Option<GateTest> {
        let conf = ev.settings.confidence;
        let lower_is_worse = matches!(self.bound, Bound::Min(_) | Bound::MinRatio(_));
        let kind = self.metric.kind;
        let scope = ev.scope_size(&self.metric);
        let percentile = match kind {
            MetricKind::LatencyP50 => Some(0.50),
            MetricKind::LatencyP90 => Some(0.90),
            MetricKind::LatencyP95 => Some(0.95),
            MetricKind::LatencyP99 => Some(0.99),
            _ => None,
        };
        let mut t = match self.bound {
            Bound::MinRatio(r) | Bound::MaxRatio(r) => {
                if let Some(units) = ev.units(&self.metric) {
                    // Paired non-inferiority on d = c − r·b per item (the linear form of
                    // Fieller's test): the bound holds exactly when mean(d) is on its side of 0.
                    let proportion = Evidence::is_proportion(kind);
                    let p =
                        units.linear(r, Evidence::scale(kind), conf, &ev.settings.bootstrap())?;
                    let df = (p.clusters.max(2) - 1) as f64;
                    let exact = proportion && (r - 1.0).abs() < EPSILON && ev.binary_units(&units);
                    let p_value = if exact {
                        // McNemar's exact one-sided test on the discordant items.
                        let (mut worse, mut better) = (0, 0);
                        for (b, c) in units.current.iter().zip(&units.candidate) {
                            let down = if lower_is_worse { c < b } else { c > b };
                            let up = if lower_is_worse { c > b } else { c < b };
                            worse += u64::from(down);
                            better += u64::from(up);
                        }
                        stats::dist::mcnemar_exact_greater(worse, better)
                    } else {
                        stats::one_sided_p(p.estimate, p.se, 0.0, lower_is_worse, df)
                    };
                    GateTest {
                        statistic: format!("mean per item of candidate - {r} x current"),
                        estimate: p.estimate,
                        interval: p.interval,
                        null: 0.0,
                        lower_is_worse,
                        p_value: Some(p_value),
                        p_adjusted: None,
                        method: if exact {
                            "paired (McNemar exact); MOVER interval".to_owned()
                        } else if proportion {
                            "paired, MOVER interval with Wilson margins".to_owned()
                        } else {
                            "paired t (clustered)".to_owned()
                        },
                        items: p.units,
                        clusters: p.clusters,
                        se: p.se,
                        mde: None,
                        items_to_decide: None,
                    }
                } else {
                    // Percentiles and macro-F1: the paired cluster bootstrap.
                    let mut reps = ev.paired_replicates(&self.metric, r)?;
                    let interval = stats::percentile_interval(&mut reps, conf);
                    if !interval.low.is_finite() && !interval.high.is_finite() {
                        return None;
                    }
                    let (estimate, null, statistic) = if percentile.is_some() {
                        (cand? / cur?, r, "candidate / current".to_owned())
                    } else {
                        (cand? - r * cur?, 0.0, format!("candidate - {r} x current"))
                    };
                    let p_value = if lower_is_worse {
                        let above = reps.iter().filter(|&&v| v >= null).count();
                        (above as f64 + 1.0) / (reps.len() as f64 + 1.0)
                    } else {
                        stats::bootstrap_p_above(&reps, null)
                    };
                    GateTest {
                        statistic,
                        estimate,
                        interval,
                        null,
                        lower_is_worse,
                        p_value: Some(p_value),
                        p_adjusted: None,
                        method: format!(
                            "paired cluster bootstrap ({} resamples, seed {})",
                            ev.settings.resamples, ev.settings.seed
                        ),
                        items: scope.0,
                        clusters: scope.1,
                        se: (interval.high - interval.low) / (2.0 * stats::z(conf)),
                        mde: None,
                        items_to_decide: None,
                    }
                }
            }
            Bound::Min(v) | Bound::Max(v) => {
                let interval = ev.interval(Side::Candidate, &self.metric)?;
                let scope = ev.measured(Side::Candidate, &self.metric);
                let estimate = cand?;
                let se = (interval.high - interval.low) / (2.0 * stats::z(conf));
                GateTest {
                    statistic: "candidate".to_owned(),
                    estimate,
                    interval,
                    null: v,
                    lower_is_worse,
                    // One-sided p of "worse than the bound", from the interval's own method:
                    // the normal approximation its width implies.
                    p_value: Some(stats::one_sided_p(
                        estimate,
                        se,
                        v,
                        lower_is_worse,
                        f64::INFINITY,
                    )),
                    p_adjusted: None,
                    method: match (percentile, Evidence::is_proportion(kind)) {
                        (Some(_), _) => "order statistics (binomial ranks)".to_owned(),
                        _ if kind == MetricKind::MacroF1 => format!(
                            "cluster bootstrap, percentile ({} resamples, seed {})",
                            ev.settings.resamples, ev.settings.seed
                        ),
                        (None, true) => "Wilson (clustered)".to_owned(),
                        (None, false) => {
                            "t (clustered); below 30 items widened to hold a bootstrap and Wilson's bound"
                                .to_owned()
                        }
                    },
                    items: scope.0,
                    clusters: scope.1,
                    se,
                    mde: None,
                    items_to_decide: None,
                }
            }
        };
        if t.se.is_finite() && t.se > 0.0 {
            t.mde = Some(stats::minimum_detectable(t.se, conf));
            if t.noninferiority() == Outcome::Inconclusive {
                t.items_to_decide =
                    stats::units_to_decide(t.clusters, t.se, t.estimate - t.null, conf);
            }
        }
        Some(t)
    }
}

/// Every gate of a run: each on its own, then the `harm` gates together, their p-values
/// Holm-adjusted (several chances to find a "significant" worsening by luck alone are one).
pub fn evaluate_all(
    gates: &[Gate],
    current: &Metrics,
    candidate: &Metrics,
    ev: &Evidence,
) -> Vec<GateResult> {
    let mut results: Vec<GateResult> = gates
        .iter()
        .map(|g| g.evaluate(current, candidate, ev))
        .collect();
    let harm: Vec<&mut GateResult> = results
        .iter_mut()
        .filter(|r| {
            r.decide == Decide::Harm
                && r.note.is_none()
                && r.test.as_ref().is_some_and(|t| t.p_value.is_some())
        })
        .collect();
    decide_harm_by_holm(harm, ev.settings.alpha_one_sided());
    results
}

/// Decide the family of `harm` gates (each with a test and its p-value) by Holm's step-down:
/// a gate fails when its adjusted p is below `alpha`, and passes otherwise.
pub(crate) fn decide_harm_by_holm(harm: Vec<&mut GateResult>, alpha: f64) {
    let p: Vec<f64> = harm
        .iter()
        .map(|r| r.test.as_ref().and_then(|t| t.p_value).unwrap_or(1.0))
        .collect();
    for (r, adj) in harm.into_iter().zip(stats::dist::holm(&p)) {
        if let Some(t) = r.test.as_mut() {
            t.p_adjusted = Some(adj);
        }
        r.outcome = if adj < alpha {
            Outcome::Fail
        } else {
            Outcome::Pass
        };
        r.pass = r.outcome == Outcome::Pass;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    /// The interval straddles the bound: more items or repeats are needed to decide.
    Inconclusive,
    /// Not applicable (no data either side); does not fail the verdict, and says why.
    Skipped,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Inconclusive => "inconclusive",
            Outcome::Skipped => "skipped",
        }
    }
}

/// A gate's statistical test: the interval of the statistic it compares with its bound.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GateTest {
    /// What the interval is of: `candidate - 0.95 x current, mean per item`, `candidate /
    /// current` (a latency percentile), or `candidate` (an absolute bound).
    pub statistic: String,
    pub estimate: f64,
    pub interval: Interval,
    /// The statistic's value at the bound: 0 for a paired difference, the ratio for a ratio, the
    /// bound itself for an absolute gate.
    pub null: f64,
    /// Whether values below `null` are the worse side (a `min` bound).
    pub lower_is_worse: bool,
    /// One-sided p-value of "the candidate is on the worse side of the bound".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p_value: Option<f64>,
    /// Holm-adjusted across the run's `harm` gates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p_adjusted: Option<f64>,
    pub method: String,
    /// Items in the comparison and the independent clusters among them.
    pub items: usize,
    pub clusters: usize,
    /// The statistic's standard error (for a bootstrap: the interval's width over 2z).
    pub se: f64,
    /// The smallest distance from the bound this many items detect with 80% power, in the
    /// statistic's unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mde: Option<f64>,
    /// For an undecided gate: about how many items would likely decide it, if the observed
    /// distance from the bound is the true one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items_to_decide: Option<u64>,
}

impl GateTest {
    /// Pass when the whole interval is on the good side of the bound, fail when all of it is on
    /// the bad side, inconclusive when it straddles the bound.
    pub fn noninferiority(&self) -> Outcome {
        let (good_low, good_high) = if self.lower_is_worse {
            (
                self.interval.low > self.null,
                self.interval.high < self.null,
            )
        } else {
            (
                self.interval.high < self.null,
                self.interval.low > self.null,
            )
        };
        if good_low {
            Outcome::Pass
        } else if good_high {
            Outcome::Fail
        } else {
            Outcome::Inconclusive
        }
    }
}

/// One row of `summary.json`'s `gates`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GateResult {
    pub metric: MetricRef,
    pub rule: String,
    pub current: Option<f64>,
    pub candidate: Option<f64>,
    pub limit: Option<f64>,
    /// The gate passed (false when it failed or could not be decided).
    pub pass: bool,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub bound: Bound,
    /// How the gate decided.
    #[serde(default = "GateResult::point_decide")]
    pub decide: Decide,
    /// What the point estimates alone say (today's `point` rule), for comparison.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point: Option<Outcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<GateTest>,
}

impl GateResult {
    fn point_decide() -> Decide {
        Decide::Point
    }

    /// How this gate's values read to a person.
    pub fn format(&self, v: Option<f64>) -> String {
        v.map_or_else(|| "n/a".to_owned(), |v| self.metric.kind.format(v))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
    /// The data cannot decide: no gate failed but one could not be decided, or the run did not
    /// complete (interrupted, or a model answered nothing) and so never passes.
    Inconclusive,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// The verdict of a run: only a complete run can pass or fail by its gates; any failed gate
/// fails it, else any undecided gate leaves it inconclusive.
pub fn verdict(results: &[GateResult], status: crate::metrics::Status) -> Verdict {
    if status != crate::metrics::Status::Complete {
        Verdict::Inconclusive
    } else if results.iter().any(|r| r.outcome == Outcome::Fail) {
        Verdict::Fail
    } else if results.iter().any(|r| r.outcome == Outcome::Inconclusive) {
        Verdict::Inconclusive
    } else {
        Verdict::Pass
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Tally;

    fn metrics(accuracy: Option<f64>, error_rate: Option<f64>, faith: Option<f64>) -> Metrics {
        let mut m = Tally::default().metrics();
        m.accuracy = accuracy;
        m.error_rate = error_rate;
        m.faithfulness = faith;
        m.faithfulness_scored = u64::from(faith.is_some());
        m
    }

    fn gate(metric: &str, bound: Bound) -> Gate {
        Gate {
            metric: MetricRef::parse(metric).unwrap(),
            bound,
            decide: None,
            critical: false,
        }
    }

    impl Gate {
        /// The gate on point estimates alone: what these tests hold (the statistics have
        /// theirs in `stats::simulation` and the integration tests).
        pub(super) fn evaluate_point(&self, current: &Metrics, candidate: &Metrics) -> GateResult {
            let (items, tallies) = (
                crate::golden::Items::default(),
                crate::metrics::ItemTallies::default(),
            );
            let ev = Evidence::new(&items, &tallies, stats::Settings::default());
            let gate = Gate {
                decide: Some(Decide::Point),
                ..self.clone()
            };
            gate.evaluate(current, candidate, &ev)
        }
    }

    #[test]
    fn ratio_gates_and_the_spec_example() {
        let r = gate("accuracy", Bound::MinRatio(0.95)).evaluate_point(
            &metrics(Some(0.85), None, None),
            &metrics(Some(0.88), None, None),
        );
        assert!(r.pass);
        assert!((r.limit.unwrap() - 0.8075).abs() < 1e-12);
        assert_eq!(r.rule, "candidate >= 0.95 x current");
        let r = gate("accuracy", Bound::MinRatio(0.95)).evaluate_point(
            &metrics(Some(0.85), None, None),
            &metrics(Some(0.80), None, None),
        );
        assert!(!r.pass);
    }

    #[test]
    fn exact_limit_passes_despite_float_rounding() {
        let r = gate("accuracy", Bound::MinRatio(0.95)).evaluate_point(
            &metrics(Some(0.8), None, None),
            &metrics(Some(0.76), None, None),
        );
        assert!(r.pass);
    }

    #[test]
    fn zero_baseline() {
        // A baseline with no errors leaves the candidate no room for any.
        let g = gate("error_rate", Bound::MaxRatio(1.0));
        assert!(
            g.evaluate_point(
                &metrics(None, Some(0.0), None),
                &metrics(None, Some(0.0), None)
            )
            .pass
        );
        assert!(
            !g.evaluate_point(
                &metrics(None, Some(0.0), None),
                &metrics(None, Some(0.01), None)
            )
            .pass
        );
        // A baseline with zero accuracy: any candidate accuracy is at least 0.95 x 0.
        let g = gate("accuracy", Bound::MinRatio(0.95));
        assert!(
            g.evaluate_point(
                &metrics(Some(0.0), None, None),
                &metrics(Some(0.0), None, None)
            )
            .pass
        );
    }

    #[test]
    fn no_context_anywhere_skips_faithfulness_without_failing() {
        let g = gate("faithfulness", Bound::Min(4.0));
        let r = g.evaluate_point(&metrics(None, None, None), &metrics(None, None, None));
        assert_eq!(r.outcome, Outcome::Skipped);
        assert!(r.pass);
        assert!(r.note.unwrap().contains("faithfulness is undefined"));
        assert!(
            !g.evaluate_point(
                &metrics(None, None, Some(5.0)),
                &metrics(None, None, Some(3.9))
            )
            .pass
        );
    }

    #[test]
    fn all_requests_failed_fails_latency_and_accuracy() {
        let mut cur = metrics(Some(0.9), Some(0.0), None);
        cur.latency_ms = Some(crate::metrics::LatencyMs {
            p50: 10.0,
            p90: 10.0,
            p95: 10.0,
            p99: 10.0,
            max: 10.0,
            mean: 10.0,
        });
        let cand = metrics(Some(0.0), Some(1.0), None);
        let results: Vec<_> = default_gates()
            .iter()
            .map(|g| g.evaluate_point(&cur, &cand))
            .collect();
        let by = |m: &str| results.iter().find(|r| r.metric.to_string() == m).unwrap();
        assert!(!by("accuracy").pass);
        assert!(!by("latency_p95_ms").pass);
        assert!(!by("error_rate").pass);
        assert_eq!(
            verdict(&results, crate::metrics::Status::Complete),
            Verdict::Fail
        );
        assert_eq!(
            verdict(&results, crate::metrics::Status::Interrupted),
            Verdict::Inconclusive
        );
    }

    /// Gates no candidate can pass, or that cannot mean what they say, are refused with the
    /// field; the ones a person writes pass.
    #[test]
    fn unreachable_and_contradictory_gates_are_refused() {
        let tags = std::collections::BTreeSet::new();
        let gate = |metric: &str, bounds: [Option<f64>; 4]| GateConfig {
            metric: metric.into(),
            min: bounds[0],
            max: bounds[1],
            min_ratio: bounds[2],
            max_ratio: bounds[3],
            decide: None,
            critical: false,
        };
        for (g, says) in [
            (
                gate("accuracy", [Some(5.0), None, None, None]),
                "gate[0].min`: 5 is out of range",
            ),
            (
                gate("accuracy", [Some(95.0), None, None, None]),
                "write 0.95 for 95%",
            ),
            (
                gate("error_rate", [None, Some(f64::NAN), None, None]),
                "gate[0].max`: is not a number",
            ),
            (
                gate("faithfulness", [Some(0.5), None, None, None]),
                "1-5 scale",
            ),
            (
                gate("faithfulness", [None, Some(6.0), None, None]),
                "gate[0].max`: 6 is out of range",
            ),
            (
                gate("latency_p95_ms", [None, Some(f64::INFINITY), None, None]),
                "not a finite number",
            ),
            (
                gate("accuracy", [None, None, Some(95.0), None]),
                "gate[0].min_ratio`: 95 is out of range",
            ),
            (
                gate("accuracy", [None, None, Some(0.0), None]),
                "min_ratio = 0 always passes",
            ),
            (
                gate("latency_p95_ms", [None, None, None, Some(-1.0)]),
                "gate[0].max_ratio`: -1 is out of range",
            ),
            (
                gate("accuracy", [Some(0.9), Some(0.8), None, None]),
                "can never pass: min = 0.9 is above max = 0.8",
            ),
            (
                gate("cost_per_1k", [None, None, Some(1.2), Some(1.1)]),
                "min_ratio = 1.2 is above max_ratio = 1.1",
            ),
        ] {
            let msg = Gate::parse_all(&[g], Path::new("goldgate.toml"), &tags)
                .unwrap_err()
                .to_string();
            assert!(msg.contains(says), "{says}: {msg}");
        }
        for g in [
            gate("accuracy", [Some(0.8), Some(1.0), Some(0.95), None]),
            gate("faithfulness", [Some(4.0), None, None, None]),
            gate("latency_p95_ms", [None, Some(1500.0), None, Some(1.1)]),
            gate("error_rate", [None, Some(0.0), None, Some(1.0)]),
        ] {
            Gate::parse_all(&[g], Path::new("goldgate.toml"), &tags).unwrap();
        }
    }

    #[test]
    fn parse_errors_name_the_gate_and_the_fix() {
        let tags = ["billing"].into_iter().collect();
        let bad = vec![
            GateConfig {
                metric: "acuracy".into(),
                min: Some(0.5),
                max: None,
                min_ratio: None,
                max_ratio: None,
                decide: None,
                critical: false,
            },
            GateConfig {
                metric: "accuracy".into(),
                min: None,
                max: None,
                min_ratio: None,
                max_ratio: None,
                decide: None,
                critical: false,
            },
            GateConfig {
                metric: "accuracy[tag=shipping]".into(),
                min: Some(0.5),
                max: None,
                min_ratio: None,
                max_ratio: None,
                decide: None,
                critical: false,
            },
        ];
        let msg = Gate::parse_all(&bad, Path::new("goldgate.toml"), &tags)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("gate[0]`: unknown gate metric `acuracy`"),
            "{msg}"
        );
        assert!(
            msg.contains("gate[1]`: the gate on `accuracy` has no bound"),
            "{msg}"
        );
        assert!(
            msg.contains("no item of the golden set has the tag `shipping`"),
            "{msg}"
        );
        let ok = vec![GateConfig {
            metric: "accuracy[tag=billing]".into(),
            min: Some(0.5),
            max: None,
            min_ratio: Some(0.9),
            max_ratio: None,
            decide: None,
            critical: false,
        }];
        assert_eq!(
            Gate::parse_all(&ok, Path::new("g"), &tags).unwrap().len(),
            2
        );
    }
}

/// Properties of gates as goldgate.toml writes them and run.json stores them: any `[[gate]]`
/// table is a set of sane rules or a located error, a stored gate reads back as it was, and a
/// bound is monotone.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::metrics::Tally;

    /// Bounds as a careless or hostile file writes them.
    fn bound_value() -> impl Strategy<Value = Option<f64>> {
        proptest::option::of(prop_oneof![
            3 => 0.0..10.0f64,
            1 => proptest::num::f64::ANY,
            1 => Just(f64::NAN),
            1 => Just(f64::INFINITY),
            1 => Just(-0.0),
            1 => Just(1e308),
        ])
    }

    fn metric_text() -> impl Strategy<Value = String> {
        prop_oneof![
            proptest::sample::select(MetricKind::names().collect::<Vec<_>>())
                .prop_map(str::to_owned),
            proptest::sample::select(MetricKind::names().collect::<Vec<_>>())
                .prop_map(|n| format!("{n}[tag=billing]")),
            proptest::sample::select(MetricKind::names().collect::<Vec<_>>())
                .prop_map(|n| format!("{n}[tag=nowhere]")),
            "[a-z_\\[\\]=]{0,20}",
        ]
    }

    fn gate_config() -> impl Strategy<Value = GateConfig> {
        (
            metric_text(),
            bound_value(),
            bound_value(),
            bound_value(),
            bound_value(),
        )
            .prop_map(|(metric, min, max, min_ratio, max_ratio)| GateConfig {
                metric,
                min,
                max,
                min_ratio,
                max_ratio,
                decide: None,
                critical: false,
            })
    }

    fn bound() -> impl Strategy<Value = Bound> {
        (0..4u8, 0.0..1e6f64).prop_map(|(k, v)| match k {
            0 => Bound::Min(v),
            1 => Bound::Max(v),
            2 => Bound::MinRatio(v),
            _ => Bound::MaxRatio(v),
        })
    }

    fn accuracy(v: f64) -> Metrics {
        let mut m = Tally::default().metrics();
        m.accuracy = Some(v);
        m
    }

    proptest! {
        #[test]
        fn any_gate_tables_are_sane_rules_or_located_errors(
            configs in proptest::collection::vec(gate_config(), 0..5)
        ) {
            let tags = std::collections::BTreeSet::from(["billing"]);
            match Gate::parse_all(&configs, Path::new("goldgate.toml"), &tags) {
                Ok(gates) => {
                    for g in &gates {
                        let (Bound::Min(v) | Bound::Max(v) | Bound::MinRatio(v) | Bound::MaxRatio(v)) = g.bound;
                        prop_assert!(v.is_finite() && v >= 0.0, "{g:?}");
                    }
                    if !configs.is_empty() {
                        prop_assert!(gates.len() >= configs.len(), "every table gives a rule");
                    }
                }
                Err(Error::Input(problems)) => {
                    prop_assert!(!problems.is_empty());
                    for p in &problems {
                        prop_assert!(p.at.field.as_deref().is_some_and(|f| f.starts_with("gate[")), "{p}");
                        prop_assert!(p.fix.is_some(), "{p}");
                    }
                }
                Err(e) => prop_assert!(false, "not an input error: {e}"),
            }
        }

        #[test]
        fn a_stored_gate_reads_back_as_written(configs in proptest::collection::vec(gate_config(), 1..4)) {
            let tags = std::collections::BTreeSet::from(["billing"]);
            if let Ok(gates) = Gate::parse_all(&configs, Path::new("goldgate.toml"), &tags) {
                let json = serde_json::to_string(&gates).unwrap();
                prop_assert_eq!(serde_json::from_str::<Vec<Gate>>(&json).unwrap(), gates);
            }
        }

        #[test]
        fn a_better_candidate_never_does_worse(
            bound in bound(), current in 0.0..1e6f64, candidate in 0.0..1e6f64, step in 0.0..1e6f64,
        ) {
            let gate = Gate { metric: MetricRef::parse("accuracy").unwrap(), bound, decide: None, critical: false };
            let result = gate.evaluate_point(&accuracy(current), &accuracy(candidate));
            prop_assert_ne!(result.outcome, Outcome::Skipped);
            // Further in the direction the bound asks for.
            let better = match bound {
                Bound::Min(_) | Bound::MinRatio(_) => candidate + step,
                Bound::Max(_) | Bound::MaxRatio(_) => candidate - step,
            };
            if result.pass {
                prop_assert!(gate.evaluate_point(&accuracy(current), &accuracy(better)).pass, "{result:?} then {better}");
            }
        }
    }
}
