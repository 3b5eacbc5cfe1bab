//! `kind = "gguf"` with the two real models of the local example (SmolLM2-135M-Instruct and
//! Gemma 3 270M), run in-process. The weights come from `just models` (scripts/fetch-models.sh);
//! without them these tests are skipped with a message, and fail under `CI` (.ci/run fetches them).
#![cfg(feature = "gguf")]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use goldgate::config::ProviderConfig;
use goldgate::provider::gguf::engine::{Engine, Gguf, Sampling, read_vocab};
use goldgate::provider::gguf::tokenizer::Tokenizer;
use goldgate::provider::{Provider, Request};

use crate::support::Run;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn local(rel: &str) -> PathBuf {
    root().join("examples/local").join(rel)
}

/// The verified weights file of a local-example provider, or `None` (skip) when it is absent.
fn weights(provider: &str) -> Option<PathBuf> {
    let file = local(provider);
    let cfg = ProviderConfig::load(&file).unwrap();
    match goldgate::provider::gguf::locate_weights(&file, &cfg) {
        Ok(path) => Some(path),
        Err(e) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "the local models are required in CI (.ci/run runs scripts/fetch-models.sh): {e}"
            );
            eprintln!("SKIPPED: {e}");
            None
        }
    }
}

fn greedy(max_tokens: usize) -> Sampling {
    Sampling {
        max_tokens,
        temperature: 0.0,
        seed: 0,
    }
}

fn far() -> Instant {
    Instant::now() + Duration::from_secs(600)
}

#[test]
fn gguf_loads_a_model_and_generates_a_short_answer() {
    let Some(path) = weights("providers/smollm2.toml") else {
        return;
    };
    let started = Instant::now();
    let engine = Engine::load(&path, None, 2048, None).unwrap();
    let loaded = started.elapsed();
    let g = engine
        .generate(
            None,
            "What is the capital of France? Answer in one word.",
            &greedy(16),
            far(),
            &AtomicBool::new(false),
        )
        .unwrap();
    eprintln!("SmolLM2 loaded in {loaded:?}; answered {:?}", g.text);
    assert!(g.text.contains("Paris"), "{g:?}");
    assert!(g.output_tokens >= 1 && g.output_tokens <= 16, "{g:?}");
    // ChatML with SmolLM2's default system message: dozens of tokens, counted exactly.
    assert_eq!(
        g.prompt_tokens,
        engine
            .prompt_tokens(None, "What is the capital of France? Answer in one word.")
            .len()
    );
    assert!(g.prompt_tokens > 20, "{g:?}");
    assert!(g.first_token.is_some());

    // Greedy decoding is deterministic; max_tokens is a hard bound.
    let again = engine
        .generate(
            None,
            "What is the capital of France? Answer in one word.",
            &greedy(16),
            far(),
            &AtomicBool::new(false),
        )
        .unwrap();
    assert_eq!(again.text, g.text);
    let short = engine
        .generate(
            None,
            "Write a long story about a dragon.",
            &greedy(3),
            far(),
            &AtomicBool::new(false),
        )
        .unwrap();
    assert_eq!(short.output_tokens, 3, "{short:?}");
    // A deadline already passed is a timeout, not a hang.
    let err = engine
        .generate(
            None,
            "Write a long story about a dragon.",
            &greedy(64),
            Instant::now(),
            &AtomicBool::new(false),
        )
        .unwrap_err();
    assert_eq!(err.kind, goldgate::provider::ErrorKind::Timeout);
}

#[test]
fn gguf_gemma_answers_in_its_own_template() {
    let Some(path) = weights("providers/gemma3.toml") else {
        return;
    };
    let engine = Engine::load(&path, None, 2048, None).unwrap();
    let ids = engine.prompt_tokens(None, "Hi");
    // <bos> <start_of_turn> user \n Hi <end_of_turn> \n <start_of_turn> model \n
    assert_eq!(ids, [2, 105, 2364, 107, 10979, 106, 107, 105, 4368, 107]);
    let g = engine
        .generate(
            None,
            "The capital of France is",
            &greedy(8),
            far(),
            &AtomicBool::new(false),
        )
        .unwrap();
    eprintln!("Gemma answered {:?}", g.text);
    assert!(g.output_tokens >= 1 && g.output_tokens <= 8, "{g:?}");
}

