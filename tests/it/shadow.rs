//! `goldgate shadow`: logged production traffic replayed through the loopback server, in every
//! log format, with the noise baseline, redaction, resume and the report in a browser.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::server::{MockServer, Reply};
use crate::support::{Project, Run};

/// The answer production gave to question `i`; the replays give it too, but for their noise.
fn canonical(i: usize) -> String {
    format!("The code of order {i} is C{}.", i * 7 % 97)
}

/// A reworded answer with the same fact, far enough from the canonical one in words that it
/// does not count as agreeing (token-set similarity below 0.6).
fn reworded(i: usize) -> String {
    format!(
        "Looking at our records, I believe order {i} was assigned C{} yesterday.",
        i * 7 % 97
    )
}

fn question(i: usize) -> String {
    format!("What is the code of order {i}?")
}

fn number_in(prompt: &str) -> Option<usize> {
    prompt
        .split(|c: char| !c.is_ascii_digit())
        .find(|s| !s.is_empty())
        .and_then(|s| s.parse().ok())
}

/// A stable pseudo-random number in 0..100 for (model, question): each model's sampling noise.
fn draw(model: &str, i: usize) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in model.bytes().chain(i.to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h >> 11) % 100
}

/// How the server's models answer: `current` and `noisy` reword 10% of their answers
/// independently (sampling noise); `refuser` refuses 20% of requests and rewords 10%.
fn answer(seen: &crate::server::Seen) -> Reply {
    let body = seen.json();
    if body.get("tools").is_some() {
        return Reply::json(json!({
            "id": "c", "object": "chat.completion", "model": seen.model,
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": null,
                "tool_calls": [{"id": "call_9", "type": "function", "function": {
                    "name": "lookup_order", "arguments": "{\"order\": 7}"}}]}}],
            "usage": {"prompt_tokens": 30, "completion_tokens": 8}
        }));
    }
    let Some(i) = number_in(&seen.prompt) else {
        return Reply::answer("I do not know.");
    };
    let d = draw(&seen.model, i);
    if seen.model == "refuser" && d < 20 {
        return Reply::answer("I'm sorry, but I can't help with that.");
    }
    if seen.prompt.contains("echo") {
        // A model that repeats what it was told, personal data included.
        return Reply::answer(&format!("You said: {}", seen.prompt));
    }
    if d % 10 == 3 {
        Reply::answer(&reworded(i))
    } else {
        Reply::answer(&canonical(i))
    }
}

/// One request/response log line.
fn rr_line(i: usize, question: &str, answer: &str, route: &str) -> Value {
    json!({
        "id": format!("req-{i}"),
        "timestamp": "2026-11-01T10:00:00Z",
        "latency_ms": 800 + i % 50,
        "metadata": {"route": route},
        "request": {"model": "prod-model", "temperature": 0.3,
                    "messages": [{"role": "system", "content": "Answer briefly."},
                                 {"role": "user", "content": question}]},
        "response": {"id": format!("cmpl-{i}"), "object": "chat.completion", "model": "prod-model",
                     "choices": [{"index": 0, "finish_reason": "stop",
                                  "message": {"role": "assistant", "content": answer}}],
                     "usage": {"prompt_tokens": 20, "completion_tokens": 12}},
    })
}

