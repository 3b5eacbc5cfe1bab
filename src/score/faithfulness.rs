//! Lexical faithfulness: is each claim of the answer supported by the item's context?
//!
//! A claim is a sentence of the answer with at least one content word. It is supported when at
//! least [`SUPPORT_THRESHOLD`] of its content words occur in the context and every number in it
//! does too. Score: 1 + 4 × supported / claims, the spec's 1–5 scale. Deterministic and offline.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::text;

pub const SUPPORT_THRESHOLD: f64 = 0.7;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Faithfulness {
    pub score: f64,
    pub claims: usize,
    pub supported: usize,
}

/// `None` when the answer makes no claim (e.g. empty), so there is nothing to score.
pub fn lexical_faithfulness(answer: &str, context: &[String]) -> Option<Faithfulness> {
    let context_words: HashSet<String> = context.iter().flat_map(|c| text::words(c)).collect();
    let mut claims = 0;
    let mut supported = 0;
    for sentence in text::sentences(answer) {
        let words: Vec<String> = text::content_words(sentence).collect();
        if words.is_empty() {
            continue;
        }
        claims += 1;
        let found = words.iter().filter(|w| context_words.contains(*w)).count();
        let numbers_found = words
            .iter()
            .filter(|w| w.chars().any(|c| c.is_ascii_digit()))
            .all(|w| context_words.contains(w));
        if numbers_found && found as f64 / words.len() as f64 >= SUPPORT_THRESHOLD {
            supported += 1;
        }
    }
    (claims > 0).then(|| Faithfulness {
        score: 1.0 + 4.0 * supported as f64 / claims as f64,
        claims,
        supported,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copied_sentences_score_five_and_invented_ones_lower() {
        let ctx = vec!["Refunds are issued within 5 business days.".to_owned()];
        let f = lexical_faithfulness("Refunds are issued within 5 business days.", &ctx).unwrap();
        assert_eq!((f.score, f.claims, f.supported), (5.0, 1, 1));
        let f = lexical_faithfulness(
            "Refunds are issued within 5 business days. We also ship to Mars for free.",
            &ctx,
        )
        .unwrap();
        assert_eq!(f.score, 3.0);
        let f = lexical_faithfulness("Refunds are issued within 9 business days.", &ctx).unwrap();
        assert_eq!(
            f.score, 1.0,
            "a number the context does not carry is unsupported"
        );
        assert!(lexical_faithfulness("", &ctx).is_none());
    }
}
