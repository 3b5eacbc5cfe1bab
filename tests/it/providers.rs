//! Every provider kind end to end: the real binary against a loopback server speaking the kind's
//! API (or a small script, for `command`): the request shape, exact usage, error bodies mapped to
//! the spec's kinds, streaming's time to first token, and keys in no output.

use std::time::Duration;

use serde_json::{Value, json};

use crate::server::{MockServer, Reply, Seen};
use crate::support::{Project, Run, assert_exit, error_of, item};

/// A project whose two providers are `provider(side)` (side = "current" / "candidate").
/// The marker is in no file of the run, nor on stdout or stderr.
fn assert_secret_kept(run: &Run, marker: &str) {
    assert!(!run.stdout().contains(marker), "stdout: {}", run.stdout());
    assert!(!run.stderr().contains(marker), "stderr: {}", run.stderr());
    let dir = run.dir.as_ref().expect("a run directory");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !String::from_utf8_lossy(&bytes).contains(marker),
                "{} holds the key",
                path.display()
            );
        }
    }
}

fn tokens(run: &Run, side: &str) -> (u64, u64, bool) {
    let t = &run.summary()["models"][side]["metrics"]["tokens"];
    (
        t["input"].as_u64().unwrap(),
        t["output"].as_u64().unwrap(),
        t["estimated"].as_bool().unwrap(),
    )
}

fn seen_for<'a>(seen: &'a [Seen], model: &str, prompt: &str) -> Vec<&'a Seen> {
    seen.iter()
        .filter(|s| s.model == model && s.prompt == prompt)
        .collect()
}

