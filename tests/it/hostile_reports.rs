//! Nothing a model, a server or a golden-set author writes forges a line of the terminal or of a
//! CI log, a heading, link, HTML, mention or table of report.md, or breaks junit.xml or
//! report.html: every construct below is sent as a model's answer, a model's name, a question, a
//! forbidden string, a server's error body (printed by `--verbose`) and the golden set's name,
//! through the real binary, and every report is read back as a reader would.

use crate::server::{MockServer, Reply};
use crate::support::{Project, Run};

/// What a terminal, a CI runner, GitHub's Markdown or an XML parser acts on, each with what it is.
const HOSTILE: &[(&str, &str)] = &[
    ("ANSI colour", "\u{1b}[31mRED\u{1b}[0m"),
    ("ANSI clear screen", "\u{1b}[2J\u{1b}[Hwiped"),
    (
        "OSC 8 hyperlink",
        "\u{1b}]8;;https://evil.example\u{1b}\\click\u{1b}]8;;\u{1b}\\",
    ),
    ("OSC window title", "\u{1b}]0;owned\u{7}title"),
    ("C1 CSI", "\u{9b}31mred"),
    ("carriage return", "all good\rFORGED PASS"),
    (
        "newline, workflow command",
        "ok\n::error::forged annotation",
    ),
    ("::set-output", "::set-output name=verdict::pass"),
    ("::add-mask:: after spaces", "  ::add-mask::everything"),
    ("::stop-commands::", "::stop-commands::pwned"),
    ("legacy ##[ mid-line", "see ##[error]legacy command"),
    ("Azure ##vso[", "##vso[task.complete result=Succeeded;]done"),
    ("bidi override", "\u{202e}LIAF\u{202c} looks like FAIL"),
    ("zero-width, NUL, DEL", "a\u{200b}b\u{0}c\u{7f}d"),
    ("tag characters", "hidden\u{e0041}\u{e0042}"),
    ("ATX heading", "# Forged heading"),
    ("setext heading", "Forged title\n==="),
    ("setext h2, rule", "Forged\n---"),
    ("indented heading", "intro\n   ## Forged"),
    ("link", "[click here](https://evil.example)"),
    ("image", "![pixel](https://evil.example/p.png)"),
    ("autolink", "<https://evil.example>"),
    ("img onerror", "<img src=x onerror=alert(1)>"),
    ("script", "</script><script>alert(1)</script>"),
    ("details breakout", "</summary></details>\n\n# out"),
    ("mention", "cc @octocat"),
    ("team mention", "cc @github/security"),
    ("table pipes", "a | b | c"),
    ("table row", "| x | y |\n|---|---|"),
    ("backticks", "``` ` code"),
    ("entities", "&lt;b&gt; &amp; &#64;octocat"),
    ("HTML comment", "<!-- hidden"),
    ("alert block", "> [!CAUTION]\n> forged"),
    ("math", "$\\color{red}{x}$"),
    ("list", "- one\n1. two"),
    ("CDATA end", "]]> <![CDATA[x]]>"),
    ("XML-illegal", "bad\u{1}\u{fffe}\u{ffff}xml"),
    ("quotes", "\"double\" 'single'"),
    ("CRLF", "line one\r\nline two"),
];

/// Constructs per run: each makes two regressions (an answer, an error), and the terminal shows
/// the first 10 of them.
const PER_RUN: usize = 5;

#[test]
fn hostile_text_is_inert_in_every_report_and_on_the_terminal() {
    let mut placements = 0;
    for chunk in HOSTILE.chunks(PER_RUN) {
        placements += run_chunk(chunk);
    }
    eprintln!(
        "{} constructs in {placements} placements (answer, question, forbidden string, error body \
         retried and final, model names, golden set name), none forged anything",
        HOSTILE.len()
    );
}

/// An id as long and as odd as an id may be (visible characters), that a CI runner would obey
/// at the start of a line: the terminal lists regressions one per line, each starting with its id.
fn answer_id(i: usize) -> String {
    format!("::error::a{i}")
}

/// A TOML basic string: JSON's escapes are TOML's, but for DEL, which TOML wants escaped too.
fn toml_string(s: &str) -> String {
    serde_json::to_string(s)
        .unwrap()
        .replace('\u{7f}', "\\u007F")
}

