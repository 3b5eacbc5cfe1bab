//! Reports: snapshots of report.md and junit.xml for a fixed run directory, `goldgate report`
//! after a crash, and `goldgate diff` between stored runs.

use std::path::{Path, PathBuf};

use crate::server::{MockServer, Reply};
use crate::support::{Project, Run, assert_exit, item};

fn fixture() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    std::fs::create_dir(&dir).unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/run-basic");
    for f in ["run.json", "items.jsonl", "results.jsonl"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    (tmp, dir)
}

fn goldgate() -> assert_cmd::Command {
    let mut c = assert_cmd::Command::cargo_bin("goldgate").unwrap();
    c.env("NO_COLOR", "1").env_remove("CI");
    c
}

/// The version changes with every release; the snapshot should not.
fn stable(text: &str) -> String {
    text.replace(env!("CARGO_PKG_VERSION"), "[version]")
}

#[test]
fn report_renders_every_format_from_a_run_directory() {
    let (_tmp, dir) = fixture();
    let out = goldgate().arg("report").arg(&dir).output().unwrap();
    assert_exit(&out, 0);
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    insta::assert_snapshot!("report_md", stable(&md));
    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    insta::assert_snapshot!("junit_xml", stable(&junit));
    assert!(dir.join("report.html").exists());
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["items"]["regressed"], 3);
    // Seven items: the accuracy and faithfulness gates' intervals straddle their bounds.
    assert_eq!(summary["verdict"], "inconclusive");
}

#[test]
fn junit_has_the_common_schema_shape() {
    let (_tmp, dir) = fixture();
    goldgate()
        .args(["report", "--format", "junit"])
        .arg(&dir)
        .assert()
        .success();
    assert!(
        !dir.join("report.html").exists(),
        "--format limits what is written"
    );
    let text = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    let suites: Vec<_> = root
        .children()
        .filter(|n| n.has_tag_name("testsuite"))
        .collect();
    let names: Vec<_> = suites
        .iter()
        .map(|s| s.attribute("name").unwrap())
        .collect();
    assert_eq!(names, ["gates", "items"]);
    for suite in &suites {
        let cases: Vec<_> = suite
            .children()
            .filter(|n| n.has_tag_name("testcase"))
            .collect();
        assert_eq!(
            suite.attribute("tests").unwrap().parse::<usize>().unwrap(),
            cases.len()
        );
        let failures = cases
            .iter()
            .filter(|c| c.children().any(|n| n.has_tag_name("failure")))
            .count();
        assert_eq!(
            suite
                .attribute("failures")
                .unwrap()
                .parse::<usize>()
                .unwrap(),
            failures
        );
        let skipped = cases
            .iter()
            .filter(|c| c.children().any(|n| n.has_tag_name("skipped")))
            .count();
        assert_eq!(
            suite
                .attribute("skipped")
                .unwrap()
                .parse::<usize>()
                .unwrap(),
            skipped,
            "testsuite@skipped counts its <skipped> cases (inconclusive gates among them)"
        );
        for a in ["errors", "skipped", "timestamp"] {
            assert!(suite.attribute(a).is_some(), "testsuite@{a}");
        }
        for c in cases {
            for a in ["name", "classname", "time"] {
                assert!(c.attribute(a).is_some(), "testcase@{a}");
            }
            assert!(c.attribute("time").unwrap().parse::<f64>().is_ok());
            if let Some(f) = c.children().find(|n| n.has_tag_name("failure")) {
                assert!(f.attribute("message").is_some() && f.attribute("type").is_some());
            }
        }
    }
    let items = suites[1];
    let failed: Vec<_> = items
        .children()
        .filter(|c| c.children().any(|n| n.has_tag_name("failure")))
        .map(|c| c.attribute("name").unwrap())
        .collect();
    assert_eq!(failed, ["refund-window", "shipping-cost", "xss-probe"]);
}

