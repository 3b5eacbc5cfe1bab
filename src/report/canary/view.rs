//! The view both templates render ([`Page`]): every figure of the [`Analysis`] as the text it is
//! shown as, so report.html and report.md read the same.

use std::fmt::Write as _;

use serde::Serialize;

use super::charts::Charts;
use super::{Limits, bound_value, finite_or_infinity, p_text, statistic, thousands};
use crate::canary::Decision;
use crate::canary::analysis::{
    Analysis, ArmFigures, Arms, CanaryGate, Estimate, Mode, Percentiles,
};
use crate::gate::{Bound, Outcome};
use crate::metrics::MetricKind;
use crate::stats::Decide;

/// Names from the logs (tags, variants) are cut to this many characters, on one line.
const NAME_CHARS: usize = 120;
/// An example of a skipped line.
const EXAMPLE_CHARS: usize = 300;

/// What both templates render.
#[derive(Serialize)]
pub(super) struct Page {
    decision: &'static str,
    trustworthy: bool,
    /// What the title and the heading say after "goldgate canary:".
    headline: String,
    banner_class: &'static str,
    banner: String,
    reasons: Vec<String>,
    /// How the gates were judged, in a sentence.
    analysis: String,
    /// The per-arm intervals' level: `95%`.
    confidence: String,
    judge: String,
    window: String,
    gates: Vec<GateRow>,
    counts: CountsView,
    split: Option<SplitView>,
    figures: Vec<FigureRow>,
    shift: Option<String>,
    tag_columns: Vec<&'static str>,
    tags: Vec<TagRow>,
    tags_hidden: usize,
    looks: Vec<LookRow>,
    looks_hidden: usize,
    state_file: String,
    flag: Option<FlagView>,
    charts: Option<Charts>,
    version: &'static str,
}

#[derive(Serialize)]
struct GateRow {
    metric: String,
    critical: bool,
    rule: String,
    limit: String,
    current: String,
    candidate: String,
    /// The test statistic's estimate and interval, e.g. `× 1.18 [1.16, 1.20]`.
    statistic: String,
    /// What it is of, how it was computed, its p-value.
    method: String,
    outcome: &'static str,
    /// Kayenta's word for a failed gate: High or Low.
    judge: String,
    note: String,
}

#[derive(Serialize)]
struct CountsView {
    records: String,
    per_arm: [String; 2],
    users: Option<[String; 2]>,
    malformed: String,
    examples: Vec<String>,
    unknown_variants: Vec<(String, String)>,
    unknown_total: String,
    outside_window: String,
    invalid_values: Vec<(String, String)>,
    files: Vec<FileRow>,
    has_problems: bool,
}

#[derive(Serialize)]
struct FileRow {
    path: String,
    format: &'static str,
    lines: String,
}

#[derive(Serialize)]
struct SplitView {
    expected: String,
    observed: String,
    chi_square: String,
    p_value: String,
    mismatch: bool,
    verdict: String,
}

#[derive(Serialize)]
struct FigureRow {
    label: &'static str,
    current: String,
    candidate: String,
}

#[derive(Serialize)]
struct TagRow {
    tag: String,
    cells: Vec<String>,
}

#[derive(Serialize)]
struct LookRow {
    number: usize,
    at: String,
    requests: String,
    decision: String,
    dir: String,
}

#[derive(Serialize)]
struct FlagView {
    summary: String,
    fields: Vec<(String, String)>,
}

