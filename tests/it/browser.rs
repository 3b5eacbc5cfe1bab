//! report.html as a person sees it: opened from disk in a real headless Chromium, with the DOM
//! read after the page's script ran. `.ci/run` installs Chromium (Debian `chromium`).

use std::path::{Path, PathBuf};
use std::process::Command;

fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("GOLDGATE_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

/// The DOM of `file` (with an optional `#fragment`) after its scripts ran.
pub(crate) fn dom(file: &Path, fragment: &str) -> Option<String> {
    let Some(bin) = chromium() else {
        crate::support::skip_or_fail(
            "Chromium (apt-get install chromium; .ci/run installs it): the HTML report is not checked in a browser",
        );
        return None;
    };
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=5000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("file://{}{fragment}", file.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).unwrap())
}

fn rendered_fixture() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    std::fs::create_dir(&dir).unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/run-basic");
    for f in ["run.json", "items.jsonl", "results.jsonl"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    assert_cmd::Command::cargo_bin("goldgate")
        .unwrap()
        .args(["report", "--format", "html"])
        .arg(&dir)
        .assert()
        .success();
    (tmp, dir.join("report.html"))
}

/// The ids of the item articles inside one group's element.
fn ids_in_group(dom: &str, group: &str) -> Vec<String> {
    let start = dom
        .find(&format!("id=\"group-{group}\""))
        .unwrap_or_else(|| panic!("no group {group}"));
    let end = dom[start..]
        .find("</details>")
        .map_or(dom.len(), |e| start + e);
    dom[start..end]
        .match_indices("data-id=\"")
        .map(|(i, m)| {
            let rest = &dom[start + i + m.len()..];
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .collect()
}

#[test]
fn html_report_renders_gates_groups_and_filters_in_chromium() {
    let (_tmp, html) = rendered_fixture();
    let Some(page) = dom(&html, "") else { return };
    // The gate table, one row per gate, with its outcome. Seven items cannot show the
    // candidate's accuracy is at least 95% of the current model's, nor that it is worse: the
    // point estimates say "fail", the intervals "inconclusive". One more error on the candidate
    // is no significant worsening (error_rate decides by harm).
    for (metric, outcome) in [
        ("accuracy", "inconclusive"),
        ("faithfulness", "inconclusive"),
        ("latency_p95_ms", "pass"),
        ("error_rate", "pass"),
    ] {
        assert!(
            page.contains(&format!(
                "<tr class=\"gate {outcome}\" data-metric=\"{metric}\">"
            )),
            "gate row {metric}"
        );
    }
    assert!(page.contains("class=\"banner warn\""));
    assert!(
        page.contains("INCONCLUSIVE — no gate failed"),
        "verdict banner"
    );
    // Each value with its interval, and why an undecided gate is undecided.
    assert!(page.contains("% ["), "intervals shown");
    assert!(
        page.contains("undecided: mean per item of candidate - 0.95 x current is in ["),
        "the undecided gate says why"
    );
    assert!(
        page.contains("<table id=\"comparisons\">") && page.contains("McNemar exact"),
        "the paired comparisons"
    );
    assert!(page.contains("95% confidence intervals over 7 items"));
    // The script ran (the CSP hash matches) and drew the regression group, regressions first.
    assert_eq!(
        ids_in_group(&page, "regressed"),
        ["refund-window", "shipping-cost", "xss-probe"]
    );
    assert_eq!(ids_in_group(&page, "improved"), ["points-expiry"]);
    assert!(page.contains("7 of 7 items"));
    // The word diff marks what the candidate added.
    assert!(
        page.contains("<span class=\"chg\"> Ask for code GW-50.</span>"),
        "word diff"
    );
    // Each side is headed by its name, read from the page (a diff names its runs there).
    assert!(
        page.contains("<h4>current — pass") && page.contains("<h4>candidate — fail"),
        "side headings"
    );
    // The latency chart is an inline SVG with both curves.
    assert!(
        page.contains("<polyline class=\"current\"")
            && page.contains("<polyline class=\"candidate\"")
    );

    // The filter: by text, by tag, by group — from a shareable link.
    let Some(filtered) = dom(&html, "#q=warranty") else {
        return;
    };
    assert!(filtered.contains("1 of 7 items"), "text filter");
    assert_eq!(ids_in_group(&filtered, "both_fail"), ["warranty"]);
    assert!(ids_in_group(&filtered, "regressed").is_empty());
    let Some(by_tag) = dom(&html, "#tag=returns") else {
        return;
    };
    assert!(by_tag.contains("2 of 7 items"), "tag filter");
    let Some(by_group) = dom(&html, "#group=regressed") else {
        return;
    };
    assert!(by_group.contains("3 of 7 items"), "group filter");
}

/// Model output is untrusted: script, event-handler and textarea-breaking payloads in answers
/// and questions are shown as text, and none of them runs.
#[test]
fn html_report_never_executes_model_output() {
    let (_tmp, html) = rendered_fixture();
    let source = std::fs::read_to_string(&html).unwrap();
    assert!(
        !source.contains("<script>document.title"),
        "payload escaped in the file"
    );
    assert!(
        !source.contains("<img src=x"),
        "payload escaped in the file"
    );
    let Some(page) = dom(&html, "") else { return };
    let title = &page[page.find("<title>").unwrap()..page.find("</title>").unwrap()];
    assert!(!title.contains("pwned"), "a payload ran: {title}");
    assert!(title.contains("goldgate: gpt-4o vs gpt-4"), "{title}");
    // Shown as text: the DOM holds the escaped characters, not elements.
    assert!(
        page.contains(
            "Sure &lt;/textarea&gt;&lt;img src=x onerror=\"document.title='pwned-img'\"&gt;"
        ),
        "answer shown as text"
    );
    assert!(
        page.contains("&lt;script&gt;document.title='pwned-question'&lt;/script&gt;"),
        "question shown as text"
    );
    assert!(
        !page.contains("<img src=\"x\""),
        "no image element was created"
    );
    assert!(
        !page.contains("<b>this</b>"),
        "no markup from the question was parsed"
    );
}
