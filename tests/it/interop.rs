//! Real servers' replies, replayed byte for byte through the test server: transcripts recorded
//! from llama-cpp-python's server (scripts/interop/record.py) and others written from the
//! servers' own sources. Each fixture's `.json` says where it came from.
//!
//! The point of these tests is the interrupted stream: llama-cpp-python ends a running stream
//! with the role chunk and `[DONE]` when another request arrives, and goldgate once took that
//! for a complete, empty answer.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use crate::server::{MockServer, Reply, Seen};
use crate::support::{Project, error_of, item};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/interop")
}

/// A recorded reply: status, headers (but for the framing ones, which the test server sets
/// itself) and the body in the chunks it arrived in.
fn transcript(server: &str, name: &str) -> Reply {
    let dir = fixtures().join(server);
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap())
            .unwrap();
    let body = std::fs::read(dir.join(format!("{name}.body"))).unwrap();
    let mut chunks = Vec::new();
    let mut at = 0;
    for c in meta["chunks"].as_array().unwrap() {
        let len = c["len"].as_u64().unwrap() as usize;
        chunks.push(body[at..at + len].to_vec());
        at += len;
    }
    assert_eq!(at, body.len(), "{server}/{name}: the chunks cover the body");
    let headers = meta["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h[0].as_str().unwrap(), h[1].as_str().unwrap()))
        .filter(|(n, _)| {
            !["transfer-encoding", "content-length", "connection", "date"]
                .contains(&n.to_ascii_lowercase().as_str())
        })
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    Reply::Raw {
        code: meta["status"].as_u64().unwrap() as u16,
        headers,
        chunks,
        gap: Duration::from_millis(5),
        cut: meta["ended"] == "cut",
    }
}

