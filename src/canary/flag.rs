//! The OpenFeature flagd flag definition a canary decision is written to.
//!
//! goldgate manages one flag of a flagd flag file (<https://flagd.dev/reference/flag-definitions/>):
//! a flag with a `current` and a `candidate` variant (names set by [`FlagPlan`]) whose targeting is
//! either absent (everyone gets `defaultVariant`) or one top-level `fractional` split over exactly
//! those two variants (<https://flagd.dev/reference/custom-operations/fractional-operation/>).
//! Anything else in the targeting is a rule goldgate cannot move traffic through without changing
//! what it means, so it is refused rather than rewritten.
//!
//! How flagd reads a split, checked against the real evaluator (`@openfeature/flagd-core` 4.0.1,
//! tests/it/flagd.rs) and flagd's Go evaluator:
//! - weights are relative: a bucket gets `weight / sum of weights` of the bucketing values; a weight
//!   left out counts 1. Older evaluators and the specification required the weights to add up to
//!   100, so goldgate always writes percentages that do;
//! - a weight of 0 is accepted by flagd's schema (`minimum: 0`) and never selected: the hash picks
//!   the first bucket whose running sum of weights exceeds it, and a zero weight adds nothing.
//!   So rollback writes `[current, 100], [candidate, 0]` (promote the reverse), which keeps the split
//!   and its bucketing expression in place for the next rollout;
//! - the bucketing value is the first element when it is not a bucket (e.g. `{"var": "email"}`),
//!   otherwise the flag key followed by the targeting key. When that value is missing from the
//!   evaluation context the split resolves to nothing and flagd serves `defaultVariant`: that is
//!   why rollback and promote set `defaultVariant` as well as the weights;
//! - with two buckets, raising the candidate's weight only moves users from the current model to
//!   the candidate (its range grows from one end), so a user who saw the candidate keeps it.

use std::fs::{File, OpenOptions, Permissions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::canary::Decision;
use crate::error::{Error, Location, Problem};

/// Names of the flag's two variants that goldgate moves traffic between, and the rollout steps.
#[derive(Debug, Clone, Copy)]
pub struct FlagPlan<'a> {
    /// The flag's key in the file's `flags`, e.g. `model-route`.
    pub key: &'a str,
    /// The variant serving the current model, a key of the flag's `variants`.
    pub current_variant: &'a str,
    /// The variant serving the candidate.
    pub candidate_variant: &'a str,
    /// The candidate's share in percent at each step of the rollout, e.g. `[1, 5, 25, 50, 100]`.
    pub steps: &'a [u32],
}

/// What [`apply`] changed in the flag file.
#[derive(Debug, Clone, Serialize)]
pub struct FlagChange {
    pub file: PathBuf,
    pub key: String,
    pub decision: Decision,
    /// The candidate's share in percent before, if the flag routed by a fractional split.
    pub share_before: Option<u32>,
    /// The candidate's share in percent now.
    pub share_after: u32,
    pub default_before: String,
    pub default_after: String,
    /// The file's previous content, kept beside it (overwritten each time).
    pub previous: PathBuf,
}

/// Check everything [`apply`] needs — the file is JSON, `flags` holds the key, both variants exist,
/// the targeting is absent or a split goldgate can manage, the file is writable — without writing,
/// so a command can refuse before it analyses anything.
pub fn validate(path: &Path, plan: &FlagPlan) -> Result<(), Error> {
    load(path, plan)?;
    let readonly = std::fs::metadata(path).is_ok_and(|m| m.permissions().readonly());
    if readonly {
        return Err(Error::input(
            Location::file(path),
            "the flag file is read-only, and goldgate writes the rollout decision into it",
            "make the file writable by the user running goldgate",
        ));
    }
    Ok(())
}

/// The flag's metadata keys goldgate writes when it moves traffic: the candidate's share it set,
/// and when (RFC 3339, UTC). flagd carries flag metadata through to evaluations untouched.
pub const META_SHARE: &str = "goldgate.share";
pub const META_CHANGED_AT: &str = "goldgate.changed_at";

/// How long after goldgate moved the traffic the log still carries the old split: flagd reloads
/// a watched file within seconds, and providers sync soon after. Records of that minute are left
/// out of the next look.
pub const SETTLE_MS: i64 = 60_000;

/// What the flag says of the rollout now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rollout {
    /// The candidate's share in percent (rounded), if the flag routes by a fractional split:
    /// what the traffic's observed split is tested against. `None` when the flag has no
    /// targeting (everyone gets `defaultVariant`).
    pub share: Option<u32>,
    /// When goldgate set that share (ms since the epoch), if it did and nobody changed the share
    /// since: the records before it were served at the old split.
    pub changed_at_ms: Option<i64>,
}

