//! The canary analysis as people read it: `report.html` (per-arm latency distributions overlaid,
//! CSAT and feedback bars, the metrics per time interval), `report.md`, `junit.xml` (one test
//! case per gate) and the terminal summary. Everything shown comes from `decision.json`'s
//! [`Analysis`].
//!
//! The HTML and the Markdown are rendered by tera from one view ([`Page`]) of precomputed strings,
//! so numbers read the same in both ([`MetricKind::format`]). Both templates escape every value
//! they print: the HTML with tera's HTML escaping, the Markdown with [`md_escape`], so a tag, a
//! variant, an example line or a path from the logs is shown as the text it is and never becomes
//! markup, a link or a table cell of its own. The HTML has no script at all, and says so in its
//! Content-Security-Policy.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Serialize;

use crate::canary::Decision;
use crate::canary::analysis::{
    Analysis, ArmFigures, Arms, BucketFigures, CanaryGate, Distributions, Estimate, Mode,
    Percentiles, Timeline,
};
use crate::gate::{Bound, GateResult, Outcome};
use crate::metrics::MetricKind;
use crate::stats::Decide;
use crate::text::printable;

const HTML_TEMPLATE: &str = include_str!("templates/canary.html");
const MD_TEMPLATE: &str = include_str!("templates/canary.md");

/// Names from the logs (tags, variants) are cut to this many characters, on one line.
const NAME_CHARS: usize = 120;
/// An example of a skipped line.
const EXAMPLE_CHARS: usize = 300;

/// How much of the long lists a view shows; the rest is in `decision.json`.
#[derive(Clone, Copy)]
struct Limits {
    /// Tags, most requests first.
    tags: usize,
    /// Sequential looks, latest last.
    looks: usize,
    charts: bool,
}

const HTML_LIMITS: Limits = Limits {
    tags: 200,
    looks: 200,
    charts: true,
};
/// report.md goes into pull-request comments and step summaries: short lists, no charts.
const MD_LIMITS: Limits = Limits {
    tags: 30,
    looks: 20,
    charts: false,
};