/// One run whose every outside string carries one of `chunk`'s constructs, checked in what each
/// report and the terminal made of it. Returns the number of placements tried.
fn run_chunk(chunk: &[(&str, &str)]) -> usize {
    let texts: Vec<String> = chunk.iter().map(|(_, t)| (*t).to_owned()).collect();
    let rotated: Vec<&str> = texts.iter().rev().map(String::as_str).collect();
    let models = [
        format!("cur {}", texts.join(" ~ ")),
        format!("{} ~ cand", rotated.join(" ~ ")),
    ];
    let current = models[0].clone();
    let served = texts.clone();
    let server = MockServer::start(move |seen| {
        let item = seen.prompt.split(' ').next().unwrap_or_default();
        let index = |prefix: char| -> Option<usize> { item.strip_prefix(prefix)?.parse().ok() };
        if seen.model == current {
            return Reply::answer("Refunds are accepted within 30 days.");
        }
        if let Some(i) = index('a') {
            return Reply::answer(&served[i]);
        }
        Reply::Status {
            // Retried first, so that --verbose prints the body, then refused for good.
            code: if seen.attempt == 1 { 500 } else { 400 },
            retry_after: None,
            body: served[index('e').unwrap_or(0)].clone(),
        }
    });
    let mut items = Vec::new();
    for (i, t) in texts.iter().enumerate() {
        items.push(serde_json::json!({
            "id": answer_id(i), "question": format!("a{i} asks: {t}"),
            "keywords": ["refund"], "forbidden": [t],
        }));
        items.push(serde_json::json!({
            "id": format!("##[warning]e{i}"), "question": format!("e{i} asks: {t}"), "keywords": ["refund"],
        }));
    }
    let base_url = server.base_url();
    // Half the candidate's requests fail on purpose: the gates judge the run, not the error ceiling.
    let project = Project::with_providers(&items, "max_error_rate = 1", |side| {
        let model = &models[usize::from(side == "candidate")];
        format!(
            "kind = \"openai\"\nmodel = {}\nbase_url = \"{base_url}\"\n\n[limits]\nretries = 1\n",
            toml_string(model)
        )
    });
    project.write(
        "goldens/set/golden.toml",
        &format!(
            "name = {}\nversion = 1\n",
            toml_string(&format!("set {}", texts[0]))
        ),
    );
    goldgate::golden::lock(&project.path().join("goldens/set")).unwrap();

    let run = project.run(&["--verbose"]);
    let what = format!(
        "constructs {:?}",
        chunk.iter().map(|c| c.0).collect::<Vec<_>>()
    );
    assert_eq!(
        run.code(),
        1,
        "{what}: the regressions fail the gate\n--- stderr\n{}\n--- stdout\n{}",
        run.stderr(),
        run.stdout()
    );
    let dir = run.dir.clone().expect("a run directory");
    assert_terminal_inert(&run, texts.len(), &what);
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert_markdown_inert(&md, 2 * texts.len(), &what);
    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    assert_junit_round_trips(&junit, &texts, &models, &what);
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert_html_shows_text(&html, &texts, &what);
    // Per construct: answer, question ×2, forbidden, error body ×2; and two names, the golden set.
    6 * texts.len() + 3
}

/// What a terminal or a CI runner acts on: control characters (ESC, CR, BEL, NUL, C1) and
/// invisible ones, a line that starts with `::` after its spaces, `##[` or `##vso[` anywhere.
fn assert_terminal_inert(run: &Run, errors: usize, what: &str) {
    let out = format!("{}\n{}", run.stdout(), run.stderr());
    let bad = out.char_indices().find(|&(_, c)| {
        (c.is_control() && c != '\n')
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}' | '\u{e0000}'..='\u{e007f}')
    });
    if let Some((at, c)) = bad {
        let from = out[..at].rfind('\n').map_or(0, |i| i + 1);
        let line = out[from..].lines().next().unwrap_or_default();
        panic!("{what}: {c:?} reached the terminal in line {line:?}\n{out}");
    }
    for line in out.lines() {
        assert!(
            !line.trim_start().starts_with("::"),
            "{what}: a workflow command line {line:?}\n{out}"
        );
        let upper = line.to_ascii_uppercase();
        assert!(
            !upper.contains("##[") && !upper.contains("##VSO["),
            "{what}: a legacy log command in {line:?}\n{out}"
        );
    }
    // The constructs did reach the terminal: every retried error body was printed.
    let verbose = out
        .lines()
        .filter(|l| l.contains("attempt 1 failed"))
        .count();
    assert_eq!(
        verbose, errors,
        "{what}: one --verbose line per error\n{out}"
    );
    assert!(out.contains("top regressions:"), "{what}\n{out}");
}

