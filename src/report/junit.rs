//! `junit.xml`: a test suite `gates` (one case per gate) and a test suite `items` (one case per
//! item, failed where the candidate regressed), for CI test tabs.

use std::fmt::Write as _;

use super::view::{Group, ItemRow};
use super::{Exporter, ReportInput};
use crate::gate::Outcome;

pub struct Junit;

impl Exporter for Junit {
    fn render(&self, input: &ReportInput, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
        let s = input.summary;
        let rows = &input.view.rows;
        let gate_failures = s.gates_with(Outcome::Fail);
        // An inconclusive gate is written as a <skipped> case too: the counts must say so.
        let gate_skipped = s.gates_with(Outcome::Skipped) + s.gates_with(Outcome::Inconclusive);
        let item_failures = rows.iter().filter(|r| r.group == Group::Regressed).count();
        let item_skipped = rows.iter().filter(|r| r.group == Group::Incomplete).count();
        let mut x = String::new();
        x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            x,
            "<testsuites name=\"goldgate {}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" errors=\"0\">",
            attr(&s.run_id),
            s.gates.len() + rows.len(),
            gate_failures + item_failures,
            gate_skipped + item_skipped,
        );
        let _ = writeln!(
            x,
            "  <testsuite name=\"gates\" tests=\"{}\" failures=\"{gate_failures}\" skipped=\"{gate_skipped}\" errors=\"0\" timestamp=\"{}\">",
            s.gates.len(),
            attr(timestamp(&s.started_at)),
        );
        let _ = writeln!(
            x,
            "    <properties>\n      <property name=\"golden\" value=\"{}@{} {}\"/>\n      <property name=\"current\" value=\"{}\"/>\n      <property name=\"candidate\" value=\"{}\"/>\n      <property name=\"verdict\" value=\"{}\"/>\n    </properties>",
            attr(&s.golden.name),
            s.golden.version,
            attr(&s.golden.sha256),
            attr(&s.models.current.model),
            attr(&s.models.candidate.model),
            s.verdict.as_str(),
        );
        let names = s.side_names();
        for g in &s.gates {
            let name = format!("{}: {}", g.metric, g.rule);
            let numbers = format!(
                "{} {} -> {} {} (limit {})",
                names.current,
                g.format(g.current),
                names.candidate,
                g.format(g.candidate),
                g.format(g.limit)
            );
            let _ = write!(
                x,
                "    <testcase classname=\"goldgate.gates\" name=\"{}\" time=\"0\"",
                attr(&name)
            );
            match g.outcome {
                Outcome::Pass => x.push_str("/>\n"),
                Outcome::Fail => {
                    let _ = writeln!(
                        x,
                        ">\n      <failure type=\"gate\" message=\"{}\">{}</failure>\n    </testcase>",
                        attr(&numbers),
                        text(&match &g.note {
                            Some(note) => format!("{numbers}\n{note}"),
                            None => numbers.clone(),
                        })
                    );
                }
                // Neither passed nor failed: the data could not decide (exit code 4).
                Outcome::Inconclusive => {
                    let _ = writeln!(
                        x,
                        ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                        attr(&format!(
                            "INCONCLUSIVE: {}",
                            super::undecided(g)
                                .unwrap_or_default()
                                .trim_start_matches("undecided: ")
                        ))
                    );
                }
                Outcome::Skipped => {
                    let _ = writeln!(
                        x,
                        ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                        attr(g.note.as_deref().unwrap_or("not applicable"))
                    );
                }
            }
        }
        x.push_str("  </testsuite>\n");
        let _ = writeln!(
            x,
            "  <testsuite name=\"items\" tests=\"{}\" failures=\"{item_failures}\" skipped=\"{item_skipped}\" errors=\"0\" timestamp=\"{}\">",
            rows.len(),
            attr(timestamp(&s.started_at)),
        );
        // Items stream out one by one: a 100,000-item suite is never held as one string.
        out.write_all(x.as_bytes())?;
        for row in rows {
            x.clear();
            item(&mut x, row, input.view.items);
            out.write_all(x.as_bytes())?;
        }
        out.write_all(b"  </testsuite>\n</testsuites>\n")?;
        Ok(())
    }
}

