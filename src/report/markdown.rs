//! `report.md`: the verdict, the gates, the metrics and the first regressions, for a pull-request
//! comment or `$GITHUB_STEP_SUMMARY` — always under GitHub's 65,536-character limit, whatever the
//! run's size.
//!
//! Each section is rendered within a budget of bytes (a character is at least one byte, so bytes
//! are the stricter count). The header, the warnings (at most [`WARNING_BYTES`]), the metrics and
//! the item counts are small by construction. The gates, which decide the verdict, come first and
//! take all they need of the rest, but for a little room the later sections need to say what they
//! left out; when thousands of per-tag gates cannot all fit, the failed ones are shown first. The
//! confusion matrices take at most half of what is then left, the regressions the rest. A section
//! cut to fit says so in a line of its own: what it left out, and where it is (`report.html`,
//! `summary.json`). Names, ids and labels are cut to a bounded length, on one line, so every table
//! stays a table.
//!
//! Everything from outside (answers, questions, names, errors, check details) is written through
//! [`esc`], [`esc_line`], [`html`] or [`code`], one per context it lands in: it reads as sent, and
//! makes no heading, link, HTML, mention or table cell of its own (docs/runs.md, "What reports
//! escape").

use std::borrow::Cow;
use std::fmt::Write as _;

use super::view::{Group, ItemRow, ItemView, SideRow};
use super::{Exporter, ReportInput, metric_rows};
use crate::gate::{GateResult, Outcome, Verdict};
use crate::record::Sides;
use crate::score::ClassificationMetrics;

/// GitHub refuses comments and step summaries over 65,536 characters; report.md stays under this
/// many bytes, well clear of it.
pub const MAX_BYTES: usize = 60_000;
/// The warnings take at most this much; the rest are in summary.json.
const WARNING_BYTES: usize = 8_000;
/// Left free by the gates, however many: the sections after them need a line each to say what
/// they left out.
const AFTER_GATES_BYTES: usize = 4_000;
/// Room kept for one "…and N more" line.
const NOTE_BYTES: usize = 300;
const SHOWN_REGRESSIONS: usize = 20;
const ANSWER_CHARS: usize = 400;
const ANSWER_LINES: usize = 4;
/// Model names, run ids and item ids are cut to this many characters.
const NAME_CHARS: usize = 200;
/// A gate's metric or rule in its table cell.
const CELL_CHARS: usize = 160;
/// A failure reason or a gate's note.
const NOTE_CHARS: usize = 300;
const WARNING_CHARS: usize = 1_000;
/// A class label in the confusion matrix.
const LABEL_CHARS: usize = 40;
/// A confusion matrix cut to fit shows at most this many classes: more columns are not read.
const MATRIX_LABELS: usize = 30;

pub struct Markdown;

impl Exporter for Markdown {
    fn render(&self, input: &ReportInput, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
        out.write_all(render(input).as_bytes())?;
        Ok(())
    }
}

fn render(input: &ReportInput) -> String {
    let s = input.summary;
    let names = s.side_names();
    let head = header(input);
    let warnings = warnings(&s.warnings);
    let metrics = metrics(input, &names);
    let counts = counts(input.view);
    let fixed = head.len() + warnings.len() + metrics.len() + counts.len();
    let gates = gates(
        &s.gates,
        &names,
        MAX_BYTES.saturating_sub(fixed + AFTER_GATES_BYTES),
        Some(s),
    );
    let left = MAX_BYTES.saturating_sub(fixed + gates.len());
    // The confusion matrices take at most half of what is left; the regressions the rest.
    let sides: Vec<(&String, &ClassificationMetrics)> = s
        .models
        .iter()
        .filter_map(|(side, m)| Some((&names[side], m.metrics.classification.as_ref()?)))
        .collect();
    let mut classification = String::new();
    for (name, c) in &sides {
        let share = left.saturating_sub(NOTE_BYTES) / 2 / sides.len();
        classification.push_str(&confusion(name, c, share));
    }
    let left = left.saturating_sub(classification.len());
    let regressions = regressions(input.view, &names, left);
    let mut out = String::with_capacity(MAX_BYTES);
    for part in [
        head,
        warnings,
        gates,
        metrics,
        classification,
        counts,
        regressions,
    ] {
        out.push_str(&part);
    }
    within_limit(out)
}

/// The budgets above keep the report under [`MAX_BYTES`]; should one be wrong, the report is still
/// cut to fit, at a line, and says so.
fn within_limit(mut out: String) -> String {
    if out.len() <= MAX_BYTES {
        return out;
    }
    debug_assert!(false, "report.md is {} bytes, over its budget", out.len());
    let mut end = MAX_BYTES - NOTE_BYTES;
    while !out.is_char_boundary(end) {
        end -= 1;
    }
    out.truncate(out[..end].rfind('\n').map_or(0, |i| i + 1));
    out.push_str(
        "\n…the rest of this report is left out to fit: see `report.html` in the run directory.\n",
    );
    out
}

