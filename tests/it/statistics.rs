//! The statistics end to end: the real binary against a loopback server whose two models answer
//! each item right or wrong by a known rule, so the truth of every comparison is known, and the
//! outcomes, exit codes and intervals that follow. The methods' calibration is proven by the
//! simulations in `src/stats/simulation.rs`; these tests prove the binary applies them.

use serde_json::Value;

use crate::server::{MockServer, Reply};
use crate::support::{Project, assert_exit, item};

/// A server on which model `m` answers item `i` (its question is `q{i}`) wrongly when
/// `wrong(m, i, attempt)`, else with the item's keyword.
fn server(wrong: impl Fn(&str, usize, u32) -> bool + Send + Sync + 'static) -> MockServer {
    MockServer::start(move |seen| {
        let i: usize = seen
            .prompt
            .trim()
            .trim_start_matches('q')
            .parse()
            .unwrap_or(0);
        if wrong(&seen.model, i, seen.attempt) {
            Reply::answer("I could not say.")
        } else {
            Reply::answer("It is 30 days.")
        }
    })
}

fn items(n: usize, group: impl Fn(usize) -> Option<String>) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let mut it = item(&format!("i{i}"), &format!("q{i}"), &["30 days"]);
            if let Some(g) = group(i) {
                it["group"] = g.into();
            }
            it
        })
        .collect()
}

/// The evaluation with the default burden of proof: accuracy by non-inferiority, error rate by
/// harm.
const GATES: &str = r#"golden = "goldens/set"
current = "providers/current.toml"
candidate = "providers/candidate.toml"
prompt = "{{ question }}"
[[gate]]
metric = "accuracy"
min_ratio = 0.95
[[gate]]
metric = "error_rate"
max_ratio = 1.0
"#;

fn project(server: &MockServer, items: &[Value], extra: &str) -> Project {
    let p = Project::openai(&server.base_url(), items, "concurrency = 16");
    p.write("goldgate.toml", &format!("{extra}\n{GATES}"));
    p
}

fn gate<'a>(s: &'a Value, metric: &str) -> &'a Value {
    s["gates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["metric"] == metric)
        .unwrap_or_else(|| panic!("no gate on {metric}: {s}"))
}

fn interval(v: &Value) -> (f64, f64) {
    (v[0].as_f64().unwrap(), v[1].as_f64().unwrap())
}

#[test]
fn the_three_outcomes_and_their_exit_codes() {
    // The current model misses one item in ten. An equal candidate on 300 items: shown to be
    // at least 95% as accurate, exit 0.
    let equal = server(|_, i, _| i % 10 == 0);
    // (Each project is held while its run is read: dropping it deletes the directory.)
    let p = project(&equal, &items(300, |_| None), "");
    let run = p.run(&[]);
    assert_exit(&run, 0);
    let s = run.summary();
    assert_eq!(s["verdict"], "pass");
    let g = gate(&s, "accuracy");
    assert_eq!(g["outcome"], "pass");
    assert_eq!(g["decide"], "noninferiority");
    assert!(interval(&g["test"]["interval"]).0 > 0.0, "{g}");
    assert_eq!(gate(&s, "error_rate")["decide"], "harm");
    // Intervals on every metric of both models, and the paired comparison.
    let acc = interval(&s["models"]["candidate"]["metrics"]["intervals"]["accuracy"]);
    assert!(acc.0 < 0.9 && 0.9 < acc.1, "{acc:?}");
    let cmp = &s["comparisons"][0];
    assert_eq!(cmp["metric"], "accuracy");
    assert_eq!(cmp["difference"], 0.0);
    assert_eq!(cmp["p_value"], 1.0, "McNemar with no discordant item");
    assert!(run.stdout().contains("verdict: PASS"), "{}", run.stdout());

    // A candidate that also misses items 1 and 2 of every ten (70% against 90%): shown to be
    // below 95% of the current model, exit 1, McNemar's p tiny.
    let worse = server(|m, i, _| i % 10 == 0 || (m == "candidate" && i % 10 <= 2));
    let p = project(&worse, &items(300, |_| None), "");
    // Per tag too: the odd items are where the candidate's extra misses are (1 of every 10).
    let eval = std::fs::read_to_string(p.path().join("goldgate.toml")).unwrap();
    p.write(
        "goldgate.toml",
        &format!("{eval}[[gate]]\nmetric = \"accuracy[tag=odd]\"\nmin_ratio = 0.95\n"),
    );
    let run = p.run(&[]);
    assert_exit(&run, 1);
    let s = run.summary();
    assert_eq!(gate(&s, "accuracy")["outcome"], "fail");
    assert!(s["comparisons"][0]["p_value"].as_f64().unwrap() < 1e-9);
    let odd = gate(&s, "accuracy[tag=odd]");
    assert_eq!(odd["test"]["items"], 150, "{odd}");
    assert!(
        s["models"]["candidate"]["metrics"]["by_tag"]["odd"]["intervals"]["accuracy"].is_array()
    );

    // The same equal models on 12 items: nothing can be shown either way, exit 4, and the
    // terminal says how many items would decide it.
    let p = project(&equal, &items(12, |_| None), "");
    let run = p.run(&[]);
    assert_exit(&run, 4);
    let s = run.summary();
    assert_eq!(s["verdict"], "inconclusive");
    assert_eq!(gate(&s, "accuracy")["outcome"], "inconclusive");
    assert_eq!(gate(&s, "accuracy")["pass"], false);
    let out = run.stdout();
    assert!(out.contains("INCONCLUSIVE"), "{out}");
    assert!(out.contains("undecided: mean per item of candidate - 0.95 x current is in ["));
    assert!(out.contains("verdict: INCONCLUSIVE"), "{out}");
    // --allow-inconclusive: exit 0, the verdict unchanged.
    let p = project(&equal, &items(12, |_| None), "");
    let run = p.run(&["--allow-inconclusive"]);
    assert_exit(&run, 0);
    assert_eq!(run.summary()["verdict"], "inconclusive");
}

