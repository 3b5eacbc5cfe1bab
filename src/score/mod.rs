//! Scoring an answer against its item: checks (pass/fail; together they decide accuracy) and the
//! scores that are metrics of their own (faithfulness 1–5, similarity to `expected`). Each check
//! is a [`Scorer`]; a new one plugs in here without touching the runner.

mod checks;
mod classification;
mod echo;
mod faithfulness;
mod judge;
mod keywords;
mod shadow;
mod similarity;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::check::{CheckKind, CheckSpec, Measure, Patterns};
use crate::config::{FaithfulnessMethod, ScoringConfig};
use crate::golden::Item;

pub use checks::json_error;
pub use classification::{ClassificationMetrics, Confusion};
pub use echo::{EchoOf, EchoScorer};
pub use faithfulness::{Faithfulness, lexical_faithfulness};
pub use judge::{Judge, JudgeUsage};
pub use keywords::{ForbiddenScorer, KeywordScorer, KeywordSpan};
pub use shadow::{ShadowScores, ShadowScoring, is_json, is_refusal};
pub use similarity::Similarity;

/// The result of one check on one answer, with its evidence.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Check {
    pub pass: bool,
    #[serde(flatten)]
    pub evidence: Evidence,
}

/// What a check saw. Each variant has a field of its own, so a stored line reads back unambiguously.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Evidence {
    Keywords {
        matched: Vec<String>,
        missing: Vec<String>,
        /// Where each matched keyword was found (fuzzy matches carry their similarity).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        spans: Vec<KeywordSpan>,
    },
    Forbidden {
        found: Vec<String>,
    },
    Regex {
        /// The patterns the answer failed.
        failed: Vec<String>,
    },
    Label {
        expected: String,
        predicted: String,
    },
    Similarity {
        levenshtein: f64,
        token_set: f64,
        threshold: f64,
    },
    Json {
        valid: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// The answer repeats the prompt or the context instead of answering.
    Echo {
        echo_of: EchoOf,
        /// The start of what was copied (normalised words).
        copied: String,
        /// The share of the context's words the answer reproduces in copied runs.
        context_copied: f64,
    },
}

/// A pass/fail check of an answer. Returns `None` when the check does not apply to the item.
pub trait Scorer: Send + Sync {
    fn kind(&self) -> CheckKind;
    fn check(&self, item: &Item, answer: &str) -> Option<Check>;
}

/// All the scoring of one answer.
#[derive(Debug, Clone, Default)]
pub struct Scores {
    pub checks: BTreeMap<CheckKind, Check>,
    pub faithfulness: Option<Faithfulness>,
    pub similarity: Option<Similarity>,
    /// What the judge cost for this answer, and why it failed if it did.
    pub judge: Option<(JudgeUsage, Option<String>)>,
    /// A shadow replay's answer next to production's.
    pub shadow: Option<ShadowScores>,
}

impl Scores {
    /// An item passes when every check that applies to it passes.
    pub fn pass(&self) -> bool {
        self.checks.values().all(|c| c.pass)
    }
}

/// Regex checks: the item's own and the evaluation's defaults.
struct RegexScorer {
    defaults: Vec<CheckSpec>,
    patterns: Patterns,
}

impl Scorer for RegexScorer {
    fn kind(&self) -> CheckKind {
        CheckKind::Regex
    }

    fn check(&self, item: &Item, answer: &str) -> Option<Check> {
        let specs: Vec<CheckSpec> = self
            .defaults
            .iter()
            .chain(&item.checks)
            .filter(|s| matches!(s, CheckSpec::Regex { .. }))
            .cloned()
            .collect();
        if specs.is_empty() {
            return None;
        }
        let failed: Vec<String> = self
            .patterns
            .failed_regexes(&specs, answer)
            .into_iter()
            .map(str::to_owned)
            .collect();
        Some(Check {
            pass: failed.is_empty(),
            evidence: Evidence::Regex { failed },
        })
    }
}

struct JsonScorer {
    default: bool,
}

impl Scorer for JsonScorer {
    fn kind(&self) -> CheckKind {
        CheckKind::Json
    }

    fn check(&self, item: &Item, answer: &str) -> Option<Check> {
        if !self.default && !item.checks.contains(&CheckSpec::Json) {
            return None;
        }
        let error = json_error(answer);
        Some(Check {
            pass: error.is_none(),
            evidence: Evidence::Json {
                valid: error.is_none(),
                error,
            },
        })
    }
}

/// Items with a `label`: the predicted class must equal it.
struct LabelScorer {
    labels: BTreeSet<String>,
    extract: Option<regex::Regex>,
}

impl Scorer for LabelScorer {
    fn kind(&self) -> CheckKind {
        CheckKind::Label
    }

    fn check(&self, item: &Item, answer: &str) -> Option<Check> {
        let expected = classification::normalise(item.label.as_deref()?);
        let predicted = classification::predict(answer, &self.labels, self.extract.as_ref());
        Some(Check {
            pass: predicted == expected,
            evidence: Evidence::Label {
                expected,
                predicted,
            },
        })
    }
}

/// With a threshold, similarity to `expected` is a check.
struct SimilarityScorer {
    threshold: f64,
    measure: Measure,
}

impl Scorer for SimilarityScorer {
    fn kind(&self) -> CheckKind {
        CheckKind::Similarity
    }