/// The verdict, the models and the run: a few short lines.
fn header(input: &ReportInput) -> String {
    let s = input.summary;
    let mut out = String::new();
    let verdict = match (s.status, s.verdict) {
        (crate::metrics::Status::Interrupted, _) => "⚠️ INTERRUPTED (partial results)",
        (crate::metrics::Status::Failed, _) => "❌ RUN FAILED",
        (_, Verdict::Pass) => "✅ PASS",
        (_, Verdict::Fail) => "❌ FAIL",
        (_, Verdict::Inconclusive) => "⚠️ INCONCLUSIVE",
    };
    let names = s.side_names();
    let _ = writeln!(
        out,
        "## goldgate: {verdict} — {} {} vs {} {}\n",
        names.candidate,
        code(&s.models.candidate.model),
        names.current,
        code(&s.models.current.model)
    );
    if let Some(why) = s
        .failure
        .as_deref()
        .filter(|_| s.status == crate::metrics::Status::Failed)
    {
        let _ = writeln!(
            out,
            "> [!CAUTION]\n> The run could not be judged: {}.\n",
            esc_line(why)
        );
    }
    if let Some(d) = &s.diff_of {
        let _ = writeln!(
            out,
            "A comparison of stored runs: A = run {} (the baseline), B = run {}.\n",
            code(&d.a),
            code(&d.b)
        );
    }
    let golden = esc(&clip(&s.golden.name, NAME_CHARS));
    // `set@3` names no one on GitHub (an `@` after a word character is no mention), `set!@3` would.
    let unmention = if golden.ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
        ""
    } else {
        UNMENTION
    };
    let _ = writeln!(
        out,
        "Golden set **{golden}@{unmention}{}** ({} items, `{}`{}) · run {} · {} trial(s) per item · goldgate {}\n",
        s.golden.version,
        s.golden.items,
        crate::golden::short(&s.golden.sha256),
        if s.golden.locked {
            ""
        } else {
            ", **unlocked**"
        },
        code(&s.run_id),
        s.repeats,
        esc(&clip(&s.goldgate_version, NAME_CHARS)),
    );
    if let Some(q) = &s.sequential {
        let _ = writeln!(
            out,
            "**{}** (`--until-decided`, order seed {}).\n",
            esc(&q.describe()),
            q.seed
        );
    }
    if let Some(b) = s.baseline_text() {
        let _ = writeln!(out, "{}.\n", esc(&b));
    }
    if let Some(t) = s.shadow_text() {
        let _ = writeln!(out, "**{}**\n", esc(&t));
        for line in s.shadow_lines() {
            let _ = writeln!(out, "- {}", esc(&line));
        }
        let _ = writeln!(out);
    }
    if let Some(r) = &s.rerun_of {
        let _ = writeln!(
            out,
            "A re-run of the {} {} item(s) of run {}.\n",
            r.items,
            r.only.as_str(),
            code(&r.run_id)
        );
    }
    if let Some(m) = &s.machine {
        let _ = writeln!(out, "Machine: {}.\n", esc(&m.describe()));
    }
    out
}

/// The run's warnings, each cut to [`WARNING_CHARS`], as many as fit in [`WARNING_BYTES`].
fn warnings(all: &[String]) -> String {
    let mut out = String::new();
    for (i, w) in all.iter().enumerate() {
        let block = format!("> [!WARNING]\n> {}\n\n", esc_line(&clip(w, WARNING_CHARS)));
        let note = if i + 1 < all.len() { NOTE_BYTES } else { 0 };
        if out.len() + block.len() + note > WARNING_BYTES {
            let _ = writeln!(
                out,
                "…and {} more warning(s): see `summary.json` (`warnings`) or `report.html`.\n",
                all.len() - i
            );
            break;
        }
        out.push_str(&block);
    }
    out
}

