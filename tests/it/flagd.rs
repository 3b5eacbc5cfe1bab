//! The flag file goldgate writes, resolved by the real OpenFeature flagd evaluator.
//!
//! `tests/flagd/evaluate.mjs` loads the file into `@openfeature/flagd-core` (the core of flagd's
//! in-process providers, pinned in tests/flagd/package.json) with flagd's schema enforced, and
//! resolves the flag for 2,000 targeting keys: what users would be served, not what goldgate
//! believes it wrote.

use std::path::{Path, PathBuf};
use std::process::Command;

use goldgate::canary::Decision;
use goldgate::canary::flag::{FlagPlan, apply, read_rollout};
use serde_json::{Value, json};

use crate::support::skip_or_fail;

const USERS: u64 = 2_000;
/// When the steps are taken: 2026-11-30T12:00:00Z.
const NOW_MS: i64 = 1_796_040_000_000;

const PLAN: FlagPlan<'static> = FlagPlan {
    key: "model-route",
    current_variant: "current",
    candidate_variant: "candidate",
    steps: &[1, 5, 25, 50, 100],
};

fn flagd_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/flagd")
}

/// Whether node and the evaluator are installed; if not, skipped here and a failure under CI.
pub(crate) fn evaluator_present() -> bool {
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let installed = flagd_dir()
        .join("node_modules/@openfeature/flagd-core/package.json")
        .exists();
    if !(node && installed) {
        skip_or_fail("node and tests/flagd/node_modules (npm ci --prefix tests/flagd)");
    }
    node && installed
}

/// What the real evaluator resolves `key` of `file` to, for `user-0` .. `user-1999`: the tallies
/// (variants, values, reasons, errors, `without_key`), and whether each user got the candidate.
fn resolve_by_user(file: &Path, key: &str) -> (Value, Vec<bool>) {
    let out = Command::new("node")
        .arg(flagd_dir().join("evaluate.mjs"))
        .arg(file)
        .arg(key)
        .arg(USERS.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "flagd-core refused {}:\n{}\n--- the file\n{}",
        file.display(),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(file).unwrap_or_default()
    );
    let mut tally: Value = serde_json::from_slice(&out.stdout).unwrap();
    let by_user = tally["by_user"].take();
    tally.as_object_mut().unwrap().remove("by_user");
    let by_user = by_user
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v == "candidate")
        .collect();
    (tally, by_user)
}

pub(crate) fn resolve(file: &Path, key: &str) -> Value {
    resolve_by_user(file, key).0
}

/// How many of the users the evaluator served `variant`, asserting nothing failed to resolve.
pub(crate) fn served(resolved: &Value, variant: &str) -> u64 {
    assert_eq!(resolved["errors"], json!({}), "{resolved}");
    resolved["variants"][variant].as_u64().unwrap_or(0)
}

/// The candidate got `percent` % of the users, within 6 standard deviations of the binomial
/// count: bucketing by hash is as good as random, and a 6-sigma miss happens about twice in a
/// billion — while a wrong step (5 % for 25 %) misses by more than 20.
#[track_caller]
fn assert_share(resolved: &Value, percent: u32) {
    let n = USERS as f64;
    let p = f64::from(percent) / 100.0;
    let expected = n * p;
    let sd = (n * p * (1.0 - p)).sqrt();
    let got = served(resolved, "candidate") as f64;
    assert!(
        (got - expected).abs() <= 6.0 * sd,
        "candidate served {got} of {n}, expected {expected} ± {}: {resolved}",
        6.0 * sd
    );
    assert_eq!(
        served(resolved, "candidate") + served(resolved, "current"),
        USERS,
        "{resolved}"
    );
}

