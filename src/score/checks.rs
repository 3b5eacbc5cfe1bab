//! Format checks: a regex the answer must (or must not) match, and "the answer is JSON".
//! Given per item (`"checks": [...]` in items.jsonl) or for every item (`[scoring] checks`).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

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
#[derive(Debug, Default)]
pub struct Patterns {
    compiled: HashMap<String, regex::Regex>,
}

impl Patterns {
    /// Compile every pattern once; a bad one is reported where it was written (see `golden`).
    pub fn new<'a>(
        specs: impl IntoIterator<Item = &'a CheckSpec>,
    ) -> Result<Patterns, regex::Error> {
        let mut compiled = HashMap::new();
        for spec in specs {
            if let CheckSpec::Regex { pattern, .. } = spec
                && !compiled.contains_key(pattern)
            {
                compiled.insert(pattern.clone(), regex::Regex::new(pattern)?);
            }
        }
        Ok(Patterns { compiled })
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

/// `None` when the answer is one JSON value, else why not.
pub fn json_error(answer: &str) -> Option<String> {
    let mut text = answer.trim();
    if let Some(rest) = text.strip_prefix("```") {
        // A fenced block: drop the info string line and the closing fence.
        let body = rest.split_once('\n').map_or("", |(_, b)| b);
        text = body.trim_end().strip_suffix("```").unwrap_or(body).trim();
    }
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .err()
        .map(|e| e.to_string())
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
    fn json_answers() {
        assert_eq!(json_error(r#"{"a": 1}"#), None);
        assert_eq!(json_error("```json\n[1, 2]\n```"), None);
        assert!(json_error("{\"a\": 1").is_some());
        assert!(json_error("Sure! {\"a\": 1}").is_some());
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