/// The gate table, whole when it fits in `budget`. Else the gates that failed come first, then
/// the skipped, then the passed, as many as fit (in their order), and a line says how many of each
/// are left out.
/// The gates, each with both models' values and intervals, the paired change and the outcome
/// (`summary` is `None` only in tests of the layout).
fn gates(
    all: &[GateResult],
    names: &Sides<String>,
    budget: usize,
    summary: Option<&crate::summary::Summary>,
) -> String {
    let mut out = format!(
        "| Gate | Rule | {} | {} | Change | Limit | Result |\n|---|---|--:|--:|--:|--:|---|\n",
        capitalized(&names.current),
        capitalized(&names.candidate)
    );
    let rows: Vec<String> = all.iter().map(|g| gate_row(g, summary)).collect();
    if out.len() + rows.iter().map(String::len).sum::<usize>() <= budget {
        rows.iter().for_each(|r| out.push_str(r));
        return out;
    }
    let rank = |g: &GateResult| match g.outcome {
        Outcome::Fail => 0,
        Outcome::Inconclusive => 1,
        Outcome::Skipped => 2,
        Outcome::Pass => 3,
    };
    let mut order: Vec<usize> = (0..all.len()).collect();
    order.sort_by_key(|&i| rank(&all[i]));
    let mut shown = vec![false; all.len()];
    let mut used = out.len() + NOTE_BYTES;
    for i in order {
        if used + rows[i].len() > budget {
            break;
        }
        used += rows[i].len();
        shown[i] = true;
    }
    let mut left = [0usize; 4];
    for (i, row) in rows.iter().enumerate() {
        if shown[i] {
            out.push_str(row);
        } else {
            left[rank(&all[i])] += 1;
        }
    }
    let _ = writeln!(
        out,
        "\n…and {} more gate(s) ({} failed, {} inconclusive, {} skipped, {} passed): see `report.html` or `summary.json` (`gates`).",
        left.iter().sum::<usize>(),
        left[0],
        left[1],
        left[2],
        left[3]
    );
    out
}

fn gate_row(g: &GateResult, summary: Option<&crate::summary::Summary>) -> String {
    let result = match g.outcome {
        Outcome::Pass => "✅ PASS".to_owned(),
        Outcome::Fail => "❌ FAIL".to_owned(),
        Outcome::Inconclusive => format!(
            "⚠️ INCONCLUSIVE ({})",
            esc(&clip(
                super::undecided(g)
                    .as_deref()
                    .unwrap_or("")
                    .trim_start_matches("undecided: "),
                NOTE_CHARS
            ))
        ),
        Outcome::Skipped => format!(
            "⏭️ SKIP ({})",
            esc(&clip(g.note.as_deref().unwrap_or(""), NOTE_CHARS))
        ),
    };
    let (cur, cand, change) = match summary {
        Some(s) => (
            super::with_interval(&s.models.current.metrics, &g.metric),
            super::with_interval(&s.models.candidate.metrics, &g.metric),
            super::gate_change(s, g).unwrap_or_default(),
        ),
        None => (g.format(g.current), g.format(g.candidate), String::new()),
    };
    let how = match g.decide {
        crate::stats::Decide::Noninferiority => String::new(),
        d => format!(" ({})", d.as_str()),
    };
    format!(
        "| {} | {}{how} | {cur} | {cand} | {change} | {} | {result} |\n",
        esc(&clip(&g.metric.to_string(), CELL_CHARS)),
        esc(&clip(&g.rule, CELL_CHARS)),
        g.format(g.limit),
    )
}

/// The metrics side by side: a fixed set of rows.
fn metrics(input: &ReportInput, names: &Sides<String>) -> String {
    let m = &input.summary.models;
    let mut out = format!(
        "\n| Metric | {} | {} |\n|---|--:|--:|\n",
        capitalized(&names.current),
        capitalized(&names.candidate)
    );
    for (name, cur, cand) in metric_rows(&m.current.metrics, &m.candidate.metrics) {
        let _ = writeln!(out, "| {name} | {cur} | {cand} |");
    }
    out
}

/// One side's classification: macro-F1, accuracy and the confusion matrix, whole when it fits in
/// `budget`; else the classes with the most items (up to [`MATRIX_LABELS`]), the others summed in a
/// last row and column, and a line that says so.
fn confusion(side: &str, c: &ClassificationMetrics, budget: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n**Classification, {side}:** macro-F1 {:.3}, accuracy {:.1}%\n",
        c.macro_f1,
        c.accuracy * 100.0
    );
    let m = &c.confusion;
    let n = m.expected.len();
    let rows: Vec<u64> = m.counts.iter().map(|r| r.iter().sum()).collect();
    let columns: Vec<u64> = (0..m.predicted.len())
        .map(|j| {
            m.counts
                .iter()
                .map(|r| r.get(j).copied().unwrap_or(0))
                .sum()
        })
        .collect();
    // Every cell takes at least 4 bytes (" 0 |"): a matrix that cannot fit is not rendered whole.
    if (n.saturating_mul(m.predicted.len())).saturating_mul(4) <= budget {
        let whole = matrix(c, &(0..n).collect::<Vec<_>>(), &rows, &columns);
        if out.len() + whole.len() <= budget {
            out.push_str(&whole);
            return out;
        }
    }
    let whole_matrix =
        "The whole matrix: `report.html`, or `metrics.classification.confusion` in `summary.json`.";
    let mut by_items: Vec<usize> = (0..n).collect();
    by_items.sort_by_key(|&i| std::cmp::Reverse(rows[i])); // stable: label order among equals
    for k in (1..=MATRIX_LABELS.min(n.saturating_sub(1))).rev() {
        let mut keep = by_items[..k].to_vec();
        keep.sort_unstable();
        let table = matrix(c, &keep, &rows, &columns);
        let note = format!(
            "\nThe {k} most frequent of {n} labels are shown; the other {} are summed in the last row and column. {whole_matrix}\n",
            n - k
        );
        if out.len() + table.len() + note.len() <= budget {
            out.push_str(&table);
            out.push_str(&note);
            return out;
        }
    }
    let _ = writeln!(
        out,
        "The confusion matrix of {n} labels is left out to fit. {whole_matrix}"
    );
    out
}

