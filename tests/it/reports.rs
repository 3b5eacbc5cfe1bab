//! Reports: snapshots of report.md and junit.xml for a fixed run directory, `goldgate report`
//! after a crash, and `goldgate diff` between stored runs.

use std::path::{Path, PathBuf};

use crate::server::{MockServer, Reply};
use crate::support::{Project, Run, item};

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
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    insta::assert_snapshot!("report_md", stable(&md));
    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    insta::assert_snapshot!("junit_xml", stable(&junit));
    assert!(dir.join("report.html").exists());
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["items"]["regressed"], 3);
    assert_eq!(summary["verdict"], "fail");
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
    assert_eq!(out.status.code(), Some(0));
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
    assert_eq!(out.status.code(), Some(2));
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
