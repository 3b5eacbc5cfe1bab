//! Scorers end to end: the judge against a local server (valid JSON, invalid JSON, errors),
//! judge tokens kept apart, and classification, similarity, regex, JSON and fuzzy checks in a run.

use crate::server::{MockServer, Reply};
use crate::support::{Project, assert_exit, eval_toml};

fn with_usage(text: &str, input: u64, output: u64) -> Reply {
    Reply::Answer {
        text: text.to_owned(),
        usage: Some((input, output)),
        delay: std::time::Duration::ZERO,
    }
}

#[test]
fn judge_faithfulness_with_valid_and_invalid_json_and_errors() {
    let server = MockServer::start(|seen| {
        if seen.model != "judge" {
            // The judged models: answer with the question, which names the scenario.
            return with_usage(&format!("Answer to {}.", seen.prompt), 100, 20);
        }
        let p = &seen.prompt;
        if p.contains("q-error") {
            return Reply::Status {
                code: 500,
                retry_after: None,
                body: "judge down".into(),
            };
        }
        if p.starts_with("You split an answer") {
            if p.contains("q-prose") {
                return with_usage("I think the answer is fine.", 50, 10);
            }
            return with_usage(
                "```json\n{\"statements\": [\"The refund window is 30 days.\", \"Refunds are instant.\"]}\n```",
                50,
                10,
            );
        }
        // Verdicts: the first statement supported, the second not; the candidate's on q-good twice yes.
        with_usage(
            "{\"verdicts\": [{\"statement\": \"The refund window is 30 days.\", \"verdict\": 1}, {\"statement\": \"Refunds are instant.\", \"verdict\": \"no\"}]}",
            50,
            10,
        )
    });
    let items: Vec<_> = ["q-good", "q-prose", "q-error"]
        .iter()
        .map(|id| crate::support::item(id, id, &["Answer"]))
        .collect();
    let project = Project::openai(&server.base_url(), &items, "retries = 0");
    project.write(
        "providers/judge.toml",
        &format!(
            "kind = \"openai\"\nmodel = \"judge\"\nbase_url = \"{}\"\n[pricing]\ninput = 1.0\noutput = 1.0\n[limits]\nretries = 0\nconcurrency = 2\n",
            server.base_url()
        ),
    );
    project.write(
        "goldgate.toml",
        &eval_toml("[scoring]\nfaithfulness = { method = \"judge\", provider = \"providers/judge.toml\" }\n"),
    );
    let run = project.run(&[]);
    assert_eq!(run.code(), 0, "{}", run.stderr());

    // A valid judgement: 2 statements, 1 supported -> 1 + 4 x 1/2 = 3.
    let r = run.result("q-good", "candidate");
    assert_eq!(r["faithfulness"]["score"], 3.0, "{r}");
    assert_eq!(
        (
            r["faithfulness"]["claims"].as_u64(),
            r["faithfulness"]["supported"].as_u64()
        ),
        (Some(2), Some(1))
    );
    assert_eq!(r["judge"]["requests"], 2);
    // Prose instead of JSON: asked again once, then a judge error for the item, not a crash.
    let r = run.result("q-prose", "candidate");
    assert!(r["faithfulness"].is_null());
    assert_eq!(r["judge"]["requests"], 2, "retried once");
    assert!(
        r["judge"]["error"]
            .as_str()
            .unwrap()
            .contains("not the JSON asked for"),
        "{r}"
    );
    assert_eq!(r["ok"], true, "the judged answer itself is fine");
    // The judge's server failing: a judge error.
    let r = run.result("q-error", "candidate");
    assert!(
        r["judge"]["error"]
            .as_str()
            .unwrap()
            .contains("judge request failed"),
        "{r}"
    );
    assert_eq!(r["judge"]["requests"], 1);

    let s = run.summary();
    let m = &s["models"]["candidate"]["metrics"];
    // Judge tokens are never the candidate's: 3 requests x 100/20 are.
    assert_eq!(
        (
            m["tokens"]["input"].as_u64(),
            m["tokens"]["output"].as_u64()
        ),
        (Some(300), Some(60))
    );
    assert!(
        (m["cost_per_1k"].as_f64().unwrap() - (100.0 * 2.0 + 20.0 * 8.0) / 1e6 * 1000.0).abs()
            < 1e-12
    );
    let j = &m["judge"];
    assert_eq!(
        (
            j["answers"].as_u64(),
            j["errors"].as_u64(),
            j["requests"].as_u64()
        ),
        (Some(3), Some(2), Some(5))
    );
    assert_eq!(j["tokens"]["input"], 200, "4 answered judge calls x 50");
    assert_eq!(m["faithfulness"], 3.0);
    assert_eq!(m["faithfulness_scored"], 1);
    // The judged model's latency is its own: the judge's requests are not in its histogram.
    assert_eq!(m["requests"], 3);
}