    fn check(&self, item: &Item, answer: &str) -> Option<Check> {
        let s = Similarity::of(answer, item.expected.as_deref()?);
        Some(Check {
            pass: s.get(self.measure) >= self.threshold,
            evidence: Evidence::Similarity {
                levenshtein: s.levenshtein,
                token_set: s.token_set,
                threshold: self.threshold,
            },
        })
    }
}

/// The configured scorers.
pub struct Scoring {
    scorers: Vec<Box<dyn Scorer>>,
    faithfulness: FaithfulnessMethod,
    judge: Option<Judge>,
    shadow: Option<ShadowScoring>,
}

impl Scoring {
    /// `items` are those of the golden set: their labels are the classes a prediction may take.
    /// `patterns` are the golden set's regex checks, compiled when it was read; the evaluation's
    /// own come with `config`.
    pub fn new(
        config: &ScoringConfig,
        items: &crate::golden::Items,
        patterns: Patterns,
        judge: Option<Judge>,
        echo: Option<EchoScorer>,
    ) -> Result<Scoring, regex::Error> {
        #[derive(serde::Deserialize)]
        struct Label {
            label: Option<String>,
        }
        let mut labels = BTreeSet::new();
        for i in 0..items.len() {
            if let Some(label) = items.get_as::<Label>(i).label {
                labels.insert(classification::normalise(&label));
            }
        }
        let patterns = patterns.merge(config.patterns.clone());
        let mut scorers: Vec<Box<dyn Scorer>> = vec![
            Box::new(KeywordScorer {
                fuzzy: config.keywords.fuzzy,
                whole_word: config.keywords.whole_word,
            }),
            Box::new(ForbiddenScorer),
            Box::new(RegexScorer {
                defaults: config.checks.clone(),
                patterns,
            }),
            Box::new(JsonScorer {
                default: config.checks.contains(&CheckSpec::Json),
            }),
            Box::new(LabelScorer {
                labels,
                extract: config
                    .classification
                    .extract
                    .as_deref()
                    .map(regex::Regex::new)
                    .transpose()?,
            }),
        ];
        if let Some(s) = config.similarity {
            scorers.push(Box::new(SimilarityScorer {
                threshold: s.threshold,
                measure: s.measure,
            }));
        }
        if let Some(echo) = echo {
            scorers.push(Box::new(echo));
        }
        Ok(Scoring {
            scorers,
            faithfulness: config.faithfulness.method,
            judge,
            shadow: None,
        })
    }

    /// Score answers as shadow replays: each item's `expected` is production's answer.
    pub fn for_shadow(mut self, shadow: ShadowScoring) -> Scoring {
        self.shadow = Some(shadow);
        self
    }

    pub async fn score(&self, item: &Item, answer: &str) -> Scores {
        let checks: BTreeMap<_, _> = self
            .scorers
            .iter()
            .filter_map(|s| s.check(item, answer).map(|c| (s.kind(), c)))
            .collect();
        // The similarity check, where there is one, measured it already.
        let similarity = match checks.get(&CheckKind::Similarity).map(|c| &c.evidence) {
            Some(Evidence::Similarity {
                levenshtein,
                token_set,
                ..
            }) => Some(Similarity {
                levenshtein: *levenshtein,
                token_set: *token_set,
            }),
            _ => item.expected.as_deref().map(|e| Similarity::of(answer, e)),
        };
        // An echo copies the context, which would read as perfectly faithful: it is no answer
        // to score.
        let echoed = checks.contains_key(&CheckKind::Echo);
        let (faithfulness, judge) = match self.faithfulness {
            _ if !item.has_context() || echoed => (None, None),
            FaithfulnessMethod::Lexical => (lexical_faithfulness(answer, &item.context), None),
            FaithfulnessMethod::Judge => match &self.judge {
                Some(judge) => {
                    let mut usage = JudgeUsage::default();
                    match judge.faithfulness(answer, &item.context, &mut usage).await {
                        Ok(v) => (
                            v.map(|v| Faithfulness::from_verdicts(&v.statements)),
                            Some((usage, None)),
                        ),
                        Err(e) => (None, Some((usage, Some(e)))),
                    }
                }
                None => (None, None),
            },
            FaithfulnessMethod::Off => (None, None),
        };
        let shadow = self
            .shadow
            .map(|s| s.score(item.expected.as_deref().unwrap_or_default(), answer));
        Scores {
            checks,
            faithfulness,
            similarity,
            judge,
            shadow,
        }
    }
}

impl Faithfulness {
    /// Faithfulness from a judge's verdicts, on the same 1–5 scale as the lexical scorer, each
    /// statement recorded as a claim (support 1 or 0; the judge names no passage).
    pub fn from_verdicts(verdicts: &[(String, bool)]) -> Faithfulness {
        let claims = verdicts.len();
        let supported = verdicts.iter().filter(|v| v.1).count();
        Faithfulness {
            score: if claims == 0 {
                5.0
            } else {
                1.0 + 4.0 * supported as f64 / claims as f64
            },
            claims,
            supported,
            support: None,
            details: verdicts
                .iter()
                .map(|(claim, ok)| faithfulness::ClaimSupport {
                    claim: claim.clone(),
                    support: if *ok { 1.0 } else { 0.0 },
                    supported: *ok,
                    passage: 0,
                    window: String::new(),
                    missing: Vec::new(),
                    negation_mismatch: false,
                })
                .collect(),
        }
    }
}
