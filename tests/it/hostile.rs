//! Hostile and careless input, issue 15's classes 4, 8, 9 and 10: numbers in configuration,
//! concurrent use of one directory, the golden-set lock's own file, and an outage that ratio gates
//! alone would pass. Every case asserts the exit code and that nothing panicked.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::server::{MockServer, Reply};
use crate::support::{Project, Run, assert_exit, eval_toml, item};

/// No panic reached the user: no exit 101, no Rust panic message, no backtrace.
#[track_caller]
fn assert_no_panic(out: &std::process::Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(101), "{stderr}");
    for sign in ["panicked at", "RUST_BACKTRACE", "stack backtrace"] {
        assert!(!stderr.contains(sign), "{sign}: {stderr}");
    }
}

fn items(n: usize) -> Vec<serde_json::Value> {
    (0..n)
        .map(|i| item(&format!("i{i}"), &format!("q{i}"), &["ok"]))
        .collect()
}

/// Class 4: numbers TOML accepts that no run can use, in provider files and goldgate.toml, and
/// gates that no candidate can pass. `validate` refuses each (exit 2) with the file and the field,
/// and `run` refuses it before any call.
#[test]
fn numbers_and_gates_out_of_range_are_refused_with_their_field() {
    let server = MockServer::start(|_| Reply::answer("ok"));
    let provider_cases = [
        ("[limits]\ntimeout_s = 1e30", "limits.timeout_s"),
        ("[limits]\ntimeout_s = inf", "limits.timeout_s"),
        ("[limits]\ntimeout_s = -5", "limits.timeout_s"),
        ("[limits]\nconcurrency = 0", "limits.concurrency"),
        ("[limits]\nretries = 4000000000", "limits.retries"),
        (
            "[limits]\nrequests_per_minute = 0",
            "limits.requests_per_minute",
        ),
        (
            "[limits]\ntokens_per_minute = 0",
            "limits.tokens_per_minute",
        ),
        ("[pricing]\ninput = nan", "pricing.input"),
        ("[pricing]\noutput = 1e308", "pricing.output"),
        ("[pricing]\nper_hour = -1", "pricing.per_hour"),
        ("temperature = inf", "temperature"),
        ("max_tokens = 0", "max_tokens"),
    ];
    let eval_cases = [
        ("repeats = 0", "repeats"),
        ("concurrency = 0", "concurrency"),
        ("max_error_rate = -0.1", "max_error_rate"),
        ("[[gate]]\nmetric = \"accuracy\"\nmin = 95", "gate[3].min"),
        (
            "[[gate]]\nmetric = \"faithfulness\"\nmin = 4.5\nmax = 4",
            "can never pass",
        ),
        (
            "[[gate]]\nmetric = \"accuracy\"\nmin_ratio = 0",
            "always passes",
        ),
        (
            "[[gate]]\nmetric = \"latency_p95_ms\"\nmax_ratio = nan",
            "gate[3].max_ratio",
        ),
    ];
    let mut tried = 0;
    for (extra, field) in provider_cases {
        let base = server.base_url();
        let project = Project::with_providers(&items(2), "", |side| {
            // Only the candidate's file is bad: the message must name that file.
            let bad = if side == "candidate" { extra } else { "" };
            format!("kind = \"openai\"\nmodel = \"{side}\"\nbase_url = \"{base}\"\n{bad}\n")
        });
        for args in [&["validate"][..], &["run"][..]] {
            let out = project.cmd().args(args).output().unwrap();
            assert_no_panic(&out);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{extra}: {stderr}");
            assert!(stderr.contains("candidate.toml"), "{extra}: {stderr}");
            assert!(stderr.contains(&format!("`{field}`")), "{extra}: {stderr}");
            tried += 1;
        }
    }
    for (extra, says) in eval_cases {
        let base = server.base_url();
        let project = Project::with_providers(&items(2), "", |side| {
            format!("kind = \"openai\"\nmodel = \"{side}\"\nbase_url = \"{base}\"\n")
        });
        // Keys before the first table; a gate table after the three the test evaluation has.
        let text = if extra.starts_with('[') {
            eval_toml("") + extra + "\n"
        } else {
            eval_toml(extra)
        };
        project.write("goldgate.toml", &text);
        let out = project.cmd().arg("validate").output().unwrap();
        assert_no_panic(&out);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra}: {stderr}");
        assert!(stderr.contains("goldgate.toml"), "{extra}: {stderr}");
        assert!(stderr.contains(says), "{extra}: {stderr}");
        tried += 1;
    }
    assert!(
        server.seen().is_empty(),
        "a refused configuration sent a request"
    );
    assert_eq!(tried, provider_cases.len() * 2 + eval_cases.len());
}

