//! Check kinds as the files write them: what an item (`"checks": [...]` in items.jsonl) or the
//! evaluation (`[scoring] checks`, `[scoring] similarity`) asks of an answer. Patterns are compiled
//! here, once, when the file is read; `score` applies them.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// The pass/fail checks an answer can be put through, as result lines name them
/// (`"checks": {"keywords": {...}}`). In name order, so a line's checks read in the order they
/// always have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    /// The answer repeats the prompt or the context (the echo guard).
    Echo,
    /// A forbidden string appears in the answer.
    Forbidden,
    /// The answer is (or is not) one JSON value.
    Json,
    /// The item's keywords appear in the answer.
    Keywords,
    /// The predicted class equals the item's label.
    Label,
    /// The answer matches (or avoids) the regexes.
    Regex,
    /// The answer is similar enough to `expected`.
    Similarity,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum CheckSpec {
    /// The answer matches `pattern` (Rust regex syntax); with `negate = true`, it must not.
    Regex {
        pattern: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        negate: bool,
    },
    /// The answer is one JSON value (a fenced ```json block around it is accepted).
    Json,
}

/// Compiled patterns, shared by every answer.
#[derive(Debug, Clone, Default)]
pub struct Patterns {
    compiled: HashMap<String, regex::Regex>,
}

impl Patterns {
    pub fn new<'a>(
        specs: impl IntoIterator<Item = &'a CheckSpec>,
    ) -> Result<Patterns, regex::Error> {
        let mut patterns = Patterns::default();
        patterns.add(specs)?;
        Ok(patterns)
    }

    /// Compile the patterns not seen yet. Called as each file is read, so a bad pattern is
    /// reported where it was written (an item's line, a field of goldgate.toml), and no pattern
    /// is compiled twice.
    pub fn add<'a>(
        &mut self,
        specs: impl IntoIterator<Item = &'a CheckSpec>,
    ) -> Result<(), regex::Error> {
        for spec in specs {
            if let CheckSpec::Regex { pattern, .. } = spec
                && !self.compiled.contains_key(pattern)
            {
                self.compiled
                    .insert(pattern.clone(), regex::Regex::new(pattern)?);
            }
        }
        Ok(())
    }

    /// Both sets of patterns in one (the golden set's and the evaluation's).
    pub fn merge(mut self, other: Patterns) -> Patterns {
        self.compiled.extend(other.compiled);
        self
    }

    /// The patterns among `specs` that the answer fails.
    pub fn failed_regexes<'a>(&self, specs: &'a [CheckSpec], answer: &str) -> Vec<&'a str> {
        specs
            .iter()
            .filter_map(|s| match s {
                CheckSpec::Regex { pattern, negate } => {
                    let matched = self
                        .compiled
                        .get(pattern)
                        .is_some_and(|re| re.is_match(answer));
                    (matched == *negate).then_some(pattern.as_str())
                }
                CheckSpec::Json => None,
            })
            .collect()
    }
}

/// Which similarity measure a `[scoring] similarity` threshold applies to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    Levenshtein,
    #[default]
    TokenSet,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_and_negated_regex() {
        let specs = vec![
            CheckSpec::Regex {
                pattern: r"\d+ days".into(),
                negate: false,
            },
            CheckSpec::Regex {
                pattern: "(?i)as an ai".into(),
                negate: true,
            },
        ];
        let p = Patterns::new(&specs).unwrap();
        assert!(p.failed_regexes(&specs, "within 30 days").is_empty());
        assert_eq!(
            p.failed_regexes(&specs, "As an AI, soon"),
            vec![r"\d+ days", "(?i)as an ai"]
        );
        assert!(
            Patterns::new(&[CheckSpec::Regex {
                pattern: "(".into(),
                negate: false
            }])
            .is_err()
        );
    }

    #[test]
    fn specs_parse_from_toml_and_json() {
        let s: CheckSpec = serde_json::from_str(r#"{"type": "regex", "pattern": "x"}"#).unwrap();
        assert_eq!(
            s,
            CheckSpec::Regex {
                pattern: "x".into(),
                negate: false
            }
        );
        let s: CheckSpec = serde_json::from_str(r#"{"type": "json"}"#).unwrap();
        assert_eq!(s, CheckSpec::Json);
        assert!(serde_json::from_str::<CheckSpec>(r#"{"type": "yaml"}"#).is_err());
    }
}
