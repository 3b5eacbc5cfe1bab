//! Provider adapters: how one request reaches one model.
//!
//! A [`Provider`] makes exactly one attempt and classifies what went wrong. Everything around the
//! attempt — the concurrency permit, retries with backoff, the latency clock, token estimation
//! and scrubbing secrets — lives in [`Client`], once, so a new kind of provider only has to speak
//! its API.

mod anthropic;
pub mod cache;
mod call;
mod command;
mod env;
pub mod gguf;
pub(crate) mod http;
mod http_json;
mod kinds;
mod ollama;
pub(crate) mod openai;
pub mod ratelimit;
mod reference;
pub mod retry;
pub mod secrets;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use secrecy::SecretString;
use tokio::sync::Semaphore;

use crate::config::{Pricing, ProviderConfig, ProviderKind};
use crate::error::{Error, Location};
use crate::provider::retry::RetryPolicy;

pub use anthropic::Anthropic;
pub use call::{
    CallError, Chat, Completion, ErrorKind, Outcome, Request, Usage, content_text, tool_calls_text,
};
pub use command::CommandProvider;
pub use http_json::HttpJson;
pub(crate) use kinds::kind;
pub use kinds::load_config;
pub use ollama::Ollama;
pub use openai::OpenAi;
pub use reference::Reference;

/// One model behind one API. Implementations make a single attempt; they hold no retry logic.
pub trait Provider: Send + Sync {
    fn complete<'a>(&'a self, request: &'a Request)
    -> BoxFuture<'a, Result<Completion, CallError>>;

    /// The URL `validate --check-reachable` probes; `None` for providers with no endpoint.
    fn endpoint(&self) -> Option<&str> {
        None
    }

    /// Token counts from the server's own tokenizer, for an answer that came without usage.
    /// Asked after the latency was taken, so counting never shows as the model's time. The
    /// counts leave out the chat template's tokens, so they are still marked estimated.
    fn count_tokens<'a>(
        &'a self,
        _request: &'a Request,
        _answer: &'a str,
    ) -> BoxFuture<'a, Option<Usage>> {
        Box::pin(std::future::ready(None))
    }
}

/// Text in, text with what must not be written replaced: a shadow replay's redaction of
/// personal data, applied to every answer and error before anything stores, logs or scores it.
pub type Scrub = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// A provider with its limits: the per-provider concurrency bound, retries, timeout, pricing.
pub struct Client {
    pub label: String,
    pub config_path: PathBuf,
    pub model: String,
    pub kind: ProviderKind,
    pub pricing: Pricing,
    pub concurrency: usize,
    provider: Arc<dyn Provider>,
    permits: Arc<Semaphore>,
    retry: RetryPolicy,
    limiter: crate::provider::ratelimit::Limiter,
    max_tokens: Option<u32>,
    /// Everything about the provider that shapes an answer, for cache keys.
    identity: String,
    cache: Option<Arc<crate::provider::cache::Cache>>,
    verbose: bool,
    scrub: Option<Scrub>,
}

impl Client {
    /// Build the client for a provider file, with its kind's adapter. Fails (exit 2) on a missing
    /// key variable.
    pub fn from_config(path: &Path, cfg: &ProviderConfig) -> Result<Client, Error> {
        let timeout = Duration::from_secs_f64(cfg.limits.timeout_s);
        let key = read_key(path, cfg)?;
        let provider = (kind(cfg.kind).build)(path, cfg, key, timeout)?;
        Ok(Client::new(path, cfg, provider))
    }

