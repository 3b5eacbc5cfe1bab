//! `goldgate golden from-log`: a golden set made from a logged request/response file.

use std::path::Path;

use assert_cmd::Command;
use serde_json::{Value, json};

const EMAIL: &str = "jane.doe@example.com";
const CARD: &str = "4111 1111 1111 1111";

fn goldgate(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("goldgate").unwrap();
    cmd.current_dir(dir);
    cmd
}

/// One request/response log line.
fn line(id: &str, system: Option<&str>, question: &str, answer: &str, route: &str) -> String {
    let mut messages = Vec::new();
    if let Some(s) = system {
        messages.push(json!({"role": "system", "content": s}));
    }
    messages.push(json!({"role": "user", "content": question}));
    json!({
        "id": id,
        "timestamp": "2025-03-01T10:00:00Z",
        "metadata": {"route": route},
        "request": {"model": "prod", "messages": messages, "temperature": 0.2},
        "response": {
            "id": format!("c-{id}"), "object": "chat.completion", "created": 1_740_823_200,
            "model": "prod",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": answer}}],
        },
    })
    .to_string()
}

/// Line 1: personal data; line 2: malformed; line 3: a plain request; line 4: line 3 again.
fn write_log(dir: &Path) {
    let log = [
        line(
            "r1",
            Some("Policy: refunds within 30 days of delivery."),
            &format!("I am {EMAIL}, I paid with {CARD}. Can I get a refund?"),
            &format!("Yes, within 30 days. We wrote to {EMAIL}."),
            "billing",
        ),
        "{\"request\": {\"model\": \"prod\", \"messages\": [".to_owned(),
        line(
            "r3",
            None,
            "Do you ship abroad?",
            "We ship to the EU.",
            "shipping",
        ),
        line("r4", None, "Do you ship abroad?", "Yes.", "shipping"),
    ]
    .join("\n");
    std::fs::write(dir.join("traffic.jsonl"), log + "\n").unwrap();
}

