//! `run --until-decided` against the loopback server, counting calls: a clearly worse candidate is
//! rejected after far fewer calls than the set has, the run directory is a normal one, and a
//! killed run resumes in the same order.

use std::time::Duration;

use serde_json::Value;

use crate::server::{MockServer, Reply};
use crate::support::{Project, Run, item};

/// Question `i` is answered right by the current model always, by the candidate on about 70% of
/// the items (a fixed set: a pure function of the item).
fn worse_candidate(model: &str, i: u64, delay: Duration) -> Reply {
    let right = model == "current" || (i.wrapping_mul(2_654_435_761) % 100) < 70;
    Reply::Answer {
        text: if right {
            format!("The answer is k{i}.")
        } else {
            "I do not know.".to_owned()
        },
        usage: Some((5, 3)),
        delay,
    }
}

fn project(server: &MockServer, n: usize, limits: &str) -> Project {
    let items: Vec<Value> = (0..n)
        .map(|i| {
            item(
                &format!("q-{i:03}"),
                &format!("question {i}"),
                &[&format!("k{i}")],
            )
        })
        .collect();
    let p = Project::openai(&server.base_url(), &items, limits);
    p.write(
        "goldgate.toml",
        "golden = \"goldens/set\"\ncurrent = \"providers/current.toml\"\ncandidate = \"providers/candidate.toml\"\nprompt = \"{{ question }}\"\n\n[[gate]]\nmetric = \"accuracy\"\nmin_ratio = 0.95\n",
    );
    p
}

fn question_number(prompt: &str) -> u64 {
    prompt.trim_start_matches("question ").parse().unwrap_or(0)
}

fn items_of(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("items.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

#[test]
fn a_clearly_worse_candidate_is_rejected_after_few_calls() {
    const N: usize = 600;
    let server = MockServer::start(|seen| {
        worse_candidate(&seen.model, question_number(&seen.prompt), Duration::ZERO)
    });
    let p = project(&server, N, "concurrency = 4\nretries = 0");
    let run = p.run(&[
        "--until-decided",
        "--batch",
        "20",
        "--min-items",
        "40",
        "--quiet",
    ]);
    assert_eq!(run.code(), 1, "rejected: {}", run.stderr());
    let calls = server.seen().len();
    assert!(
        calls < N,
        "{calls} calls: a 30-point drop is visible long before the {} calls of the whole set",
        2 * N
    );
    let s = run.summary();
    crate::schema::assert_valid(&s, "a --until-decided run's summary.json");
    let q = &s["sequential"];
    assert_eq!(q["stopped"], "decided", "{q}");
    let used = q["items_used"].as_u64().unwrap() as usize;
    let at = q["decided_at"].as_u64().unwrap() as usize;
    assert!((40..N).contains(&at) && at <= used, "{q}");
    assert_eq!((at - 40) % 20, 0, "a look of the plan: 40, 60, 80, …");
    // What was in flight at the stop is kept, no more: two models at 4 requests each.
    assert!(used <= at + 8, "{q}");
    assert_eq!(q["items_total"], N);
    assert_eq!(
        s["golden"]["items"], used,
        "the run is of the items it used"
    );
    let dir = run.dir.clone().unwrap();
    assert_eq!(items_of(&dir).len(), used);
    // In-flight requests finished and were recorded: the results hold every call.
    assert_eq!(run.results().len(), calls);
    let gate = &s["gates"][0];
    assert_eq!(gate["outcome"], "fail");
    assert!(
        gate["test"]["method"]
            .as_str()
            .unwrap()
            .contains("anytime-valid"),
        "{gate}"
    );
    assert_eq!(s["verdict"], "fail");
    // The order is seeded, not the file's: the first items asked are not q-000, q-001, …
    let first: Vec<String> = items_of(&dir).into_iter().take(5).collect();
    assert_ne!(first, ["q-000", "q-001", "q-002", "q-003", "q-004"]);
    // Every view says how far it went.
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        md.contains(&format!("decided after {at} of {N} items")),
        "{md}"
    );
    // `goldgate report` recomputes the same decision from the directory.
    let before = std::fs::read_to_string(dir.join("summary.json")).unwrap();
    let again = p
        .cmd()
        .arg("report")
        .arg(&dir)
        .arg("--format")
        .arg("json")
        .output()
        .unwrap();
    assert!(again.status.success(), "{again:?}");
    let after: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    let before: Value = serde_json::from_str(&before).unwrap();
    assert_eq!(after["gates"], before["gates"]);
    assert_eq!(after["sequential"], before["sequential"]);

    // The same set without --until-decided: every item, twice the calls.
    let seen = server.seen().len();
    let full = p.run(&["--quiet"]);
    assert_eq!(full.code(), 1);
    assert_eq!(server.seen().len() - seen, 2 * N);
}

#[test]
fn equal_models_are_not_stopped_by_noise() {
    // Both models always right: the candidate passes once the interval clears the margin, and
    // never fails.
    let server = MockServer::start(|seen| {
        worse_candidate("current", question_number(&seen.prompt), Duration::ZERO)
    });
    let p = project(&server, 300, "concurrency = 4\nretries = 0");
    let run = p.run(&[
        "--until-decided",
        "--batch",
        "25",
        "--min-items",
        "50",
        "--quiet",
    ]);
    let s = run.summary();
    assert_ne!(s["verdict"], "fail", "{}", s["gates"]);
    let q = &s["sequential"];
    assert!(
        ["decided", "exhausted"].contains(&q["stopped"].as_str().unwrap()),
        "{q}"
    );
}

/// kill -9 mid-run, then --resume: the rest of the run goes on in the same seeded order, and the
/// items used are a prefix of it.
#[test]
fn a_killed_run_resumes_in_the_same_order() {
    const N: usize = 300;
    let server = MockServer::start(|seen| {
        worse_candidate(
            &seen.model,
            question_number(&seen.prompt),
            Duration::from_millis(15),
        )
    });
    let p = project(&server, N, "concurrency = 2\nretries = 0");
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("goldgate"))
        .args([
            "run",
            "--quiet",
            "--until-decided",
            "--batch",
            "10",
            "--min-items",
            "20",
        ])
        .current_dir(p.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let dir = crate::support::run_dir_once_answered(&p.path().join("reports"), 12);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !dir.join("summary.json").exists(),
        "killed before it decided"
    );
    let order = items_of(&dir);
    assert_eq!(
        order.len(),
        N,
        "the whole order is on disk until the run decides"
    );
    let asked_before: usize = server.seen().len();

    let out = p
        .cmd()
        .arg("run")
        .arg("--resume")
        .arg(&dir)
        .output()
        .unwrap();
    let run = Run::new(p.path(), out);
    assert_eq!(run.code(), 1, "{}", run.stderr());
    // After the resume, the questions went out in the order's sequence.
    let resumed: Vec<String> = server.seen()[asked_before..]
        .iter()
        .filter(|s| s.model == "candidate")
        .map(|s| format!("q-{:03}", question_number(&s.prompt)))
        .collect();
    let position = |id: &String| order.iter().position(|o| o == id).unwrap();
    let positions: Vec<usize> = resumed.iter().map(position).collect();
    // Two in flight at a time: each question is at most a couple of places from its turn.
    for w in positions.windows(2) {
        assert!(w[1] + 2 >= w[0], "out of order: {positions:?}");
    }
    let s = run.summary();
    assert_eq!(s["sequential"]["stopped"], "decided");
    let used = items_of(&dir);
    assert_eq!(
        used[..],
        order[..used.len()],
        "the items used are a prefix of the order"
    );
    assert!(used.len() < N);
}