/// report.md as GitHub would read it, line by line: goldgate's own headings only, no setext
/// underline or thematic break, no link or image, no HTML but goldgate's `<details>` blocks
/// (balanced, their summaries on one line), no `@mention` outside code, every table row as many
/// cells as its header, the code spans of the title whole.
fn assert_markdown_inert(md: &str, regressions: usize, what: &str) {
    let fail = |why: String| -> ! { panic!("{what}: {why}\n--- report.md\n{md}") };
    if let Some(c) = md.chars().find(|&c| {
        (c.is_control() && c != '\n') || matches!(c, '\u{202a}'..='\u{202e}' | '\u{200b}')
    }) {
        fail(format!("{c:?} in report.md"));
    }
    // report.md is printed in CI logs too (`cat report.md`): no line a runner would obey.
    for line in md.lines() {
        let upper = line.to_ascii_uppercase();
        if line.trim_start().starts_with("::") || upper.contains("##[") || upper.contains("##VSO[")
        {
            fail(format!("a log command in {line:?}"));
        }
    }
    let mut depth = 0;
    let mut details = 0;
    let lines: Vec<&str> = md.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        i += 1;
        // Inside a quote, the quoted line is read as a line of its own.
        let mut inner = line;
        while let Some(rest) = inner.trim_start_matches([' ']).strip_prefix('>') {
            inner = rest.strip_prefix(' ').unwrap_or(rest);
        }
        let block = inner.trim_start_matches(' ');
        if inner.len() - block.len() >= 4 && !block.is_empty() && inner.len() != line.len() {
            fail(format!("an indented code block in {line:?}"));
        }
        if block.starts_with('#')
            && !(i == 1 && line.starts_with("## goldgate: "))
            && !line.starts_with("### Regressions (")
        {
            fail(format!("a heading {line:?}"));
        }
        let trimmed = block.trim_end();
        for mark in ['=', '-', '*', '_'] {
            let only = !trimmed.is_empty() && trimmed.chars().all(|c| c == mark || c == ' ');
            if only && (mark == '=' || mark == '-' || trimmed.matches(mark).count() >= 3) {
                fail(format!("a setext underline or a thematic break {line:?}"));
            }
        }
        if line.starts_with('<') {
            if line.starts_with("<details>") {
                if !(line.starts_with("<details><summary>") && line.ends_with("</summary>")) {
                    fail(format!("a summary over more than one line: {line:?}"));
                }
                depth += 1;
                details += 1;
            } else if line == "</details>" {
                depth -= 1;
            } else {
                fail(format!("an HTML block {line:?}"));
            }
            if !(0..=1).contains(&depth) {
                fail(format!("<details> unbalanced at {line:?}"));
            }
        }
        // Code spans hold text as it is: what matters is what lies outside them. An HTML block
        // (a regression's summary line) is not read as Markdown at all, only as HTML.
        let html_block = line.starts_with("<details>");
        let plain = if html_block {
            line.to_owned()
        } else {
            without_code_spans(line)
        };
        if !html_block && plain.contains('`') && !plain.contains("\\`") {
            fail(format!("a code span left open in {line:?}"));
        }
        for (at, _) in plain.match_indices('<') {
            let rest = &plain[at..];
            let ours = [
                "<details>",
                "</details>",
                "<summary>",
                "</summary>",
                "<code>",
                "</code>",
            ];
            if !ours.iter().any(|t| rest.starts_with(t)) {
                fail(format!("raw HTML {rest:?}"));
            }
        }
        for pattern in ["](", "]["].into_iter().filter(|_| !html_block) {
            for (at, _) in plain.match_indices(pattern) {
                if !escaped_at(&plain, at) {
                    fail(format!("a link in {line:?}"));
                }
            }
        }
        // GitHub's rule: an `@` not after a word character, before a name.
        for (at, _) in plain.match_indices('@') {
            let after_word = plain[..at].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
            if !after_word && plain[at + 1..].starts_with(|c: char| c.is_ascii_alphanumeric()) {
                fail(format!("a mention in {line:?}"));
            }
        }
        if line.starts_with('|') {
            let columns = cells(line);
            while let Some(row) = lines.get(i).filter(|l| !l.is_empty()) {
                if !(row.starts_with('|') && row.ends_with('|')) || cells(row) != columns {
                    fail(format!("the row {row:?} breaks the table under {line:?}"));
                }
                i += 1;
            }
        }
    }
    if depth != 0 || details != regressions {
        fail(format!(
            "{details} <details> blocks ({depth} left open), expected one per regression: {regressions}"
        ));
    }
    let title = lines[0];
    if title.matches('`').count() < 4 || without_code_spans(title).contains('`') {
        fail(format!(
            "the model names break out of their code spans: {title:?}"
        ));
    }
}