/// Write the three reports into `dir`; returns the paths written.
pub fn write(dir: &Path, analysis: &Analysis) -> anyhow::Result<Vec<PathBuf>> {
    let files = [
        ("report.html", html(analysis)?),
        ("report.md", markdown(analysis)?),
        ("junit.xml", junit(analysis)),
    ];
    let mut written = Vec::with_capacity(files.len());
    for (name, body) in files {
        let path = dir.join(name);
        // Beside and renamed into place, as a run's reports are: a reader never sees half a file.
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, body)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .with_context(|| format!("cannot write {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

fn html(analysis: &Analysis) -> anyhow::Result<String> {
    let mut tera = tera::Tera::new();
    tera.autoescape_on([".html"]);
    tera.add_raw_template("canary.html", HTML_TEMPLATE)?;
    let ctx = tera::Context::from_serialize(&Page::new(analysis, HTML_LIMITS))?;
    Ok(tera.render("canary.html", &ctx)?)
}

fn markdown(analysis: &Analysis) -> anyhow::Result<String> {
    let mut tera = tera::Tera::new();
    // Every value printed in the Markdown goes through `md_escape`, as every value in the HTML
    // goes through HTML escaping: the template writes the structure, values never do.
    tera.autoescape_on([".md"]);
    tera.set_escape_fn(md_escape);
    tera.add_raw_template("canary.md", MD_TEMPLATE)?;
    let ctx = tera::Context::from_serialize(&Page::new(analysis, MD_LIMITS))?;
    Ok(tera.render("canary.md", &ctx)?)
}

/// The terminal summary: one line per gate, the split check, the decision and its reasons.
pub fn terminal(analysis: &Analysis) -> String {
    let mut out = String::new();
    let rows: Vec<(String, String, String)> = analysis
        .gates
        .iter()
        .map(|g| {
            let r = &g.result;
            let name = format!(
                "{}{}",
                printable(&r.metric.to_string()),
                if g.critical { " (critical)" } else { "" }
            );
            let values = format!("{} -> {}", r.format(r.current), r.format(r.candidate));
            (name, values, outcome_word(r.outcome).to_owned())
        })
        .collect();
    let name_w = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
    let values_w = rows.iter().map(|r| r.1.chars().count()).max().unwrap_or(0);
    for (g, (name, values, outcome)) in analysis.gates.iter().zip(&rows) {
        let mut line = format!("{name:<name_w$}  {values:<values_w$}  {outcome}");
        if let Some((value, _)) = statistic(&g.result) {
            let _ = write!(line, "  {value}");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    if let Some(s) = &analysis.split {
        let _ = writeln!(
            out,
            "split: candidate {:.2}% of requests, {:.2}% configured ({}){}",
            s.observed_candidate_percent,
            s.expected_candidate_percent,
            p_text(s.p_value),
            if s.mismatch {
                " — SAMPLE-RATIO MISMATCH"
            } else {
                ""
            }
        );
    }
    let _ = writeln!(
        out,
        "decision: {}{}",
        analysis.decision.as_str(),
        if analysis.trustworthy {
            ""
        } else {
            " (untrustworthy: exit code 3)"
        }
    );
    for reason in &analysis.reasons {
        let _ = writeln!(out, "  - {}", printable(reason));
    }
    out
}

fn outcome_word(o: Outcome) -> &'static str {
    match o {
        Outcome::Pass => "pass",
        Outcome::Fail => "FAIL",
        Outcome::Inconclusive => "inconclusive",
        Outcome::Skipped => "skipped",
    }
}

// ---------------------------------------------------------------------------------------------
// The view both templates render.

#[derive(Serialize)]
struct Page {
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
    fn new(a: &Analysis, limits: Limits) -> Page {
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
                let ms = |v: f64| {
                    if v.is_finite() {
                        format!("{v:+.1}")
                    } else if v > 0.0 {
                        "∞".to_owned()
                    } else {
                        "-∞".to_owned()
                    }
                };
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

/// A gate's test statistic with its interval (`× 1.18 [1.16, 1.20]`, `+4.0 [+2.9, +5.1] pts`,
/// `2199 ms [2150, 2250]`), and what it is, how it was computed and its p-value.
fn statistic(r: &GateResult) -> Option<(String, String)> {
    let t = r.test.as_ref()?;
    let kind = r.metric.kind;
    let value = match t.statistic.as_str() {
        "candidate / current" => format!(
            "× {} [{}, {}]",
            ratio(t.estimate),
            ratio(t.interval.low),
            ratio(t.interval.high)
        ),
        "candidate" => format!(
            "{} {}",
            kind.format(t.estimate),
            kind.format_interval(t.interval)
        ),
        _ => kind
            .format_difference(t.estimate, t.interval)
            .replace("+inf", "∞")
            .replace("-inf", "-∞"),
    };
    let mut method = format!("{}; {}", t.statistic.replace(" x ", " × "), t.method);
    if let Some(p) = t.p_value {
        let _ = write!(method, "; {}", p_text(p));
    }
    if let Some(p) = t.p_adjusted {
        let _ = write!(method, " (Holm-adjusted: {})", p_text(p));
    }
    Some((value, method))
}

/// `p = 0.44`, `p < 0.0001`.
fn p_text(p: f64) -> String {
    let p = super::format_p(p);
    if p.starts_with('<') {
        format!("p {p}")
    } else {
        format!("p = {p}")
    }
}

fn ratio(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.2}")
    } else if v > 0.0 {
        "∞".to_owned()
    } else {
        "-∞".to_owned()
    }
}

/// The value of a gate's statistic at its bound, in the statistic's unit.
fn bound_value(r: &GateResult, null: f64) -> String {
    match r.test.as_ref().map(|t| t.statistic.as_str()) {
        Some("candidate / current") => format!("× {}", ratio(null)),
        Some("candidate") => r.metric.kind.format(null),
        _ => "0".to_owned(),
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

/// 12345 → `12,345`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Text from the logs, on one line and at most `max` characters.
fn clip(text: &str, max: usize) -> String {
    crate::text::ellipsize(text, max)
}

// ---------------------------------------------------------------------------------------------
// Charts: inline SVG, every coordinate computed here, so the template only places elements.

#[derive(Serialize)]
struct Charts {
    latency: Option<Overlay>,
    bars: Vec<Bars>,
    timeline: Vec<LineChart>,
    /// The timeline's interval width, in words.
    interval: String,
}

/// A chart's canvas: the SVG's size, the plot area inside it, and the axes' ticks.
#[derive(Serialize)]
struct Frame {
    width: f64,
    height: f64,
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
    x_ticks: Vec<Tick>,
    y_ticks: Vec<Tick>,
}

#[derive(Serialize)]
struct Tick {
    at: f64,
    label: String,
    /// How an x tick's label is anchored: `middle`, or `end` near the right edge, so it stays
    /// inside the chart.
    anchor: &'static str,
}

impl Tick {
    fn x(frame: &Frame, at: f64, label: String) -> Tick {
        // About 6 px per character at 11 px.
        let half = label.chars().count() as f64 * 3.2;
        let anchor = if at + half > frame.width {
            "end"
        } else if at - half < 0.0 {
            "start"
        } else {
            "middle"
        };
        Tick { at, label, anchor }
    }
}

impl Frame {
    fn new(width: f64, height: f64) -> Frame {
        Frame {
            width,
            height,
            left: 64.0,
            right: width - 20.0,
            top: 14.0,
            bottom: height - 28.0,
            x_ticks: Vec::new(),
            y_ticks: Vec::new(),
        }
    }

    /// x of a fraction of the plot's width.
    fn x(&self, f: f64) -> f64 {
        round1(self.left + f.clamp(0.0, 1.0) * (self.right - self.left))
    }

    /// y of a fraction of the plot's height, from the bottom.
    fn y(&self, f: f64) -> f64 {
        round1(self.bottom - f.clamp(0.0, 1.0) * (self.bottom - self.top))
    }

    /// Horizontal grid lines at round values of a linear axis from `lo` to `hi`; only at whole
    /// numbers for a count.
    fn y_axis(&mut self, lo: f64, hi: f64, whole: bool, label: impl Fn(f64) -> String) {
        self.y_ticks = nice_ticks(lo, hi, 5)
            .into_iter()
            .filter(|v| !whole || v.fract() == 0.0)
            .map(|v| Tick {
                at: self.y((v - lo) / (hi - lo)),
                label: label(v),
                anchor: "end",
            })
            .collect();
    }
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// Both arms' latency histograms on the shared log-spaced bins, each as shares of its own
/// requests (a 5% canary is drawn on the scale of a 95% control), as semi-transparent steps.
#[derive(Serialize)]
struct Overlay {
    frame: Frame,
    /// The SVG path of each arm's steps, `[current, candidate]`; empty for an arm with none.
    paths: [String; 2],
    /// Each arm's p95, as a dashed vertical line.
    p95: [Option<f64>; 2],
    n: [String; 2],
    note: String,
}

fn overlay(d: &Distributions, arms: &Arms) -> Option<Overlay> {
    let edges = &d.latency_edges;
    let bins = edges.len().checked_sub(1)?;
    let totals = [0, 1].map(|a| d.latency[a].iter().take(bins).sum::<u64>());
    if bins == 0 || totals == [0, 0] {
        return None;
    }
    let shares = [0, 1].map(|a| {
        d.latency[a]
            .iter()
            .take(bins)
            .map(|&c| c as f64 / totals[a].max(1) as f64)
            .collect::<Vec<f64>>()
    });
    let top = shares.iter().flatten().copied().fold(0.0, f64::max) * 1.1;
    let top = if top > 0.0 { top } else { 1.0 };
    let (lo, hi) = (edges[0], edges[bins]);
    if !(lo > 0.0 && hi > lo) {
        return None;
    }
    let span = (hi / lo).ln();
    let mut frame = Frame::new(1100.0, 300.0);
    let fx = |ms: f64| (ms / lo).ln() / span;
    frame.y_axis(0.0, top, false, percent_label);
    frame.x_ticks = log_ticks(lo, hi)
        .into_iter()
        .map(|v| Tick::x(&frame, frame.x(fx(v)), MetricKind::LatencyP50.format(v)))
        .collect();
    let paths = [0, 1].map(|a| {
        if totals[a] == 0 {
            return String::new();
        }
        let mut p = format!("M{},{}", frame.x(0.0), frame.bottom);
        for (i, s) in shares[a].iter().enumerate() {
            let y = frame.y(s / top);
            let _ = write!(
                p,
                " L{},{y} L{},{y}",
                frame.x(fx(edges[i])),
                frame.x(fx(edges[i + 1]))
            );
        }
        let _ = write!(p, " L{},{} Z", frame.x(1.0), frame.bottom);
        p
    });
    let p95 = [&arms.current, &arms.candidate].map(|f| {
        f.latency_ms
            .map(|p| p.p95)
            .filter(|&v| v >= lo && v <= hi)
            .map(|v| frame.x(fx(v)))
    });
    Some(Overlay {
        note: format!(
            "{} log-spaced bins from {} to {}; each arm's share of its own requests, so arms of any size compare. The first and last bins also hold everything below and above.",
            bins,
            MetricKind::LatencyP50.format(lo),
            MetricKind::LatencyP50.format(hi)
        ),
        frame,
        paths,
        p95,
        n: totals.map(thousands),
    })
}

/// Grouped bars: per category, each arm's share of its own answers.
#[derive(Serialize)]
struct Bars {
    id: &'static str,
    title: &'static str,
    frame: Frame,
    groups: Vec<BarGroup>,
    n: [String; 2],
}

#[derive(Serialize)]
struct BarGroup {
    label: String,
    center: f64,
    bars: [Bar; 2],
}

#[derive(Serialize)]
struct Bar {
    x: f64,
    y: f64,
    width: f64,
    height: f64,
    /// The share, printed above the bar.
    label: String,
    /// For the tooltip: the count behind it.
    title: String,
}

fn bars(
    id: &'static str,
    title: &'static str,
    labels: &[&str],
    counts: [&[u64]; 2],
) -> Option<Bars> {
    let totals = counts.map(|c| c.iter().sum::<u64>());
    if totals == [0, 0] {
        return None;
    }
    let share = |a: usize, i: usize| counts[a][i] as f64 / totals[a].max(1) as f64;
    let top = (0..2)
        .flat_map(|a| (0..labels.len()).map(move |i| (a, i)))
        .map(|(a, i)| share(a, i))
        .fold(0.0, f64::max)
        * 1.15;
    let top = if top > 0.0 { top } else { 1.0 };
    let mut frame = Frame::new(540.0, 230.0);
    frame.y_axis(0.0, top, false, percent_label);
    let slot = (frame.right - frame.left) / labels.len() as f64;
    let width = round1((slot * 0.34).min(48.0));
    let groups = labels
        .iter()
        .enumerate()
        .map(|(i, label)| {
            let center = round1(frame.left + slot * (i as f64 + 0.5));
            let bars = [0, 1].map(|a| {
                let s = share(a, i);
                let y = frame.y(s / top);
                Bar {
                    x: if a == 0 {
                        round1(center - width - 1.0)
                    } else {
                        round1(center + 1.0)
                    },
                    y,
                    width,
                    height: round1(frame.bottom - y),
                    label: if totals[a] == 0 {
                        String::new()
                    } else {
                        format!("{:.0}%", s * 100.0)
                    },
                    title: format!(
                        "{}: {} of {} ({:.1}%)",
                        ["current", "candidate"][a],
                        thousands(counts[a][i]),
                        thousands(totals[a]),
                        s * 100.0
                    ),
                }
            });
            BarGroup {
                label: (*label).to_owned(),
                center,
                bars,
            }
        })
        .collect();
    Some(Bars {
        id,
        title,
        frame,
        groups,
        n: totals.map(thousands),
    })
}

/// One metric per time interval, both arms as lines.
#[derive(Serialize)]
struct LineChart {
    id: &'static str,
    title: &'static str,
    frame: Frame,
    /// SVG paths, `[current, candidate]`; a gap in the data starts a new segment.
    paths: [String; 2],
    /// Markers: at each point when there are few enough to see, else at the lone points.
    points: [Vec<(f64, f64)>; 2],
}

struct Series {
    id: &'static str,
    title: &'static str,
    value: fn(&BucketFigures) -> Option<f64>,
    label: fn(f64) -> String,
    /// A fixed range for the y axis (CSAT's 1–5); else from 0 to the largest value.
    range: Option<(f64, f64)>,
    /// Counts: ticks at whole numbers only.
    whole: bool,
}

const SERIES: [Series; 5] = [
    Series {
        id: "timeline-requests",
        title: "Requests per interval",
        value: |b| Some(b.requests as f64),
        label: |v| thousands(v.round() as u64),
        range: None,
        whole: true,
    },
    Series {
        id: "timeline-error-rate",
        title: "Error rate",
        value: |b| b.error_rate,
        label: percent_label,
        range: None,
        whole: false,
    },
    Series {
        id: "timeline-latency-p95",
        title: "Latency p95",
        value: |b| b.latency_p95_ms,
        label: |v| {
            if v == 0.0 {
                "0 ms".to_owned()
            } else {
                MetricKind::LatencyP95.format(v)
            }
        },
        range: None,
        whole: false,
    },
    Series {
        id: "timeline-csat",
        title: "CSAT (mean of the interval)",
        value: |b| b.csat,
        label: |v| format!("{v:.1}"),
        range: Some((1.0, 5.0)),
        whole: false,
    },
    Series {
        id: "timeline-thumbs",
        title: "Thumbs-up rate",
        value: |b| b.thumbs_up_rate,
        label: percent_label,
        range: None,
        whole: false,
    },
];

/// Markers are drawn at each point up to this many intervals.
const MARKED_POINTS: usize = 60;

fn timeline(t: &Timeline, arms: &Arms) -> Vec<LineChart> {
    let rfc = &time::format_description::well_known::Rfc3339;
    let Some(starts) = t
        .buckets
        .iter()
        .map(|b| {
            time::OffsetDateTime::parse(&b.start, rfc)
                .ok()
                .map(|d| d.unix_timestamp() as f64)
        })
        .collect::<Option<Vec<f64>>>()
    else {
        return Vec::new();
    };
    let (Some(&t0), Some(&last)) = (starts.first(), starts.last()) else {
        return Vec::new();
    };
    let width = t.width_s.max(1.0);
    let t1 = last + width;
    // The logs carry no errors: every bucket's error rate would be a meaningless 0.
    let errors = arms.current.error_rate.is_some() || arms.candidate.error_rate.is_some();
    SERIES
        .iter()
        .filter(|s| errors || s.id != "timeline-error-rate")
        .filter_map(|s| {
            let values: [Vec<Option<f64>>; 2] = [
                t.buckets.iter().map(|b| (s.value)(&b.current)).collect(),
                t.buckets.iter().map(|b| (s.value)(&b.candidate)).collect(),
            ];
            let max = values
                .iter()
                .flatten()
                .flatten()
                .copied()
                .fold(f64::NAN, f64::max);
            if max.is_nan() {
                return None;
            }
            let (lo, hi) = s
                .range
                .unwrap_or((0.0, if max > 0.0 { max * 1.1 } else { 1.0 }));
            let mut frame = Frame::new(540.0, 210.0);
            frame.y_axis(lo, hi, s.whole, s.label);
            frame.x_ticks = time_ticks(t0, t1)
                .into_iter()
                .map(|(at, label)| Tick::x(&frame, frame.x((at - t0) / (t1 - t0)), label))
                .collect();
            // Each arm's runs of consecutive intervals with a value.
            let segments = [0, 1].map(|a| {
                let mut runs: Vec<Vec<(f64, f64)>> = Vec::new();
                let mut previous: Option<f64> = None;
                for (v, &start) in values[a].iter().zip(&starts) {
                    let Some(v) = v else {
                        previous = None;
                        continue;
                    };
                    // An interval with no records at all has no bucket: the line breaks there too.
                    if !previous.is_some_and(|s| start - s < width * 1.5) {
                        runs.push(Vec::new());
                    }
                    previous = Some(start);
                    let x = frame.x((start + width / 2.0 - t0) / (t1 - t0));
                    let y = frame.y((v - lo) / (hi - lo));
                    runs.last_mut().expect("a run was started").push((x, y));
                }
                runs
            });
            let paths = segments.each_ref().map(|runs| {
                let mut p = String::new();
                for run in runs.iter().filter(|r| r.len() > 1) {
                    for (i, (x, y)) in run.iter().enumerate() {
                        let _ = write!(p, "{}{x},{y} ", if i == 0 { 'M' } else { 'L' });
                    }
                }
                p.trim_end().to_owned()
            });
            // Every point when there are few; else the lone ones, which no line would show.
            let points = segments.map(|runs| {
                runs.into_iter()
                    .filter(|r| r.len() == 1 || t.buckets.len() <= MARKED_POINTS)
                    .flatten()
                    .collect()
            });
            Some(LineChart {
                id: s.id,
                title: s.title,
                frame,
                paths,
                points,
            })
        })
        .collect()
}

impl Charts {
    fn new(a: &Analysis) -> Charts {
        let d = &a.distributions;
        let csat = bars(
            "csat-bars",
            "CSAT ratings",
            &["1", "2", "3", "4", "5"],
            [&d.csat[0], &d.csat[1]],
        );
        let thumbs = bars(
            "thumbs-bars",
            "Thumbs down / up",
            &["down", "up"],
            [&d.thumbs[0], &d.thumbs[1]],
        );
        Charts {
            latency: overlay(d, &a.arms),
            bars: csat.into_iter().chain(thumbs).collect(),
            timeline: timeline(&a.timeline, &a.arms),
            interval: duration(a.timeline.width_s),
        }
    }
}

fn duration(s: f64) -> String {
    let s = s.round() as u64;
    match s {
        s if s >= 86_400 && s % 86_400 == 0 => format!("{} d", s / 86_400),
        s if s >= 3_600 && s % 3_600 == 0 => format!("{} h", s / 3_600),
        s if s >= 60 && s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// A level as a percentage to a tenth, without a trailing `.0`: 0.95 → `95`, 0.98333 → `98.3`.
fn percent_number(level: f64) -> f64 {
    (level * 1000.0).round() / 10.0
}

fn percent_label(v: f64) -> String {
    let pct = v * 100.0;
    if pct == 0.0 || pct >= 10.0 || (pct - pct.round()).abs() < 1e-9 {
        format!("{pct:.0}%")
    } else if pct >= 1.0 {
        format!("{pct:.1}%")
    } else {
        format!("{pct:.2}%")
    }
}

/// About `target` round values (1, 2 or 5 × 10ⁿ apart) from `lo` to `hi`.
fn nice_ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite() && hi > lo) {
        return Vec::new();
    }
    let raw = (hi - lo) / target.max(1) as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|&s| s >= raw / 1.3)
        .unwrap_or(10.0 * magnitude);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

/// Round values for a log axis from `lo` to `hi`: 1, 2, 5 × 10ⁿ, thinned to at most eight;
/// linear round values when the range is too narrow for those.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mut ticks = Vec::new();
    let mut decade = 10f64.powf(lo.log10().floor());
    while decade <= hi {
        for m in [1.0, 2.0, 5.0] {
            let v = m * decade;
            if v >= lo && v <= hi {
                ticks.push(v);
            }
        }
        decade *= 10.0;
    }
    if ticks.len() > 8 {
        ticks.retain(|v| (v.log10() - v.log10().round()).abs() < 1e-9);
    }
    if ticks.len() < 3 {
        return nice_ticks(lo, hi, 4);
    }
    ticks
}

/// Time ticks (unix seconds) on round UTC boundaries, at most about seven, labelled `18:00`, or
/// `11-30 18:00` when the range spans days.
fn time_ticks(t0: f64, t1: f64) -> Vec<(f64, String)> {
    const STEPS: [f64; 14] = [
        60.0,
        300.0,
        600.0,
        900.0,
        1800.0,
        3600.0,
        7200.0,
        10_800.0,
        21_600.0,
        43_200.0,
        86_400.0,
        172_800.0,
        604_800.0,
        2_592_000.0,
    ];
    let span = t1 - t0;
    if span.is_nan() || span <= 0.0 {
        return Vec::new();
    }
    let step = STEPS
        .iter()
        .copied()
        .find(|s| span / s <= 7.0)
        .unwrap_or(span / 6.0);
    let days = span >= 86_400.0;
    let short = time::macros::format_description!("[hour]:[minute]");
    let long = time::macros::format_description!("[month]-[day] [hour]:[minute]");
    let mut ticks = Vec::new();
    let mut t = (t0 / step).ceil() * step;
    while t <= t1 {
        if let Ok(at) = time::OffsetDateTime::from_unix_timestamp(t as i64) {
            let label = if days {
                at.format(&long)
            } else {
                at.format(&short)
            };
            ticks.push((t, label.unwrap_or_default()));
        }
        t += step;
    }
    ticks
}

// ---------------------------------------------------------------------------------------------
// Markdown escaping and JUnit.

/// tera's escape function for report.md: a value from the logs is shown as written, on one line,
/// and makes no HTML (`<`, `>`, `&` as entities), link, image, emphasis, code, table cell break,
/// heading or math of its own (their punctuation backslash-escaped), nor an `@mention` (a
/// zero-width space after the `@`, as an entity). Control and invisible characters are shown as
/// `\u{1b}`. The same rules as report.md of a run (`report::markdown`).
fn md_escape(input: &str, buf: &mut dyn std::io::Write) -> std::io::Result<()> {
    let mut out = String::with_capacity(input.len() + 8);
    let mut chars = input.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '#' | '~' | '!' | '$' => {
                out.push('\\');
                out.push(c);
            }
            '@' => {
                out.push('@');
                if chars.peek().is_some_and(char::is_ascii_alphanumeric) {
                    out.push_str("&#8203;");
                }
            }
            c if crate::text::breaks_line(c) => out.push(' '),
            c if c.is_control() || crate::text::is_hidden(c) => {
                out.push_str(&crate::text::escaped(c));
            }
            c => out.push(c),
        }
    }
    buf.write_all(out.as_bytes())
}

/// `junit.xml`: a suite `goldgate canary` with one case per gate (a failed gate fails, a skipped
/// or undecided one is skipped) and a case `sample-ratio`, failed on a mismatch.
fn junit(a: &Analysis) -> String {
    let fails = a
        .gates
        .iter()
        .filter(|g| g.result.outcome == Outcome::Fail)
        .count()
        + usize::from(a.split.as_ref().is_some_and(|s| s.mismatch));
    let skipped = a
        .gates
        .iter()
        .filter(|g| matches!(g.result.outcome, Outcome::Skipped | Outcome::Inconclusive))
        .count()
        + usize::from(a.split.is_none());
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"goldgate canary\" tests=\"{}\" failures=\"{fails}\" skipped=\"{skipped}\" errors=\"0\">",
        a.gates.len() + 1
    );
    let _ = writeln!(
        x,
        "  <testsuite name=\"goldgate canary\" tests=\"{}\" failures=\"{fails}\" skipped=\"{skipped}\" errors=\"0\"{}>",
        a.gates.len() + 1,
        a.counts
            .last
            .as_deref()
            .map(|t| format!(" timestamp=\"{}\"", xml_attr(junit_timestamp(t))))
            .unwrap_or_default()
    );
    let _ = writeln!(
        x,
        "    <properties>\n      <property name=\"decision\" value=\"{}\"/>\n      <property name=\"trustworthy\" value=\"{}\"/>\n      <property name=\"records\" value=\"{}\"/>\n      <property name=\"requests\" value=\"current {} / candidate {}\"/>\n    </properties>",
        a.decision.as_str(),
        a.trustworthy,
        a.counts.records,
        a.counts.current,
        a.counts.candidate
    );
    for g in &a.gates {
        let r = &g.result;
        let name = format!("{} {}", r.metric, r.rule);
        let numbers = format!(
            "current {} -> candidate {} (limit {})",
            r.format(r.current),
            r.format(r.candidate),
            r.format(r.limit)
        );
        let _ = write!(
            x,
            "    <testcase classname=\"goldgate.canary\" name=\"{}\" time=\"0\"",
            xml_attr(&name)
        );
        let detail = || {
            let mut d = numbers.clone();
            if let Some((value, method)) = statistic(r) {
                let _ = write!(d, "\n{value}\n{method}");
            }
            if let Some(note) = &r.note {
                let _ = write!(d, "\n{note}");
            }
            d
        };
        match r.outcome {
            Outcome::Pass => x.push_str("/>\n"),
            Outcome::Fail => {
                let _ = writeln!(
                    x,
                    ">\n      <failure type=\"{}\" message=\"{}\">{}</failure>\n    </testcase>",
                    if g.critical { "critical gate" } else { "gate" },
                    xml_attr(&numbers),
                    xml_text(&detail())
                );
            }
            Outcome::Inconclusive | Outcome::Skipped => {
                let why = r.note.clone().unwrap_or_else(|| match r.test.as_ref() {
                    Some(t) => format!(
                        "undecided: its interval includes the bound ({}); more traffic would decide it",
                        bound_value(r, t.null)
                    ),
                    None => "not decided".to_owned(),
                });
                let _ = writeln!(
                    x,
                    ">\n      <skipped message=\"{}: {}\"/>\n    </testcase>",
                    r.outcome.as_str().to_uppercase(),
                    xml_attr(&why)
                );
            }
        }
    }
    x.push_str("    <testcase classname=\"goldgate.canary\" name=\"sample-ratio\" time=\"0\"");
    match &a.split {
        Some(s) if s.mismatch => {
            let message = format!(
                "sample-ratio mismatch: candidate {:.2}% of requests, {:.2}% configured (chi-square {:.1}, {})",
                s.observed_candidate_percent,
                s.expected_candidate_percent,
                s.chi_square,
                p_text(s.p_value)
            );
            let _ = writeln!(
                x,
                ">\n      <failure type=\"sample-ratio mismatch\" message=\"{}\">{}</failure>\n    </testcase>",
                xml_attr(&message),
                xml_text(&a.reasons.join("\n"))
            );
        }
        Some(_) => x.push_str("/>\n"),
        None => x.push_str(
            ">\n      <skipped message=\"no configured split to check (--candidate-percent, [canary] candidate_percent or a flag file)\"/>\n    </testcase>\n",
        ),
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}

/// JUnit timestamps carry no zone suffix nor fraction.
fn junit_timestamp(rfc3339: &str) -> &str {
    let t = rfc3339.split(['Z', '+']).next().unwrap_or(rfc3339);
    t.split('.').next().unwrap_or(t)
}

/// XML 1.0 text: escaped, without the characters XML cannot carry (as U+FFFD), a carriage return
/// as a reference (the same rules as a run's junit.xml).
fn xml_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            '\t' | '\n' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// An attribute value in double quotes: [`xml_text`], and the whitespace a parser would fold to
/// spaces as references.
fn xml_attr(s: &str) -> String {
    xml_text(s)
        .replace('"', "&quot;")
        .replace('\n', "&#10;")
        .replace('\t', "&#9;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(s: &str) -> String {
        let mut out = Vec::new();
        md_escape(s, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn markdown_values_make_no_markup() {
        assert_eq!(
            md("<img src=x onerror=alert(1)>"),
            "&lt;img src=x onerror=alert(1)&gt;"
        );
        assert_eq!(md("a|b\nc"), "a\\|b c");
        assert_eq!(md("[x](http://e) @team"), "\\[x\\](http://e) @&#8203;team");
        assert_eq!(md("\u{1b}[31m"), "\\u{1b}\\[31m");
    }

    #[test]
    fn xml_escaping_parses_back() {
        let s = "a<b>&\"c\"\n\u{1}]]>";
        let xml = format!("<a m=\"{}\">{}</a>", xml_attr(s), xml_text(s));
        let doc = roxmltree::Document::parse(&xml).unwrap();
        assert_eq!(
            doc.root_element().attribute("m"),
            Some("a<b>&\"c\"\n\u{FFFD}]]>")
        );
        assert_eq!(
            junit_timestamp("2026-11-30T12:00:00.414Z"),
            "2026-11-30T12:00:00"
        );
    }

    #[test]
    fn axes_get_round_ticks() {
        assert_eq!(nice_ticks(0.0, 0.11, 5), [0.0, 0.02, 0.04, 0.06, 0.08, 0.1]);
        assert_eq!(nice_ticks(1.0, 5.0, 5), [1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(log_ticks(170.8, 4111.4), [200.0, 500.0, 1000.0, 2000.0]);
        // Too narrow for 1-2-5 steps: linear round values instead.
        assert_eq!(log_ticks(700.0, 900.0), [700.0, 750.0, 800.0, 850.0, 900.0]);
        let day = time_ticks(1_796_040_000.0, 1_796_040_000.0 + 86_400.0);
        assert_eq!(day.first().map(|t| t.1.as_str()), Some("11-30 12:00"));
        assert!(day.len() <= 7, "{day:?}");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
        assert_eq!(percent_label(0.025), "2.5%");
        assert_eq!(percent_label(0.2), "20%");
    }
}
