//! The terminal summary: metrics side by side, one line per gate, the verdict.

use std::io::{self, IsTerminal, Write};

use crate::gate::{GateResult, MetricKind, Outcome, Verdict};
use crate::metrics::Metrics;

use super::Summary;

/// ANSI colour only on a terminal, and never when `NO_COLOR` is set (no-color.org).
pub fn use_colour() -> bool {
    io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

struct Paint(bool);

impl Paint {
    fn green(&self, s: &str) -> String {
        self.wrap("32;1", s)
    }
    fn red(&self, s: &str) -> String {
        self.wrap("31;1", s)
    }
    fn dim(&self, s: &str) -> String {
        self.wrap("2", s)
    }
    fn bold(&self, s: &str) -> String {
        self.wrap("1", s)
    }
    fn wrap(&self, code: &str, s: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    }
}

fn opt(v: Option<f64>, kind: MetricKind) -> String {
    v.map_or_else(|| "n/a".to_owned(), |v| kind.format(v))
}

pub fn print(
    out: &mut dyn Write,
    s: &Summary,
    regressed_ids: &[&str],
    colour: bool,
) -> io::Result<()> {
    let p = Paint(colour);
    let (cur, cand) = (&s.models.current, &s.models.candidate);
    writeln!(
        out,
        "{} {}@{} ({} items, sha256 {}{}), {} trial(s) per item and model",
        p.bold("golden set"),
        s.golden.name,
        s.golden.version,
        s.golden.items,
        crate::golden::short(&s.golden.sha256),
        if s.golden.locked { "" } else { ", UNLOCKED" },
        s.repeats
    )?;
    writeln!(out, "  current    {}  ({})", cur.model, cur.provider)?;
    writeln!(out, "  candidate  {}  ({})", cand.model, cand.provider)?;
    writeln!(out)?;
    metrics_table(out, &cur.metrics, &cand.metrics)?;
    writeln!(out)?;
    let d = &s.items;
    writeln!(
        out,
        "items: {} regressed, {} improved, {} pass on both, {} fail on both{}",
        d.regressed,
        d.improved,
        d.both_pass,
        d.both_fail,
        if d.incomplete > 0 {
            format!(", {} incomplete", d.incomplete)
        } else {
            String::new()
        }
    )?;
    if !regressed_ids.is_empty() {
        let more = d.regressed.saturating_sub(regressed_ids.len());
        writeln!(
            out,
            "  regressed: {}{}",
            regressed_ids.join(", "),
            if more > 0 {
                format!(" … and {more} more")
            } else {
                String::new()
            }
        )?;
    }
    writeln!(out)?;
    gate_table(out, &s.gates, &p)?;
    writeln!(out)?;
    let failed = s.gates.iter().filter(|g| !g.pass).count();
    let verdict = match (s.verdict, s.status) {
        (_, crate::runner::Status::Interrupted) => p.red("INTERRUPTED (partial results)"),
        (_, crate::runner::Status::Failed) => p.red("RUN FAILED"),
        (Verdict::Pass, _) => p.green("PASS"),
        (Verdict::Fail, _) => p.red(&format!(
            "FAIL ({failed} of {} gates failed)",
            s.gates.len()
        )),
    };
    writeln!(out, "verdict: {verdict}")?;
    Ok(())
}

fn metrics_table(out: &mut dyn Write, cur: &Metrics, cand: &Metrics) -> io::Result<()> {
    let lat = |m: &Metrics, f: fn(&crate::metrics::LatencyMs) -> f64| m.latency_ms.as_ref().map(f);
    let rows: Vec<(&str, String, String)> = vec![
        (
            "accuracy",
            opt(cur.accuracy, MetricKind::Accuracy),
            opt(cand.accuracy, MetricKind::Accuracy),
        ),
        (
            "faithfulness",
            opt(cur.faithfulness, MetricKind::Faithfulness),
            opt(cand.faithfulness, MetricKind::Faithfulness),
        ),
        (
            "error rate",
            opt(cur.error_rate, MetricKind::ErrorRate),
            opt(cand.error_rate, MetricKind::ErrorRate),
        ),
        (
            "latency p50",
            opt(lat(cur, |l| l.p50), MetricKind::LatencyP50),
            opt(lat(cand, |l| l.p50), MetricKind::LatencyP50),
        ),
        (
            "latency p95",
            opt(lat(cur, |l| l.p95), MetricKind::LatencyP95),
            opt(lat(cand, |l| l.p95), MetricKind::LatencyP95),
        ),
        (
            "latency p99",
            opt(lat(cur, |l| l.p99), MetricKind::LatencyP99),
            opt(lat(cand, |l| l.p99), MetricKind::LatencyP99),
        ),
        (
            "cost per 1k",
            opt(cur.cost_per_1k, MetricKind::CostPer1k),
            opt(cand.cost_per_1k, MetricKind::CostPer1k),
        ),
        (
            "tokens in/out",
            format!(
                "{}/{}{}",
                cur.tokens.input,
                cur.tokens.output,
                if cur.tokens.estimated { "*" } else { "" }
            ),
            format!(
                "{}/{}{}",
                cand.tokens.input,
                cand.tokens.output,
                if cand.tokens.estimated { "*" } else { "" }
            ),
        ),
        (
            "requests",
            format!("{} ({} errors)", cur.requests, cur.errors),
            format!("{} ({} errors)", cand.requests, cand.errors),
        ),
    ];
    writeln!(out, "{:<15} {:>18}   candidate", "", "current")?;
    for (name, c, k) in rows {
        writeln!(out, "{name:<15} {c:>18}   {k}")?;
    }
    if cur.tokens.estimated || cand.tokens.estimated {
        writeln!(
            out,
            "{:<15} * estimated with a tokenizer: the API reported no usage",
            ""
        )?;
    }
    Ok(())
}

/// `accuracy  85.0% -> 88.0%  PASS (>= 80.8%)`, aligned.
fn gate_table(out: &mut dyn Write, gates: &[GateResult], p: &Paint) -> io::Result<()> {
    let width = gates
        .iter()
        .map(|g| g.metric.len())
        .max()
        .unwrap_or(0)
        .max(8);
    for g in gates {
        let cur = g.format(g.current);
        let cand = g.format(g.candidate);
        let op = if g.rule.contains(">=") { ">=" } else { "<=" };
        let limit = g.format(g.limit);
        let painted = match g.outcome {
            Outcome::Pass => p.green("PASS"),
            Outcome::Fail => p.red("FAIL"),
            Outcome::Skipped => p.dim("SKIP"),
        };
        write!(
            out,
            "{:<width$}  {cur:>9} -> {cand:<9}  {painted} ({op} {limit})",
            g.metric
        )?;
        if let Some(note) = &g.note {
            write!(out, "  {}", p.dim(note))?;
        }
        writeln!(out)?;
    }
    Ok(())
}