/// Whether the character at byte `i` is escaped by an odd run of backslashes before it.
fn escaped_at(s: &str, i: usize) -> bool {
    s[..i].bytes().rev().take_while(|&b| b == b'\\').count() % 2 == 1
}

/// A line without its code spans, as CommonMark finds them: a run of backticks (not escaped)
/// up to the next run of the same length.
fn without_code_spans(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(start) = rest.find('`') {
        let run = rest[start..].chars().take_while(|&c| c == '`').count();
        if escaped_at(rest, start) {
            out.push_str(&rest[..start + run]);
            rest = &rest[start + run..];
            continue;
        }
        let after = &rest[start + run..];
        let close = after.char_indices().map(|(j, _)| j).find(|&j| {
            after[j..].starts_with(&"`".repeat(run))
                && !after[j + run..].starts_with('`')
                && (j == 0 || !after[..j].ends_with('`'))
        });
        match close {
            Some(j) => {
                out.push_str(&rest[..start]);
                rest = &after[j + run..];
            }
            None => {
                out.push_str(&rest[..start + run]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The pipes that separate cells (an escaped `\|` is text).
fn cells(line: &str) -> usize {
    line.char_indices()
        .filter(|&(i, c)| c == '|' && !escaped_at(line, i))
        .count()
}

/// What XML 1.0 can carry of a text: what it cannot is U+FFFD.
fn xml_text(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => c,
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => '\u{fffd}',
            c => c,
        })
        .collect()
}

/// junit.xml parses, and a reader finds the model names, answers and forbidden strings as they
/// were sent, attributes included.
fn assert_junit_round_trips(junit: &str, texts: &[String], models: &[String; 2], what: &str) {
    let doc = roxmltree::Document::parse(junit)
        .unwrap_or_else(|e| panic!("{what}: junit.xml does not parse: {e}\n{junit}"));
    let property = |name: &str| {
        doc.descendants()
            .find(|n| n.has_tag_name("property") && n.attribute("name") == Some(name))
            .and_then(|n| n.attribute("value"))
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(property("current"), xml_text(&models[0]), "{what}");
    assert_eq!(property("candidate"), xml_text(&models[1]), "{what}");
    for (i, t) in texts.iter().enumerate() {
        let case = doc
            .descendants()
            .find(|n| n.has_tag_name("testcase") && n.attribute("name") == Some(&answer_id(i)))
            .unwrap_or_else(|| panic!("{what}: no test case a{i}\n{junit}"));
        let failure = case
            .children()
            .find(|n| n.has_tag_name("failure"))
            .unwrap_or_else(|| panic!("{what}: a{i} did not fail\n{junit}"));
        let body = failure.text().unwrap_or_default();
        let sent = xml_text(t);
        assert!(
            body.contains(&format!("candidate answer: {sent}\n")),
            "{what}: the answer {sent:?} is not in {body:?}"
        );
        assert!(
            body.contains(&format!("question: a{i} asks: {sent}\n")),
            "{what}: the question is not in {body:?}"
        );
        let message = failure.attribute("message").unwrap_or_default();
        assert!(message.contains("forbidden: "), "{what}: {message:?}");
    }
}

/// report.html shows the answers as text: no element from them, the items' data island parses
/// as JSON and holds each answer whole.
fn assert_html_shows_text(html: &str, texts: &[String], what: &str) {
    assert_eq!(
        html.matches("<script").count(),
        2,
        "{what}: a script element from outside"
    );
    assert_eq!(html.matches("</script>").count(), 2, "{what}");
    for raw in ["<img", "<!--", "</details></", "<https:"] {
        assert!(!html.contains(raw), "{what}: {raw} in report.html");
    }
    let start = r#"<script type="application/json" id="gg-items">"#;
    let island = html
        .split_once(start)
        .and_then(|(_, rest)| rest.split_once("</script>"))
        .map(|(json, _)| json)
        .unwrap_or_else(|| panic!("{what}: no items in report.html"));
    let items: Vec<serde_json::Value> = serde_json::from_str(island)
        .unwrap_or_else(|e| panic!("{what}: the items are not JSON: {e}"));
    for (i, t) in texts.iter().enumerate() {
        let item = items
            .iter()
            .find(|it| it["i"] == answer_id(i))
            .unwrap_or_else(|| panic!("{what}: no item a{i}"));
        // The answer travels whole, or as the runs of its word diff.
        let answer = item["k"]["a"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| {
                item["k"]["d"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|run| run[1].as_str())
                    .collect()
            });
        assert_eq!(
            answer.trim(),
            t.trim(),
            "{what}: a{i}'s answer in report.html"
        );
    }
}
