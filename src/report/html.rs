//! `report.html`: one self-contained file (no network, opens from disk), rendered with tera from
//! a template embedded in the binary, autoescaping on. Items travel as a JSON data island and are
//! drawn a page at a time by a few lines of plain JavaScript, so a 100,000-item run still opens
//! at once; model output only ever reaches the page through `textContent`.

use serde::Serialize;

use super::view::{Group, ItemView, SideRow};
use super::{Exporter, ReportInput, metric_rows};
use crate::gate::{GateResult, Outcome, Verdict};
use crate::metrics::MetricKind;
use crate::metrics::Status;
use crate::metrics::{Metrics, decode_histogram};
use crate::record::Sides;

const TEMPLATE: &str = include_str!("templates/report.html");
const ITEMS_MARKER: &str = "@@goldgate-items@@";
const SCRIPT: &str = include_str!("templates/report.js");

/// The page's Content-Security-Policy allows exactly this script and no other: even if some
/// markup slipped through, no inline handler or injected script element would run.
fn script_hash() -> String {
    use base64::Engine;
    use sha2::Digest;
    let digest = sha2::Sha256::digest(SCRIPT.as_bytes());
    format!(
        "sha256-{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

pub struct Html;

impl Exporter for Html {
    fn render(&self, input: &ReportInput, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
        let mut tera = tera::Tera::new();
        tera.autoescape_on([".html"]);
        tera.add_raw_template("report.html", TEMPLATE)?;
        let page = Page::new(input);
        let ctx = tera::Context::from_serialize(&page)?;
        // The page is rendered around a marker where the items go; the items themselves are
        // streamed into the file, so a large run is never held as one string (or copied into tera).
        let html = tera.render("report.html", &ctx)?;
        let (before, after) = html
            .split_once(ITEMS_MARKER)
            .ok_or_else(|| anyhow::anyhow!("the report template lost its items marker"))?;
        out.write_all(before.as_bytes())?;
        write_items(input.view, &mut ScriptSafe(out))?;
        out.write_all(after.as_bytes())?;
        Ok(())
    }
}

#[derive(Serialize)]
struct Page<'a> {
    s: &'a super::Summary,
    /// What the two compared sides are called: `current`/`candidate`, or a diff's runs.
    names: Sides<String>,
    warnings: &'a [String],
    verdict_class: &'static str,
    verdict_text: String,
    /// A shadow replay: what it compared, and what was read.
    shadow_text: Option<String>,
    shadow_lines: Vec<String>,
    golden_short: &'a str,
    gates: Vec<GateRow>,
    /// How the intervals were computed, in a sentence.
    statistics: String,
    comparisons: Vec<ComparisonRow>,
    /// With repeats: per model, pass@k, pass^k, flaky items, variance within items.
    repeats: Vec<(String, String)>,
    flaky: Vec<FlakyRow>,
    metrics: Vec<(&'static str, String, String)>,
    tags: Vec<TagRow>,
    chart: Option<Chart>,
    classification: Vec<ClassView>,
    groups: Vec<GroupInfo>,
    all_tags: Vec<String>,
    items_json: &'static str,
    script: &'static str,
    script_hash: String,
}

#[derive(Serialize)]
struct GateRow {
    metric: String,
    rule: String,
    current: String,
    candidate: String,
    change: String,
    limit: String,
    outcome: &'static str,
    note: String,
}

#[derive(Serialize)]
struct ComparisonRow {
    metric: String,
    difference: String,
    p_value: String,
    correlation: String,
    method: String,
}

#[derive(Serialize)]
struct FlakyRow {
    id: String,
    current: String,
    candidate: String,
}

#[derive(Serialize)]
struct TagRow {
    tag: String,
    requests: u64,
    accuracy: (String, String),
    error_rate: (String, String),
    p95: (String, String),
    faithfulness: (String, String),
}

#[derive(Serialize)]
struct GroupInfo {
    key: &'static str,
    title: &'static str,
    count: usize,
    open: bool,
    note: &'static str,
}

impl<'a> Page<'a> {
    fn new(input: &'a ReportInput) -> Page<'a> {
        let s = input.summary;
        let (verdict_class, verdict_text) = match (s.status, s.verdict) {
            (Status::Interrupted, _) => ("warn", "INTERRUPTED — partial results".to_owned()),
            (Status::Failed, _) => (
                "fail",
                format!(
                    "RUN FAILED — {}",
                    s.failure.as_deref().unwrap_or("a model answered nothing")
                ),
            ),
            (_, Verdict::Pass) => ("pass", "PASS — every gate passed".to_owned()),
            (_, Verdict::Inconclusive) => {
                let n = s.gates_with(Outcome::Inconclusive);
                (
                    "warn",
                    format!(
                        "INCONCLUSIVE — no gate failed, but the data cannot yet show that {n} of {} gates hold: more items or repeats would decide (exit code 4)",
                        s.gates.len()
                    ),
                )
            }
            (_, Verdict::Fail) => {
                let n = s.gates_with(Outcome::Fail);
                (
                    "fail",
                    format!("FAIL — {n} of {} gates failed", s.gates.len()),
                )
            }
        };
        let (cur, cand) = (&s.models.current.metrics, &s.models.candidate.metrics);
        let names = s.side_names();
        let mut all_tags: Vec<String> = input.view.items.tag_names().to_vec();
        all_tags.sort_unstable();
        Page {
            s,
            names: names.clone(),
            warnings: &s.warnings,
            verdict_class,
            verdict_text,
            shadow_text: s.shadow_text(),
            shadow_lines: s.shadow_lines(),
            golden_short: crate::golden::short(&s.golden.sha256),
            gates: s.gates.iter().map(|g| gate_row(s, g)).collect(),
            statistics: super::statistics_note(s),
            comparisons: s
                .comparisons
                .iter()
                .map(|c| ComparisonRow {
                    metric: c.metric.to_string(),
                    difference: c.metric.kind.format_difference(c.difference, c.interval),
                    p_value: super::format_p(c.p_value),
                    correlation: format!("{:.2}", c.correlation),
                    method: c.method.clone(),
                })
                .collect(),
            repeats: s
                .models
                .iter()
                .filter_map(|(side, m)| {
                    Some((
                        s.side_names()[side].clone(),
                        super::repeats_line(m.metrics.repeats.as_ref()?),
                    ))
                })
                .collect(),
            flaky: s
                .flaky
                .iter()
                .map(|f| FlakyRow {
                    id: f.id.clone(),
                    current: format!("{} of {}", f.current[0], f.current[1]),
                    candidate: format!("{} of {}", f.candidate[0], f.candidate[1]),
                })
                .collect(),
            metrics: metric_rows(cur, cand),
            tags: tag_rows(cur, cand),
            chart: Chart::new(cur, cand),
            classification: s
                .models
                .iter()
                .filter_map(|(side, m)| ClassView::new(names[side].clone(), &m.metrics))
                .collect(),
            groups: Group::ALL
                .iter()
                .map(|&g| GroupInfo {
                    key: group_key(g),
                    title: g.title(),
                    count: input.view.count(g),
                    open: g != Group::Unchanged,
                    note: if g == Group::Unchanged && input.view.unchanged_answers_omitted {
                        "answers of unchanged items are left out of this large report; results.jsonl has them"
                    } else {
                        ""
                    },
                })
                .filter(|g| g.count > 0 || g.key != "incomplete")
                .collect(),
            all_tags,
            items_json: ITEMS_MARKER,
            script: SCRIPT,
            script_hash: script_hash(),
        }
    }
}

fn group_key(g: Group) -> &'static str {
    match g {
        Group::Regressed => "regressed",
        Group::Improved => "improved",
        Group::BothFail => "both_fail",
        Group::Unchanged => "unchanged",
        Group::Incomplete => "incomplete",
    }
}

fn gate_row(s: &crate::summary::Summary, g: &GateResult) -> GateRow {
    let change = super::gate_change(s, g).unwrap_or_else(|| match (g.current, g.candidate) {
        (Some(c), Some(k)) => g.metric.kind.change(c, k),
        _ => String::new(),
    });
    let (cur, cand) = (&s.models.current.metrics, &s.models.candidate.metrics);
    // What decided it, when not the default, and why an undecided gate is undecided.
    let how = match g.decide {
        crate::stats::Decide::Noninferiority => None,
        d => Some(format!("decide = {}", d.as_str())),
    };
    let note = [how, g.note.clone(), super::undecided(g)]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("; ");
    let op = match g.bound {
        crate::gate::Bound::Min(_) | crate::gate::Bound::MinRatio(_) => "≥",
        _ => "≤",
    };
    GateRow {
        metric: g.metric.to_string(),
        rule: g.rule.clone(),
        current: super::with_interval(cur, &g.metric),
        candidate: super::with_interval(cand, &g.metric),
        change,
        limit: format!("{op} {}", g.format(g.limit)),
        outcome: match g.outcome {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Inconclusive => "inconclusive",
            Outcome::Skipped => "skipped",
        },
        note,
    }
}

fn tag_rows(cur: &Metrics, cand: &Metrics) -> Vec<TagRow> {
    let (Some(ct), Some(kt)) = (&cur.by_tag, &cand.by_tag) else {
        return Vec::new();
    };
    let f = |m: Option<&Metrics>, k: MetricKind| {
        m.and_then(|m| k.value(m))
            .map_or_else(|| "n/a".to_owned(), |v| k.format(v))
    };
    let mut tags: Vec<&String> = ct.keys().chain(kt.keys()).collect();
    tags.sort_unstable();
    tags.dedup();
    tags.into_iter()
        .map(|tag| {
            let (c, k) = (ct.get(tag), kt.get(tag));
            let pair = |kind| (f(c, kind), f(k, kind));
            TagRow {
                tag: tag.clone(),
                requests: k.or(c).map_or(0, |m| m.requests),
                accuracy: pair(MetricKind::Accuracy),
                error_rate: pair(MetricKind::ErrorRate),
                p95: pair(MetricKind::LatencyP95),
                faithfulness: pair(MetricKind::Faithfulness),
            }
        })
        .collect()
}

/// One model's classification results: per-class table and confusion matrix.
#[derive(Serialize)]
struct ClassView {
    side: String,
    macro_f1: String,
    accuracy: String,
    classes: Vec<(String, String, String, String, u64)>,
    predicted: Vec<String>,
    rows: Vec<(String, Vec<(u64, bool)>)>,
}

impl ClassView {
    fn new(side: String, m: &Metrics) -> Option<ClassView> {
        let c = m.classification.as_ref()?;
        let f = |v: f64| format!("{v:.3}");
        Some(ClassView {
            side,
            macro_f1: f(c.macro_f1),
            accuracy: MetricKind::Accuracy.format(c.accuracy),
            classes: c
                .classes
                .iter()
                .map(|(label, k)| {
                    (
                        label.clone(),
                        f(k.precision),
                        f(k.recall),
                        f(k.f1),
                        k.support,
                    )
                })
                .collect(),
            predicted: c.confusion.predicted.clone(),
            rows: c
                .confusion
                .expected
                .iter()
                .zip(&c.confusion.counts)
                .map(|(label, counts)| {
                    let cells = counts
                        .iter()
                        .enumerate()
                        .map(|(j, n)| (*n, c.confusion.predicted.get(j) == Some(label)))
                        .collect();
                    (label.clone(), cells)
                })
                .collect(),
        })
    }
}

/// Latency by percentile, HdrHistogram-style: the x axis stretches the tail (log of 1/(1-q)).
#[derive(Serialize)]
struct Chart {
    width: u32,
    height: u32,
    current: String,
    candidate: String,
    x_ticks: Vec<(f64, &'static str)>,
    y_ticks: Vec<(f64, String)>,
}

impl Chart {
    const W: f64 = 720.0;
    const H: f64 = 260.0;
    const LEFT: f64 = 64.0;
    const BOTTOM: f64 = 28.0;
    const TOP: f64 = 10.0;
    const RIGHT: f64 = 28.0;
    const MAX_NINES: f64 = 3.0; // up to p99.9

    fn new(cur: &Metrics, cand: &Metrics) -> Option<Chart> {
        let hc = decode_histogram(&cur.histogram_us).filter(|h| !h.is_empty());
        let hk = decode_histogram(&cand.histogram_us).filter(|h| !h.is_empty());
        if hc.is_none() && hk.is_none() {
            return None;
        }
        let steps = 60;
        let quantile = |i: usize| 1.0 - 10f64.powf(-(i as f64) * Self::MAX_NINES / steps as f64);
        let curve = |h: &Option<hdrhistogram::Histogram<u64>>| -> Vec<(f64, f64)> {
            h.as_ref().map_or_else(Vec::new, |h| {
                (0..=steps)
                    .map(|i| {
                        let q = quantile(i);
                        (
                            i as f64 / steps as f64,
                            h.value_at_quantile(q) as f64 / 1000.0,
                        )
                    })
                    .collect()
            })
        };
        let (c, k) = (curve(&hc), curve(&hk));
        let max_ms = c
            .iter()
            .chain(&k)
            .map(|p| p.1)
            .fold(0.0, f64::max)
            .max(0.001)
            * 1.1;
        let plot_w = Self::W - Self::LEFT - Self::RIGHT;
        let plot_h = Self::H - Self::TOP - Self::BOTTOM;
        let x = |f: f64| Self::LEFT + f * plot_w;
        let y = |ms: f64| Self::TOP + plot_h * (1.0 - ms / max_ms);
        let points = |curve: &[(f64, f64)]| {
            curve
                .iter()
                .map(|(f, ms)| format!("{:.1},{:.1}", x(*f), y(*ms)))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let x_ticks = [(0.0, "p0"), (1.0, "p90"), (2.0, "p99"), (3.0, "p99.9")]
            .iter()
            .map(|&(nines, label)| (x(nines / Self::MAX_NINES), label))
            .collect();
        let y_ticks = (0..=4)
            .map(|i| {
                let ms = max_ms * f64::from(i) / 4.0;
                (y(ms), MetricKind::LatencyP50.format(ms))
            })
            .collect();
        Some(Chart {
            width: Self::W as u32,
            height: Self::H as u32,
            current: points(&c),
            candidate: points(&k),
            x_ticks,
            y_ticks,
        })
    }
}

/// Escapes `<`, `>` and `&` as JSON unicode escapes on the way out, so no answer can close the
/// script element the items travel in. Byte-wise is safe: UTF-8 never uses these bytes inside a
/// multi-byte character, and in JSON they only occur inside strings.
struct ScriptSafe<'w>(&'w mut dyn std::io::Write);

impl std::io::Write for ScriptSafe<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut start = 0;
        for (i, b) in buf.iter().enumerate() {
            let escaped: &[u8] = match b {
                b'<' => b"\\u003c",
                b'>' => b"\\u003e",
                b'&' => b"\\u0026",
                _ => continue,
            };
            self.0.write_all(&buf[start..i])?;
            self.0.write_all(escaped)?;
            start = i + 1;
        }
        self.0.write_all(&buf[start..])?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// The items as compact JSON for the page's script, one at a time.
fn write_items(view: &ItemView, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    #[derive(Serialize)]
    struct J<'a> {
        i: &'a str,
        q: &'a str,
        t: Vec<&'a str>,
        g: &'static str,
        c: S<'a>,
        k: S<'a>,
    }
    #[derive(Serialize)]
    struct S<'a> {
        p: u32,
        n: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        a: Option<&'a str>,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        x: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        e: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        l: Option<f64>,
        #[serde(skip_serializing_if = "<[_]>::is_empty")]
        m: &'a [String],
        #[serde(skip_serializing_if = "<[_]>::is_empty")]
        s: &'a [String],
        #[serde(skip_serializing_if = "<[_]>::is_empty")]
        f: &'a [String],
        #[serde(skip_serializing_if = "Option::is_none")]
        h: Option<f64>,
        #[serde(skip_serializing_if = "<[_]>::is_empty")]
        d: &'a [(bool, String)],
        #[serde(skip_serializing_if = "<[_]>::is_empty")]
        z: &'a [(String, String, f64)],
        #[serde(skip_serializing_if = "<[_]>::is_empty")]
        o: &'a [String],
        #[serde(skip_serializing_if = "<[_]>::is_empty")]
        u: &'a [(String, f64)],
    }
    fn side(s: &SideRow) -> S<'_> {
        S {
            p: s.passed,
            n: s.trials,
            // With a diff, the answer is the concatenation of its runs: do not ship it twice.
            a: if s.diff.is_empty() {
                s.answer.as_deref()
            } else {
                None
            },
            x: s.truncated,
            e: s.error.as_deref(),
            l: s.latency_ms.map(|l| (l * 10.0).round() / 10.0),
            m: &s.matched,
            s: &s.missing,
            f: &s.forbidden,
            h: s.faithfulness.map(|h| (h * 100.0).round() / 100.0),
            d: &s.diff,
            z: &s.fuzzy,
            o: &s.notes,
            u: &s.unsupported,
        }
    }
    out.write_all(b"[")?;
    for (n, r) in view.rows.iter().enumerate() {
        if n > 0 {
            out.write_all(b",")?;
        }
        serde_json::to_writer(
            &mut *out,
            &J {
                i: r.id,
                q: &view.items.question(r.index),
                t: view.items.tags(r.index).collect(),
                g: group_key(r.group),
                c: side(&r.current),
                k: side(&r.candidate),
            },
        )?;
    }
    out.write_all(b"]")?;
    Ok(())
}