/// The answer a recorded stream carries: its content deltas, joined.
fn streamed_text(server: &str, name: &str) -> String {
    let body =
        std::fs::read_to_string(fixtures().join(server).join(format!("{name}.body"))).unwrap();
    body.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| {
            let v: Value = serde_json::from_str(d).unwrap();
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

fn is_tokenize(seen: &Seen) -> bool {
    seen.path.contains("tokenize")
}

#[test]
fn llama_cpp_python_transcripts_an_interrupted_stream_is_retried_never_an_empty_answer() {
    const SERVER: &str = "llama-cpp-python";
    let server = MockServer::start(|seen| {
        if is_tokenize(seen) {
            return transcript(SERVER, "tokenize-count");
        }
        match (seen.prompt.as_str(), seen.attempt) {
            ("q-stream", _) => transcript(SERVER, "stream"),
            ("q-nonstream", _) => transcript(SERVER, "nonstream"),
            ("q-interrupted-once", 1) => transcript(SERVER, "stream-interrupted"),
            ("q-interrupted-once", _) => transcript(SERVER, "stream"),
            ("q-interrupted", _) => transcript(SERVER, "stream-interrupted"),
            ("q-context", _) => transcript(SERVER, "context-exceeded"),
            ("q-invalid", _) => transcript(SERVER, "invalid-request"),
            ("q-loading", 1) => transcript("llama-server", "loading"),
            ("q-loading", _) => transcript(SERVER, "nonstream"),
            (other, _) => panic!("no transcript for {other}"),
        }
    });
    let ids = [
        "q-stream",
        "q-nonstream",
        "q-interrupted-once",
        "q-interrupted",
        "q-context",
        "q-invalid",
        "q-loading",
    ];
    let items: Vec<_> = ids.iter().map(|q| item(q, q, &["14"])).collect();
    let base = server.base_url();
    // Both sides stream: a JSON reply to a streamed request is taken as such.
    let project = Project::with_providers(&items, "", |side| {
        format!(
            "kind = \"openai\"\nmodel = \"{side}\"\nbase_url = \"{base}\"\nstream = true\n[limits]\nretries = 2\n"
        )
    })
    .without_error_ceiling();
    let run = project.run(&[]);
    assert!(run.code() <= 1, "{}", run.stderr());

    let streamed = streamed_text(SERVER, "stream");
    assert!(
        !streamed.trim().is_empty(),
        "the recorded stream has an answer"
    );
    for side in ["current", "candidate"] {
        let r = run.result("q-stream", side);
        assert_eq!(r["answer"], streamed.as_str(), "{r}");
        assert!(r["ttft_ms"].as_f64().is_some(), "{r}");
        // llama-cpp-python streams no usage, although it was asked for.
        assert_eq!(r["tokens"]["estimated"], true, "{r}");

        let r = run.result("q-interrupted-once", side);
        assert_eq!(
            (r["ok"].as_bool(), r["attempts"].as_u64()),
            (Some(true), Some(2)),
            "{r}"
        );
        assert_eq!(r["answer"], streamed.as_str(), "{r}");

        let r = run.result("q-interrupted", side);
        let (kind, _, message) = error_of(&r);
        assert_eq!(kind, "bad_response", "{r}");
        assert_eq!(r["attempts"], 3, "retried like a cut-off body: {r}");
        assert!(
            message.contains("[DONE]") && message.contains("--interrupt_requests False"),
            "{message}"
        );
        assert!(r["answer"].is_null(), "{r}");

        let r = run.result("q-context", side);
        let (kind, status, message) = error_of(&r);
        assert_eq!((kind.as_str(), status), ("http_status", Some(400)), "{r}");
        assert!(message.contains("maximum context length"), "{message}");
        assert_eq!(r["attempts"], 1, "a client error is not retried");

        // llama-cpp-python answers a malformed request with 500 internal_server_error, so it is
        // retried like any 5xx: the server's word, not goldgate's guess.
        let r = run.result("q-invalid", side);
        let (kind, status, message) = error_of(&r);
        assert_eq!((kind.as_str(), status), ("http_status", Some(500)), "{r}");
        assert!(message.contains("valid list"), "{message}");
        assert_eq!(r["attempts"], 3);

        let r = run.result("q-loading", side);
        assert_eq!(
            (r["ok"].as_bool(), r["attempts"].as_u64()),
            (Some(true), Some(2)),
            "503 while loading is retried: {r}"
        );

        let m = &run.summary()["models"][side]["metrics"];
        assert_eq!(m["empty_answers"], 0, "{m}");
    }
    // The not-streamed reply carries the server's own usage: exact.
    let nonstream: Value = serde_json::from_slice(
        &std::fs::read(fixtures().join(SERVER).join("nonstream.body")).unwrap(),
    )
    .unwrap();
    let r = run.result("q-nonstream", "current");
    assert_eq!(
        r["tokens"],
        json!({
            "input": nonstream["usage"]["prompt_tokens"],
            "output": nonstream["usage"]["completion_tokens"],
            "estimated": false
        }),
        "{r}"
    );
}

#[test]
fn llama_cpp_python_tokenize_counts_what_a_stream_does_not() {
    const SERVER: &str = "llama-cpp-python";
    let server = MockServer::start(|seen| {
        if is_tokenize(seen) {
            transcript(SERVER, "tokenize-count")
        } else {
            transcript(SERVER, "stream")
        }
    });
    let items = [item("q-stream", "q-stream", &["14"])];
    let base = server.base_url();
    let host = format!("http://{}", server.addr);
    // Only the candidate counts tokens with the server's tokenizer.
    let project = Project::with_providers(&items, "", |side| {
        let tokenize = if side == "candidate" {
            format!("[tokenize]\nurl = \"{host}/extras/tokenize/count\"\nfield = \"input\"\n")
        } else {
            String::new()
        };
        format!(
            "kind = \"openai\"\nmodel = \"{side}\"\nbase_url = \"{base}\"\nstream = true\n{tokenize}"
        )
    });
    let run = project.run(&[]);
    assert!(run.code() <= 1, "{}", run.stderr());
    // The candidate's streamed tokens are the server tokenizer's count (the recorded reply
    // gives the same count for every text), not the cl100k estimate the current side made.
    let count: Value = serde_json::from_slice(
        &std::fs::read(fixtures().join(SERVER).join("tokenize-count.body")).unwrap(),
    )
    .unwrap();
    let n = count["count"].as_u64().unwrap();
    let r = run.result("q-stream", "candidate");
    assert_eq!(
        r["tokens"],
        json!({"input": n, "output": n, "estimated": true}),
        "{r}"
    );
    assert_ne!(run.result("q-stream", "current")["tokens"], r["tokens"]);
    let asked: Vec<Value> = server
        .seen()
        .iter()
        .filter(|s| is_tokenize(s))
        .map(Seen::json)
        .collect();
    assert!(
        asked
            .iter()
            .all(|b| b["input"].is_string() && b["model"] == "candidate"),
        "{asked:?}"
    );
}

#[test]
fn servers_documented_replies_usage_from_timings_and_completeness() {
    let server = MockServer::start(|seen| {
        match seen.prompt.as_str() {
        "q-llama-server" => transcript("llama-server", "stream-timings"),
        "q-vllm" => transcript("vllm", "stream-usage"),
        "q-vllm-long" => transcript("vllm", "context-too-long"),
        "q-empty" => Reply::Stream {
            chunks: vec![
                r#"data: {"choices":[{"index":0,"delta":{"role":"assistant"},"finish_reason":null}]}"#.to_owned() + "\n\n",
                r#"data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#.to_owned() + "\n\n",
                "data: [DONE]\n\n".to_owned(),
            ],
            gap: Duration::ZERO,
        },
        other => panic!("no reply for {other}"),
    }
    });
    let ids = ["q-llama-server", "q-vllm", "q-vllm-long", "q-empty"];
    let items: Vec<_> = ids.iter().map(|q| item(q, q, &["14"])).collect();
    let base = server.base_url();
    let project = Project::with_providers(&items, "", |side| {
        format!(
            "kind = \"openai\"\nmodel = \"{side}\"\nbase_url = \"{base}\"\nstream = true\n[limits]\nretries = 1\n"
        )
    })
    .without_error_ceiling();
    let run = project.run(&[]);
    assert!(run.code() <= 1, "{}", run.stderr());

    let r = run.result("q-llama-server", "candidate");
    assert_eq!(r["answer"], "Refunds take 14 days.", "{r}");
    // 12 cached + 37 evaluated prompt tokens, 5 generated: the server's own count, exact.
    assert_eq!(
        r["tokens"],
        json!({"input": 49, "output": 5, "estimated": false}),
        "{r}"
    );
    let r = run.result("q-vllm", "candidate");
    assert_eq!(r["answer"], "Refunds take 14 days.", "{r}");
    assert_eq!(
        r["tokens"],
        json!({"input": 49, "output": 5, "estimated": false}),
        "{r}"
    );
    let r = run.result("q-vllm-long", "candidate");
    let (kind, status, message) = error_of(&r);
    assert_eq!((kind.as_str(), status), ("http_status", Some(400)), "{r}");
    assert!(message.contains("maximum context length"), "{message}");

    // A finish_reason and no content: the model's real, empty answer, counted and warned about.
    let r = run.result("q-empty", "candidate");
    assert_eq!(
        (r["ok"].as_bool(), r["answer"].as_str()),
        (Some(true), Some("")),
        "{r}"
    );
    let m = &run.summary()["models"]["candidate"]["metrics"];
    assert_eq!(m["empty_answers"], 1, "{m}");
    let stdout = run.stdout();
    assert!(
        stdout.contains("warning: 1 of 3 candidate answers are empty"),
        "{stdout}"
    );
    let md = std::fs::read_to_string(run.dir.as_ref().unwrap().join("report.md")).unwrap();
    assert!(
        md.contains("empty answers") && md.contains("1 of 4"),
        "{md}"
    );
}

#[test]
fn ollama_a_reply_not_marked_done_is_incomplete() {
    let server = MockServer::start(|seen| match (seen.prompt.as_str(), seen.attempt) {
        ("q-cut", 1) => transcript("ollama", "not-done"),
        ("q-cut", _) | ("q-done", _) => transcript("ollama", "done"),
        ("q-never", _) => transcript("ollama", "not-done"),
        (other, _) => panic!("no reply for {other}"),
    });
    let ids = ["q-cut", "q-done", "q-never"];
    let items: Vec<_> = ids.iter().map(|q| item(q, q, &["14"])).collect();
    let base = format!("http://{}", server.addr);
    let project = Project::with_providers(&items, "", |side| {
        format!(
            "kind = \"ollama\"\nmodel = \"{side}\"\nbase_url = \"{base}\"\n[limits]\nretries = 1\n"
        )
    })
    .without_error_ceiling();
    let run = project.run(&[]);
    assert!(run.code() <= 1, "{}", run.stderr());
    let r = run.result("q-done", "candidate");
    assert_eq!(r["answer"], "Refunds take 14 days.", "{r}");
    assert_eq!(r["server_ms"], 151.0, "{r}");
    let r = run.result("q-cut", "candidate");
    assert_eq!(
        (r["ok"].as_bool(), r["attempts"].as_u64()),
        (Some(true), Some(2)),
        "{r}"
    );
    let r = run.result("q-never", "candidate");
    let (kind, _, message) = error_of(&r);
    assert_eq!(kind, "bad_response", "{r}");
    assert!(message.contains("not marked done"), "{message}");
    assert_eq!(r["attempts"], 2, "{r}");
}