#[test]
fn anthropic_messages_request_usage_and_error_kinds() {
    const KEY: &str = "sk-ant-MARKER-4c1d9e";
    let server = MockServer::start(|seen| {
        let error =
            |code: u16, kind: &str, message: &str, headers: Vec<(String, String)>| Reply::Json {
                code,
                headers,
                body: json!({"type": "error", "error": {"type": kind, "message": message}})
                    .to_string(),
                delay: Duration::ZERO,
            };
        match seen.prompt.as_str() {
            "q-overloaded" => error(529, "overloaded_error", "Overloaded", vec![]),
            "q-429" => error(
                429,
                "rate_limit_error",
                "Number of requests has exceeded your rate limit",
                vec![("retry-after".into(), "0".into())],
            ),
            "q-401" => error(
                401,
                "authentication_error",
                &format!("invalid x-api-key {KEY}"),
                vec![],
            ),
            // Stopped part-way (no stop_reason), and a real, empty answer (one, no content).
            "q-unfinished" => Reply::json(json!({
                "id": "msg_2", "type": "message", "role": "assistant", "model": seen.model,
                "content": [{"type": "text", "text": "The answer"}],
                "stop_reason": null,
                "usage": {"input_tokens": 11, "output_tokens": 2}
            })),
            "q-empty" => Reply::json(json!({
                "id": "msg_3", "type": "message", "role": "assistant", "model": seen.model,
                "content": [], "stop_reason": "end_turn",
                "usage": {"input_tokens": 11, "output_tokens": 0}
            })),
            _ => Reply::json(json!({
                "id": "msg_1", "type": "message", "role": "assistant", "model": seen.model,
                "content": [
                    {"type": "text", "text": "The answer "},
                    {"type": "tool_use", "id": "t1", "name": "lookup", "input": {}},
                    {"type": "text", "text": "is forty-two."}
                ],
                "stop_reason": "end_turn",
                "usage": {"input_tokens": 11, "output_tokens": 7}
            })),
        }
    });
    let base = format!("http://{}/v1", server.addr);
    let ids = [
        "q-ok",
        "q-ok-2",
        "q-overloaded",
        "q-429",
        "q-401",
        "q-unfinished",
        "q-empty",
    ];
    let items: Vec<_> = ids.iter().map(|q| item(q, q, &["forty-two"])).collect();
    let project = Project::with_providers(&items, "system = \"Answer briefly.\"", |side| {
        format!(
            "kind = \"anthropic\"\nmodel = \"{side}\"\nbase_url = \"{base}\"\napi_key_env = \"GG_ANTHROPIC_KEY\"\ntemperature = 0.0\n[limits]\nretries = 1\n"
        )
    })
    .without_error_ceiling();
    let run = project.run_with_env(&[("GG_ANTHROPIC_KEY", KEY)]);
    // Both models meet the same errors: equal error rates, the gates pass.
    assert_eq!(run.code(), 0, "{}", run.stderr());

    let seen = server.seen();
    let first = seen_for(&seen, "candidate", "q-ok")[0];
    assert_eq!(
        (first.method.as_str(), first.path.as_str()),
        ("POST", "/v1/messages")
    );
    assert_eq!(first.header("x-api-key"), Some(KEY));
    assert_eq!(first.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(
        first.authorization, None,
        "Anthropic takes x-api-key, not a bearer"
    );
    assert_eq!(
        first.json(),
        json!({
            "model": "candidate",
            "max_tokens": 1024,
            "system": "Answer briefly.",
            "messages": [{"role": "user", "content": "q-ok"}],
            "temperature": 0.0
        })
    );

    let r = run.result("q-ok", "candidate");
    assert_eq!(
        r["answer"], "The answer is forty-two.",
        "text blocks only: {r}"
    );
    assert_eq!(
        r["tokens"],
        json!({"input": 11, "output": 7, "estimated": false})
    );
    // Three answered items per model (one of them empty), usage counted exactly.
    assert_eq!(tokens(&run, "candidate"), (33, 14, false));
    assert_eq!(tokens(&run, "current"), (33, 14, false));
    let r = run.result("q-unfinished", "candidate");
    let (kind, _, message) = error_of(&r);
    assert_eq!(kind, "bad_response", "{r}");
    assert!(message.contains("no stop_reason"), "{message}");
    assert_eq!(r["attempts"], 2, "an unfinished message is retried");
    let r = run.result("q-empty", "candidate");
    assert_eq!(
        (r["ok"].as_bool(), r["answer"].as_str()),
        (Some(true), Some("")),
        "{r}"
    );
    assert_eq!(
        run.summary()["models"]["candidate"]["metrics"]["empty_answers"],
        1
    );

    let r = run.result("q-overloaded", "candidate");
    let (kind, status, message) = error_of(&r);
    assert_eq!((kind.as_str(), status), ("http_status", Some(529)), "{r}");
    assert!(
        message.contains("overloaded_error: Overloaded"),
        "{message}"
    );
    assert_eq!(r["attempts"], 2, "529 is retried like a 5xx");
    let r = run.result("q-429", "candidate");
    let (kind, status, message) = error_of(&r);
    assert_eq!((kind.as_str(), status), ("rate_limited", Some(429)), "{r}");
    assert!(message.contains("rate_limit_error"), "{message}");
    assert_eq!(r["attempts"], 2);
    let r = run.result("q-401", "candidate");
    let (kind, status, message) = error_of(&r);
    assert_eq!((kind.as_str(), status), ("http_status", Some(401)), "{r}");
    assert!(
        message.contains("authentication_error") && message.contains("[redacted]"),
        "{message}"
    );
    assert_eq!(r["attempts"], 1, "401 is not retried");
    assert_secret_kept(&run, KEY);
}

#[test]
fn ollama_chat_request_usage_server_time_and_errors() {
    const KEY: &str = "ollama-MARKER-82b7aa";
    let server = MockServer::start(|seen| {
        match seen.prompt.as_str() {
        "q-missing" => Reply::Json {
            code: 404,
            headers: vec![],
            body: json!({"error": format!("model \"{}\" not found, try pulling it first", seen.model)})
                .to_string(),
            delay: Duration::ZERO,
        },
        "q-garbled" => Reply::json(json!({"model": seen.model, "done": true})),
        _ => Reply::json(json!({
            "model": seen.model,
            "created_at": "2026-01-01T00:00:00Z",
            "message": {"role": "assistant", "content": "It is forty-two."},
            "done": true,
            "total_duration": 1_234_500_000u64,
            "prompt_eval_count": 9,
            "eval_count": 3
        })),
    }
    });
    let base = format!("http://{}", server.addr);
    let items: Vec<_> = ["q-a", "q-b", "q-missing", "q-garbled"]
        .iter()
        .map(|q| item(q, q, &["forty-two"]))
        .collect();
    let project = Project::with_providers(&items, "system = \"Be exact.\"", |side| {
        format!(
            "kind = \"ollama\"\nmodel = \"{side}\"\nbase_url = \"{base}\"\napi_key_env = \"GG_OLLAMA_KEY\"\ntemperature = 0.2\nmax_tokens = 64\nseed = 7\n[limits]\nretries = 1\n"
        )
    })
    .without_error_ceiling();
    let run = project.run_with_env(&[("GG_OLLAMA_KEY", KEY)]);
    assert_eq!(run.code(), 0, "{}", run.stderr());

    let seen = server.seen();
    let first = seen_for(&seen, "current", "q-a")[0];
    assert_eq!(first.path, "/api/chat");
    assert_eq!(
        first.authorization.as_deref(),
        Some(&*format!("Bearer {KEY}"))
    );
    assert_eq!(
        first.json(),
        json!({
            "model": "current",
            "messages": [
                {"role": "system", "content": "Be exact."},
                {"role": "user", "content": "q-a"}
            ],
            "stream": false,
            "options": {"temperature": 0.2, "num_predict": 64, "seed": 7}
        })
    );
    let r = run.result("q-a", "current");
    assert_eq!(r["answer"], "It is forty-two.");
    assert_eq!(
        r["tokens"],
        json!({"input": 9, "output": 3, "estimated": false})
    );
    assert_eq!(r["server_ms"], 1234.5, "total_duration in ns -> ms: {r}");
    assert_eq!(tokens(&run, "current"), (18, 6, false));

    let r = run.result("q-missing", "candidate");
    let (kind, status, message) = error_of(&r);
    assert_eq!((kind.as_str(), status), ("http_status", Some(404)), "{r}");
    assert!(
        message.contains("model \"candidate\" not found"),
        "{message}"
    );
    assert_eq!(r["attempts"], 1);
    let r = run.result("q-garbled", "candidate");
    let (kind, _, message) = error_of(&r);
    assert_eq!(kind, "bad_response", "{r}");
    assert!(message.contains("no message"), "{message}");
    assert_secret_kept(&run, KEY);
}

#[test]
fn http_kind_renders_the_body_reads_pointers_and_keeps_header_secrets() {
    const TOKEN: &str = "tok-MARKER-5e0f13";
    let server = MockServer::start(|seen| match seen.prompt.as_str() {
        "q-no-answer" => Reply::json(json!({"out": {}, "usage": {"in": 1, "out": 1}})),
        "q-500" => Reply::Json {
            code: 500,
            headers: vec![],
            body: format!("{{\"detail\": \"upstream refused token {TOKEN}\"}}"),
            delay: Duration::ZERO,
        },
        _ => Reply::json(json!({
            "out": {"text": format!("forty-two, said {}", seen.model)},
            "usage": {"in": 13, "out": 5}
        })),
    });
    let url = format!("http://{}/generate?v=2", server.addr);
    // A question that breaks naive string templating: quotes, a backslash, a line break.
    let tricky = "What is \"x\" \\ y?\nSay it.";
    let items = vec![
        item("a", tricky, &["forty-two"]),
        item("b", "q-no-answer", &["forty-two"]),
        item("c", "q-500", &["forty-two"]),
    ];
    let project = Project::with_providers(&items, "", |side| {
        format!(
            r#"kind = "http"
model = "{side}"
max_tokens = 32

[http]
url = "{url}"
body = '{{"q": {{{{ prompt | json }}}}, "model": {{{{ model | json }}}}, "docs": {{{{ contexts | json }}}}, "max": {{{{ max_tokens | json }}}}, "t": {{{{ temperature | json }}}}}}'
answer = "/out/text"
input_tokens = "/usage/in"
output_tokens = "/usage/out"

[http.headers]
Authorization = "Bearer ${{GG_HTTP_TOKEN}}"
X-Static = "yes"

[limits]
retries = 0
"#
        )
    })
    .without_error_ceiling();
    let run = project.run_with_env(&[("GG_HTTP_TOKEN", TOKEN)]);
    assert_eq!(run.code(), 0, "{}", run.stderr());

    let seen = server.seen();
    let first = seen_for(&seen, "candidate", tricky)[0];
    assert_eq!(
        (first.method.as_str(), first.path.as_str()),
        ("POST", "/generate?v=2")
    );
    assert_eq!(
        first.header("authorization"),
        Some(&*format!("Bearer {TOKEN}"))
    );
    assert_eq!(first.header("x-static"), Some("yes"));
    assert_eq!(first.header("content-type"), Some("application/json"));
    assert_eq!(
        first.json(),
        json!({
            "q": tricky,
            "model": "candidate",
            "docs": [format!("The answer to {tricky} is in this policy text.")],
            "max": 32,
            "t": null
        }),
        "raw body: {}",
        first.body
    );
    let r = run.result("a", "candidate");
    assert_eq!(r["answer"], "forty-two, said candidate");
    assert_eq!(
        r["tokens"],
        json!({"input": 13, "output": 5, "estimated": false})
    );
    assert_eq!(tokens(&run, "candidate"), (13, 5, false));

    let r = run.result("b", "candidate");
    let (kind, _, message) = error_of(&r);
    assert_eq!(kind, "bad_response", "{r}");
    assert!(
        message.contains("/out/text"),
        "names the pointer: {message}"
    );
    let r = run.result("c", "candidate");
    let (kind, status, message) = error_of(&r);
    assert_eq!((kind.as_str(), status), ("http_status", Some(500)), "{r}");
    assert!(message.contains("[redacted]"), "{message}");
    assert_secret_kept(&run, TOKEN);

    // An unset header variable is a configuration error naming it; nothing is sent.
    let before = server.seen().len();
    let output = project
        .cmd()
        .arg("run")
        .env_remove("GG_HTTP_TOKEN")
        .output()
        .unwrap();
    assert_exit(&output, 2);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("GG_HTTP_TOKEN is not set")
            && stderr.contains("http.headers.Authorization"),
        "{stderr}"
    );
    assert_eq!(server.seen().len(), before);
}