impl Page {
    pub(super) fn new(a: &Analysis, limits: Limits) -> Page {
        let (headline, banner_class, banner) = banner(a);
        let (tag_columns, tags, tags_hidden) = tag_rows(a, limits.tags);
        let (looks, looks_hidden, state_file) = look_rows(a, limits.looks);
        Page {
            decision: a.decision.as_str(),
            trustworthy: a.trustworthy,
            headline,
            banner_class,
            banner,
            reasons: a.reasons.clone(),
            analysis: analysis_note(a),
            confidence: format!("{}%", percent_number(a.confidence)),
            judge: if a.judge.results.iter().all(|r| r.classification == "Nodata") {
                "no Kayenta-style judge score yet: no gate was judged".to_owned()
            } else {
                format!(
                    "Kayenta-style judge score {:.0} ({})",
                    a.judge.score.score, a.judge.score.classification
                )
            },
            window: window(a),
            gates: a
                .gates
                .iter()
                .enumerate()
                .map(|(i, g)| gate_row(a, i, g))
                .collect(),
            counts: counts(a),
            split: a.split.as_ref().map(|s| SplitView {
                expected: format!("{:.2}%", s.expected_candidate_percent),
                observed: format!("{:.2}%", s.observed_candidate_percent),
                chi_square: format!("{:.2}", s.chi_square),
                p_value: p_text(s.p_value),
                mismatch: s.mismatch,
                verdict: if s.mismatch {
                    "requests are being lost or routed unevenly, so no comparison between the arms can be trusted".to_owned()
                } else {
                    "consistent with the configured split".to_owned()
                },
            }),
            figures: figure_rows(&a.arms, a.counts.users),
            shift: a.latency_shift.as_ref().map(|s| {
                let ms = |v: f64| finite_or_infinity(v, |v| format!("{v:+.1}"));
                format!(
                    "Hodges-Lehmann shift {} ms [{}, {}] ({:.0}% interval of Mann-Whitney's test, {}); a candidate request is slower than a current one with probability {:.1}%. Kayenta's classification: {}.",
                    ms(s.shift_ms),
                    ms(s.interval.low),
                    ms(s.interval.high),
                    crate::canary::analysis::KAYENTA_CONFIDENCE * 100.0,
                    p_text(s.p_value),
                    s.cles * 100.0,
                    s.classification
                )
            }),
            tag_columns,
            tags,
            tags_hidden,
            looks,
            looks_hidden,
            state_file,
            flag: a.flag.as_ref().map(flag_view),
            charts: limits.charts.then(|| Charts::new(a)),
            version: env!("CARGO_PKG_VERSION"),
        }
    }
}

fn banner(a: &Analysis) -> (String, &'static str, String) {
    let decision = a.decision.as_str();
    if !a.trustworthy {
        let why = if a.split.as_ref().is_some_and(|s| s.mismatch) {
            "untrustworthy: sample-ratio mismatch"
        } else {
            "untrustworthy"
        };
        return (
            format!("{decision} — {why}"),
            "fail",
            format!(
                "{} — the traffic split is not what was configured, so nothing measured can be trusted (exit code 3)",
                why.to_uppercase()
            ),
        );
    }
    let total = a.gates.len();
    let count = |o: Outcome| a.gates.iter().filter(|g| g.result.outcome == o).count();
    match a.decision {
        Decision::Promote => (
            decision.to_owned(),
            "pass",
            format!(
                "PROMOTE — every judged gate passed ({} of {total}; {} skipped for want of data)",
                total - count(Outcome::Skipped),
                count(Outcome::Skipped)
            ),
        ),
        Decision::Rollback => {
            let critical = a
                .gates
                .iter()
                .any(|g| g.critical && g.result.outcome == Outcome::Fail);
            (
                decision.to_owned(),
                "fail",
                format!(
                    "ROLLBACK — {} of {total} gates failed{} (exit code 1)",
                    count(Outcome::Fail),
                    if critical {
                        ", a critical one among them"
                    } else {
                        ""
                    }
                ),
            )
        }
        Decision::Continue => (
            decision.to_owned(),
            "warn",
            "CONTINUE — not decided yet: keep the canary running and collecting (exit code 4)"
                .to_owned(),
        ),
    }
}

fn analysis_note(a: &Analysis) -> String {
    match a.mode {
        Mode::Fixed => format!(
            "Fixed analysis of the whole window: {}% intervals, harm gates Holm-adjusted; gates decide from {} requests per arm.",
            percent_number(a.confidence),
            thousands(a.min_requests)
        ),
        Mode::Sequential => format!(
            "Sequential analysis{}: always-valid confidence sequences, each gate's at {}% (Bonferroni over {} gates, {}% overall), so looking again and again keeps the chance of a false rollback within {}%.",
            a.sequential
                .as_ref()
                .map(|s| format!(", look {}", s.looks.len()))
                .unwrap_or_default(),
            percent_number(a.gate_confidence),
            a.gates.len(),
            percent_number(a.confidence),
            percent_number(1.0 - a.confidence)
        ),
    }
}