pub fn read_rollout(path: &Path, plan: &FlagPlan) -> Result<Rollout, Error> {
    let flag = load(path, plan)?;
    let share = flag.split.map(|s| s.percent());
    let meta = flag.doc["flags"][plan.key].get("metadata");
    let written_share = meta.and_then(|m| m.get(META_SHARE)).and_then(Value::as_u64);
    let changed_at_ms = meta
        .and_then(|m| m.get(META_CHANGED_AT))
        .and_then(Value::as_str)
        .and_then(|t| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
        })
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        // A share changed by hand since: when is unknown.
        .filter(|_| written_share.is_some() && written_share == share.map(u64::from));
    Ok(Rollout {
        share,
        changed_at_ms,
    })
}

/// Write the decision into the flag:
/// - rollback: `defaultVariant` = the current variant, the candidate's share 0 (the instant rollback);
/// - promote: `defaultVariant` = the candidate, the candidate's share 100;
/// - continue: the candidate's share moves to the smallest step above the present one (no split
///   yet counts as 0, so the first step); at or past the last step it stays. `defaultVariant` is
///   unchanged.
///
/// A split present is rewritten in place (its bucketing expression and bucket order kept); one is
/// added only when continue starts a rollout. Other flags and fields are kept, but the file is
/// re-serialized: keys come out sorted and indented. The file is replaced atomically (a temporary
/// file in the same directory, synced, renamed over it), and its previous content kept beside it
/// in `<name>.previous`.
///
/// When the routing changes, the flag's `metadata` records the new share and `now_ms`
/// ([`META_SHARE`], [`META_CHANGED_AT`]), so the next look can leave out the records served
/// at the old split ([`read_rollout`]).
pub fn apply(
    path: &Path,
    plan: &FlagPlan,
    decision: Decision,
    now_ms: i64,
) -> Result<FlagChange, Error> {
    let mut flag = load(path, plan)?;
    let share_before = flag.split.map(|s| s.percent());
    let default_before = flag.default_variant.clone();

    // The share to write, or None when it stays as it is.
    let target = match decision {
        Decision::Rollback => Some(0),
        Decision::Promote => Some(100),
        Decision::Continue => {
            let (candidate, total) = match flag.split {
                Some(s) => (s.candidate, s.total()),
                None if flag.default_variant == plan.candidate_variant => (1, 1),
                None => (0, 1),
            };
            next_step(candidate, total, plan.steps)
        }
    };
    let share_after = match (target, flag.split) {
        (Some(share), _) => share,
        (None, Some(s)) => s.percent(),
        (None, None) if flag.default_variant == plan.candidate_variant => 100,
        (None, None) => 0,
    };

    let entry = flag_mut(&mut flag.doc, plan.key);
    match decision {
        Decision::Rollback => set_default(entry, plan.current_variant),
        Decision::Promote => set_default(entry, plan.candidate_variant),
        Decision::Continue => {}
    }
    if let Some(share) = target {
        match decision {
            // Without a split, `defaultVariant` alone routes everyone.
            Decision::Rollback | Decision::Promote if flag.split.is_none() => {}
            _ => set_share(entry, plan, share),
        }
    }
    let default_after = entry
        .get("defaultVariant")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    // The share the routing gave before: the split's, or without one all or nothing by the
    // default variant. Only a change is a step (a repeated rollback is none).
    let routed_before = share_before.unwrap_or(if default_before == plan.candidate_variant {
        100
    } else {
        0
    });
    if share_after != routed_before || default_after != default_before {
        let meta = entry
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(meta) = meta.as_object_mut() {
            meta.insert(META_SHARE.to_owned(), json!(share_after));
            meta.insert(
                META_CHANGED_AT.to_owned(),
                json!(super::analysis::rfc3339(now_ms)),
            );
        }
    }

    let mut bytes = serde_json::to_vec_pretty(&flag.doc).map_err(|e| {
        Error::RunFailed(format!(
            "cannot serialize the flag file {}: {e}",
            path.display()
        ))
    })?;
    bytes.push(b'\n');

    let previous = previous_path(path);
    let failed = |what: &Path, e: std::io::Error| {
        Error::RunFailed(format!(
            "cannot write {} (the rollout decision `{}` for flag `{}` was not applied): {e}",
            what.display(),
            decision.as_str(),
            plan.key
        ))
    };
    write_atomic(&previous, flag.text.as_bytes(), &flag.permissions)
        .map_err(|e| failed(&previous, e))?;
    // Through a symlink (a mounted ConfigMap, a dotfiles link) the file it points to is replaced,
    // not the link.
    let target_file = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    write_atomic(&target_file, &bytes, &flag.permissions).map_err(|e| failed(path, e))?;

    Ok(FlagChange {
        file: path.to_owned(),
        key: plan.key.to_owned(),
        decision,
        share_before,
        share_after,
        default_before,
        default_after,
        previous,
    })
}

/// Where [`apply`] keeps the file's previous content: `flags.json` → `flags.json.previous`.
pub fn previous_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".previous");
    path.with_file_name(name)
}

