//! `goldgate merge RUN_DIR...`: the shards of one run become one run directory whose every
//! metric — percentiles included — is exactly that of the unsharded run: the merged summary is
//! folded from the concatenated results, as any run's is.

use std::collections::{BTreeSet, HashSet};

use super::conclude_copied;

use crate::cli::MergeArgs;
use crate::error::{Error, Exit};
use crate::manifest::RunKind;
use crate::rundir::{self, RunData};

pub fn merge(args: &MergeArgs) -> anyhow::Result<Exit> {
    let runs = args
        .run_dirs
        .iter()
        .map(|d| RunData::load(d))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let first = &runs[0].manifest;
    let mut warnings = Vec::new();
    for run in &runs[1..] {
        let m = &run.manifest;
        let same = m.golden.sha256 == first.golden.sha256
            && m.repeats == first.repeats
            && m.models.current.model == first.models.current.model
            && m.models.candidate.model == first.models.candidate.model
            && m.gates == first.gates
            && m.statistics == first.statistics
            && m.item_pass == first.item_pass
            && shadow_settings(m) == shadow_settings(first);
        if !same {
            return Err(Error::Usage(format!(
                "{} and {} are not shards of one run (golden set, models, repeats, gates, statistics or shadow settings differ)",
                runs[0].dir.display(),
                run.dir.display()
            ))
            .into());
        }
    }
    let shards: BTreeSet<String> = runs
        .iter()
        .filter_map(|r| r.manifest.shard().map(|s| s.to_string()))
        .collect();
    if shards.len() != runs.len() {
        warnings.push(
            "some inputs are not distinct shards (--shard K/N); items seen twice count once"
                .to_owned(),
        );
    }
    if let Some(count) = runs
        .iter()
        .find_map(|r| r.manifest.shard().map(|s| s.count))
        && runs.len() < count as usize
    {
        warnings.push(format!(
            "{} of {count} shards merged: the result covers part of the golden set",
            runs.len()
        ));
    }
    for w in &warnings {
        eprintln!("WARNING: {w}");
    }

    let (run_id, dir) = rundir::create(&args.out, "-merged")?;
    let mut seen_items = HashSet::new();
    let mut items = crate::golden::Items::default();
    for run in &runs {
        for i in 0..run.items.len() {
            if seen_items.insert(run.items.id(i)) {
                items.push_from(&run.items, i);
            }
        }
    }
    let mut manifest = first.clone();
    manifest.run_id = run_id;
    manifest.started_at = runs
        .iter()
        .map(|r| r.manifest.started_at.clone())
        .min()
        .unwrap_or_default();
    manifest.golden.items = items.len();
    if let Some(shadow) = &mut manifest.shadow {
        shadow.counts.replayed = items.len() as u64;
        shadow.read.shard = None;
    }
    manifest.golden.locked = runs.iter().all(|r| r.manifest.golden.locked);
    manifest.warnings = warnings;
    manifest.kind = RunKind::Merge {
        merged_from: runs.iter().map(|r| r.manifest.run_id.clone()).collect(),
        rerun_of: first.rerun_of().cloned(),
    };
    rundir::write_start(&dir, &manifest, &items)?;

    let mut out = rundir::ResultsWriter::create(&dir)?;
    let mut seen = HashSet::new();
    for run in &runs {
        out.copy_from(&run.dir, |r| seen.insert((r.id.clone(), r.model, r.trial)))?;
    }
    out.flush()?;
    drop(out);

    conclude_copied(&dir, args.quiet)
}

/// What shards of one shadow replay share: the logs, how they were read (but for the shard),
/// the noise baseline, and whether text was redacted and kept raw. A merged report says it was
/// redacted only when every shard was.
fn shadow_settings(m: &crate::manifest::Manifest) -> Option<impl PartialEq + use<>> {
    m.shadow.as_ref().map(|s| {
        let mut read = s.read.clone();
        read.shard = None;
        (
            s.logs.clone(),
            read,
            s.noise_baseline,
            s.redacted,
            s.keep_raw,
        )
    })
}