fn item(x: &mut String, row: &ItemRow, items: &crate::golden::Items) {
    let time = row.candidate.latency_ms.unwrap_or(0.0) / 1000.0;
    let _ = write!(
        x,
        "    <testcase classname=\"goldgate.items\" name=\"{}\" time=\"{time:.3}\"",
        attr(row.id)
    );
    match row.group {
        Group::Regressed => {
            let why = row.candidate.failure();
            let body = format!(
                "question: {}\ncurrent answer: {}\ncandidate answer: {}\n",
                items.question(row.index),
                row.current.answer.as_deref().unwrap_or("(none)"),
                row.candidate.answer.as_deref().unwrap_or("(none)"),
            );
            let _ = writeln!(
                x,
                ">\n      <failure type=\"regression\" message=\"regressed: {}\">{}</failure>\n    </testcase>",
                attr(&why),
                text(&body)
            );
        }
        Group::Incomplete => {
            let _ = writeln!(
                x,
                ">\n      <skipped message=\"not run to the end (interrupted)\"/>\n    </testcase>"
            );
        }
        _ => x.push_str("/>\n"),
    }
}

/// JUnit timestamps carry no zone suffix.
pub(super) fn timestamp(rfc3339: &str) -> &str {
    rfc3339
        .split(['Z', '+'])
        .next()
        .unwrap_or(rfc3339)
        .split('.')
        .next()
        .unwrap_or(rfc3339)
}

/// XML 1.0 text: escaped (so no `]]>` either), and without the characters XML cannot carry at
/// all, which become U+FFFD. A carriage return is a reference: a parser reads a literal one as a
/// newline, and the text would not be what the model or the server sent.
pub(super) fn text(s: &str) -> String {
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

/// An attribute value in double quotes: [`text`], and the whitespace a parser would fold to spaces
/// as references.
pub(super) fn attr(s: &str) -> String {
    text(s)
        .replace('"', "&quot;")
        .replace('\n', "&#10;")
        .replace('\t', "&#9;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_escaping_drops_what_xml_cannot_carry() {
        assert_eq!(text("a<b>&\u{1}"), "a&lt;b&gt;&amp;\u{FFFD}");
        assert_eq!(attr("say \"hi\"\n"), "say &quot;hi&quot;&#10;");
        assert_eq!(
            text("]]>\r\n\u{FFFE}\u{FFFF}\u{1b}"),
            "]]&gt;&#13;\n\u{FFFD}\u{FFFD}\u{FFFD}"
        );
        assert_eq!(timestamp("2026-11-23T09:18:25.123Z"), "2026-11-23T09:18:25");
    }

    proptest::proptest! {
        /// Whatever a model or a server sends, the file parses, and a reader gets the text back
        /// (with what XML cannot carry replaced) from an attribute and from an element alike.
        #[test]
        fn any_text_round_trips_through_xml(s in "(\\PC|[\\x00-\\x1F\\x7F\\u{85}\\u{FFFE}\\u{FFFF}<>&\"']|]]>|\r\n){0,40}") {
            let xml = format!("<a message=\"{}\">{}</a>", attr(&s), text(&s));
            let doc = roxmltree::Document::parse(&xml);
            proptest::prop_assert!(doc.is_ok(), "{xml:?}: {doc:?}");
            let doc = doc.unwrap();
            let expected: String = s
                .chars()
                .map(|c| match c {
                    '\t' | '\n' | '\r' => c,
                    c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => '\u{FFFD}',
                    c => c,
                })
                .collect();
            let root = doc.root_element();
            proptest::prop_assert_eq!(root.attribute("message"), Some(expected.as_str()));
            proptest::prop_assert_eq!(root.text().unwrap_or(""), expected.as_str());
        }
    }
}