/// The confusion matrix restricted to the expected classes `keep` (indices, in order) and the
/// unknown predictions' column; the classes left out, if any, summed in a last row and column.
/// `rows` and `columns` are the matrix's sums.
fn matrix(c: &ClassificationMetrics, keep: &[usize], rows: &[u64], columns: &[u64]) -> String {
    let m = &c.confusion;
    let n = m.expected.len();
    let cols: Vec<usize> = keep.iter().copied().chain(n..m.predicted.len()).collect();
    let rest = (keep.len() < n).then(|| format!("_{} other labels_", n - keep.len()));
    let mut out = String::from("| expected \\ predicted |");
    for &j in &cols {
        let _ = write!(out, " {} |", esc(&clip(&m.predicted[j], LABEL_CHARS)));
    }
    if let Some(rest) = &rest {
        let _ = write!(out, " {rest} |");
    }
    out.push_str("\n|---|");
    out.push_str(&"--:|".repeat(cols.len() + usize::from(rest.is_some())));
    out.push('\n');
    let cell = |i: usize, j: usize| m.counts[i].get(j).copied().unwrap_or(0);
    for &i in keep {
        let _ = write!(out, "| {} |", esc(&clip(&m.expected[i], LABEL_CHARS)));
        for &j in &cols {
            let _ = write!(out, " {} |", cell(i, j));
        }
        if rest.is_some() {
            let shown: u64 = cols.iter().map(|&j| cell(i, j)).sum();
            let _ = write!(out, " {} |", rows[i] - shown);
        }
        out.push('\n');
    }
    if let Some(rest) = &rest {
        let _ = write!(out, "| {rest} |");
        let mut left: u64 = rows.iter().sum::<u64>() - keep.iter().map(|&i| rows[i]).sum::<u64>();
        for &j in &cols {
            let v = columns[j] - keep.iter().map(|&i| cell(i, j)).sum::<u64>();
            left -= v;
            let _ = write!(out, " {v} |");
        }
        let _ = writeln!(out, " {left} |");
    }
    out
}

fn counts(view: &ItemView) -> String {
    format!(
        "\n**Items:** {} regressed, {} improved, {} failing on both, {} unchanged{}.\n\n",
        view.count(Group::Regressed),
        view.count(Group::Improved),
        view.count(Group::BothFail),
        view.count(Group::Unchanged),
        match view.count(Group::Incomplete) {
            0 => String::new(),
            n => format!(", {n} incomplete"),
        }
    )
}

/// The first regressions in detail, as many as fit in `budget` (at most [`SHOWN_REGRESSIONS`]),
/// and a line for the others.
fn regressions(view: &ItemView, names: &Sides<String>, budget: usize) -> String {
    let mut out = String::new();
    let total = view.count(Group::Regressed);
    if total == 0 {
        return out;
    }
    let _ = writeln!(out, "### Regressions ({total})\n");
    let mut shown = 0;
    for row in view.group(Group::Regressed).take(SHOWN_REGRESSIONS) {
        let block = item(row, view, names);
        if out.len() + block.len() + NOTE_BYTES > budget {
            break;
        }
        out.push_str(&block);
        shown += 1;
    }
    if total > shown {
        let _ = writeln!(
            out,
            "…and {} more regression(s): see `report.html` in the run directory.\n",
            total - shown
        );
    }
    out
}

fn item(row: &ItemRow, view: &ItemView, names: &Sides<String>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<details><summary><code>{}</code> — {}</summary>\n",
        html(&clip(row.id, NAME_CHARS)),
        html(&clip(&row.candidate.failure(), NOTE_CHARS))
    );
    let _ = writeln!(
        out,
        "**Question:** {}\n",
        esc(&cut(
            &view.items.question(row.index),
            ANSWER_CHARS,
            ANSWER_LINES
        ))
    );
    side(&mut out, &capitalized(&names.current), &row.current);
    side(&mut out, &capitalized(&names.candidate), &row.candidate);
    out.push_str("</details>\n\n");
    out
}

