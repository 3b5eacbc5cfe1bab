//! `history/index.html` (self-contained: inline SVG charts drawn here, a few lines of script for
//! the filters, a Content-Security-Policy that allows only that script) and `history.csv` (one
//! row per evaluation, night, metric and model: what a spreadsheet or a dashboard imports).

use std::io::Write;
use std::path::Path;

use serde::Serialize;

use super::{EvaluationHistory, History, Series};
use crate::record::Side;

const TEMPLATE: &str = include_str!("templates/history.html");
const SCRIPT: &str = include_str!("templates/history.js");

/// Rows of the item grid shown per evaluation: the most flipped first; the rest are counted.
const GRID_ROWS: usize = 300;

/// `history.csv`.
pub fn write_csv(history: &History, out: &mut dyn Write) -> anyhow::Result<()> {
    writeln!(
        out,
        "evaluation,run_id,started_at,status,metric,side,value,low,high,change_point,marker"
    )?;
    for e in &history.evaluations {
        for s in &e.series {
            for (i, p) in s.points.iter().enumerate() {
                let night = &e.runs[i];
                let (value, low, high) = match p {
                    Some(p) => (
                        num(p.value),
                        p.interval.map_or(String::new(), |iv| num(iv.low)),
                        p.interval.map_or(String::new(), |iv| num(iv.high)),
                    ),
                    None => Default::default(),
                };
                let change = s
                    .change_points
                    .iter()
                    .find(|c| c.index == i)
                    .map_or(String::new(), |c| num(c.change.change()));
                let marker = e
                    .markers
                    .iter()
                    .find(|m| m.index == i)
                    .map_or(String::new(), |m| {
                        m.changes
                            .iter()
                            .map(|c| c.text.as_str())
                            .collect::<Vec<_>>()
                            .join("; ")
                    });
                writeln!(
                    out,
                    "{},{},{},{},{},{},{value},{low},{high},{change},{}",
                    field(&e.name),
                    field(&night.run_id),
                    field(&night.started_at),
                    night.status.as_str(),
                    field(&s.metric.to_string()),
                    s.side.as_str(),
                    field(&marker)
                )?;
            }
        }
    }
    Ok(())
}

fn num(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        String::new()
    }
}

/// A CSV field, quoted when it must be; a leading `=`, `+`, `-` or `@` is prefixed with `'` so a
/// spreadsheet never runs a name as a formula.
fn field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

fn script_hash() -> String {
    use base64::Engine;
    use sha2::Digest;
    format!(
        "sha256-{}",
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(SCRIPT.as_bytes()))
    )
}

/// `history/index.html`.
pub fn write_html(history: &History, out: &mut dyn Write) -> anyhow::Result<()> {
    let mut tera = tera::Tera::default();
    tera.autoescape_on(vec![".html"]);
    tera.add_raw_template("history.html", TEMPLATE)?;
    let page = Page {
        h: history,
        script: SCRIPT,
        script_hash: script_hash(),
        evaluations: history.evaluations.iter().map(EvaluationView::of).collect(),
    };
    let html = tera.render("history.html", &tera::Context::from_serialize(&page)?)?;
    out.write_all(html.as_bytes())?;
    Ok(())
}

#[derive(Serialize)]
struct Page<'a> {
    h: &'a History,
    script: &'static str,
    script_hash: String,
    evaluations: Vec<EvaluationView<'a>>,
}

#[derive(Serialize)]
struct EvaluationView<'a> {
    e: &'a EvaluationHistory,
    /// A safe element id.
    key: String,
    charts: Vec<Chart>,
    grid_rows: Vec<GridRowView<'a>>,
    grid_hidden: usize,
    stable_pass: usize,
    stable_fail: usize,
    change_points: Vec<ChangeView>,
    tonight_gates: Vec<GateView>,
    drift: Vec<DriftView<'a>>,
}

/// A drift finding, as a person reads it.
#[derive(Serialize)]
struct DriftView<'a> {
    run_id: &'a str,
    side: &'static str,
    model: &'a str,
    changed: String,
    normal: String,
    p: String,
    examples: String,
}

/// One gate of tonight against the accepted baseline, as a person reads it.
#[derive(Serialize)]
struct GateView {
    metric: String,
    rule: String,
    baseline: String,
    tonight: String,
    change: String,
    outcome: &'static str,
    why: Option<String>,
}

#[derive(Serialize)]
struct ChangeView {
    metric: String,
    side: &'static str,
    run_id: String,
    night: usize,
    before: String,
    after: String,
    relative: String,
    p: String,
}

#[derive(Serialize)]
struct GridRowView<'a> {
    id: &'a str,
    flips: usize,
    cells: Vec<&'static str>,
}