fn write_lines(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

/// The default shadow gates but for latency, which is absolute here: sub-millisecond loopback
/// latencies are noise, and a ratio of two noises would make a test that can fail by chance.
const GATES: &str = r#"
[[shadow.gate]]
metric = "accuracy"
min_ratio = 0.95
[[shadow.gate]]
metric = "error_rate"
max_ratio = 1.0
[[shadow.gate]]
metric = "refusal_rate"
max_ratio = 1.0
[[shadow.gate]]
metric = "empty_rate"
max_ratio = 1.0
[[shadow.gate]]
metric = "latency_p95_ms"
max = 5000
"#;

/// A project whose current model is `current` and candidate `candidate` on the server, with
/// `extra` TOML appended to goldgate.toml ([`GATES`] when it names no gate).
fn project(server: &MockServer, candidate: &str, extra: &str) -> Project {
    let extra = if extra.contains("[[shadow.gate]]") {
        extra.to_owned()
    } else {
        format!("{extra}\n{GATES}")
    };
    let p = Project {
        dir: tempfile::tempdir().unwrap(),
    };
    for (side, model) in [("current", "current"), ("candidate", candidate)] {
        p.write(
            &format!("providers/{side}.toml"),
            &format!(
                "kind = \"openai\"\nmodel = \"{model}\"\nbase_url = \"{}\"\n\n[pricing]\ninput = 2.0\noutput = 8.0\n\n[limits]\nconcurrency = 16\nretries = 1\n",
                server.base_url()
            ),
        );
    }
    p.write(
        "goldgate.toml",
        &format!(
            "name = \"support-bot\"\ngolden = \"goldens/none\"\ncurrent = \"providers/current.toml\"\ncandidate = \"providers/candidate.toml\"\n{extra}\n"
        ),
    );
    p
}

fn shadow(p: &Project, args: &[&str]) -> Run {
    let out = p.cmd().arg("shadow").args(args).output().unwrap();
    Run::new(p.path(), out)
}

/// A log of `n` requests whose production answers are the canonical ones (production's own
/// noise: 10% reworded, as any sample of this model).
fn plain_log(p: &Project, n: usize) -> PathBuf {
    let lines: Vec<String> = (0..n)
        .map(|i| {
            let a = if draw("production", i) % 10 == 3 {
                reworded(i)
            } else {
                canonical(i)
            };
            rr_line(
                i,
                &question(i),
                &a,
                if i % 2 == 0 { "billing" } else { "shipping" },
            )
            .to_string()
        })
        .collect();
    let path = p.path().join("traffic.jsonl");
    write_lines(&path, &lines);
    path
}

#[test]
fn a_candidate_that_is_the_current_model_with_sampling_noise_passes_against_the_noise_baseline() {
    const N: usize = 2400;
    let server = MockServer::start(answer);
    let p = project(&server, "noisy", "");
    // Enough requests for a 5% margin to be decided on noise of 10% a side (about 1,850 for
    // the paired interval at these rates).
    plain_log(&p, N);
    let run = shadow(&p, &["--log", "traffic.jsonl", "--quiet"]);
    let s = run.summary();
    assert_eq!(run.code(), 0, "{}\n{}", run.stderr(), s["gates"]);
    assert_eq!(s["shadow"]["counts"]["replayed"], N);
    crate::schema::assert_valid(&s, "a shadow run's summary.json");
    assert_eq!(s["shadow"]["noise_baseline"], true);
    for side in ["current", "candidate"] {
        let acc = s["models"][side]["metrics"]["accuracy"].as_f64().unwrap();
        // Both replays disagree with production's sample about as often: the noise.
        assert!((0.70..0.92).contains(&acc), "{side} agreement {acc}");
    }
    let gate = s["gates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["metric"] == "accuracy")
        .unwrap();
    assert_eq!(gate["outcome"], "pass", "{gate}");
    // N requests to each model, interleaved, each with production's messages and parameters.
    let seen = server.seen();
    assert_eq!(seen.len(), 2 * N);
    let body = seen[0].json();
    assert_eq!(
        body["temperature"], 0.3,
        "the logged parameters are replayed"
    );
    assert_eq!(body["messages"][0]["content"], "Answer briefly.");
    assert!(body["model"] == "current" || body["model"] == "noisy");

    // Without the noise baseline, the same candidate judged on an absolute bound fails: the
    // differences were the sampling noise every replay shows.
    let p2 = project(
        &server,
        "noisy",
        "[[shadow.gate]]\nmetric = \"accuracy\"\nmin = 0.95\n",
    );
    plain_log(&p2, N);
    let run = shadow(&p2, &["--log", "traffic.jsonl", "--no-current", "--quiet"]);
    assert_eq!(run.code(), 1, "{}\n{}", run.stdout(), run.stderr());
    // Production's logged answers stand as the current side: complete, agreeing with itself,
    // its latency as logged; only the candidate was called.
    let s2 = run.summary();
    assert_eq!(s2["status"], "complete");
    assert!(
        s2["models"]["current"]["provider"]
            .as_str()
            .unwrap()
            .contains("production")
    );
    assert_eq!(s2["models"]["current"]["metrics"]["accuracy"], 1.0);
    assert!(
        s2["models"]["current"]["metrics"]["latency_ms"]["p50"]
            .as_f64()
            .unwrap()
            >= 800.0
    );
    assert_eq!(server.seen().len(), 2 * N + N);
    // And ratio gates without a baseline are refused before any call.
    let before = server.seen().len();
    let run = shadow(&p, &["--log", "traffic.jsonl", "--no-current", "--quiet"]);
    assert_eq!(run.code(), 2, "{}", run.stderr());
    assert!(run.stderr().contains("--no-current"), "{}", run.stderr());
    assert_eq!(server.seen().len(), before);
}

#[test]
fn a_candidate_that_refuses_fails_the_refusal_gate() {
    let server = MockServer::start(answer);
    let p = project(&server, "refuser", "");
    plain_log(&p, 400);
    let run = shadow(&p, &["--log", "traffic.jsonl", "--quiet"]);
    assert_eq!(run.code(), 1, "{}\n{}", run.stdout(), run.stderr());
    let s = run.summary();
    let by = |m: &str| {
        s["gates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["metric"] == m)
            .unwrap()
            .clone()
    };
    assert_eq!(by("refusal_rate")["outcome"], "fail");
    let rate = s["models"]["candidate"]["metrics"]["shadow"]["refusal_rate"]
        .as_f64()
        .unwrap();
    assert!((0.12..0.28).contains(&rate), "{rate}");
    assert_eq!(
        s["models"]["current"]["metrics"]["shadow"]["refusal_rate"],
        0.0
    );
}

/// Every format, gzip, OTel spans with and without text, tool calls, malformed lines.
#[test]
fn every_log_format_is_replayed_and_what_cannot_be_is_counted() {
    let server = MockServer::start(answer);
    let p = project(
        &server,
        "noisy",
        "[[shadow.gate]]\nmetric = \"error_rate\"\nmax_ratio = 1.0\n",
    );
    let dir = p.path();

    // Request/response lines, gzip-compressed, one malformed, one with a tool call.
    let mut lines: Vec<String> = (0..6)
        .map(|i| rr_line(i, &question(i), &canonical(i), "rr").to_string())
        .collect();
    lines.push("{\"request\": {\"model\": \"prod\", \"messages\": [".to_owned());
    lines.push(
        json!({
            "id": "tool-1",
            "request": {"model": "prod-model",
                "messages": [{"role": "user", "content": "Where is my order 7?"}],
                "tools": [{"type": "function", "function": {"name": "lookup_order",
                    "parameters": {"type": "object", "properties": {"order": {"type": "integer"}}}}}]},
            "response": {"object": "chat.completion", "model": "prod-model",
                "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                    "role": "assistant", "content": null,
                    "tool_calls": [{"id": "call_1", "type": "function",
                        "function": {"name": "lookup_order", "arguments": "{\"order\":7}"}}]}}]},
        })
        .to_string(),
    );
    // A retrieval turn: the tool's result is the context (the default rule), so the answer is
    // scored for faithfulness to it.
    lines.push(
        json!({
            "id": "rag-1",
            "request": {"model": "prod-model", "messages": [
                {"role": "user", "content": question(30)},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_2", "type": "function",
                    "function": {"name": "search_orders", "arguments": "{\"order\":30}"}}]},
                {"role": "tool", "tool_call_id": "call_2", "content": canonical(30)}]},
            "response": {"object": "chat.completion", "model": "prod-model",
                "choices": [{"index": 0, "finish_reason": "stop",
                    "message": {"role": "assistant", "content": canonical(30)}}]},
        })
        .to_string(),
    );
    let gz = std::fs::File::create(dir.join("gateway.jsonl.gz")).unwrap();
    let mut enc = flate2::write::GzEncoder::new(gz, flate2::Compression::default());
    enc.write_all((lines.join("\n") + "\n").as_bytes()).unwrap();
    enc.finish().unwrap();

    // OpenAI Batch input and output files.
    let batch_in: Vec<String> = (10..14)
        .map(|i| {
            json!({"custom_id": format!("b{i}"), "method": "POST", "url": "/v1/chat/completions",
                   "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": question(i)}]}})
            .to_string()
        })
        .collect();
    let batch_out: Vec<String> = (10..14)
        .map(|i| {
            json!({"id": format!("batch_req_{i}"), "custom_id": format!("b{i}"), "error": null,
                   "response": {"status_code": 200, "request_id": "r", "body": {
                       "object": "chat.completion", "model": "gpt-4o-mini",
                       "choices": [{"index": 0, "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": canonical(i)}}]}}})
            .to_string()
        })
        .collect();
    write_lines(&dir.join("batch_input.jsonl"), &batch_in);
    write_lines(&dir.join("batch_output.jsonl"), &batch_out);

    // OTel GenAI spans: two with message text, one without (opt-in in the conventions).
    let attr = |k: &str, v: Value| match v {
        Value::String(s) => json!({"key": k, "value": {"stringValue": s}}),
        Value::Number(n) => json!({"key": k, "value": {"intValue": n.to_string()}}),
        other => json!({"key": k, "value": other}),
    };
    let span = |id: &str, attrs: Vec<Value>| {
        json!({"traceId": "5b8efff798038103d269b633813fc60c", "spanId": id, "name": "chat",
               "kind": 3, "startTimeUnixNano": "1764000000000000000",
               "endTimeUnixNano": "1764000000900000000", "attributes": attrs, "status": {}})
    };
    let with_text = |i: usize| {
        let input = json!([{"role": "user", "parts": [{"type": "text", "content": question(i)}]}]);
        let output = json!([{"role": "assistant", "finish_reason": "stop",
                             "parts": [{"type": "text", "content": canonical(i)}]}]);
        span(
            &format!("s{i}"),
            vec![
                attr("gen_ai.operation.name", json!("chat")),
                attr("gen_ai.request.model", json!("gpt-4o")),
                attr("gen_ai.usage.input_tokens", json!(20)),
                attr("gen_ai.input.messages", json!(input.to_string())),
                attr("gen_ai.output.messages", json!(output.to_string())),
            ],
        )
    };
    let no_text = span(
        "s99",
        vec![
            attr("gen_ai.operation.name", json!("chat")),
            attr("gen_ai.request.model", json!("gpt-4o")),
        ],
    );
    let otel = json!({"resourceSpans": [{"resource": {"attributes": []},
        "scopeSpans": [{"scope": {"name": "genai"}, "spans": [with_text(20), with_text(21), no_text]}]}]});
    write_lines(&dir.join("spans.json"), &[otel.to_string()]);

    let run = shadow(
        &p,
        &[
            "--log",
            "gateway.jsonl.gz",
            "batch_input.jsonl",
            "batch_output.jsonl",
            "spans.json",
            "--quiet",
        ],
    );
    assert_eq!(run.code(), 0, "{}\n{}", run.stdout(), run.stderr());
    let s = run.summary();
    crate::schema::assert_valid(&s, "a shadow run's summary.json");
    let c = &s["shadow"]["counts"];
    assert_eq!(c["replayed"], 6 + 2 + 4 + 2, "{c}");
    assert_eq!(c["malformed"], 1, "{c}");
    assert_eq!(c["unusable"], 1, "{c}");
    assert!(
        run.stderr().contains("gateway.jsonl.gz:7"),
        "the malformed line is named with its file and line: {}",
        run.stderr()
    );
    assert_eq!(s["shadow"]["production"]["tool_calls"], 1);
    // The tool call was replayed with the tools and never executed; the candidate's call is the
    // same call, so the answers match exactly.
    let results = run.results();
    let tool = results
        .iter()
        .find(|r| {
            r["model"] == "candidate" && r["answer"].as_str().unwrap().starts_with("lookup_order")
        })
        .expect("the tool-call request was replayed");
    assert_eq!(tool["shadow"]["exact"], true, "{tool}");
    let rag: Vec<&Value> = results
        .iter()
        .filter(|r| r["faithfulness"].is_object())
        .collect();
    assert_eq!(
        rag.len(),
        2,
        "the retrieval turn, on both models, and only it"
    );
    assert!(
        rag.iter()
            .all(|r| r["faithfulness"]["score"].as_f64().unwrap() >= 4.0)
    );

    // --strict makes the malformed line fatal; an unknown format and a log without a usable
    // request exit 2, naming what was found.
    let run = shadow(&p, &["--log", "gateway.jsonl.gz", "--strict", "--quiet"]);
    assert_eq!(run.code(), 2, "{}", run.stderr());
    std::fs::write(dir.join("notes.txt"), "just some text\n").unwrap();
    let run = shadow(&p, &["--log", "notes.txt", "--quiet"]);
    assert_eq!(run.code(), 2, "{}", run.stderr());
    assert!(run.stderr().contains("notes.txt"), "{}", run.stderr());
    write_lines(
        &dir.join("only-spans.json"),
        &[json!({"resourceSpans": [{"scopeSpans": [{"spans": [
        span("x1", vec![attr("gen_ai.operation.name", json!("chat"))])]}]}]})
        .to_string()],
    );
    let run = shadow(&p, &["--log", "only-spans.json", "--quiet"]);
    assert_eq!(run.code(), 2, "{}", run.stderr());
    assert!(
        run.stderr().contains("no usable request"),
        "{}",
        run.stderr()
    );
}