/// Class 10: the server dies part-way and 70% of both models' requests fail. "Candidate errors
/// <= current errors" and accuracy relative to the current model would both pass; the error
/// ceiling makes the run fail (exit 3) and say why. With the ceiling off, the same run passes:
/// the ceiling is what stops it.
#[test]
fn an_outage_on_both_sides_cannot_pass() {
    let server = MockServer::start(|seen| {
        let n: usize = seen.prompt.trim_start_matches('q').parse().unwrap();
        if n < 7 {
            Reply::Status {
                code: 500,
                retry_after: None,
                body: "{\"error\": \"the backend is down\"}".into(),
            }
        } else {
            Reply::answer("ok")
        }
    });
    let base = server.base_url();
    let provider = |side: &str| {
        format!(
            "kind = \"openai\"\nmodel = \"{side}\"\nbase_url = \"{base}\"\n[limits]\nretries = 0\n"
        )
    };
    let project = Project::with_providers(&items(10), "", provider);
    let run = project.run(&[]);
    assert_no_panic(&run.output);
    assert_exit(&run, 3);
    let s = run.summary();
    assert_eq!(s["status"], "failed");
    assert_eq!(s["verdict"], "inconclusive");
    let failure = s["failure"].as_str().unwrap();
    assert!(
        failure.contains("70.0% of the current model's requests failed (7 of 10)")
            && failure.contains("5% ceiling"),
        "{failure}"
    );
    // The reason is where a person looks: the terminal and the pull-request comment.
    assert!(run.stdout().contains("70.0%"), "{}", run.stdout());
    let md = std::fs::read_to_string(run.dir.as_ref().unwrap().join("report.md")).unwrap();
    // As GitHub shows it: Markdown's backslash escapes (`70\.0%`) disappear.
    assert!(
        md.replace('\\', "")
            .contains("The run could not be judged: 70.0% of the current model"),
        "{md}"
    );
    // Exactly one result line per (item, model).
    let mut lines: HashMap<(String, String), usize> = HashMap::new();
    for r in run.results() {
        *lines
            .entry((r["id"].to_string(), r["model"].to_string()))
            .or_default() += 1;
    }
    assert_eq!(lines.len(), 20);
    assert!(lines.values().all(|&n| n == 1), "{lines:?}");

    let lenient = Project::with_providers(&items(10), "max_error_rate = 1", provider);
    let run = lenient.run(&[]);
    assert_exit(&run, 0);
    assert_eq!(run.summary()["status"], "complete");
}

/// The run directory `run` writes, once it exists.
fn wait_for_run_dir(out: &Path, child: &mut Child) -> PathBuf {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let dir = std::fs::read_dir(out).ok().and_then(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .find(|p| p.join("results.jsonl").exists())
        });
        if let Some(dir) = dir {
            return dir;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before its directory appeared"
        );
        assert!(Instant::now() < deadline, "no run directory appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn spawn(project: &Project, args: &[&str]) -> Child {
    std::process::Command::new(assert_cmd::cargo::cargo_bin("goldgate"))
        .args(args)
        .current_dir(project.path())
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Class 8: a run directory is locked while a process writes it. A second `--resume` of a run
/// that is being written is refused (exit 2) instead of paying for its missing work again; the
/// lock of a process killed with SIGKILL is gone with it, so the next `--resume` finishes the
/// run, and every (item, model) ends with exactly one result line.
#[test]
fn one_run_directory_has_one_writer() {
    let server = MockServer::start(|_| Reply::Answer {
        text: "ok".into(),
        usage: None,
        delay: Duration::from_millis(100),
    });
    let project = Project::openai(&server.base_url(), &items(30), "concurrency = 1");
    let mut first = spawn(&project, &["run"]);
    let dir = wait_for_run_dir(&project.path().join("reports"), &mut first);
    let dir_arg = dir.to_str().unwrap();

    let second = project
        .cmd()
        .args(["run", "--resume", dir_arg])
        .output()
        .unwrap();
    assert_no_panic(&second);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("is being written by another goldgate process (pid"),
        "{stderr}"
    );

    // Killed without a chance to clean up: the OS releases its lock.
    first.kill().unwrap();
    first.wait().unwrap();
    let third = project
        .cmd()
        .args(["run", "--resume", dir_arg])
        .output()
        .unwrap();
    let third = Run::new(project.path(), third);
    assert_exit(&third, 0);
    let results = third.results();
    let mut lines: HashMap<(String, String), usize> = HashMap::new();
    for r in &results {
        *lines
            .entry((r["id"].to_string(), r["model"].to_string()))
            .or_default() += 1;
    }
    assert_eq!(lines.len(), 60);
    assert!(lines.values().all(|&n| n == 1), "{lines:?}");
}

