//! Promotion gates: rules on the candidate's metrics, absolute or relative to the current model,
//! and the verdict they give.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::GateConfig;
use crate::error::{Error, Location, Problem};
use crate::metrics::{MetricKind, MetricRef, Metrics};

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
}

/// The spec's default gate set, used when the evaluation names none.
pub fn default_gates() -> Vec<Gate> {
    let g = |name: &str, bound| Gate {
        metric: MetricRef::parse(name).expect("default gate metrics are valid"),
        bound,
    };
    vec![
        g("accuracy", Bound::MinRatio(0.95)),
        g("faithfulness", Bound::Min(4.0)),
        g("latency_p95_ms", Bound::MaxRatio(1.10)),
        g("error_rate", Bound::MaxRatio(1.0)),
    ]
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
        let mut gates = Vec::new();
        let mut problems = Vec::new();
        for (i, c) in configs.iter().enumerate() {
            let at = || Location::file(file).field(format!("gate[{i}]"));
            let Some(metric) = MetricRef::parse(&c.metric) else {
                let known: Vec<_> = MetricKind::names().collect();
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
            for b in &bounds {
                let (Bound::Min(v) | Bound::Max(v) | Bound::MinRatio(v) | Bound::MaxRatio(v)) = *b;
                if !v.is_finite() || v < 0.0 {
                    problems.push(
                        Problem::new(at(), format!("the bound {v} is not a non-negative number"))
                            .fix("use a number such as 0.95"),
                    );
                }
            }
            gates.extend(bounds.into_iter().map(|bound| Gate {
                metric: metric.clone(),
                bound,
            }));
        }
        if problems.is_empty() {
            Ok(gates)
        } else {
            Err(Error::Input(problems))
        }
    }

    pub fn evaluate(&self, current: &Metrics, candidate: &Metrics) -> GateResult {
        let cur = self.metric.value(current);
        let cand = self.metric.value(candidate);
        let limit = match self.bound {
            Bound::Min(v) | Bound::Max(v) => Some(v),
            Bound::MinRatio(r) | Bound::MaxRatio(r) => cur.map(|c| c * r),
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
        let note = note.map(str::to_owned);
        GateResult {
            metric: self.metric.clone(),
            rule: self.bound.to_string(),
            current: cur,
            candidate: cand,
            limit,
            pass: outcome != Outcome::Fail,
            outcome,
            note,
            bound: self.bound,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    /// Not applicable (no data either side); does not fail the verdict, and says why.
    Skipped,
}

/// One row of `summary.json`'s `gates`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GateResult {
    pub metric: MetricRef,
    pub rule: String,
    pub current: Option<f64>,
    pub candidate: Option<f64>,
    pub limit: Option<f64>,
    pub pass: bool,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub bound: Bound,
}

impl GateResult {
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
    /// The data cannot decide: a run that did not complete (interrupted, or a model answered
    /// nothing) never passes, whatever its partial gates say.
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

/// The verdict of a run: only a complete run can pass or fail by its gates.
pub fn verdict(results: &[GateResult], status: crate::metrics::Status) -> Verdict {
    if status != crate::metrics::Status::Complete {
        Verdict::Inconclusive
    } else if results.iter().all(|r| r.pass) {
        Verdict::Pass
    } else {
        Verdict::Fail
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
        }
    }

    #[test]
    fn ratio_gates_and_the_spec_example() {
        let r = gate("accuracy", Bound::MinRatio(0.95)).evaluate(
            &metrics(Some(0.85), None, None),
            &metrics(Some(0.88), None, None),
        );
        assert!(r.pass);
        assert!((r.limit.unwrap() - 0.8075).abs() < 1e-12);
        assert_eq!(r.rule, "candidate >= 0.95 x current");
        let r = gate("accuracy", Bound::MinRatio(0.95)).evaluate(
            &metrics(Some(0.85), None, None),
            &metrics(Some(0.80), None, None),
        );
        assert!(!r.pass);
    }

    #[test]
    fn exact_limit_passes_despite_float_rounding() {
        let r = gate("accuracy", Bound::MinRatio(0.95)).evaluate(
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
            g.evaluate(
                &metrics(None, Some(0.0), None),
                &metrics(None, Some(0.0), None)
            )
            .pass
        );
        assert!(
            !g.evaluate(
                &metrics(None, Some(0.0), None),
                &metrics(None, Some(0.01), None)
            )
            .pass
        );
        // A baseline with zero accuracy: any candidate accuracy is at least 0.95 x 0.
        let g = gate("accuracy", Bound::MinRatio(0.95));
        assert!(
            g.evaluate(
                &metrics(Some(0.0), None, None),
                &metrics(Some(0.0), None, None)
            )
            .pass
        );
    }

    #[test]
    fn no_context_anywhere_skips_faithfulness_without_failing() {
        let g = gate("faithfulness", Bound::Min(4.0));
        let r = g.evaluate(&metrics(None, None, None), &metrics(None, None, None));
        assert_eq!(r.outcome, Outcome::Skipped);
        assert!(r.pass);
        assert!(r.note.unwrap().contains("faithfulness is undefined"));
        assert!(
            !g.evaluate(
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
            .map(|g| g.evaluate(&cur, &cand))
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
            },
            GateConfig {
                metric: "accuracy".into(),
                min: None,
                max: None,
                min_ratio: None,
                max_ratio: None,
            },
            GateConfig {
                metric: "accuracy[tag=shipping]".into(),
                min: Some(0.5),
                max: None,
                min_ratio: None,
                max_ratio: None,
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
        }];
        assert_eq!(
            Gate::parse_all(&ok, Path::new("g"), &tags).unwrap().len(),
            2
        );
    }
}
