//! The canary's `junit.xml`, escaped as a run's is ([`crate::report::junit`]).

use std::fmt::Write as _;

use super::{bound_value, p_text, statistic};
use crate::canary::analysis::Analysis;
use crate::gate::Outcome;
use crate::report::junit::{attr, text, timestamp};

/// `junit.xml`: a suite `goldgate canary` with one case per gate (a failed gate fails, a skipped
/// or undecided one is skipped) and a case `sample-ratio`, failed on a mismatch.
pub(super) fn junit(a: &Analysis) -> String {
    let fails = a
        .gates
        .iter()
        .filter(|g| g.result.outcome == Outcome::Fail)
        .count()
        + usize::from(a.split.as_ref().is_some_and(|s| s.mismatch));
    let skipped = a
        .gates
        .iter()
        .filter(|g| matches!(g.result.outcome, Outcome::Skipped | Outcome::Inconclusive))
        .count()
        + usize::from(a.split.is_none());
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"goldgate canary\" tests=\"{}\" failures=\"{fails}\" skipped=\"{skipped}\" errors=\"0\">",
        a.gates.len() + 1
    );
    let _ = writeln!(
        x,
        "  <testsuite name=\"goldgate canary\" tests=\"{}\" failures=\"{fails}\" skipped=\"{skipped}\" errors=\"0\"{}>",
        a.gates.len() + 1,
        a.counts
            .last
            .as_deref()
            .map(|t| format!(" timestamp=\"{}\"", attr(timestamp(t))))
            .unwrap_or_default()
    );
    let _ = writeln!(
        x,
        "    <properties>\n      <property name=\"decision\" value=\"{}\"/>\n      <property name=\"trustworthy\" value=\"{}\"/>\n      <property name=\"records\" value=\"{}\"/>\n      <property name=\"requests\" value=\"current {} / candidate {}\"/>\n    </properties>",
        a.decision.as_str(),
        a.trustworthy,
        a.counts.records,
        a.counts.current,
        a.counts.candidate
    );
    for g in &a.gates {
        let r = &g.result;
        let name = format!("{} {}", r.metric, r.rule);
        let numbers = format!(
            "current {} -> candidate {} (limit {})",
            r.format(r.current),
            r.format(r.candidate),
            r.format(r.limit)
        );
        let _ = write!(
            x,
            "    <testcase classname=\"goldgate.canary\" name=\"{}\" time=\"0\"",
            attr(&name)
        );
        let detail = || {
            let mut d = numbers.clone();
            if let Some((value, method)) = statistic(r) {
                let _ = write!(d, "\n{value}\n{method}");
            }
            if let Some(note) = &r.note {
                let _ = write!(d, "\n{note}");
            }
            d
        };
        match r.outcome {
            Outcome::Pass => x.push_str("/>\n"),
            Outcome::Fail => {
                let _ = writeln!(
                    x,
                    ">\n      <failure type=\"{}\" message=\"{}\">{}</failure>\n    </testcase>",
                    if g.critical { "critical gate" } else { "gate" },
                    attr(&numbers),
                    text(&detail())
                );
            }
            Outcome::Inconclusive | Outcome::Skipped => {
                let why = r.note.clone().unwrap_or_else(|| match r.test.as_ref() {
                    Some(t) => format!(
                        "undecided: its interval includes the bound ({}); more traffic would decide it",
                        bound_value(r, t.null)
                    ),
                    None => "not decided".to_owned(),
                });
                let _ = writeln!(
                    x,
                    ">\n      <skipped message=\"{}: {}\"/>\n    </testcase>",
                    r.outcome.as_str().to_uppercase(),
                    attr(&why)
                );
            }
        }
    }
    x.push_str("    <testcase classname=\"goldgate.canary\" name=\"sample-ratio\" time=\"0\"");
    match &a.split {
        Some(s) if s.mismatch => {
            let message = format!(
                "sample-ratio mismatch: candidate {:.2}% of requests, {:.2}% configured (chi-square {:.1}, {})",
                s.observed_candidate_percent,
                s.expected_candidate_percent,
                s.chi_square,
                p_text(s.p_value)
            );
            let _ = writeln!(
                x,
                ">\n      <failure type=\"sample-ratio mismatch\" message=\"{}\">{}</failure>\n    </testcase>",
                attr(&message),
                text(&a.reasons.join("\n"))
            );
        }
        Some(_) => x.push_str("/>\n"),
        None => x.push_str(
            ">\n      <skipped message=\"no configured split to check (--candidate-percent, [canary] candidate_percent or a flag file)\"/>\n    </testcase>\n",
        ),
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}