/// The script: echoes the request it read (JSON mode) or answers in plain text; sleeps, fails or
/// leaks its secret on demand.
const SCRIPT: &str = r#"
import json, os, sys, time
req = json.load(sys.stdin)
q = req["question"]
if q == "q-sleep":
    with open("sleeper-" + req["model"] + ".pid", "w") as f:
        f.write(str(os.getpid()))
    time.sleep(30)
if q == "q-fail":
    sys.stderr.write("x" * 3000 + "\nsecret " + os.environ["MODEL_SECRET"] + "\nValueError: the model broke\n")
    sys.exit(3)
if "--text" in sys.argv:
    print("plain forty-two for " + req["model"])
else:
    print(json.dumps({"answer": "forty-two " + json.dumps(req), "input_tokens": 21, "output_tokens": 4}))
"#;

#[test]
fn command_kind_json_and_text_output_timeouts_and_failures() {
    const SECRET: &str = "cmd-MARKER-a90b3f";
    let items = vec![
        item("a", "q-a", &["forty-two"]),
        item("b", "q-fail", &["forty-two"]),
        item("c", "q-sleep", &["forty-two"]),
    ];
    let project = Project::with_providers(&items, "system = \"sys\"", |side| {
        let text = if side == "candidate" {
            ", \"--text\""
        } else {
            ""
        };
        let output = if side == "current" {
            "output = \"json\"\n"
        } else {
            ""
        };
        format!(
            "kind = \"command\"\nmodel = \"{side}\"\ntemperature = 0.0\nmax_tokens = 16\n\n[command]\nargv = [\"python3\", \"../model.py\"{text}]\n{output}\n[command.env]\nMODEL_SECRET = \"${{GG_CMD_SECRET}}\"\n\n[limits]\ntimeout_s = 3\nretries = 1\n"
        )
    })
    .without_error_ceiling();
    project.write("model.py", SCRIPT);
    let started = std::time::Instant::now();
    let run = project.run_with_env(&[("GG_CMD_SECRET", SECRET)]);
    let wall = started.elapsed();
    assert_eq!(run.code(), 0, "{}", run.stderr());
    // Two timed-out attempts per model at 3 s, in parallel: nothing waited for the 30 s sleep.
    // (3 s, not less: a loaded 2-core machine takes over a second to start six Pythons at once.)
    assert!(wall < Duration::from_secs(20), "{wall:?}");

    // JSON output: the answer carries the request the program read, and the usage is exact.
    let r = run.result("a", "current");
    let answer = r["answer"].as_str().unwrap();
    let request: Value = serde_json::from_str(answer.strip_prefix("forty-two ").unwrap()).unwrap();
    assert_eq!(
        request,
        json!({
            "model": "current",
            "prompt": "q-a",
            "system": "sys",
            "question": "q-a",
            "context": "The answer to q-a is in this policy text.",
            "contexts": ["The answer to q-a is in this policy text."],
            "temperature": 0.0,
            "max_tokens": 16,
            "seed": null
        })
    );
    assert_eq!(
        r["tokens"],
        json!({"input": 21, "output": 4, "estimated": false})
    );
    assert_eq!(tokens(&run, "current"), (21, 4, false));
    // Plain text output: the line is the answer, tokens are estimated.
    let r = run.result("a", "candidate");
    assert_eq!(r["answer"], "plain forty-two for candidate");
    assert_eq!(r["tokens"]["estimated"], true);

    for side in ["current", "candidate"] {
        let r = run.result("b", side);
        let (kind, _, message) = error_of(&r);
        assert_eq!(kind, "bad_response", "{r}");
        assert!(message.contains("exit status: 3"), "{message}");
        assert!(
            message.contains("ValueError: the model broke"),
            "the end of stderr: {message}"
        );
        assert!(message.contains("secret [redacted]"), "{message}");
        assert!(
            message.len() < 700,
            "stderr is cut: {} bytes",
            message.len()
        );
        assert_eq!(r["attempts"], 1, "a failing program is not retried: {r}");

        let r = run.result("c", side);
        let (kind, _, message) = error_of(&r);
        assert_eq!(kind, "timeout", "{r}");
        assert!(message.contains("killed"), "{message}");
        assert_eq!(r["attempts"], 2, "a timeout is retried");
    }
    // The sleepers were killed, not left behind (they run in the provider file's directory).
    for side in ["current", "candidate"] {
        let pid_file = project.path().join(format!("providers/sleeper-{side}.pid"));
        let pid = std::fs::read_to_string(pid_file).unwrap();
        assert!(
            !std::path::Path::new(&format!("/proc/{}", pid.trim())).exists(),
            "process {pid} still runs"
        );
    }
    assert_secret_kept(&run, SECRET);

    // A program that does not exist is a configuration error, before anything runs.
    project.write(
        "providers/candidate.toml",
        "kind = \"command\"\nmodel = \"m\"\n[command]\nargv = [\"gg-no-such-model-binary\"]\n",
    );
    let output = project
        .cmd()
        .arg("run")
        .env("GG_CMD_SECRET", SECRET)
        .output()
        .unwrap();
    assert_exit(&output, 2);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("command.argv") && stderr.contains("gg-no-such-model-binary"),
        "{stderr}"
    );
}

