//! Similarity of an answer to the item's reference answer (`expected`): a character measure and a
//! word-set measure, both 0..1. With `[scoring] similarity = { threshold = … }` it is also a check.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::check::Measure;
use crate::text;

/// Levenshtein is quadratic: compare at most this many characters of each side.
const MAX_CHARS: usize = 2_000;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Similarity {
    /// 1 − edit distance / longer length, on lower-cased, whitespace-collapsed text.
    pub levenshtein: f64,
    /// Jaccard overlap of the two sets of content words (stopwords dropped, plurals folded).
    pub token_set: f64,
}

impl Similarity {
    pub fn of(answer: &str, expected: &str) -> Similarity {
        // Both measures give 1 for equal texts (empty ones too): production's answer scored
        // against itself, 100,000 times in a shadow run, costs nothing.
        if answer == expected {
            return Similarity {
                levenshtein: 1.0,
                token_set: 1.0,
            };
        }
        Similarity {
            levenshtein: levenshtein(answer, expected),
            token_set: token_set(answer, expected),
        }
    }

    pub fn get(&self, m: Measure) -> f64 {
        match m {
            Measure::Levenshtein => self.levenshtein,
            Measure::TokenSet => self.token_set,
        }
    }
}

fn normalise(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
        .chars()
        .take(MAX_CHARS)
        .collect()
}

fn levenshtein(a: &str, b: &str) -> f64 {
    strsim::normalized_levenshtein(&normalise(a), &normalise(b))
}

fn token_set(a: &str, b: &str) -> f64 {
    let a: HashSet<String> = text::content_words(a).collect();
    let b: HashSet<String> = text::content_words(b).collect();
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    a.intersection(&b).count() as f64 / a.union(&b).count() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures() {
        let s = Similarity::of("Refunds take 5 days.", "refunds   take 5 days.");
        assert_eq!((s.levenshtein, s.token_set), (1.0, 1.0));
        let s = Similarity::of(
            "The refund takes five business days",
            "Refunds: 5 business days",
        );
        assert!(s.token_set > 0.3 && s.token_set < 1.0, "{s:?}");
        let s = Similarity::of("blue", "red");
        assert_eq!(s.token_set, 0.0);
        assert!(s.levenshtein < 0.5);
    }
}
