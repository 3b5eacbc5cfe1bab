//! The classic golden-set checks: expected keywords (`any`/`all`) and forbidden strings,
//! case-insensitive substring matches.

use super::{Check, Evidence, Scorer};
use crate::golden::{Item, MatchMode};

pub struct KeywordScorer;

impl Scorer for KeywordScorer {
    fn name(&self) -> &'static str {
        "keywords"
    }

    fn check(&self, item: &Item, answer: &str) -> Option<Check> {
        if item.keywords.is_empty() {
            return None;
        }
        let haystack = answer.to_lowercase();
        let (matched, missing): (Vec<&String>, Vec<&String>) = item
            .keywords
            .iter()
            .partition(|k| haystack.contains(&k.to_lowercase()));
        let pass = match item.match_mode {
            MatchMode::Any => !matched.is_empty(),
            MatchMode::All => missing.is_empty(),
        };
        Some(Check {
            pass,
            evidence: Evidence::Keywords {
                matched: matched.into_iter().cloned().collect(),
                missing: missing.into_iter().cloned().collect(),
            },
        })
    }
}

pub struct ForbiddenScorer;

impl Scorer for ForbiddenScorer {
    fn name(&self) -> &'static str {
        "forbidden"
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

    #[test]
    fn any_and_all_are_case_insensitive() {
        let any = item(r#"{"id":"a","question":"q","keywords":["30 Days","receipt"]}"#);
        let all =
            item(r#"{"id":"a","question":"q","keywords":["30 Days","receipt"],"match":"all"}"#);
        let c = KeywordScorer.check(&any, "Within 30 days.").unwrap();
        assert!(c.pass);
        assert!(!KeywordScorer.check(&all, "Within 30 DAYS.").unwrap().pass);
        assert!(
            KeywordScorer
                .check(&all, "30 days, with the RECEIPT")
                .unwrap()
                .pass
        );
        assert!(!KeywordScorer.check(&any, "").unwrap().pass);
    }

    #[test]
    fn forbidden_fails_on_any_hit_and_checks_only_apply_when_configured() {
        let it = item(r#"{"id":"a","question":"q","forbidden":["GW-50"]}"#);
        assert!(!ForbiddenScorer.check(&it, "use code gw-50").unwrap().pass);
        assert!(ForbiddenScorer.check(&it, "no code").unwrap().pass);
        assert!(KeywordScorer.check(&it, "x").is_none());
    }
}