#[test]
fn openai_streaming_records_time_to_first_token_and_classifies_broken_streams() {
    const KEY: &str = "sk-stream-MARKER-31c4";
    const GAP: Duration = Duration::from_millis(60);
    let server = MockServer::start(|seen| {
        let content = |text: &str| {
            format!(
                "data: {}\n\n",
                json!({"choices": [{"index": 0, "delta": {"content": text}}]})
            )
        };
        match (seen.prompt.as_str(), seen.attempt) {
            ("q-broken-last", _) => Reply::Stream {
                chunks: vec![content("forty"), "data: {\"choices\": [{\"del\n\n".into()],
                gap: Duration::ZERO,
            },
            ("q-cut", _) => Reply::Stream {
                chunks: vec![content("forty"), content("-two")],
                gap: Duration::ZERO,
            },
            ("q-error-event", _) => Reply::Stream {
                chunks: vec![
                    content("forty"),
                    "data: {\"error\": {\"message\": \"engine crashed\", \"code\": 503}}\n\n"
                        .into(),
                ],
                gap: Duration::ZERO,
            },
            _ => Reply::sse(&["The answer ", "is ", "forty-two."], (12, 4), GAP),
        }
    });
    let items: Vec<_> = ["q-a", "q-b", "q-broken-last", "q-cut", "q-error-event"]
        .iter()
        .map(|q| item(q, q, &["forty-two"]))
        .collect();
    let base = server.base_url();
    let project = Project::with_providers(&items, "", |side| {
        format!(
            "kind = \"openai\"\nmodel = \"{side}\"\nbase_url = \"{base}\"\napi_key_env = \"GG_STREAM_KEY\"\nstream = true\n[limits]\nretries = 1\n"
        )
    })
    .without_error_ceiling();
    let run = project.run_with_env(&[("GG_STREAM_KEY", KEY)]);
    assert_eq!(run.code(), 0, "{}", run.stderr());

    let seen = server.seen();
    let body = seen_for(&seen, "current", "q-a")[0].json();
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"], json!({"include_usage": true}));

    for id in ["q-a", "q-b"] {
        let r = run.result(id, "candidate");
        assert_eq!(r["answer"], "The answer is forty-two.", "{r}");
        assert_eq!(
            r["tokens"],
            json!({"input": 12, "output": 4, "estimated": false})
        );
        // Events 60 ms apart: the first content is the 2nd event, [DONE] the 6th.
        let ttft = r["ttft_ms"].as_f64().unwrap();
        let latency = r["latency_ms"].as_f64().unwrap();
        assert!((100.0..250.0).contains(&ttft), "ttft {ttft} ms");
        assert!(latency >= 330.0, "latency {latency} ms");
        assert!(latency - ttft >= 150.0, "ttft {ttft} vs latency {latency}");
    }
    assert_eq!(tokens(&run, "candidate"), (24, 8, false));
    let m = &run.summary()["models"]["candidate"]["metrics"];
    let p50 = m["ttft_ms"]["p50"].as_f64().unwrap();
    assert!(p50 < m["latency_ms"]["p50"].as_f64().unwrap(), "{m}");

    let r = run.result("q-broken-last", "candidate");
    let (kind, _, message) = error_of(&r);
    assert_eq!(kind, "bad_response", "{r}");
    assert!(message.contains("not a completion chunk"), "{message}");
    assert_eq!(r["attempts"], 1);
    let r = run.result("q-cut", "candidate");
    let (kind, _, message) = error_of(&r);
    assert_eq!(kind, "bad_response", "{r}");
    assert!(
        message.contains("end of the body") && message.contains("finish_reason"),
        "{message}"
    );
    assert_eq!(r["attempts"], 2, "a cut-off stream is retried");
    let r = run.result("q-error-event", "candidate");
    let (kind, status, message) = error_of(&r);
    assert_eq!((kind.as_str(), status), ("http_status", Some(503)), "{r}");
    assert!(message.contains("engine crashed"), "{message}");
    assert!(r["ttft_ms"].is_null());
    assert_secret_kept(&run, KEY);
}

