//! What a run shows. `summary.json` ([`crate::summary`]) is the contract; Markdown, JUnit, HTML and
//! the terminal summary are views of it and of `results.jsonl`, each an [`Exporter`] in a file of
//! its own.

pub mod canary;
mod html;
mod junit;
mod markdown;
pub mod terminal;
pub mod view;

use std::path::Path;

use anyhow::Context as _;
use clap::ValueEnum;

pub use view::ItemView;

use crate::gate::{GateResult, Outcome};
use crate::metrics::MetricKind;
use crate::metrics::{MetricRef, Metrics, Unit};
use crate::summary::Summary;

/// What every exporter renders from.
pub struct ReportInput<'a> {
    pub summary: &'a Summary,
    pub view: &'a ItemView<'a>,
}

/// One view of a run: a file in the run directory ([`Format::file_name`]), written as it is
/// rendered.
pub trait Exporter {
    fn render(&self, input: &ReportInput, out: &mut dyn std::io::Write) -> anyhow::Result<()>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Html,
    Md,
    Junit,
    Json,
}

impl Format {
    pub const ALL: [Format; 4] = [Format::Html, Format::Md, Format::Junit, Format::Json];

    /// The file a format writes in the run directory.
    pub fn file_name(self) -> &'static str {
        match self {
            Format::Html => "report.html",
            Format::Md => "report.md",
            Format::Junit => "junit.xml",
            Format::Json => "summary.json",
        }
    }

    /// The exporter of a view; `None` for `summary.json`, which is the summary itself
    /// ([`crate::rundir::write_summary`]).
    fn exporter(self) -> Option<Box<dyn Exporter>> {
        match self {
            Format::Html => Some(Box::new(html::Html)),
            Format::Md => Some(Box::new(markdown::Markdown)),
            Format::Junit => Some(Box::new(junit::Junit)),
            Format::Json => None,
        }
    }
}

