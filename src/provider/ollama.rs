//! `kind = "ollama"`: Ollama's native chat API, which reports its own timings.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::http::{ChatMessage, chat_messages, retry_after, status_error};
use super::{CallError, Completion, ErrorKind, Provider, Request, Usage};
use crate::config::ProviderConfig;
use crate::error::{Error, Problem};

pub const DEFAULT_BASE_URL: &str = "http://127.0.0.1:11434";

const MAX_BODY_BYTES: usize = 16 << 20;

pub struct Ollama {
    http: reqwest::Client,
    url: String,
    model: String,
    options: Options,
}

#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: Vec<ChatMessage<'a>>,
    stream: bool,
    options: &'a Options,
}

#[derive(Serialize)]
struct Options {
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    /// Ollama's name for the output token limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    num_predict: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
}

#[derive(Deserialize)]
struct ChatResponse {
    message: Option<ResponseMessage>,
    #[serde(default)]
    prompt_eval_count: Option<u64>,
    #[serde(default)]
    eval_count: Option<u64>,
    /// Nanoseconds, load and prompt evaluation included.
    #[serde(default)]
    total_duration: Option<u64>,
    /// Ollama's word that the answer is complete.
    #[serde(default)]
    done: bool,
}

#[derive(Deserialize)]
struct ResponseMessage {
    #[serde(default)]
    content: String,
}

/// `kind = "ollama"` has no options of its own: what it uses, every kind's checks cover.
pub(super) fn check(_path: &Path, _cfg: &ProviderConfig) -> Vec<Problem> {
    Vec::new()
}

/// The adapter of a `kind = "ollama"` file.
pub(super) fn build(
    path: &Path,
    cfg: &ProviderConfig,
    key: Option<SecretString>,
    timeout: Duration,
) -> Result<Arc<dyn Provider>, Error> {
    let adapter = Ollama::new(cfg, key, timeout).map_err(|e| super::http::client_error(path, e))?;
    Ok(Arc::new(adapter))
}

impl Ollama {
    pub fn new(
        cfg: &ProviderConfig,
        key: Option<SecretString>,
        timeout: Duration,
    ) -> reqwest::Result<Ollama> {
        let http = crate::provider::http::client_builder(timeout, cfg.limits.concurrency)
            .default_headers(crate::provider::http::bearer_auth(key.as_ref()))
            .build()?;
        let base = cfg.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL);
        Ok(Ollama {
            http,
            url: format!("{}/api/chat", base.trim_end_matches('/')),
            model: cfg.model.clone(),
            options: Options {
                temperature: cfg.temperature,
                num_predict: cfg.max_tokens,
                seed: cfg.seed,
            },
        })
    }

    async fn attempt(&self, request: &Request) -> Result<Completion, CallError> {
        let body = ChatRequest {
            model: &self.model,
            messages: chat_messages(request),
            stream: false,
            options: &self.options,
        };
        let response = self
            .http
            .post(&self.url)
            .json(&body)
            .send()
            .await
            .map_err(crate::provider::http::classify)?;
        let status = response.status();
        let wait = retry_after(response.headers());
        let bytes = crate::provider::http::read_body(response, MAX_BODY_BYTES).await?;
        if !status.is_success() {
            // Ollama's errors are `{"error": "model \"x\" not found, try pulling it first"}`.
            let detail = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_owned))
                .unwrap_or_else(|| crate::provider::http::snippet(&bytes));
            return Err(status_error(status, wait, detail));
        }
        let parsed: ChatResponse = serde_json::from_slice(&bytes).map_err(|e| {
            CallError::new(
                ErrorKind::BadResponse,
                format!(
                    "the response is not an Ollama chat response: {e}; body: {}",
                    crate::provider::http::snippet(&bytes)
                ),
            )
        })?;
        if !parsed.done {
            return Err(CallError::incomplete(format!(
                "the response is not marked done, so the answer is not complete; body: {}",
                crate::provider::http::snippet(&bytes)
            )));
        }
        let Some(message) = parsed.message else {
            return Err(CallError::new(
                ErrorKind::BadResponse,
                format!(
                    "the response has no message; body: {}",
                    crate::provider::http::snippet(&bytes)
                ),
            ));
        };
        // A prompt served from Ollama's cache may come without prompt_eval_count: then estimate.
        let usage = match (parsed.prompt_eval_count, parsed.eval_count) {
            (Some(input), Some(output)) => Some(Usage { input, output }),
            _ => None,
        };
        let mut completion = Completion::text(message.content, usage);
        completion.server_ms = parsed.total_duration.map(|ns| ns as f64 / 1e6);
        Ok(completion)
    }
}

impl Provider for Ollama {
    fn complete<'a>(
        &'a self,
        request: &'a Request,
    ) -> BoxFuture<'a, Result<Completion, CallError>> {
        Box::pin(self.attempt(request))
    }

    fn endpoint(&self) -> Option<&str> {
        Some(&self.url)
    }
}