/// Options that belong to another kind, or that a kind cannot honour, are errors naming the key.
#[test]
fn kind_specific_options_are_checked_at_load() {
    let d = tempfile::tempdir().unwrap();
    let load = |name: &str, text: &str| {
        let p = d.path().join(name);
        std::fs::write(&p, text).unwrap();
        goldgate::config::ProviderConfig::load(&p)
            .err()
            .map(|e| e.to_string())
    };
    let cases = [
        (
            "kind = \"ollama\"\nmodel = \"m\"\nstream = true\n",
            "field `stream`",
        ),
        (
            "kind = \"anthropic\"\nmodel = \"m\"\napi_key_env = \"K\"\nseed = 1\n",
            "field `seed`",
        ),
        (
            "kind = \"anthropic\"\nmodel = \"m\"\n",
            "field `api_key_env`",
        ),
        (
            "kind = \"ollama\"\nmodel = \"m\"\n[tokenize]\nurl = \"http://x/tokenize\"\n",
            "field `tokenize`",
        ),
        (
            "kind = \"openai\"\nmodel = \"m\"\nbase_url = \"http://x\"\n[tokenize]\nurl = \"http://x/tokenize\"\nfield = \"text\"\n",
            "field `tokenize.field`",
        ),
        ("kind = \"http\"\nmodel = \"m\"\n", "field `http`"),
        (
            "kind = \"http\"\nmodel = \"m\"\n[http]\nurl = \"http://x/\"\nanswer = \"out\"\n",
            "field `http.answer`",
        ),
        (
            "kind = \"http\"\nmodel = \"m\"\n[http]\nurl = \"http://x/\"\nanswer = \"/a\"\ninput_tokens = \"/i\"\n",
            "field `http.input_tokens`",
        ),
        (
            "kind = \"command\"\nmodel = \"m\"\n[command]\nargv = []\n",
            "field `command.argv`",
        ),
        (
            "kind = \"openai\"\nmodel = \"m\"\nbase_url = \"http://x\"\n[command]\nargv = [\"sh\"]\n",
            "field `command`",
        ),
        (
            "kind = \"command\"\nmodel = \"m\"\napi_key_env = \"K\"\n[command]\nargv = [\"sh\"]\n",
            "field `api_key_env`",
        ),
    ];
    for (i, (text, expected)) in cases.iter().enumerate() {
        let msg =
            load(&format!("p{i}.toml"), text).unwrap_or_else(|| panic!("case {i} loaded: {text}"));
        assert!(msg.contains(expected), "case {i}: {msg}");
    }
}

