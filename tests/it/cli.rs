//! The command line as a user meets it: exit codes, golden-set commands, init, the shipped example.

use crate::server::{MockServer, Reply};
use crate::support::{Project, Run, assert_exit, eval_toml, item};

#[test]
fn gate_pass_is_exit_0_and_the_terminal_summary_has_the_spec_shape() {
    let server = MockServer::start(|_| Reply::answer("It is 30 days."));
    let items: Vec<_> = (0..4)
        .map(|i| item(&format!("i{i}"), &format!("q{i}"), &["30 days"]))
        .collect();
    let project = Project::openai(&server.base_url(), &items, "");
    let run = project.run(&[]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let out = run.stdout();
    // `accuracy  85.0% [..] -> 88.0% [..]  Δ +3.0 [..] pts  PASS (>= 80.8%)`: each value with
    // its interval, the paired change, the outcome and the bound (and how it decided when not by
    // the default).
    assert!(
        out.lines().any(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.len() == 19
                && w[..4] == ["accuracy", "100.0%", "[51.0,", "100.0]"]
                && w[4..8] == ["->", "100.0%", "[51.0,", "100.0]"]
                && w[8..10] == ["Δ", "+0.0"]
                && w[12..] == ["pts", "PASS", "(>=", "95.0%,", "decide", "=", "point)"]
        }),
        "{out}"
    );
    assert!(out.contains("verdict: PASS"), "{out}");
    assert!(!out.contains('\x1b'), "no colour when not a terminal");
    let s = run.summary();
    assert_eq!(s["schema"], "goldgate/summary/v1");
    assert_eq!(s["verdict"], "pass");
    assert_eq!(s["golden"]["items"], 4);
    assert_eq!(s["golden"]["version"], 1);
    assert_eq!(s["golden"]["sha256"].as_str().unwrap().len(), 64);
    for side in ["current", "candidate"] {
        let m = &s["models"][side]["metrics"];
        for key in [
            "requests",
            "errors",
            "error_rate",
            "accuracy",
            "faithfulness",
            "latency_ms",
            "cost_per_1k",
            "tokens",
            "by_tag",
        ] {
            assert!(m.get(key).is_some(), "metrics.{key} missing");
        }
        for p in ["p50", "p90", "p95", "p99", "max", "mean"] {
            assert!(m["latency_ms"][p].as_f64().is_some());
        }
        assert_eq!(m["by_tag"]["even"]["requests"], 2);
    }
    assert_eq!(s["models"]["current"]["model"], "current");
    let g = &s["gates"][0];
    for key in ["metric", "rule", "current", "candidate", "limit", "pass"] {
        assert!(g.get(key).is_some(), "gates[0].{key} missing");
    }
    // Each result line has the spec's fields.
    let r = run.result("i0", "candidate");
    for key in [
        "id",
        "model",
        "trial",
        "ok",
        "answer",
        "latency_ms",
        "attempts",
        "tokens",
        "cost_usd",
        "checks",
        "faithfulness",
        "error",
    ] {
        assert!(r.get(key).is_some(), "result.{key} missing: {r}");
    }
    assert_eq!(r["checks"]["keywords"]["matched"][0], "30 days");
}

#[test]
fn runs_never_overwrite_each_other() {
    let server = MockServer::start(|_| Reply::answer("ok"));
    let project = Project::openai(&server.base_url(), &[item("a", "q", &["ok"])], "");
    let a = project.run(&["--quiet"]);
    let b = project.run(&["--quiet"]);
    assert_eq!((a.code(), b.code()), (0, 0));
    assert_ne!(a.dir, b.dir);
    assert_eq!(
        a.stdout().lines().count(),
        1,
        "--quiet prints only the run directory"
    );
}

