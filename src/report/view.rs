//! The item-by-item comparison every report shows: items grouped into regressions,
//! improvements, both failing and unchanged, each with both answers, a word-level diff and the
//! evidence of its checks. Built from the run directory in one pass over `results.jsonl`.

use std::path::Path;

use serde::Serialize;

use crate::golden::Items;
use crate::metrics::{ItemClass, ItemTally};
use crate::record::{ResultHead, ResultRecord, Side, Sides, read_lines};
use crate::score::Evidence;
use crate::stats::ItemPass;

/// Answers of unchanged items are cut to this many characters: they are the bulk of a large run
/// and the least interesting part of it.
const UNCHANGED_ANSWER_CHARS: usize = 240;
/// Past this many items, unchanged items carry no answers at all: they are most of a large run,
/// and keeping them would make the HTML report too heavy to open (results.jsonl has them all).
pub const UNCHANGED_ANSWERS_UP_TO: usize = 5_000;
/// Answers of changed or failing items are cut here only to bound a pathological answer.
const ANSWER_CHARS: usize = 4000;
/// Unsupported claims are shown cut to this many characters.
const CLAIM_CHARS: usize = 300;
/// Word diffs of longer answers are skipped: the side-by-side view still shows both.
const DIFF_MAX_CHARS: usize = 4000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    Regressed,
    Improved,
    BothFail,
    Unchanged,
    Incomplete,
}

impl Group {
    pub const ALL: [Group; 5] = [
        Group::Regressed,
        Group::Improved,
        Group::BothFail,
        Group::Unchanged,
        Group::Incomplete,
    ];

    pub fn of(t: &ItemTally, repeats: u32, rule: ItemPass) -> Group {
        match t.class(repeats, rule) {
            ItemClass::Regressed => Group::Regressed,
            ItemClass::Improved => Group::Improved,
            ItemClass::BothFail => Group::BothFail,
            ItemClass::BothPass => Group::Unchanged,
            ItemClass::Incomplete => Group::Incomplete,
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Group::Regressed => "Regressions",
            Group::Improved => "Improvements",
            Group::BothFail => "Failing on both",
            Group::Unchanged => "Unchanged",
            Group::Incomplete => "Incomplete",
        }
    }
}

/// One side of one item, as shown. The few numbers every view needs are inline; the rest —
/// answer, evidence, diff — sits behind a box that unchanged items of a large run never fill, so a
/// 100,000-item report holds 100,000 small rows, not 100,000 full ones.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SideRow {
    pub passed: u32,
    pub trials: u32,
    pub ok: bool,
    pub latency_ms: Option<f64>,
    #[serde(skip)]
    trial: u32,
    #[serde(flatten)]
    detail: Option<Box<SideDetail>>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SideDetail {
    pub answer: Option<String>,
    pub truncated: bool,
    pub error: Option<String>,
    pub cost_usd: f64,
    pub matched: Vec<String>,
    pub missing: Vec<String>,
    pub forbidden: Vec<String>,
    /// Keywords matched only fuzzily: (keyword, the span it matched, similarity).
    pub fuzzy: Vec<(String, String, f64)>,
    /// Other evidence, one short line each: a failed regex, invalid JSON, a wrong label, a
    /// similarity below its threshold, a judge error.
    pub notes: Vec<String>,
    pub faithfulness: Option<f64>,
    /// The answer's claims that the context does not support, with their support (0..1).
    pub unsupported: Vec<(String, f64)>,
    /// The answer as word-diff runs against the other side: `(changed, text)`.
    pub diff: Vec<(bool, String)>,
}

static NO_DETAIL: SideDetail = SideDetail {
    answer: None,
    truncated: false,
    error: None,
    cost_usd: 0.0,
    matched: Vec::new(),
    missing: Vec::new(),
    forbidden: Vec::new(),
    fuzzy: Vec::new(),
    notes: Vec::new(),
    faithfulness: None,
    unsupported: Vec::new(),
    diff: Vec::new(),
};

impl std::ops::Deref for SideRow {
    type Target = SideDetail;

    fn deref(&self) -> &SideDetail {
        self.detail.as_deref().unwrap_or(&NO_DETAIL)
    }
}

impl std::ops::DerefMut for SideRow {
    fn deref_mut(&mut self) -> &mut SideDetail {
        self.detail.get_or_insert_with(Box::default)
    }
}