impl<'a> EvaluationView<'a> {
    fn of(e: &'a EvaluationHistory) -> EvaluationView<'a> {
        let mut metrics: Vec<String> = Vec::new();
        for s in &e.series {
            let m = s.metric.to_string();
            if !metrics.contains(&m) {
                metrics.push(m);
            }
        }
        let charts = metrics
            .iter()
            .map(|m| {
                let series: Vec<&Series> = e
                    .series
                    .iter()
                    .filter(|s| &s.metric.to_string() == m)
                    .collect();
                Chart::draw(m, &series, e)
            })
            .collect();
        let interesting = |cells: &str| {
            let c: Vec<char> = cells.chars().filter(|&c| c != '-').collect();
            c.windows(2).any(|w| w[0] != w[1]) || c.contains(&'K')
        };
        let mut grid_rows = Vec::new();
        let (mut hidden, mut stable_pass, mut stable_fail) = (0, 0, 0);
        for row in &e.grid.items {
            if !interesting(&row.cells) {
                if row.cells.contains('P') {
                    stable_pass += 1;
                } else if row.cells.contains('F') {
                    stable_fail += 1;
                }
                continue;
            }
            if grid_rows.len() >= GRID_ROWS {
                hidden += 1;
                continue;
            }
            grid_rows.push(GridRowView {
                id: &row.id,
                flips: row.flips,
                cells: row
                    .cells
                    .chars()
                    .map(|c| match c {
                        'P' => "pass",
                        'F' => "fail",
                        'K' => "flaky",
                        _ => "missing",
                    })
                    .collect(),
            });
        }
        let change_points = e
            .series
            .iter()
            .flat_map(|s| {
                s.change_points.iter().map(move |c| ChangeView {
                    metric: s.metric.to_string(),
                    side: s.side.as_str(),
                    run_id: c.run_id.clone(),
                    night: c.index + 1,
                    before: s.metric.kind.format(c.change.before),
                    after: s.metric.kind.format(c.change.after),
                    relative: c
                        .change
                        .relative()
                        .map_or("n/a".to_owned(), |r| format!("{:+.1}%", r * 100.0)),
                    p: crate::report::format_p(c.change.p),
                })
            })
            .collect();
        let tonight_gates = e
            .tonight
            .iter()
            .flat_map(|t| {
                t.gates.iter().map(|g| GateView {
                    metric: g.metric.to_string(),
                    rule: g.rule.clone(),
                    baseline: g.format(g.current),
                    tonight: g.format(g.candidate),
                    change: crate::report::gate_change_in(&t.comparisons, g).unwrap_or_default(),
                    outcome: g.outcome.as_str(),
                    why: crate::report::undecided(g).or_else(|| g.note.clone()),
                })
            })
            .collect();
        let drift = e
            .drift
            .iter()
            .map(|d| DriftView {
                run_id: &d.run_id,
                side: d.side.as_str(),
                model: &d.model,
                changed: format!("{} of {} ({:.1}%)", d.changed, d.compared, d.share * 100.0),
                normal: format!("{:.1}% ({})", d.normal * 100.0, d.normal_from),
                p: crate::report::format_p(d.p),
                examples: d.examples.join(", "),
            })
            .collect();
        EvaluationView {
            e,
            tonight_gates,
            drift,
            key: format!("e{:x}", fnv(&e.name)),
            charts,
            grid_rows,
            grid_hidden: hidden,
            stable_pass,
            stable_fail,
            change_points,
        }
    }
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// One metric's chart: both models' nightly values, their intervals as a band, markers as
/// vertical lines, change points as rings. Coordinates are computed here; the template only
/// places them.
#[derive(Serialize)]
struct Chart {
    metric: String,
    width: f64,
    height: f64,
    lines: Vec<ChartLine>,
    markers: Vec<ChartMark>,
    changes: Vec<ChartMark>,
    y_ticks: Vec<Tick>,
    x_first: String,
    x_last: String,
    /// The newest value of each model, for the reader who looks at nothing else.
    latest: Vec<String>,
}

#[derive(Serialize)]
struct Tick {
    y: f64,
    label: String,
}

#[derive(Serialize)]
struct ChartLine {
    side: &'static str,
    /// `x,y x,y …` of the points, broken where a night has none.
    segments: Vec<String>,
    band: String,
    dots: Vec<ChartMark>,
}

#[derive(Serialize)]
struct ChartMark {
    x: f64,
    y: f64,
    title: String,
    class: &'static str,
}

const W: f64 = 560.0;
const H: f64 = 170.0;
const LEFT: f64 = 52.0;
const RIGHT: f64 = 10.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 22.0;

impl Chart {
    fn draw(metric: &str, series: &[&Series], e: &EvaluationHistory) -> Chart {
        let n = e.runs.len().max(1);
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for s in series {
            for p in s.points.iter().flatten() {
                lo = lo.min(p.value);
                hi = hi.max(p.value);
                if let Some(iv) = p.interval {
                    if iv.low.is_finite() {
                        lo = lo.min(iv.low);
                    }
                    if iv.high.is_finite() {
                        hi = hi.max(iv.high);
                    }
                }
            }
        }
        if !lo.is_finite() {
            (lo, hi) = (0.0, 1.0);
        }
        if hi - lo < 1e-9 {
            let pad = lo.abs().max(1.0) * 0.05;
            (lo, hi) = (lo - pad, hi + pad);
        }
        let x = |i: usize| {
            if n == 1 {
                LEFT + (W - LEFT - RIGHT) / 2.0
            } else {
                LEFT + (W - LEFT - RIGHT) * i as f64 / (n - 1) as f64
            }
        };
        let y = |v: f64| TOP + (H - TOP - BOTTOM) * (1.0 - (v.clamp(lo, hi) - lo) / (hi - lo));
        let kind = series.first().map(|s| s.metric.kind);
        let fmt = |v: f64| kind.map_or(format!("{v:.3}"), |k| k.format(v));
        let mut lines = Vec::new();
        let mut changes = Vec::new();
        let mut latest = Vec::new();
        for s in series {
            let mut segments = Vec::new();
            let mut current = String::new();
            let (mut upper, mut lower) = (Vec::new(), Vec::new());
            let mut dots = Vec::new();
            for (i, p) in s.points.iter().enumerate() {
                match p {
                    Some(p) => {
                        current.push_str(&format!("{:.1},{:.1} ", x(i), y(p.value)));
                        if let Some(iv) = p.interval {
                            upper.push(format!("{:.1},{:.1}", x(i), y(iv.high.min(hi))));
                            lower.push(format!("{:.1},{:.1}", x(i), y(iv.low.max(lo))));
                        }
                        let night = &e.runs[i];
                        dots.push(ChartMark {
                            x: x(i),
                            y: y(p.value),
                            title: format!(
                                "{} {}: {}{} — run {}{}",
                                s.side.as_str(),
                                metric,
                                fmt(p.value),
                                p.interval.map_or(String::new(), |iv| format!(
                                    " [{}, {}]",
                                    if iv.low.is_finite() {
                                        fmt(iv.low)
                                    } else {
                                        "-∞".into()
                                    },
                                    if iv.high.is_finite() {
                                        fmt(iv.high)
                                    } else {
                                        "∞".into()
                                    }
                                )),
                                night.run_id,
                                if p.partial { " (did not complete)" } else { "" }
                            ),
                            class: if p.partial { "partial" } else { "dot" },
                        });
                    }
                    None => {
                        if !current.is_empty() {
                            segments.push(std::mem::take(&mut current));
                        }
                    }
                }
            }
            if !current.is_empty() {
                segments.push(current);
            }
            lower.reverse();
            let band = upper.into_iter().chain(lower).collect::<Vec<_>>().join(" ");
            for c in &s.change_points {
                changes.push(ChartMark {
                    x: x(c.index),
                    y: y(c.change.after),
                    title: format!(
                        "change point, {} {}: {} -> {} from run {} (p {})",
                        s.side.as_str(),
                        metric,
                        fmt(c.change.before),
                        fmt(c.change.after),
                        c.run_id,
                        crate::report::format_p(c.change.p)
                    ),
                    class: side_class(s.side),
                });
            }
            if let Some(p) = s.points.iter().rev().flatten().next() {
                latest.push(format!("{} {}", s.side.as_str(), fmt(p.value)));
            }
            lines.push(ChartLine {
                side: side_class(s.side),
                segments,
                band,
                dots,
            });
        }
        let markers = e
            .markers
            .iter()
            .map(|m| ChartMark {
                x: (x(m.index - 1) + x(m.index)) / 2.0,
                y: 0.0,
                title: m
                    .changes
                    .iter()
                    .map(|c| c.text.as_str())
                    .collect::<Vec<_>>()
                    .join("; "),
                class: "marker",
            })
            .collect();
        let y_ticks = [hi, (lo + hi) / 2.0, lo]
            .iter()
            .map(|&v| Tick {
                y: y(v),
                label: fmt(v),
            })
            .collect();
        Chart {
            metric: metric.to_owned(),
            width: W,
            height: H,
            lines,
            markers,
            changes,
            y_ticks,
            x_first: e.runs.first().map_or(String::new(), |r| day(&r.started_at)),
            x_last: e.runs.last().map_or(String::new(), |r| day(&r.started_at)),
            latest,
        }
    }
}

fn side_class(side: Side) -> &'static str {
    match side {
        Side::Current => "current",
        Side::Candidate => "candidate",
    }
}

fn day(stamp: &str) -> String {
    stamp.get(..10).unwrap_or(stamp).to_owned()
}

/// Write `history/index.html`, `history.json` and `history.csv` under `out/history/`, each
/// beside and renamed: a reader (a web server publishing the directory) never sees half a file.
pub fn write_all(history: &History, out: &Path) -> anyhow::Result<std::path::PathBuf> {
    use anyhow::Context as _;
    let dir = out.join("history");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let put = |name: &str, bytes: Vec<u8>| -> anyhow::Result<()> {
        let path = dir.join(name);
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .with_context(|| format!("cannot write {}", path.display()))
    };
    let mut json = serde_json::to_vec_pretty(history)?;
    json.push(b'\n');
    put("history.json", json)?;
    let mut csv = Vec::new();
    write_csv(history, &mut csv)?;
    put("history.csv", csv)?;
    let mut html = Vec::new();
    write_html(history, &mut html)?;
    put("index.html", html)?;
    Ok(dir.join("index.html"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_never_formulas() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(field("-1"), "'-1");
    }
}
