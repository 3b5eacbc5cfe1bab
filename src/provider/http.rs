//! The shared HTTP plumbing of the provider adapters: one client per provider, error
//! classification, bounded body reading.

use std::time::Duration;

use crate::provider::{CallError, ErrorKind};

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

/// Remove a secret from text that came back from a server (some APIs echo the key in errors).
pub fn redact(text: &str, secret: &str) -> String {
    if secret.len() < 4 || !text.contains(secret) {
        return text.to_owned();
    }
    text.replace(secret, "[redacted]")
}

/// One attempt with the key scrubbed from whatever error it ends in: the adapters that hold a
/// key all answer through this, so none can forget it.
pub fn scrub_key<'a>(
    attempt: impl std::future::Future<Output = Result<crate::provider::Completion, CallError>>
    + Send
    + 'a,
    key: Option<&'a secrecy::SecretString>,
) -> futures::future::BoxFuture<'a, Result<crate::provider::Completion, CallError>> {
    use futures::FutureExt as _;
    use secrecy::ExposeSecret as _;
    attempt
        .map(move |r| {
            r.map_err(|mut e| {
                if let Some(key) = key {
                    e.message = redact(&e.message, key.expose_secret());
                }
                e
            })
        })
        .boxed()
}
