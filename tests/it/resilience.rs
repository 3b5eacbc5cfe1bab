//! A run that survives its providers: more faults, the shared slow-down after a 429, the response
//! cache, a SIGKILL mid-run and `--resume`, and keys kept out of everything written or logged.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::server::{MockServer, Reply};
use crate::support::{Project, Run, assert_exit, item};

fn count_lines(run: &Run) -> HashMap<(String, String, u64), usize> {
    let mut n = HashMap::new();
    for r in run.results() {
        *n.entry((
            r["id"].as_str().unwrap().to_owned(),
            r["model"].as_str().unwrap().to_owned(),
            r["trial"].as_u64().unwrap(),
        ))
        .or_default() += 1;
    }
    n
}

#[test]
fn more_faults_each_end_in_exactly_one_classified_line() {
    let server = MockServer::start(|seen| {
        if seen.model == "current" {
            return Reply::answer("ok");
        }
        match (seen.prompt.as_str(), seen.attempt) {
            ("q-429-bare", 1) => Reply::Status {
                code: 429,
                retry_after: None,
                body: "{}".into(),
            },
            ("q-502", 1) => Reply::Status {
                code: 502,
                retry_after: None,
                body: "bad gateway".into(),
            },
            ("q-big", _) => Reply::Big(10 << 20),
            ("q-utf8", _) => Reply::NonUtf8,
            _ => Reply::answer("ok"),
        }
    });
    let ids = ["q-ok", "q-429-bare", "q-502", "q-big", "q-utf8"];
    let items: Vec<_> = ids.iter().map(|id| item(id, id, &["ok", "x"])).collect();
    let project = Project::openai(&server.base_url(), &items, "retries = 2\ntimeout_s = 20")
        .without_error_ceiling();
    let run = project.run(&["--repeat", "2"]);
    assert!(matches!(run.code(), 0 | 1), "{}", run.stderr());
    let lines = count_lines(&run);
    assert_eq!(lines.len(), ids.len() * 2 * 2);
    assert!(lines.values().all(|&n| n == 1));
    let results = run.results();
    let get = |id: &str| {
        results
            .iter()
            .find(|r| r["id"] == id && r["model"] == "candidate" && r["trial"] == 0)
            .unwrap()
    };
    // The fault hits whichever trial is sent first; that one is retried, both end answered.
    for id in ["q-429-bare", "q-502"] {
        let mut attempts: Vec<_> = results
            .iter()
            .filter(|r| r["id"] == id && r["model"] == "candidate")
            .map(|r| (r["ok"].as_bool(), r["attempts"].as_u64()))
            .collect();
        attempts.sort();
        assert_eq!(
            attempts,
            [(Some(true), Some(1)), (Some(true), Some(2))],
            "{id}"
        );
    }
    let big = get("q-big");
    assert_eq!(big["ok"], true);
    assert_eq!(
        big["answer"].as_str().unwrap().len(),
        10 << 20,
        "a 10 MB answer is kept whole in results.jsonl"
    );
    assert_eq!(get("q-utf8")["error"]["kind"], "bad_response");
    let m = &run.summary()["models"]["candidate"]["metrics"];
    assert_eq!(m["errors"], 2, "q-utf8, both trials");
    assert_eq!(m["errors_by_kind"]["bad_response"], 2);
    // The report stays light: the huge answer is cut in the views.
    let html = std::fs::metadata(run.dir.as_ref().unwrap().join("report.html"))
        .unwrap()
        .len();
    assert!(html < 1 << 20, "report.html is {html} bytes");
}

