//! The shared HTTP plumbing of the provider adapters: one client per provider, error
//! classification, bounded body reading, what a status and its headers mean, the chat
//! messages of a request, and the pieces of a logged conversation ([`Chat`](crate::provider::Chat)) that the adapters
//! translating it to their own API share.

use std::path::Path;
use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{Error, Location};
use crate::provider::{CallError, ErrorKind, Request};

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

/// The text of a logged message's content: a string as it is, a list of parts as its text parts
/// joined by newlines (images and other parts have no text).
pub fn content_text(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|part| part["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// The URLs of a logged message's image parts (`{"type": "image_url", "image_url": {"url": …}}`,
/// or the older bare string), in order.
pub fn image_urls(content: &Value) -> Vec<&str> {
    let Value::Array(parts) = content else {
        return Vec::new();
    };
    parts.iter().filter_map(image_url).collect()
}

/// The URL of an image part; `None` for any other part.
pub fn image_url(part: &Value) -> Option<&str> {
    if part["type"] != "image_url" {
        return None;
    }
    let image = &part["image_url"];
    image["url"].as_str().or_else(|| image.as_str())
}

/// A `data:` URL's media type and base64 payload: the form other APIs take an inline image in.
pub fn data_url(url: &str) -> Option<(&str, &str)> {
    let (header, data) = url.strip_prefix("data:")?.split_once(',')?;
    let media_type = header.strip_suffix(";base64")?;
    Some((media_type, data))
}

/// One tool call of a logged assistant message, its arguments as the JSON object that APIs other
/// than OpenAI's take.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedToolCall<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub arguments: Value,
}

/// The tool calls of a logged message. OpenAI writes the arguments as JSON text, and a model may
/// well have written broken JSON: those calls get `{}`, since the other APIs refuse anything but
/// an object.
pub fn logged_tool_calls(message: &Value) -> Vec<LoggedToolCall<'_>> {
    let Some(calls) = message["tool_calls"].as_array() else {
        return Vec::new();
    };
    calls
        .iter()
        .map(|call| {
            let function = &call["function"];
            let arguments = match &function["arguments"] {
                Value::String(text) => serde_json::from_str(text).ok(),
                other => Some(other.clone()),
            };
            LoggedToolCall {
                id: call["id"].as_str().unwrap_or_default(),
                name: function["name"].as_str().unwrap_or_default(),
                arguments: arguments
                    .filter(Value::is_object)
                    .unwrap_or_else(|| Value::Object(Map::new())),
            }
        })
        .collect()
}

/// The output token limit a logged request set, under either of OpenAI's names for it.
pub fn logged_max_tokens(params: &Map<String, Value>) -> Option<u64> {
    params
        .get("max_completion_tokens")
        .or_else(|| params.get("max_tokens"))
        .and_then(Value::as_u64)
}

/// A logged request's stop sequences as a list: OpenAI takes one string or a list of them.
pub fn logged_stop(params: &Map<String, Value>) -> Option<Vec<Value>> {
    match params.get("stop")? {
        Value::String(stop) => Some(vec![Value::String(stop.clone())]),
        Value::Array(stops) => Some(stops.iter().filter(|s| s.is_string()).cloned().collect()),
        _ => None,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_content_tool_calls_and_params_read_in_either_form() {
        use serde_json::json;
        assert_eq!(content_text(&json!("hi")), "hi");
        let parts = json!([
            {"type": "text", "text": "look:"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
            {"type": "text", "text": "what is it?"},
        ]);
        assert_eq!(content_text(&parts), "look:\nwhat is it?");
        assert_eq!(content_text(&Value::Null), "");
        assert_eq!(image_urls(&parts), ["data:image/png;base64,iVBO"]);
        assert_eq!(
            data_url("data:image/png;base64,iVBO"),
            Some(("image/png", "iVBO"))
        );
        assert_eq!(data_url("https://example.com/a.png"), None);

        let message = json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}},
            {"id": "c2", "type": "function", "function": {"name": "g", "arguments": "{broken"}},
        ]});
        let calls = logged_tool_calls(&message);
        assert_eq!(
            (calls[0].id, calls[0].name, &calls[0].arguments),
            ("c1", "f", &json!({"a": 1}))
        );
        assert_eq!(calls[1].arguments, json!({}));
        assert!(logged_tool_calls(&json!({"role": "user", "content": "x"})).is_empty());

        let params = |v: Value| v.as_object().unwrap().clone();
        assert_eq!(
            logged_max_tokens(&params(json!({"max_tokens": 9}))),
            Some(9)
        );
        assert_eq!(
            logged_max_tokens(&params(json!({"max_completion_tokens": 5}))),
            Some(5)
        );
        assert_eq!(
            logged_stop(&params(json!({"stop": "END"}))),
            Some(vec![json!("END")])
        );
        assert_eq!(
            logged_stop(&params(json!({"stop": ["a", "b"]}))),
            Some(vec![json!("a"), json!("b")])
        );
        assert_eq!(logged_stop(&params(json!({"stop": null}))), None);
    }

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
}

