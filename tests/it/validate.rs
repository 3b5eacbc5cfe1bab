//! `goldgate validate` on an evaluation file with a `[canary]` table: its problems are those
//! `goldgate canary` reports (file, field, fix; exit 2), all at once with the evaluation's own.

use crate::support::{Project, assert_exit, eval_toml, item};

/// A project whose providers are never called (validate makes no call without
/// `--check-reachable`), with `extra` written into goldgate.toml before the `[[gate]]` tables.
fn project(extra: &str) -> Project {
    let p = Project::openai(
        "http://127.0.0.1:9/v1",
        &[item("q-01", "question 1", &["k1"])],
        "retries = 0",
    );
    p.write("goldgate.toml", &eval_toml(extra));
    p
}

fn validate(p: &Project) -> std::process::Output {
    p.cmd().arg("validate").output().unwrap()
}

#[test]
fn bad_canary_gates_are_refused_naming_the_field_with_the_evaluations_problems() {
    let p = project(
        r#"repeats = 0
[canary]
steps = [50, 5]
[[canary.gate]]
metric = "nonsense"
max = 1
[[canary.gate]]
metric = "error_rate"
max = 1.5
[[canary.gate]]
metric = "faithfulness"
min = 4
"#,
    );
    let out = validate(&p);
    assert_exit(&out, 2);
    let err = String::from_utf8_lossy(&out.stderr);
    for expected in [
        // The evaluation's own problem, still reported…
        "goldgate.toml: field `repeats`",
        // …with every problem of [canary], each with the file and the field.
        "goldgate.toml: field `canary.steps`",
        "goldgate.toml: field `canary.gate[0]`: unknown gate metric `nonsense`",
        "goldgate.toml: field `canary.gate[1].max`: 1.5 is out of range",
        "goldgate.toml: field `canary.gate[2]`: a canary's logs do not measure `faithfulness`",
    ] {
        assert!(err.contains(expected), "no `{expected}` in:\n{err}");
    }
    assert!(
        err.matches("\n  fix: ").count() >= 5,
        "every problem has its fix:\n{err}"
    );
    // The unknown metric's fix names what a canary can gate on, not every metric.
    let fix = err
        .split("unknown gate metric `nonsense`")
        .nth(1)
        .and_then(|rest| rest.lines().find(|l| l.contains("fix:")))
        .unwrap_or_default();
    assert!(
        fix.contains("csat") && !fix.contains("faithfulness"),
        "{fix}"
    );
    assert!(out.stdout.is_empty(), "nothing is declared ok");
}

#[test]
fn a_good_canary_table_passes_and_a_file_without_one_is_unchanged() {
    let p = project(
        r#"[canary]
min_requests = 500
[[canary.gate]]
metric = "error_rate"
max_ratio = 1.0
critical = true
[[canary.gate]]
metric = "latency_p95_ms"
max_ratio = 1.1
"#,
    );
    let out = validate(&p);
    assert_exit(&out, 0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("ok: goldgate.toml"), "{stdout}");
    assert!(stdout.contains("[canary]: 2 gate rule(s)\n"), "{stdout}");

    // `critical` belongs to [[canary.gate]] only: in [[gate]] it is still refused.
    let p = project("[[gate]]\nmetric = \"error_rate\"\nmax = 0.5\ncritical = true\n");
    let out = validate(&p);
    assert_exit(&out, 2);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("field `gate[0].critical`"), "{err}");
    assert_eq!(
        err.matches("goldgate.toml").count(),
        1,
        "no [canary] table, nothing said of it: {err}"
    );

    let p = project("");
    let out = validate(&p);
    assert_exit(&out, 0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("[canary]"), "{stdout}");
}

#[test]
fn a_canary_only_file_is_no_evaluation_and_its_canary_problems_are_said_once() {
    let p = project("");
    // What `goldgate canary` reads happily: validate still wants the evaluation…
    p.write(
        "goldgate.toml",
        "[canary]\n[[canary.gate]]\nmetric = \"csat\"\nmin_ratio = 0\n",
    );
    let out = validate(&p);
    assert_exit(&out, 2);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing field `golden`"), "{err}");
    // …and names the canary's problem too.
    assert!(
        err.contains("field `canary.gate[0].min_ratio`: min_ratio = 0 always passes"),
        "{err}"
    );

    // A wrong type in [canary] stops both readings of the file: one problem, said once.
    p.write("goldgate.toml", "[canary]\nsteps = \"1, 5, 100\"\n");
    let out = validate(&p);
    assert_exit(&out, 2);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("canary.steps").count(), 1, "{err}");
}