/// A run killed mid-write: no summary, a torn last line. `report` still renders, says so, and
/// reports the run as interrupted.
#[test]
fn report_after_a_crash() {
    let (_tmp, dir) = fixture();
    let results = std::fs::read_to_string(dir.join("results.jsonl")).unwrap();
    let mut lines: Vec<&str> = results.lines().collect();
    lines.truncate(lines.len() - 3);
    let torn = &results.lines().nth(lines.len()).unwrap()[..40];
    std::fs::write(
        dir.join("results.jsonl"),
        format!("{}\n{torn}", lines.join("\n")),
    )
    .unwrap();
    let out = goldgate().arg("report").arg(&dir).output().unwrap();
    assert_exit(&out, 0);
    assert!(String::from_utf8_lossy(&out.stderr).contains("cut off"));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["status"], "interrupted");
    assert_eq!(summary["verdict"], "inconclusive");
    assert_eq!(summary["models"]["current"]["metrics"]["requests"], 6);
    assert_eq!(summary["models"]["candidate"]["metrics"]["requests"], 5);
    assert!(summary["items"]["incomplete"].as_u64().unwrap() >= 1);
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(md.contains("INTERRUPTED"), "{md}");

    let out = goldgate()
        .arg("report")
        .arg(dir.join("nope"))
        .output()
        .unwrap();
    assert_exit(&out, 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a goldgate run directory"));
}

/// A report re-rendered from a live run's directory gives the same summary the run wrote.
#[test]
fn report_rebuilds_the_summary_a_run_wrote() {
    let server = MockServer::start(|seen| {
        if seen.model == "candidate" && seen.prompt.ends_with('3') {
            Reply::Status {
                code: 503,
                retry_after: None,
                body: String::new(),
            }
        } else {
            Reply::answer("ok")
        }
    });
    let items: Vec<_> = (0..8)
        .map(|i| item(&format!("i{i}"), &format!("q{i}"), &["ok"]))
        .collect();
    let project = Project::openai(&server.base_url(), &items, "retries = 0");
    let run = project.run(&["--quiet"]);
    let dir = run.dir.clone().unwrap();
    let mut before = run.summary();
    goldgate().arg("report").arg(&dir).assert().success();
    let mut after: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    before.as_object_mut().unwrap().remove("finished_at");
    after.as_object_mut().unwrap().remove("finished_at");
    assert_eq!(before, after);
}

