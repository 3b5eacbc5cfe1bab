//! The classic golden-set checks: expected keywords (`any`/`all`) and forbidden strings.
//!
//! Matching is case-insensitive. With `fuzzy > 0`, a keyword missing verbatim may still match a
//! span of the answer whose similarity reaches the threshold: both sides are lower-cased and
//! stripped of punctuation ("e-mail" = "email"), and compared by normalised Damerau-Levenshtein
//! over spans of the keyword's word count ±1, so a typo or a spelling variant ("colour"/"color",
//! 0.83) matches while unrelated words do not. `whole_word` stops "cat" from matching "category".

use serde::{Deserialize, Serialize};

use super::{Check, Evidence, Scorer};
use crate::check::CheckKind;
use crate::golden::{Item, MatchMode};

/// Where a keyword was found, and how closely it matched (1.0 for a verbatim match).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeywordSpan {
    pub keyword: String,
    pub span: String,
    pub similarity: f64,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct KeywordScorer {
    pub fuzzy: f64,
    pub whole_word: bool,
}

impl Scorer for KeywordScorer {
    fn kind(&self) -> CheckKind {
        CheckKind::Keywords
    }

    fn check(&self, item: &Item, answer: &str) -> Option<Check> {
        if item.keywords.is_empty() {
            return None;
        }
        let haystack = answer.to_lowercase();
        let tokens = if self.fuzzy > 0.0 {
            tokens(answer)
        } else {
            Vec::new()
        };
        let mut matched = Vec::new();
        let mut missing = Vec::new();
        let mut spans = Vec::new();
        for keyword in &item.keywords {
            let found = find_exact(&haystack, &keyword.to_lowercase(), self.whole_word)
                .map(|(s, e)| KeywordSpan {
                    keyword: keyword.clone(),
                    span: answer.get(s..e).unwrap_or(keyword).to_owned(),
                    similarity: 1.0,
                })
                .or_else(|| {
                    (self.fuzzy > 0.0)
                        .then(|| find_fuzzy(answer, &tokens, keyword, self.fuzzy))
                        .flatten()
                });
            match found {
                Some(span) => {
                    matched.push(keyword.clone());
                    spans.push(span);
                }
                None => missing.push(keyword.clone()),
            }
        }
        let pass = match item.match_mode {
            MatchMode::Any => !matched.is_empty(),
            MatchMode::All => missing.is_empty(),
        };
        Some(Check {
            pass,
            evidence: Evidence::Keywords {
                matched,
                missing,
                spans,
            },
        })
    }
}

/// A verbatim (case-insensitive) occurrence; with `whole_word`, only one not inside a word.
/// Byte offsets refer to the lower-cased text, which keeps ASCII offsets; they are used to cut
/// the original only when that is valid.
fn find_exact(haystack: &str, needle: &str, whole_word: bool) -> Option<(usize, usize)> {
    let is_word = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    haystack
        .match_indices(needle)
        .map(|(i, m)| (i, i + m.len()))
        .find(|&(s, e)| {
            !whole_word
                || (!is_word(haystack[..s].chars().next_back())
                    && !is_word(haystack[e..].chars().next()))
        })
}

/// Word tokens of the original answer with their byte ranges.
fn tokens(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_alphanumeric(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, text.len()));
    }
    out
}