/// Class 8: two cached runs into one output directory at once. The second waits for the cache
/// instead of failing, then takes every answer from it: the server is paid once.
#[test]
fn two_cached_runs_share_the_cache_in_turn() {
    let server = MockServer::start(|_| Reply::Answer {
        text: "ok".into(),
        usage: Some((10, 2)),
        delay: Duration::from_millis(50),
    });
    let project = Project::openai(&server.base_url(), &items(12), "concurrency = 2");
    let mut first = spawn(&project, &["run", "--cache"]);
    wait_for_run_dir(&project.path().join("reports"), &mut first);
    let second = project.cmd().args(["run", "--cache"]).output().unwrap();
    let first = first.wait_with_output().unwrap();
    assert_no_panic(&second);
    assert_exit(&Run::new(project.path(), first), 0);
    let second = Run::new(project.path(), second);
    assert_exit(&second, 0);
    assert!(
        second.stderr().contains("waiting for the response cache"),
        "{}",
        second.stderr()
    );
    assert_eq!(server.seen().len(), 24, "the second run called the server");
    assert!(second.results().iter().all(|r| r["cached"] == true));
}

/// Class 9: `golden lock` edits golden.toml as TOML. A quoted key, a value with its own comment,
/// a comment that mentions a key: the file stays valid, keeps its comments, and reads back locked.
#[test]
fn golden_lock_edits_toml_not_lines() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("golden.toml"),
        "# version = 1 was the draft\nname = \"faq\"\n\"version\" = 2 # bumped for the audit\n\"sha256\" = \"0000\"\n",
    )
    .unwrap();
    std::fs::write(
        d.path().join("items.jsonl"),
        "{\"id\":\"a\",\"question\":\"q\",\"keywords\":[\"x\"]}\n",
    )
    .unwrap();
    let bin = assert_cmd::cargo::cargo_bin("goldgate");
    let lock = std::process::Command::new(&bin)
        .args(["golden", "lock"])
        .arg(d.path())
        .output()
        .unwrap();
    assert_no_panic(&lock);
    assert_eq!(
        lock.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&lock.stderr)
    );
    let check = std::process::Command::new(&bin)
        .args(["golden", "check"])
        .arg(d.path())
        .output()
        .unwrap();
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let text = std::fs::read_to_string(d.path().join("golden.toml")).unwrap();
    assert!(text.starts_with("# version = 1 was the draft\n"), "{text}");
    assert!(text.contains("# bumped for the audit"), "{text}");
    assert_eq!(text.matches("sha256").count(), 1, "{text}");
}

/// The answer body of a 200 in each kind's API shape.
fn ok_body(kind: &str) -> String {
    match kind {
        "anthropic" => r#"{"content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn", "usage": {"input_tokens": 3, "output_tokens": 1}}"#,
        "ollama" => r#"{"message": {"role": "assistant", "content": "ok"}, "done": true, "prompt_eval_count": 3, "eval_count": 1}"#,
        _ => r#"{"choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 3, "completion_tokens": 1}}"#,
    }
    .to_owned()
}