#[test]
fn decisions_written_to_the_flag_are_what_flagd_serves() {
    if !evaluator_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("flags.json");
    let flags = json!({
        "$schema": "https://flagd.dev/schema/v0/flags.json",
        "flags": {
            "model-route": {
                "state": "ENABLED",
                "variants": {"current": "gpt-4o-2024-08-06", "candidate": "gpt-4.1"},
                "defaultVariant": "current",
                "targeting": {"fractional": [{"var": "targetingKey"}, ["current", 95], ["candidate", 5]]},
            },
            "checkout-theme": {
                "state": "ENABLED",
                "variants": {"light": "light", "dark": "dark"},
                "defaultVariant": "light",
                "targeting": {"fractional": [["light", 50], ["dark", 50]]},
            },
        },
    });
    std::fs::write(&file, serde_json::to_string_pretty(&flags).unwrap()).unwrap();
    let other = resolve(&file, "checkout-theme");
    assert!(
        served(&other, "dark") > 0 && served(&other, "light") > 0,
        "{other}"
    );

    // The file as the operator wrote it: 5 %.
    assert_eq!(read_rollout(&file, &PLAN).unwrap().share, Some(5));
    assert_share(&resolve(&file, "model-route"), 5);

    // Continue: the next step, 25 %; the file before is kept beside it.
    let before = std::fs::read_to_string(&file).unwrap();
    let change = apply(&file, &PLAN, Decision::Continue, NOW_MS).unwrap();
    assert_eq!((change.share_before, change.share_after), (Some(5), 25));
    assert_eq!(std::fs::read_to_string(&change.previous).unwrap(), before);
    let at_25 = resolve(&file, "model-route");
    assert_share(&at_25, 25);
    assert_eq!(at_25["reasons"], json!({"TARGETING_MATCH": USERS}));
    // The bucketing expression stayed: without a targeting key there is nothing to bucket by.
    assert_eq!(at_25["without_key"]["reason"], "DEFAULT", "{at_25}");
    assert_eq!(
        resolve(&file, "checkout-theme"),
        other,
        "another flag in the file changed"
    );

    // Rollback: everyone on the current model, the default variant included.
    let change = apply(&file, &PLAN, Decision::Rollback, NOW_MS).unwrap();
    assert_eq!((change.share_before, change.share_after), (Some(25), 0));
    let rolled_back = resolve(&file, "model-route");
    assert_eq!(served(&rolled_back, "current"), USERS, "{rolled_back}");
    assert_eq!(
        rolled_back["values"],
        json!({"gpt-4o-2024-08-06": USERS}),
        "{rolled_back}"
    );
    assert_eq!(
        rolled_back["without_key"]["variant"], "current",
        "{rolled_back}"
    );

    // Promote: everyone on the candidate, the default variant included.
    let change = apply(&file, &PLAN, Decision::Promote, NOW_MS).unwrap();
    assert_eq!(change.default_after, "candidate");
    let promoted = resolve(&file, "model-route");
    assert_eq!(served(&promoted, "candidate"), USERS, "{promoted}");
    assert_eq!(promoted["values"], json!({"gpt-4.1": USERS}), "{promoted}");
    assert_eq!(
        promoted["without_key"]["variant"], "candidate",
        "{promoted}"
    );

    // Continue at the last step: it stays.
    let before = std::fs::read_to_string(&file).unwrap();
    let change = apply(&file, &PLAN, Decision::Continue, NOW_MS).unwrap();
    assert_eq!((change.share_before, change.share_after), (Some(100), 100));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before);
    assert_eq!(resolve(&file, "model-route"), promoted);

    assert_eq!(
        resolve(&file, "checkout-theme"),
        other,
        "another flag in the file changed"
    );
}

#[test]
fn a_rollout_started_by_goldgate_resolves_at_each_step() {
    if !evaluator_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("flags.json");
    // No split yet: the flag serves its default variant, the current model, to everyone.
    let flags = json!({
        "flags": {"model-route": {
            "state": "ENABLED",
            "variants": {"current": "gpt-4o-2024-08-06", "candidate": "gpt-4.1"},
            "defaultVariant": "current",
        }},
    });
    std::fs::write(&file, flags.to_string()).unwrap();
    assert_eq!(served(&resolve(&file, "model-route"), "current"), USERS);
    let mut on_candidate = vec![false; USERS as usize];
    for step in PLAN.steps {
        let change = apply(&file, &PLAN, Decision::Continue, NOW_MS).unwrap();
        assert_eq!(change.share_after, *step);
        let (resolved, now) = resolve_by_user(&file, "model-route");
        assert_share(&resolved, *step);
        // A user moved to the candidate stays there as the share grows: a rollout that
        // reshuffled users at each step would show some of them both models in turn.
        let moved_back = (0..now.len())
            .filter(|&i| on_candidate[i] && !now[i])
            .count();
        assert_eq!(
            moved_back, 0,
            "users moved back to the current model at {step} %"
        );
        on_candidate = now;
    }
}
