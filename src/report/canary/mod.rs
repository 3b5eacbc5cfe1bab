//! The canary analysis as people read it: `report.html` (per-arm latency distributions overlaid,
//! CSAT and feedback bars, the metrics per time interval), `report.md`, `junit.xml` (one test
//! case per gate) and the terminal summary. Everything shown comes from `decision.json`'s
//! [`Analysis`].
//!
//! The HTML and the Markdown are rendered by tera from one view ([`view::Page`]) of precomputed
//! strings, so numbers read the same in both ([`MetricKind::format`]); the charts in it are built
//! in [`charts`], the JUnit in [`junit`]. Both templates escape every value they print: the HTML
//! with tera's HTML escaping, the Markdown with [`md_escape`], so a tag, a variant, an example
//! line or a path from the logs is shown as the text it is and never becomes markup, a link or a
//! table cell of its own. The HTML has no script at all, and says so in its
//! Content-Security-Policy.

mod charts;
mod junit;
mod view;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::canary::analysis::Analysis;
use crate::gate::{GateResult, Outcome};
use crate::text::printable;
use view::Page;

const HTML_TEMPLATE: &str = include_str!("../templates/canary.html");
const MD_TEMPLATE: &str = include_str!("../templates/canary.md");

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
        ("junit.xml", junit::junit(analysis)),
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
    if let Some(since) = &analysis.since {
        let why = if analysis.since_step {
            " (a minute after the flag's last step: earlier records were served at the old split)"
        } else {
            ""
        };
        let _ = writeln!(out, "judged from {since}{why}");
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

/// tera's escape function for report.md: a value from the logs goes through the same escaping as
/// outside text in report.md of a run ([`super::markdown::esc`]): shown as written, on one line,
/// making no HTML, link, image, emphasis, code, table cell break, heading, math nor `@mention` of
/// its own, control and invisible characters shown as `\u{1b}`.
fn md_escape(input: &str, buf: &mut dyn std::io::Write) -> std::io::Result<()> {
    buf.write_all(super::markdown::esc(input).as_bytes())
}

// ---------------------------------------------------------------------------------------------
// How a gate's numbers read, in every view: the terminal, the pages and junit.xml.

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
    finite_or_infinity(v, |v| format!("{v:.2}"))
}

/// `v` as `finite` writes it; `∞` or `-∞` when it is not finite.
fn finite_or_infinity(v: f64, finite: impl FnOnce(f64) -> String) -> String {
    if v.is_finite() {
        finite(v)
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
    fn numbers_read_as_written() {
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
    }
}
