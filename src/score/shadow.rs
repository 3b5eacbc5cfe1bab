//! The label-free scores of a shadow replay: how a replayed answer compares with the answer
//! production gave to the same request (the item's `expected`), where no one wrote a check.

use serde::{Deserialize, Serialize};

/// What a replayed answer is, next to production's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ShadowScores {
    /// The same answer as production's, after normalisation (case, white space, JSON key order).
    /// Only for short or structured production answers: two long texts are never equal, and
    /// similarity measures them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<bool>,
    /// The answer declines the request.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub refusal: bool,
    /// The answer parses as JSON; only where production answered JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_valid: Option<bool>,
    /// The answer's length in words over production's; only where production said something.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length_ratio: Option<f64>,
}

/// How shadow answers are scored.
#[derive(Debug, Clone, Copy)]
pub struct ShadowScoring {
    /// A production answer of at most this many words (or any JSON, or tool calls) is compared
    /// exactly as well.
    pub exact_max_words: usize,
}

impl ShadowScoring {
    pub fn score(&self, production: &str, answer: &str) -> ShadowScores {
        let production_json = as_json(production);
        let words = |s: &str| s.split_whitespace().count();
        let structured = production_json.is_some() || looks_like_tool_calls(production);
        let exact = (structured || words(production) <= self.exact_max_words).then(|| {
            match (&production_json, as_json(answer)) {
                (Some(p), Some(a)) => *p == a,
                _ => normalise(production) == normalise(answer),
            }
        });
        let produced = words(production);
        ShadowScores {
            exact,
            refusal: is_refusal(answer),
            json_valid: production_json.as_ref().map(|_| as_json(answer).is_some()),
            length_ratio: (produced > 0).then(|| words(answer) as f64 / produced as f64),
        }
    }
}

/// Whether a text is JSON as shadow scoring reads it (an object or an array, fenced or not):
/// production's answer is held to JSON by this, and `json_validity` counts by it.
pub fn is_json(text: &str) -> bool {
    as_json(text).is_some()
}

/// The answer as JSON, if it is an object or an array (a bare number or word is text that
/// happens to parse). A fenced block (```json … ```) is read inside its fence.
fn as_json(text: &str) -> Option<serde_json::Value> {
    let t = text.trim();
    let t = t
        .strip_prefix("```json")
        .or_else(|| t.strip_prefix("```"))
        .and_then(|r| r.trim_end().strip_suffix("```"))
        .unwrap_or(t)
        .trim();
    if !(t.starts_with('{') || t.starts_with('[')) {
        return None;
    }
    serde_json::from_str(t).ok()
}

/// Tool calls as [`crate::provider::tool_calls_text`] writes them: `name {json}` per line.
fn looks_like_tool_calls(text: &str) -> bool {
    !text.is_empty()
        && text.lines().all(|l| {
            l.split_once(' ').is_some_and(|(name, args)| {
                !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
                    && as_json(args).is_some()
            })
        })
}

/// Case folded, white space collapsed, trailing punctuation dropped: "Paris." is "paris".
fn normalise(text: &str) -> String {
    let folded = text.to_lowercase();
    let joined = folded.split_whitespace().collect::<Vec<_>>().join(" ");
    joined
        .trim_end_matches(['.', '!', '?', ';', ':'])
        .to_owned()
}

/// The openings with which assistants decline, lower case, `'` standing for either apostrophe.
const REFUSALS: &[&str] = &[
    "i'm sorry, but",
    "i am sorry, but",
    "sorry, but i can",
    "i can't help",
    "i cannot help",
    "i can't assist",
    "i cannot assist",
    "i can't provide",
    "i cannot provide",
    "i can't do that",
    "i cannot do that",
    "i'm unable to",
    "i am unable to",
    "i won't be able to",
    "i must decline",
    "i'm not able to help",
    "i am not able to help",
    "as an ai language model, i cannot",
];

/// [`REFUSALS`] as one case-insensitive pattern: one pass over an answer, not one search per
/// phrase (every replayed answer, and every production answer, is asked).
fn refusals() -> &'static regex::Regex {
    static PATTERN: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    PATTERN.get_or_init(|| {
        let alternatives: Vec<String> = REFUSALS
            .iter()
            .map(|r| regex::escape(r).replace('\'', "['\u{2019}\u{2018}]"))
            .collect();
        regex::Regex::new(&format!("(?i){}", alternatives.join("|")))
            .expect("the refusal phrases compile")
    })
}

/// Whether an answer declines: one of [`REFUSALS`] within its first two sentences. An answer
/// that mentions an inability deep inside a helpful reply is not a refusal.
pub fn is_refusal(answer: &str) -> bool {
    let head = answer.trim_start();
    let head = match head.char_indices().nth(240) {
        Some((at, _)) => &head[..at],
        None => head,
    };
    refusals()
        .find(head)
        .is_some_and(|m| head[..m.start()].matches(['.', '!', '?']).count() < 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: ShadowScoring = ShadowScoring {
        exact_max_words: 12,
    };

    #[test]
    fn short_answers_are_compared_exactly_long_ones_are_not() {
        assert_eq!(S.score("Paris.", "paris").exact, Some(true));
        assert_eq!(S.score("Paris", "Lyon").exact, Some(false));
        let long = "word ".repeat(40);
        assert_eq!(S.score(&long, &long).exact, None);
    }

    #[test]
    fn json_is_compared_as_json_and_checked_only_where_production_answered_json() {
        let s = S.score(r#"{"a": 1, "b": [2]}"#, "```json\n{\"b\":[2],\"a\":1}\n```");
        assert_eq!((s.exact, s.json_valid), (Some(true), Some(true)));
        let s = S.score(r#"{"a": 1}"#, "a is one");
        assert_eq!((s.exact, s.json_valid), (Some(false), Some(false)));
        assert_eq!(S.score("plain text", "{}").json_valid, None);
        // Tool calls are structured: compared exactly, whatever their length.
        let calls = crate::provider::tool_calls_text([(
            "lookup",
            r#"{"q": "a b c d e f g h i j k l m n"}"#,
        )]);
        assert_eq!(S.score(&calls, &calls).exact, Some(true));
    }

    #[test]
    fn refusals_are_openings_not_mentions() {
        assert!(is_refusal("I’m sorry, but I can’t help with that."));
        assert!(is_refusal("Sorry. I cannot assist with this request."));
        assert!(!is_refusal(
            "The capital is Paris. It has many museums. Tourists say I can't help loving it."
        ));
        assert!(!is_refusal("Paris"));
    }

    #[test]
    fn length_ratio_is_words_over_production_words() {
        assert_eq!(
            S.score("one two", "one two three four").length_ratio,
            Some(2.0)
        );
        assert_eq!(S.score("", "anything").length_ratio, None);
    }
}
