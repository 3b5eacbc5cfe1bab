//! The echo guard: an answer that repeats the prompt's own instructions, or the whole context,
//! back is not an answer, whatever keywords it happens to contain.
//!
//! Small and base models often continue the prompt instead of answering it: "Answer the
//! question using only the context below. Context: …" carries every expected keyword of an
//! extractive golden set, and is perfectly "faithful" to the context. Measured on the shipped
//! local example before this guard: 45 of Gemma-3-270M's 48 answers were such echoes, and all
//! 29 of its keyword passes were among them.
//!
//! Two rules, both on runs of [`RUN_WORDS`] consecutive words (lower-cased, light plural strip):
//! - **prompt**: the answer contains a run of the rendered prompt's own text — what is left once
//!   the question and the context are taken out — or of the system message;
//! - **context**: the answer's runs cover at least [`CONTEXT_SHARE`] of a context of at least
//!   [`CONTEXT_MIN_WORDS`] words. Quoting the sentence that answers is fine; copying the whole
//!   passage, with whatever else it says, is not.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::{Check, Evidence, Scorer};
use crate::check::CheckKind;
use crate::golden::Item;
use crate::prompt::PromptTemplate;

/// Words in a copied run: long enough that a shared phrase ("within 5 business days of") is not
/// a copy, short enough to catch any echoed instruction sentence.
pub const RUN_WORDS: usize = 8;
/// The share of the context's words an answer must reproduce to echo it.
pub const CONTEXT_SHARE: f64 = 0.8;
/// Below this, a context is one or two sentences, and repeating it can be the answer itself.
pub const CONTEXT_MIN_WORDS: usize = 40;
/// Evidence text is cut to about this many characters.
const COPIED_CHARS: usize = 120;

/// What an echoing answer repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EchoOf {
    /// The prompt's instructions or the system message.
    Prompt,
    /// Most of the context.
    Context,
}

impl EchoOf {
    pub fn as_str(self) -> &'static str {
        match self {
            EchoOf::Prompt => "prompt",
            EchoOf::Context => "context",
        }
    }
}

/// The guard, with what it needs to know the prompt's own words.
pub struct EchoScorer {
    pub prompt: PromptTemplate,
    pub system: Option<String>,
}

impl Scorer for EchoScorer {
    fn kind(&self) -> CheckKind {
        CheckKind::Echo
    }

    /// `Some` (a failed check) only for an echo: an answer that echoes nothing has nothing to show.
    fn check(&self, item: &Item, answer: &str) -> Option<Check> {
        let (words, spans): (Vec<String>, Vec<(usize, usize)>) = word_spans(answer).unzip();
        if words.len() < RUN_WORDS {
            return None;
        }
        let (echo_of, at, context_copied) = self.find(item, &words)?;
        // Shown as the answer wrote it, from the first copied word on.
        let copied = &answer[spans[at].0..spans[at + RUN_WORDS - 1].1];
        Some(Check {
            pass: false,
            evidence: Evidence::Echo {
                echo_of,
                copied: crate::text::ellipsize(copied, COPIED_CHARS),
                context_copied: (context_copied * 1000.0).round() / 1000.0,
            },
        })
    }
}

impl EchoScorer {
    /// What the answer echoes, where its first copied run starts (a word index), and the share
    /// of the context it copies.
    fn find(&self, item: &Item, answer: &[String]) -> Option<(EchoOf, usize, f64)> {
        let passages: Vec<Vec<String>> = item.context.iter().map(|p| words(p)).collect();
        let context_copied = context_share(answer, &passages);
        let mut own: Vec<Vec<String>> =
            instruction_segments(&self.prompt.render(item).unwrap_or_default(), item)
                .into_iter()
                .map(|s| words(&s))
                .collect();
        if let Some(system) = &self.system {
            own.push(words(system));
        }
        let runs: HashSet<&[String]> = own.iter().flat_map(|s| s.windows(RUN_WORDS)).collect();
        if let Some(at) = answer.windows(RUN_WORDS).position(|w| runs.contains(w)) {
            return Some((EchoOf::Prompt, at, context_copied.unwrap_or(0.0)));
        }
        let share = context_copied?;
        if share < CONTEXT_SHARE {
            return None;
        }
        let context: HashSet<&[String]> =
            passages.iter().flat_map(|p| p.windows(RUN_WORDS)).collect();
        let at = answer
            .windows(RUN_WORDS)
            .position(|w| context.contains(w))?;
        Some((EchoOf::Context, at, share))
    }
}

/// The rendered prompt without the item's question and context: the template's own text, in
/// the pieces between them (a run must not join words across a removed part).
fn instruction_segments(rendered: &str, item: &Item) -> Vec<String> {
    // Longest first, so the whole context goes before any passage of it.
    let mut parts: Vec<&str> = item
        .context
        .iter()
        .map(String::as_str)
        .chain([item.question.as_str()])
        .filter(|p| !p.trim().is_empty())
        .collect();
    let joined = item.context_text();
    parts.push(&joined);
    parts.sort_by_key(|p| std::cmp::Reverse(p.len()));
    let mut text = rendered.to_owned();
    for part in parts {
        text = text.replace(part, "\u{0}");
    }
    text.split('\u{0}').map(str::to_owned).collect()
}