/// Properties of the server-given waits: whatever a header says, the wait is at most
/// [`MAX_SERVER_WAIT`] and reading it never panics; the documented forms read as documented.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// Header values shaped like what servers send, and like what they send by mistake: numbers
    /// with signs, fractions and exponents, Go durations, HTTP dates, and any bytes a header may
    /// carry.
    fn hostile_value() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            "[ +-]?[0-9]{0,25}(\\.[0-9]{0,12})?([eE][+-]?[0-9]{1,4})? ?".prop_map(String::into_bytes),
            "(NaN|nan|inf|-inf|infinity|\\+Infinity|0x10|1_000|1,5|١٢)".prop_map(String::into_bytes),
            "([0-9]{0,22}(\\.[0-9]{0,6})?(h|m|s|ms|us|µs|ns|d|)){1,5}".prop_map(String::into_bytes),
            "(Mon|Sun|Xyz), [0-9]{1,3} (Jan|Feb|Dec|Foo) [0-9]{1,6} [0-9]{1,2}:[0-9]{2}:[0-9]{2} (GMT|UTC)?"
                .prop_map(String::into_bytes),
            proptest::collection::vec(any::<u8>(), 0..48),
        ]
    }

    const WAIT_HEADERS: [&str; 4] = [
        "retry-after",
        "retry-after-ms",
        "x-ratelimit-reset-requests",
        "x-ratelimit-reset-tokens",
    ];

    fn headers(values: &[(usize, Vec<u8>)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in values {
            // A value a header cannot carry (a newline, NUL) never reaches goldgate either.
            if let Ok(value) = HeaderValue::from_bytes(value) {
                map.append(WAIT_HEADERS[name % WAIT_HEADERS.len()], value);
            }
        }
        map
    }

    /// A Go duration as OpenAI writes one, from its parts.
    fn go_text(h: u64, m: u64, s: u64, ms: u64) -> String {
        let mut text = String::new();
        for (n, unit) in [(h, "h"), (m, "m"), (s, "s"), (ms, "ms")] {
            if n > 0 {
                text.push_str(&format!("{n}{unit}"));
            }
        }
        if text.is_empty() {
            "0s".to_owned()
        } else {
            text
        }
    }

    proptest! {
        #[test]
        fn any_number_is_no_wait_or_a_wait_within_the_maximum(secs in proptest::num::f64::ANY) {
            match server_wait(secs) {
                None => prop_assert!(!secs.is_finite() || secs < 0.0, "{secs} ignored"),
                Some(wait) => {
                    prop_assert!(wait <= MAX_SERVER_WAIT);
                    let expected = secs.min(MAX_SERVER_WAIT.as_secs_f64());
                    prop_assert!((wait.as_secs_f64() - expected).abs() <= 1e-6, "{secs} -> {wait:?}");
                }
            }
        }

        #[test]
        fn any_wait_headers_give_at_most_the_maximum(
            values in proptest::collection::vec((0usize..4, hostile_value()), 0..5)
        ) {
            let wait = retry_after(&headers(&values));
            prop_assert!(wait.is_none_or(|w| w <= MAX_SERVER_WAIT), "{wait:?}");
        }

        #[test]
        fn retry_after_seconds_read_as_seconds(secs in 0u64..=200_000, spaces in "[ \t]{0,2}") {
            let h = headers(&[(0, format!("{spaces}{secs}{spaces}").into_bytes())]);
            prop_assert_eq!(retry_after(&h), Some(Duration::from_secs(secs).min(MAX_SERVER_WAIT)));
        }

        #[test]
        fn retry_after_ms_reads_as_milliseconds_and_wins(ms in 0u64..=200_000_000, secs in 0u64..100) {
            let h = headers(&[(0, secs.to_string().into_bytes()), (1, ms.to_string().into_bytes())]);
            prop_assert_eq!(retry_after(&h), Some(Duration::from_millis(ms).min(MAX_SERVER_WAIT)));
        }

        #[test]
        fn a_negative_wait_is_no_wait(n in 1u64..u64::MAX, header in 0usize..2) {
            let h = headers(&[(header, format!("-{n}").into_bytes())]);
            prop_assert_eq!(retry_after(&h), None);
        }

        #[test]
        fn go_durations_add_their_parts(h in 0u64..30, m in 0u64..60, s in 0u64..60, ms in 0u64..1000) {
            let expected = Duration::from_secs(h * 3600 + m * 60 + s) + Duration::from_millis(ms);
            let text = go_text(h, m, s, ms);
            let read = go_duration(&text).expect("a Go duration");
            prop_assert!(read.abs_diff(expected.min(MAX_SERVER_WAIT)) <= Duration::from_micros(1), "{text}: {read:?}");
        }

        #[test]
        fn the_later_of_two_reset_headers_is_the_wait(a in 0u64..100_000, b in 0u64..100_000) {
            let h = headers(&[(2, format!("{a}ms").into_bytes()), (3, format!("{b}ms").into_bytes())]);
            prop_assert_eq!(retry_after(&h), Some(Duration::from_millis(a.max(b))));
        }

        #[test]
        fn an_http_date_is_the_time_until_it_clamped(offset in -10_000_000i64..10_000_000_000) {
            let when = time::OffsetDateTime::now_utc() + time::Duration::seconds(offset);
            let fmt = time::macros::format_description!(
                "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
            );
            let h = headers(&[(0, when.format(fmt).unwrap().into_bytes())]);
            let wait = retry_after(&h).expect("a date is a wait");
            let expected = Duration::from_secs(offset.max(0) as u64).min(MAX_SERVER_WAIT);
            // The date has whole seconds and the clock moves on while the test runs.
            prop_assert!(wait.abs_diff(expected) <= Duration::from_secs(2), "{offset}: {wait:?}");
        }
    }
}