fn squash(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The most similar span of `keyword`'s word count (±1), if it reaches `threshold`.
fn find_fuzzy(
    answer: &str,
    tokens: &[(usize, usize)],
    keyword: &str,
    threshold: f64,
) -> Option<KeywordSpan> {
    let target = squash(keyword);
    if target.is_empty() {
        return None;
    }
    let words = keyword
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .count()
        .max(1);
    let mut best: Option<(f64, usize, usize)> = None;
    for len in words.saturating_sub(1).max(1)..=words + 1 {
        for window in tokens.windows(len) {
            let (s, e) = (window[0].0, window[len - 1].1);
            let sim = strsim::normalized_damerau_levenshtein(&target, &squash(&answer[s..e]));
            if sim >= threshold && best.is_none_or(|b| sim > b.0) {
                best = Some((sim, s, e));
            }
        }
    }
    best.map(|(similarity, s, e)| KeywordSpan {
        keyword: keyword.to_owned(),
        span: answer[s..e].to_owned(),
        similarity: (similarity * 1000.0).round() / 1000.0,
    })
}

pub struct ForbiddenScorer;

impl Scorer for ForbiddenScorer {
    fn kind(&self) -> CheckKind {
        CheckKind::Forbidden
    }

    fn check(&self, item: &Item, answer: &str) -> Option<Check> {
        if item.forbidden.is_empty() {
            return None;
        }
        let haystack = answer.to_lowercase();
        let found: Vec<String> = item
            .forbidden
            .iter()
            .filter(|f| haystack.contains(&f.to_lowercase()))
            .cloned()
            .collect();
        Some(Check {
            pass: found.is_empty(),
            evidence: Evidence::Forbidden { found },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(json: &str) -> Item {
        serde_json::from_str(json).unwrap()
    }

    fn check(scorer: KeywordScorer, keywords: &str, answer: &str) -> Check {
        let it = item(&format!(
            r#"{{"id":"a","question":"q","keywords":{keywords},"match":"all"}}"#
        ));
        scorer.check(&it, answer).unwrap()
    }

    #[test]
    fn any_and_all_are_case_insensitive() {
        let any = item(r#"{"id":"a","question":"q","keywords":["30 Days","receipt"]}"#);
        let all =
            item(r#"{"id":"a","question":"q","keywords":["30 Days","receipt"],"match":"all"}"#);
        let k = KeywordScorer::default();
        assert!(k.check(&any, "Within 30 days.").unwrap().pass);
        assert!(!k.check(&all, "Within 30 DAYS.").unwrap().pass);
        assert!(k.check(&all, "30 days, with the RECEIPT").unwrap().pass);
        assert!(!k.check(&any, "").unwrap().pass);
    }

    #[test]
    fn fuzzy_thresholds() {
        let exact = KeywordScorer::default();
        let fuzzy = KeywordScorer {
            fuzzy: 0.8,
            whole_word: false,
        };
        // Variants and typos match at 0.8, not without fuzzy matching.
        for (kw, answer) in [
            (r#"["email"]"#, "Send us an e-mail today"),
            (r#"["color"]"#, "Pick a colour"),
            (r#"["refund"]"#, "Your refnud is on its way"),
            (r#"["30 days"]"#, "within 30 day"),
        ] {
            assert!(
                !exact
                    .check(
                        &item(&format!(r#"{{"id":"a","question":"q","keywords":{kw}}}"#)),
                        answer
                    )
                    .unwrap()
                    .pass,
                "{kw} exact"
            );
            let c = check(fuzzy, kw, answer);
            assert!(c.pass, "{kw} in {answer:?}");
        }
        // The span and its similarity are recorded.
        let c = check(fuzzy, r#"["color"]"#, "Pick a colour");
        let Evidence::Keywords { spans, .. } = c.evidence else {
            panic!()
        };
        assert_eq!(spans[0].span, "colour");
        assert!((spans[0].similarity - 0.833).abs() < 1e-9);
        // Unrelated words of similar length stay unmatched, and a stricter threshold refuses variants.
        assert!(!check(fuzzy, r#"["refund"]"#, "Your parcel is on its way").pass);
        assert!(
            !check(
                KeywordScorer {
                    fuzzy: 0.9,
                    whole_word: false
                },
                r#"["color"]"#,
                "Pick a colour"
            )
            .pass
        );
    }

    #[test]
    fn whole_word_matching() {
        let ww = KeywordScorer {
            fuzzy: 0.0,
            whole_word: true,
        };
        assert!(!check(ww, r#"["cat"]"#, "pick a category").pass);
        assert!(check(ww, r#"["cat"]"#, "the cat, sat").pass);
        assert!(check(KeywordScorer::default(), r#"["cat"]"#, "pick a category").pass);
    }

    #[test]
    fn forbidden_fails_on_any_hit_and_checks_only_apply_when_configured() {
        let it = item(r#"{"id":"a","question":"q","forbidden":["GW-50"]}"#);
        assert!(!ForbiddenScorer.check(&it, "use code gw-50").unwrap().pass);
        assert!(ForbiddenScorer.check(&it, "no code").unwrap().pass);
        assert!(KeywordScorer::default().check(&it, "x").is_none());
    }
}