    /// A client around any provider implementation (used by tests and future kinds). Secrets the
    /// provider holds are scrubbed from its answers once given to [`secrets::register`].
    pub fn new(path: &Path, cfg: &ProviderConfig, provider: Arc<dyn Provider>) -> Client {
        // What shapes an answer: the whole provider file but for prices, limits and the key's name.
        let mut shape = cfg.clone();
        shape.pricing = Pricing::default();
        shape.limits = crate::config::Limits::default();
        shape.api_key_env = None;
        shape.tokenize = None;
        Client {
            limiter: crate::provider::ratelimit::Limiter::new(
                cfg.limits.requests_per_minute,
                cfg.limits.tokens_per_minute,
            ),
            max_tokens: cfg.max_tokens,
            identity: format!("goldgate-cache-v1 {shape:?}"),
            cache: None,
            verbose: false,
            scrub: None,
            label: path.display().to_string(),
            config_path: path.to_path_buf(),
            model: cfg.model.clone(),
            kind: cfg.kind,
            pricing: cfg.pricing,
            concurrency: cfg.limits.concurrency,
            provider,
            permits: Arc::new(Semaphore::new(cfg.limits.concurrency)),
            retry: RetryPolicy::new(cfg.limits.retries),
        }
    }

    /// A short fingerprint of what shapes this provider's answers (its cache identity), for the
    /// manifest: `history` marks the night it changed.
    pub fn settings_fingerprint(&self) -> String {
        use sha2::Digest;
        crate::text::hex(&sha2::Sha256::digest(self.identity.as_bytes())[..8])
    }

    pub fn endpoint(&self) -> Option<&str> {
        self.provider.endpoint()
    }

    /// Log failed attempts and retries to stderr.
    pub fn verbose(mut self, on: bool) -> Client {
        self.verbose = on;
        self
    }

    /// Replace what `scrub` finds in every answer and error message, before the cache stores
    /// one, the verbose log prints one, or the caller sees one.
    pub fn with_scrub(mut self, scrub: Scrub) -> Client {
        self.scrub = Some(scrub);
        self
    }

    fn scrubbed(&self, text: String) -> String {
        match &self.scrub {
            Some(scrub) => scrub(&text),
            None => text,
        }
    }

    fn scrubbed_error(&self, mut e: CallError) -> CallError {
        if let Some(scrub) = &self.scrub {
            e.message = scrub(&e.message);
        }
        e
    }

    /// Serve and store successful answers through this cache.
    pub fn with_cache(mut self, cache: Arc<crate::provider::cache::Cache>) -> Client {
        self.cache = Some(cache);
        self
    }