/// The candidate's share after one more step: the smallest step above its present share
/// `candidate / total` (compared exactly, not rounded), or `None` at or past the last step.
fn next_step(candidate: u64, total: u64, steps: &[u32]) -> Option<u32> {
    steps
        .iter()
        .copied()
        .filter(|&s| u64::from(s) * total > 100 * candidate)
        .min()
}

/// The two buckets' weights as the file has them.
#[derive(Debug, Clone, Copy)]
struct Split {
    current: u64,
    candidate: u64,
}

impl Split {
    fn total(self) -> u64 {
        self.current + self.candidate
    }

    /// The candidate's share in percent, rounded to the nearest.
    fn percent(self) -> u32 {
        let total = self.total().max(1);
        u32::try_from((200 * self.candidate + total) / (2 * total)).unwrap_or(100)
    }
}

/// A flag file read and checked against a plan.
struct Loaded {
    text: String,
    doc: Value,
    default_variant: String,
    split: Option<Split>,
    permissions: Permissions,
}

fn load(path: &Path, plan: &FlagPlan) -> Result<Loaded, Error> {
    check_plan(plan)?;
    let is_yaml = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"));
    if is_yaml {
        return Err(Error::input(
            Location::file(path),
            "a YAML flag file: goldgate writes flagd flag definitions as JSON only",
            "convert it to JSON (e.g. `yq -o=json . flags.yaml > flags.json`; flagd reads JSON flag \
             files too) and point flagd and goldgate at the .json file",
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::input(
            Location::file(path),
            format!("cannot read the flag file: {e}"),
            "check the path to the flagd flag definition file",
        )
    })?;
    let permissions = std::fs::metadata(path)
        .map(|m| m.permissions())
        .map_err(|e| {
            Error::input(
                Location::file(path),
                format!("cannot read the flag file: {e}"),
                "check the path to the flagd flag definition file",
            )
        })?;
    let doc: Value = serde_json::from_str(&text).map_err(|e| {
        Error::input(
            Location::file(path).line(e.line()),
            format!("not valid JSON: {e}"),
            "fix the JSON syntax; goldgate reads flagd flag definitions as JSON only (not YAML)",
        )
    })?;
    let (default_variant, split) = check_flag(path, &doc, plan)?;
    Ok(Loaded {
        text,
        doc,
        default_variant,
        split,
        permissions,
    })
}

fn check_plan(plan: &FlagPlan) -> Result<(), Error> {
    if plan.current_variant == plan.candidate_variant {
        return Err(Error::Usage(format!(
            "the current and the candidate variant of flag `{}` are both `{}`: they must be two \
             different variants of the flag",
            plan.key, plan.current_variant
        )));
    }
    if plan.steps.is_empty() || plan.steps.iter().any(|&s| s == 0 || s > 100) {
        return Err(Error::Usage(format!(
            "the canary rollout steps {:?} must be one or more percentages from 1 to 100, e.g. \
             [1, 5, 25, 50, 100]",
            plan.steps
        )));
    }
    Ok(())
}

/// Check the flag against the plan: its default variant, and its split if it has one.
fn check_flag(path: &Path, doc: &Value, plan: &FlagPlan) -> Result<(String, Option<Split>), Error> {
    let key = plan.key;
    let at = |field: &str| Location::file(path).field(field);
    let field = |rest: &str| format!("flags.{key}{rest}");

    let flags = doc.get("flags").and_then(Value::as_object).ok_or_else(|| {
        Error::input(
            at("flags"),
            "no `flags` object: not a flagd flag definition file",
            "point goldgate at the flagd flag definition file (`{\"flags\": {...}}`, \
             https://flagd.dev/reference/flag-definitions/)",
        )
    })?;
    let flag = match flags.get(key) {
        Some(Value::Object(flag)) => flag,
        Some(_) => {
            return Err(Error::input(
                at(&field("")),
                "the flag is not an object",
                "define the flag as an object with `state`, `variants` and `defaultVariant`",
            ));
        }
        None => {
            let present: Vec<&str> = flags.keys().map(String::as_str).collect();
            return Err(Error::input(
                at("flags"),
                format!(
                    "no flag `{key}` (the file has: {})",
                    if present.is_empty() {
                        "none".to_owned()
                    } else {
                        present.join(", ")
                    }
                ),
                format!(
                    "add a flag `{key}` with variants `{}` and `{}`, or configure the key of the \
                     flag that routes the model",
                    plan.current_variant, plan.candidate_variant
                ),
            ));
        }
    };

    match flag.get("state").and_then(Value::as_str) {
        Some("ENABLED") => {}
        state => {
            return Err(Error::input(
                at(&field(".state")),
                format!(
                    "the flag's state is {}: a flag that is not ENABLED serves no variant, so no \
                     decision written to it would route traffic",
                    state.map_or("missing".to_owned(), |s| format!("`{s}`"))
                ),
                "set `\"state\": \"ENABLED\"`",
            ));
        }
    }

    // goldgate records its steps in the flag's metadata, which flagd's schema requires to be
    // an object of plain values.
    if flag.get("metadata").is_some_and(|m| !m.is_object()) {
        return Err(Error::input(
            at(&field(".metadata")),
            "the flag's `metadata` is not an object (flagd's schema requires one)",
            "make it an object of strings, numbers and booleans, e.g. `\"metadata\": {}`, or remove it",
        ));
    }

    let variants = flag
        .get("variants")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            Error::input(
                at(&field(".variants")),
                "the flag has no `variants` object",
                format!(
                    "add `\"variants\": {{\"{}\": ..., \"{}\": ...}}`",
                    plan.current_variant, plan.candidate_variant
                ),
            )
        })?;
    let missing: Vec<&str> = [plan.current_variant, plan.candidate_variant]
        .into_iter()
        .filter(|v| !variants.contains_key(*v))
        .collect();
    if !missing.is_empty() {
        let present: Vec<&str> = variants.keys().map(String::as_str).collect();
        return Err(Error::input(
            at(&field(".variants")),
            format!(
                "no variant {} (the flag has: {})",
                quoted(&missing),
                present.join(", ")
            ),
            format!(
                "add the variant{} to the flag, or configure the names of the variants serving \
                 the current model and the candidate",
                if missing.len() > 1 { "s" } else { "" }
            ),
        ));
    }

    let default_variant = match flag.get("defaultVariant").and_then(Value::as_str) {
        Some(v) if v == plan.current_variant || v == plan.candidate_variant => v.to_owned(),
        other => {
            return Err(Error::input(
                at(&field(".defaultVariant")),
                format!(
                    "the default variant is {}: goldgate routes between `{}` and `{}` only",
                    other.map_or("missing".to_owned(), |v| format!("`{v}`")),
                    plan.current_variant,
                    plan.candidate_variant
                ),
                format!(
                    "set `\"defaultVariant\": \"{}\"` (the variant serving the current model)",
                    plan.current_variant
                ),
            ));
        }
    };

    let split = match flag.get("targeting") {
        None | Some(Value::Null) => None,
        Some(Value::Object(t)) if t.is_empty() => None,
        Some(targeting) => Some(check_split(path, targeting, plan)?),
    };
    Ok((default_variant, split))
}

