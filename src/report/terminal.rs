//! The terminal summary: metrics side by side, one line per gate, the verdict. Everything in it
//! that goldgate did not write itself (names from files, ids, a server's errors, a check's
//! details) goes through [`printable`]: a CI log reads this output, and obeys some of its lines.

use std::io::{self, IsTerminal, Write};

use crate::gate::{Outcome, Verdict};
use crate::metrics::Metrics;
use crate::record::Sides;
use crate::text::printable;

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

pub fn print(
    out: &mut dyn Write,
    s: &Summary,
    view: &super::ItemView,
    colour: bool,
) -> io::Result<()> {
    let p = Paint(colour);
    let (cur, cand) = (&s.models.current, &s.models.candidate);
    writeln!(
        out,
        "{} {}@{} ({} items, sha256 {}{}), {} trial(s) per item and model",
        p.bold("golden set"),
        printable(&s.golden.name),
        s.golden.version,
        s.golden.items,
        crate::golden::short(&s.golden.sha256),
        if s.golden.locked { "" } else { ", UNLOCKED" },
        s.repeats
    )?;
    if let Some(q) = &s.sequential {
        writeln!(out, "  sequential {} (order seed {})", q.describe(), q.seed)?;
    }
    if let Some(b) = s.baseline_text() {
        writeln!(out, "  baseline   {}", printable(&b))?;
    }
    if let Some(t) = s.shadow_text() {
        writeln!(out, "  shadow     {}", printable(&t))?;
        for line in s.shadow_lines() {
            writeln!(out, "             {}", printable(&line))?;
        }
    }
    if let Some(r) = &s.rerun_of {
        writeln!(
            out,
            "  a re-run of the {} {} item(s) of run {}",
            r.items,
            r.only.as_str(),
            printable(&r.run_id)
        )?;
    }
    if let Some(m) = &s.machine {
        writeln!(out, "  machine    {}", m.describe())?;
    }
    let names = s.side_names();
    if let Some(d) = &s.diff_of {
        writeln!(
            out,
            "  A = run {} (the baseline), B = run {}",
            printable(&d.a),
            printable(&d.b)
        )?;
    }
    let name_width = names
        .values()
        .iter()
        .map(|n| n.chars().count())
        .max()
        .unwrap_or(0);
    writeln!(
        out,
        "  {:<name_width$}  {}  ({})",
        names.current,
        printable(&cur.model),
        printable(&cur.provider)
    )?;
    writeln!(
        out,
        "  {:<name_width$}  {}  ({})",
        names.candidate,
        printable(&cand.model),
        printable(&cand.provider)
    )?;
    writeln!(out)?;
    metrics_table(out, &names, &cur.metrics, &cand.metrics)?;
    for (side, m) in s.models.iter() {
        let (name, m) = (&names[side], &m.metrics);
        if m.empty_answers > 0 {
            writeln!(
                out,
                "{} {} of {} {name} answers are empty (results.jsonl has them); the usual causes \
                 are a max_tokens too small for a model that thinks first, a prompt format the \
                 model does not follow, or a server that ends answers early",
                p.red("warning:"),
                m.empty_answers,
                m.requests - m.errors,
            )?;
        }
        if m.echoed_answers > 0 {
            writeln!(
                out,
                "{} {} of {} {name} answers repeat the prompt or the context instead of answering; \
                 they fail their items ([scoring] echo)",
                p.red("warning:"),
                m.echoed_answers,
                m.requests - m.errors,
            )?;
        }
    }
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
    const TOP: usize = 10;
    let regressed: Vec<_> = view
        .group(super::view::Group::Regressed)
        .take(TOP)
        .collect();
    if !regressed.is_empty() {
        writeln!(out, "top regressions:")?;
        let ids: Vec<_> = regressed.iter().map(|r| printable(r.id)).collect();
        let width = ids.iter().map(|id| id.chars().count()).max().unwrap_or(0);
        for (r, id) in regressed.iter().zip(&ids) {
            writeln!(
                out,
                "  {id:<width$}  {}",
                // Escaped first: ellipsize would drop an ESC silently, and its `[31m` would stay.
                crate::text::ellipsize(&printable(&r.candidate.failure()), 100)
            )?;
        }
        if d.regressed > TOP {
            writeln!(
                out,
                "  … and {} more (report.html lists them all)",
                d.regressed - TOP
            )?;
        }
    }
    for (side, m) in s.models.iter() {
        if let Some(r) = &m.metrics.repeats {
            writeln!(out, "repeats, {}: {}", names[side], super::repeats_line(r))?;
        }
    }
    writeln!(out)?;
    gate_table(out, s, &p)?;
    let note = super::statistics_note(s);
    if !note.is_empty() {
        writeln!(out, "{}", p.dim(&note))?;
    }
    writeln!(out)?;
    let failed = s.gates_with(Outcome::Fail);
    let undecided = s.gates_with(Outcome::Inconclusive);
    let verdict = match (s.verdict, s.status) {
        (_, crate::metrics::Status::Interrupted) => p.red("INTERRUPTED (partial results)"),
        (_, crate::metrics::Status::Failed) => p.red("RUN FAILED"),
        (Verdict::Pass, _) => p.green("PASS"),
        (Verdict::Fail, _) => p.red(&format!(
            "FAIL ({failed} of {} gates failed)",
            s.gates.len()
        )),
        (Verdict::Inconclusive, _) => p.bold(&format!(
            "INCONCLUSIVE ({undecided} of {} gates undecided: no gate failed, and the data cannot yet show the others hold; more items or repeats would decide)",
            s.gates.len()
        )),
    };
    if let Some(why) = s
        .failure
        .as_deref()
        .filter(|_| s.status == crate::metrics::Status::Failed)
    {
        writeln!(out, "run failed: {}", crate::text::printable(why))?;
    }
    writeln!(out, "verdict: {verdict}")?;
    Ok(())
}