#[test]
fn classification_similarity_regex_json_and_fuzzy_in_a_run() {
    let server = MockServer::start(|seen| {
        let cand = seen.model == "candidate";
        let text = match seen.prompt.as_str() {
            "ticket-1" => "Category: Billing",
            "ticket-2" => {
                if cand {
                    "Category: shipping"
                } else {
                    "Category: billing"
                }
            }
            "ticket-3" => "Category: Returns",
            "ticket-4" => {
                if cand {
                    "Category: returns"
                } else {
                    "Category: unsure"
                }
            }
            "json" => {
                if cand {
                    "{\"ok\": true}"
                } else {
                    "ok: true"
                }
            }
            "fuzzy" => "Send us an e-mail",
            _ => "Refunds take five business days",
        };
        Reply::answer(text)
    });
    let item = |id: &str, extra: serde_json::Value| {
        let mut v = serde_json::json!({"id": id, "question": id});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        v
    };
    let items = vec![
        item(
            "ticket-1",
            serde_json::json!({"label": "billing", "tags": ["cls"]}),
        ),
        item(
            "ticket-2",
            serde_json::json!({"label": "billing", "tags": ["cls"]}),
        ),
        item(
            "ticket-3",
            serde_json::json!({"label": "returns", "tags": ["cls"]}),
        ),
        item(
            "ticket-4",
            serde_json::json!({"label": "returns", "tags": ["cls"]}),
        ),
        item("json", serde_json::json!({"checks": [{"type": "json"}]})),
        item("fuzzy", serde_json::json!({"keywords": ["email"]})),
        item(
            "sim",
            serde_json::json!({"expected": "Refunds take 5 business days", "checks": [{"type": "regex", "pattern": "(?i)refund"}]}),
        ),
    ];
    let project = Project::openai(&server.base_url(), &items, "");
    project.write(
        "goldgate.toml",
        &eval_toml(
            "[scoring]\nkeywords = { fuzzy = 0.8 }\nsimilarity = { threshold = 0.5 }\nclassification = { extract = \"(?i)category:\\\\s*(\\\\w+)\" }\n[[gate]]\nmetric = \"macro_f1\"\nmin = 0.6\ndecide = \"point\"\n",
        ),
    );
    let run = project.run(&[]);
    assert!(matches!(run.code(), 0 | 1), "{}", run.stderr());
    let s = run.summary();
    let cur = &s["models"]["current"]["metrics"]["classification"];
    let cand = &s["models"]["candidate"]["metrics"]["classification"];
    // current: billing->billing x2, returns->returns, returns->"unsure" (other).
    assert_eq!(
        cur["confusion"]["predicted"],
        serde_json::json!(["billing", "returns", "(other)"])
    );
    assert_eq!(
        cur["confusion"]["counts"],
        serde_json::json!([[2, 0, 0], [0, 1, 1]])
    );
    // candidate: billing, shipping (other), returns, returns.
    assert_eq!(
        cand["confusion"]["counts"],
        serde_json::json!([[1, 0, 1], [0, 2, 0]])
    );
    let f1 = |c: &serde_json::Value| c["macro_f1"].as_f64().unwrap();
    // current: billing P1 R1 F1 1; returns P1 R.5 F1 2/3 -> 5/6. candidate: billing 1, .5 -> 2/3; returns P1 R1 -> 1 -> 5/6.
    assert!((f1(cur) - 5.0 / 6.0).abs() < 1e-9 && (f1(cand) - 5.0 / 6.0).abs() < 1e-9);
    let gate = s["gates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["metric"] == "macro_f1")
        .unwrap();
    assert_eq!(gate["pass"], true);
    // Macro-F1's interval is a seeded cluster bootstrap.
    assert!(
        gate["test"]["method"]
            .as_str()
            .unwrap()
            .starts_with("cluster bootstrap"),
        "{gate}"
    );
    let ci = &s["models"]["candidate"]["metrics"]["intervals"]["macro_f1"];
    let (lo, hi) = (ci[0].as_f64().unwrap(), ci[1].as_f64().unwrap());
    assert!((0.0..=1.0).contains(&lo) && lo <= hi && hi <= 1.0, "{ci}");

    let r = run.result("json", "current");
    assert_eq!(r["checks"]["json"]["pass"], false);
    assert_eq!(
        run.result("json", "candidate")["checks"]["json"]["pass"],
        true
    );
    let r = run.result("fuzzy", "candidate");
    assert_eq!(r["checks"]["keywords"]["pass"], true, "{r}");
    assert_eq!(r["checks"]["keywords"]["spans"][0]["span"], "e-mail");
    let r = run.result("sim", "candidate");
    assert_eq!(r["checks"]["regex"]["pass"], true);
    assert!(r["similarity"]["token_set"].as_f64().unwrap() > 0.5, "{r}");
    assert_eq!(r["checks"]["similarity"]["pass"], true);
    assert!(
        s["models"]["candidate"]["metrics"]["similarity"]["token_set"]
            .as_f64()
            .is_some()
    );

    // The reports show it: the confusion matrix in HTML and Markdown.
    let dir = run.dir.as_ref().unwrap();
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(
        html.contains("id=\"classification\"") && html.contains("macro-F1 0.833"),
        "confusion matrix section"
    );
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        md.contains("**Classification, candidate:** macro-F1 0.833"),
        "{md}"
    );
}

#[test]
fn a_bad_pattern_is_a_configuration_error_with_its_line() {
    let server = MockServer::start(|_| Reply::answer("ok"));
    let project = Project::openai(
        &server.base_url(),
        &[serde_json::json!({"id": "a", "question": "q", "keywords": ["ok"]})],
        "",
    );
    project.write(
        "goldens/set/items.jsonl",
        "{\"id\": \"a\", \"question\": \"q\"}\n{\"id\": \"b\", \"question\": \"q\", \"checks\": [{\"type\": \"regex\", \"pattern\": \"(unclosed\"}]}\n",
    );
    let out = project.cmd().arg("validate").output().unwrap();
    assert_exit(&out, 2);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("items.jsonl:2: field `checks`: not a valid regex"),
        "{err}"
    );
    project.golden(&[serde_json::json!({"id": "a", "question": "q"})]);
    project.write(
        "goldgate.toml",
        &eval_toml("[scoring]\nfaithfulness = { method = \"judge\" }\n"),
    );
    let out = project.cmd().arg("validate").output().unwrap();
    assert_exit(&out, 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs a provider"));
}
