//! What a run shows. `summary.json` ([`crate::summary`]) is the contract; Markdown, JUnit, HTML and
//! the terminal summary are views of it and of `results.jsonl`, each an [`Exporter`] in a file of
//! its own.

mod html;
mod junit;
mod markdown;
pub mod terminal;
pub mod view;

use std::path::Path;

use anyhow::Context as _;
use clap::ValueEnum;

pub use view::ItemView;

use crate::metrics::MetricKind;
use crate::metrics::Metrics;
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
/// Those shown only when the golden set has the data for them.
const SHOWN_WITH_DATA: [MetricKind; 2] = [MetricKind::Similarity, MetricKind::MacroF1];

/// The metrics every view shows side by side, formatted.
pub fn metric_rows(cur: &Metrics, cand: &Metrics) -> Vec<(&'static str, String, String)> {
    let cell =
        |m: &Metrics, k: MetricKind| k.value(m).map_or_else(|| "n/a".to_owned(), |v| k.format(v));
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