/// Same results, same intervals: `report` recomputes the summary bit for bit, bootstrap included,
/// and the merge of two shards has the intervals of the one run they were cut from.
#[test]
fn intervals_are_deterministic_across_report_and_merge() {
    let srv = server(|m, i, _| i % 7 == 0 || (m == "candidate" && i % 11 == 0));
    let p = project(&srv, &items(120, |_| None), "");
    // A latency gate too, so a bootstrap is part of what must repeat exactly.
    let eval = std::fs::read_to_string(p.path().join("goldgate.toml")).unwrap();
    p.write(
        "goldgate.toml",
        &format!("{eval}[[gate]]\nmetric = \"latency_p95_ms\"\nmax_ratio = 1.5\n"),
    );
    let run = p.run(&[]);
    let first = run.summary();
    let dir = run.dir.clone().expect("a run directory");
    let again = p.cmd().arg("report").arg(&dir).output().unwrap();
    assert_exit(&again, 0);
    let second: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    for key in ["gates", "comparisons", "statistics", "verdict"] {
        assert_eq!(first[key], second[key], "{key} recomputed differently");
    }
    assert_eq!(
        first["models"]["candidate"]["metrics"]["intervals"],
        second["models"]["candidate"]["metrics"]["intervals"]
    );
    let test = &gate(&first, "latency_p95_ms")["test"];
    assert!(
        test["method"]
            .as_str()
            .unwrap()
            .contains("1000 resamples, seed 1"),
        "{test}"
    );

    // Two shards, merged: the accuracy intervals and the paired comparison of the whole run.
    let shard = |k: &str| {
        let r = p.run(&["--shard", k]);
        assert!(matches!(r.code(), 0 | 1 | 4), "{}", r.stderr());
        r.dir.clone().expect("a shard's run directory")
    };
    let (a, b) = (shard("1/2"), shard("2/2"));
    let merged = p
        .cmd()
        .args(["merge", "--quiet", "--out", "merged"])
        .arg(&a)
        .arg(&b)
        .output()
        .unwrap();
    let merged_dir = std::path::PathBuf::from(String::from_utf8_lossy(&merged.stdout).trim());
    let m: Value = serde_json::from_str(
        &std::fs::read_to_string(p.path().join(&merged_dir).join("summary.json")).unwrap(),
    )
    .unwrap();
    for side in ["current", "candidate"] {
        assert_eq!(
            m["models"][side]["metrics"]["intervals"]["accuracy"],
            first["models"][side]["metrics"]["intervals"]["accuracy"]
        );
    }
    assert_eq!(m["comparisons"][0], first["comparisons"][0]);
    assert_eq!(
        gate(&m, "accuracy")["test"],
        gate(&first, "accuracy")["test"]
    );
}

