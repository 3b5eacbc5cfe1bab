//! summary.json validates against the committed JSON Schema (`schema/summary.schema.json`), and
//! the schema is strict enough to reject a summary that breaks the contract.

use serde_json::{Value, json};

use crate::server::{MockServer, Reply};
use crate::support::{Project, Run, item};

fn schema() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/summary.schema.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

fn validator_for(schema: &Value) -> jsonschema::Validator {
    jsonschema::validator_for(schema).unwrap_or_else(|e| panic!("the schema does not compile: {e}"))
}

/// Every validation error, as `instance path: message`.
fn errors(validator: &jsonschema::Validator, instance: &Value) -> Vec<(String, String)> {
    validator
        .iter_errors(instance)
        .map(|e| (e.instance_path().as_str().to_owned(), e.to_string()))
        .collect()
}

pub(crate) fn assert_valid(instance: &Value, what: &str) {
    let errors = errors(&validator_for(&schema()), instance);
    assert!(
        errors.is_empty(),
        "{what} does not match schema/summary.schema.json:\n{}",
        errors
            .iter()
            .map(|(path, msg)| format!("  at `{path}`: {msg}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// A real run against a loopback server: every prompt answered, except one that always gets a 500
/// (so the summary carries errors, per-kind counts and per-tag metrics).
fn mock_run_summary() -> Value {
    let server = MockServer::start(|seen| {
        if seen.prompt == "q-500" {
            Reply::Status {
                code: 500,
                retry_after: None,
                body: "{\"error\": \"boom\"}".into(),
            }
        } else {
            Reply::answer("It is 30 days.")
        }
    });
    let items = [
        item("i0", "q0", &["30 days"]),
        item("i1", "q1", &["30 days"]),
        item("i2", "q2", &["30 days"]),
        item("i3", "q-500", &["30 days"]),
    ];
    let project =
        Project::openai(&server.base_url(), &items, "retries = 0").without_error_ceiling();
    let run = project.run(&[]);
    assert!(
        matches!(run.code(), 0 | 1),
        "exit {}: {}",
        run.code(),
        run.stderr()
    );
    let s = run.summary();
    for side in ["current", "candidate"] {
        assert_eq!(
            s["models"][side]["metrics"]["errors_by_kind"]["http_status"], 1,
            "the 500 is in the summary being validated"
        );
    }
    s
}

#[test]
fn the_schema_compiles_and_matches_the_crate() {
    let schema = schema();
    jsonschema::meta::validate(&schema)
        .unwrap_or_else(|e| panic!("not a valid draft 2020-12 schema: {e}"));
    validator_for(&schema);
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert_eq!(schema["$id"], "https://goldgate.dev/schema/summary/v1");
    assert_eq!(
        schema["properties"]["schema"]["const"],
        goldgate::summary::SCHEMA
    );

    // The closed value sets follow the crate's own lists, so neither can drift from the other.
    let metric = validator_for(&schema["$defs"]["gate"]["properties"]["metric"]);
    for name in goldgate::metrics::MetricKind::names() {
        for form in [name.to_owned(), format!("{name}[tag=billing]")] {
            assert!(
                metric.is_valid(&json!(form)),
                "the schema rejects the gate metric `{form}`"
            );
        }
    }
    let kinds = &schema["$defs"]["metricValues"]["properties"]["errors_by_kind"];
    let mut required: Vec<&str> = kinds["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    let mut all: Vec<&str> = goldgate::provider::ErrorKind::ALL
        .iter()
        .map(|k| k.as_str())
        .collect();
    required.sort_unstable();
    all.sort_unstable();
    assert_eq!(required, all, "errors_by_kind lists every error kind");
}

#[test]
fn schema_accepts_a_real_runs_summary_with_errors() {
    assert_valid(&mock_run_summary(), "a mock-server run's summary.json");
}

#[test]
fn schema_accepts_the_shipped_examples_summary() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out_dir = tempfile::tempdir().unwrap();
    let out = assert_cmd::Command::cargo_bin("goldgate")
        .unwrap()
        .current_dir(root)
        .env("NO_COLOR", "1")
        .env_remove("OPENAI_API_KEY")
        .args(["run", "--out"])
        .arg(out_dir.path())
        .timeout(std::time::Duration::from_secs(120))
        .output()
        .unwrap();
    let run = Run::new(root, out);
    assert!(matches!(run.code(), 0 | 1), "{}", run.stderr());
    assert_valid(&run.summary(), "the shipped example's summary.json");
}

/// Metrics of a model that was never asked anything: the null branches of the schema.
#[test]
fn schema_accepts_metrics_with_nothing_answered() {
    let metrics = serde_json::to_value(goldgate::metrics::ModelTally::default().metrics()).unwrap();
    assert_eq!(metrics["accuracy"], Value::Null, "{metrics}");
    let schema = schema();
    let sub = json!({
        "$schema": schema["$schema"],
        "$defs": schema["$defs"],
        "$ref": "#/$defs/metrics",
    });
    let errors = errors(&validator_for(&sub), &metrics);
    assert!(errors.is_empty(), "{errors:#?}\n{metrics:#}");
}

/// Apply `edit` to a valid summary; validation must fail with an error at `path`.
fn assert_rejected(valid: &Value, what: &str, path: &str, edit: impl FnOnce(&mut Value)) {
    let mut bad = valid.clone();
    edit(&mut bad);
    assert_ne!(&bad, valid, "{what}: the edit changed nothing");
    let errors = errors(&validator_for(&schema()), &bad);
    assert!(
        errors.iter().any(|(at, _)| at == path),
        "{what}: expected an error at `{path}`, got {errors:#?}"
    );
}

fn remove(v: &mut Value, pointer: &str) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    v.pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .and_then(|o| o.remove(key))
        .unwrap_or_else(|| panic!("nothing at {pointer}"));
}

/// Set the value at `pointer`, adding the key if its parent object lacks it.
fn set(v: &mut Value, pointer: &str, value: Value) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    match v.pointer_mut(parent) {
        Some(Value::Object(o)) => {
            o.insert(key.to_owned(), value);
        }
        Some(Value::Array(a)) => a[key.parse::<usize>().unwrap()] = value,
        _ => panic!("nothing at {parent}"),
    }
}

#[test]
fn schema_rejects_summaries_that_break_the_contract() {
    let valid = mock_run_summary();
    assert_valid(&valid, "the summary the negative cases start from");
    assert_eq!(valid["verdict"], "pass", "the cases below assume a pass");

    // What the task names: a missing verdict, an unknown status.
    assert_rejected(&valid, "no verdict", "", |s| remove(s, "/verdict"));
    assert_rejected(&valid, "status `done`", "/status", |s| {
        set(s, "/status", json!("done"))
    });

    // The rest of the strict points.
    assert_rejected(&valid, "another schema", "/schema", |s| {
        set(s, "/schema", json!("goldgate/summary/v2"))
    });
    assert_rejected(&valid, "verdict `maybe`", "/verdict", |s| {
        set(s, "/verdict", json!("maybe"))
    });
    assert_rejected(&valid, "fail with every gate passing", "/verdict", |s| {
        set(s, "/verdict", json!("fail"))
    });
    assert_rejected(&valid, "no golden hash", "/golden", |s| {
        remove(s, "/golden/sha256")
    });
    assert_rejected(
        &valid,
        "accuracy above 1",
        "/models/candidate/metrics/accuracy",
        |s| set(s, "/models/candidate/metrics/accuracy", json!(1.5)),
    );
    assert_rejected(
        &valid,
        "negative error rate",
        "/models/current/metrics/error_rate",
        |s| set(s, "/models/current/metrics/error_rate", json!(-0.1)),
    );
    assert_rejected(
        &valid,
        "faithfulness off the 1-5 scale",
        "/models/current/metrics/faithfulness",
        |s| set(s, "/models/current/metrics/faithfulness", json!(0.5)),
    );
    assert_rejected(
        &valid,
        "latency without p99",
        "/models/current/metrics/latency_ms",
        |s| remove(s, "/models/current/metrics/latency_ms/p99"),
    );
    assert_rejected(
        &valid,
        "cost as a string",
        "/models/current/metrics/cost_per_1k",
        |s| set(s, "/models/current/metrics/cost_per_1k", json!("0.01")),
    );
    assert_rejected(
        &valid,
        "tokens without `estimated`",
        "/models/current/metrics/tokens",
        |s| remove(s, "/models/current/metrics/tokens/estimated"),
    );
    assert_rejected(
        &valid,
        "histogram as a number",
        "/models/current/metrics/histogram_us",
        |s| set(s, "/models/current/metrics/histogram_us", json!(3)),
    );
    assert_rejected(
        &valid,
        "an unknown error kind",
        "/models/current/metrics/errors_by_kind",
        |s| set(s, "/models/current/metrics/errors_by_kind/teapot", json!(1)),
    );
    assert_rejected(
        &valid,
        "a missing error kind",
        "/models/current/metrics/errors_by_kind",
        |s| remove(s, "/models/current/metrics/errors_by_kind/rate_limited"),
    );
    assert_rejected(
        &valid,
        "model metrics without by_tag",
        "/models/current/metrics",
        |s| remove(s, "/models/current/metrics/by_tag"),
    );
    assert_rejected(
        &valid,
        "by_tag inside by_tag",
        "/models/current/metrics/by_tag/even/by_tag",
        |s| set(s, "/models/current/metrics/by_tag/even/by_tag", json!({})),
    );
    assert_rejected(&valid, "a gate passing on a fail", "/gates/0/pass", |s| {
        set(s, "/gates/0/outcome", json!("fail"))
    });
    assert_rejected(&valid, "a gate outcome `ok`", "/gates/0/outcome", |s| {
        set(s, "/gates/0/outcome", json!("ok"))
    });
    assert_rejected(&valid, "a gate without a limit", "/gates/0", |s| {
        remove(s, "/gates/0/limit")
    });
    assert_rejected(&valid, "a gate with two bounds", "/gates/0/bound", |s| {
        set(s, "/gates/0/bound", json!({"min": 1.0, "max": 2.0}))
    });
    assert_rejected(&valid, "an unknown gate metric", "/gates/0/metric", |s| {
        set(s, "/gates/0/metric", json!("vibes"))
    });
    assert_rejected(
        &valid,
        "a provider kind `anthropic`",
        "/models/current/kind",
        |s| set(s, "/models/current/kind", json!("anthropic")),
    );
}
