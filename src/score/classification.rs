//! Classification items (`label`): the predicted class read from the answer, and per-class
//! precision, recall and F1, macro-F1 and a confusion matrix over a model's answers.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// What the answer's class is taken to be.
///
/// With an extraction regex, its first capture group (or whole match). Without one: the answer
/// itself when, lower-cased and stripped of surrounding punctuation, it is a known label; else
/// the one known label the answer mentions as a whole word; else the answer, normalised, as an
/// unknown class (it counts against precision and recall alike).
pub fn predict(answer: &str, labels: &BTreeSet<String>, extract: Option<&regex::Regex>) -> String {
    if let Some(re) = extract {
        return re
            .captures(answer)
            .and_then(|c| c.get(1).or_else(|| c.get(0)))
            .map_or_else(String::new, |m| normalise(m.as_str()));
    }
    let whole = normalise(answer);
    if labels.contains(&whole) {
        return whole;
    }
    let words: BTreeSet<String> = answer
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric() && c != '-' && c != '_')
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect();
    let mentioned: Vec<&String> = labels
        .iter()
        .filter(|l| {
            let lw: Vec<&str> = l.split_whitespace().collect();
            if lw.len() == 1 {
                words.contains(*l)
            } else {
                whole.contains(l.as_str())
            }
        })
        .collect();
    match mentioned.as_slice() {
        [one] => (*one).clone(),
        _ => whole.chars().take(40).collect(),
    }
}

pub fn normalise(s: &str) -> String {
    s.trim()
        .trim_matches(|c: char| !c.is_alphanumeric())
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// Counts of (expected, predicted) pairs.
#[derive(Debug, Clone, Default)]
pub struct Confusion {
    pub counts: BTreeMap<(String, String), u64>,
}

impl Confusion {
    pub fn add(&mut self, expected: &str, predicted: &str) {
        *self
            .counts
            .entry((expected.to_owned(), predicted.to_owned()))
            .or_default() += 1;
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    pub fn metrics(&self) -> Option<ClassificationMetrics> {
        if self.counts.is_empty() {
            return None;
        }
        let expected: BTreeSet<&str> = self.counts.keys().map(|(e, _)| e.as_str()).collect();
        // Predictions outside the expected classes are one column: "(other)".
        let column = |p: &str| {
            if expected.contains(p) {
                p.to_owned()
            } else {
                OTHER.to_owned()
            }
        };
        let mut labels: Vec<String> = expected.iter().map(|s| (*s).to_owned()).collect();
        let has_other = self
            .counts
            .keys()
            .any(|(_, p)| !expected.contains(p.as_str()));
        if has_other {
            labels.push(OTHER.to_owned());
        }
        let index = |l: &str| {
            labels
                .iter()
                .position(|x| x == l)
                .expect("every label is indexed")
        };
        let mut matrix = vec![vec![0u64; labels.len()]; expected.len()];
        for ((e, p), n) in &self.counts {
            matrix[index(e)][index(&column(p))] += n;
        }
        let total: u64 = self.counts.values().sum();
        let correct: u64 = (0..expected.len()).map(|i| matrix[i][i]).sum();
        let mut classes = BTreeMap::new();
        for (i, label) in expected.iter().enumerate() {
            let tp = matrix[i][i] as f64;
            let support: u64 = matrix[i].iter().sum();
            let predicted: u64 = matrix.iter().map(|row| row[i]).sum();
            let precision = if predicted > 0 {
                tp / predicted as f64
            } else {
                0.0
            };
            let recall = if support > 0 {
                tp / support as f64
            } else {
                0.0
            };
            let f1 = if precision + recall > 0.0 {
                2.0 * precision * recall / (precision + recall)
            } else {
                0.0
            };
            classes.insert(
                (*label).to_owned(),
                ClassMetrics {
                    precision,
                    recall,
                    f1,
                    support,
                },
            );
        }
        let macro_f1 = classes.values().map(|c| c.f1).sum::<f64>() / classes.len() as f64;
        Some(ClassificationMetrics {
            accuracy: correct as f64 / total as f64,
            macro_f1,
            classes,
            confusion: ConfusionMatrix {
                expected: expected.iter().map(|s| (*s).to_owned()).collect(),
                predicted: labels,
                counts: matrix,
            },
        })
    }
}

pub const OTHER: &str = "(other)";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: u64,
}

/// Rows are expected classes, columns predicted ones (plus "(other)" for unknown predictions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    pub expected: Vec<String>,
    pub predicted: Vec<String>,
    pub counts: Vec<Vec<u64>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassificationMetrics {
    pub accuracy: f64,
    pub macro_f1: f64,
    pub classes: BTreeMap<String, ClassMetrics>,
    pub confusion: ConfusionMatrix,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> BTreeSet<String> {
        ["billing", "shipping", "returns"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn prediction_from_answer_or_regex() {
        let l = labels();
        assert_eq!(predict("Billing.", &l, None), "billing");
        assert_eq!(
            predict("This is about shipping, I think", &l, None),
            "shipping"
        );
        assert_eq!(
            predict("billing or shipping", &l, None),
            "billing or shipping"
        );
        let re = regex::Regex::new(r"(?i)category:\s*(\w+)").unwrap();
        assert_eq!(
            predict("Reasoning… Category: Returns", &l, Some(&re)),
            "returns"
        );
        assert_eq!(predict("no category given", &l, Some(&re)), "");
    }

    /// A confusion matrix computed by hand:
    ///
    /// ```text
    ///              predicted
    ///              billing shipping (other)
    /// billing         3       1       0
    /// shipping        1       2       1
    /// ```
    /// billing: P = 3/4, R = 3/4, F1 = 0.75. shipping: P = 2/3, R = 2/4, F1 = 4/7.
    #[test]
    fn metrics_match_a_hand_computed_matrix() {
        let mut c = Confusion::default();
        for _ in 0..3 {
            c.add("billing", "billing");
        }
        c.add("billing", "shipping");
        c.add("shipping", "billing");
        c.add("shipping", "shipping");
        c.add("shipping", "shipping");
        c.add("shipping", "no idea");
        let m = c.metrics().unwrap();
        assert_eq!(m.confusion.predicted, ["billing", "shipping", OTHER]);
        assert_eq!(m.confusion.counts, vec![vec![3, 1, 0], vec![1, 2, 1]]);
        let b = &m.classes["billing"];
        assert!((b.precision - 0.75).abs() < 1e-12 && (b.recall - 0.75).abs() < 1e-12);
        let s = &m.classes["shipping"];
        assert!((s.precision - 2.0 / 3.0).abs() < 1e-12);
        assert!((s.recall - 0.5).abs() < 1e-12);
        assert!((s.f1 - 4.0 / 7.0).abs() < 1e-12);
        assert!((m.macro_f1 - (0.75 + 4.0 / 7.0) / 2.0).abs() < 1e-12);
        assert!((m.accuracy - 5.0 / 8.0).abs() < 1e-12);
        assert_eq!(s.support, 4);
    }
}
