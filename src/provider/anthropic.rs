//! `kind = "anthropic"`: Anthropic's Messages API.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::http::{ChatMessage, retry_after, status_error};
use super::{CallError, Completion, ErrorKind, Provider, Request, Usage};
use crate::config::ProviderConfig;
use crate::error::{Error, Location, Problem};

pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com/v1";

/// The API version this adapter speaks; Anthropic requires the header on every request.
const API_VERSION: &str = "2023-06-01";

/// The API requires `max_tokens`; this is used when the provider file sets none.
const DEFAULT_MAX_TOKENS: u32 = 1024;

const MAX_BODY_BYTES: usize = 16 << 20;

/// Anthropic's own "overloaded" status: a 5xx, retried like one.
const OVERLOADED: u16 = 529;

pub struct Anthropic {
    http: reqwest::Client,
    url: String,
    model: String,
    temperature: Option<f64>,
    max_tokens: u32,
}

#[derive(Serialize)]
struct MessagesRequest<'a> {
    model: &'a str,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<&'a str>,
    messages: [ChatMessage<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
}

#[derive(Deserialize)]
struct MessagesResponse {
    #[serde(default)]
    content: Vec<ContentBlock>,
    #[serde(default)]
    usage: Option<ApiUsage>,
    /// `end_turn`, `max_tokens`, …: Anthropic's word that the message is complete.
    #[serde(default)]
    stop_reason: Option<String>,
}

#[derive(Deserialize)]
struct ContentBlock {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Deserialize)]
struct ApiUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
}

/// `{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}`
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    message: String,
}

/// The rules of `kind = "anthropic"`: its default endpoint needs a key, the API has no seed, and
/// it requires a positive `max_tokens`.
pub(super) fn check(path: &Path, cfg: &ProviderConfig) -> Vec<Problem> {
    let at = |field: &str| Location::file(path).field(field);
    let mut problems = Vec::new();
    if cfg.api_key_env.is_none() && cfg.base_url.is_none() {
        problems.push(
            Problem::new(
                at("api_key_env"),
                "the default base_url (api.anthropic.com) needs a key, and no api_key_env is set",
            )
            .fix("add api_key_env = \"ANTHROPIC_API_KEY\" (and export it), or set base_url to a proxy that adds it"),
        );
    }
    if cfg.seed.is_some() {
        problems.push(
            Problem::new(at("seed"), "Anthropic's Messages API has no seed")
                .fix("remove seed; use temperature = 0.0 for the most repeatable answers"),
        );
    }
    if cfg.max_tokens == Some(0) {
        problems.push(
            Problem::new(at("max_tokens"), "must be at least 1")
                .fix("remove it (default 1024) or set a positive number"),
        );
    }
    problems
}

/// The adapter of a `kind = "anthropic"` file.
pub(super) fn build(
    path: &Path,
    cfg: &ProviderConfig,
    key: Option<SecretString>,
    timeout: Duration,
) -> Result<Arc<dyn Provider>, Error> {
    let adapter =
        Anthropic::new(cfg, key, timeout).map_err(|e| super::http::client_error(path, e))?;
    Ok(Arc::new(adapter))
}