/// The share of the context's words that the answer's copied runs cover; `None` for a context
/// too short to judge.
fn context_share(answer: &[String], passages: &[Vec<String>]) -> Option<f64> {
    let total: usize = passages.iter().map(Vec::len).sum();
    if total < CONTEXT_MIN_WORDS {
        return None;
    }
    let runs: HashSet<&[String]> = answer.windows(RUN_WORDS).collect();
    let mut covered = 0;
    for passage in passages {
        let mut hit = vec![false; passage.len()];
        for (i, w) in passage.windows(RUN_WORDS).enumerate() {
            if runs.contains(w) {
                hit[i..i + RUN_WORDS].iter_mut().for_each(|h| *h = true);
            }
        }
        covered += hit.iter().filter(|h| **h).count();
    }
    Some(covered as f64 / total as f64)
}

fn words(text: &str) -> Vec<String> {
    crate::text::words(text).collect()
}

/// [`words`] with where each word stands in `text` (byte offsets), to show a copy as written.
fn word_spans(text: &str) -> impl Iterator<Item = (String, (usize, usize))> + '_ {
    text.char_indices()
        .filter(|&(i, c)| {
            c.is_alphanumeric()
                && !text[..i]
                    .chars()
                    .next_back()
                    .is_some_and(char::is_alphanumeric)
        })
        .map(move |(start, _)| {
            let end = text[start..]
                .find(|c: char| !c.is_alphanumeric())
                .map_or(text.len(), |n| start + n);
            let word = crate::text::words(&text[start..end])
                .next()
                .unwrap_or_default();
            (word, (start, end))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROMPT: &str = "{% if context %}Answer the question using only the context below.\n\nContext:\n{{ context }}\n\n{% endif %}Question: {{ question }}";
    const CONTEXT: &str = "Once your return arrives at our warehouse, we inspect it within 2 business days. \
        Refunds are issued to your original payment method within 5 business days after we receive your return. \
        Your bank may take a few extra days to show the credit on your statement. \
        Summit members get free return shipping on every order.";

    fn scorer() -> EchoScorer {
        EchoScorer {
            prompt: PromptTemplate::new(PROMPT, std::path::Path::new("goldgate.toml")).unwrap(),
            system: Some(
                "You are Lumen Outfitters' support assistant and answer in one sentence.".into(),
            ),
        }
    }

    fn item() -> Item {
        serde_json::from_value(serde_json::json!({
            "id": "refund-timing-01",
            "question": "When will my refund show up after you receive my return?",
            "context": CONTEXT,
            "keywords": ["5 business days"],
        }))
        .unwrap()
    }

    fn echo(answer: &str) -> Option<(EchoOf, String, f64)> {
        let c = scorer().check(&item(), answer)?;
        assert!(!c.pass);
        let Evidence::Echo {
            echo_of,
            copied,
            context_copied,
        } = c.evidence
        else {
            panic!("{c:?}")
        };
        Some((echo_of, copied, context_copied))
    }

    #[test]
    fn an_answer_is_no_echo() {
        for answer in [
            "Refunds are issued to your original payment method within 5 business days after we receive your return.",
            "Within 5 business days of receiving your return, to your original payment method.",
            "When will my refund show up after you receive my return? Within 5 business days.",
            "",
        ] {
            assert_eq!(echo(answer), None, "{answer}");
        }
    }

    #[test]
    fn the_prompt_repeated_back_is_an_echo() {
        // What Gemma-3-270M (a base model) answered in the shipped local example.
        let gemma =
            format!("Answer the question using only the context below.\n\nContext:\n{CONTEXT}");
        let (of, copied, share) = echo(&gemma).unwrap();
        assert_eq!(of, EchoOf::Prompt);
        assert_eq!(copied, "Answer the question using only the context below");
        assert!(share > 0.99, "{share}");
        let (of, _, _) =
            echo("I am Lumen Outfitters' support assistant and answer in one sentence: 5 days.")
                .unwrap();
        assert_eq!(
            of,
            EchoOf::Prompt,
            "the system message counts as the prompt"
        );
    }

    #[test]
    fn the_whole_context_copied_is_an_echo_a_quoted_sentence_is_not() {
        let (of, _, share) = echo(CONTEXT).unwrap();
        assert_eq!((of, share), (EchoOf::Context, 1.0));
        // Three of the four sentences: 80% of the words is the line.
        let three: Vec<&str> = crate::text::sentences(CONTEXT)
            .into_iter()
            .take(3)
            .collect();
        assert!(echo(&three.join(" ")).is_some());
        let two: Vec<&str> = crate::text::sentences(CONTEXT)
            .into_iter()
            .take(2)
            .collect();
        assert_eq!(echo(&two.join(" ")), None);
    }

    #[test]
    fn a_short_context_repeated_is_an_answer() {
        let mut i = item();
        i.context =
            vec!["Refunds take 5 business days from the day we receive your return.".into()];
        let s = scorer();
        assert!(s.check(&i, &i.context[0].clone()).is_none());
    }
}
