//! The runner against a misbehaving server: every (item, model) ends with exactly one result line,
//! errors are classified, counts in summary.json match, latency excludes queueing.

use std::collections::HashMap;
use std::time::Duration;

use crate::server::{MockServer, Reply};
use crate::support::{Project, assert_exit, item};

/// The candidate meets every kind of fault; the current model answers normally.
#[test]
fn faults_are_retried_classified_and_counted() {
    let server = MockServer::start(|seen| {
        let good = Reply::answer("The answer is forty-two.");
        if seen.model == "current" {
            return good;
        }
        match (seen.prompt.as_str(), seen.attempt) {
            ("q-429", 1) => Reply::Status {
                code: 429,
                retry_after: Some("1".into()),
                body: "{\"error\": \"slow down\"}".into(),
            },
            ("q-503-once", 1) => Reply::Status {
                code: 503,
                retry_after: None,
                body: "unavailable".into(),
            },
            ("q-500", _) => Reply::Status {
                code: 500,
                retry_after: None,
                body: "{\"error\": \"boom\"}".into(),
            },
            ("q-401", _) => Reply::Status {
                code: 401,
                retry_after: None,
                body: "{\"error\": \"bad key\"}".into(),
            },
            ("q-broken", _) => Reply::BrokenJson,
            ("q-empty", _) => Reply::NoChoices,
            ("q-hang", _) => Reply::Hang(Duration::from_secs(5)),
            ("q-drop", _) => Reply::DropMidBody,
            _ => good,
        }
    });
    let ids = [
        "q-ok",
        "q-429",
        "q-503-once",
        "q-500",
        "q-401",
        "q-broken",
        "q-empty",
        "q-hang",
        "q-drop",
    ];
    let items: Vec<_> = ids.iter().map(|id| item(id, id, &["forty-two"])).collect();
    let project = Project::openai(
        &server.base_url(),
        &items,
        "concurrency = 4\ntimeout_s = 0.5\nretries = 2",
    )
    .without_error_ceiling();
    let run = project.run(&[]);
    assert_eq!(run.code(), 1, "the error-rate gate fails: {}", run.stderr());

    // Exactly one line per (item, model).
    let results = run.results();
    assert_eq!(results.len(), ids.len() * 2);
    let mut per_key: HashMap<(String, String), usize> = HashMap::new();
    for r in &results {
        *per_key
            .entry((
                r["id"].as_str().unwrap().into(),
                r["model"].as_str().unwrap().into(),
            ))
            .or_default() += 1;
    }
    assert!(per_key.values().all(|&n| n == 1), "{per_key:?}");

    // Retried and recovered.
    let r = run.result("q-429", "candidate");
    assert_eq!(
        (r["ok"].as_bool(), r["attempts"].as_u64()),
        (Some(true), Some(2))
    );
    let r = run.result("q-503-once", "candidate");
    assert_eq!(
        (r["ok"].as_bool(), r["attempts"].as_u64()),
        (Some(true), Some(2))
    );
    // Retry-After: 1 was honoured.
    let seen = server.seen();
    let times: Vec<_> = seen
        .iter()
        .filter(|s| s.model == "candidate" && s.prompt == "q-429")
        .map(|s| s.at)
        .collect();
    assert_eq!(times.len(), 2);
    assert!(
        times[1] - times[0] >= Duration::from_millis(990),
        "{:?}",
        times[1] - times[0]
    );

    // Failed for good, each with its kind, and retried only when worth it.
    let expect = [
        ("q-500", "http_status", Some(500u16), 3),
        ("q-401", "http_status", Some(401), 1),
        ("q-broken", "bad_response", None, 1),
        ("q-empty", "bad_response", None, 1),
        ("q-hang", "timeout", None, 3),
        ("q-drop", "bad_response", None, 3),
    ];
    for (id, kind, status, attempts) in expect {
        let r = run.result(id, "candidate");
        assert_eq!(r["ok"], false, "{id}");
        assert_eq!(r["error"]["kind"], kind, "{id}: {r}");
        assert_eq!(
            r["error"]["status"].as_u64(),
            status.map(u64::from),
            "{id}: {r}"
        );
        assert_eq!(r["attempts"], attempts, "{id}: {r}");
        assert_eq!(r["answer"], serde_json::Value::Null);
        let n = seen
            .iter()
            .filter(|s| s.model == "candidate" && s.prompt == id)
            .count();
        assert_eq!(n, attempts as usize, "{id}: the server saw every attempt");
    }

    let s = run.summary();
    let cand = &s["models"]["candidate"]["metrics"];
    assert_eq!(cand["requests"], 9);
    assert_eq!(cand["errors"], 6);
    assert_eq!(cand["errors_by_kind"]["http_status"], 2);
    // Broken JSON, no choices, and the body cut off mid-way (retried, unlike the other two).
    assert_eq!(cand["errors_by_kind"]["bad_response"], 3);
    assert_eq!(cand["errors_by_kind"]["timeout"], 1);
    assert_eq!(cand["errors_by_kind"]["connect"], 0);
    assert_eq!(cand["errors_by_kind"]["rate_limited"], 0);
    assert!((cand["error_rate"].as_f64().unwrap() - 6.0 / 9.0).abs() < 1e-9);
    assert!((cand["accuracy"].as_f64().unwrap() - 3.0 / 9.0).abs() < 1e-9);
    let cur = &s["models"]["current"]["metrics"];
    assert_eq!(
        (cur["requests"].as_u64(), cur["errors"].as_u64()),
        (Some(9), Some(0))
    );
    assert_eq!(cur["accuracy"], 1.0);
    assert_eq!(s["status"], "complete");
    assert_eq!(s["verdict"], "fail");
    let gate = s["gates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["metric"] == "error_rate")
        .unwrap();
    assert_eq!(gate["pass"], false);
}

/// A server that answers in a known time: the reported p50 is that time, although most requests
/// waited for a permit first (per-provider concurrency 2, 16 items).
#[test]
fn latency_excludes_queueing_and_limits_hold() {
    const SERVICE: Duration = Duration::from_millis(100);
    let server = MockServer::start(|_| Reply::Answer {
        text: "yes".into(),
        usage: Some((10, 2)),
        delay: SERVICE,
    });
    let items: Vec<_> = (0..16)
        .map(|i| item(&format!("i{i}"), &format!("question {i}"), &["yes"]))
        .collect();
    let project = Project::openai(
        &server.base_url(),
        &items,
        "concurrency = 2\ntimeout_s = 10",
    );
    let started = std::time::Instant::now();
    let run = project.run(&[]);
    let wall = started.elapsed();
    assert!(matches!(run.code(), 0 | 1), "{}", run.stderr());
    // 16 requests per model, 2 at a time, 100 ms each: at least 800 ms of queueing happened.
    assert!(wall >= Duration::from_millis(800), "{wall:?}");
    let s = run.summary();
    for side in ["current", "candidate"] {
        let l = &s["models"][side]["metrics"]["latency_ms"];
        let p50 = l["p50"].as_f64().unwrap();
        assert!(
            (100.0..108.0).contains(&p50),
            "{side} p50 {p50} ms should be the 100 ms service time"
        );
        let max = l["max"].as_f64().unwrap();
        assert!(max < 150.0, "{side} max {max} ms includes queueing");
        assert_eq!(server.max_in_flight(side), 2, "per-provider concurrency");
    }
    // Both models were in flight at the same time: the run interleaves them.
    assert_eq!(server.max_in_flight_total(), 4);
    // Tokens and cost from usage and [pricing]: (10 x 2.0 + 2 x 8.0) / 1e6 per request.
    let m = &s["models"]["current"]["metrics"];
    assert_eq!(m["tokens"]["input"], 160);
    assert_eq!(m["tokens"]["estimated"], false);
    assert!(
        (m["cost_per_1k"].as_f64().unwrap() - 0.036).abs() < 1e-12,
        "{}",
        m["cost_per_1k"]
    );
    // The serialised histogram is there for exact recomputation.
    assert!(m["histogram_us"].as_str().unwrap().len() > 10);
}

/// Items interleave: the current and candidate requests of an item are sent back to back.
#[test]
fn models_are_interleaved_item_by_item() {
    let server = MockServer::start(|_| Reply::answer("ok"));
    let items: Vec<_> = (0..6)
        .map(|i| item(&format!("i{i}"), &format!("q{i}"), &["ok"]))
        .collect();
    let project = Project::openai(&server.base_url(), &items, "concurrency = 1");
    project.write(
        "goldgate.toml",
        &crate::support::eval_toml("concurrency = 1"),
    );
    let run = project.run(&[]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let order: Vec<(String, String)> = server
        .seen()
        .iter()
        .map(|s| (s.model.clone(), s.prompt.clone()))
        .collect();
    let expected: Vec<(String, String)> = (0..6)
        .flat_map(|i| {
            [
                ("current".to_owned(), format!("q{i}")),
                ("candidate".to_owned(), format!("q{i}")),
            ]
        })
        .collect();
    assert_eq!(order, expected);
}

/// No server at all behind the candidate: the run cannot complete (exit 3), and says why.
#[test]
fn unreachable_provider_exits_3_with_results_kept() {
    let server = MockServer::start(|_| Reply::answer("ok"));
    let items: Vec<_> = (0..3)
        .map(|i| item(&format!("i{i}"), &format!("q{i}"), &["ok"]))
        .collect();
    let project = Project::openai(&server.base_url(), &items, "retries = 1\ntimeout_s = 2");
    // A port nobody listens on: bind, note it, close.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    project.write(
        "providers/candidate.toml",
        &format!("kind = \"openai\"\nmodel = \"candidate\"\nbase_url = \"http://{dead}/v1\"\n[limits]\nretries = 1\n"),
    );
    let run = project.run(&[]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    assert!(
        run.stderr()
            .contains("every request to providers/candidate.toml"),
        "{}",
        run.stderr()
    );
    let s = run.summary();
    assert_eq!(s["status"], "failed");
    assert_eq!(
        s["models"]["candidate"]["metrics"]["errors_by_kind"]["connect"],
        3
    );
    assert_eq!(run.results().len(), 6);
}

/// The key goes to the server as a bearer token and nowhere else.
#[test]
fn api_key_is_sent_but_never_written() {
    const MARKER: &str = "sk-test-MARKER-7f3a9c";
    let server = MockServer::start(|seen| {
        if seen.prompt == "q-echo" {
            // Some APIs echo the key in their errors.
            return Reply::Status {
                code: 401,
                retry_after: None,
                body: format!("{{\"error\": \"Incorrect API key provided: {MARKER}\"}}"),
            };
        }
        Reply::answer("ok")
    });
    let items = vec![item("a", "q-a", &["ok"]), item("b", "q-echo", &["ok"])];
    let project =
        Project::openai(&server.base_url(), &items, "retries = 0").without_error_ceiling();
    for side in ["current", "candidate"] {
        project.write(
            &format!("providers/{side}.toml"),
            &format!(
                "kind = \"openai\"\nmodel = \"{side}\"\nbase_url = \"{}\"\napi_key_env = \"GG_TEST_KEY\"\ntemperature = 0.0\nmax_tokens = 64\nseed = 7\n",
                server.base_url()
            ),
        );
    }
    let output = project
        .cmd()
        .arg("run")
        .env("GG_TEST_KEY", MARKER)
        .output()
        .unwrap();
    let run = crate::support::Run::new(project.path(), output);
    // Both models meet the same 401 on one item: equal error rates, the gates pass.
    assert_eq!(run.code(), 0, "{}", run.stderr());
    // The request is a chat completion with the provider's parameters.
    let seen = server.seen();
    let first = seen.iter().find(|s| s.prompt == "q-a").unwrap();
    let body: serde_json::Value = serde_json::from_str(&first.body).unwrap();
    assert_eq!(
        body["messages"],
        serde_json::json!([{"role": "user", "content": "q-a"}])
    );
    assert_eq!(
        (
            body["temperature"].as_f64(),
            body["max_tokens"].as_u64(),
            body["seed"].as_u64()
        ),
        (Some(0.0), Some(64), Some(7))
    );
    assert!(
        server
            .seen()
            .iter()
            .all(|s| s.authorization.as_deref() == Some(&format!("Bearer {MARKER}")))
    );
    assert!(!run.stdout().contains(MARKER) && !run.stderr().contains(MARKER));
    let dir = run.dir.as_ref().unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        assert!(!text.contains(MARKER));
    }
    let r = run.result("b", "candidate");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("[redacted]"),
        "{r}"
    );

    // And a missing variable is a configuration error naming it, before anything is sent.
    let before = server.seen().len();
    let output = project
        .cmd()
        .arg("run")
        .env_remove("GG_TEST_KEY")
        .output()
        .unwrap();
    assert_exit(&output, 2);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("GG_TEST_KEY is not set"), "{stderr}");
    assert!(
        stderr.contains("providers/current.toml") && stderr.contains("providers/candidate.toml"),
        "{stderr}"
    );
    assert_eq!(server.seen().len(), before);
}

