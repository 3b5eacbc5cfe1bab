//! `kind = "openai"`: any server that speaks OpenAI's chat completions API (OpenAI, vLLM,
//! llama.cpp's server, LM Studio, Ollama's `/v1`, …).

use std::time::{Duration, SystemTime};

use futures::FutureExt;
use futures::future::BoxFuture;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::{CallError, Completion, ErrorKind, Provider, Request, Usage};
use crate::config::ProviderConfig;

pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

/// A response larger than this is not an answer: refuse it rather than hold it in memory.
const MAX_BODY_BYTES: usize = 16 << 20;

pub struct OpenAi {
    http: reqwest::Client,
    url: String,
    model: String,
    temperature: Option<f64>,
    max_tokens: Option<u32>,
    seed: Option<u64>,
    /// Kept only to scrub the key from error bodies that echo it back.
    key: Option<SecretString>,
}

#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: Vec<Message<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: &'a str,
}

#[derive(Deserialize)]
struct ChatResponse {
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<ApiUsage>,
}

#[derive(Deserialize)]
struct Choice {
    message: ChoiceMessage,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
struct ApiUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

impl OpenAi {
    pub fn new(
        cfg: &ProviderConfig,
        key: Option<SecretString>,
        timeout: Duration,
    ) -> reqwest::Result<OpenAi> {
        let mut headers = HeaderMap::new();
        if let Some(key) = &key {
            // Marked sensitive so that no debug output of the request ever shows it.
            let mut value = HeaderValue::from_str(&format!("Bearer {}", key.expose_secret()))
                .unwrap_or_else(|_| HeaderValue::from_static("Bearer invalid-key-characters"));
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        let http = crate::http::client_builder(timeout, cfg.limits.concurrency)
            .default_headers(headers)
            .build()?;
        let base = cfg.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL);
        Ok(OpenAi {
            http,
            url: format!("{}/chat/completions", base.trim_end_matches('/')),
            model: cfg.model.clone(),
            temperature: cfg.temperature,
            max_tokens: cfg.max_tokens,
            seed: cfg.seed,
            key,
        })
    }

    async fn attempt(&self, request: &Request) -> Result<Completion, CallError> {
        let mut messages = Vec::with_capacity(2);
        if let Some(system) = &request.system {
            messages.push(Message {
                role: "system",
                content: system,
            });
        }
        messages.push(Message {
            role: "user",
            content: &request.prompt,
        });
        let body = ChatRequest {
            model: &self.model,
            messages,
            temperature: self.temperature,
            max_tokens: self.max_tokens,
            seed: self.seed,
        };
        let response = self
            .http
            .post(&self.url)
            .json(&body)
            .send()
            .await
            .map_err(crate::http::classify)?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let bytes = crate::http::read_body(response, MAX_BODY_BYTES).await?;
        if !status.is_success() {
            let mut err = CallError::new(
                if status == StatusCode::TOO_MANY_REQUESTS {
                    ErrorKind::RateLimited
                } else {
                    ErrorKind::HttpStatus
                },
                format!("HTTP {}: {}", status.as_u16(), crate::http::snippet(&bytes)),
            );
            err.status = Some(status.as_u16());
            err.retry_after = retry_after;
            return Err(err);
        }
        let parsed: ChatResponse = serde_json::from_slice(&bytes).map_err(|e| {
            CallError::new(
                ErrorKind::BadResponse,
                format!(
                    "the response is not a chat completion: {e}; body: {}",
                    crate::http::snippet(&bytes)
                ),
            )
        })?;
        let Some(choice) = parsed.choices.into_iter().next() else {
            return Err(CallError::new(
                ErrorKind::BadResponse,
                "the response has no choices",
            ));
        };
        Ok(Completion::text(
            choice.message.content.unwrap_or_default(),
            parsed.usage.map(|u| Usage {
                input: u.prompt_tokens,
                output: u.completion_tokens,
            }),
        ))
    }
}

impl Provider for OpenAi {
    fn complete<'a>(
        &'a self,
        request: &'a Request,
    ) -> BoxFuture<'a, Result<Completion, CallError>> {
        self.attempt(request)
            .map(|r| {
                r.map_err(|mut e| {
                    if let Some(key) = &self.key {
                        e.message = crate::http::redact(&e.message, key.expose_secret());
                    }
                    e
                })
            })
            .boxed()
    }
}

/// `Retry-After` (seconds or an HTTP date) or OpenAI's `retry-after-ms`.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    if let Some(ms) = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|ms| ms.is_finite() && *ms >= 0.0)
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let when = httpdate_parse(value)?;
    Some(when.duration_since(SystemTime::now()).unwrap_or_default())
}

/// Parse an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form HTTP servers send.
fn httpdate_parse(s: &str) -> Option<SystemTime> {
    let fmt = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let dt = time::PrimitiveDateTime::parse(s, fmt).ok()?;
    let unix = dt.assume_utc().unix_timestamp();
    u64::try_from(unix)
        .ok()
        .map(|secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", HeaderValue::from_static("150"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(150)));
        let mut h = HeaderMap::new();
        h.insert(
            "retry-after",
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
        assert_eq!(
            retry_after(&h),
            Some(Duration::ZERO),
            "a past date means now"
        );
    }
}
