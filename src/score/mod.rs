//! Scoring an answer against its item: checks (pass/fail, they decide accuracy) and the
//! faithfulness score (a 1–5 metric). Each check is a [`Scorer`]; new ones plug in here without
//! touching the runner.

mod faithfulness;
mod keywords;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::{FaithfulnessMethod, ScoringConfig};
use crate::golden::Item;

pub use faithfulness::{Faithfulness, lexical_faithfulness};
pub use keywords::{ForbiddenScorer, KeywordScorer};

/// The result of one check on one answer, with its evidence.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Check {
    pub pass: bool,
    #[serde(flatten)]
    pub evidence: Evidence,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Evidence {
    Keywords {
        matched: Vec<String>,
        missing: Vec<String>,
    },
    Forbidden {
        found: Vec<String>,
    },
}

/// A pass/fail check of an answer. Returns `None` when the check does not apply to the item.
pub trait Scorer: Send + Sync {
    fn name(&self) -> &'static str;
    fn check(&self, item: &Item, answer: &str) -> Option<Check>;
}

/// All the scoring of one answer.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Scores {
    pub checks: BTreeMap<&'static str, Check>,
    pub faithfulness: Option<Faithfulness>,
}

impl Scores {
    /// An item passes when every check that applies to it passes.
    pub fn pass(&self) -> bool {
        self.checks.values().all(|c| c.pass)
    }
}

/// The configured scorers.
pub struct Scoring {
    scorers: Vec<Box<dyn Scorer>>,
    faithfulness: FaithfulnessMethod,
}

impl Scoring {
    pub fn new(config: &ScoringConfig) -> Self {
        Scoring {
            scorers: vec![Box::new(KeywordScorer), Box::new(ForbiddenScorer)],
            faithfulness: config.faithfulness.method,
        }
    }

    pub fn score(&self, item: &Item, answer: &str) -> Scores {
        let checks = self
            .scorers
            .iter()
            .filter_map(|s| s.check(item, answer).map(|c| (s.name(), c)))
            .collect();
        let faithfulness = match self.faithfulness {
            FaithfulnessMethod::Lexical if item.has_context() => {
                lexical_faithfulness(answer, &item.context)
            }
            _ => None,
        };
        Scores {
            checks,
            faithfulness,
        }
    }
}
