//! `--shard K/N` partitions a golden set; `goldgate merge` gives exactly the unsharded metrics.

use std::collections::HashSet;
use std::path::Path;

use crate::server::{MockServer, Reply};
use crate::support::{Project, Run, assert_exit, item};

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Numbers equal to 1e-9 (sums of costs in another order), everything else exactly.
fn assert_same(a: &serde_json::Value, b: &serde_json::Value, path: &str) {
    match (a, b) {
        (serde_json::Value::Object(x), serde_json::Value::Object(y)) => {
            let keys: HashSet<_> = x.keys().chain(y.keys()).collect();
            for k in keys {
                assert_same(&x[k.as_str()], &y[k.as_str()], &format!("{path}.{k}"));
            }
        }
        (serde_json::Value::Array(x), serde_json::Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{path}");
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                assert_same(p, q, &format!("{path}[{i}]"));
            }
        }
        (serde_json::Value::Number(x), serde_json::Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!(
                (x - y).abs() <= 1e-9 * x.abs().max(1.0),
                "{path}: {x} vs {y}"
            );
        }
        _ => assert_eq!(a, b, "{path}"),
    }
}

#[test]
fn shards_partition_the_set_and_merge_exactly() {
    let server = MockServer::start(|seen| {
        let n: u64 = seen.prompt.trim_start_matches('q').parse().unwrap_or(0);
        if seen.model == "candidate" && n % 7 == 3 {
            return Reply::Status {
                code: 500,
                retry_after: None,
                body: String::new(),
            };
        }
        Reply::Answer {
            text: if n.is_multiple_of(5) {
                "no".into()
            } else {
                "ok".into()
            },
            usage: Some((10 + n, 3)),
            delay: std::time::Duration::from_millis(n % 9),
        }
    });
    let items: Vec<_> = (0..40)
        .map(|i| item(&format!("item-{i}"), &format!("q{i}"), &["ok"]))
        .collect();
    let project = Project::openai(&server.base_url(), &items, "retries = 0\nconcurrency = 4")
        .without_error_ceiling();

    // Real shards: every item in exactly one.
    let mut shard_dirs = Vec::new();
    let mut covered = Vec::new();
    for k in 1..=4 {
        let run = project.run(&["--quiet", "--shard", &format!("{k}/4")]);
        assert!(matches!(run.code(), 0 | 1), "{}", run.stderr());
        let dir = run.dir.clone().unwrap();
        assert_eq!(
            json(&dir.join("run.json"))["shard"],
            serde_json::json!({"index": k, "count": 4})
        );
        covered.extend(
            run.results()
                .iter()
                .filter(|r| r["model"] == "current")
                .map(|r| r["id"].as_str().unwrap().to_owned()),
        );
        shard_dirs.push(dir);
    }
    covered.sort();
    let mut all: Vec<String> = (0..40).map(|i| format!("item-{i}")).collect();
    all.sort();
    assert_eq!(covered, all, "the shards partition the set");
    let out_dir = tempfile::tempdir().unwrap();
    let out = project
        .cmd()
        .arg("merge")
        .args(&shard_dirs)
        .arg("--out")
        .arg(out_dir.path())
        .output()
        .unwrap();
    let merged = Run::new(out_dir.path(), out);
    assert!(matches!(merged.code(), 0 | 1), "{}", merged.stderr());
    assert_eq!(merged.results().len(), 80);
    assert_eq!(merged.summary()["status"], "complete");

    // Exactness: cut one real unsharded run into 4 shard directories by the same rule, merge them,
    // and compare with the unsharded summary — histograms and percentiles included.
    let whole = project.run(&["--quiet"]);
    let wdir = whole.dir.clone().unwrap();
    let manifest = json(&wdir.join("run.json"));
    let items_text = std::fs::read_to_string(wdir.join("items.jsonl")).unwrap();
    let results_text = std::fs::read_to_string(wdir.join("results.jsonl")).unwrap();
    let split = tempfile::tempdir().unwrap();
    let mut cut = Vec::new();
    for k in 1..=4u32 {
        let shard = goldgate::manifest::Shard { index: k, count: 4 };
        let dir = split.path().join(format!("s{k}"));
        std::fs::create_dir(&dir).unwrap();
        let keep = |line: &str| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            shard.contains(v["id"].as_str().unwrap())
        };
        let mut m = manifest.clone();
        m["shard"] = serde_json::json!({"index": k, "count": 4});
        m["run_id"] = format!("shard-{k}").into();
        std::fs::write(dir.join("run.json"), m.to_string()).unwrap();
        let pick = |text: &str| {
            text.lines()
                .filter(|l| keep(l))
                .map(|l| format!("{l}\n"))
                .collect::<String>()
        };
        std::fs::write(dir.join("items.jsonl"), pick(&items_text)).unwrap();
        std::fs::write(dir.join("results.jsonl"), pick(&results_text)).unwrap();
        cut.push(dir);
    }
    let out = project
        .cmd()
        .arg("merge")
        .args(&cut)
        .arg("--out")
        .arg(out_dir.path())
        .arg("--quiet")
        .output()
        .unwrap();
    let merged = Run::new(out_dir.path(), out);
    let (mut a, mut b) = (whole.summary(), merged.summary());
    for v in [&mut a, &mut b] {
        for k in ["run_id", "finished_at", "started_at"] {
            v.as_object_mut().unwrap().remove(k);
        }
    }
    assert_same(&a["models"], &b["models"], "models");
    assert_same(&a["gates"], &b["gates"], "gates");
    assert_eq!(a["items"], b["items"]);
    assert_eq!(a["verdict"], b["verdict"]);
    assert_eq!(
        a["models"]["candidate"]["metrics"]["histogram_us"],
        b["models"]["candidate"]["metrics"]["histogram_us"],
        "the merged histogram is the unsharded one, bit for bit"
    );

    // Not shards of one run: refused.
    let other = Project::openai(&server.base_url(), &items[..3], "");
    let o = other.run(&["--quiet"]);
    let out = project
        .cmd()
        .arg("merge")
        .arg(&shard_dirs[0])
        .arg(o.dir.as_ref().unwrap())
        .output()
        .unwrap();
    assert_exit(&out, 2);
}