/// Two right-aligned value columns under the sides' names, the row names padded to the longest.
fn metrics_table(
    out: &mut dyn Write,
    names: &Sides<String>,
    cur: &Metrics,
    cand: &Metrics,
) -> io::Result<()> {
    let rows = super::metric_rows(cur, cand);
    let width = |col: fn(&(&str, String, String)) -> usize, head: &str| {
        rows.iter()
            .map(col)
            .chain([head.chars().count()])
            .max()
            .unwrap_or(0)
    };
    let name_w = width(|r| r.0.chars().count(), "");
    let cur_w = width(|r| r.1.chars().count(), &names.current);
    writeln!(
        out,
        "{:<name_w$}  {:>cur_w$}   {}",
        "", names.current, names.candidate
    )?;
    for (name, c, k) in &rows {
        writeln!(out, "{name:<name_w$}  {c:>cur_w$}   {k}")?;
    }
    Ok(())
}

/// `accuracy  62.5% [48.4, 74.9] -> 66.7% [52.5, 78.3]  Δ +4.2 [-6.1, +14.5] pts  INCONCLUSIVE
/// (>= 59.4%)`, aligned; an undecided gate says below what would decide it.
fn gate_table(out: &mut dyn Write, s: &Summary, p: &Paint) -> io::Result<()> {
    let gates = &s.gates;
    let (cur_m, cand_m) = (&s.models.current.metrics, &s.models.candidate.metrics);
    let rows: Vec<[String; 4]> = gates
        .iter()
        .map(|g| {
            [
                printable(&g.metric.to_string()).into_owned(),
                super::with_interval(cur_m, &g.metric),
                super::with_interval(cand_m, &g.metric),
                super::gate_change(s, g).unwrap_or_default(),
            ]
        })
        .collect();
    let width = |col: usize, least: usize| {
        rows.iter()
            .map(|r| r[col].chars().count())
            .max()
            .unwrap_or(0)
            .max(least)
    };
    let (w0, w1, w2, w3) = (width(0, 8), width(1, 0), width(2, 0), width(3, 0));
    for (g, [metric, cur, cand, change]) in gates.iter().zip(&rows) {
        let op = if g.rule.contains(">=") { ">=" } else { "<=" };
        let limit = g.format(g.limit);
        let painted = match g.outcome {
            Outcome::Pass => p.green("PASS"),
            Outcome::Fail => p.red("FAIL"),
            Outcome::Inconclusive => p.bold("INCONCLUSIVE"),
            Outcome::Skipped => p.dim("SKIP"),
        };
        let how = match g.decide {
            crate::stats::Decide::Noninferiority => String::new(),
            d => format!(", decide = {}", d.as_str()),
        };
        write!(
            out,
            "{metric:<w0$}  {cur:>w1$} -> {cand:<w2$}  {change:<w3$}  {painted} ({op} {limit}{how})"
        )?;
        if let Some(note) = &g.note {
            write!(out, "  {}", p.dim(&printable(note)))?;
        }
        writeln!(out)?;
        if let Some(why) = super::undecided(g) {
            writeln!(out, "{:w0$}  {}", "", p.dim(&printable(&why)))?;
        }
    }
    Ok(())
}