#[test]
fn limit_and_repeat_shape_the_run() {
    let server = MockServer::start(|_| Reply::answer("ok"));
    let items: Vec<_> = (0..5)
        .map(|i| item(&format!("i{i}"), &format!("q{i}"), &["ok"]))
        .collect();
    let project = Project::openai(&server.base_url(), &items, "");
    let run = project.run(&["--limit", "2", "--repeat", "3"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(run.results().len(), 2 * 3 * 2);
    let s = run.summary();
    assert_eq!(s["golden"]["items"], 2);
    assert_eq!(s["repeats"], 3);
    assert_eq!(s["models"]["candidate"]["metrics"]["requests"], 6);
}

#[test]
fn an_edited_golden_set_is_refused_unless_allowed() {
    let server = MockServer::start(|_| Reply::answer("ok"));
    let project = Project::openai(&server.base_url(), &[item("a", "q", &["ok"])], "");
    project.write(
        "goldens/set/items.jsonl",
        &(item("a", "q edited", &["ok"]).to_string() + "\n"),
    );
    let run = project.run(&[]);
    assert_exit(&run, 2);
    assert!(
        run.stderr()
            .contains("items.jsonl was edited since version 1 was locked"),
        "{}",
        run.stderr()
    );
    assert!(run.dir.is_none(), "nothing ran");
    assert!(server.seen().is_empty());
    let run = project.run(&["--allow-unlocked"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(run.summary()["golden"]["locked"], false);

    // golden check agrees; golden lock bumps the version and check is happy again.
    let check = project
        .cmd()
        .args(["golden", "check", "goldens/set"])
        .output()
        .unwrap();
    assert_exit(&check, 2);
    let lock = project
        .cmd()
        .args(["golden", "lock", "goldens/set"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&lock.stdout).contains("version 2"));
    let check = project
        .cmd()
        .args(["golden", "check", "goldens/set"])
        .output()
        .unwrap();
    assert_exit(&check, 0);
    let stats = project
        .cmd()
        .args(["golden", "stats", "goldens/set", "--json"])
        .output()
        .unwrap();
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(stats["items"], 1);
}

#[test]
fn bad_input_is_exit_2_with_file_line_field_and_fix() {
    let server = MockServer::start(|_| Reply::answer("ok"));
    let project = Project::openai(&server.base_url(), &[item("a", "q", &["ok"])], "");
    project.write(
        "goldens/set/items.jsonl",
        "{\"id\": \"a\", \"question\": \"q\"}\n{\"id\": \"b\", \"question\": \"q\", \"keyword\": [\"x\"]}\n{\"id\": \"a\", \"question\": \"\"}\n",
    );
    project.write(
        "goldgate.toml",
        "golden = \"goldens/set\"\ncurrent = \"providers/current.toml\"\ncandidate = \"providers/candidate.toml\"\n[[gate]]\nmetric = \"acuracy\"\nmin = 0.5\n",
    );
    for cmd in [&["run"][..], &["validate"][..]] {
        let out = project.cmd().args(cmd).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{cmd:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("goldens/set/items.jsonl:2: field `keyword`: unknown field"),
            "{err}"
        );
        assert!(err.contains("did you mean `keywords`"), "{err}");
        assert!(
            err.contains("items.jsonl:3: field `question`: the question is empty"),
            "{err}"
        );
        assert!(
            err.contains("items.jsonl:3: field `id`: duplicate id `a`: already used on line 1"),
            "{err}"
        );
        assert!(err.contains("fix:"), "{err}");
    }
    // Fix the items; the gate typo is next.
    project.golden(&[item("a", "q", &["ok"])]);
    let out = project.cmd().arg("validate").output().unwrap();
    assert_exit(&out, 2);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("goldgate.toml: field `gate[0]`: unknown gate metric `acuracy`"),
        "{err}"
    );
    // A typo'd key in the evaluation file names the key and the line.
    project.write(
        "goldgate.toml",
        "golden = \"goldens/set\"\ncurrent = \"providers/current.toml\"\ncandidate = \"providers/candidate.toml\"\nrepeat = 2\n",
    );
    let out = project.cmd().arg("validate").output().unwrap();
    assert_exit(&out, 2);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("goldgate.toml:4") && err.contains("unknown field `repeat`"),
        "{err}"
    );
    assert!(server.seen().is_empty(), "nothing was sent");
    // Usage errors are exit 2 too.
    let out = project
        .cmd()
        .args(["run", "--limit", "0"])
        .output()
        .unwrap();
    assert_exit(&out, 2);
}

#[test]
fn first_interrupt_keeps_partial_results_and_exits_130() {
    interrupted_by("INT");
}

/// CI systems cancel a job with SIGTERM: the same partial results, the same exit code.
#[test]
fn sigterm_is_an_interrupt_too() {
    interrupted_by("TERM");
}

fn interrupted_by(signal: &str) {
    let server = MockServer::start(|_| Reply::Answer {
        text: "ok".into(),
        usage: None,
        delay: std::time::Duration::from_millis(200),
    });
    let items: Vec<_> = (0..40)
        .map(|i| item(&format!("i{i}"), &format!("q{i}"), &["ok"]))
        .collect();
    let project = Project::openai(&server.base_url(), &items, "concurrency = 2");
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("goldgate"))
        .arg("run")
        .current_dir(project.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until some results are on disk, then send SIGINT.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let lines = std::fs::read_dir(project.path().join("reports"))
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| std::fs::read_to_string(e.ok()?.path().join("results.jsonl")).ok())
            .map_or(0, |t| t.lines().count());
        if lines >= 4 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no results appeared");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    let run = Run::new(project.path(), output);
    assert_eq!(run.code(), 130, "{}", run.stderr());
    let s = run.summary();
    assert_eq!(s["status"], "interrupted");
    // Every request that ran answered "ok": the partial gates would pass, but a run that did not
    // finish must never say so.
    assert_eq!(s["verdict"], "inconclusive");
    let results = run.results();
    assert!(
        results.len() >= 4 && results.len() < 80,
        "{}",
        results.len()
    );
    // In-flight requests were allowed to finish: every request the server saw has its line.
    assert_eq!(results.len(), server.seen().len());
    assert!(s["items"]["incomplete"].as_u64().unwrap() > 0);
}

#[test]
fn init_scaffolds_an_evaluation_that_runs() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("eval");
    let out = assert_cmd::Command::cargo_bin("goldgate")
        .unwrap()
        .args(["init"])
        .arg(&target)
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let out = assert_cmd::Command::cargo_bin("goldgate")
        .unwrap()
        .current_dir(&target)
        .arg("validate")
        .output()
        .unwrap();
    assert_exit(&out, 0);
    // The first thing a new user runs must pass its own gates every time: its latency gate
    // compares two simulated service times, not scheduler noise. Fifty runs, each in a fresh
    // output directory, while the other tests load the machine.
    for attempt in 0..50 {
        let out_dir = target.join(format!("reports-{attempt}"));
        let out = assert_cmd::Command::cargo_bin("goldgate")
            .unwrap()
            .current_dir(&target)
            .args(["run", "--quiet", "--out"])
            .arg(&out_dir)
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let run = Run::new(&out_dir, out);
        let summary = run.summary();
        assert_eq!(
            run.code(),
            0,
            "run {attempt} of the untouched scaffold did not pass: {}\n{}",
            run.stderr(),
            summary["gates"]
        );
        assert_eq!(summary["golden"]["items"], 5);
    }
    // A second init refuses to overwrite.
    let out = assert_cmd::Command::cargo_bin("goldgate")
        .unwrap()
        .args(["init"])
        .arg(&target)
        .output()
        .unwrap();
    assert_exit(&out, 2);
}

