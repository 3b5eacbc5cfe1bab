//! goldgate canary's reports as people read them: report.html opened in a real headless Chromium,
//! report.md and junit.xml, from a simulated log whose candidate is 30% slower, with a hostile
//! tag and hostile variant names in it.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use goldgate::canary::simulate::Scenario;
use serde_json::json;

use crate::support::assert_exit;

/// Markup that would change the page's title if it ever ran.
const HOSTILE_TAG: &str = "<img src=x onerror=\"document.title='pwned-tag'\">";
const HOSTILE_VARIANT: &str = "<script>document.title='pwned-variant'</script>";
/// Breaks a Markdown table cell, makes code, a mention and a link, if not escaped.
const HOSTILE_MARKDOWN: &str = "a|b`@team [x](http://e)";

/// The canary's analysis directory, after `goldgate canary` judged the log (exit 1, rollback).
fn rollback_reports() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("canary.jsonl");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&log).unwrap());
    Scenario::no_effect(20_000, 7)
        .latency_shift(1.3)
        .write_jsonl(&mut out)
        .unwrap();
    for line in [
        json!({"timestamp": "2026-11-30T13:00:00Z", "variant": "current", "latency_ms": 812.5,
               "error": null, "tags": [HOSTILE_TAG]}),
        json!({"timestamp": "2026-11-30T13:00:01Z", "variant": HOSTILE_VARIANT, "latency_ms": 812.5}),
        json!({"timestamp": "2026-11-30T13:00:02Z", "variant": HOSTILE_MARKDOWN, "latency_ms": 812.5}),
    ] {
        writeln!(out, "{line}").unwrap();
    }
    out.into_inner().unwrap().sync_all().unwrap();

    let reports = tmp.path().join("reports");
    // In a directory of its own, so no goldgate.toml is read: the default canary gates judge.
    let run = assert_cmd::Command::cargo_bin("goldgate")
        .unwrap()
        .current_dir(tmp.path())
        .args(["canary", "--log"])
        .arg(&log)
        .args(["--candidate-percent", "50", "--out"])
        .arg(&reports)
        .output()
        .unwrap();
    assert_exit(&run, 1);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("decision: rollback"), "{stdout}");
    let dirs: Vec<PathBuf> = std::fs::read_dir(&reports)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() && p.to_string_lossy().ends_with("-canary"))
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let dir = dirs.into_iter().next().unwrap();
    for f in ["decision.json", "report.html", "report.md", "junit.xml"] {
        assert!(dir.join(f).is_file(), "{f} written");
    }
    (tmp, dir)
}

/// The gates of decision.json, as `metric rule`.
fn gate_names(dir: &Path) -> Vec<String> {
    let decision: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("decision.json")).unwrap()).unwrap();
    decision["gates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            format!(
                "{} {}",
                g["metric"].as_str().unwrap(),
                g["rule"].as_str().unwrap()
            )
        })
        .collect()
}

/// The element with `id` (an `<svg>` or a `<table>`) and what is inside it.
fn element<'a>(page: &'a str, tag: &str, id: &str) -> &'a str {
    let start = page
        .find(&format!("<{tag} id=\"{id}\""))
        .unwrap_or_else(|| panic!("no <{tag} id=\"{id}\"> in the page"));
    let end = page[start..]
        .find(&format!("</{tag}>"))
        .map_or(page.len(), |e| start + e);
    &page[start..end]
}

/// The `<tr>` of a gate in the gates table.
fn gate_row<'a>(page: &'a str, metric: &str) -> &'a str {
    let gates = element(page, "table", "gates");
    let at = gates
        .find(&format!("data-metric=\"{metric}\""))
        .unwrap_or_else(|| panic!("no gate row for {metric}"));
    let start = gates[..at].rfind("<tr").unwrap();
    let end = gates[at..].find("</tr>").map_or(gates.len(), |e| at + e);
    &gates[start..end]
}

