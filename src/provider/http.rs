//! The shared HTTP plumbing of the provider adapters: one client per provider, error
//! classification, bounded body reading, what a status and its headers mean, the chat messages
//! of a request, and the secrets scrubbed from every error.

use std::path::Path;
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use crate::error::{Error, Location};
use crate::provider::{CallError, Completion, ErrorKind, Request};

/// A client builder with the settings every adapter wants. Built once per provider: the
/// connection pool is what makes thousands of requests cheap.
pub fn client_builder(timeout: Duration, concurrency: usize) -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .pool_max_idle_per_host(concurrency)
        .user_agent(concat!("goldgate/", env!("CARGO_PKG_VERSION")))
}

/// A client that cannot be built is a problem of the provider file, whose `base_url` is the likely
/// culprit.
pub fn client_error(path: &Path, e: reqwest::Error) -> Error {
    Error::input(
        Location::file(path),
        format!("cannot build the HTTP client: {e}"),
        "check base_url",
    )
}

fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Another component may have installed one already; either way TLS is ready.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Map a transport error to the spec's error kinds. The message never includes the URL's query
/// (where some APIs put keys) or any header.
pub fn classify(err: reqwest::Error) -> CallError {
    let kind = if err.is_timeout() {
        ErrorKind::Timeout
    } else if err.is_decode() {
        ErrorKind::BadResponse
    } else {
        // Connection refused, reset, closed mid-body: all transient transport failures.
        ErrorKind::Connect
    };
    let status = err.status().map(|s| s.as_u16());
    let err = err.without_url();
    let mut message = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    let mut e = CallError::new(kind, message);
    e.status = status;
    e
}

/// A failure while reading a body whose headers had arrived: the answer was cut off (a reset, a
/// close before the end, a broken chunk), which another attempt may well fix. A timeout stays a
/// timeout.
pub fn body_error(err: reqwest::Error) -> CallError {
    let err = classify(err);
    if err.kind == ErrorKind::Timeout {
        return err;
    }
    CallError::incomplete(format!("the body was cut off: {}", err.message))
}

/// Read a response body, refusing anything over `limit` bytes.
pub async fn read_body(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, CallError> {
    let mut body = Vec::with_capacity(
        response
            .content_length()
            .map_or(4096, |n| n.min(limit as u64) as usize),
    );
    while let Some(chunk) = response.chunk().await.map_err(body_error)? {
        if body.len() + chunk.len() > limit {
            return Err(CallError::new(
                ErrorKind::BadResponse,
                format!("the response body exceeds {} MiB", limit >> 20),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The start of a body, for an error message: lossy UTF-8, one line, bounded.
pub fn snippet(bytes: &[u8]) -> String {
    const MAX: usize = 200;
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX * 4)]);
    crate::text::ellipsize(&text, MAX)
}

/// The `Authorization: Bearer …` header of a key, if there is one. Marked sensitive so that no
/// debug output of a request ever shows it.
pub fn bearer_auth(key: Option<&SecretString>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(key) = key {
        let mut value = HeaderValue::from_str(&format!("Bearer {}", key.expose_secret()))
            .unwrap_or_else(|_| HeaderValue::from_static("Bearer invalid-key-characters"));
        value.set_sensitive(true);
        headers.insert(AUTHORIZATION, value);
    }
    headers
}

/// One message of a chat API; OpenAI's, Ollama's and Anthropic's have this shape.
#[derive(Serialize)]
pub struct ChatMessage<'a> {
    pub role: &'static str,
    pub content: &'a str,
}

/// A request as chat messages: its system prompt, if it has one, then its prompt from the user.
pub fn chat_messages(request: &Request) -> Vec<ChatMessage<'_>> {
    let mut messages = Vec::with_capacity(2);
    if let Some(system) = &request.system {
        messages.push(ChatMessage {
            role: "system",
            content: system,
        });
    }
    messages.push(ChatMessage {
        role: "user",
        content: &request.prompt,
    });
    messages
}

/// The error of a non-success status: 429 is `rate_limited`, everything else `http_status`
/// (whose retrying the retry policy decides by the code). `detail` is what the body said.
pub fn status_error(
    status: StatusCode,
    retry_after: Option<Duration>,
    detail: String,
) -> CallError {
    let mut err = CallError::new(
        if status == StatusCode::TOO_MANY_REQUESTS {
            ErrorKind::RateLimited
        } else {
            ErrorKind::HttpStatus
        },
        format!("HTTP {}: {detail}", status.as_u16()),
    );
    err.status = Some(status.as_u16());
    err.retry_after = retry_after;
    err
}

/// `Retry-After` (seconds or an HTTP date) or OpenAI's `retry-after-ms`.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    if let Some(ms) = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .and_then(|ms| server_wait(ms / 1000.0))
    {
        return Some(ms);
    }
    if let Some(value) = headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
    {
        if let Ok(secs) = value.parse::<f64>() {
            return server_wait(secs);
        }
        if let Some(when) = httpdate_parse(value) {
            let wait = when.duration_since(SystemTime::now()).unwrap_or_default();
            return Some(wait.min(MAX_SERVER_WAIT));
        }
    }
    // OpenAI's own: when the request or token budget refills, as Go durations ("6m0s", "20ms").
    ["x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"]
        .iter()
        .filter_map(|h| headers.get(*h)?.to_str().ok().and_then(go_duration))
        .max()
}

