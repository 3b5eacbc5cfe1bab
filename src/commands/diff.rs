//! `goldgate diff RUN_A RUN_B`: one model of a stored run against one model of another, items
//! matched by id, under run B's gates, written as a run directory of its own so every report
//! (and `goldgate report`) works on it unchanged.

use std::collections::HashSet;

use super::conclude_copied;

use crate::cli::DiffArgs;
use crate::error::Exit;
use crate::golden::short;
use crate::manifest::{self, DiffOf, GoldenRef, Manifest, ModelRef, RunKind};
use crate::record::{Side, Sides};
use crate::rundir::{self, RunData};

pub fn diff(args: &DiffArgs) -> anyhow::Result<Exit> {
    let a = RunData::load(&args.run_a)?;
    let b = RunData::load(&args.run_b)?;

    let mut warnings = Vec::new();
    let (ga, gb) = (&a.manifest.golden, &b.manifest.golden);
    if ga.sha256 != gb.sha256 {
        warnings.push(format!(
            "the two runs used different golden sets: {}@{} ({}) and {}@{} ({}); items are matched by id, but their questions or checks may differ",
            ga.name,
            ga.version,
            short(&ga.sha256),
            gb.name,
            gb.version,
            short(&gb.sha256)
        ));
    }
    let ids_a: HashSet<&str> = a.items.ids().collect();
    let mut items = b.items.clone();
    items.retain_ids(|id| ids_a.contains(id));
    let only_a = a.items.len() - items.len();
    let only_b = b.items.len() - items.len();
    if only_a > 0 || only_b > 0 {
        warnings.push(format!(
            "{only_a} item(s) only in run A and {only_b} only in run B are left out; {} item(s) are compared",
            items.len()
        ));
    }
    if items.is_empty() {
        return Err(crate::error::Error::Usage(
            "the two runs have no item id in common: nothing to compare".to_owned(),
        )
        .into());
    }
    let repeats = a.manifest.repeats.min(b.manifest.repeats);
    if a.manifest.repeats != b.manifest.repeats {
        warnings.push(format!(
            "the runs used {} and {} trials per item; the first {repeats} of each are compared",
            a.manifest.repeats, b.manifest.repeats
        ));
    }
    for w in &warnings {
        eprintln!("WARNING: {w}");
    }

    let (run_id, dir) = rundir::create(&args.out, "-diff")?;
    let side_ref = |run: &RunData, side: Side| {
        let m = &run.manifest.models[side];
        ModelRef {
            provider: format!(
                "{} ({} of run {})",
                m.provider,
                side.as_str(),
                run.manifest.run_id
            ),
            kind: m.kind,
            model: m.model.clone(),
            settings: m.settings.clone(),
        }
    };
    let manifest = Manifest {
        schema: manifest::MANIFEST_SCHEMA.to_owned(),
        run_id,
        started_at: rundir::now_rfc3339(),
        goldgate_version: env!("CARGO_PKG_VERSION").to_owned(),
        golden: GoldenRef {
            items: items.len(),
            locked: ga.locked && gb.locked && ga.sha256 == gb.sha256,
            ..gb.clone()
        },
        repeats,
        models: Sides {
            current: side_ref(&a, args.a_side),
            candidate: side_ref(&b, args.b_side),
        },
        gates: b.manifest.gates.clone(),
        // Run B's gates, so run B's statistics too.
        statistics: b.manifest.statistics,
        item_pass: b.manifest.item_pass,
        // The stricter of the two runs' ceilings: each side's answers were judged by its own.
        max_error_rate: match (a.manifest.max_error_rate, b.manifest.max_error_rate) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        },
        warnings,
        kind: RunKind::Diff {
            diff_of: DiffOf {
                a: a.manifest.run_id.clone(),
                a_side: args.a_side,
                b: b.manifest.run_id.clone(),
                b_side: args.b_side,
            },
        },
        machine: None,
        evaluation: b.manifest.evaluation.clone(),
        baseline: None,
        sequential: None,
        shadow: None,
    };
    rundir::write_start(&dir, &manifest, &items)?;

    // Copy each side's lines, relabelled: A's chosen model becomes "current", B's "candidate".
    let keep: HashSet<&str> = items.ids().collect();
    let mut out = rundir::ResultsWriter::create(&dir)?;
    for (run, side, label) in [
        (&a, args.a_side, Side::Current),
        (&b, args.b_side, Side::Candidate),
    ] {
        out.copy_from(&run.dir, |r| {
            let kept = r.model == side && r.trial < repeats && keep.contains(r.id.as_str());
            r.model = label;
            kept
        })?;
    }
    out.flush()?;
    drop(out);

    conclude_copied(&dir, args.quiet)
}