impl SideRow {
    fn from_record(r: ResultRecord, t: &ItemTally, cap: usize) -> SideRow {
        let mut row = SideRow {
            passed: t.passed[r.model],
            trials: t.done[r.model],
            ok: r.ok,
            latency_ms: r.latency_ms,
            trial: r.trial,
            detail: Some(Box::new(SideDetail {
                cost_usd: r.cost_usd,
                unsupported: r
                    .faithfulness
                    .as_ref()
                    .map(|f| {
                        f.details
                            .iter()
                            .filter(|c| !c.supported)
                            .map(|c| {
                                // A claim is a sentence of the answer; a pathological one is cut.
                                let claim = crate::text::ellipsize(&c.claim, CLAIM_CHARS);
                                (claim, (c.support * 100.0).round() / 100.0)
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                faithfulness: r.faithfulness.map(|f| f.score),
                error: r.error.map(|e| match e.status {
                    Some(status) => format!("{} ({status}): {}", e.kind.as_str(), e.message),
                    None => format!("{}: {}", e.kind.as_str(), e.message),
                }),
                ..SideDetail::default()
            })),
        };
        if let Some(j) = &r.judge
            && let Some(e) = &j.error
        {
            row.notes.push(format!("faithfulness judge: {e}"));
        }
        for check in r.checks.into_values() {
            match check.evidence {
                Evidence::Keywords {
                    matched,
                    missing,
                    spans,
                } => {
                    row.matched = matched;
                    row.missing = missing;
                    row.fuzzy = spans
                        .into_iter()
                        .filter(|s| s.similarity < 1.0)
                        .map(|s| (s.keyword, s.span, s.similarity))
                        .collect();
                }
                Evidence::Forbidden { found } => row.forbidden = found,
                Evidence::Regex { failed } if !failed.is_empty() => {
                    row.notes.push(format!("regex not satisfied: {}", failed.join(", ")));
                }
                Evidence::Json {
                    valid: false,
                    error,
                } => row.notes.push(format!("not JSON: {}", error.unwrap_or_default())),
                Evidence::Label {
                    expected,
                    predicted,
                } => row.notes.push(if check.pass {
                    format!("label: {predicted}")
                } else {
                    format!("label: predicted {predicted:?}, expected {expected:?}")
                }),
                Evidence::Similarity {
                    token_set,
                    levenshtein,
                    threshold,
                } if !check.pass => row.notes.push(format!(
                    "similarity to expected below {threshold}: token set {token_set:.2}, levenshtein {levenshtein:.2}"
                )),
                Evidence::Echo {
                    echo_of, copied, ..
                } => row
                    .notes
                    .push(format!("echoes the {}: \"{copied}\"", echo_of.as_str())),
                _ => {}
            }
        }
        if let Some(mut answer) = r.answer {
            if let Some((cut, _)) = answer.char_indices().nth(cap) {
                answer.truncate(cut);
                row.truncated = true;
            }
            row.answer = Some(answer);
        }
        row
    }

    /// What made this side fail, in a few words; empty when it passed.
    pub fn failure(&self) -> String {
        if let Some(e) = &self.error {
            return format!("request failed: {e}");
        }
        let mut parts = Vec::new();
        if !self.forbidden.is_empty() {
            parts.push(format!("forbidden: {}", self.forbidden.join(", ")));
        }
        if !self.missing.is_empty() && self.passed < self.trials {
            parts.push(format!("missing keywords: {}", self.missing.join(", ")));
        }
        if self.passed < self.trials {
            parts.extend(
                self.notes
                    .iter()
                    .filter(|n| !n.starts_with("label: ") || n.contains("expected"))
                    .cloned(),
            );
        }
        if parts.is_empty() && self.passed < self.trials {
            parts.push(format!("passed {} of {} trials", self.passed, self.trials));
        }
        parts.join("; ")
    }
}

/// An item as shown. It borrows the item's id and reads its question and tags from the run's
/// items when rendered: a 100,000-item report must not copy them.
#[derive(Debug, Clone, Serialize)]
pub struct ItemRow<'a> {
    /// The item's place in the run's items.
    pub index: usize,
    pub id: &'a str,
    pub group: Group,
    pub current: SideRow,
    pub candidate: SideRow,
}

/// All items of a run, grouped, in golden-set order within each group.
pub struct ItemView<'a> {
    pub rows: Vec<ItemRow<'a>>,
    /// The run's items: a row's question and tags are read from here when it is rendered, so
    /// the view holds no copy of them.
    pub items: &'a Items,
    /// Whether unchanged items were stripped of their answers (a large run).
    pub unchanged_answers_omitted: bool,
}

impl<'a> ItemView<'a> {
    pub fn build(
        results: &Path,
        items: &'a Items,
        tallies: &[ItemTally],
        repeats: u32,
        rule: ItemPass,
    ) -> anyhow::Result<ItemView<'a>> {
        let omit_unchanged = items.len() > UNCHANGED_ANSWERS_UP_TO;
        let groups: Vec<Group> = tallies
            .iter()
            .take(items.len())
            .map(|t| Group::of(t, repeats, rule))
            .collect();
        // The rows are laid out grouped from the start (golden-set order within a group), and
        // each item's row is filled in place as its results are read: a million-item view is
        // held once, not once per item, again as rows, and again as a sort's scratch space.
        let mut rows: Vec<ItemRow> = Vec::with_capacity(groups.len());
        let mut row_of = vec![0; groups.len()];
        for group in Group::ALL {
            for (i, _) in groups.iter().enumerate().filter(|(_, g)| **g == group) {
                row_of[i] = rows.len();
                rows.push(ItemRow {
                    index: i,
                    id: items.id(i),
                    group,
                    current: SideRow::default(),
                    candidate: SideRow::default(),
                });
            }
        }
        // Which sides of each row have a result yet: the lowest trial of each side represents
        // it, trial 0 unless an interrupt lost it.
        let mut filled = vec![Sides::<bool>::default(); groups.len()];
        if results.exists() {
            // Most lines of a large run are unchanged items whose answers are not shown: read
            // their head only, and parse the whole line only where it is displayed.
            read_lines(results, |line| {
                let head: ResultHead = serde_json::from_slice(line)?;
                let Some(i) = items.position(&head.id).filter(|&i| i < groups.len()) else {
                    return Ok(());
                };
                let m = head.model;
                let row = &mut rows[row_of[i]];
                let slot = match m {
                    Side::Current => &mut row.current,
                    Side::Candidate => &mut row.candidate,
                };
                if filled[i][m] && slot.trial <= head.trial {
                    return Ok(());
                }
                filled[i][m] = true;
                let cap = match groups[i] {
                    Group::Unchanged if omit_unchanged => {
                        *slot = SideRow {
                            passed: tallies[i].passed[m],
                            trials: tallies[i].done[m],
                            ok: head.ok,
                            latency_ms: head.latency_ms,
                            trial: head.trial,
                            ..SideRow::default()
                        };
                        return Ok(());
                    }
                    Group::Unchanged => UNCHANGED_ANSWER_CHARS,
                    _ => ANSWER_CHARS,
                };
                let r: ResultRecord = serde_json::from_slice(line)?;
                *slot = SideRow::from_record(r, &tallies[i], cap);
                Ok(())
            })?;
        }
        for row in rows.iter_mut().filter(|r| r.group != Group::Unchanged) {
            word_diff(&mut row.current, &mut row.candidate);
        }
        Ok(ItemView {
            rows,
            items,
            unchanged_answers_omitted: omit_unchanged,
        })
    }

    pub fn group(&self, g: Group) -> impl Iterator<Item = &ItemRow<'a>> {
        self.rows.iter().filter(move |r| r.group == g)
    }