/// Last night's candidate against tonight's: items matched by id, the gates applied, and a loud
/// warning when the golden sets differ.
#[test]
fn diff_compares_two_stored_runs() {
    let answers = |good: bool| {
        move |seen: &crate::server::Seen| {
            if !good && seen.prompt == "q1" {
                Reply::answer("no idea")
            } else {
                Reply::answer("it is ok")
            }
        }
    };
    let night = MockServer::start(answers(true));
    let items: Vec<_> = (0..4)
        .map(|i| item(&format!("i{i}"), &format!("q{i}"), &["ok"]))
        .collect();
    let project = Project::openai(&night.base_url(), &items, "");
    let a = project.run(&["--quiet"]);
    let today = MockServer::start(answers(false));
    let project_b = Project::openai(&today.base_url(), &items, "");
    let b = project_b.run(&["--quiet"]);
    let out_dir = tempfile::tempdir().unwrap();
    let out = goldgate()
        .arg("diff")
        .arg(a.dir.as_ref().unwrap())
        .arg(b.dir.as_ref().unwrap())
        .arg("--out")
        .arg(out_dir.path())
        .output()
        .unwrap();
    let diff = Run::new(out_dir.path(), out);
    assert_eq!(
        diff.code(),
        1,
        "accuracy fell from 100% to 75%: {}",
        diff.stderr()
    );
    assert!(
        diff.stdout().contains("top regressions:"),
        "{}",
        diff.stdout()
    );
    assert!(diff.stdout().contains("i1"), "{}", diff.stdout());
    // A diff names what it compares: the two runs, not "current" and "candidate".
    let (run_a, run_b) = (
        a.summary()["run_id"].as_str().unwrap().to_owned(),
        b.summary()["run_id"].as_str().unwrap().to_owned(),
    );
    assert!(
        diff.stdout()
            .contains(&format!("A = run {run_a} (the baseline), B = run {run_b}")),
        "{}",
        diff.stdout()
    );
    assert!(
        diff.stdout().contains("A: candidate   B: candidate"),
        "{}",
        diff.stdout()
    );
    let md = std::fs::read_to_string(diff.dir.as_ref().unwrap().join("report.md")).unwrap();
    assert!(
        md.contains("| Metric | A: candidate | B: candidate |"),
        "{md}"
    );
    assert!(md.contains(&format!("A = run `{run_a}`")), "{md}");
    let html = std::fs::read_to_string(diff.dir.as_ref().unwrap().join("report.html")).unwrap();
    assert!(html.contains(r#"data-current="A: candidate""#), "{html}");
    assert!(
        !diff.stderr().contains("WARNING"),
        "same golden set: no warning"
    );
    let s = diff.summary();
    assert_eq!(s["items"]["regressed"], 1);
    assert_eq!(s["golden"]["items"], 4);
    for f in ["report.html", "report.md", "junit.xml", "summary.json"] {
        assert!(diff.dir.as_ref().unwrap().join(f).exists(), "{f}");
    }

    // Run B over an edited set (one item changed, one added): a loud warning, ids matched.
    let mut edited = items.clone();
    edited[0]["question"] = "q0 changed".into();
    edited.push(item("extra", "q-extra", &["ok"]));
    project_b.golden(&edited);
    let b2 = project_b.run(&["--quiet"]);
    let out = goldgate()
        .arg("diff")
        .arg(a.dir.as_ref().unwrap())
        .arg(b2.dir.as_ref().unwrap())
        .arg("--out")
        .arg(out_dir.path())
        .output()
        .unwrap();
    let diff = Run::new(out_dir.path(), out);
    assert!(
        diff.stderr()
            .contains("WARNING: the two runs used different golden sets"),
        "{}",
        diff.stderr()
    );
    let s = diff.summary();
    assert_eq!(s["golden"]["items"], 4, "the extra item is only in B");
    assert!(s["warnings"].as_array().unwrap().len() >= 2);
    let md = std::fs::read_to_string(diff.dir.as_ref().unwrap().join("report.md")).unwrap();
    assert!(md.contains("different golden sets"), "{md}");
}

// report.md at the extremes: whatever the run, it stays under GitHub's 65,536-character limit
// for a step summary or a pull-request comment, the verdict and the gates first and whole.

/// GitHub's limit for a comment or a step summary, in characters; bytes are never fewer.
const GITHUB_LIMIT: usize = 65_536;

/// A run directory written straight to disk, as large and as hostile as a test needs: no model is
/// called, `goldgate report` renders it.
#[derive(Default)]
struct Synthetic {
    items: Vec<serde_json::Value>,
    results: Vec<serde_json::Value>,
    gates: Vec<(String, serde_json::Value)>,
    warnings: Vec<String>,
    candidate_model: Option<String>,
}

impl Synthetic {
    /// One item and its two answers; `checks` are the result's checks per side.
    fn item(
        &mut self,
        item: serde_json::Value,
        answers: [&str; 2],
        checks: [serde_json::Value; 2],
    ) {
        let id = item["id"].clone();
        self.items.push(item);
        for ((model, answer), checks) in ["current", "candidate"]
            .into_iter()
            .zip(answers)
            .zip(checks)
        {
            let pass = checks
                .as_object()
                .unwrap()
                .values()
                .all(|c| c["pass"] == true);
            self.results.push(serde_json::json!({
                "id": id, "model": model, "trial": 0, "ok": true, "pass": pass,
                "answer": answer, "latency_ms": 100.0, "attempts": 1,
                "tokens": {"input": 10, "output": 5, "estimated": false},
                "cost_usd": 0.0001, "checks": checks, "error": null,
            }));
        }
    }

    fn gate(&mut self, metric: &str, bound: serde_json::Value) {
        self.gates.push((metric.to_owned(), bound));
    }

    /// `goldgate report --format md` over it: report.md's text.
    fn report_md(&self) -> String {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        std::fs::create_dir(&dir).unwrap();
        let mut manifest: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/run-basic/run.json"),
            )
            .unwrap(),
        )
        .unwrap();
        manifest["golden"]["items"] = self.items.len().into();
        // The layout is under test, not the statistics: the gates decide on point estimates.
        manifest["gates"] = self
            .gates
            .iter()
            .map(|(metric, bound)| {
                serde_json::json!({"metric": metric, "bound": bound, "decide": "point"})
            })
            .collect();
        manifest["warnings"] = self.warnings.clone().into();
        if let Some(m) = &self.candidate_model {
            manifest["models"]["candidate"]["model"] = m.clone().into();
        }
        let lines =
            |v: &[serde_json::Value]| v.iter().map(|l| l.to_string() + "\n").collect::<String>();
        std::fs::write(dir.join("run.json"), manifest.to_string()).unwrap();
        std::fs::write(dir.join("items.jsonl"), lines(&self.items)).unwrap();
        std::fs::write(dir.join("results.jsonl"), lines(&self.results)).unwrap();
        let out = goldgate()
            .args(["report", "--format", "md"])
            .arg(&dir)
            .timeout(std::time::Duration::from_secs(600))
            .output()
            .unwrap();
        assert_exit(&out, 0);
        std::fs::read_to_string(dir.join("report.md")).unwrap()
    }
}