/// The split of a targeting rule that must be `{"fractional": [bucketing?, [variant, weight]...]}`
/// over exactly the plan's two variants.
fn check_split(path: &Path, targeting: &Value, plan: &FlagPlan) -> Result<Split, Error> {
    let key = plan.key;
    let field = format!("flags.{key}.targeting");
    let foreign = |what: String| {
        Problem::new(Location::file(path).field(&field), what).fix(format!(
            "make the targeting a single split over the two variants, e.g. \
             `{{\"fractional\": [{{\"var\": \"targetingKey\"}}, [\"{c}\", 95], [\"{n}\", 5]]}}`, \
             or move the other rules to another flag: goldgate will not rewrite rules it does \
             not manage",
            c = plan.current_variant,
            n = plan.candidate_variant
        ))
    };
    let buckets = match targeting.as_object() {
        Some(t) if t.len() == 1 && t.contains_key("fractional") => &t["fractional"],
        Some(t) => {
            let ops: Vec<&str> = t.keys().map(String::as_str).collect();
            return Err(foreign(format!(
                "the targeting is {}, not a single top-level `fractional` split goldgate can move \
                 traffic through",
                quoted(&ops)
            ))
            .into());
        }
        None => {
            return Err(foreign("the targeting is not a JSON object".to_owned()).into());
        }
    };
    let buckets = buckets.as_array().ok_or_else(|| {
        Error::from(foreign(
            "`fractional` is not an array of buckets".to_owned(),
        ))
    })?;
    // The optional bucketing expression comes first, and is anything but a bucket.
    let skip = usize::from(buckets.first().is_some_and(|b| !b.is_array()));
    let mut current = None;
    let mut candidate = None;
    for (i, bucket) in buckets.iter().enumerate().skip(skip) {
        let at = Location::file(path).field(format!("{field}.fractional[{i}]"));
        let entry = bucket.as_array().filter(|e| (1..=2).contains(&e.len()));
        let Some(entry) = entry else {
            return Err(Error::input(
                at,
                "a bucket that is not `[variant, weight]`",
                "write each bucket as `[\"variant\", weight]`",
            ));
        };
        let slot = match entry[0].as_str() {
            Some(v) if v == plan.current_variant => &mut current,
            Some(v) if v == plan.candidate_variant => &mut candidate,
            _ => {
                return Err(foreign(format!(
                    "bucket {i} routes to {}, not to `{}` or `{}`: goldgate manages a split over \
                     exactly these two variants",
                    entry[0], plan.current_variant, plan.candidate_variant
                ))
                .into());
            }
        };
        // flagd counts a weight left out as 1; an expression as weight would be recomputed on
        // each evaluation, which goldgate cannot step.
        let weight = match entry.get(1) {
            None => 1,
            Some(w) => w.as_u64().ok_or_else(|| {
                Error::input(
                    at.clone(),
                    format!("the weight {w} is not a whole number of 0 or more"),
                    "write the weight as a whole number, e.g. 95 (flagd's weights are relative; \
                     goldgate writes percentages)",
                )
            })?,
        };
        if slot.replace(weight).is_some() {
            return Err(foreign(format!(
                "variant `{}` has two buckets",
                entry[0].as_str().unwrap_or_default()
            ))
            .into());
        }
    }
    let (Some(current), Some(candidate)) = (current, candidate) else {
        return Err(foreign(format!(
            "the split does not route to both `{}` and `{}`",
            plan.current_variant, plan.candidate_variant
        ))
        .into());
    };
    let split = Split { current, candidate };
    if split.total() == 0 {
        return Err(Error::input(
            Location::file(path).field(format!("{field}.fractional")),
            "every weight of the split is 0, so flagd falls back to `defaultVariant` and the \
             candidate's share is not defined",
            format!(
                "give the split weights, e.g. [\"{}\", 100], [\"{}\", 0]",
                plan.current_variant, plan.candidate_variant
            ),
        ));
    }
    i32::try_from(split.total()).map_err(|_| {
        Error::input(
            Location::file(path).field(format!("{field}.fractional")),
            "the weights add up to more than flagd accepts (2^31 - 1)",
            "write the weights as percentages",
        )
    })?;
    Ok(split)
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(" and ")
}