impl Anthropic {
    pub fn new(
        cfg: &ProviderConfig,
        key: Option<SecretString>,
        timeout: Duration,
    ) -> reqwest::Result<Anthropic> {
        let mut headers = HeaderMap::new();
        headers.insert("anthropic-version", HeaderValue::from_static(API_VERSION));
        if let Some(key) = &key {
            let mut value = HeaderValue::from_str(key.expose_secret())
                .unwrap_or_else(|_| HeaderValue::from_static("invalid-key-characters"));
            value.set_sensitive(true);
            headers.insert("x-api-key", value);
        }
        let http = crate::provider::http::client_builder(timeout, cfg.limits.concurrency)
            .default_headers(headers)
            .build()?;
        let base = cfg.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL);
        Ok(Anthropic {
            http,
            url: format!("{}/messages", base.trim_end_matches('/')),
            model: cfg.model.clone(),
            temperature: cfg.temperature,
            max_tokens: cfg.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        })
    }

    async fn attempt(&self, request: &Request) -> Result<Completion, CallError> {
        let body = MessagesRequest {
            model: &self.model,
            max_tokens: self.max_tokens,
            system: request.system.as_deref(),
            // The system prompt is a field of its own here, not a message.
            messages: [ChatMessage {
                role: "user",
                content: &request.prompt,
            }],
            temperature: self.temperature,
        };
        let response = self
            .http
            .post(&self.url)
            .json(&body)
            .send()
            .await
            .map_err(crate::provider::http::classify)?;
        let status = response.status();
        let wait = retry_after(response.headers())
            .or_else(|| ratelimit_reset(response.headers(), SystemTime::now()));
        let bytes = crate::provider::http::read_body(response, MAX_BODY_BYTES).await?;
        if !status.is_success() {
            let detail = match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(b) => format!("{}: {}", b.error.kind, b.error.message),
                Err(_) => crate::provider::http::snippet(&bytes),
            };
            let mut err = status_error(status, wait, detail);
            if status.as_u16() == OVERLOADED {
                err.message
                    .push_str(" (Anthropic is overloaded; retried like a 5xx)");
            } else if status == StatusCode::UNAUTHORIZED {
                err.message
                    .push_str(" (check the key in the variable named by api_key_env)");
            }
            return Err(err);
        }
        let parsed: MessagesResponse = serde_json::from_slice(&bytes).map_err(|e| {
            CallError::new(
                ErrorKind::BadResponse,
                format!(
                    "the response is not a message: {e}; body: {}",
                    crate::provider::http::snippet(&bytes)
                ),
            )
        })?;
        // A message without a stop_reason was stopped part-way (a proxy that cut it, a
        // server that gave up). With one, even empty content is the model's real answer.
        if parsed.stop_reason.is_none() {
            return Err(CallError::incomplete(format!(
                "the message has no stop_reason, so it is not complete; body: {}",
                crate::provider::http::snippet(&bytes)
            )));
        }
        // Only text blocks are the answer (tool use and thinking blocks are not).
        let text: String = parsed
            .content
            .into_iter()
            .filter(|b| b.kind == "text")
            .filter_map(|b| b.text)
            .collect();
        Ok(Completion::text(
            text,
            // Prompt caching is never requested, so `input_tokens` is the whole input.
            parsed.usage.map(|u| Usage {
                input: u.input_tokens,
                output: u.output_tokens,
            }),
        ))
    }
}

impl Provider for Anthropic {
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

/// When a 429 has no `Retry-After`: the latest reset (RFC 3339) among the exhausted
/// `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}` limits.
fn ratelimit_reset(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let header = |name: String| headers.get(name).and_then(|v| v.to_str().ok());
    ["requests", "tokens", "input-tokens", "output-tokens"]
        .into_iter()
        .filter(|limit| {
            header(format!("anthropic-ratelimit-{limit}-remaining"))
                .is_some_and(|r| r.trim() == "0")
        })
        .filter_map(|limit| header(format!("anthropic-ratelimit-{limit}-reset")))
        .filter_map(|reset| {
            time::OffsetDateTime::parse(
                reset.trim(),
                &time::format_description::well_known::Rfc3339,
            )
            .ok()
        })
        .map(|reset| {
            let now = time::OffsetDateTime::from(now);
            Duration::try_from(reset - now)
                .unwrap_or_default()
                .min(super::http::MAX_SERVER_WAIT)
        })
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_headers_of_exhausted_limits_say_how_long_to_wait() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let at = |secs: i64| {
            (time::OffsetDateTime::from(now) + time::Duration::seconds(secs))
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap()
        };
        let mut h = HeaderMap::new();
        h.insert(
            "anthropic-ratelimit-requests-remaining",
            HeaderValue::from_static("0"),
        );
        h.insert(
            "anthropic-ratelimit-requests-reset",
            HeaderValue::from_str(&at(3)).unwrap(),
        );
        // Not exhausted: its reset is not a reason to wait.
        h.insert(
            "anthropic-ratelimit-tokens-remaining",
            HeaderValue::from_static("5000"),
        );
        h.insert(
            "anthropic-ratelimit-tokens-reset",
            HeaderValue::from_str(&at(50)).unwrap(),
        );
        assert_eq!(ratelimit_reset(&h, now), Some(Duration::from_secs(3)));
        h.insert(
            "anthropic-ratelimit-requests-reset",
            HeaderValue::from_str(&at(-3)).unwrap(),
        );
        assert_eq!(ratelimit_reset(&h, now), Some(Duration::ZERO), "past: now");
        assert_eq!(ratelimit_reset(&HeaderMap::new(), now), None);
    }
}
