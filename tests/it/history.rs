//! Nightly runs: an accepted baseline reused without calling its model, `history` across forty
//! simulated nights (a degradation, a silent model swap, a settings change), pruning, and what
//! `history` does with directories it cannot use.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

use crate::server::{MockServer, Reply};
use crate::support::{Project, item};

const ITEMS: usize = 80;
/// The candidate gets worse from this night on (1-based)…
const DEGRADED_FROM: usize = 25;
/// …and on this night its provider silently swaps the model behind the same name: same
/// correctness, other words.
const SWAPPED_FROM: usize = 33;
/// The candidate's provider file changes (a setting) on this night: a marker.
const SETTINGS_CHANGED: usize = 12;
/// The evaluation's prompt changes on this night: every answer changes with it, for a reason on
/// record (a marker), which is not drift.
const PROMPT_CHANGED: usize = 18;
const NIGHTS: usize = 40;

/// A uniform number in [0, 1) from two integers (splitmix64): the same on every machine.
fn unit(a: u64, b: u64) -> f64 {
    let mut h = a
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(b.wrapping_mul(0xc2b2_ae3d_27d4_eb4f));
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// What the models answer to question `i` on `night`: each is right on a fixed share of the
/// items (a greedy model answers the same every night), and 3% of its answers flip each night
/// (the nightly noise real providers show).
fn answer(model: &str, i: u64, night: usize) -> String {
    let candidate = model != "current";
    let rate = match (candidate, night >= DEGRADED_FROM) {
        (false, _) => 0.85,
        (true, false) => 0.9,
        (true, true) => 0.6,
    };
    let salt = if candidate { 1 } else { 2 };
    let mut right = unit(i, salt) < rate;
    if unit(i * 1000 + night as u64, salt + 10) < 0.03 {
        right = !right;
    }
    let text = if right {
        format!("The answer is k{i}.")
    } else {
        "I do not know.".to_owned()
    };
    if candidate && night >= SWAPPED_FROM {
        format!("Certainly! {text}")
    } else {
        text
    }
}

/// Items `q-00`, `q-01`, … asking `question i`, passed by an answer holding `ki`.
fn numbered_items(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            item(
                &format!("q-{i:02}"),
                &format!("question {i}"),
                &[&format!("k{i}")],
            )
        })
        .collect()
}

fn night_stamp(night: usize) -> String {
    // Nights from 2026-10-01 at 02:00 UTC (October has 31 days).
    let (month, day) = if night <= 31 {
        (10, night)
    } else {
        (11, night - 31)
    };
    format!("2026-{month:02}-{day:02}T02:00:00Z")
}