/// The flag's object in a document [`check_flag`] accepted.
fn flag_mut<'d>(doc: &'d mut Value, key: &str) -> &'d mut Map<String, Value> {
    doc.get_mut("flags")
        .and_then(|f| f.get_mut(key))
        .and_then(Value::as_object_mut)
        .expect("checked by check_flag")
}

fn set_default(flag: &mut Map<String, Value>, variant: &str) {
    flag.insert("defaultVariant".to_owned(), Value::from(variant));
}

/// Give the candidate `share` percent and the current variant the rest: the existing buckets'
/// weights are rewritten where they stand, or a split is added.
fn set_share(flag: &mut Map<String, Value>, plan: &FlagPlan, share: u32) {
    let weight = |variant: &str| {
        if variant == plan.candidate_variant {
            share
        } else {
            100 - share
        }
    };
    let buckets = flag
        .get_mut("targeting")
        .and_then(|t| t.get_mut("fractional"))
        .and_then(Value::as_array_mut);
    match buckets {
        Some(buckets) => {
            for bucket in buckets.iter_mut().filter_map(Value::as_array_mut) {
                let w = json!(weight(bucket[0].as_str().unwrap_or_default()));
                bucket.truncate(1);
                bucket.push(w);
            }
        }
        None => {
            flag.insert(
                "targeting".to_owned(),
                json!({"fractional": [
                    [plan.current_variant, weight(plan.current_variant)],
                    [plan.candidate_variant, share],
                ]}),
            );
        }
    }
}