/// A server's wait with an absurd value (one that overflowed a duration and aborted the run) is
/// clamped: past what goldgate waits out, so the request fails as rate limited at once; a wait
/// that is no wait (negative, NaN) is ignored and the request retried after the usual backoff.
#[test]
fn absurd_retry_after_values_never_abort_the_run() {
    const ABSURD: [(&str, &str, &str); 4] = [
        ("wait-1e300", "retry-after", "1e300"),
        ("wait-digits", "retry-after", "99999999999999999999999"),
        ("wait-9999", "retry-after", "Fri, 31 Dec 9999 23:59:59 GMT"),
        ("wait-ms", "retry-after-ms", "1e308"),
    ];
    const IGNORED: [(&str, &str, &str); 2] = [
        ("wait-negative", "retry-after", "-5"),
        ("wait-nan", "retry-after", "NaN"),
    ];
    let server = MockServer::start(|seen| {
        if seen.model == "current" || seen.attempt > 1 {
            return Reply::answer("The answer is forty-two.");
        }
        let (_, name, value) = ABSURD
            .iter()
            .chain(&IGNORED)
            .find(|(id, _, _)| *id == seen.prompt)
            .expect("every item has its header");
        Reply::Json {
            code: 429,
            headers: vec![((*name).to_owned(), (*value).to_owned())],
            body: "{\"error\": \"slow down\"}".to_owned(),
            delay: Duration::ZERO,
        }
    });
    let ids: Vec<&str> = ABSURD
        .iter()
        .chain(&IGNORED)
        .map(|(id, _, _)| *id)
        .collect();
    let items: Vec<_> = ids.iter().map(|id| item(id, id, &["forty-two"])).collect();
    let project = Project::openai(&server.base_url(), &items, "concurrency = 4\nretries = 2")
        .without_error_ceiling();
    let run = project.run(&[]);
    // The error-rate gate fails (the candidate's rate-limited requests); nothing panicked.
    assert_exit(&run, 1);
    assert!(!run.stderr().contains("panicked"), "{}", run.stderr());
    assert_eq!(run.results().len(), ids.len() * 2);
    for (id, _, _) in ABSURD {
        let r = run.result(id, "candidate");
        assert_eq!(
            (r["error"]["kind"].as_str(), r["attempts"].as_u64()),
            (Some("rate_limited"), Some(1)),
            "{id}: {r}"
        );
    }
    for (id, _, _) in IGNORED {
        let r = run.result(id, "candidate");
        assert_eq!(
            (r["ok"].as_bool(), r["attempts"].as_u64()),
            (Some(true), Some(2)),
            "{id}: {r}"
        );
    }
}