const EMAIL: &str = "jane.roe@example.org";
const PHONE: &str = "+44 20 7946 0958";
const CARD: &str = "4111 1111 1111 1111";
const KEY: &str = "sk-proj-Abc123Def456Ghi789Jkl012Mno345";
/// A shop's own identifier, redacted by a pattern in `[shadow] redact`.
const MEMBER: &str = "MBR-884213";

#[test]
fn personal_data_in_the_logs_reaches_no_file_of_the_run() {
    let server = MockServer::start(answer);
    let p = project(&server, "noisy", "[shadow]\nredact = ['MBR-\\d{6}']\n");
    let mut lines: Vec<String> = (0..8)
        .map(|i| {
            // The models repeat the prompt ("echo"): their answers carry the data too.
            let q = format!(
                "echo order {i}: I am {EMAIL} ({MEMBER}), call {PHONE}, card {CARD}, my key {KEY}"
            );
            let a = format!("Thanks {EMAIL}, we will call {PHONE} about card {CARD}.");
            rr_line(i, &q, &a, EMAIL).to_string()
        })
        .collect();
    // Data inside JSON text: tool-call arguments (a `\n` escape before the number) and a tool
    // result; production answered with the call.
    lines.push(
        json!({
            "id": "tool-pii",
            "request": {"model": "prod-model", "messages": [
                {"role": "user", "content": "echo order 99: note my number"},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
                    "function": {"name": "save_note", "arguments": format!("{{\"note\":\"hi\\n{PHONE}\"}}")}}]},
                {"role": "tool", "tool_call_id": "c1", "content": format!("{{\"saved\":\"card {CARD}\\n{EMAIL}\"}}")}]},
            "response": {"object": "chat.completion", "model": "prod-model",
                "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                    "role": "assistant", "content": null,
                    "tool_calls": [{"id": "c2", "type": "function", "function": {
                        "name": "save_note", "arguments": format!("{{\"note\":\"x\\n{PHONE}\"}}")}}]}}]},
            "metadata": {"route": EMAIL},
        })
        .to_string(),
    );
    write_lines(&p.path().join("traffic.jsonl"), &lines);
    let run = shadow(
        &p,
        &[
            "--log",
            "traffic.jsonl",
            "--sample",
            "9",
            "--stratify",
            "route",
            "--cache",
            "--verbose",
            "--quiet",
        ],
    );
    assert!(matches!(run.code(), 0 | 1 | 4), "{}", run.stderr());
    let dir = run.dir.clone().expect("a run directory");
    for planted in [EMAIL, PHONE, CARD, KEY, MEMBER] {
        assert!(
            !run.stdout().contains(planted) && !run.stderr().contains(planted),
            "{planted} printed"
        );
    }
    // The models were sent the data as logged: the replay asks what production asked.
    assert!(server.seen().iter().any(|s| s.body.contains(EMAIL)));
    let mut files = 0;
    // The run directory, and the response cache beside it.
    for entry in walk(&p.path().join("reports")) {
        let text = String::from_utf8_lossy(&std::fs::read(&entry).unwrap()).into_owned();
        for planted in [
            EMAIL,
            PHONE,
            CARD,
            KEY,
            MEMBER,
            "4111111111111111",
            "7946 0958",
        ] {
            assert!(
                !text.contains(planted),
                "{planted} reached {}",
                entry.display()
            );
        }
        files += 1;
    }
    assert!(
        files >= 6,
        "run.json, items, results, summary and reports: {files}"
    );
    let results = std::fs::read_to_string(dir.join("results.jsonl")).unwrap();
    assert!(
        results.contains("[email]"),
        "the echoed answers were redacted"
    );
    assert!(
        !dir.join("requests.jsonl").exists(),
        "no raw log text without --keep-raw"
    );
    let s = run.summary();
    crate::schema::assert_valid(&s, "a sampled shadow run's summary.json");
    // The sample frame is recorded, its stratum (an e-mail address here) redacted too.
    assert_eq!(
        s["shadow"]["counts"]["strata"][0]["value"], "[email]",
        "{}",
        s["shadow"]
    );
    assert_eq!(s["shadow"]["counts"]["strata"][0]["kept"], 9);
    assert_eq!(s["shadow"]["counts"]["strata"][0]["seen"], 9);
    assert_eq!(s["shadow"]["production"]["tool_calls"], 1);
    assert!(
        s["shadow"]["redactions"]["email"].as_u64().unwrap() >= 8,
        "{}",
        s["shadow"]
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Killed mid-replay, `--resume` reads the logs again and replays only what is missing.
#[test]
fn a_killed_shadow_run_resumes_without_asking_twice() {
    const N: usize = 60;
    let server = MockServer::start(|seen| {
        std::thread::sleep(Duration::from_millis(10));
        answer(seen)
    });
    let p = project(
        &server,
        "noisy",
        "concurrency = 2\n[[shadow.gate]]\nmetric = \"error_rate\"\nmax_ratio = 1.0\n",
    );
    plain_log(&p, N);
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("goldgate"))
        .args(["shadow", "--log", "traffic.jsonl", "--quiet"])
        .current_dir(p.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let dir = crate::support::run_dir_once_answered(&p.path().join("reports"), 10);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!dir.join("summary.json").exists());
    let asked = server.seen().len();
    assert!(asked < 2 * N, "killed before the end");

    let out = p
        .cmd()
        .arg("shadow")
        .arg("--resume")
        .arg(&dir)
        .output()
        .unwrap();
    let run = Run::new(p.path(), out);
    assert_eq!(run.code(), 0, "{}\n{}", run.stdout(), run.stderr());
    let results = run.results();
    let mut keys: Vec<(String, String)> = results
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_owned(),
                r["model"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(
        keys.len(),
        2 * N,
        "every request answered once by each model"
    );
    // At most the requests in flight at the kill were asked twice.
    assert!(server.seen().len() <= 2 * N + 4, "{}", server.seen().len());
    // `goldgate run --resume` is not how a shadow run is finished.
    let out = p
        .cmd()
        .arg("run")
        .arg("--resume")
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// The shadow report as a person sees it: opened in headless Chromium.
#[test]
fn the_shadow_report_opens_in_a_browser() {
    let server = MockServer::start(answer);
    let p = project(&server, "refuser", "");
    plain_log(&p, 60);
    let run = shadow(&p, &["--log", "traffic.jsonl", "--quiet"]);
    let dir = run.dir.clone().expect("a run directory");
    let Some(dom) = crate::browser::dom(&dir.join("report.html"), "") else {
        return;
    };
    assert!(
        dom.contains("shadow replay"),
        "the page says it is a shadow run"
    );
    assert!(dom.contains("id=\"shadow\""), "the shadow section is shown");
    assert!(dom.contains("noise baseline"));
    assert!(
        dom.contains("never gated"),
        "logged latency is shown, not gated"
    );
    assert!(dom.contains("refusal rate") || dom.contains("refusal_rate"));
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(md.contains("Shadow replay of 60 logged request(s)"), "{md}");
    for row in ["refusal rate", "exact match", "length ratio", "empty rate"] {
        assert!(
            md.contains(&format!("| {row}")),
            "the metrics table shows {row}: {md}"
        );
    }
}

/// `--shard K/N` splits the replay; `goldgate merge` gives the unsharded replay's figures.
#[test]
fn shards_of_a_shadow_run_merge_into_the_whole_replay() {
    let server = MockServer::start(answer);
    let p = project(&server, "refuser", "");
    plain_log(&p, 80);
    let whole = shadow(&p, &["--log", "traffic.jsonl", "--quiet"]).summary();
    let dirs: Vec<PathBuf> = (1..=2)
        .map(|k| {
            let run = shadow(
                &p,
                &[
                    "--log",
                    "traffic.jsonl",
                    "--shard",
                    &format!("{k}/2"),
                    "--quiet",
                ],
            );
            let n = run.summary()["shadow"]["counts"]["replayed"]
                .as_u64()
                .unwrap();
            assert!(n > 10 && n < 70, "shard {k} replays part of the log: {n}");
            run.dir.clone().unwrap()
        })
        .collect();
    let out = p
        .cmd()
        .arg("merge")
        .args(&dirs)
        .arg("--quiet")
        .output()
        .unwrap();
    let merged = Run::new(p.path(), out);
    let m = merged.summary();
    assert_eq!(m["shadow"]["counts"]["replayed"], 80);
    assert_eq!(m["shadow"]["production"], whole["shadow"]["production"]);
    for side in ["current", "candidate"] {
        for metric in ["accuracy", "error_rate"] {
            assert_eq!(
                m["models"][side]["metrics"][metric], whole["models"][side]["metrics"][metric],
                "{side} {metric}"
            );
        }
        // Exact but for the mean length ratio's sum, added up in another order.
        let (a, b) = (
            &m["models"][side]["metrics"]["shadow"],
            &whole["models"][side]["metrics"]["shadow"],
        );
        for key in [
            "refusal_rate",
            "empty_rate",
            "exact_match",
            "exact_compared",
        ] {
            assert_eq!(a[key], b[key], "{side} {key}");
        }
        let ratio = |v: &Value| v["length_ratio"].as_f64().unwrap();
        assert!((ratio(a) - ratio(b)).abs() < 1e-12, "{side} length ratio");
    }
    assert_eq!(m["verdict"], whole["verdict"]);
}

/// `--cache`: a second replay of the same log is served from the response cache; a gate that
/// does not parse is named in `[[shadow.gate]]` and nothing is called.
#[test]
fn a_repeated_replay_is_served_from_the_cache_and_bad_gates_are_named() {
    let server = MockServer::start(answer);
    let p = project(&server, "noisy", "");
    plain_log(&p, 30);
    let first = shadow(&p, &["--log", "traffic.jsonl", "--cache", "--quiet"]);
    // 30 requests decide little: pass or inconclusive, and the cached replay the same.
    assert!(matches!(first.code(), 0 | 4), "{}", first.stderr());
    let asked = server.seen().len();
    assert_eq!(asked, 60);
    let second = shadow(&p, &["--log", "traffic.jsonl", "--cache", "--quiet"]);
    assert_eq!(second.code(), first.code(), "{}", second.summary()["gates"]);
    assert_eq!(
        server.seen().len(),
        asked,
        "every answer came from the cache"
    );
    assert_eq!(
        second.summary()["models"]["candidate"]["metrics"]["cached"],
        30
    );
    assert_ne!(first.dir, second.dir, "a run never overwrites another");

    let bad = project(
        &server,
        "noisy",
        "[[shadow.gate]]\nmetric = \"refusal_rte\"\nmax = 0.1\n",
    );
    plain_log(&bad, 5);
    let run = shadow(&bad, &["--log", "traffic.jsonl", "--quiet"]);
    assert_eq!(run.code(), 2, "{}", run.stderr());
    assert!(run.stderr().contains("shadow.gate[0]"), "{}", run.stderr());
    assert!(
        run.stderr().contains("refusal_rate"),
        "the fix names the metric: {}",
        run.stderr()
    );
    assert_eq!(server.seen().len(), asked);
}

/// A shard that holds none of a small selection is an empty replay, not bad input.
#[test]
fn an_empty_shard_is_an_empty_replay() {
    let server = MockServer::start(answer);
    let p = project(&server, "noisy", "");
    plain_log(&p, 2);
    let mut empty = 0;
    for k in 1..=8 {
        let run = shadow(
            &p,
            &[
                "--log",
                "traffic.jsonl",
                "--shard",
                &format!("{k}/8"),
                "--quiet",
            ],
        );
        assert!(matches!(run.code(), 0 | 4), "shard {k}: {}", run.stderr());
        let s = run.summary();
        if s["shadow"]["counts"]["replayed"] == 0 {
            empty += 1;
            assert_eq!(s["status"], "complete");
        }
    }
    assert!(empty >= 6, "{empty}");
    assert_eq!(
        server.seen().len(),
        4,
        "each request replayed once, by both models"
    );
}
