//! `report.md`: the verdict, the gates, the metrics and the first regressions, for a pull-request
//! comment or `$GITHUB_STEP_SUMMARY` — always under GitHub's 65,536-character limit.

use std::fmt::Write as _;

use super::view::{Group, ItemRow, ItemView, SideRow};
use super::{Exporter, ReportInput, metric_rows};
use crate::gate::{Outcome, Verdict};

/// GitHub refuses comments over 65,536 characters; stay well clear of it.
pub const MAX_CHARS: usize = 60_000;
const SHOWN_REGRESSIONS: usize = 20;
const ANSWER_CHARS: usize = 400;
const ANSWER_LINES: usize = 4;

pub struct Markdown;

impl Exporter for Markdown {
    fn file_name(&self) -> &'static str {
        "report.md"
    }

    fn render(&self, input: &ReportInput, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
        // Fewer regressions in detail until it fits; the header and tables always do.
        let mut shown = SHOWN_REGRESSIONS;
        loop {
            let text = render(input, shown);
            if text.chars().count() <= MAX_CHARS || shown == 0 {
                out.write_all(text.as_bytes())?;
                return Ok(());
            }
            shown /= 2;
        }
    }
}

fn render(input: &ReportInput, shown: usize) -> String {
    let s = input.summary;
    let mut out = String::new();
    let verdict = match (s.status, s.verdict) {
        (crate::runner::Status::Interrupted, _) => "⚠️ INTERRUPTED (partial results)",
        (crate::runner::Status::Failed, _) => "❌ RUN FAILED",
        (_, Verdict::Pass) => "✅ PASS",
        (_, Verdict::Fail) => "❌ FAIL",
        (_, Verdict::Inconclusive) => "⚠️ INCONCLUSIVE",
    };
    let names = s.side_names();
    let _ = writeln!(
        out,
        "## goldgate: {verdict} — {} `{}` vs {} `{}`\n",
        names[1],
        code(&s.models.candidate.model),
        names[0],
        code(&s.models.current.model)
    );
    if let Some(d) = &s.diff_of {
        let _ = writeln!(
            out,
            "A comparison of stored runs: A = run `{}` (the baseline), B = run `{}`.\n",
            code(&d.a),
            code(&d.b)
        );
    }
    let _ = writeln!(
        out,
        "Golden set **{}@{}** ({} items, `{}`{}) · run `{}` · {} trial(s) per item · goldgate {}\n",
        esc(&s.golden.name),
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
        esc(&s.goldgate_version),
    );
    if let Some(r) = &s.rerun_of {
        let _ = writeln!(
            out,
            "A re-run of the {} {} item(s) of run `{}`.\n",
            r.items,
            r.only.as_str(),
            code(&r.run_id)
        );
    }
    if let Some(m) = &s.machine {
        let _ = writeln!(out, "Machine: {}.\n", esc(&m.describe()));
    }
    for w in &s.warnings {
        let _ = writeln!(out, "> [!WARNING]\n> {}\n", esc(w));
    }

    let _ = write!(
        out,
        "| Gate | Rule | {} | {} | Limit | Result |\n|---|---|--:|--:|--:|---|\n",
        capitalized(&names[0]),
        capitalized(&names[1])
    );
    for g in &s.gates {
        let result = match g.outcome {
            Outcome::Pass => "✅ PASS".to_owned(),
            Outcome::Fail => "❌ FAIL".to_owned(),
            Outcome::Skipped => format!("⏭️ SKIP ({})", esc(g.note.as_deref().unwrap_or(""))),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {result} |",
            esc(&g.metric),
            esc(&g.rule),
            g.format(g.current),
            g.format(g.candidate),
            g.format(g.limit),
        );
    }

    let _ = write!(
        out,
        "\n| Metric | {} | {} |\n|---|--:|--:|\n",
        capitalized(&names[0]),
        capitalized(&names[1])
    );
    for (name, cur, cand) in metric_rows(&s.models.current.metrics, &s.models.candidate.metrics) {
        let _ = writeln!(out, "| {name} | {cur} | {cand} |");
    }

    for (side, m) in [
        (&names[0], &s.models.current.metrics),
        (&names[1], &s.models.candidate.metrics),
    ] {
        if let Some(c) = &m.classification {
            let _ = writeln!(
                out,
                "\n**Classification, {side}:** macro-F1 {:.3}, accuracy {:.1}%\n",
                c.macro_f1,
                c.accuracy * 100.0
            );
            let _ = write!(out, "| expected \\ predicted |");
            for p in &c.confusion.predicted {
                let _ = write!(out, " {} |", esc(p));
            }
            out.push_str("\n|---|");
            out.push_str(&"--:|".repeat(c.confusion.predicted.len()));
            out.push('\n');
            for (label, row) in c.confusion.expected.iter().zip(&c.confusion.counts) {
                let _ = write!(out, "| {} |", esc(label));
                for n in row {
                    let _ = write!(out, " {n} |");
                }
                out.push('\n');
            }
        }
    }

    let view = input.view;
    let _ = writeln!(
        out,
        "\n**Items:** {} regressed, {} improved, {} failing on both, {} unchanged{}.\n",
        view.count(Group::Regressed),
        view.count(Group::Improved),
        view.count(Group::BothFail),
        view.count(Group::Unchanged),
        match view.count(Group::Incomplete) {
            0 => String::new(),
            n => format!(", {n} incomplete"),
        }
    );
    regressions(&mut out, view, shown, &names);
    out
}

fn regressions(out: &mut String, view: &ItemView, shown: usize, names: &[String; 2]) {
    let total = view.count(Group::Regressed);
    if total == 0 {
        return;
    }
    let _ = writeln!(out, "### Regressions ({total})\n");
    for row in view.group(Group::Regressed).take(shown) {
        item(out, row, view, names);
    }
    if total > shown {
        let _ = writeln!(
            out,
            "…and {} more regression(s): see `report.html` in the run directory.\n",
            total - shown
        );
    }
}

fn item(out: &mut String, row: &ItemRow, view: &ItemView, names: &[String; 2]) {
    let _ = writeln!(
        out,
        "<details><summary><code>{}</code> — {}</summary>\n",
        html(row.id),
        esc(&row.candidate.failure())
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
    side(out, &capitalized(&names[0]), &row.current);
    side(out, &capitalized(&names[1]), &row.candidate);
    out.push_str("</details>\n\n");
}

fn side(out: &mut String, label: &str, s: &SideRow) {
    let status = if s.passed == s.trials && s.trials > 0 {
        "pass".to_owned()
    } else {
        format!("fail: {}", s.failure())
    };
    let _ = writeln!(out, "**{label}** ({}):\n", esc(&status));
    match &s.answer {
        Some(a) => {
            for line in cut(a, ANSWER_CHARS, ANSWER_LINES).lines() {
                let _ = writeln!(out, "> {}", esc(line));
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
    let mut cut = out.len() < text.trim_end().len();
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

/// Model output is untrusted: no HTML, no Markdown structure of its own.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '#' | '~' | '!' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `current` → `Current`, as a heading reads.
fn capitalized(name: &str) -> String {
    let mut chars = name.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

fn code(text: &str) -> String {
    text.replace('`', "'")
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
    }
}