/// The longest wait a server can ask for that is taken as written: a longer one — a year, `1e300`
/// seconds, a date in 9999 — reads as this, which is past what the retry policy waits out
/// (`RetryPolicy::max_retry_after`), so the request fails as rate limited instead of hanging.
pub const MAX_SERVER_WAIT: Duration = Duration::from_secs(24 * 3600);

/// A wait in seconds as a server gave it: `None` when it is no wait at all (negative, NaN,
/// infinite: the header is ignored), at most [`MAX_SERVER_WAIT`], never a panic.
pub fn server_wait(secs: f64) -> Option<Duration> {
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    Some(
        Duration::try_from_secs_f64(secs)
            .unwrap_or(MAX_SERVER_WAIT)
            .min(MAX_SERVER_WAIT),
    )
}

/// A Go-style duration: `1s`, `20ms`, `6m0s`, `1h2m3.5s`.
fn go_duration(s: &str) -> Option<Duration> {
    let mut total = 0.0;
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|&i| i > 0)?;
        let value: f64 = rest[..end].parse().ok()?;
        rest = &rest[end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            "us" | "µs" => 0.000_001,
            "ns" => 0.000_000_001,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[unit_end..];
    }
    server_wait(total)
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

/// What must never reach an error message: a provider's key (some APIs echo it in errors) and
/// the values substituted from the environment into its headers or its program's environment.
#[derive(Default)]
pub struct Secrets(Vec<SecretString>);

impl Secrets {
    /// `text` with every secret replaced by `[redacted]`. A secret shorter than 4 characters is
    /// left alone: it would match all over the message.
    pub fn scrub_str(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in &self.0 {
            let secret = secret.expose_secret();
            if secret.len() >= 4 && text.contains(secret) {
                text = text.replace(secret, "[redacted]");
            }
        }
        text
    }

    /// The error's message, scrubbed.
    pub fn scrub(&self, err: &mut CallError) {
        err.message = self.scrub_str(&err.message);
    }

    /// One attempt with the secrets scrubbed from whatever error it ends in: the adapters that
    /// hold a secret all answer through this, so none can forget it.
    pub fn scrubbed<'a>(
        &'a self,
        attempt: impl Future<Output = Result<Completion, CallError>> + Send + 'a,
    ) -> BoxFuture<'a, Result<Completion, CallError>> {
        Box::pin(async move {
            attempt.await.map_err(|mut e| {
                self.scrub(&mut e);
                e
            })
        })
    }
}

impl FromIterator<SecretString> for Secrets {
    fn from_iter<I: IntoIterator<Item = SecretString>>(secrets: I) -> Secrets {
        Secrets(secrets.into_iter().collect())
    }
}

/// Values substituted from the environment.
impl Extend<String> for Secrets {
    fn extend<I: IntoIterator<Item = String>>(&mut self, values: I) {
        self.0.extend(values.into_iter().map(SecretString::from));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_reset_headers() {
        assert_eq!(go_duration("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(go_duration("20ms"), Some(Duration::from_millis(20)));
        assert_eq!(
            go_duration("1h2m3.5s"),
            Some(Duration::from_secs_f64(3723.5))
        );
        assert_eq!(go_duration("soon"), None);
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-reset-requests", HeaderValue::from_static("1s"));
        h.insert("x-ratelimit-reset-tokens", HeaderValue::from_static("2.5s"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(2500)));
    }

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

    #[test]
    fn absurd_server_waits_are_clamped_or_ignored_never_a_panic() {
        let wait = |name: &'static str, value: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(name, HeaderValue::from_static(value));
            retry_after(&h)
        };
        let max = Some(MAX_SERVER_WAIT);
        for (name, value, expected) in [
            ("retry-after", "1e300", max),
            ("retry-after", "99999999999999999999999", max),
            ("retry-after", "1.5", Some(Duration::from_millis(1500))),
            ("retry-after", "1e1", Some(Duration::from_secs(10))),
            ("retry-after", "-5", None),
            ("retry-after", "NaN", None),
            ("retry-after", "inf", None),
            ("retry-after", "Fri, 31 Dec 9999 23:59:59 GMT", max),
            ("retry-after-ms", "1e308", max),
            ("retry-after-ms", "-1", None),
            ("x-ratelimit-reset-requests", "99999999999999999999h", max),
            ("x-ratelimit-reset-tokens", "1e300s", None),
            (
                "x-ratelimit-reset-tokens",
                "0.5s",
                Some(Duration::from_millis(500)),
            ),
        ] {
            assert_eq!(wait(name, value), expected, "{name}: {value}");
        }
    }

    #[test]
    fn every_secret_of_four_characters_or_more_is_redacted() {
        let mut secrets: Secrets = [SecretString::from("sk-live-123")].into_iter().collect();
        secrets.extend(["abc".to_owned(), "s3cret".to_owned()]);
        let mut e = CallError::new(
            ErrorKind::HttpStatus,
            "bad key sk-live-123 for abc (s3cret, s3cret)",
        );
        secrets.scrub(&mut e);
        assert_eq!(
            e.message,
            "bad key [redacted] for abc ([redacted], [redacted])"
        );
        assert_eq!(Secrets::default().scrub_str("sk-live-123"), "sk-live-123");
    }
}
