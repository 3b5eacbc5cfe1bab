//! Per-provider request and token rate limits, and the shared slow-down after a 429.
//!
//! Admission happens before the latency clock starts: waiting for the limiter, like waiting for a
//! concurrency permit, is not latency.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

pub struct Limiter {
    requests: Option<DefaultDirectRateLimiter>,
    tokens: Option<(DefaultDirectRateLimiter, NonZeroU32)>,
    /// After a 429 every request to the provider waits until then, not only the one that got it:
    /// the provider asked us to slow down, and hammering it with the rest would not.
    paused_until: Mutex<Option<Instant>>,
}

impl Limiter {
    pub fn new(requests_per_minute: Option<u32>, tokens_per_minute: Option<u32>) -> Limiter {
        let quota = |n: u32| NonZeroU32::new(n).map(|n| (Quota::per_minute(n), n));
        Limiter {
            requests: requests_per_minute
                .and_then(quota)
                .map(|(q, _)| RateLimiter::direct(q)),
            tokens: tokens_per_minute
                .and_then(quota)
                .map(|(q, burst)| (RateLimiter::direct(q), burst)),
            paused_until: Mutex::new(None),
        }
    }

    pub fn limits_tokens(&self) -> bool {
        self.tokens.is_some()
    }

    /// Wait until a request of about `tokens` tokens may be sent.
    pub async fn admit(&self, tokens: u64) {
        loop {
            let until = *self
                .paused_until
                .lock()
                .expect("the pause lock is never poisoned");
            match until {
                Some(t) if t > Instant::now() => tokio::time::sleep_until(t.into()).await,
                _ => break,
            }
        }
        if let Some(r) = &self.requests {
            r.until_ready().await;
        }
        self.take_tokens(tokens).await;
    }

    /// Charge what the request used beyond its estimate, so later requests wait for it.
    pub async fn settle(&self, estimated: u64, actual: u64) {
        if actual > estimated {
            self.take_tokens(actual - estimated).await;
        }
    }

    async fn take_tokens(&self, n: u64) {
        if let Some((limiter, burst)) = &self.tokens {
            // A request larger than a minute's budget waits for a whole budget, not forever.
            let n = u32::try_from(n).unwrap_or(u32::MAX).clamp(1, burst.get());
            let n = NonZeroU32::new(n).expect("clamped to at least 1");
            let _ = limiter.until_n_ready(n).await;
        }
    }

    /// The provider said 429: hold every request back for `wait`.
    pub fn pause(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut p = self
            .paused_until
            .lock()
            .expect("the pause lock is never poisoned");
        if p.is_none_or(|t| t < until) {
            *p = Some(until);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn requests_per_minute_spaces_requests() {
        // 600 per minute: a burst of 600, then one every 100 ms.
        let l = Limiter::new(Some(600), None);
        let start = Instant::now();
        for _ in 0..600 {
            l.admit(0).await;
        }
        assert!(
            start.elapsed() < Duration::from_millis(50),
            "the burst is immediate"
        );
        l.admit(0).await;
        l.admit(0).await;
        assert!(
            start.elapsed() >= Duration::from_millis(150),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test]
    async fn a_pause_holds_every_request() {
        let l = Limiter::new(None, None);
        l.pause(Duration::from_millis(120));
        let start = Instant::now();
        l.admit(10).await;
        assert!(start.elapsed() >= Duration::from_millis(110));
    }

    #[tokio::test]
    async fn tokens_per_minute_counts_tokens() {
        // 60,000 tokens a minute = 1,000 a second after the first minute's burst.
        let l = Limiter::new(None, Some(60_000));
        l.admit(60_000).await;
        let start = Instant::now();
        l.admit(200).await;
        assert!(
            start.elapsed() >= Duration::from_millis(150),
            "{:?}",
            start.elapsed()
        );
    }
}