/// Class 1: every header a server uses to say "wait", with values that are huge, negative,
/// fractional, in exponent notation, not numbers, or dates far in the future, on a 429, a 503 and
/// a 200, for every HTTP provider kind. Each ends as one classified result line per (item, model),
/// after at most the configured attempts; nothing panics, nothing waits past the clamp.
#[test]
fn server_given_waits_never_abort_a_run_of_any_kind() {
    const HEADERS: [&str; 7] = [
        "retry-after",
        "retry-after-ms",
        "x-ratelimit-reset-requests",
        "x-ratelimit-reset-tokens",
        "anthropic-ratelimit-requests-reset",
        "anthropic-ratelimit-tokens-reset",
        "ratelimit-reset",
    ];
    const VALUES: [&str; 14] = [
        "1e300",
        "-1",
        "NaN",
        "inf",
        "99999999999999999999999",
        "18446744073709551616",
        "0.000001",
        "1e-320",
        "Fri, 31 Dec 9999 23:59:59 GMT",
        "9999-12-31T23:59:59Z",
        "999999h0m0s",
        "0x10",
        "",
        "\u{7f}",
    ];
    const STATUSES: [u16; 3] = [429, 503, 200];
    let cases: Vec<(usize, usize, usize)> = (0..HEADERS.len())
        .flat_map(|h| {
            (0..VALUES.len()).flat_map(move |v| (0..STATUSES.len()).map(move |s| (h, v, s)))
        })
        .collect();
    let mut tried = 0;
    for kind in ["openai", "anthropic", "ollama", "http"] {
        let server = MockServer::start(move |seen| {
            let body = ok_body(kind);
            let Some(n) = seen
                .prompt
                .strip_prefix('c')
                .and_then(|n| n.parse::<usize>().ok())
            else {
                return Reply::Json {
                    code: 400,
                    headers: vec![],
                    body: "{}".into(),
                    delay: Duration::ZERO,
                };
            };
            if seen.model == "current" || seen.attempt > 1 {
                return Reply::Json {
                    code: 200,
                    headers: vec![],
                    body,
                    delay: Duration::ZERO,
                };
            }
            let (h, v, s) = (
                n / (VALUES.len() * STATUSES.len()),
                n / STATUSES.len() % VALUES.len(),
                n % STATUSES.len(),
            );
            let code = STATUSES[s];
            Reply::Json {
                code,
                headers: vec![(HEADERS[h].to_owned(), VALUES[v].to_owned())],
                body: if code == 200 {
                    body
                } else {
                    "{\"error\": \"wait\"}".into()
                },
                delay: Duration::ZERO,
            }
        });
        let base = server.base_url();
        let items: Vec<_> = (0..cases.len())
            .map(|n| item(&format!("c{n}"), &format!("c{n}"), &["ok"]))
            .collect();
        let project = Project::with_providers(&items, "", |side| {
            let kind_table = match kind {
                "http" => format!(
                    "[http]\nurl = \"{base}/v1/chat/completions\"\nbody = '{{\"model\": \"{side}\", \"prompt\": {{{{ prompt | json }}}}}}'\nanswer = \"/choices/0/message/content\"\n"
                ),
                _ => format!("base_url = \"{base}\"\n"),
            };
            let key = if kind == "anthropic" { "api_key_env = \"GG_HOSTILE_KEY\"\n" } else { "" };
            format!("kind = \"{kind}\"\nmodel = \"{side}\"\n{key}{kind_table}[limits]\nretries = 1\nconcurrency = 32\n")
        })
        .without_error_ceiling();
        let started = Instant::now();
        let run = project.run_with_env(&[("GG_HOSTILE_KEY", "k-0123456789")]);
        assert_no_panic(&run.output);
        assert!(
            matches!(run.code(), 0 | 1),
            "{kind}: exit {}: {}",
            run.code(),
            run.stderr()
        );
        // Clamped or ignored, never honoured as given: the whole run takes seconds.
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "{kind}: {:?}",
            started.elapsed()
        );
        let results = run.results();
        let mut lines: HashMap<(String, String), usize> = HashMap::new();
        for r in &results {
            *lines
                .entry((r["id"].to_string(), r["model"].to_string()))
                .or_default() += 1;
            assert!(r["attempts"].as_u64().unwrap() <= 2, "{kind}: {r}");
            if r["ok"] == false {
                let kind_of_error = r["error"]["kind"].as_str().unwrap();
                assert!(
                    matches!(kind_of_error, "rate_limited" | "http_status"),
                    "{kind}: {r}"
                );
            }
        }
        assert_eq!(lines.len(), cases.len() * 2, "{kind}");
        assert!(lines.values().all(|&n| n == 1), "{kind}");
        tried += cases.len();
    }
    assert_eq!(tried, 4 * HEADERS.len() * VALUES.len() * STATUSES.len());
}
