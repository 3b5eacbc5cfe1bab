//! The in-process model: weights, tokenizer and template loaded once, generations run on blocking
//! threads, at most `[limits] concurrency` at a time.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use candle_core::quantized::gguf_file::{self, Value};
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::Semaphore;

use super::model::{Arch, Weights};
use super::template::{ChatTemplate, TemplateKind};
use super::tokenizer::{Tokenizer, Vocab};
use crate::config::ProviderConfig;
use crate::error::{Error, Location};
use crate::provider::{CallError, Completion, ErrorKind, Provider, Request, Usage};

/// Without `max_tokens` in the provider file, answers stop here.
const DEFAULT_MAX_TOKENS: usize = 256;
/// Without `[gguf] context`, RoPE tables and prompts stop here (or at the model's own context).
const DEFAULT_CONTEXT: usize = 4096;
/// Without `seed`, sampling (temperature > 0) still reproduces.
const DEFAULT_SEED: u64 = 0x676f_6c64_6761_7465;

/// One loaded model.
pub struct Engine {
    weights: Weights,
    tokenizer: Tokenizer,
    template: ChatTemplate,
    /// A dedicated pool for `[gguf] threads`; otherwise candle's own pool (one thread per core).
    pool: Option<rayon::ThreadPool>,
}

pub struct Sampling {
    pub max_tokens: usize,
    pub temperature: f64,
    pub seed: u64,
}

#[derive(Debug)]
pub struct Generation {
    pub text: String,
    pub prompt_tokens: usize,
    /// Tokens sampled, the end-of-turn token included.
    pub output_tokens: usize,
    pub first_token: Option<Instant>,
}