/// One 429 with Retry-After holds back the provider's other requests too, then the run recovers.
#[test]
fn a_429_slows_every_request_to_that_provider() {
    let server = MockServer::start(|seen| {
        if seen.model == "candidate" && seen.prompt == "q0" && seen.attempt == 1 {
            return Reply::Status {
                code: 429,
                retry_after: Some("1".into()),
                body: "{}".into(),
            };
        }
        Reply::Answer {
            text: "ok".into(),
            usage: Some((1, 1)),
            delay: Duration::from_millis(100),
        }
    });
    let items: Vec<_> = (0..6)
        .map(|i| item(&format!("i{i}"), &format!("q{i}"), &["ok"]))
        .collect();
    let project = Project::openai(&server.base_url(), &items, "concurrency = 2\nretries = 3");
    let started = Instant::now();
    let run = project.run(&[]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let seen = server.seen();
    let first_429 = seen
        .iter()
        .find(|s| s.model == "candidate" && s.prompt == "q0")
        .unwrap()
        .at;
    // Every candidate request sent after the 429 (but the one already in flight) waited out the second.
    let later: Vec<_> = seen
        .iter()
        .filter(|s| s.model == "candidate" && s.at > first_429 && s.prompt != "q1")
        .collect();
    assert!(!later.is_empty());
    for s in later {
        assert!(
            s.at.duration_since(first_429) >= Duration::from_millis(950),
            "{} sent {:?} after the 429",
            s.prompt,
            s.at.duration_since(first_429)
        );
    }
    // Then it recovered: everything answered, about one pause later.
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(run.summary()["models"]["candidate"]["metrics"]["errors"], 0);
}

#[test]
fn cache_serves_repeats_with_recorded_latency_and_never_caches_errors() {
    let server = MockServer::start(|seen| {
        if seen.prompt == "q-fail" {
            return Reply::Status {
                code: 500,
                retry_after: None,
                body: String::new(),
            };
        }
        Reply::Answer {
            text: "ok".into(),
            usage: Some((10, 2)),
            delay: Duration::from_millis(30),
        }
    });
    let items: Vec<_> = ["q0", "q1", "q-fail"]
        .iter()
        .map(|q| item(q, q, &["ok"]))
        .collect();
    let project = Project::openai(&server.base_url(), &items, "retries = 0");
    let first = project.run(&["--cache", "--quiet"]);
    let sent = server.seen().len();
    assert_eq!(sent, 6);
    let second = project.run(&["--cache"]);
    // Only the failed requests went out again.
    let again: Vec<_> = server.seen()[sent..]
        .iter()
        .map(|s| s.prompt.clone())
        .collect();
    assert_eq!(again, ["q-fail", "q-fail"]);
    let r = second.result("q0", "candidate");
    assert_eq!(r["cached"], true);
    let before = first.result("q0", "candidate");
    assert_eq!(
        r["latency_ms"], before["latency_ms"],
        "the recorded latency is kept"
    );
    assert_eq!(r["tokens"], before["tokens"]);
    assert!(second.result("q-fail", "candidate").get("cached").is_none());
    assert_eq!(
        second.summary()["models"]["candidate"]["metrics"]["cached"],
        2
    );
    assert!(second.stdout().contains("cached"), "{}", second.stdout());
    // Without --cache nothing is served from it.
    let third = project.run(&["--quiet"]);
    assert!(third.results().iter().all(|r| r.get("cached").is_none()));
}

/// kill -9 mid-run, then --resume: every (item, model, trial) exactly once, answered lines kept.
#[test]
fn sigkill_then_resume_completes_every_trial_exactly_once() {
    let server = MockServer::start(|_| Reply::Answer {
        text: "ok".into(),
        usage: Some((5, 1)),
        delay: Duration::from_millis(60),
    });
    let items: Vec<_> = (0..30)
        .map(|i| item(&format!("i{i:02}"), &format!("q{i}"), &["ok"]))
        .collect();
    let project = Project::openai(&server.base_url(), &items, "concurrency = 2");
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("goldgate"))
        .args(["run", "--quiet"])
        .current_dir(project.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let results = || -> Option<std::path::PathBuf> {
        let d = std::fs::read_dir(project.path().join("reports"))
            .ok()?
            .flatten()
            .find(|e| e.path().is_dir())?;
        Some(d.path())
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let dir = loop {
        if let Some(d) = results()
            && std::fs::read_to_string(d.join("results.jsonl")).map_or(0, |t| t.lines().count())
                >= 10
        {
            break d;
        }
        assert!(Instant::now() < deadline, "no results appeared");
        std::thread::sleep(Duration::from_millis(10));
    };
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        !dir.join("summary.json").exists(),
        "a killed run wrote no summary"
    );
    // A crash mid-write leaves a torn line: resume must cope.
    let mut text = std::fs::read_to_string(dir.join("results.jsonl")).unwrap();
    let kept = text.lines().count();
    text.push_str("{\"id\": \"i2");
    std::fs::write(dir.join("results.jsonl"), text).unwrap();

    let out = project
        .cmd()
        .arg("run")
        .arg("--resume")
        .arg(&dir)
        .output()
        .unwrap();
    let run = Run::new(project.path(), out);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(run.dir.as_deref(), Some(dir.as_path()), "resumed in place");
    let lines = count_lines(&run);
    assert_eq!(lines.len(), 60);
    assert!(lines.values().all(|&n| n == 1), "every trial exactly once");
    let s = run.summary();
    assert_eq!(s["status"], "complete");
    assert_eq!(s["models"]["current"]["metrics"]["requests"], 30);
    // Answered trials were not sent again: the server saw at most the kept lines plus the rest.
    // Global in-flight bound: 2 per provider, so at most 4 requests were lost in flight.
    assert!(
        server.seen().len() <= 60 + 4,
        "{} requests for 60 trials",
        server.seen().len()
    );
    assert!(kept >= 10);

    // Resuming a complete run sends nothing.
    let before = server.seen().len();
    let out = project
        .cmd()
        .arg("run")
        .arg("--resume")
        .arg(&dir)
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert_eq!(server.seen().len(), before);
    // An evaluation edited since the run started is refused.
    project.write("goldgate.toml", &crate::support::eval_toml("repeats = 2"));
    let out = project
        .cmd()
        .arg("run")
        .arg("--resume")
        .arg(&dir)
        .output()
        .unwrap();
    assert_exit(&out, 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("the evaluation changed"));
}

/// The key is a unique marker; it must appear in no file goldgate writes, not in stdout, not in
/// the --verbose log, not in an error message echoing it.
#[test]
fn keys_never_leak_into_files_or_logs() {
    const MARKER: &str = "sk-leak-check-5c1e88a0d7";
    let server = MockServer::start(|seen| match (seen.prompt.as_str(), seen.attempt) {
        ("q-echo", _) => Reply::Status {
            code: 500,
            retry_after: None,
            body: format!("upstream rejected key {MARKER} (Bearer {MARKER})"),
        },
        ("q-429", 1) => Reply::Status {
            code: 429,
            retry_after: Some("0".into()),
            body: format!("{{\"key\": \"{MARKER}\"}}"),
        },
        _ => Reply::answer("ok"),
    });
    let items = vec![
        item("a", "q-a", &["ok"]),
        item("b", "q-echo", &["ok"]),
        item("c", "q-429", &["ok"]),
    ];
    let project =
        Project::openai(&server.base_url(), &items, "retries = 1").without_error_ceiling();
    for side in ["current", "candidate"] {
        project.write(
            &format!("providers/{side}.toml"),
            &format!("kind = \"openai\"\nmodel = \"{side}\"\nbase_url = \"{}\"\napi_key_env = \"GG_LEAK_KEY\"\n[limits]\nretries = 1\n", server.base_url()),
        );
    }
    let out = project
        .cmd()
        .args(["run", "--verbose", "--cache"])
        .env("GG_LEAK_KEY", MARKER)
        .output()
        .unwrap();
    let run = Run::new(project.path(), out);
    assert!(matches!(run.code(), 0 | 1), "{}", run.stderr());
    assert!(
        run.stderr().contains("retrying"),
        "the verbose log ran: {}",
        run.stderr()
    );
    assert!(run.stderr().contains("[redacted]"), "{}", run.stderr());
    assert!(!run.stdout().contains(MARKER) && !run.stderr().contains(MARKER));
    // Every file under reports/, the cache included.
    let mut stack = vec![project.path().join("reports")];
    let mut files = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files += 1;
                let bytes = std::fs::read(&p).unwrap();
                assert!(
                    !bytes.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()),
                    "{} holds the key",
                    p.display()
                );
            }
        }
    }
    assert!(files >= 8, "{files} files checked");
    assert!(
        server
            .seen()
            .iter()
            .all(|s| s.authorization.as_deref() == Some(&format!("Bearer {MARKER}")))
    );
}