fn window(a: &Analysis) -> String {
    let c = &a.counts;
    match (&c.first, &c.last) {
        (Some(first), Some(last)) => {
            format!("{} records from {first} to {last}", thousands(c.records))
        }
        _ => format!("{} records", thousands(c.records)),
    }
}

fn gate_row(a: &Analysis, i: usize, g: &CanaryGate) -> GateRow {
    let r = &g.result;
    let op = match r.bound {
        Bound::Min(_) | Bound::MinRatio(_) => "≥",
        Bound::Max(_) | Bound::MaxRatio(_) => "≤",
    };
    let (statistic, mut method) = statistic(r).unwrap_or_default();
    if g.n != [0, 0] {
        let _ = write!(
            method,
            "{}n = {} / {}",
            if method.is_empty() { "" } else { "; " },
            thousands(g.n[0]),
            thousands(g.n[1])
        );
    }
    let how = match r.decide {
        _ if r.outcome == Outcome::Skipped => None,
        Decide::Noninferiority => None,
        Decide::Harm => Some("fails only on a significant worsening (decide = harm)".to_owned()),
        Decide::Point => Some("decided on the point estimates (decide = point)".to_owned()),
    };
    let undecided = (r.outcome == Outcome::Inconclusive && r.note.is_none())
        .then_some(r.test.as_ref())
        .flatten()
        .map(|t| {
            format!(
                "its interval includes the bound ({}): more traffic would decide it",
                bound_value(r, t.null)
            )
        });
    GateRow {
        metric: r.metric.to_string(),
        critical: g.critical,
        rule: r.rule.clone(),
        limit: r
            .limit
            .map_or_else(String::new, |l| format!("{op} {}", r.format(Some(l)))),
        current: r.format(r.current),
        candidate: r.format(r.candidate),
        statistic,
        method,
        outcome: r.outcome.as_str(),
        // Kayenta's word where it says more than the outcome: which way a failed gate failed.
        judge: a
            .judge
            .results
            .get(i)
            .map(|j| j.classification.clone())
            .filter(|c| c == "High" || c == "Low")
            .unwrap_or_default(),
        note: [r.note.clone(), undecided, how]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("; "),
    }
}

fn counts(a: &Analysis) -> CountsView {
    let c = &a.counts;
    let unknown_total: u64 = c.unknown_variants.values().sum();
    CountsView {
        records: thousands(c.records),
        per_arm: [thousands(c.current), thousands(c.candidate)],
        users: (c.users != [0, 0]).then(|| c.users.map(thousands)),
        malformed: thousands(c.malformed),
        examples: c.examples.iter().map(|e| clip(e, EXAMPLE_CHARS)).collect(),
        unknown_variants: c
            .unknown_variants
            .iter()
            .map(|(name, n)| (clip(name, NAME_CHARS), thousands(*n)))
            .collect(),
        unknown_total: thousands(unknown_total),
        outside_window: thousands(c.outside_window),
        invalid_values: c
            .invalid_values
            .iter()
            .map(|(field, n)| (clip(field, NAME_CHARS), thousands(*n)))
            .collect(),
        files: a
            .files
            .iter()
            .map(|f| FileRow {
                path: f.path.display().to_string(),
                format: match f.format {
                    crate::canary::log::Format::Jsonl => "JSON lines",
                    crate::canary::log::Format::Csv => "CSV",
                    crate::canary::log::Format::Otel => "OTLP/JSON spans",
                },
                lines: thousands(f.lines),
            })
            .collect(),
        has_problems: c.malformed > 0 || unknown_total > 0 || !c.invalid_values.is_empty(),
    }
}

/// A figure with its interval, and how many observations (and users) it is over when that is not
/// every request.
fn estimate(kind: MetricKind, e: &Estimate, requests: u64) -> String {
    let mut s = format!(
        "{} {}",
        kind.format(e.value),
        kind.format_interval(e.interval)
    );
    let n = e.n.round() as u64;
    if n != requests {
        let _ = write!(s, ", n = {}", thousands(n));
    }
    if e.clusters > 0 && e.clusters as u64 != n {
        let _ = write!(s, " from {} users", thousands(e.clusters as u64));
    }
    s
}