/// Known ids from the files' own vocabularies: a GPT-2 style byte-level BPE (SmolLM2, digits
/// split one by one) and a SentencePiece vocabulary with scores (Gemma).
#[test]
fn gguf_tokenizers_give_the_vocabularies_own_ids() {
    if let Some(path) = weights("providers/smollm2.toml") {
        let t = Tokenizer::new(read_vocab(&path).unwrap()).unwrap();
        assert_eq!(t.encode("Hello world"), [19556, 905]);
        // " 30" is a space and two digits: SmolLM2 has no multi-digit tokens.
        let ids = t.encode("in 30 days");
        assert_eq!(ids.len(), 5, "{ids:?}");
        assert_eq!(&ids[2..4], [35, 32]);
        assert_eq!(t.token_id("<|im_end|>"), Some(2));
    }
    if let Some(path) = weights("providers/gemma3.toml") {
        let t = Tokenizer::new(read_vocab(&path).unwrap()).unwrap();
        assert_eq!(t.encode("Hello world"), [9259, 1902]);
        assert_eq!(
            t.encode("The capital of France is"),
            [818, 5279, 529, 7001, 563]
        );
        // "\n\n" is one user-defined token, matched before the SentencePiece merges.
        assert_eq!(t.encode("a\n\nb")[1], 108);
        for text in [
            "Refunds take 5–7 business days (€40+).",
            "naïve café 🦀\tend",
        ] {
            assert_eq!(t.decode(&t.encode(text)), text);
        }
    }
}

/// goldgate's byte-level BPE against Hugging Face's tokenizers configured as SmolLM2's
/// tokenizer.json is (Digits(individual) + ByteLevel, no prefix space), over every prompt of the
/// shipped golden set and some awkward strings.
#[test]
fn gguf_smollm2_tokenizer_matches_hugging_face_tokenizers() {
    use tokenizers::models::bpe::BPE;
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    use tokenizers::pre_tokenizers::digits::Digits;
    use tokenizers::pre_tokenizers::sequence::Sequence;

    let Some(path) = weights("providers/smollm2.toml") else {
        return;
    };
    let vocab = read_vocab(&path).unwrap();
    let ours = Tokenizer::new(vocab.clone()).unwrap();
    let map: tokenizers::models::bpe::Vocab = vocab
        .tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect();
    let merges: tokenizers::models::bpe::Merges = vocab
        .merges
        .iter()
        .map(|m| {
            let (a, b) = m.split_once(' ').unwrap();
            (a.to_owned(), b.to_owned())
        })
        .collect();
    let bpe = BPE::builder()
        .vocab_and_merges(map, merges)
        .build()
        .unwrap();
    let mut hf = tokenizers::Tokenizer::new(bpe);
    hf.with_pre_tokenizer(Some(Sequence::new(vec![
        Digits::new(true).into(),
        ByteLevel::new(false, true, true).into(),
    ])));

    let mut texts: Vec<String> = vec![
        "Hello world".into(),
        "  two  spaces, then\n\nnew lines\r\n\tand a tab".into(),
        "It's 2026: prices rose 12.5% to $1,299.99!".into(),
        "naïve café — “quotes” 🦀 日本語".into(),
        "trailing space ".into(),
        "I'm sure they'll say you've done it; we'd agree".into(),
    ];
    let items = std::fs::read_to_string(root().join("goldens/support-faq/items.jsonl")).unwrap();
    for line in items.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        texts.push(v["question"].as_str().unwrap().to_owned());
        if let Some(c) = v["context"].as_str() {
            texts.push(format!(
                "Answer the question using only the context below.\n\nContext:\n{c}\n\nQuestion: {}",
                v["question"].as_str().unwrap()
            ));
        }
    }
    for text in &texts {
        let theirs = hf.encode(text.as_str(), false).unwrap();
        assert_eq!(ours.encode(text), theirs.get_ids(), "{text:?}");
        assert_eq!(ours.decode(&ours.encode(text)), *text);
    }
}