/// The shipped example runs from the repository with no key and no network, and shows a real diff.
#[test]
fn shipped_example_runs_and_shows_regressions_and_improvements() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out_dir = tempfile::tempdir().unwrap();
    let out = assert_cmd::Command::cargo_bin("goldgate")
        .unwrap()
        .current_dir(root)
        .env("NO_COLOR", "1")
        .env_remove("OPENAI_API_KEY")
        .args(["run", "--out"])
        .arg(out_dir.path())
        .output()
        .unwrap();
    let run = Run::new(root, out);
    assert!(matches!(run.code(), 0 | 1), "{}", run.stderr());
    let s = run.summary();
    assert!(s["golden"]["items"].as_u64().unwrap() >= 40);
    assert_eq!(s["golden"]["locked"], true);
    assert!(s["items"]["regressed"].as_u64().unwrap() > 0);
    assert!(s["items"]["improved"].as_u64().unwrap() > 0);
    assert_eq!(s["models"]["current"]["metrics"]["errors"], 0);
    assert_eq!(
        s["models"]["candidate"]["metrics"]["tokens"]["estimated"],
        true
    );
    let code = run.code();
    assert_eq!(code == 0, s["verdict"] == "pass");
    // The story the README tells, from the deterministic parts of the run: more keyword passes,
    // and leaks of forbidden strings that the fifth gate fails on.
    let (cur, cand) = (
        &s["models"]["current"]["metrics"],
        &s["models"]["candidate"]["metrics"],
    );
    assert_eq!(
        (cur["passed"].as_u64(), cand["passed"].as_u64()),
        (Some(30), Some(32))
    );
    assert_eq!(
        (
            cur["forbidden_found"].as_u64(),
            cand["forbidden_found"].as_u64()
        ),
        (Some(0), Some(10))
    );
    let leaks = s["gates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["metric"] == "forbidden_rate")
        .expect("the example gates on leaks");
    assert_eq!(leaks["outcome"], "fail", "{leaks}");
    assert_eq!(s["verdict"], "fail");
}