fn figure_rows(arms: &Arms, users: [u64; 2]) -> Vec<FigureRow> {
    type Get<T> = fn(&ArmFigures) -> Option<&T>;
    let both = [&arms.current, &arms.candidate];
    let row = |label, cell: &dyn Fn(&ArmFigures) -> Option<String>| {
        let [current, candidate] = both.map(cell);
        (current.is_some() || candidate.is_some()).then(|| FigureRow {
            label,
            current: current.unwrap_or_else(|| "n/a".to_owned()),
            candidate: candidate.unwrap_or_else(|| "n/a".to_owned()),
        })
    };
    let mean = |label, kind: MetricKind, get: Get<Estimate>| {
        row(label, &|f| get(f).map(|e| estimate(kind, e, f.requests)))
    };
    let latency = |label, get: Get<Percentiles>, q: fn(&Percentiles) -> f64| {
        row(label, &|f| {
            get(f).map(|p| MetricKind::LatencyP50.format(q(p)))
        })
    };
    let lat: Get<Percentiles> = |f| f.latency_ms.as_ref();
    let ttft: Get<Percentiles> = |f| f.ttft_ms.as_ref();
    [
        row("requests", &|f| Some(thousands(f.requests))),
        (users != [0, 0]).then(|| FigureRow {
            label: "users",
            current: thousands(users[0]),
            candidate: thousands(users[1]),
        }),
        mean("error rate", MetricKind::ErrorRate, |f| {
            f.error_rate.as_ref()
        }),
        latency("latency p50", lat, |p| p.p50),
        latency("latency p90", lat, |p| p.p90),
        latency("latency p95", lat, |p| p.p95),
        latency("latency p99", lat, |p| p.p99),
        latency("latency mean", lat, |p| p.mean),
        latency("TTFT p50", ttft, |p| p.p50),
        latency("TTFT p95", ttft, |p| p.p95),
        latency("TTFT p99", ttft, |p| p.p99),
        mean("CSAT (1–5)", MetricKind::Csat, |f| f.csat.as_ref()),
        mean("thumbs-up rate", MetricKind::ThumbsUpRate, |f| {
            f.thumbs_up_rate.as_ref()
        }),
        mean("accuracy", MetricKind::Accuracy, |f| f.accuracy.as_ref()),
        mean("cost per 1,000 requests", MetricKind::CostPer1k, |f| {
            f.cost_per_1k.as_ref()
        }),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// One column of the per-tag table: its heading and how a tag's two arms read in it.
struct TagColumn {
    title: &'static str,
    cell: fn(&Arms) -> Option<String>,
}

fn pair(c: Option<String>, k: Option<String>) -> Option<String> {
    if c.is_none() && k.is_none() {
        return None;
    }
    let na = || "–".to_owned();
    Some(format!(
        "{} → {}",
        c.unwrap_or_else(na),
        k.unwrap_or_else(na)
    ))
}

fn mean_cell(
    kind: MetricKind,
    get: fn(&ArmFigures) -> Option<&Estimate>,
    a: &Arms,
) -> Option<String> {
    let f = |x: &ArmFigures| get(x).map(|e| kind.format(e.value));
    pair(f(&a.current), f(&a.candidate))
}

const TAG_COLUMNS: [TagColumn; 6] = [
    TagColumn {
        title: "error rate",
        cell: |a| mean_cell(MetricKind::ErrorRate, |f| f.error_rate.as_ref(), a),
    },
    TagColumn {
        title: "latency p50",
        cell: |a| {
            let f = |x: &ArmFigures| x.latency_ms.map(|p| MetricKind::LatencyP50.format(p.p50));
            pair(f(&a.current), f(&a.candidate))
        },
    },
    TagColumn {
        title: "latency p95",
        cell: |a| {
            let f = |x: &ArmFigures| x.latency_ms.map(|p| MetricKind::LatencyP95.format(p.p95));
            pair(f(&a.current), f(&a.candidate))
        },
    },
    TagColumn {
        title: "CSAT",
        cell: |a| mean_cell(MetricKind::Csat, |f| f.csat.as_ref(), a),
    },
    TagColumn {
        title: "thumbs-up rate",
        cell: |a| mean_cell(MetricKind::ThumbsUpRate, |f| f.thumbs_up_rate.as_ref(), a),
    },
    TagColumn {
        title: "accuracy",
        cell: |a| mean_cell(MetricKind::Accuracy, |f| f.accuracy.as_ref(), a),
    },
];

/// The per-tag table: the columns some tag has data for, the tags with the most requests first.
fn tag_rows(a: &Analysis, limit: usize) -> (Vec<&'static str>, Vec<TagRow>, usize) {
    let columns: Vec<&TagColumn> = TAG_COLUMNS
        .iter()
        .filter(|c| a.tags.values().any(|arms| (c.cell)(arms).is_some()))
        .collect();
    let mut tags: Vec<(&String, &Arms)> = a.tags.iter().collect();
    tags.sort_by_key(|(name, arms)| {
        (
            std::cmp::Reverse(arms.current.requests + arms.candidate.requests),
            name.as_str(),
        )
    });
    let hidden = tags.len().saturating_sub(limit);
    let rows = tags
        .into_iter()
        .take(limit)
        .map(|(name, arms)| {
            let mut cells = vec![format!(
                "{} / {}",
                thousands(arms.current.requests),
                thousands(arms.candidate.requests)
            )];
            cells.extend(
                columns
                    .iter()
                    .map(|c| (c.cell)(arms).unwrap_or_else(|| "–".to_owned())),
            );
            TagRow {
                tag: clip(name, NAME_CHARS),
                cells,
            }
        })
        .collect();
    let mut titles = vec!["requests (current / candidate)"];
    titles.extend(columns.iter().map(|c| c.title));
    (titles, rows, hidden)
}

fn look_rows(a: &Analysis, limit: usize) -> (Vec<LookRow>, usize, String) {
    let Some(s) = &a.sequential else {
        return (Vec::new(), 0, String::new());
    };
    let hidden = s.looks.len().saturating_sub(limit);
    let rows = s
        .looks
        .iter()
        .enumerate()
        .skip(hidden)
        .map(|(i, l)| LookRow {
            number: i + 1,
            at: l.at.clone(),
            requests: format!(
                "{} / {}",
                thousands(l.requests[0]),
                thousands(l.requests[1])
            ),
            decision: l.decision.as_str().to_owned(),
            dir: l.dir.clone(),
        })
        .collect();
    (rows, hidden, s.state_file.clone())
}

/// `decision.json`'s `flag`: what `goldgate canary --flag-file` changed, in a sentence, and every
/// field as it is.
fn flag_view(v: &serde_json::Value) -> FlagView {
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "none".to_owned(),
        v => v.to_string(),
    };
    let fields = v
        .as_object()
        .map(|o| o.iter().map(|(k, v)| (k.clone(), text(v))).collect())
        .unwrap_or_else(|| vec![("flag".to_owned(), text(v))]);
    let get = |k: &str| v.get(k).filter(|v| !v.is_null()).map(text);
    let summary = match (get("key"), get("share_after")) {
        (Some(key), Some(after)) => format!(
            "Flag {key}{}: the candidate's share {}{after}%, default variant {}.",
            get("file").map(|f| format!(" in {f}")).unwrap_or_default(),
            match get("share_before") {
                Some(b) if b == after => "stays at ".to_owned(),
                Some(b) => format!("went from {b}% to "),
                None => "is now ".to_owned(),
            },
            match (get("default_before"), get("default_after")) {
                (Some(b), Some(a)) if b != a => format!("{b} → {a}"),
                (_, Some(a)) => a,
                _ => "unchanged".to_owned(),
            }
        ),
        _ => "The flag file was changed.".to_owned(),
    };
    FlagView { summary, fields }
}

/// Text from the logs, on one line and at most `max` characters.
fn clip(text: &str, max: usize) -> String {
    crate::text::ellipsize(text, max)
}

/// A level as a percentage to a tenth, without a trailing `.0`: 0.95 → `95`, 0.98333 → `98.3`.
fn percent_number(level: f64) -> f64 {
    (level * 1000.0).round() / 10.0
}
