//! goldgate canary: the real binary on simulated canary logs with a known truth.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use goldgate::canary::simulate::Scenario;
use serde_json::{Value, json};

use crate::support::assert_exit;

struct Dir {
    dir: tempfile::TempDir,
}

impl Dir {
    fn new() -> Dir {
        Dir {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn log(&self, name: &str, s: &Scenario) -> PathBuf {
        let path = self.path().join(name);
        let file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        if name.ends_with(".csv") {
            s.write_csv(file).unwrap();
        } else if name.ends_with(".gz") {
            let gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
            s.write_jsonl(gz).unwrap();
        } else {
            s.write_jsonl(file).unwrap();
        }
        path
    }

    fn canary(&self, args: &[&str]) -> std::process::Output {
        Command::cargo_bin("goldgate")
            .unwrap()
            .current_dir(self.path())
            .env_remove("CI")
            .env("NO_COLOR", "1")
            .arg("canary")
            .args(args)
            .output()
            .unwrap()
    }

    /// The decision.json of the newest analysis directory.
    fn decision(&self) -> Value {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(self.path().join("reports"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort_by_key(|p| std::fs::metadata(p).unwrap().modified().unwrap());
        let last = dirs.last().expect("an analysis directory");
        serde_json::from_slice(&std::fs::read(last.join("decision.json")).unwrap()).unwrap()
    }
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn promote_rollback_and_continue_by_exit_code() {
    let d = Dir::new();
    d.log("none.jsonl", &Scenario::no_effect(20_000, 1));
    let o = d.canary(&["--log", "none.jsonl", "--candidate-percent", "50"]);
    assert_exit(&o, 0);
    let v = d.decision();
    assert_eq!(v["decision"], "promote");
    assert_eq!(v["counts"]["records"], 20_000);
    assert_eq!(v["split"]["mismatch"], false);

    for (name, s, metric) in [
        (
            "latency.csv",
            Scenario::no_effect(20_000, 2).latency_shift(1.3),
            "latency_p95_ms",
        ),
        (
            "errors.jsonl.gz",
            Scenario::no_effect(20_000, 3).error_spike(0.05),
            "error_rate",
        ),
        (
            "csat.jsonl",
            Scenario::no_effect(40_000, 4).csat_drop(0.4),
            "csat",
        ),
    ] {
        d.log(name, &s);
        let o = d.canary(&["--log", name, "--candidate-percent", "50"]);
        assert_exit(&o, 1);
        let v = d.decision();
        assert_eq!(v["decision"], "rollback", "{name}");
        let failed: Vec<&str> = v["gates"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|g| g["outcome"] == "fail")
            .map(|g| g["metric"].as_str().unwrap())
            .collect();
        assert!(failed.contains(&metric), "{name}: {failed:?}");
        assert!(stdout(&o).contains("decision: rollback"), "{}", stdout(&o));
    }

    // Too little traffic on the candidate: continue, with the reason.
    d.log("early.jsonl", &Scenario::no_effect(1_000, 5).split(0.05));
    let o = d.canary(&["--log", "early.jsonl", "--candidate-percent", "5"]);
    assert_exit(&o, 4);
    let v = d.decision();
    assert_eq!(v["decision"], "continue");
    assert!(
        v["reasons"][0]
            .as_str()
            .unwrap()
            .contains("candidate arm has"),
        "{v}"
    );
}

#[test]
fn a_sample_ratio_mismatch_is_untrustworthy_and_leaves_the_flag() {
    let d = Dir::new();
    d.log(
        "lossy.jsonl",
        &Scenario::no_effect(40_000, 6).split(0.1).srm(0.15),
    );
    let flags = d.path().join("flags.json");
    let before = json!({"flags": {"model-route": {"state": "ENABLED",
        "variants": {"current": "gpt-4o", "candidate": "gpt-4.1"}, "defaultVariant": "current",
        "targeting": {"fractional": [["current", 90], ["candidate", 10]]}}}});
    std::fs::write(&flags, before.to_string()).unwrap();
    let o = d.canary(&[
        "--log",
        "lossy.jsonl",
        "--flag-file",
        "flags.json",
        "--flag-key",
        "model-route",
    ]);
    assert_exit(&o, 3);
    let v = d.decision();
    assert_eq!(v["trustworthy"], false);
    assert_eq!(
        v["split"]["expected_candidate_percent"], 10.0,
        "read from the flag"
    );
    assert!(
        v["reasons"][0]
            .as_str()
            .unwrap()
            .contains("sample-ratio mismatch")
    );
    let after: Value = serde_json::from_slice(&std::fs::read(&flags).unwrap()).unwrap();
    assert_eq!(
        after, before,
        "the flag is not moved on an untrustworthy split"
    );
}

#[test]
fn the_decision_moves_the_flag_as_the_real_flagd_evaluator_reads_it() {
    if !crate::flagd::evaluator_present() {
        return;
    }
    let d = Dir::new();
    let flags = d.path().join("flags.json");
    std::fs::write(
        &flags,
        json!({"$schema": "https://flagd.dev/schema/v0/flags.json", "flags": {"model-route": {"state": "ENABLED",
        "variants": {"current": "gpt-4o", "candidate": "gpt-4.1"}, "defaultVariant": "current",
        "targeting": {"fractional": [{"var": "targetingKey"}, ["current", 95], ["candidate", 5]]}}}})
        .to_string(),
    )
    .unwrap();
    let args = |log: &'static str| {
        vec![
            "--log",
            log,
            "--flag-file",
            "flags.json",
            "--flag-key",
            "model-route",
        ]
    };
    // The logs are dated from the clock: a step is taken at the clock (or at the end of a log
    // wholly ahead of it), and a look after a step judges only what came after it.
    let now = now_ms();
    // Continue for want of data (under min_requests): the flag holds at 5%.
    let mut tiny = Scenario::no_effect(1_000, 7).split(0.05);
    tiny.start_ms = now - 3 * DAY_MS;
    d.log("tiny.jsonl", &tiny);
    assert_exit(&d.canary(&args("tiny.jsonl")), 4);
    assert!(d.decision()["flag"].is_null());
    assert!(!d.path().join("flags.json.previous").exists());
    // Continue with data but undecided gates: the candidate's share steps to 25%.
    let mut early = Scenario::no_effect(4_000, 7).split(0.05);
    early.start_ms = now - 2 * DAY_MS;
    d.log("early.jsonl", &early);
    assert_exit(&d.canary(&args("early.jsonl")), 4);
    assert_eq!(d.decision()["enough_data"], true);
    let r = crate::flagd::resolve(&flags, "model-route");
    let candidate = crate::flagd::served(&r, "candidate");
    assert!((350..650).contains(&candidate), "about 25% of 2,000: {r}");
    assert!(d.path().join("flags.json.previous").exists());

    // Promote: everyone on the candidate (a log after the step, so ahead of the clock; the
    // step is taken at its end).
    let mut good = Scenario::no_effect(20_000, 8).split(0.25);
    good.start_ms = now + DAY_MS;
    d.log("good.jsonl", &good);
    assert_exit(&d.canary(&args("good.jsonl")), 0);
    let r = crate::flagd::resolve(&flags, "model-route");
    assert_eq!(crate::flagd::served(&r, "candidate"), 2_000, "{r}");

    // Rollback: everyone back on the current model.
    let mut bad = Scenario::no_effect(20_000, 9).split(0.25).error_spike(0.06);
    bad.start_ms = now + 3 * DAY_MS;
    d.log("bad.jsonl", &bad);
    assert_exit(&d.canary(&args("bad.jsonl")), 1);
    let r = crate::flagd::resolve(&flags, "model-route");
    assert_eq!(crate::flagd::served(&r, "current"), 2_000, "{r}");
    assert_eq!(d.decision()["flag"]["share_after"], 0);
}

const DAY_MS: i64 = 86_400_000;

fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    since_epoch.as_millis() as i64
}

#[test]
fn after_a_step_the_next_look_judges_the_records_served_at_the_new_split() {
    let d = Dir::new();
    let flags = d.path().join("flags.json");
    let flag = json!({"flags": {"model-route": {"state": "ENABLED",
        "variants": {"current": "gpt-4o", "candidate": "gpt-4.1"}, "defaultVariant": "current",
        "targeting": {"fractional": [["current", 95], ["candidate", 5]]}}}});
    std::fs::write(&flags, flag.to_string()).unwrap();
    let args = [
        "--log",
        "at5.jsonl",
        "--log",
        "at25.jsonl",
        "--flag-file",
        "flags.json",
        "--flag-key",
        "model-route",
    ];
    // A day at 5%, up to the clock: undecided, so the flag steps to 25%, the step (now)
    // recorded in its metadata.
    let now = now_ms();
    let mut at5 = Scenario::no_effect(6_000, 21).split(0.05);
    at5.start_ms = now - 2 * DAY_MS;
    d.log("at5.jsonl", &at5);
    std::fs::write(d.path().join("at25.jsonl"), "").unwrap();
    assert_exit(&d.canary(&args), 4);
    let stepped: Value = serde_json::from_slice(&std::fs::read(&flags).unwrap()).unwrap();
    let meta = &stepped["flags"]["model-route"]["metadata"];
    assert_eq!(meta["goldgate.share"], 25, "{stepped}");
    assert!(meta["goldgate.changed_at"].is_string(), "{stepped}");

    // The next day at 25%, appended: the look starts at the step, and the split it tests is
    // the new one's.
    let mut next = Scenario::no_effect(6_000, 22).split(0.25);
    next.start_ms = now + DAY_MS;
    d.log("at25.jsonl", &next);
    let o = d.canary(&args);
    let v = d.decision();
    assert_eq!(v["trustworthy"], true, "{}", stdout(&o));
    assert_eq!(v["since_step"], true);
    assert_eq!(v["split"]["mismatch"], false);
    let judged =
        v["counts"]["current"].as_u64().unwrap() + v["counts"]["candidate"].as_u64().unwrap();
    assert!(judged <= 6_000, "only the records after the step: {judged}");
    assert!(v["counts"]["outside_window"].as_u64().unwrap() >= 6_000);

    // The witness: the same flag with goldgate's record of the step taken out (a share changed
    // by hand): the two days are judged as one against 25%, and their split is a mismatch.
    let mut by_hand = stepped.clone();
    by_hand["flags"]["model-route"]["metadata"] = json!({});
    std::fs::write(&flags, by_hand.to_string()).unwrap();
    let o = d.canary(&args);
    assert_exit(&o, 3);
    assert_eq!(d.decision()["split"]["mismatch"], true);
}

#[test]
fn sequential_looks_keep_their_state_and_refuse_a_shrunk_log() {
    let d = Dir::new();
    let s = Scenario::no_effect(12_000, 10).error_spike(0.06);
    let records: Vec<_> = s.records().collect();
    let state = d.path().join("state.json");
    let mut decided_at = None;
    for look in 1..=6 {
        let path = d.path().join("growing.jsonl");
        let file = std::fs::File::create(&path).unwrap();
        s.write_jsonl_from(records[..look * 2_000].iter().cloned(), file)
            .unwrap();
        let o = d.canary(&[
            "--log",
            "growing.jsonl",
            "--sequential",
            "--state",
            "state.json",
            "--candidate-percent",
            "50",
        ]);
        let v = d.decision();
        assert_eq!(v["mode"], "sequential");
        assert_eq!(v["sequential"]["looks"].as_array().unwrap().len(), look);
        if v["decision"] == "rollback" {
            assert_exit(&o, 1);
            decided_at = Some(look);
            break;
        }
        assert_exit(&o, 4);
    }
    assert!(
        decided_at.is_some(),
        "a 6-fold error rate is caught within 12,000 requests"
    );
    let saved: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert!(
        saved["running"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| !r.is_null())
    );

    // A log smaller than at the last look is another log: refused, nothing decided.
    let path = d.path().join("growing.jsonl");
    s.write_jsonl_from(
        records[..500].iter().cloned(),
        std::fs::File::create(&path).unwrap(),
    )
    .unwrap();
    let o = d.canary(&[
        "--log",
        "growing.jsonl",
        "--sequential",
        "--state",
        "state.json",
    ]);
    assert_exit(&o, 2);
    assert!(String::from_utf8_lossy(&o.stderr).contains("fewer requests than at the last look"));
}

#[test]
fn bad_lines_are_counted_or_refused_and_unknown_variants_shown() {
    let d = Dir::new();
    let good = Scenario::no_effect(400, 11);
    let mut text = Vec::new();
    good.write_jsonl(&mut text).unwrap();
    let mut text = String::from_utf8(text).unwrap();
    text.push_str(
        "{\"timestamp\":\"2026-11-30T13:00:00Z\",\"variant\":\"shadow-b\",\"latency_ms\":3}\n",
    );
    text.push_str("this is not json\n");
    std::fs::write(d.path().join("mixed.jsonl"), &text).unwrap();
    let o = d.canary(&["--log", "mixed.jsonl"]);
    assert!(matches!(o.status.code(), Some(0 | 4)), "{o:?}");
    let v = d.decision();
    assert_eq!(v["counts"]["malformed"], 1);
    assert!(
        v["counts"]["examples"][0]
            .as_str()
            .unwrap()
            .contains("mixed.jsonl:402"),
        "{v}"
    );
    assert_eq!(v["counts"]["unknown_variants"]["shadow-b"], 1);

    let o = d.canary(&["--log", "mixed.jsonl", "--strict"]);
    assert_exit(&o, 2);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("mixed.jsonl:402") && err.contains("--strict"),
        "{err}"
    );

    // A configuration error names the file, the field and the fix.
    std::fs::write(
        d.path().join("goldgate.toml"),
        "[canary]\nsteps = [5, 1]\n[[canary.gate]]\nmetric = \"faithfulness\"\nmin = 4\n",
    )
    .unwrap();
    let o = d.canary(&["--log", "mixed.jsonl"]);
    assert_exit(&o, 2);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("canary.steps") && err.contains("canary.gate[0]"),
        "{err}"
    );

    // A file that is no log at all.
    std::fs::write(d.path().join("goldgate.toml"), "").unwrap();
    std::fs::write(d.path().join("notes.txt"), "hello,world\n1,2\n").unwrap();
    let o = d.canary(&["--log", "notes.txt"]);
    assert_exit(&o, 2);
    assert!(String::from_utf8_lossy(&o.stderr).contains("variant"));
}

/// The cron recipe of docs/canary.md ("Cron or CI on logs in object storage"), run as written:
/// the script from the docs, the real goldgate, and an `aws` that syncs from a local directory
/// standing in for the bucket. Two looks: the first steps the flag from 5% to 25%, the second
/// (after the new split's logs arrive) judges only those and finds the split as configured.
#[test]
fn the_cron_recipe_steps_the_flag_and_judges_the_new_split_next() {
    let d = Dir::new();
    let docs =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/canary.md"))
            .unwrap();
    let start = docs
        .find("#!/bin/sh\n# One look at the canary")
        .expect("the cron recipe in docs/canary.md");
    let script = &docs[start..start + docs[start..].find("\n```").unwrap()];
    std::fs::write(d.path().join("canary-look.sh"), script).unwrap();

    let bin = d.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    // `aws s3 sync s3://BUCKET/PREFIX/ DIR ...`: a copy of the objects from $FAKE_S3.
    std::fs::write(
        bin.join("aws"),
        "#!/bin/sh\n[ \"$1 $2\" = \"s3 sync\" ] || exit 1\nsrc=\"$FAKE_S3/${3#s3://}\"\nmkdir -p \"$4\" && cp \"$src\"*.jsonl.gz \"$4\"/\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_goldgate"), bin.join("goldgate")).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(bin.join("aws"), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let bucket = d.path().join("s3/my-bucket/canary/chat-2026-11-30");
    std::fs::create_dir_all(&bucket).unwrap();
    std::fs::write(
        d.path().join("goldgate.toml"),
        "[canary]\ninterval = \"5m\"\n",
    )
    .unwrap();
    let flags = d.path().join("flags.json");
    std::fs::write(
        &flags,
        json!({"flags": {"model-route": {"state": "ENABLED",
            "variants": {"current": "gpt-4o", "candidate": "gpt-4.1"}, "defaultVariant": "current",
            "targeting": {"fractional": [["current", 95], ["candidate", 5]]}}}})
        .to_string(),
    )
    .unwrap();
    let object = |name: &str, s: &Scenario| {
        let file = std::fs::File::create(bucket.join(name)).unwrap();
        let gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
        s.write_jsonl(gz).unwrap();
    };
    let look = || {
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        std::process::Command::new("sh")
            .arg(d.path().join("canary-look.sh"))
            .env("PATH", path)
            .env("FAKE_S3", d.path().join("s3"))
            .env("WORK", d.path().join("work"))
            .env("CONFIG", d.path().join("goldgate.toml"))
            .env("FLAGS", &flags)
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    };
    let share = || -> Value {
        let f: Value = serde_json::from_slice(&std::fs::read(&flags).unwrap()).unwrap();
        f["flags"]["model-route"]["targeting"]["fractional"].clone()
    };

    let now = now_ms();
    let mut at5 = Scenario::no_effect(6_000, 31).split(0.05);
    at5.start_ms = now - 2 * DAY_MS;
    object("part-0.jsonl.gz", &at5);
    let o = look();
    assert_exit(&o, 4);
    assert_eq!(
        share(),
        json!([["current", 75], ["candidate", 25]]),
        "{}",
        stdout(&o)
    );

    let mut at25 = Scenario::no_effect(6_000, 32).split(0.25);
    at25.start_ms = now + DAY_MS;
    object("part-1.jsonl.gz", &at25);
    let o = look();
    let dir = stdout(&o).lines().last().unwrap().to_owned();
    let v: Value = serde_json::from_slice(
        &std::fs::read(d.path().join("work").join(&dir).join("decision.json"))
            .or_else(|_| std::fs::read(Path::new(&dir).join("decision.json")))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(v["since_step"], true, "{}", stdout(&o));
    assert_eq!(v["trustworthy"], true, "{}", stdout(&o));
    assert_eq!(v["sequential"]["looks"].as_array().unwrap().len(), 2);
    assert!(
        o.status.code() == Some(0) || o.status.code() == Some(4),
        "{}",
        stdout(&o)
    );
}