#[test]
fn validate_checks_reachability_when_asked() {
    let server = MockServer::start(|_| Reply::answer("ok"));
    let project = Project::openai(&server.base_url(), &[item("a", "q", &["ok"])], "");
    let out = project.check_reachable(&[]);
    assert_exit(&out, 0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("answered a test call"), "{stdout}");
    // A real call of the evaluation's first item, with few output tokens and the model named.
    let sent = server.seen();
    assert_eq!(sent.len(), 2, "one test call per model");
    assert!(sent.iter().all(|s| s.path.ends_with("/chat/completions")));
    assert!(
        sent.iter().all(|s| s.json()["max_tokens"] == 8),
        "{:?}",
        sent[0].json()
    );
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    project.write(
        "providers/candidate.toml",
        &format!("kind = \"openai\"\nmodel = \"c\"\nbase_url = \"http://{dead}/v1\"\n"),
    );
    let out = project.check_reachable(&[]);
    assert_exit(&out, 2);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("providers/candidate.toml: field `base_url`")
            && err.contains("failed: connect")
            && err.contains("that the server is running"),
        "{err}"
    );
    // Without the flag nothing is sent and the file is fine.
    let out = project.cmd().arg("validate").output().unwrap();
    assert_exit(&out, 0);
}

/// A server that is there but would fail every request of the run fails the check: a wrong
/// path (404), a refused key (401/403), an answer in another API's shape. Each names the field
/// to fix; a 429 means everything is right but the pace.
#[test]
fn check_reachable_fails_on_what_would_fail_the_run() {
    let cases: [(Reply, &str, &str); 4] = [
        (
            Reply::Status {
                code: 404,
                retry_after: None,
                body: "404 page not found".into(),
            },
            "field `base_url`",
            "ends where the API's routes start",
        ),
        (
            Reply::Status {
                code: 401,
                retry_after: None,
                body: r#"{"error": {"message": "Incorrect API key provided"}}"#.into(),
            },
            "field `api_key_env`",
            "the server wants a key",
        ),
        (
            Reply::Status {
                code: 403,
                retry_after: None,
                body: "forbidden".into(),
            },
            "field `api_key_env`",
            "the server wants a key",
        ),
        (
            Reply::Json {
                code: 200,
                headers: vec![("content-type".into(), "text/html".into())],
                body: "<html><body>Welcome to nginx!</body></html>".into(),
                delay: std::time::Duration::ZERO,
            },
            "field `kind`",
            "not in the shape of the `openai` kind's API",
        ),
    ];
    for (reply, field, fix) in cases {
        let server = MockServer::start(move |_| reply.clone());
        let project = Project::openai(&server.base_url(), &[item("a", "q", &["ok"])], "");
        let out = project.check_reachable(&[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains(&format!("providers/current.toml: {field}"))
                && err.contains(&format!("providers/candidate.toml: {field}"))
                && err.contains(fix),
            "{err}"
        );
        // One attempt per model: a check must not retry its way past a broken endpoint.
        assert_eq!(server.seen().len(), 2, "{err}");
    }
    let server = MockServer::start(|_| Reply::Status {
        code: 429,
        retry_after: Some("30".into()),
        body: "slow down".into(),
    });
    let project = Project::openai(&server.base_url(), &[item("a", "q", &["ok"])], "");
    let out = project.check_reachable(&[]);
    assert_exit(&out, 0);
    assert!(String::from_utf8_lossy(&out.stdout).contains("rate-limited right now"));
}