/// Items of one passage are not independent: with `group`, the standard errors are clustered on
/// it and the intervals widen where the groups move together.
#[test]
fn groups_cluster_the_intervals() {
    // The candidate fails whole passages: every item of groups 0, 5 and 10 (of 20).
    let srv = server(|m, i, _| m == "candidate" && (i / 10) % 5 == 0);
    let pg = project(
        &srv,
        &items(200, |i| Some(format!("passage-{}", i / 10))),
        "",
    );
    let pf = project(&srv, &items(200, |_| None), "");
    let (grouped, flat) = (pg.run(&[]), pf.run(&[]));
    let (g, f) = (grouped.summary(), flat.summary());
    assert_eq!(g["statistics"]["clusters"], 20);
    assert_eq!(g["statistics"]["grouped_items"], 200);
    assert_eq!(f["statistics"]["clusters"], 200);
    let width = |s: &Value| {
        let (lo, hi) = interval(&s["models"]["candidate"]["metrics"]["intervals"]["accuracy"]);
        hi - lo
    };
    assert!(
        width(&g) > 1.5 * width(&f),
        "clustered {} against independent {}",
        width(&g),
        width(&f)
    );
    // The same point estimate either way.
    assert_eq!(
        g["models"]["candidate"]["metrics"]["accuracy"],
        f["models"]["candidate"]["metrics"]["accuracy"]
    );
}

/// With repeats: per-item means, pass@k and pass^k, the flaky items by name, and the item rule.
#[test]
fn repeats_find_the_flaky_items() {
    // The candidate answers items 0, 5, 10 … right on odd attempts only: 2 of 4 trials.
    let srv = server(|m, i, attempt| m == "candidate" && i % 5 == 0 && attempt % 2 == 0);
    let p = project(
        &srv,
        &items(20, |_| None),
        "repeats = 4\nitem_pass = \"all\"",
    );
    let run = p.run(&[]);
    let s = run.summary();
    let flaky: Vec<&str> = s["flaky"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert_eq!(flaky, ["i0", "i5", "i10", "i15"], "{}", s["flaky"]);
    assert_eq!(s["flaky"][0]["candidate"], serde_json::json!([2, 4]));
    let rep = &s["models"]["candidate"]["metrics"]["repeats"];
    assert_eq!(rep["k"], 4);
    assert_eq!(rep["flaky"], 4);
    assert_eq!(rep["stable_pass"], 16);
    // pass@4 counts a flaky item as passed, pass^4 as failed.
    assert_eq!(rep["pass_at_k"], 1.0);
    assert_eq!(rep["pass_hat_k"], 0.8);
    // Under "all", 2 of 4 is a regression; under "any" it is not.
    assert_eq!(s["items"]["regressed"], 4);
    let p_any = project(
        &srv,
        &items(20, |_| None),
        "repeats = 4\nitem_pass = \"any\"",
    );
    let any = p_any.run(&[]).summary();
    assert_eq!(any["items"]["regressed"], 0);
    assert_eq!(any["statistics"]["item_pass"], "any");
}

#[test]
fn golden_stats_plans_the_power_of_a_comparison() {
    let p = Project::openai("http://127.0.0.1:9", &items(200, |_| None), "");
    let out = p
        .cmd()
        .args([
            "golden",
            "stats",
            "goldens/set",
            "--baseline-accuracy",
            "0.9",
            "--margin",
            "0.05",
        ])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let text = String::from_utf8_lossy(&out.stdout);
    // 2 × 0.9 × 0.1 × (1 − 0.5) = 9% discordant; (1.96 + 0.84) × sqrt(0.09 / 200) = 5.9 points.
    assert!(
        text.contains("disagree on about 9.0% of the items"),
        "{text}"
    );
    assert!(
        text.contains("200 items detect an accuracy drop of 5.9 points"),
        "{text}"
    );
    assert!(text.contains("items are needed for that probability to reach 80%"));
    let json = p
        .cmd()
        .args([
            "golden",
            "stats",
            "goldens/set",
            "--json",
            "--baseline-accuracy",
            "0.9",
        ])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["power"]["items"], 200);
    let bad = p
        .cmd()
        .args([
            "golden",
            "stats",
            "goldens/set",
            "--baseline-accuracy",
            "90",
        ])
        .output()
        .unwrap();
    assert_exit(&bad, 2);
}