/// Replace `target` with `bytes` so that a reader (flagd watching the file) sees the old content
/// or the new, never a part: a temporary file beside it, synced, renamed over it.
fn write_atomic(target: &Path, bytes: &[u8], permissions: &Permissions) -> std::io::Result<()> {
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut name = std::ffi::OsString::from(".");
    name.push(target.file_name().unwrap_or_default());
    name.push(format!(".goldgate-{}.tmp", std::process::id()));
    let tmp = dir.join(name);
    // Left over by a goldgate that died with this process id.
    let _ = std::fs::remove_file(&tmp);
    let written = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        file.write_all(bytes)?;
        file.set_permissions(permissions.clone())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, target)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    // The rename itself is durable once the directory is synced; where a directory cannot be
    // opened as a file (Windows) the rename is all there is.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEPS: &[u32] = &[1, 5, 25, 50, 100];

    /// 2026-11-30T12:00:00Z.
    const NOW_MS: i64 = 1_796_040_000_000;

    fn plan() -> FlagPlan<'static> {
        FlagPlan {
            key: "model-route",
            current_variant: "current",
            candidate_variant: "candidate",
            steps: STEPS,
        }
    }

    fn flag_file(flag: Value) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flags.json");
        let doc = json!({
            "$schema": "https://flagd.dev/schema/v0/flags.json",
            "flags": {
                "model-route": flag,
                "other": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off"},
            },
        });
        std::fs::write(&path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
        (dir, path)
    }

    fn split_flag(bucketing: Option<Value>, current: u64, candidate: u64) -> Value {
        let mut buckets: Vec<Value> = bucketing.into_iter().collect();
        buckets.push(json!(["current", current]));
        buckets.push(json!(["candidate", candidate]));
        json!({
            "state": "ENABLED",
            "variants": {"current": "gpt-4o-2024-08-06", "candidate": "gpt-4.1"},
            "defaultVariant": "current",
            "targeting": {"fractional": buckets},
            "metadata": {"owner": "ml-platform"},
        })
    }

    fn read(path: &Path) -> Value {
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    /// The problem an error holds, as printed.
    fn problem(err: Error) -> String {
        match err {
            Error::Input(problems) => {
                assert_eq!(problems.len(), 1, "{problems:?}");
                assert!(
                    problems[0].fix.is_some(),
                    "a problem without a fix: {problems:?}"
                );
                problems[0].to_string()
            }
            other => panic!("expected an input problem, got {other:?}"),
        }
    }

    #[test]
    fn continue_moves_to_the_smallest_step_above_the_present_share() {
        assert_eq!(next_step(0, 100, STEPS), Some(1));
        assert_eq!(next_step(1, 100, STEPS), Some(5));
        assert_eq!(next_step(5, 100, STEPS), Some(25));
        assert_eq!(next_step(50, 100, STEPS), Some(100));
        // Between steps (edited by hand): the next step up, not the one after.
        assert_eq!(next_step(10, 100, STEPS), Some(25));
        // Compared exactly: 1 in 3 is 33.3 %, above 25.
        assert_eq!(next_step(1, 3, STEPS), Some(50));
        // At or past the last step it stays.
        assert_eq!(next_step(100, 100, STEPS), None);
        assert_eq!(next_step(60, 100, &[1, 5, 50]), None);
        // Order of the steps does not matter.
        assert_eq!(next_step(5, 100, &[50, 25, 5, 1]), Some(25));
    }

    #[test]
    fn share_is_read_from_relative_weights() {
        let cases = [
            (95, 5, 5),
            (19, 1, 5),
            (3, 1, 25),
            (2, 1, 33),
            (100, 0, 0),
            (0, 7, 100),
        ];
        for (current, candidate, percent) in cases {
            let (_dir, path) = flag_file(split_flag(None, current, candidate));
            assert_eq!(
                read_rollout(&path, &plan()).unwrap().share,
                Some(percent),
                "{current}:{candidate}"
            );
        }
        let (_dir, path) = flag_file(json!({
            "state": "ENABLED",
            "variants": {"current": "a", "candidate": "b"},
            "defaultVariant": "current",
        }));
        assert_eq!(read_rollout(&path, &plan()).unwrap().share, None);
    }

    #[test]
    fn continue_steps_the_split_and_keeps_the_bucketing_expression() {
        let bucketing = json!({"cat": [{"var": "$flagd.flagKey"}, {"var": "email"}]});
        let (_dir, path) = flag_file(split_flag(Some(bucketing.clone()), 95, 5));
        let before = read(&path);
        let change = apply(&path, &plan(), Decision::Continue, NOW_MS).unwrap();
        assert_eq!((change.share_before, change.share_after), (Some(5), 25));
        assert_eq!(
            (
                change.default_before.as_str(),
                change.default_after.as_str()
            ),
            ("current", "current")
        );
        let after = read(&path);
        let flag = &after["flags"]["model-route"];
        assert_eq!(
            flag["targeting"]["fractional"],
            json!([bucketing, ["current", 75], ["candidate", 25]])
        );
        assert_eq!(flag["defaultVariant"], "current");
        // The operator's metadata kept; the step recorded beside it, and read back.
        assert_eq!(
            flag["metadata"],
            json!({"owner": "ml-platform", "goldgate.share": 25, "goldgate.changed_at": "2026-11-30T12:00:00Z"})
        );
        let rollout = read_rollout(&path, &plan()).unwrap();
        assert_eq!(rollout.share, Some(25));
        assert_eq!(rollout.changed_at_ms, Some(NOW_MS));
        assert_eq!(after["flags"]["other"], before["flags"]["other"]);
        assert_eq!(after["$schema"], before["$schema"]);
    }

    #[test]
    fn continue_without_a_split_starts_at_the_first_step() {
        let (_dir, path) = flag_file(json!({
            "state": "ENABLED",
            "variants": {"current": "a", "candidate": "b"},
            "defaultVariant": "current",
        }));
        let change = apply(&path, &plan(), Decision::Continue, NOW_MS).unwrap();
        assert_eq!((change.share_before, change.share_after), (None, 1));
        assert_eq!(
            read(&path)["flags"]["model-route"]["targeting"],
            json!({"fractional": [["current", 99], ["candidate", 1]]})
        );
    }

    #[test]
    fn continue_at_the_last_step_stays() {
        let (_dir, path) = flag_file(split_flag(None, 0, 100));
        let before = read(&path);
        let change = apply(&path, &plan(), Decision::Continue, NOW_MS).unwrap();
        assert_eq!((change.share_before, change.share_after), (Some(100), 100));
        assert_eq!(read(&path), before);
    }

    #[test]
    fn rollback_and_promote_set_the_default_and_the_weights() {
        let (_dir, path) = flag_file(split_flag(Some(json!({"var": "targetingKey"})), 75, 25));
        let change = apply(&path, &plan(), Decision::Promote, NOW_MS).unwrap();
        assert_eq!((change.share_before, change.share_after), (Some(25), 100));
        assert_eq!(change.default_after, "candidate");
        let flag = read(&path)["flags"]["model-route"].clone();
        assert_eq!(flag["defaultVariant"], "candidate");
        assert_eq!(
            flag["targeting"]["fractional"],
            json!([{"var": "targetingKey"}, ["current", 0], ["candidate", 100]])
        );

        let change = apply(&path, &plan(), Decision::Rollback, NOW_MS).unwrap();
        assert_eq!((change.share_before, change.share_after), (Some(100), 0));
        assert_eq!(
            (
                change.default_before.as_str(),
                change.default_after.as_str()
            ),
            ("candidate", "current")
        );
        let flag = read(&path)["flags"]["model-route"].clone();
        assert_eq!(
            flag["targeting"]["fractional"],
            json!([{"var": "targetingKey"}, ["current", 100], ["candidate", 0]])
        );
        // After a rollback a new rollout starts again at the first step.
        let change = apply(&path, &plan(), Decision::Continue, NOW_MS).unwrap();
        assert_eq!((change.share_before, change.share_after), (Some(0), 1));
    }

    #[test]
    fn rollback_without_a_split_only_sets_the_default() {
        let (_dir, path) = flag_file(json!({
            "state": "ENABLED",
            "variants": {"current": "a", "candidate": "b"},
            "defaultVariant": "candidate",
        }));
        let change = apply(&path, &plan(), Decision::Rollback, NOW_MS).unwrap();
        assert_eq!((change.share_before, change.share_after), (None, 0));
        let flag = read(&path)["flags"]["model-route"].clone();
        assert_eq!(flag["defaultVariant"], "current");
        assert!(flag.get("targeting").is_none());
    }

    #[test]
    fn only_a_change_of_routing_is_recorded_as_a_step() {
        let (_dir, path) = flag_file(json!({
            "state": "ENABLED",
            "variants": {"current": "a", "candidate": "b"},
            "defaultVariant": "candidate",
        }));
        apply(&path, &plan(), Decision::Rollback, NOW_MS).unwrap();
        let first = read_rollout(&path, &plan()).unwrap();
        assert_eq!(first.changed_at_ms, None, "no split: no share to judge by");
        let meta = read(&path)["flags"]["model-route"]["metadata"].clone();
        assert_eq!(meta["goldgate.share"], 0, "{meta}");
        // The same rollback again changes no routing: the step's time stays.
        apply(&path, &plan(), Decision::Rollback, NOW_MS + 3_600_000).unwrap();
        assert_eq!(read(&path)["flags"]["model-route"]["metadata"], meta);

        // A metadata that is not an object is refused before anything is written.
        let (_dir, path) = flag_file(json!({
            "state": "ENABLED",
            "variants": {"current": "a", "candidate": "b"},
            "defaultVariant": "current",
            "metadata": "owner: ml-platform",
        }));
        let msg = problem(validate(&path, &plan()).unwrap_err());
        assert!(
            msg.contains("field `flags.model-route.metadata`") && msg.contains("fix:"),
            "{msg}"
        );
    }

    #[test]
    fn a_bucket_without_a_weight_counts_one_and_gets_one() {
        let (_dir, path) = flag_file(json!({
            "state": "ENABLED",
            "variants": {"current": "a", "candidate": "b"},
            "defaultVariant": "current",
            "targeting": {"fractional": [["candidate"], ["current"]]},
        }));
        assert_eq!(read_rollout(&path, &plan()).unwrap().share, Some(50));
        apply(&path, &plan(), Decision::Continue, NOW_MS).unwrap();
        assert_eq!(
            read(&path)["flags"]["model-route"]["targeting"]["fractional"],
            json!([["candidate", 100], ["current", 0]])
        );
    }

    #[test]
    fn the_write_is_atomic_and_keeps_the_previous_content() {
        let (dir, path) = flag_file(split_flag(None, 95, 5));
        let old = std::fs::read_to_string(&path).unwrap();
        let change = apply(&path, &plan(), Decision::Continue, NOW_MS).unwrap();
        assert_eq!(change.previous, dir.path().join("flags.json.previous"));
        assert_eq!(std::fs::read_to_string(&change.previous).unwrap(), old);
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["flags.json", "flags.json.previous"]);

        // The next write overwrites the previous content with the one just replaced.
        let middle = std::fs::read_to_string(&path).unwrap();
        apply(&path, &plan(), Decision::Rollback, NOW_MS).unwrap();
        assert_eq!(std::fs::read_to_string(&change.previous).unwrap(), middle);
        assert!(std::fs::read_to_string(&path).unwrap().ends_with("}\n"));
    }

    #[cfg(unix)]
    #[test]
    fn a_symlinked_file_is_replaced_behind_the_link() {
        let (dir, path) = flag_file(split_flag(None, 95, 5));
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        apply(&link, &plan(), Decision::Continue, NOW_MS).unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(read_rollout(&path, &plan()).unwrap().share, Some(25));
        assert!(dir.path().join("link.json.previous").exists());
    }

    #[test]
    fn refusals_name_the_file_the_field_and_the_fix() {
        let p = plan();
        let (_dir, path) = flag_file(split_flag(None, 95, 5));
        let other_key = FlagPlan {
            key: "chat-model",
            ..p
        };
        let msg = problem(validate(&path, &other_key).unwrap_err());
        assert!(msg.contains("flags.json: field `flags`"), "{msg}");
        assert!(
            msg.contains("no flag `chat-model` (the file has: model-route, other)"),
            "{msg}"
        );
        assert!(msg.contains("fix:"), "{msg}");

        let unknown = FlagPlan {
            candidate_variant: "gpt-5",
            ..p
        };
        let msg = problem(validate(&path, &unknown).unwrap_err());
        assert!(msg.contains("field `flags.model-route.variants`"), "{msg}");
        assert!(
            msg.contains("no variant `gpt-5` (the flag has: candidate, current)"),
            "{msg}"
        );

        let foreign = [
            json!({"if": [{"in": ["@example.com", {"var": "email"}]}, "candidate", null]}),
            json!({"fractional": [["current", 90], ["candidate", 5], ["other", 5]]}),
            json!({"fractional": [["current", 95]]}),
            json!({"fractional": [["current", 50], ["current", 50], ["candidate", 0]]}),
            json!({"$ref": "shared-split"}),
            json!("fractional"),
        ];
        for targeting in foreign {
            let mut flag = split_flag(None, 95, 5);
            flag["variants"]["other"] = json!("x");
            flag["targeting"] = targeting.clone();
            let (_dir, path) = flag_file(flag);
            let msg = problem(validate(&path, &p).unwrap_err());
            assert!(
                msg.contains("field `flags.model-route.targeting`") && msg.contains("fractional"),
                "{targeting}: {msg}"
            );
        }

        let mut flag = split_flag(None, 95, 5);
        flag["targeting"]["fractional"][1] = json!(["candidate", 2.5]);
        let (_dir, path) = flag_file(flag);
        let msg = problem(validate(&path, &p).unwrap_err());
        assert!(
            msg.contains("`flags.model-route.targeting.fractional[1]`"),
            "{msg}"
        );
        assert!(msg.contains("whole number"), "{msg}");

        let mut flag = split_flag(None, 95, 5);
        flag["defaultVariant"] = json!("off");
        let (_dir, path) = flag_file(flag);
        let msg = problem(validate(&path, &p).unwrap_err());
        assert!(msg.contains("`flags.model-route.defaultVariant`"), "{msg}");

        let mut flag = split_flag(None, 95, 5);
        flag["state"] = json!("DISABLED");
        let (_dir, path) = flag_file(flag);
        let msg = problem(validate(&path, &p).unwrap_err());
        assert!(msg.contains("`flags.model-route.state`"), "{msg}");
    }

    #[test]
    fn yaml_and_broken_json_are_refused_without_writing() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = dir.path().join("flags.yaml");
        std::fs::write(&yaml, "flags:\n  model-route:\n    state: ENABLED\n").unwrap();
        let msg = problem(apply(&yaml, &plan(), Decision::Rollback, NOW_MS).unwrap_err());
        assert!(
            msg.contains("flags.yaml") && msg.contains("JSON only"),
            "{msg}"
        );
        assert!(msg.contains("fix: convert it to JSON"), "{msg}");

        let broken = dir.path().join("flags.json");
        std::fs::write(&broken, "{\n  \"flags\": {\n    \"model-route\": \n}").unwrap();
        let msg = problem(apply(&broken, &plan(), Decision::Rollback, NOW_MS).unwrap_err());
        assert!(msg.contains("flags.json:4: not valid JSON"), "{msg}");

        let missing = dir.path().join("absent.json");
        let msg = problem(validate(&missing, &plan()).unwrap_err());
        assert!(
            msg.contains("absent.json: cannot read the flag file"),
            "{msg}"
        );

        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["flags.json", "flags.yaml"]);
    }

    #[test]
    fn a_refused_file_is_left_as_it_was() {
        let mut flag = split_flag(None, 95, 5);
        flag["targeting"] = json!({"if": [true, "candidate", "current"]});
        let (dir, path) = flag_file(flag);
        let old = std::fs::read_to_string(&path).unwrap();
        assert!(apply(&path, &plan(), Decision::Promote, NOW_MS).is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), old);
        assert!(!previous_path(&path).exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_plan_that_cannot_roll_out_is_a_usage_error() {
        let (_dir, path) = flag_file(split_flag(None, 95, 5));
        for steps in [&[][..], &[0, 50], &[5, 150]] {
            let p = FlagPlan { steps, ..plan() };
            assert!(
                matches!(validate(&path, &p), Err(Error::Usage(_))),
                "{steps:?}"
            );
        }
        let same = FlagPlan {
            candidate_variant: "current",
            ..plan()
        };
        assert!(matches!(validate(&path, &same), Err(Error::Usage(_))));
    }
}