impl Engine {
    /// Load a GGUF file: metadata, tokenizer, template, weights.
    pub fn load(
        path: &Path,
        template: Option<TemplateKind>,
        context: usize,
        threads: Option<usize>,
    ) -> Result<Engine, String> {
        let mut file = std::fs::File::open(path).map_err(|e| format!("cannot open: {e}"))?;
        let content = gguf_file::Content::read(&mut file)
            .map_err(|e| format!("not a readable GGUF file: {e}"))?;
        let md = &content.metadata;
        let architecture = md
            .get("general.architecture")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .unwrap_or_default();
        let arch = Arch::from_name(&architecture).ok_or_else(|| {
            format!("architecture `{architecture}` is not supported (supported: llama, gemma3)")
        })?;
        let tokenizer = Tokenizer::new(vocab(md)?)?;
        let chat_template = md
            .get("tokenizer.chat_template")
            .and_then(|v| v.to_string().ok())
            .map(String::as_str);
        let kind = match template {
            Some(kind) => kind,
            None => TemplateKind::detect(&architecture, chat_template).ok_or_else(|| {
                "cannot tell this model's chat template: set [gguf] template = \"chatml\", \"gemma\" or \"none\"".to_owned()
            })?,
        };
        let template = ChatTemplate::new(kind, &tokenizer, chat_template)?;
        let weights = Weights::load(&content, &mut file, arch, context)
            .map_err(|e| format!("cannot load the weights: {e}"))?;
        let pool = threads
            .map(|n| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .thread_name(|i| format!("goldgate-gguf-{i}"))
                    .build()
                    .map_err(|e| format!("cannot start {n} threads: {e}"))
            })
            .transpose()?;
        Ok(Engine {
            weights,
            tokenizer,
            template,
            pool,
        })
    }

    /// Tokens of a prompt as the model sees it (template applied).
    pub fn prompt_tokens(&self, system: Option<&str>, prompt: &str) -> Vec<u32> {
        self.template.render(&self.tokenizer, system, prompt)
    }

    /// The next-token logits after each of `positions` (indices into `tokens`, ascending): the
    /// first `prefill` tokens run in one pass, as a prompt is, and the rest one at a time through
    /// the KV cache, as generated tokens are. Generation itself needs only the logits after its
    /// last token; this exists so that tests can compare the whole forward pass, both paths, with
    /// an independent implementation's at several positions (tests/it/gguf.rs, against llama.cpp
    /// fixtures made by scripts/reference_logits.py).
    #[doc(hidden)]
    pub fn logits_at(
        &self,
        tokens: &[u32],
        prefill: usize,
        positions: &[usize],
    ) -> Result<Vec<Vec<f32>>, String> {
        if !positions.windows(2).all(|w| w[0] < w[1])
            || positions.last().is_some_and(|&p| p >= tokens.len())
        {
            return Err(format!(
                "positions {positions:?} are not ascending within the {} tokens",
                tokens.len()
            ));
        }
        let prefill = prefill.clamp(1, tokens.len().max(1));
        let run = || -> candle_core::Result<Vec<Vec<f32>>> {
            let mut cache = self.weights.cache();
            let rows: Vec<usize> = positions.iter().copied().filter(|&p| p < prefill).collect();
            let mut out = self
                .weights
                .forward_at(&mut cache, &tokens[..prefill], &rows)?;
            for (i, &token) in tokens.iter().enumerate().skip(prefill) {
                let row: &[usize] = if positions.contains(&i) { &[0] } else { &[] };
                out.extend(self.weights.forward_at(&mut cache, &[token], row)?);
            }
            Ok(out)
        };
        match &self.pool {
            Some(pool) => pool.install(run),
            None => candle_core::Device::Cpu.with_context(run),
        }
        .map_err(|e| format!("inference failed: {e}"))
    }

    /// Generate an answer. Stops at an end-of-turn token, after `max_tokens`, at the deadline
    /// (a timeout) or when `cancel` is set (the request was abandoned).
    pub fn generate(
        &self,
        system: Option<&str>,
        prompt: &str,
        sampling: &Sampling,
        deadline: Instant,
        cancel: &AtomicBool,
    ) -> Result<Generation, CallError> {
        let ids = self.prompt_tokens(system, prompt);
        let context = self.weights.context;
        if ids.len() >= context {
            return Err(CallError::new(
                ErrorKind::BadResponse,
                format!(
                    "the prompt has {} tokens; this model runs at most {context} (set [gguf] context, or shorten the prompt)",
                    ids.len()
                ),
            ));
        }
        let budget = sampling.max_tokens.min(context - ids.len());
        let run = || self.decode(&ids, budget, sampling, deadline, cancel);
        let (output, first_token) = match &self.pool {
            Some(pool) => pool.install(run),
            None => candle_core::Device::Cpu.with_context(run),
        }?;
        let text_ids: Vec<u32> = output
            .iter()
            .copied()
            .filter(|t| !self.template.stop.contains(t))
            .collect();
        Ok(Generation {
            text: self.tokenizer.decode(&text_ids).trim().to_owned(),
            prompt_tokens: ids.len(),
            output_tokens: output.len(),
            first_token,
        })
    }

    fn decode(
        &self,
        prompt: &[u32],
        budget: usize,
        sampling: &Sampling,
        deadline: Instant,
        cancel: &AtomicBool,
    ) -> Result<(Vec<u32>, Option<Instant>), CallError> {
        let failed = |e: candle_core::Error| {
            CallError::new(ErrorKind::BadResponse, format!("inference failed: {e}"))
        };
        let mut rng = fastrand::Rng::with_seed(sampling.seed);
        let mut cache = self.weights.cache();
        let mut logits = self.weights.forward(&mut cache, prompt).map_err(failed)?;
        let mut out = Vec::with_capacity(budget);
        let mut first_token = None;
        while out.len() < budget {
            if cancel.load(Ordering::Relaxed) {
                return Err(CallError::new(ErrorKind::Timeout, "abandoned"));
            }
            let next = pick(&logits, sampling.temperature, &mut rng);
            first_token.get_or_insert_with(Instant::now);
            out.push(next);
            if self.template.stop.contains(&next) || out.len() == budget {
                break;
            }
            if Instant::now() >= deadline {
                return Err(CallError::new(
                    ErrorKind::Timeout,
                    format!(
                        "no answer within timeout_s ({} tokens generated)",
                        out.len()
                    ),
                ));
            }
            logits = self.weights.forward(&mut cache, &[next]).map_err(failed)?;
        }
        Ok((out, first_token))
    }
}

