//! Faithfulness by an LLM judge, RAGAS-style: one call breaks the answer into standalone
//! statements, a second returns a verdict per statement (supported by the context or not), both
//! as JSON. Output that is not the JSON asked for is asked for once more, then recorded as a
//! judge error for the item — never a crash. Judge calls go through the judge provider's own
//! client (its concurrency, retries and timeout), run after the judged answer was timed, and their
//! tokens and cost are counted apart from the judged model's.

use serde::{Deserialize, Serialize};

use crate::provider::{Client, Request};

const STATEMENTS_PROMPT: &str = "You split an answer into standalone factual statements.\n\
Rules: each statement must be understandable without the others (replace pronouns with what they refer to); \
keep every fact of the answer; do not add facts; ignore greetings and filler.\n\
Respond with JSON only, in this form: {\"statements\": [\"...\", \"...\"]}\n\nAnswer:\n";

const VERDICTS_PROMPT: &str = "You check statements against a context.\n\
For each statement, decide whether it can be directly inferred from the context alone: verdict 1 if yes, 0 if not \
(also 0 when the context does not say, or says otherwise).\n\
Respond with JSON only, one entry per statement in the same order, in this form: \
{\"verdicts\": [{\"statement\": \"...\", \"verdict\": 1, \"reason\": \"...\"}]}\n\n";

/// What judging one answer cost, counted apart from the judged model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct JudgeUsage {
    pub requests: u32,
    pub input: u64,
    pub output: u64,
    pub cost_usd: f64,
}

impl JudgeUsage {
    fn add(&mut self, o: &crate::provider::Outcome) {
        self.requests += 1;
        self.input = self.input.saturating_add(o.usage.input);
        self.output = self.output.saturating_add(o.usage.output);
        self.cost_usd += o.cost_usd;
    }
}

/// The judge's findings on one answer: each statement and whether the context supports it.
#[derive(Debug, Clone, Default)]
pub struct JudgeVerdicts {
    pub statements: Vec<(String, bool)>,
}

pub struct Judge {
    client: Client,
}

#[derive(Deserialize)]
struct Statements {
    statements: Vec<String>,
}

#[derive(Deserialize)]
struct Verdicts {
    verdicts: Vec<Verdict>,
}

#[derive(Deserialize)]
struct Verdict {
    #[serde(default)]
    statement: Option<String>,
    verdict: VerdictValue,
}

/// Judges write 1, "1", true, "yes" or "supported": accept each.
#[derive(Deserialize)]
#[serde(untagged)]
enum VerdictValue {
    Int(i64),
    Bool(bool),
    Text(String),
}

impl VerdictValue {
    fn supported(&self) -> Option<bool> {
        match self {
            VerdictValue::Int(i) => Some(*i > 0),
            VerdictValue::Bool(b) => Some(*b),
            VerdictValue::Text(t) => match t.trim().to_lowercase().as_str() {
                "1" | "yes" | "true" | "supported" => Some(true),
                "0" | "no" | "false" | "unsupported" | "not supported" => Some(false),
                _ => None,
            },
        }
    }
}

impl Judge {
    pub fn new(client: Client) -> Judge {
        Judge { client }
    }

    /// Judge one answer. `Ok(None)` when the answer makes no statement.
    pub async fn faithfulness(
        &self,
        answer: &str,
        context: &[String],
        usage: &mut JudgeUsage,
    ) -> Result<Option<JudgeVerdicts>, String> {
        let statements: Statements = self
            .ask(
                format!("{STATEMENTS_PROMPT}{answer}"),
                usage,
                |s: &Statements| s.statements.iter().all(|x| !x.trim().is_empty()),
            )
            .await?;
        if statements.statements.is_empty() {
            return Ok(None);
        }
        let mut prompt = format!("{VERDICTS_PROMPT}Context:\n");
        for passage in context {
            prompt.push_str(passage);
            prompt.push_str("\n\n");
        }
        prompt.push_str("Statements:\n");
        for (i, s) in statements.statements.iter().enumerate() {
            prompt.push_str(&format!("{}. {s}\n", i + 1));
        }
        let n = statements.statements.len();
        let verdicts: Verdicts = self
            .ask(prompt, usage, |v: &Verdicts| {
                v.verdicts.len() == n && v.verdicts.iter().all(|v| v.verdict.supported().is_some())
            })
            .await?;
        Ok(Some(JudgeVerdicts {
            statements: statements
                .statements
                .into_iter()
                .zip(verdicts.verdicts)
                .map(|(s, v)| {
                    (
                        v.statement.filter(|t| !t.trim().is_empty()).unwrap_or(s),
                        v.verdict.supported().unwrap_or(false),
                    )
                })
                .collect(),
        }))
    }

    /// One judge call whose output must parse as `T` and pass `valid`; asked twice at most.
    async fn ask<T: serde::de::DeserializeOwned>(
        &self,
        prompt: String,
        usage: &mut JudgeUsage,
        valid: impl Fn(&T) -> bool,
    ) -> Result<T, String> {
        let request = Request {
            system: None,
            prompt,
            question: String::new(),
            context: Vec::new(),
            trial: 0,
            chat: None,
        };
        let mut last = String::new();
        for _ in 0..2 {
            let outcome = self.client.call(&request).await;
            usage.add(&outcome);
            let text = match outcome.result {
                Ok(text) => text,
                Err(e) => {
                    return Err(format!(
                        "judge request failed: {}: {}",
                        e.kind.as_str(),
                        e.message
                    ));
                }
            };
            match parse_json::<T>(&text) {
                Some(v) if valid(&v) => return Ok(v),
                _ => last = crate::provider::http::snippet(text.as_bytes()),
            }
        }
        Err(format!(
            "judge output is not the JSON asked for (twice); last: {last}"
        ))
    }
}

/// The JSON object in a judge's reply: the whole reply, a fenced block, or the outermost braces.
fn parse_json<T: serde::de::DeserializeOwned>(text: &str) -> Option<T> {
    let t = text.trim();
    if let Ok(v) = serde_json::from_str(t) {
        return Some(v);
    }
    let (start, end) = (t.find('{')?, t.rfind('}')?);
    serde_json::from_str(t.get(start..=end)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_json_extraction() {
        let s: Statements = parse_json("```json\n{\"statements\": [\"a\"]}\n```").unwrap();
        assert_eq!(s.statements, ["a"]);
        let v: Verdicts =
            parse_json("Here: {\"verdicts\": [{\"verdict\": \"yes\"}, {\"verdict\": 0}]} done")
                .unwrap();
        let got: Vec<_> = v.verdicts.iter().map(|v| v.verdict.supported()).collect();
        assert_eq!(got, [Some(true), Some(false)]);
        assert!(parse_json::<Statements>("no json here").is_none());
    }
}