/// Make a run look as if it ran on `night`: the tests run forty nights in seconds.
fn date_run(dir: &Path, night: usize) {
    for (file, fields) in [
        ("run.json", &["started_at"][..]),
        ("summary.json", &["started_at", "finished_at"][..]),
    ] {
        let path = dir.join(file);
        let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for f in fields {
            v[*f] = Value::String(night_stamp(night));
        }
        std::fs::write(&path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    }
}

fn provider(base_url: &str, model: &str, extra: &str) -> String {
    format!(
        "kind = \"openai\"\nmodel = {}\nbase_url = \"{base_url}\"\n{extra}\n[limits]\nconcurrency = 8\nretries = 0\n",
        toml_string(model)
    )
}

/// A payload in the evaluation's name and the candidate's model name: shown as text, never run.
const NAME: &str = "nightly <script>document.title='pwned'</script>";
const CANDIDATE_MODEL: &str = "cand<img src=x onerror=\"document.title='pwned-img'\">";

fn forty_nights() -> (Project, MockServer, Arc<AtomicUsize>, Vec<PathBuf>) {
    let night = Arc::new(AtomicUsize::new(1));
    let tonight = night.clone();
    let server = MockServer::start(move |seen| {
        let asked_as_q = seen.prompt.starts_with("Q: ");
        let i: u64 = seen
            .prompt
            .trim_start_matches("Q: ")
            .trim_start_matches("question ")
            .parse()
            .unwrap_or(0);
        let text = answer(&seen.model, i, tonight.load(Ordering::SeqCst));
        Reply::answer(&if asked_as_q {
            format!("{text} (asked as Q)")
        } else {
            text
        })
    });
    let items = numbered_items(ITEMS);
    let url = server.base_url();
    let p = Project::with_providers(&items, "", |side| {
        let model = if side == "current" {
            "current"
        } else {
            CANDIDATE_MODEL
        };
        provider(&url, model, "")
    });
    let evaluation = |prompt: &str| {
        format!(
            "name = {}\ngolden = \"goldens/set\"\ncurrent = \"providers/current.toml\"\ncandidate = \"providers/candidate.toml\"\nprompt = {}\n\n[[gate]]\nmetric = \"accuracy\"\nmin_ratio = 0.95\n\n[[gate]]\nmetric = \"error_rate\"\nmax_ratio = 1.0\n",
            toml_string(NAME),
            toml_string(prompt)
        )
    };
    p.write("goldgate.toml", &evaluation("{{ question }}"));
    let mut dirs = Vec::new();
    for n in 1..NIGHTS {
        night.store(n, Ordering::SeqCst);
        if n == SETTINGS_CHANGED {
            p.write(
                "providers/candidate.toml",
                &provider(&url, CANDIDATE_MODEL, "temperature = 0.0"),
            );
        }
        if n == PROMPT_CHANGED {
            p.write("goldgate.toml", &evaluation("Q: {{ question }}"));
        }
        let run = p.run(&["--quiet"]);
        assert!(
            [0, 1, 4].contains(&run.code()),
            "night {n}: {}",
            run.stderr()
        );
        let dir = run.dir.clone().expect("a run directory");
        date_run(&dir, n);
        if n == 1 {
            let accepted = p.cmd().arg("accept").arg(&dir).output().unwrap();
            assert!(accepted.status.success(), "{accepted:?}");
        }
        dirs.push(dir);
    }
    (p, server, night, dirs)
}

fn toml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

fn history(p: &Project, args: &[&str]) -> (i32, String, Value) {
    let out = p.cmd().arg("history").args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        !stdout.is_empty(),
        "history printed nothing: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_str(
        &std::fs::read_to_string(p.path().join("reports/history/history.json")).unwrap(),
    )
    .unwrap();
    (out.status.code().unwrap_or(-1), stdout, json)
}

fn run_id(dir: &Path) -> String {
    dir.file_name().unwrap().to_string_lossy().into_owned()
}

fn series<'a>(e: &'a Value, metric: &str, side: &str) -> &'a Value {
    e["series"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["metric"] == metric && s["side"] == side)
        .unwrap_or_else(|| panic!("no {metric} series for {side}"))
}