/// Without the `gguf` feature, the local example is refused before anything runs, saying how to
/// build a goldgate that runs it.
#[cfg(not(feature = "gguf"))]
#[test]
fn local_example_without_the_gguf_feature_says_how_to_build() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = assert_cmd::Command::cargo_bin("goldgate")
        .unwrap()
        .current_dir(root)
        .args(["validate", "-c", "examples/local/goldgate.toml"])
        .output()
        .unwrap();
    assert_exit(&out, 2);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("providers/smollm2.toml") && err.contains("built without the gguf feature"),
        "{err}"
    );
    assert!(
        err.contains("cargo build --release --features gguf"),
        "{err}"
    );
}

/// Every shipped configuration file loads.
#[test]
fn every_shipped_provider_and_golden_set_loads() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for eval in ["goldgate.toml", "examples/local/goldgate.toml"] {
        goldgate::config::EvalConfig::load(&root.join(eval))
            .unwrap_or_else(|e| panic!("{eval}: {e}"));
    }
    let example = root.join("examples/local/providers");
    for entry in std::fs::read_dir(root.join("providers"))
        .unwrap()
        .chain(std::fs::read_dir(&example).unwrap())
    {
        let path = entry.unwrap().path();
        goldgate::config::ProviderConfig::load(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    for entry in std::fs::read_dir(root.join("goldens")).unwrap() {
        let dir = entry.unwrap().path();
        let set = goldgate::golden::GoldenSet::load(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        set.require_locked().unwrap();
    }
}

/// After a failed gate, `--rerun` runs just the items that regressed, with more trials, under the
/// evaluation the run recorded; the new run says what it re-ran.
#[test]
fn rerun_takes_only_the_regressed_items() {
    let server = MockServer::start(|seen| {
        if seen.model == "candidate" && (seen.prompt == "q1" || seen.prompt == "q3") {
            Reply::answer("no idea")
        } else {
            Reply::answer("it is ok")
        }
    });
    let items: Vec<_> = (0..6)
        .map(|i| item(&format!("i{i}"), &format!("q{i}"), &["ok"]))
        .collect();
    let project = Project::openai(&server.base_url(), &items, "");
    let first = project.run(&[]);
    assert_eq!(first.code(), 1, "{}", first.stderr());
    let dir = first.dir.clone().unwrap();
    // The terminal says where the report is and how to re-run; the run directory stays last.
    let stdout = first.stdout();
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[lines.len() - 2].ends_with("report.html")
            && lines[lines.len() - 2].starts_with("report: "),
        "{stdout}"
    );
    assert!(
        stdout.contains("re-run the 2 regressed item(s): goldgate run --rerun"),
        "{stdout}"
    );
    let seen_before = server.seen().len();
    assert_eq!(seen_before, 12);

    let rerun = project.run(&["--rerun", dir.to_str().unwrap(), "--repeat", "3"]);
    assert_eq!(rerun.code(), 1, "{}", rerun.stderr());
    let s = rerun.summary();
    assert_eq!(s["golden"]["items"], 2);
    assert_eq!(s["repeats"], 3);
    assert_eq!(s["rerun_of"]["run_id"], first.summary()["run_id"]);
    assert_eq!(s["rerun_of"]["only"], "regressed");
    let mut ids: Vec<String> = rerun
        .results()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids, ["i1", "i3"]);
    assert_eq!(server.seen().len() - seen_before, 2 * 3 * 2);
    assert!(
        rerun
            .stdout()
            .contains("a re-run of the 2 regressed item(s)")
    );

    // Nothing improved in the first run: `changed` is the two regressions, `failed` the same.
    let changed = project.run(&["--rerun", dir.to_str().unwrap(), "--rerun-only", "changed"]);
    assert_eq!(changed.summary()["golden"]["items"], 2);
    // A run with nothing to re-run says so (exit 2), and so does a diff directory.
    let clean = MockServer::start(|_| Reply::answer("it is ok"));
    let ok_project = Project::openai(&clean.base_url(), &items, "");
    let ok = ok_project.run(&["--quiet"]);
    assert_eq!(ok.code(), 0, "{}", ok.stderr());
    let none = ok_project.run(&["--rerun", ok.dir.as_ref().unwrap().to_str().unwrap()]);
    assert_exit(&none, 2);
    assert!(
        none.stderr().contains("no item regressed"),
        "{}",
        none.stderr()
    );
}