/// Greedy (the first highest logit) at temperature 0; otherwise a draw from softmax(logits / T).
fn pick(logits: &[f32], temperature: f64, rng: &mut fastrand::Rng) -> u32 {
    let argmax = || {
        logits
            .iter()
            .enumerate()
            .fold((0usize, f32::NEG_INFINITY), |best, (i, &l)| {
                if l > best.1 { (i, l) } else { best }
            })
            .0 as u32
    };
    if temperature <= 0.0 {
        return argmax();
    }
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let weights: Vec<f64> = logits
        .iter()
        .map(|&l| (f64::from(l - max) / temperature).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    if !(total.is_finite() && total > 0.0) {
        return argmax();
    }
    let mut target = rng.f64() * total;
    for (i, w) in weights.iter().enumerate() {
        target -= w;
        if target <= 0.0 {
            return i as u32;
        }
    }
    argmax()
}

/// The tokenizer of a GGUF file as goldgate rebuilds it (for tests and tools).
pub fn read_vocab(path: &Path) -> Result<Vocab, String> {
    let mut file = std::fs::File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let content = gguf_file::Content::read(&mut file)
        .map_err(|e| format!("not a readable GGUF file: {e}"))?;
    vocab(&content.metadata)
}

/// The tokenizer's description in a GGUF file's metadata.
fn vocab(md: &std::collections::HashMap<String, Value>) -> Result<Vocab, String> {
    let get = |k: &str| md.get(k);
    let string = |k: &str| get(k).and_then(|v| v.to_string().ok()).cloned();
    let list = |k: &str| -> Result<Vec<Value>, String> {
        match get(k) {
            None => Ok(Vec::new()),
            Some(v) => v
                .to_vec()
                .cloned()
                .map_err(|_| format!("`{k}` is not an array")),
        }
    };
    let strings = |k: &str| -> Result<Vec<String>, String> {
        list(k)?
            .iter()
            .map(|v| {
                v.to_string()
                    .cloned()
                    .map_err(|_| format!("`{k}` holds a non-string"))
            })
            .collect()
    };
    let id = |k: &str| get(k).and_then(integer).map(|i| i as u32);
    let flag = |k: &str| get(k).and_then(|v| v.to_bool().ok());
    Ok(Vocab {
        model: string("tokenizer.ggml.model").ok_or("the file has no tokenizer.ggml.model")?,
        pre: string("tokenizer.ggml.pre"),
        tokens: strings("tokenizer.ggml.tokens")?,
        token_type: list("tokenizer.ggml.token_type")?
            .iter()
            .map(|v| {
                integer(v)
                    .map(|i| i as i32)
                    .ok_or("`tokenizer.ggml.token_type` holds a non-integer")
            })
            .collect::<Result<_, _>>()?,
        scores: list("tokenizer.ggml.scores")?
            .iter()
            .map(|v| {
                v.to_f32()
                    .map_err(|_| "`tokenizer.ggml.scores` holds a non-float")
            })
            .collect::<Result<_, _>>()?,
        merges: strings("tokenizer.ggml.merges")?,
        bos: id("tokenizer.ggml.bos_token_id"),
        eos: id("tokenizer.ggml.eos_token_id"),
        add_bos: flag("tokenizer.ggml.add_bos_token").unwrap_or(false),
        add_space_prefix: flag("tokenizer.ggml.add_space_prefix").unwrap_or(false),
    })
}

fn integer(v: &Value) -> Option<i64> {
    Some(match v {
        Value::U8(x) => i64::from(*x),
        Value::I8(x) => i64::from(*x),
        Value::U16(x) => i64::from(*x),
        Value::I16(x) => i64::from(*x),
        Value::U32(x) => i64::from(*x),
        Value::I32(x) => i64::from(*x),
        Value::U64(x) => i64::try_from(*x).ok()?,
        Value::I64(x) => *x,
        _ => return None,
    })
}

/// `kind = "gguf"`.
pub struct Gguf {
    engine: Arc<Engine>,
    /// Generations running at once; a permit moves into the blocking thread, so an abandoned
    /// request still holds its slot until its thread has stopped.
    slots: Arc<Semaphore>,
    /// Generations running now, and the most that ever ran at once (tests check the bound).
    running: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    max_tokens: usize,
    temperature: f64,
    seed: u64,
    timeout: Duration,
}

impl Gguf {
    pub fn load(provider_file: &Path, cfg: &ProviderConfig) -> Result<Gguf, Error> {
        let path = super::locate_weights(provider_file, cfg)?;
        let g = cfg.gguf.as_ref().expect("locate_weights checked the table");
        let engine = Engine::load(
            &path,
            g.template,
            g.context.unwrap_or(DEFAULT_CONTEXT),
            g.threads,
        )
        .map_err(|e| {
            Error::input(
                Location::file(provider_file).field("gguf.path"),
                format!("{}: {e}", path.display()),
                "goldgate runs GGUF files of the llama and gemma3 architectures",
            )
        })?;
        Ok(Gguf {
            engine: Arc::new(engine),
            slots: Arc::new(Semaphore::new(cfg.limits.concurrency.max(1))),
            running: Arc::default(),
            peak: Arc::default(),
            max_tokens: cfg.max_tokens.map_or(DEFAULT_MAX_TOKENS, |m| m as usize),
            temperature: cfg.temperature.unwrap_or(0.0),
            seed: cfg.seed.unwrap_or(DEFAULT_SEED),
            timeout: Duration::from_secs_f64(cfg.limits.timeout_s),
        })
    }

    /// The most generations that ran at once so far.
    pub fn peak_concurrency(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    /// The seed of one request: the provider's seed, the prompt and the trial, so a run
    /// reproduces whatever order requests run in, and repeats are different draws.
    fn request_seed(&self, request: &Request) -> u64 {
        use std::hash::{Hash, Hasher};
        // FNV-1a over the prompt: stable across builds and platforms, unlike DefaultHasher.
        struct Fnv(u64);
        impl Hasher for Fnv {
            fn finish(&self) -> u64 {
                self.0
            }
            fn write(&mut self, bytes: &[u8]) {
                for b in bytes {
                    self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
                }
            }
        }
        let mut h = Fnv(0xcbf2_9ce4_8422_2325 ^ self.seed);
        request.system.hash(&mut h);
        request.prompt.hash(&mut h);
        request.trial.hash(&mut h);
        h.finish()
    }

    async fn attempt(&self, request: &Request) -> Result<Completion, CallError> {
        let permit = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let deadline = Instant::now() + self.timeout;
        let cancel = Arc::new(AtomicBool::new(false));
        // Dropping this future (Ctrl-C, a run abandoned) tells the generation to stop.
        let _stop_on_drop = StopOnDrop(cancel.clone());
        let engine = self.engine.clone();
        let sampling = Sampling {
            max_tokens: self.max_tokens,
            temperature: self.temperature,
            seed: self.request_seed(request),
        };
        let (system, prompt) = (request.system.clone(), request.prompt.clone());
        let (running, peak) = (self.running.clone(), self.peak.clone());
        let generation = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            let result = engine.generate(system.as_deref(), &prompt, &sampling, deadline, &cancel);
            running.fetch_sub(1, Ordering::SeqCst);
            result
        })
        .await
        .map_err(|e| CallError::new(ErrorKind::BadResponse, format!("generation failed: {e}")))??;
        Ok(Completion {
            text: generation.text,
            usage: Some(Usage {
                input: generation.prompt_tokens as u64,
                output: generation.output_tokens as u64,
            }),
            first_token: generation.first_token,
            server_ms: None,
        })
    }
}

struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl Provider for Gguf {
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

    #[test]
    fn greedy_takes_the_first_maximum_and_sampling_reproduces() {
        let mut rng = fastrand::Rng::with_seed(1);
        assert_eq!(pick(&[0.1, 3.0, 3.0, -1.0], 0.0, &mut rng), 1);
        let logits = [1.0, 1.2, 0.8, 1.1];
        let draw = |seed| {
            let mut rng = fastrand::Rng::with_seed(seed);
            (0..32)
                .map(|_| pick(&logits, 1.0, &mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        // A draw at a very low temperature is the greedy choice.
        let mut rng = fastrand::Rng::with_seed(3);
        assert_eq!(pick(&logits, 1e-4, &mut rng), 1);
    }
}