    pub fn count(&self, g: Group) -> usize {
        self.group(g).count()
    }
}

fn word_diff(old: &mut SideRow, new: &mut SideRow) {
    let (Some(a), Some(b)) = (&old.answer, &new.answer) else {
        return;
    };
    if a.len() > DIFF_MAX_CHARS || b.len() > DIFF_MAX_CHARS {
        return;
    }
    let diff = similar::TextDiff::configure()
        .timeout(std::time::Duration::from_millis(50))
        .diff_words(a.as_str(), b.as_str());
    let push = |runs: &mut Vec<(bool, String)>, changed: bool, text: &str| match runs.last_mut() {
        Some((c, t)) if *c == changed => t.push_str(text),
        _ => runs.push((changed, text.to_owned())),
    };
    let (mut left, mut right) = (Vec::new(), Vec::new());
    for change in diff.iter_all_changes() {
        let text = change.value();
        match change.tag() {
            similar::ChangeTag::Equal => {
                push(&mut left, false, text);
                push(&mut right, false, text);
            }
            similar::ChangeTag::Delete => push(&mut left, true, text),
            similar::ChangeTag::Insert => push(&mut right, true, text),
        }
    }
    old.diff = left;
    new.diff = right;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_grouped_in_golden_order_and_show_each_sides_lowest_trial() {
        let items: Items = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|id| {
                serde_json::from_value::<crate::golden::Item>(serde_json::json!({
                    "id": id, "question": format!("{id}?"), "keywords": ["k"],
                }))
                .unwrap()
            })
            .collect();
        // Two trials each: (passed current, passed candidate, done current, done candidate).
        let tally = |p: (u32, u32), d: (u32, u32)| ItemTally {
            passed: Sides {
                current: p.0,
                candidate: p.1,
            },
            done: Sides {
                current: d.0,
                candidate: d.1,
            },
            ..ItemTally::default()
        };
        let tallies = [
            tally((2, 1), (2, 2)), // a regressed
            tally((2, 2), (2, 2)), // b unchanged
            tally((0, 2), (2, 2)), // c improved
            tally((1, 0), (1, 0)), // d incomplete
            tally((2, 0), (2, 2)), // e regressed
        ];
        let line = |id: &str, model: &str, trial: u32, answer: &str| {
            serde_json::json!({
                "id": id, "model": model, "trial": trial, "ok": true, "pass": true,
                "answer": answer, "latency_ms": 1.0, "attempts": 1, "cost_usd": 0.0,
            })
            .to_string()
        };
        let lines = [
            line("a", "current", 1, "a current trial 1"),
            line("a", "current", 0, "a current trial 0"),
            line("a", "current", 0, "a current trial 0 again"),
            line("a", "candidate", 0, "a candidate"),
            line("unknown", "current", 0, "not an item of this run"),
            line("b", "candidate", 0, "b candidate"),
            line("d", "current", 0, "d current"),
            line("e", "candidate", 1, "e candidate trial 1"),
        ];
        let dir = tempfile::tempdir().unwrap();
        let results = dir.path().join("results.jsonl");
        std::fs::write(&results, lines.join("\n") + "\n").unwrap();

        let view = ItemView::build(&results, &items, &tallies, 2, ItemPass::All).unwrap();
        let order: Vec<(&str, usize, Group)> =
            view.rows.iter().map(|r| (r.id, r.index, r.group)).collect();
        assert_eq!(
            order,
            [
                ("a", 0, Group::Regressed),
                ("e", 4, Group::Regressed),
                ("c", 2, Group::Improved),
                ("b", 1, Group::Unchanged),
                ("d", 3, Group::Incomplete),
            ]
        );
        let answer = |row: usize, side: Side| {
            let r = &view.rows[row];
            let s = if side == Side::Current {
                &r.current
            } else {
                &r.candidate
            };
            s.answer.clone()
        };
        assert_eq!(answer(0, Side::Current).unwrap(), "a current trial 0");
        assert_eq!(answer(0, Side::Candidate).unwrap(), "a candidate");
        assert_eq!(answer(1, Side::Current), None);
        assert_eq!(answer(1, Side::Candidate).unwrap(), "e candidate trial 1");
        assert_eq!(answer(3, Side::Candidate).unwrap(), "b candidate");
        assert_eq!(answer(4, Side::Current).unwrap(), "d current");
        assert_eq!(answer(2, Side::Current), None);
        // The counts come from the tallies; a side without a result is empty.
        assert_eq!(
            (view.rows[0].current.passed, view.rows[0].current.trials),
            (2, 2)
        );
        assert!(!view.rows[2].current.ok && view.rows[2].current.latency_ms.is_none());
        // Changed items carry a word diff of their two answers.
        assert!(
            view.rows[0]
                .current
                .diff
                .iter()
                .any(|(changed, _)| *changed)
        );
        assert!(view.rows[3].current.diff.is_empty());
    }

    #[test]
    fn groups_follow_pass_counts() {
        let t = |cur, cand| ItemTally {
            passed: Sides {
                current: cur,
                candidate: cand,
            },
            done: Sides {
                current: 2,
                candidate: 2,
            },
            ..ItemTally::default()
        };
        let all = ItemPass::All;
        assert_eq!(Group::of(&t(2, 1), 2, all), Group::Regressed);
        assert_eq!(Group::of(&t(0, 2), 2, all), Group::Improved);
        assert_eq!(Group::of(&t(2, 2), 2, all), Group::Unchanged);
        assert_eq!(Group::of(&t(1, 1), 2, all), Group::BothFail);
        // The rule decides what a flaky trial count is worth.
        assert_eq!(Group::of(&t(0, 1), 2, all), Group::BothFail);
        assert_eq!(Group::of(&t(0, 1), 2, ItemPass::Any), Group::Improved);
        assert_eq!(Group::of(&t(2, 1), 2, ItemPass::Majority), Group::Regressed);
        let partial = ItemTally {
            passed: Sides {
                current: 1,
                candidate: 0,
            },
            done: Sides {
                current: 1,
                candidate: 0,
            },
            ..ItemTally::default()
        };
        assert_eq!(Group::of(&partial, 2, all), Group::Incomplete);
    }

    #[test]
    fn word_diff_marks_only_changed_words() {
        let side = |answer: &str| SideRow {
            detail: Some(Box::new(SideDetail {
                answer: Some(answer.into()),
                ..SideDetail::default()
            })),
            ..SideRow::default()
        };
        let (mut a, mut b) = (side("Refunds take 5 days."), side("Refunds take 7 days."));
        word_diff(&mut a, &mut b);
        let changed = |r: &SideRow| -> String {
            r.diff
                .iter()
                .filter(|d| d.0)
                .map(|d| d.1.as_str())
                .collect()
        };
        assert_eq!(changed(&a), "5");
        assert_eq!(changed(&b), "7");
        let all: String = b.diff.iter().map(|d| d.1.as_str()).collect();
        assert_eq!(all, "Refunds take 7 days.");
    }
}