#[test]
fn canary_reports_show_the_rollback_and_the_data_as_text() {
    let (_tmp, dir) = rollback_reports();
    let gates = gate_names(&dir);
    assert_eq!(gates.len(), 5, "the default canary gates: {gates:?}");

    // junit.xml: one suite, one case per gate and one for the split, the latency gate failing.
    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    let doc = roxmltree::Document::parse(&junit).expect("junit.xml is well-formed XML");
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .expect("a testsuite");
    assert_eq!(suite.attribute("name"), Some("goldgate canary"));
    let cases: Vec<roxmltree::Node> = suite
        .children()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    let names: Vec<&str> = cases.iter().filter_map(|c| c.attribute("name")).collect();
    let mut expected: Vec<&str> = gates.iter().map(String::as_str).collect();
    expected.push("sample-ratio");
    assert_eq!(names, expected, "one test case per gate, then the split");
    let failed: Vec<&str> = cases
        .iter()
        .filter(|c| c.children().any(|n| n.has_tag_name("failure")))
        .filter_map(|c| c.attribute("name"))
        .collect();
    assert_eq!(failed, ["latency_p95_ms candidate <= 1.1 x current"]);
    assert_eq!(suite.attribute("tests"), Some("6"));
    assert_eq!(suite.attribute("failures"), Some("1"));

    // report.md: the gate table, the latency gate failed, the logs' names escaped.
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(md.starts_with("# goldgate canary: rollback\n"), "{md}");
    assert!(
        md.contains("| Metric | Rule | Current | Candidate | Limit | Test statistic [interval] | Result | Note |"),
        "gate table header: {md}"
    );
    let latency = md
        .lines()
        .find(|l| l.starts_with("| latency\\_p95\\_ms |"))
        .expect("a gate row for latency_p95_ms");
    assert!(latency.contains("**FAIL**"), "{latency}");
    assert_eq!(latency.matches(" | ").count(), 7, "eight cells: {latency}");
    let passed = md
        .lines()
        .filter(|l| l.starts_with('|') && l.contains("**PASS**"))
        .count();
    assert_eq!(passed, 4, "{md}");
    assert!(!md.contains("<img") && !md.contains("<script"), "{md}");
    assert!(
        md.contains("&lt;img src=x onerror="),
        "the tag as text: {md}"
    );
    assert!(
        md.contains("| a\\|b\\`@&#8203;team \\[x\\](http://e) | 1 |"),
        "a name stays in its cell, no code, mention or link: {md}"
    );

    // report.html as Chromium shows it.
    let html = dir.join("report.html");
    let source = std::fs::read_to_string(&html).unwrap();
    assert!(
        !source.contains("<img") && !source.contains("<script"),
        "the payloads are escaped in the file"
    );
    let Some(page) = crate::browser::dom(&html, "") else {
        return;
    };
    let title = &page[page.find("<title>").unwrap()..page.find("</title>").unwrap()];
    assert!(title.contains("goldgate canary: rollback"), "{title}");
    assert!(
        page.contains("class=\"banner fail\" data-decision=\"rollback\">ROLLBACK"),
        "the decision banner"
    );
    assert!(
        page.contains("<li>gate failed: latency_p95_ms"),
        "the reason"
    );
    let row = gate_row(&page, "latency_p95_ms");
    assert!(
        row.starts_with("<tr class=\"gate fail\"") && row.contains(">FAIL<"),
        "{row}"
    );
    let ratio: f64 = row
        .split("× ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("the ratio of the p95s: {row}"));
    assert!(
        (1.2..1.4).contains(&ratio),
        "the candidate is 30% slower: {row}"
    );
    for metric in ["error_rate", "csat", "thumbs_up_rate", "accuracy"] {
        assert!(
            gate_row(&page, metric).starts_with("<tr class=\"gate pass\""),
            "{metric} passes"
        );
    }
    assert!(
        gate_row(&page, "error_rate").contains("critical"),
        "the critical marker"
    );

    // The latency distributions, overlaid: one filled series per arm, on an axis in ms.
    let overlay = element(&page, "svg", "latency-overlay");
    assert_eq!(overlay.matches("class=\"series ").count(), 2, "{overlay}");
    for arm in ["current", "candidate"] {
        let prefix = format!("<path class=\"series {arm}\" d=\"");
        let at = overlay
            .find(&prefix)
            .unwrap_or_else(|| panic!("{arm}'s series"))
            + prefix.len();
        let d = &overlay[at..at + overlay[at..].find('"').unwrap()];
        // 40 bins of two points each, closed along the axis.
        assert!(d.starts_with('M') && d.ends_with('Z'), "{d}");
        assert!(d.matches(" L").count() >= 80, "{d}");
    }
    assert!(overlay.contains("1000 ms"), "a tick in ms");
    assert!(
        page.contains("current (10,"),
        "the legend names the arms and their sizes"
    );

    // CSAT: five ratings, a bar per arm each; thumbs: down and up.
    let csat = element(&page, "svg", "csat-bars");
    assert_eq!(csat.matches("<rect class=\"bar current\"").count(), 5);
    assert_eq!(csat.matches("<rect class=\"bar candidate\"").count(), 5);
    let thumbs = element(&page, "svg", "thumbs-bars");
    assert_eq!(thumbs.matches("<rect class=\"bar ").count(), 4);

    // The metrics per time interval: both arms' lines, the candidate's p95 above.
    for id in [
        "timeline-requests",
        "timeline-error-rate",
        "timeline-latency-p95",
        "timeline-csat",
    ] {
        let chart = element(&page, "svg", id);
        assert_eq!(chart.matches("class=\"series ").count(), 2, "{id}");
    }

    // The logs' names are text on the page, not elements; nothing ran.
    assert!(!title.contains("pwned"), "a payload ran: {title}");
    assert!(!page.contains("<img"), "no image element was created");
    assert!(!page.contains("<script"), "the page has no script at all");
    assert!(
        page.contains("&lt;img src=x onerror=\"document.title='pwned-tag'\"&gt;"),
        "the tag shown as text"
    );
    assert!(
        page.contains("&lt;script&gt;document.title='pwned-variant'&lt;/script&gt;"),
        "the variant shown as text"
    );
    let tags = element(&page, "table", "tags");
    assert!(
        tags.contains("&lt;img src=x"),
        "the hostile tag has its row"
    );
}