/// A label check as a result line holds it.
fn label(expected: &str, predicted: &str) -> serde_json::Value {
    serde_json::json!({"label": {"pass": expected == predicted, "expected": expected, "predicted": predicted}})
}

/// The pipes that separate cells (an escaped `\|` is text).
fn cells(line: &str) -> usize {
    let mut n = 0;
    let mut escaped = false;
    for c in line.chars() {
        if std::mem::take(&mut escaped) {
            continue;
        }
        match c {
            '\\' => escaped = true,
            '|' => n += 1,
            _ => {}
        }
    }
    n
}

/// What every report.md must be, however large the run: under the limit, the verdict first and the
/// gate table right after the header, every table a table (each row as many cells as its header),
/// every `<details>` closed. Returns the gate table's rows.
fn assert_fits(md: &str) -> Vec<&str> {
    let (bytes, chars) = (md.len(), md.chars().count());
    eprintln!("report.md: {bytes} bytes, {chars} characters");
    assert!(
        bytes <= GITHUB_LIMIT && chars <= GITHUB_LIMIT,
        "report.md is {bytes} bytes, {chars} characters; the head of it:\n{}",
        md.chars().take(3000).collect::<String>()
    );
    assert!(
        md.starts_with("## goldgate: "),
        "{}",
        &md[..200.min(md.len())]
    );
    assert_eq!(md.lines().next().unwrap().matches("## ").count(), 1);
    let mut lines = md.lines().peekable();
    let mut tables = Vec::new();
    while let Some(line) = lines.next() {
        if !line.starts_with('|') {
            continue;
        }
        let head = line;
        let mut rows = Vec::new();
        while let Some(row) = lines.next_if(|l| !l.is_empty()) {
            assert!(
                row.starts_with('|') && row.ends_with('|'),
                "a table cut by {row:?}"
            );
            assert_eq!(cells(row), cells(head), "row {row:?} under {head:?}");
            rows.push(row);
        }
        tables.push((head, rows));
    }
    assert_eq!(
        md.matches("<details>").count(),
        md.matches("</details>").count()
    );
    let (head, rows) = tables.first().expect("a gate table");
    assert!(
        head.starts_with("| Gate | Rule |"),
        "the first table is the gates': {head}"
    );
    let gates_at = md.find("| Gate | Rule |").unwrap();
    let before = &md[..gates_at];
    assert!(
        !before.contains("| Metric")
            && !before.contains("**Classification")
            && !before.contains("### Regressions"),
        "only the header and warnings come before the gates"
    );
    rows[1..].to_vec()
}

fn labelled_item(id: &str, label: &str) -> serde_json::Value {
    serde_json::json!({"id": id, "question": format!("Which class is {id}?"), "label": label, "tags": ["classify"]})
}

/// A confusion matrix of `labels` classes: the current model right on every item, the candidate
/// wrong on the first `labels` (each predicted as the next class).
fn classification_run(labels: usize) -> Synthetic {
    let mut s = Synthetic::default();
    s.gate("accuracy", serde_json::json!({"min_ratio": 0.95}));
    s.gate("macro_f1", serde_json::json!({"min": 0.5}));
    let name = |k: usize| format!("class-{k:04}");
    for i in 0..labels * 2 {
        let (expected, k) = (name(i % labels), i % labels);
        let predicted = if i < labels {
            name((k + 1) % labels)
        } else {
            expected.clone()
        };
        s.item(
            labelled_item(&format!("item-{i:05}"), &expected),
            [&expected, &predicted],
            [label(&expected, &expected), label(&expected, &predicted)],
        );
    }
    s
}

fn assert_confusion_cut(md: &str, labels: usize) {
    let gates = assert_fits(md);
    assert_eq!(gates.len(), 2, "both gates, whole: {gates:?}");
    assert!(md.starts_with("## goldgate: ❌ FAIL"), "{}", &md[..200]);
    for side in ["Current", "Candidate"] {
        assert!(md.contains(&format!("**Classification, {}:**", side.to_lowercase())));
    }
    let note = format!("of {labels} labels");
    assert_eq!(
        md.matches(&note).count(),
        2,
        "each matrix says it was cut:\n{md}"
    );
    assert!(md.contains("`report.html`") && md.contains("`summary.json`"));
    assert!(md.contains(&format!("### Regressions ({labels})")));
    assert!(md.contains("more regression(s): see `report.html`"));
}

