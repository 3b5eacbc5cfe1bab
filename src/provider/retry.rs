//! Which failures are retried, and how long to wait: one place for the rules.

use std::time::Duration;

use crate::provider::{CallError, ErrorKind};

/// Exponential backoff with full jitter, capped; a server's `Retry-After` wins when it asks for longer.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub retries: u32,
    pub base: Duration,
    pub cap: Duration,
    /// A `Retry-After` longer than this is not waited out: the request fails as rate limited.
    pub max_retry_after: Duration,
}

impl RetryPolicy {
    pub fn new(retries: u32) -> Self {
        RetryPolicy {
            retries,
            base: Duration::from_millis(250),
            cap: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(300),
        }
    }

    /// Whether an error is worth another attempt: 408, 429, 5xx, timeouts, connection errors and
    /// answers the server never finished are; client errors (400/401/403/404…) and answers that
    /// are complete but unreadable are not.
    pub fn is_retryable(err: &CallError) -> bool {
        match err.kind {
            ErrorKind::Timeout | ErrorKind::RateLimited | ErrorKind::Connect => true,
            ErrorKind::HttpStatus => matches!(err.status, Some(408 | 425 | 500..=599)),
            ErrorKind::BadResponse => err.transient,
        }
    }

    /// The wait before attempt `attempt + 1`, or `None` to give up.
    pub fn next_delay(&self, attempt: u32, err: &CallError) -> Option<Duration> {
        if attempt > self.retries || !Self::is_retryable(err) {
            return None;
        }
        let exp = self
            .base
            .saturating_mul(1u32 << (attempt - 1).min(16))
            .min(self.cap);
        // Full jitter: clients that failed together do not retry together.
        let jittered = exp.mul_f64(fastrand::f64());
        match err.retry_after {
            Some(after) if after > self.max_retry_after => None,
            Some(after) => Some(after.max(jittered)),
            None => Some(jittered),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(kind: ErrorKind, status: Option<u16>) -> CallError {
        CallError {
            kind,
            status,
            message: String::new(),
            retry_after: None,
            transient: false,
        }
    }

    #[test]
    fn retries_transient_failures_only() {
        let p = RetryPolicy::new(4);
        for (kind, status) in [
            (ErrorKind::Timeout, None),
            (ErrorKind::RateLimited, Some(429)),
            (ErrorKind::Connect, None),
            (ErrorKind::HttpStatus, Some(500)),
            (ErrorKind::HttpStatus, Some(503)),
            (ErrorKind::HttpStatus, Some(408)),
        ] {
            assert!(
                p.next_delay(1, &err(kind, status)).is_some(),
                "{kind:?} {status:?}"
            );
        }
        for status in [400, 401, 403, 404, 422] {
            assert!(
                p.next_delay(1, &err(ErrorKind::HttpStatus, Some(status)))
                    .is_none()
            );
        }
        assert!(
            p.next_delay(1, &err(ErrorKind::BadResponse, None))
                .is_none()
        );
        assert!(
            p.next_delay(1, &CallError::incomplete("the stream ended early"))
                .is_some(),
            "an answer the server never finished is worth another attempt"
        );
    }

    #[test]
    fn gives_up_after_the_configured_retries_and_honours_retry_after() {
        let p = RetryPolicy::new(2);
        let e = err(ErrorKind::Timeout, None);
        assert!(p.next_delay(2, &e).is_some());
        assert!(p.next_delay(3, &e).is_none());
        let mut limited = err(ErrorKind::RateLimited, Some(429));
        limited.retry_after = Some(Duration::from_secs(2));
        assert!(p.next_delay(1, &limited).unwrap() >= Duration::from_secs(2));
        limited.retry_after = Some(Duration::from_secs(3600));
        assert!(p.next_delay(1, &limited).is_none());
    }

    #[test]
    fn backoff_is_capped() {
        let p = RetryPolicy::new(40);
        let d = p.next_delay(30, &err(ErrorKind::Timeout, None)).unwrap();
        assert!(d <= p.cap);
    }
}