fn items(set: &Path) -> Vec<Value> {
    std::fs::read_to_string(set.join("items.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn from_log_writes_a_locked_redacted_set_with_provenance() {
    let tmp = tempfile::tempdir().unwrap();
    write_log(tmp.path());
    let out = goldgate(tmp.path())
        .args([
            "golden",
            "from-log",
            "traffic.jsonl",
            "--out",
            "goldens/traffic",
        ])
        .args(["--stratify", "route"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The malformed line is skipped and reported with its file and line; the repeat is counted.
    assert!(stdout.contains("1 malformed"), "{stdout}");
    assert!(stdout.contains("malformed: traffic.jsonl:2:"), "{stdout}");
    assert!(stdout.contains("1 duplicates"), "{stdout}");
    assert!(stdout.contains("items: 2"), "{stdout}");
    assert!(
        stdout.contains("goldgate golden lock goldens/traffic"),
        "{stdout}"
    );
    assert!(stdout.trim_end().ends_with("goldens/traffic"), "{stdout}");

    let set = tmp.path().join("goldens/traffic");
    goldgate(tmp.path())
        .args(["golden", "check", "goldens/traffic"])
        .assert()
        .success();
    let meta = std::fs::read_to_string(set.join("golden.toml")).unwrap();
    assert!(meta.contains("name = \"traffic\""), "{meta}");
    assert!(meta.contains("traffic.jsonl"), "{meta}");

    let items = items(&set);
    assert_eq!(items.len(), 2, "{items:?}");
    let first = &items[0];
    assert!(first["id"].as_str().unwrap().starts_with("log-"));
    assert_eq!(first["id"].as_str().unwrap().len(), "log-".len() + 12);
    assert_eq!(
        first["question"],
        "I am [email], I paid with [card]. Can I get a refund?"
    );
    assert_eq!(
        first["context"],
        json!(["Policy: refunds within 30 days of delivery."])
    );
    assert_eq!(
        first["reference"],
        "Yes, within 30 days. We wrote to [email]."
    );
    assert_eq!(first["tags"], json!(["billing"]));
    assert_eq!(
        first["provenance"],
        json!({"file": "traffic.jsonl", "line": 1, "timestamp": "2025-03-01T10:00:00Z", "id": "r1"})
    );
    assert!(first.get("keywords").is_none() && first.get("expected").is_none());
    let second = &items[1];
    assert_eq!(second["question"], "Do you ship abroad?");
    assert_eq!(second["reference"], "We ship to the EU.");
    assert_eq!(
        second["provenance"]["line"], 3,
        "the first of the two repeats is kept"
    );
    assert!(second.get("context").is_none());
    assert_ne!(first["id"], second["id"]);

    // No personal data anywhere in the set's directory.
    for entry in std::fs::read_dir(&set).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for secret in [EMAIL, "jane.doe", CARD, &CARD.replace(' ', "")] {
            assert!(!text.contains(secret), "{} holds {secret}", path.display());
        }
    }

    // The same logs give the same ids.
    goldgate(tmp.path())
        .args(["golden", "from-log", "traffic.jsonl", "--out", "again"])
        .assert()
        .success();
    let ids = |items: &[Value]| items.iter().map(|i| i["id"].clone()).collect::<Vec<_>>();
    assert_eq!(ids(&self::items(&tmp.path().join("again"))), ids(&items));
}

#[test]
fn from_log_refuses_an_existing_set() {
    let tmp = tempfile::tempdir().unwrap();
    write_log(tmp.path());
    let from_log = || {
        goldgate(tmp.path())
            .args([
                "golden",
                "from-log",
                "traffic.jsonl",
                "--out",
                "goldens/set",
            ])
            .output()
            .unwrap()
    };
    assert_eq!(from_log().status.code(), Some(0));
    let before = std::fs::read(tmp.path().join("goldens/set/items.jsonl")).unwrap();
    let again = from_log();
    assert_eq!(again.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("goldens/set"), "{stderr}");
    assert!(stderr.contains("not empty"), "{stderr}");
    let after = std::fs::read(tmp.path().join("goldens/set/items.jsonl")).unwrap();
    assert_eq!(before, after, "the existing set is untouched");
}

#[test]
fn from_log_without_a_usable_request_exits_2_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let response = json!({"id": "c", "object": "chat.completion", "created": 1, "model": "m",
                          "choices": [{"index": 0, "finish_reason": "stop",
                                       "message": {"role": "assistant", "content": "ok"}}]});
    let log = [
        json!({"request": {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
               "response": {"status_code": 500, "body": {"error": {"message": "down"}}}})
        .to_string(),
        json!({"request": {"model": "m", "messages": "not a list"}, "response": response})
            .to_string(),
    ]
    .join("\n");
    std::fs::write(tmp.path().join("bad.jsonl"), log + "\n").unwrap();
    let out = goldgate(tmp.path())
        .args(["golden", "from-log", "bad.jsonl", "--out", "goldens/none"])
        .args(["--format", "request-response"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no usable request in bad.jsonl"),
        "{stderr}"
    );
    for at in ["bad.jsonl:1", "bad.jsonl:2"] {
        assert!(stderr.contains(at), "the reasons name {at}: {stderr}");
    }
    assert!(!tmp.path().join("goldens/none").exists());
}

#[test]
fn from_log_samples_n_requests_by_seed() {
    let tmp = tempfile::tempdir().unwrap();
    let log: Vec<String> = (0..20)
        .map(|i| {
            line(
                &format!("r{i}"),
                None,
                &format!("Question {i}?"),
                "Answer.",
                "a",
            )
        })
        .collect();
    std::fs::write(tmp.path().join("t.jsonl"), log.join("\n") + "\n").unwrap();
    let sample = |out: &str, seed: &str| {
        goldgate(tmp.path())
            .args([
                "golden", "from-log", "t.jsonl", "--sample", "5", "--seed", seed,
            ])
            .args(["--out", out])
            .assert()
            .success();
        let items = items(&tmp.path().join(out));
        let meta = std::fs::read_to_string(tmp.path().join(out).join("golden.toml")).unwrap();
        assert!(meta.contains(&format!("seed {seed}")), "{meta}");
        items
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let a = sample("a", "7");
    assert_eq!(a.len(), 5);
    assert_eq!(sample("b", "7"), a, "one seed, one sample");
    assert_ne!(sample("c", "8"), a, "another seed, another sample");
}