#[test]
fn report_md_fits_a_400_label_confusion_matrix() {
    assert_confusion_cut(&classification_run(400).report_md(), 400);
}

#[test]
fn report_md_fits_a_3000_label_confusion_matrix() {
    assert_confusion_cut(&classification_run(3000).report_md(), 3000);
}

/// Thousands of tags, one gate each, tag names long and full of Markdown: the gate table cannot
/// be whole, so it shows the failed gates first and says how many it left out and where they are.
#[test]
fn report_md_fits_thousands_of_per_tag_gates() {
    let mut s = Synthetic::default();
    let tags = 3000;
    for i in 0..tags {
        let tag = format!("team|{i:04}|<b>{}</b>\n`x`", "long-name ".repeat(25));
        let ok = i % 2 == 1;
        s.gate(
            &format!("accuracy[tag={tag}]"),
            serde_json::json!({"min": 0.5}),
        );
        s.item(
            serde_json::json!({"id": format!("t{i}"), "question": "q", "keywords": ["yes"], "tags": [tag]}),
            ["yes", if ok { "yes" } else { "no" }],
            [
                serde_json::json!({"keywords": {"pass": true, "matched": ["yes"], "missing": []}}),
                serde_json::json!({"keywords": {"pass": ok, "matched": [], "missing": if ok { vec![] } else { vec!["yes"] }}}),
            ],
        );
    }
    let md = s.report_md();
    let gates = assert_fits(&md);
    assert!(md.starts_with("## goldgate: ❌ FAIL"));
    assert!(gates.len() >= 50, "{} gate rows", gates.len());
    assert!(
        gates.iter().all(|g| g.ends_with("| ❌ FAIL |")),
        "failed gates come first when not all fit"
    );
    for g in &gates {
        assert!(g.chars().count() < 600, "a long tag is cut: {g}");
    }
    let note = format!("…and {} more gate(s)", tags - gates.len());
    assert!(
        md.contains(&note),
        "{note:?} in\n{}",
        &md[md.len() - 2000..]
    );
    assert!(md.contains("see `report.html` or `summary.json`"));
}

/// Ids of 500 characters full of Markdown and HTML, thousands of regressions with long answers
/// and long failure reasons, thousands of long warnings, a model name of 5,000 characters.
#[test]
fn report_md_fits_long_ids_many_regressions_and_warnings() {
    let mut s = Synthetic::default();
    s.gate("accuracy", serde_json::json!({"min_ratio": 0.95}));
    s.gate("error_rate", serde_json::json!({"max_ratio": 1.0}));
    s.candidate_model = Some(format!("model`\n| x |{}", "m".repeat(5000)));
    s.warnings = (0..2000)
        .map(|i| format!("warning {i}: {}", "<b>|a|</b> & ".repeat(200)))
        .collect();
    let missing: Vec<String> = (0..300)
        .map(|k| format!("keyword-{k}-{}", "k".repeat(40)))
        .collect();
    for i in 0..2000 {
        let id = format!("{i:04}|<script>`\n{}", "i&".repeat(248));
        s.item(
            serde_json::json!({"id": id, "question": "Why? ".repeat(500), "keywords": missing}),
            // Past 4,000 bytes, as these are, no word diff is computed: the test stays quick.
            [
                &"réponse juste | ".repeat(400),
                &"<img src=x> réponse fausse\n".repeat(400),
            ],
            [
                serde_json::json!({"keywords": {"pass": true, "matched": missing, "missing": []}}),
                serde_json::json!({"keywords": {"pass": false, "matched": [], "missing": missing}}),
            ],
        );
    }
    let md = s.report_md();
    let gates = assert_fits(&md);
    assert_eq!(gates.len(), 2, "{gates:?}");
    assert!(
        md.lines().next().unwrap().chars().count() < 600,
        "the model name is cut"
    );
    assert!(md.contains("### Regressions (2000)"));
    assert!(md.contains("more regression(s): see `report.html`"));
    assert!(md.contains("more warning(s): see `summary.json`"));
    assert!(md.contains("<details>"), "some regressions in detail");
    for line in md.lines().filter(|l| l.starts_with("<details>")) {
        assert!(
            line.chars().count() < 2000,
            "an id and its failure are cut: {line}"
        );
        assert!(!line.contains("<script>"), "{line}");
    }
}