/// The provider runs no more generations at once than `[limits] concurrency`, whoever calls it,
/// and loads the weights once for all of them.
#[test]
fn gguf_provider_bounds_concurrent_generations() {
    if weights("providers/smollm2.toml").is_none() {
        return;
    }
    let file = local("providers/smollm2.toml");
    let mut cfg = ProviderConfig::load(&file).unwrap();
    cfg.max_tokens = Some(4);
    assert_eq!(cfg.limits.concurrency, 1);
    let provider = Arc::new(Gguf::load(&file, &cfg).unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .build()
        .unwrap();
    rt.block_on(async {
        let calls: Vec<_> = (0..4)
            .map(|i| {
                let p = provider.clone();
                tokio::spawn(async move {
                    let req = Request {
                        system: None,
                        prompt: format!("Count to {i}."),
                        question: String::new(),
                        context: Vec::new(),
                        trial: 0,
                    };
                    p.complete(&req).await
                })
            })
            .collect();
        for c in calls {
            let done = c.await.unwrap().unwrap();
            let usage = done.usage.unwrap();
            assert!(usage.output >= 1 && usage.output <= 4, "{usage:?}");
        }
    });
    assert_eq!(provider.peak_concurrency(), 1);
}

/// The local example, end to end through the binary: both models answer, the answers differ on
/// some items (a real diff to gate), tokens are exact, cost comes from machine time.
#[test]
fn gguf_local_example_runs_and_the_models_answer_differently() {
    if weights("providers/smollm2.toml").is_none() || weights("providers/gemma3.toml").is_none() {
        return;
    }
    let out_dir = tempfile::tempdir().unwrap();
    let out = assert_cmd::Command::cargo_bin("goldgate")
        .unwrap()
        .current_dir(root())
        .env("NO_COLOR", "1")
        .env_remove("CI")
        .args([
            "run",
            "-c",
            "examples/local/goldgate.toml",
            "--limit",
            "6",
            "--out",
        ])
        .arg(out_dir.path())
        .timeout(Duration::from_secs(900))
        .output()
        .unwrap();
    let run = Run::new(root(), out);
    assert!(matches!(run.code(), 0 | 1), "{}", run.stderr());
    let s = run.summary();
    assert_eq!(s["models"]["current"]["kind"], "gguf");
    assert_eq!(s["models"]["candidate"]["model"], "Gemma-3-270M Q4_K_M");
    let results = run.results();
    assert_eq!(results.len(), 12);
    let mut differ = 0;
    for r in &results {
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(r["tokens"]["estimated"], false, "{r}");
        assert!(r["tokens"]["input"].as_u64().unwrap() > 20, "{r}");
        let out = r["tokens"]["output"].as_u64().unwrap();
        assert!((1..=64).contains(&out), "max_tokens = 64: {r}");
        assert!(r["ttft_ms"].as_f64().unwrap() <= r["latency_ms"].as_f64().unwrap());
        // [pricing] per_hour = 0.10: the machine's time, nothing per token.
        let expected = 0.10 * r["latency_ms"].as_f64().unwrap() / 1000.0 / 3600.0;
        assert!(
            (r["cost_usd"].as_f64().unwrap() - expected).abs() < 1e-12,
            "{r}"
        );
        if r["model"] == "current" {
            let other = results
                .iter()
                .find(|o| o["id"] == r["id"] && o["model"] == "candidate")
                .unwrap();
            differ += usize::from(r["answer"] != other["answer"]);
        }
    }
    assert!(
        differ > 0,
        "the two models gave the same answers everywhere"
    );
    assert!(
        s["models"]["current"]["metrics"]["cost_per_1k"]
            .as_f64()
            .unwrap()
            > 0.0
    );
}

/// A missing weights file stops the run before anything is called, naming the fetch command.
#[test]
fn gguf_missing_weights_are_a_configuration_error() {
    let empty = tempfile::tempdir().unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let out = assert_cmd::Command::cargo_bin("goldgate")
        .unwrap()
        .current_dir(root())
        .env("GOLDGATE_MODELS", empty.path())
        .args(["run", "-c", "examples/local/goldgate.toml", "--out"])
        .arg(out_dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("smollm2.toml") && err.contains("does not exist"),
        "{err}"
    );
    assert!(err.contains("just models"), "{err}");
    assert_eq!(std::fs::read_dir(out_dir.path()).unwrap().count(), 0);
}