/// Render the views among `formats` into `dir`, each written beside and renamed into place.
pub fn write(dir: &Path, input: &ReportInput, formats: &[Format]) -> anyhow::Result<()> {
    for (format, exporter) in formats.iter().filter_map(|f| Some((f, f.exporter()?))) {
        let path = dir.join(format.file_name());
        let tmp = dir.join(format!(".{}.tmp", format.file_name()));
        let file = std::fs::File::create(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        let mut out = std::io::BufWriter::with_capacity(1 << 16, file);
        exporter
            .render(input, &mut out)
            .with_context(|| format!("cannot render {}", path.display()))?;
        out.into_inner()
            .map_err(|e| e.into_error())
            .and_then(|_| std::fs::rename(&tmp, &path))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// The gate metrics the views' tables always show, in order.
const SHOWN: [MetricKind; 7] = [
    MetricKind::Accuracy,
    MetricKind::Faithfulness,
    MetricKind::ErrorRate,
    MetricKind::LatencyP50,
    MetricKind::LatencyP95,
    MetricKind::LatencyP99,
    MetricKind::CostPer1k,
];
/// Those shown only when the run has the data for them (the last five: shadow replays).
const SHOWN_WITH_DATA: [MetricKind; 7] = [
    MetricKind::Similarity,
    MetricKind::MacroF1,
    MetricKind::ExactMatch,
    MetricKind::RefusalRate,
    MetricKind::EmptyRate,
    MetricKind::JsonValidity,
    MetricKind::LengthRatio,
];

/// A metric's value with its interval: `62.5% [48.4, 74.9]`.
pub fn with_interval(m: &Metrics, metric: &MetricRef) -> String {
    let k = metric.kind;
    match (metric.value(m), m.interval(metric)) {
        (Some(v), Some(i)) => format!("{} {}", k.format(v), k.format_interval(i)),
        (Some(v), None) => k.format(v),
        (None, _) => "n/a".to_owned(),
    }
}

/// The paired difference of a gate's metric, as the views show it: `Δ +4.2 [-6.1, +14.5] pts`
/// (per item, candidate − current), or for a latency percentile the ratio `× 1.26 [1.05, 1.48]`.
pub fn gate_change(s: &Summary, g: &GateResult) -> Option<String> {
    gate_change_in(&s.comparisons, g)
}

/// [`gate_change`] from the comparisons alone (`history` keeps those, not whole summaries).
pub fn gate_change_in(
    comparisons: &[crate::metrics::Comparison],
    g: &GateResult,
) -> Option<String> {
    if let Some(t) = g
        .test
        .as_ref()
        .filter(|t| t.statistic == "candidate / current")
    {
        return Some(format!(
            "× {:.2} [{:.2}, {}]",
            t.estimate,
            t.interval.low,
            if t.interval.high.is_finite() {
                format!("{:.2}", t.interval.high)
            } else {
                "∞".to_owned()
            }
        ));
    }
    let c = comparisons.iter().find(|c| c.metric == g.metric)?;
    Some(format!(
        "Δ {}",
        g.metric.kind.format_difference(c.difference, c.interval)
    ))
}

/// Why a gate is undecided, in a sentence: its statistic's interval, what this many items can
/// detect, and about how many would decide it. `None` unless the gate is inconclusive.
pub fn undecided(g: &GateResult) -> Option<String> {
    if g.outcome != Outcome::Inconclusive {
        return None;
    }
    let t = g.test.as_ref()?;
    let ratio = t.statistic == "candidate / current";
    // In the metric's own unit: points for a share, milliseconds for a latency bound.
    let num = |v: f64, signed: bool| {
        if v.is_infinite() {
            return if v > 0.0 { "∞" } else { "-∞" }.to_owned();
        }
        let (v, unit, digits) = match (ratio, g.metric.kind.info().unit) {
            (true, _) => (v, "", 2),
            (false, Unit::Proportion) => (v * 100.0, " pts", 1),
            (false, Unit::Millis) => (v, " ms", 1),
            (false, Unit::Score) => (v, "", 2),
            (false, _) => (v, "", 3),
        };
        if signed {
            format!("{v:+.digits$}{unit}")
        } else {
            format!("{v:.digits$}{unit}")
        }
    };
    let signed = t.statistic != "candidate";
    let mut text = format!(
        "undecided: {} is in [{}, {}], which includes {} ({} items)",
        t.statistic,
        num(t.interval.low, signed),
        num(t.interval.high, signed),
        num(t.null, false),
        t.items
    );
    if let Some(mde) = t.mde {
        text.push_str(&format!(
            "; they detect a distance of {} from it with 80% power",
            num(mde, false)
        ));
    }
    match t.items_to_decide {
        Some(n) => text.push_str(&format!(
            "; about {n} items would likely decide it if the observed difference holds"
        )),
        None => text.push_str("; more items or repeats are needed"),
    }
    Some(text)
}

/// How the run's intervals were computed, in a sentence every view can print.
pub fn statistics_note(s: &Summary) -> String {
    let Some(st) = &s.statistics else {
        return String::new();
    };
    let units = if st.grouped_items > 0 {
        format!(
            "{} independent clusters ({} items in groups)",
            st.clusters, st.grouped_items
        )
    } else {
        format!("{} items", st.clusters)
    };
    format!(
        "Intervals are {}% confidence intervals over {units}; comparisons are paired per item{}; bootstrap seed {}, {} resamples (docs/statistics.md).",
        (st.confidence * 100.0).round(),
        if s.repeats > 1 {
            format!(", each item's {} trials averaged first", s.repeats)
        } else {
            String::new()
        },
        st.seed,
        st.resamples
    )
}

/// A p-value as a person reads it: two significant digits, `< 0.0001` below that.
pub fn format_p(p: f64) -> String {
    if p < 1e-4 {
        "< 0.0001".to_owned()
    } else {
        let digits = if p < 0.01 { 4 } else { 2 };
        format!("{p:.digits$}")
    }
}

/// pass@k, pass^k and the flaky items of one model's repeats, in a line.
pub fn repeats_line(r: &crate::metrics::RepeatStats) -> String {
    let mut line = format!(
        "pass@{k} {:.1}%, pass^{k} {:.1}%; {} item(s) passed every trial, {} none, {} some (flaky)",
        r.pass_at_k * 100.0,
        r.pass_hat_k * 100.0,
        r.stable_pass,
        r.stable_fail,
        r.flaky,
        k = r.k
    );
    if let Some(w) = r.within_item_share {
        line.push_str(&format!(
            "; {:.0}% of accuracy's variance is trials disagreeing within items{}",
            w * 100.0,
            if w > 0.2 {
                " (more repeats would narrow the intervals)"
            } else {
                ""
            }
        ));
    }
    line
}

/// The metrics every view shows side by side, formatted, each with its interval.
pub fn metric_rows(cur: &Metrics, cand: &Metrics) -> Vec<(&'static str, String, String)> {
    let cell = |m: &Metrics, k: MetricKind| with_interval(m, &MetricRef { kind: k, tag: None });
    let metric = |k: MetricKind| (k.info().label, cell(cur, k), cell(cand, k));
    let tokens = |m: &Metrics| {
        format!(
            "{} / {}{}",
            m.tokens.input,
            m.tokens.output,
            if m.tokens.estimated {
                " (estimated)"
            } else {
                ""
            }
        )
    };
    let mut rows: Vec<_> = SHOWN.into_iter().map(metric).collect();
    rows.push(("tokens in / out", tokens(cur), tokens(cand)));
    rows.push((
        "requests (errors)",
        format!("{} ({})", cur.requests, cur.errors),
        format!("{} ({})", cand.requests, cand.errors),
    ));
    rows.extend(
        SHOWN_WITH_DATA
            .into_iter()
            .filter(|k| k.value(cur).is_some() || k.value(cand).is_some())
            .map(metric),
    );
    if cur.empty_answers > 0 || cand.empty_answers > 0 {
        rows.push((
            "empty answers",
            format!("{} of {}", cur.empty_answers, cur.requests),
            format!("{} of {}", cand.empty_answers, cand.requests),
        ));
    }
    if cur.echoed_answers > 0 || cand.echoed_answers > 0 {
        rows.push((
            "echoed answers",
            format!("{} of {}", cur.echoed_answers, cur.requests),
            format!("{} of {}", cand.echoed_answers, cand.requests),
        ));
    }
    if cur.cached > 0 || cand.cached > 0 {
        rows.push((
            "cached answers",
            format!("{} of {}", cur.cached, cur.requests),
            format!("{} of {}", cand.cached, cand.requests),
        ));
    }
    if cur.judge.is_some() || cand.judge.is_some() {
        let judge = |m: &Metrics| {
            m.judge.as_ref().map_or_else(
                || "n/a".to_owned(),
                |j| {
                    format!(
                        "${:.4}, {} calls, {} errors",
                        j.cost_usd, j.requests, j.errors
                    )
                },
            )
        };
        rows.push(("judge cost", judge(cur), judge(cand)));
    }
    rows
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::Html => "html",
            Format::Md => "md",
            Format::Junit => "junit",
            Format::Json => "json",
        })
    }
}