/// An item no check applies to would pass whatever the model said: an error naming its line,
/// unless the evaluation opts in.
#[test]
fn an_item_with_no_check_is_an_error_unless_allowed() {
    let project = Project::openai("http://127.0.0.1:9/v1", &[item("a", "q", &["ok"])], "");
    project.golden(&[
        item("a", "q", &["ok"]),
        serde_json::json!({"id": "b", "question": "q2", "context": "some text"}),
        serde_json::json!({"id": "c", "question": "q3", "expected": "an answer"}),
    ]);
    let out = project.cmd().arg("validate").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("items.jsonl:2: item `b` has no check")
            && err.contains("items.jsonl:3: item `c` has no check")
            && err.contains("allow_unchecked = true"),
        "{err}"
    );
    // `run` refuses it the same way, before anything is sent.
    assert_eq!(project.run(&[]).code(), 2);
    // `expected` is a check once similarity has a threshold; the other item still needs one.
    project.write(
        "goldgate.toml",
        &crate::support::eval_toml("[scoring]\nsimilarity = { threshold = 0.5 }\n"),
    );
    let out = project.cmd().arg("validate").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("item `b`") && !err.contains("item `c`"),
        "{err}"
    );
    project.write(
        "goldgate.toml",
        &crate::support::eval_toml("[scoring]\nallow_unchecked = true\n"),
    );
    let out = project.cmd().arg("validate").output().unwrap();
    assert_exit(&out, 0);
}

/// A latency gate measures the whole machine: every run records what the machine was doing.
#[test]
fn run_records_the_machine_and_golden_stats_reads_plainly() {
    let server = MockServer::start(|_| Reply::answer("ok"));
    let project = Project::openai(&server.base_url(), &[item("a", "q", &["ok"])], "");
    let run = project.run(&["--quiet"]);
    let dir = run.dir.as_ref().unwrap();
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("run.json")).unwrap()).unwrap();
    assert!(manifest["machine"]["cpus"].as_u64().unwrap() >= 1);
    if cfg!(target_os = "linux") {
        let load = manifest["machine"]["load_avg"].as_array().unwrap();
        assert_eq!(load.len(), 3);
        assert!(load.iter().all(|l| l.as_f64().unwrap() >= 0.0));
    }
    assert_eq!(run.summary()["machine"], manifest["machine"]);
    let out = project
        .cmd()
        .args(["golden", "stats", "goldens/set"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("lock: locked at version 1"), "{stdout}");
}

/// A prompt that renders for some items and not others (an index past the end of `contexts`) is
/// refused before anything is sent, naming the items; it was sent as a substitute prompt.
#[test]
fn a_prompt_that_fails_to_render_for_an_item_is_refused_before_any_call() {
    let server = MockServer::start(|_| Reply::answer("ok"));
    let mut two = item("two-passages", "q", &["ok"]);
    two["context"] = serde_json::json!(["First passage.", "Second passage."]);
    let items = vec![two, item("one-passage", "q", &["ok"])];
    let project = Project::openai(&server.base_url(), &items, "");
    project.write(
        "goldgate.toml",
        &eval_toml("").replace("{{ question }}", "{{ contexts[1] }}"),
    );
    for cmd in [&["validate"][..], &["run"][..]] {
        let out = project.cmd().args(cmd).output().unwrap();
        assert_exit(&out, 2);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("field `prompt`") && err.contains("`one-passage`"),
            "{cmd:?}: {err}"
        );
        assert!(!err.contains("`two-passages`"), "{cmd:?}: {err}");
    }
    assert!(server.seen().is_empty(), "nothing was sent");
}