/// `validate --check-reachable` makes the same real call as a run, whatever the kind: a wrong
/// path fails with the field to fix in each kind's own terms, and a right one answers.
#[test]
fn check_reachable_calls_every_http_kind() {
    let server = MockServer::start(|seen| match seen.path.as_str() {
        "/v1/messages" => Reply::json(serde_json::json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": seen.model,
            "content": [{"type": "text", "text": "ok"}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 3, "output_tokens": 1}
        })),
        _ => Reply::Status {
            code: 404,
            retry_after: None,
            body: "404 page not found".into(),
        },
    });
    let items = [item("a", "q", &["ok"])];
    let good = format!("http://{}/v1", server.addr);
    let wrong = format!("http://{}/wrong", server.addr);
    let kinds: [(String, &str); 3] = [
        (
            format!(
                "kind = \"anthropic\"\nmodel = \"m\"\nbase_url = \"{wrong}\"\napi_key_env = \"GG_KEY\"\n"
            ),
            "field `base_url`",
        ),
        (
            format!("kind = \"ollama\"\nmodel = \"m\"\nbase_url = \"{wrong}\"\n"),
            "field `base_url`",
        ),
        (
            format!(
                "kind = \"http\"\nmodel = \"m\"\n[http]\nurl = \"{wrong}/x\"\nbody = '{{\"q\": {{{{ prompt | json }}}}}}'\nanswer = \"/out\"\n"
            ),
            "field `http.url`",
        ),
    ];
    for (provider, field) in &kinds {
        let project = Project::with_providers(&items, "", |_| provider.clone());
        let out = project.check_reachable(&[("GG_KEY", "k-123")]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{provider}: {err}");
        assert!(
            err.contains(&format!("providers/candidate.toml: {field}")) && err.contains("404"),
            "{provider}: {err}"
        );
    }
    let project = Project::with_providers(&items, "", |_| {
        format!(
            "kind = \"anthropic\"\nmodel = \"m\"\nbase_url = \"{good}\"\napi_key_env = \"GG_KEY\"\n"
        )
    });
    let out = project.check_reachable(&[("GG_KEY", "k-123")]);
    assert_exit(&out, 0);
    assert!(String::from_utf8_lossy(&out.stdout).contains("answered a test call"));
}
