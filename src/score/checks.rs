//! The format check "the answer is JSON". Regex checks match with the patterns compiled when
//! their files were read ([`crate::check::Patterns`]).

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
    fn json_answers() {
        assert_eq!(json_error(r#"{"a": 1}"#), None);
        assert_eq!(json_error("```json\n[1, 2]\n```"), None);
        assert!(json_error("{\"a\": 1").is_some());
        assert!(json_error("Sure! {\"a\": 1}").is_some());
    }
}
