//! `kind = "reference"`: deterministic extractive answerers built in, so the shipped example runs
//! with no key and no network. An answer is the `sentences` context sentences that share the most
//! content words with the question, in context order. They are stand-ins for models, not models.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use secrecy::SecretString;

use super::{CallError, Completion, Provider, Request};
use crate::config::{MAX_TIMEOUT_S, NumberRule, ProviderConfig, ReferenceOptions};
use crate::error::{Error, Location, Problem};
use crate::text;

pub const NO_ANSWER: &str = "I don't know.";

pub struct Reference {
    options: ReferenceOptions,
}

/// The checks of `kind = "reference"`'s `[reference]` table.
pub(super) fn check(path: &Path, cfg: &ProviderConfig) -> Vec<Problem> {
    let Some(r) = &cfg.reference else {
        return Vec::new();
    };
    let at = |field: &str| Location::file(path).field(field);
    [
        NumberRule::new("reference.sentences", 1.0, 1000.0)
            .fix("set sentences = 1")
            .check(at, r.sentences),
        NumberRule::new("reference.base_ms", 0.0, MAX_TIMEOUT_S * 1000.0)
            .fix("milliseconds added to every answer, e.g. base_ms = 20")
            .check(at, r.base_ms),
        NumberRule::new("reference.per_output_token_ms", 0.0, 60_000.0)
            .fix("milliseconds per output token, e.g. per_output_token_ms = 5")
            .check(at, r.per_output_token_ms),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The answerer of a `kind = "reference"` file; it calls nothing, so needs no key or timeout.
pub(super) fn build(
    _path: &Path,
    cfg: &ProviderConfig,
    _key: Option<SecretString>,
    _timeout: Duration,
) -> Result<Arc<dyn Provider>, Error> {
    Ok(Arc::new(Reference::new(
        cfg.reference.clone().unwrap_or_default(),
    )))
}

impl Reference {
    pub fn new(options: ReferenceOptions) -> Self {
        Reference { options }
    }

    pub fn answer(&self, question: &str, context: &[String]) -> String {
        let question: HashSet<String> = text::content_words(question).collect();
        let mut scored: Vec<(usize, usize, &str)> = context
            .iter()
            .flat_map(|passage| text::sentences(passage))
            .enumerate()
            .map(|(position, sentence)| {
                let words: HashSet<String> = text::content_words(sentence).collect();
                (words.intersection(&question).count(), position, sentence)
            })
            .filter(|(overlap, _, _)| *overlap > 0)
            .collect();
        if scored.is_empty() {
            return NO_ANSWER.to_owned();
        }
        // Best overlap first; on a tie the earlier sentence wins, so answers are deterministic.
        scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        scored.truncate(self.options.sentences);
        scored.sort_by_key(|s| s.1);
        scored.iter().map(|s| s.2).collect::<Vec<_>>().join(" ")
    }

    async fn attempt(&self, request: &Request) -> Result<Completion, CallError> {
        let text = self.answer(&request.question, &request.context);
        let service_ms = self.options.base_ms
            + self.options.per_output_token_ms * crate::tokens::count(&text) as f64;
        if service_ms > 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(service_ms / 1000.0)).await;
        }
        // No usage: the client estimates tokens with the tokenizer and marks them estimated.
        Ok(Completion::text(text, None))
    }
}

impl Provider for Reference {
    fn complete<'a>(
        &'a self,
        request: &'a Request,
    ) -> BoxFuture<'a, Result<Completion, CallError>> {
        self.attempt(request).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answerer(sentences: usize) -> Reference {
        Reference::new(ReferenceOptions {
            sentences,
            ..ReferenceOptions::default()
        })
    }

    #[test]
    fn picks_the_best_sentences_in_context_order() {
        let ctx = vec![
            "Shipping is free over $50. Refunds are issued within 5 days. Returns need a receipt."
                .to_owned(),
        ];
        assert_eq!(
            answerer(1).answer("How fast are refunds issued?", &ctx),
            "Refunds are issued within 5 days."
        );
        assert_eq!(
            answerer(2).answer("Are refunds issued for returns?", &ctx),
            "Refunds are issued within 5 days. Returns need a receipt."
        );
    }

    #[test]
    fn says_it_does_not_know_without_overlap() {
        assert_eq!(answerer(1).answer("Why?", &[]), NO_ANSWER);
        assert_eq!(
            answerer(1).answer(
                "Tell me about warranties",
                &["Shipping is free.".to_owned()]
            ),
            NO_ANSWER
        );
    }
}