fn side(out: &mut String, label: &str, s: &SideRow) {
    let status = if s.passed == s.trials && s.trials > 0 {
        "pass".to_owned()
    } else {
        format!("fail: {}", clip(&s.failure(), NOTE_CHARS))
    };
    let _ = writeln!(out, "**{label}** ({}):\n", esc(&status));
    match &s.answer {
        Some(a) => {
            for line in cut(a, ANSWER_CHARS, ANSWER_LINES).lines() {
                let _ = writeln!(out, "> {}", esc_line(line));
            }
            out.push('\n');
        }
        None => out.push_str("> _(no answer)_\n\n"),
    }
    if !s.unsupported.is_empty() {
        let claims: Vec<String> = s
            .unsupported
            .iter()
            .take(3)
            .map(|(c, _)| esc(&cut(c, 160, 1)))
            .collect();
        let _ = writeln!(
            out,
            "Not supported by the context: {}\n",
            claims.join(" · ")
        );
    }
}

/// At most `chars` characters and `lines` lines, with an ellipsis when cut.
fn cut(text: &str, chars: usize, lines: usize) -> String {
    let mut out: String = text.lines().take(lines).collect::<Vec<_>>().join("\n");
    // By lines, not bytes: `\r\n` endings are shorter once joined, and no line was left out.
    let mut cut = text.trim_end().lines().nth(lines).is_some();
    if let Some((i, _)) = out.char_indices().nth(chars) {
        // Back to a word boundary, as everywhere a person reads a cut text.
        let end = out[..i]
            .rfind(char::is_whitespace)
            .filter(|&b| b >= i / 2)
            .unwrap_or(i);
        out.truncate(end);
        cut = true;
    }
    if cut {
        out.push('…');
    }
    out
}

/// GitHub links `@name` and `@org/team` and notifies them, in text and in HTML blocks alike (not in
/// code). A zero-width space after the `@`, written as an entity, shows `@name` as it was but no
/// longer names anyone: what Dependabot and Renovate do with the release notes they quote.
const UNMENTION: &str = "&#8203;";

/// Outside text (an answer, a question, a model's or a golden set's name, an error, a check's
/// detail) as Markdown that GitHub shows as written, on one line: no HTML (`<`, `>`, `&` are
/// entities), no link, image, emphasis, code, table cell break, heading or math of its own (their
/// punctuation is backslash-escaped), no `@mention` ([`UNMENTION`]), line breaks as spaces, and
/// control and invisible characters shown as `\u{1b}` ([`crate::text::escaped`]). Inline only:
/// text that starts a line goes through [`esc_line`].
pub(super) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
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
                    out.push_str(UNMENTION);
                }
            }
            c => push_visible(&mut out, c),
        }
    }
    out
}

/// [`esc`] for text at the start of a line (in a quote), whose start must not make a block of its
/// own either: indentation (an indented code block) is dropped, and a leading `-`, `+` or `=` (a
/// setext heading's underline, a thematic break, a list) or the `.` or `)` of `1.` (a numbered
/// list) is escaped.
fn esc_line(text: &str) -> String {
    let mut out = esc(text.trim_start());
    let digits = out.bytes().take_while(u8::is_ascii_digit).count();
    if out.starts_with(['-', '+', '=']) {
        out.insert(0, '\\');
    } else if (1..=9).contains(&digits) && out[digits..].starts_with(['.', ')']) {
        out.insert(digits, '\\');
    }
    out
}

/// A character of outside text as it may be shown: a line break as a space, a control or invisible
/// character escaped.
fn push_visible(out: &mut String, c: char) {
    if crate::text::breaks_line(c) {
        out.push(' ');
    } else if c.is_control() || crate::text::is_hidden(c) {
        out.push_str(&crate::text::escaped(c));
    } else {
        out.push(c);
    }
}

/// Outside text inside an HTML block (the `<summary>` of a regression), where Markdown is not
/// read but HTML is: entities for `&`, `<`, `>` and quotes, no `@mention` ([`UNMENTION`]), on one
/// line, since a blank line would end the block, and no `##[` (report.md is printed in CI logs too:
/// see [`crate::text::printable`]).
fn html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '[' if crate::text::opens_log_command(&out) => out.push_str("&#91;"),
            '@' => {
                out.push('@');
                if chars.peek().is_some_and(char::is_ascii_alphanumeric) {
                    out.push_str(UNMENTION);
                }
            }
            c => push_visible(&mut out, c),
        }
    }
    out
}