#[test]
fn forty_nights_show_the_degradation_the_swap_and_nothing_else() {
    let (p, server, night, mut dirs) = forty_nights();

    // Night 40 reuses the accepted run's answers: only the candidate is called.
    night.store(NIGHTS, Ordering::SeqCst);
    let before = server.seen().len();
    let run = p.run(&["--baseline", "accepted", "--quiet"]);
    assert_eq!(run.code(), 1, "a worse candidate fails: {}", run.stderr());
    let calls = server.models_since(before);
    assert_eq!(calls.len(), ITEMS, "one call per item, candidate only");
    assert!(
        calls.iter().all(|m| m != "current"),
        "the baseline model was called"
    );
    let dir = run.dir.clone().unwrap();
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("run.json")).unwrap()).unwrap();
    assert_eq!(manifest["baseline"]["run_id"], run_id(&dirs[0]));
    assert_eq!(manifest["baseline"]["accepted"], true);
    crate::schema::assert_valid(&run.summary(), "a --baseline run's summary.json");
    date_run(&dir, NIGHTS);
    dirs.push(dir);

    let (code, stdout, h) = history(&p, &[]);
    assert_eq!(
        code, 1,
        "tonight regressed against the accepted baseline: {stdout}"
    );
    assert!(
        h["skipped"].as_array().unwrap().is_empty(),
        "{}",
        h["skipped"]
    );
    let e = &h["evaluations"][0];
    assert_eq!(e["name"], NAME);
    assert_eq!(e["runs"].as_array().unwrap().len(), NIGHTS);
    let night_of = |id: &Value| {
        dirs.iter()
            .position(|d| run_id(d) == id.as_str().unwrap())
            .unwrap()
            + 1
    };

    // Markers: the candidate's settings on night 12, the prompt on 18, the stored baseline on 40.
    let markers: Vec<(usize, String)> = e["markers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (night_of(&m["run_id"]), m["changes"].to_string()))
        .collect();
    assert_eq!(markers.len(), 3, "{markers:?}");
    assert_eq!(markers[0].0, SETTINGS_CHANGED);
    assert!(markers[0].1.contains("settings"), "{markers:?}");
    assert_eq!(markers[1].0, PROMPT_CHANGED);
    assert!(markers[1].1.contains("scoring"), "{markers:?}");
    assert_eq!(markers[2].0, NIGHTS);
    assert!(markers[2].1.contains("baseline"), "{markers:?}");

    // One change point: the candidate's accuracy, within two nights of the degradation.
    let accuracy = series(e, "accuracy", "candidate");
    let found = accuracy["change_points"].as_array().unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    let at = night_of(&found[0]["run_id"]);
    assert!(
        at.abs_diff(DEGRADED_FROM) <= 2,
        "change point on night {at}, degradation from {DEGRADED_FROM}"
    );
    assert!(found[0]["after"].as_f64().unwrap() < found[0]["before"].as_f64().unwrap());
    for s in e["series"].as_array().unwrap() {
        if !(s["metric"] == "accuracy" && s["side"] == "candidate") {
            assert!(
                s["change_points"].as_array().unwrap().is_empty(),
                "a change point where nothing changed: {} {} {}",
                s["metric"],
                s["side"],
                s["change_points"]
            );
        }
    }

    // Drift: the swap on night 33 (and the degradation, itself a silent change, on 25); never
    // the current model, never the settings or the prompt change (every answer changed on 18).
    let drift: Vec<(usize, String)> = e["drift"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                night_of(&d["run_id"]),
                d["side"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        drift.contains(&(SWAPPED_FROM, "candidate".to_owned())),
        "the swap is drift: {drift:?}"
    );
    for (n, side) in &drift {
        assert!(
            side == "candidate" && (*n == SWAPPED_FROM || *n == DEGRADED_FROM),
            "drift where nothing changed: night {n}, {side}"
        );
    }

    // Tonight against the accepted baseline, by the paired gate.
    let t = &e["tonight"];
    assert_eq!(night_of(&t["run_id"]), NIGHTS);
    assert_eq!(t["regressed"], true);
    let gate = &t["gates"][0];
    assert_eq!(gate["metric"], "accuracy");
    assert_eq!(gate["outcome"], "fail");
    assert!(
        gate["test"]["method"].as_str().unwrap().contains("paired"),
        "{gate}"
    );

    // The grid holds every item over the last 30 nights, the flippers first.
    let grid = &e["grid"];
    assert_eq!(grid["runs"].as_array().unwrap().len(), 30);
    assert_eq!(grid["items"].as_array().unwrap().len(), ITEMS);
    assert!(!grid["most_flipped"].as_array().unwrap().is_empty());

    let csv = std::fs::read_to_string(p.path().join("reports/history/history.csv")).unwrap();
    let series_count = e["series"].as_array().unwrap().len();
    assert_eq!(csv.lines().count(), 1 + NIGHTS * series_count);
    assert!(stdout.contains("change point"), "{stdout}");
    assert!(stdout.contains("REGRESSED"), "{stdout}");

    check_in_browser(&p.path().join("reports/history/index.html"));

    // Pruned: older runs lose their answers, history finds the same, and diff and --baseline
    // still work on a pruned run.
    let full_size = dir_size(&dirs[5]);
    let pruned = p
        .cmd()
        .args(["history", "prune", "--keep-full", "10"])
        .output()
        .unwrap();
    assert!(pruned.status.success(), "{pruned:?}");
    let said = String::from_utf8_lossy(&pruned.stdout);
    assert!(said.contains("pruned 29 run(s)"), "{said}");
    assert!(dirs[5].join("pruned.json").exists());
    assert!(
        !dirs[0].join("pruned.json").exists(),
        "the accepted run stays whole"
    );
    assert!(
        !dirs[35].join("pruned.json").exists(),
        "the newest 10 stay whole"
    );
    assert!(dir_size(&dirs[5]) < full_size, "pruning saves space");
    let pruned_results = std::fs::read_to_string(dirs[5].join("results.jsonl")).unwrap();
    assert_eq!(
        pruned_results.lines().count(),
        2 * ITEMS,
        "every trial kept"
    );
    assert!(
        !pruned_results.contains("The answer is"),
        "no answer text kept"
    );
    assert!(pruned_results.contains("\"answer_hash\""), "its hash is");
    assert!(!dirs[5].join("report.html").exists());
    let (code, _, again) = history(&p, &[]);
    assert_eq!(code, 1);
    let e2 = &again["evaluations"][0];
    assert_eq!(
        series(e2, "accuracy", "candidate")["change_points"],
        accuracy["change_points"]
    );
    // Drift too: a pruned run keeps each answer's hash.
    assert_eq!(e2["drift"], e["drift"]);
    let diff = p
        .cmd()
        .args(["diff", "--quiet"])
        .arg(&dirs[5])
        .arg(&dirs[30])
        .output()
        .unwrap();
    assert!([0, 1, 4].contains(&diff.status.code().unwrap()), "{diff:?}");
    let base = dirs[5].to_string_lossy().into_owned();
    let on_pruned = p.run(&["--baseline", &base, "--quiet"]);
    assert!(
        [0, 1, 4].contains(&on_pruned.code()),
        "{}",
        on_pruned.stderr()
    );
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

/// index.html as a person sees it: the charts drawn, the item filter applied from the address,
/// and no payload from a name or a model run.
fn check_in_browser(index: &Path) {
    let source = std::fs::read_to_string(index).unwrap();
    assert!(!source.contains("<script>document.title"), "name escaped");
    assert!(!source.contains("<img src=x"), "model escaped");
    let Some(page) = crate::browser::dom(index, "#filter=q-1") else {
        return;
    };
    let title = &page[page.find("<title>").unwrap()..page.find("</title>").unwrap()];
    // Had the name's script run, the title would be just "pwned".
    assert!(
        title.starts_with("<title>goldgate history: nightly"),
        "a payload ran: {title}"
    );
    assert!(
        page.contains("&lt;script&gt;document.title"),
        "the name shown as text"
    );
    assert!(
        !page.contains("<img src=\"x\""),
        "no image element was created"
    );
    assert!(page.matches("<svg").count() >= 2, "a chart per gate metric");
    assert!(
        page.contains("class=\"line candidate\""),
        "the candidate's line is drawn"
    );
    assert!(page.contains("class=\"cp\""), "the change point is drawn");
    // The filter from the address: rows whose id lacks "q-1" are hidden.
    let rows: Vec<&str> = page.split("<tr data-id=\"").skip(1).collect();
    assert!(!rows.is_empty(), "the grid lists changing items");
    for row in rows {
        let id = &row[..row.find('"').unwrap()];
        let hidden = row[..row.find('>').unwrap()].contains("hidden");
        assert_eq!(hidden, !id.contains("q-1"), "row {id}: hidden = {hidden}");
    }
}

/// Runs of the scaffold (`goldgate init`: built-in reference providers), `n` of them.
fn scaffold(n: usize) -> (tempfile::TempDir, Vec<PathBuf>) {
    let tmp = tempfile::tempdir().unwrap();
    let bin = assert_cmd::cargo::cargo_bin("goldgate");
    let ok = std::process::Command::new(&bin)
        .arg("init")
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(ok.status.success());
    let dirs = (0..n)
        .map(|_| {
            let out = std::process::Command::new(&bin)
                .args(["run", "--quiet"])
                .current_dir(tmp.path())
                .output()
                .unwrap();
            let last = String::from_utf8_lossy(&out.stdout)
                .lines()
                .last()
                .unwrap()
                .to_owned();
            tmp.path().join(last)
        })
        .collect();
    (tmp, dirs)
}

fn goldgate(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut c = assert_cmd::Command::cargo_bin("goldgate").unwrap();
    c.current_dir(dir).env("NO_COLOR", "1").args(args);
    c.output().unwrap()
}

/// Every file under `dir` with its bytes: what "never writes into a run directory" is checked by.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().filter_map(Result::ok) {
        let path = e.path();
        if path.is_dir() {
            files.extend(snapshot(&path));
        } else {
            files.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    files.sort();
    files
}

#[test]
fn history_skips_what_it_cannot_use_and_never_writes_into_a_run() {
    let (tmp, dirs) = scaffold(4);
    let reports = tmp.path().join("reports");
    // A foreign directory, a corrupt summary, a crashed run (no summary), a diff.
    std::fs::create_dir(reports.join("holiday-photos")).unwrap();
    std::fs::write(dirs[1].join("summary.json"), "{ not json").unwrap();
    std::fs::remove_file(dirs[2].join("summary.json")).unwrap();
    let diff = goldgate(
        tmp.path(),
        &[
            "diff",
            "--quiet",
            &dirs[0].to_string_lossy(),
            &dirs[3].to_string_lossy(),
        ],
    );
    assert!(diff.status.success(), "{diff:?}");
    let runs_before: Vec<_> = dirs.iter().map(|d| snapshot(d)).collect();

    let out = goldgate(tmp.path(), &["history"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let h: Value = serde_json::from_str(
        &std::fs::read_to_string(reports.join("history/history.json")).unwrap(),
    )
    .unwrap();
    let skipped: Vec<String> = h["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| format!("{} {}", s["dir"], s["reason"]))
        .collect();
    assert_eq!(skipped.len(), 3, "{skipped:?}");
    assert!(
        skipped
            .iter()
            .any(|s| s.contains("holiday-photos") && s.contains("no run.json"))
    );
    assert!(
        skipped
            .iter()
            .any(|s| s.contains("summary.json is unreadable"))
    );
    assert!(skipped.iter().any(|s| s.contains("goldgate diff")));
    let runs = h["evaluations"][0]["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3, "the crashed run is a night");
    let crashed = runs
        .iter()
        .find(|r| r["run_id"] == run_id(&dirs[2]))
        .unwrap();
    assert_eq!(
        crashed["status"], "interrupted",
        "shown as such, not as a drop"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("1 did not complete"), "{stdout}");
    assert!(stdout.contains("no accepted baseline"), "{stdout}");
    for (d, before) in dirs.iter().zip(runs_before) {
        assert_eq!(snapshot(d), before, "history wrote into {}", d.display());
    }
}

/// The last line a goldgate command printed: the directory it wrote.
fn last_line(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_else(|| panic!("printed nothing: {out:?}"))
        .to_owned()
}

#[test]
fn history_passes_over_canary_and_shadow_directories_quietly() {
    let (tmp, dirs) = scaffold(2);
    let reports = tmp.path().join("reports");
    // A broken night of the golden set: still listed as skipped.
    std::fs::write(dirs[1].join("summary.json"), "{ not json").unwrap();
    // A real canary analysis (`<id>-canary`: decision.json and reports, no run.json)…
    let log: String = (0..20)
        .map(|i| {
            let variant = if i % 2 == 0 { "current" } else { "candidate" };
            format!(
                "{{\"timestamp\":\"2026-11-30T13:00:{i:02}Z\",\"variant\":\"{variant}\",\"latency_ms\":{}}}\n",
                100 + i
            )
        })
        .collect();
    std::fs::write(tmp.path().join("canary.jsonl"), log).unwrap();
    let canary = goldgate(tmp.path(), &["canary", "--log", "canary.jsonl"]);
    assert!(matches!(canary.status.code(), Some(0 | 4)), "{canary:?}");
    let canary_dir = tmp.path().join(last_line(&canary));
    assert!(
        canary_dir.join("decision.json").is_file() && !canary_dir.join("run.json").exists(),
        "{}",
        canary_dir.display()
    );
    // …and a real shadow replay of logged traffic (a run.json with `shadow`).
    let traffic: String = (0..6)
        .map(|i| {
            serde_json::json!({
                "id": format!("req-{i}"),
                "timestamp": "2026-11-01T10:00:00Z",
                "latency_ms": 800,
                "request": {"model": "prod", "messages": [
                    {"role": "user", "content": format!("What is the code of order {i}?")}]},
                "response": {"id": format!("c-{i}"), "object": "chat.completion", "model": "prod",
                    "choices": [{"index": 0, "finish_reason": "stop",
                        "message": {"role": "assistant", "content": format!("The code is C{i}.")}}],
                    "usage": {"prompt_tokens": 20, "completion_tokens": 5}},
            })
            .to_string()
                + "\n"
        })
        .collect();
    std::fs::write(tmp.path().join("traffic.jsonl"), traffic).unwrap();
    let shadow = goldgate(tmp.path(), &["shadow", "--log", "traffic.jsonl", "--quiet"]);
    assert!(
        matches!(shadow.status.code(), Some(0 | 1 | 4)),
        "{shadow:?}"
    );
    let shadow_dir = tmp.path().join(last_line(&shadow));
    assert!(shadow_dir.join("run.json").is_file(), "{shadow:?}");

    let out = goldgate(tmp.path(), &["history"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let h: Value = serde_json::from_str(
        &std::fs::read_to_string(reports.join("history/history.json")).unwrap(),
    )
    .unwrap();
    let skipped = h["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert!(
        skipped[0]["reason"]
            .as_str()
            .unwrap()
            .contains("summary.json is unreadable"),
        "{skipped:?}"
    );
    assert!(
        stdout.contains(&run_id(&dirs[1])) && stdout.contains("summary.json is unreadable"),
        "the broken night is still said: {stdout}"
    );
    for dir in [&canary_dir, &shadow_dir] {
        let id = run_id(dir);
        assert!(!stdout.contains(&id), "{id} mentioned:\n{stdout}");
        assert!(!h.to_string().contains(&id), "{id} in history.json");
    }
    assert_eq!(stdout.matches("skipped ").count(), 1, "{stdout}");
    assert_eq!(h["evaluations"][0]["runs"].as_array().unwrap().len(), 1);

    // Named on the command line, they are listed with why they are not used.
    let out = goldgate(
        tmp.path(),
        &[
            "history",
            &dirs[0].to_string_lossy(),
            &canary_dir.to_string_lossy(),
            &shadow_dir.to_string_lossy(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("a canary analysis"), "{stdout}");
    assert!(stdout.contains("a shadow replay"), "{stdout}");
}

#[test]
fn a_changed_golden_set_is_refused_as_a_baseline_unless_allowed() {
    let (tmp, dirs) = scaffold(1);
    let accepted = goldgate(tmp.path(), &["accept", &dirs[0].to_string_lossy()]);
    assert!(accepted.status.success(), "{accepted:?}");
    let old_sha = sha_of(&dirs[0]);
    // Drop one item and re-lock: a new version of the set.
    let items = tmp.path().join("goldens/example/items.jsonl");
    let text = std::fs::read_to_string(&items).unwrap();
    let kept: Vec<&str> = text.lines().skip(1).collect();
    std::fs::write(&items, kept.join("\n") + "\n").unwrap();
    assert!(
        goldgate(tmp.path(), &["golden", "lock", "goldens/example"])
            .status
            .success()
    );

    let refused = goldgate(tmp.path(), &["run", "--baseline", "accepted"]);
    assert_eq!(refused.status.code(), Some(2));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains(&old_sha[..12]),
        "names the baseline's hash: {err}"
    );
    assert!(err.contains("--allow-golden-change"), "{err}");
    let new_sha = goldgate::golden::GoldenSet::load(&tmp.path().join("goldens/example"))
        .unwrap()
        .sha256;
    assert!(err.contains(&new_sha[..12]), "names this run's hash: {err}");
    assert!(
        std::fs::read_dir(tmp.path().join("reports"))
            .unwrap()
            .count()
            == 2,
        "nothing was run (the run and accepted/ only)"
    );

    let allowed = goldgate(
        tmp.path(),
        &[
            "run",
            "--baseline",
            "accepted",
            "--allow-golden-change",
            "--quiet",
        ],
    );
    assert!(
        [0, 4].contains(&allowed.status.code().unwrap()),
        "{allowed:?}"
    );
    let dir = tmp.path().join(
        String::from_utf8_lossy(&allowed.stdout)
            .lines()
            .last()
            .unwrap(),
    );
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(md.contains("golden set changed"), "every report says so");
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["golden"]["items"], kept.len());
    assert!(
        summary["warnings"]
            .to_string()
            .contains("golden set changed")
    );
}

fn sha_of(run: &Path) -> String {
    let m: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    m["golden"]["sha256"].as_str().unwrap().to_owned()
}

#[test]
fn accept_refuses_what_is_not_a_whole_run() {
    let (tmp, dirs) = scaffold(2);
    let diff = goldgate(
        tmp.path(),
        &[
            "diff",
            "--quiet",
            &dirs[0].to_string_lossy(),
            &dirs[1].to_string_lossy(),
        ],
    );
    let diff_dir = String::from_utf8_lossy(&diff.stdout)
        .lines()
        .last()
        .unwrap()
        .to_owned();
    let out = goldgate(tmp.path(), &["accept", &diff_dir]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("goldgate diff"));
    std::fs::remove_file(dirs[1].join("summary.json")).unwrap();
    // Half the answers gone: an interrupted run.
    let results = dirs[1].join("results.jsonl");
    let text = std::fs::read_to_string(&results).unwrap();
    let half: Vec<&str> = text.lines().take(3).collect();
    std::fs::write(&results, half.join("\n") + "\n").unwrap();
    let out = goldgate(tmp.path(), &["accept", &dirs[1].to_string_lossy()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--resume"));
    let no_baseline = goldgate(tmp.path(), &["run", "--baseline", "accepted"]);
    assert_eq!(no_baseline.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_baseline.stderr).contains("goldgate accept"));
}

/// A `--baseline` run cut short resumes like any run: only the candidate's missing answers are
/// asked for, and the baseline's stay as they were copied.
#[test]
fn an_interrupted_baseline_run_resumes_calling_only_the_candidate() {
    let server = MockServer::start(|seen| {
        Reply::answer(&format!(
            "The answer is {}.",
            seen.prompt.replace("question ", "k")
        ))
    });
    let items = numbered_items(6);
    let p = Project::openai(&server.base_url(), &items, "retries = 0");
    let first = p.run(&["--quiet"]);
    assert_eq!(first.code(), 0, "{}", first.stderr());
    let dir = first.dir.clone().unwrap();
    assert!(
        p.cmd()
            .arg("accept")
            .arg(&dir)
            .output()
            .unwrap()
            .status
            .success()
    );

    let run = p.run(&["--baseline", "accepted", "--quiet"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let dir = run.dir.clone().unwrap();
    // A crash: no summary, the last three candidate answers never written.
    std::fs::remove_file(dir.join("summary.json")).unwrap();
    let results = std::fs::read_to_string(dir.join("results.jsonl")).unwrap();
    let mut lines: Vec<&str> = results.lines().collect();
    for _ in 0..3 {
        let last = lines
            .iter()
            .rposition(|l| l.contains("\"model\":\"candidate\""))
            .unwrap();
        lines.remove(last);
    }
    std::fs::write(dir.join("results.jsonl"), lines.join("\n") + "\n").unwrap();

    let before = server.seen().len();
    let resumed = p.run(&["--resume", &dir.to_string_lossy(), "--quiet"]);
    assert_eq!(resumed.code(), 0, "{}", resumed.stderr());
    let calls = server.models_since(before);
    assert_eq!(
        calls,
        vec!["candidate"; 3],
        "only the missing candidate answers"
    );
    let summary = resumed.summary();
    assert_eq!(summary["status"], "complete");
    assert_eq!(summary["baseline"]["accepted"], true);
    assert_eq!(summary["models"]["current"]["metrics"]["requests"], 6);
    assert!(
        summary["models"]["current"]["provider"]
            .as_str()
            .unwrap()
            .contains("candidate of run"),
        "{}",
        summary["models"]["current"]
    );
}

/// A baseline run that did not answer every item: only the items its model answered are
/// compared, and the current model is still never asked (its provider file is the candidate's).
#[test]
fn a_baseline_missing_answers_is_compared_on_what_it_answered() {
    let server = MockServer::start(|seen| {
        Reply::answer(&format!(
            "The answer is {}.",
            seen.prompt.replace("question ", "k")
        ))
    });
    let p = Project::openai(&server.base_url(), &numbered_items(6), "retries = 0");
    let first = p.run(&["--quiet"]);
    assert_eq!(first.code(), 0, "{}", first.stderr());
    let dir = first.dir.clone().unwrap();
    // Its candidate never answered q-01 and q-04.
    let results = std::fs::read_to_string(dir.join("results.jsonl")).unwrap();
    let kept: Vec<&str> = results
        .lines()
        .filter(|l| {
            !(l.contains("\"model\":\"candidate\"")
                && (l.contains("\"id\":\"q-01\"") || l.contains("\"id\":\"q-04\"")))
        })
        .collect();
    std::fs::write(dir.join("results.jsonl"), kept.join("\n") + "\n").unwrap();

    let before = server.seen().len();
    let run = p.run(&["--baseline", &dir.to_string_lossy(), "--quiet"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert!(
        run.stderr().contains("2 of this run's 6 item(s)"),
        "{}",
        run.stderr()
    );
    let calls = server.models_since(before);
    assert_eq!(
        calls,
        vec!["candidate"; 4],
        "only the candidate, only the items compared"
    );
    let s = run.summary();
    assert_eq!(s["golden"]["items"], 4);
    assert_eq!(s["status"], "complete");
}