    /// Send one request: pass the rate limiter, hold a permit per attempt, retry what is worth
    /// retrying, and time only the successful attempt — waiting for the limiter or a permit, or
    /// sleeping in backoff, is not latency. The answer or the error that comes back is scrubbed of
    /// every configured secret ([`secrets`]): nothing past the client ever sees one.
    pub async fn call(&self, request: &Request) -> Outcome {
        let key = self
            .cache
            .as_ref()
            .map(|_| crate::provider::cache::Cache::key(&self.identity, request));
        if let (Some(cache), Some(key)) = (&self.cache, &key)
            && let Some(hit) = cache.get(key)
        {
            return Outcome {
                cost_usd: self.pricing.cost(
                    hit.usage.input,
                    hit.usage.output,
                    Duration::from_secs_f64(hit.latency_ms / 1000.0),
                ),
                // Scrubbed again: an entry stored before a secret was configured still holds it.
                result: Ok(self.scrubbed(secrets::scrub(hit.text))),
                latency: Some(Duration::from_secs_f64(hit.latency_ms / 1000.0)),
                ttft: hit.ttft_ms.map(|ms| Duration::from_secs_f64(ms / 1000.0)),
                server_ms: hit.server_ms,
                attempts: 0,
                usage: hit.usage,
                usage_estimated: hit.usage_estimated,
                cached: true,
            };
        }
        let estimate = if self.limiter.limits_tokens() {
            crate::tokens::count(request.system.as_deref().unwrap_or_default())
                + crate::tokens::count(&request.prompt)
                + u64::from(self.max_tokens.unwrap_or(0))
        } else {
            0
        };
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            self.limiter.admit(estimate).await;
            let result = {
                let _permit = self
                    .permits
                    .acquire()
                    .await
                    .expect("the semaphore is never closed");
                let started = Instant::now();
                match self.provider.complete(request).await {
                    Ok(completion) => {
                        let latency = started.elapsed();
                        // Counting asks the server too: still under the permit, so that at
                        // concurrency 1 it cannot overlap (and on llama-cpp-python interrupt)
                        // the next answer.
                        let counted = match completion.usage {
                            Some(_) => None,
                            None => self.provider.count_tokens(request, &completion.text).await,
                        };
                        Ok((completion, counted, started, latency))
                    }
                    // Before anything — the verbose log, the retry, the result line — reads it.
                    Err(e) => Err(self.scrubbed_error(secrets::scrub_error(e))),
                }
            };
            match result {
                Ok((completion, counted, started, latency)) => {
                    let (usage, estimated) = match (completion.usage, counted) {
                        (Some(u), _) => (u, false),
                        (None, Some(u)) => (u, true),
                        (None, None) => (
                            Usage {
                                input: crate::tokens::count(
                                    request.system.as_deref().unwrap_or_default(),
                                ) + crate::tokens::count(&request.prompt),
                                output: crate::tokens::count(&completion.text),
                            },
                            true,
                        ),
                    };
                    self.limiter
                        .settle(estimate, usage.input.saturating_add(usage.output))
                        .await;
                    let cost_usd = self.pricing.cost(usage.input, usage.output, latency);
                    // Counted as the model said it; stored, scored and written scrubbed.
                    let answer = self.scrubbed(secrets::scrub(completion.text));
                    if let (Some(cache), Some(key)) = (&self.cache, &key) {
                        cache.put(
                            key,
                            &crate::provider::cache::Cached {
                                text: answer.clone(),
                                usage,
                                usage_estimated: estimated,
                                latency_ms: latency.as_secs_f64() * 1000.0,
                                ttft_ms: completion.first_token.map(|t| {
                                    t.saturating_duration_since(started).as_secs_f64() * 1000.0
                                }),
                                server_ms: completion.server_ms,
                            },
                        );
                    }
                    return Outcome {
                        cached: false,
                        ttft: completion
                            .first_token
                            .map(|t| t.saturating_duration_since(started)),
                        server_ms: completion.server_ms,
                        result: Ok(answer),
                        latency: Some(latency),
                        attempts: attempt,
                        usage,
                        usage_estimated: estimated,
                        cost_usd,
                    };
                }
                Err(err) => match self.retry.next_delay(attempt, &err) {
                    Some(delay) => {
                        if self.verbose {
                            // The message quotes the server: printed inert, as in a CI log.
                            eprintln!(
                                "{}: attempt {attempt} failed ({}{}): {}; retrying in {:.1}s",
                                crate::text::printable(&self.label),
                                err.kind.as_str(),
                                err.status.map(|s| format!(" {s}")).unwrap_or_default(),
                                crate::text::printable(&err.message),
                                delay.as_secs_f64()
                            );
                        }
                        if err.kind == ErrorKind::RateLimited {
                            // Everyone backs off, not just this request; the limiter recovers after.
                            self.limiter.pause(delay);
                        }
                        tokio::time::sleep(delay).await;
                    }
                    None => {
                        return Outcome {
                            result: Err(err),
                            latency: None,
                            ttft: None,
                            server_ms: None,
                            attempts: attempt,
                            usage: Usage::default(),
                            usage_estimated: false,
                            cost_usd: 0.0,
                            cached: false,
                        };
                    }
                },
            }
        }
    }
}

/// The key `api_key_env` names, read from the environment; `None` when the file names none.
fn read_key(path: &Path, cfg: &ProviderConfig) -> Result<Option<SecretString>, Error> {
    let Some(var) = &cfg.api_key_env else {
        return Ok(None);
    };
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => {
            let at = Location::file(path).field("api_key_env");
            secrets::register(&v, at, &format!("the key in {var}"));
            Ok(Some(SecretString::from(v)))
        }
        _ => Err(Error::input(
            Location::file(path).field("api_key_env"),
            format!("the environment variable {var} is not set (or is empty)"),
            format!(
                "export {var}=… before running; keys are read only from the environment, never from files"
            ),
        )),
    }
}