/// `current` → `Current`, as a heading reads.
fn capitalized(name: &str) -> String {
    let mut chars = name.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

/// A name or an id in inline code, cut to [`NAME_CHARS`], on one line: the span's fence is one
/// backtick longer than the longest run of backticks inside, so nothing in it can end the span
/// (nor is anything in it read as Markdown, HTML or a mention). A code span shows escapes as they
/// are, so what must not be there is written as the terminal writes it ([`crate::text::printable`]).
/// Not for table cells, where a `|` would still end the cell.
fn code(text: &str) -> String {
    let mut inner = crate::text::printable(&clip(text, NAME_CHARS)).into_owned();
    let (mut longest, mut run) = (0, 0);
    for c in inner.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat(longest + 1);
    // One space either side is taken off by the reader: needed when the text starts or ends with a
    // backtick, and to keep spaces that both ends have.
    let pad = if inner.trim().is_empty() {
        inner = " ".to_owned();
        ""
    } else if inner.starts_with('`')
        || inner.ends_with('`')
        || (inner.starts_with(' ') && inner.ends_with(' '))
    {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{inner}{pad}{fence}")
}

/// `text` as it is when it has at most `max` characters; else on one line, cut at a word boundary
/// to `max` characters with an ellipsis.
fn clip(text: &str, max: usize) -> Cow<'_, str> {
    if text.chars().nth(max).is_none() {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(crate::text::ellipsize(text, max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_untrusted_text() {
        assert_eq!(esc("<script>*x*|"), "&lt;script&gt;\\*x\\*\\|");
        assert_eq!(cut("a\nb\nc", 100, 2), "a\nb…");
        assert_eq!(cut("abcdef", 3, 5), "abc…");
        assert_eq!(cut("abc", 3, 5), "abc");
        assert_eq!(cut("one\r\ntwo\r\n", 100, 2), "one\ntwo");
        assert_eq!(clip("a  b|c", 10), "a  b|c", "short text is left as it is");
        let long = format!("{}\n| x |", "word ".repeat(100));
        let cell = esc(&clip(&long, 40));
        assert!(cell.chars().count() <= 41 && !cell.contains('\n'), "{cell}");
        assert_eq!(code("a`b\nc"), "``a`b c``");
        assert_eq!(html("<a>\n&"), "&lt;a&gt; &amp;");
    }

    #[test]
    fn outside_text_makes_no_markdown_of_its_own() {
        for (outside, shown) in [
            ("# Heading", "\\# Heading"),
            (
                "[click](https://evil.example)",
                "\\[click\\](https://evil.example)",
            ),
            (
                "![x](https://evil.example/x.png)",
                "\\!\\[x\\](https://evil.example/x.png)",
            ),
            ("<https://evil.example>", "&lt;https://evil.example&gt;"),
            (
                "</details><img src=x onerror=alert(1)>",
                "&lt;/details&gt;&lt;img src=x onerror=alert(1)&gt;",
            ),
            (
                "ask @octocat or @github/security",
                "ask @&#8203;octocat or @&#8203;github/security",
            ),
            (
                "mail a@b.example, @ alone",
                "mail a@&#8203;b.example, @ alone",
            ),
            ("a | b\nc", "a \\| b c"),
            ("```fence", "\\`\\`\\`fence"),
            ("costs $5 and $x$", "costs \\$5 and \\$x\\$"),
            ("&lt;b&gt;", "&amp;lt;b&amp;gt;"),
            ("\u{1b}[31m\u{202e}x\u{0}", "\\u{1b}\\[31m\\u{202e}x\\u{0}"),
        ] {
            assert_eq!(esc(outside), shown, "{outside:?}");
        }
        for (line, shown) in [
            ("===", "\\==="),
            ("---", "\\---"),
            ("   - item", "\\- item"),
            ("+ item", "\\+ item"),
            ("1990. A year", "1990\\. A year"),
            ("2) second", "2\\) second"),
            ("        indented code", "indented code"),
            ("> quote", "&gt; quote"),
            ("# h", "\\# h"),
            ("12345678901. not a list", "12345678901. not a list"),
        ] {
            assert_eq!(esc_line(line), shown, "{line:?}");
        }
        assert_eq!(
            html("fail: @team </summary></details> \"q\""),
            "fail: @&#8203;team &lt;/summary&gt;&lt;/details&gt; &quot;q&quot;"
        );
        assert_eq!(code("gpt-4o"), "`gpt-4o`");
        assert_eq!(code("`a``"), "``` `a`` ```");
        assert_eq!(code(" a "), "`  a  `");
        assert_eq!(code(""), "` `");
        assert_eq!(code("x\u{1b}[2J"), "`x\\u{1b}[2J`");
        assert_eq!(code("##[error]x"), "`##\\u{5b}error]x`");
        assert_eq!(
            html("see ##[error] ##vso[x]"),
            "see ##&#91;error] ##vso&#91;x]"
        );
    }

    /// What CommonMark reads of a text that is one code span: its content, or `None` when the text
    /// is not exactly one span.
    fn code_span_content(md: &str) -> Option<String> {
        let open = md.chars().take_while(|&c| c == '`').count();
        let rest = md.get(open..)?;
        let fence = "`".repeat(open);
        let close = rest.strip_suffix(fence.as_str())?;
        // No run of exactly `open` backticks inside, or the span would end there.
        let runs_inside = close.split(|c| c != '`').any(|run| run.len() == open);
        if open == 0 || runs_inside || close.ends_with('`') {
            return None;
        }
        let stripped = match close.strip_prefix(' ').and_then(|c| c.strip_suffix(' ')) {
            Some(inner) if !close.trim().is_empty() => inner,
            _ => close,
        };
        Some(stripped.to_owned())
    }

    /// Any text: what breaks lines, tables, spans, mentions and terminals, and anything at all.
    fn hostile_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        proptest::collection::vec(
            prop_oneof![
                3 => "[a-z ]{1,5}",
                3 => "[-=+#>|`*_\\[\\]()!<>&@$~\\\\.:0-9]{1,4}",
                1 => "[\\t\\n\\r\\x0B\\x0C\\u{85}\\u{2028}]",
                1 => "[\\x00-\\x1F\\x7F\\u{80}-\\u{9F}\\u{200B}\\u{202E}\\u{2066}\\u{FEFF}]",
                1 => any::<char>().prop_map(String::from),
            ],
            0..30,
        )
        .prop_map(|parts| parts.concat())
    }

    /// Whether the character at byte `i` of `s` is escaped by an odd run of backslashes before it.
    fn escaped_at(s: &str, i: usize) -> bool {
        s[..i].bytes().rev().take_while(|&b| b == b'\\').count() % 2 == 1
    }

    proptest::proptest! {
        #[test]
        fn a_cell_stays_one_cell_of_plain_text(text in hostile_text()) {
            let cell = esc(&text);
            proptest::prop_assert!(!cell.chars().any(|c| c.is_control() || crate::text::is_hidden(c) || crate::text::breaks_line(c)), "{cell:?}");
            for (i, _) in cell.match_indices('@') {
                proptest::prop_assert!(!cell[i + 1..].starts_with(|n: char| n.is_ascii_alphanumeric()), "a mention in {cell:?}");
            }
            // Past the mentions broken on purpose, every `&` starts an entity goldgate wrote.
            let rest = cell.replace(UNMENTION, "");
            for (i, c) in rest.char_indices() {
                if matches!(c, '|' | '`' | '[' | ']' | '*' | '_' | '#' | '!' | '$' | '~') {
                    proptest::prop_assert!(escaped_at(&rest, i), "unescaped {c:?} in {cell:?}");
                }
                proptest::prop_assert!(c != '<' && c != '>', "{cell:?}");
                if c == '&' {
                    proptest::prop_assert!(["&amp;", "&lt;", "&gt;"].iter().any(|e| rest[i..].starts_with(e)), "{cell:?}");
                }
            }
        }

        #[test]
        fn a_quoted_line_starts_no_block(text in hostile_text()) {
            let line = esc_line(&text);
            let digits = line.bytes().take_while(u8::is_ascii_digit).count();
            let numbered = (1..=9).contains(&digits) && line[digits..].starts_with(['.', ')']);
            let marker = line.starts_with([' ', '\t', '-', '+', '=', '#', '>', '<', '|', '`', '~', '*', '_']);
            proptest::prop_assert!(!marker && !numbered, "{line:?}");
        }

        #[test]
        fn a_code_span_holds_any_name_whole(text in hostile_text()) {
            let md = code(&text);
            let content = code_span_content(&md);
            proptest::prop_assert!(content.is_some(), "{md:?} is not one code span");
            let mut shown = crate::text::printable(&clip(&text, NAME_CHARS)).into_owned();
            if shown.trim().is_empty() {
                shown = " ".to_owned();
            }
            proptest::prop_assert_eq!(content.unwrap(), shown);
        }
    }

    fn classification(labels: usize) -> ClassificationMetrics {
        let mut c = crate::score::Confusion::default();
        for k in 0..labels {
            // Class k has k + 1 items: one predicted as the next class, one unknown.
            let label = format!("c|{k:03}");
            for i in 0..=k {
                let predicted = match i {
                    0 => format!("c|{:03}", (k + 1) % labels),
                    1 => "nonsense".to_owned(),
                    _ => label.clone(),
                };
                c.add(&label, &predicted);
            }
        }
        c.metrics().unwrap()
    }

    /// The numbers of a matrix row, its label left out.
    fn numbers(row: &str) -> Vec<u64> {
        row.split(" | ")
            .skip(1)
            .map(|v| v.trim_matches([' ', '|']).parse().unwrap())
            .collect()
    }

    #[test]
    fn a_small_confusion_matrix_is_whole() {
        let c = classification(3);
        let text = confusion("current", &c, 10_000);
        assert!(
            text.contains("| expected \\ predicted | c\\|000 | c\\|001 | c\\|002 | (other) |"),
            "{text}"
        );
        assert!(!text.contains("labels"), "{text}");
    }

    #[test]
    fn a_large_confusion_matrix_keeps_the_frequent_classes_and_sums_the_rest() {
        let labels = 200;
        let c = classification(labels);
        let budget = 8_000;
        let text = confusion("candidate", &c, budget);
        assert!(text.len() <= budget, "{} bytes", text.len());
        let rows: Vec<&str> = text.lines().filter(|l| l.starts_with('|')).collect();
        let k = rows.len() - 3; // header, delimiter, the others' row
        assert!(
            (2..=MATRIX_LABELS).contains(&k),
            "{k} classes shown:\n{text}"
        );
        assert!(
            text.contains(&format!(
                "The {k} most frequent of {labels} labels are shown; the other {} are summed",
                labels - k
            )),
            "{text}"
        );
        assert!(text.contains("`report.html`") && text.contains("`summary.json`"));
        // The most frequent classes are the last ones; every item is counted once.
        assert!(
            rows[2].starts_with(&format!("| c\\|{:03} |", labels - k)),
            "{}",
            rows[2]
        );
        assert!(
            rows[0].ends_with(&format!("| (other) | _{} other labels_ |", labels - k)),
            "{}",
            rows[0]
        );
        let total: u64 = rows[2..].iter().flat_map(|r| numbers(r)).sum();
        assert_eq!(total, (1..=labels as u64).sum::<u64>());
        let unknown: u64 = rows[2..].iter().map(|r| numbers(r)[k]).sum();
        assert_eq!(
            unknown,
            labels as u64 - 1,
            "every class but the first has one unknown"
        );
        // With no room even for one class, the matrix is left out, and that is said.
        let text = confusion("candidate", &c, 300);
        assert!(
            text.contains("The confusion matrix of 200 labels is left out to fit."),
            "{text}"
        );
        assert!(text.len() <= 300);
    }

    #[test]
    fn too_many_gates_show_the_failed_first_and_count_the_rest() {
        let gate = |i: usize| {
            let outcome = [Outcome::Pass, Outcome::Fail, Outcome::Skipped][i % 3];
            GateResult {
                metric: crate::metrics::MetricRef {
                    kind: crate::metrics::MetricKind::Accuracy,
                    tag: Some(format!("{}|{i}", "t".repeat(500))),
                },
                rule: "candidate >= 0.5".into(),
                current: Some(1.0),
                candidate: Some(0.5),
                limit: Some(0.5),
                pass: outcome != Outcome::Fail,
                outcome,
                note: (outcome == Outcome::Skipped).then(|| "why\n".repeat(200)),
                bound: crate::gate::Bound::Min(0.5),
                decide: crate::stats::Decide::Point,
                point: None,
                test: None,
            }
        };
        let names = Sides::new(|side| side.as_str().to_owned());
        let few: Vec<GateResult> = (0..6).map(gate).collect();
        let whole = gates(&few, &names, 60_000, None);
        assert_eq!(whole.lines().count(), 8, "{whole}");
        assert!(!whole.contains("more gate(s)"));
        let many: Vec<GateResult> = (0..3000).map(gate).collect();
        let budget = 20_000;
        let text = gates(&many, &names, budget, None);
        assert!(text.len() <= budget, "{} bytes", text.len());
        let rows: Vec<&str> = text
            .lines()
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .collect();
        assert!(
            rows.len() > 20 && rows.iter().all(|r| r.ends_with("| ❌ FAIL |")),
            "{text}"
        );
        assert!(rows.iter().all(|r| r.chars().count() < 400), "{}", rows[0]);
        assert!(text.ends_with(&format!(
            "\n…and {} more gate(s) ({} failed, 0 inconclusive, 1000 skipped, 1000 passed): see `report.html` or `summary.json` (`gates`).\n",
            3000 - rows.len(),
            1000 - rows.len()
        )), "{text}");
    }
}
