//! `goldgate run`: in three phases. [`Plan`] decides what to run — a fresh run (the evaluation,
//! its items after `--rerun`, `--shard` and `--limit`, a new run directory and its manifest) or a
//! resumed one (all of that read back from the run directory). [`execute`] runs both models over
//! what is left. [`super::conclude`] turns the results into the summary, reports and exit code.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use super::{Views, conclude};
use crate::cli::RunArgs;
use crate::error::{Error, Exit};
use crate::evaluation::{Evaluation, Overrides};
use crate::golden;
use crate::manifest::{GoldenRef, Manifest, ModelRef, RerunOf, RerunOnly, RunKind};
use crate::metrics::{ItemTallies, ModelTally, Status};
use crate::progress::Progress;
use crate::provider::{self, Client};
use crate::record::{Side, Sides, TrialSet};
use crate::rundir::{self, ResultsWriter, RunData};
use crate::runner::{RunOutput, Runner, Work};
use crate::summary::Summary;

pub fn run(args: RunArgs) -> anyhow::Result<Exit> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // Providers are built inside the runtime: some start their own tasks.
    let plan = {
        let _inside = runtime.enter();
        Plan::make(&args)?
    };
    let mut plan = plan;
    let executed = runtime.block_on(execute(&mut plan, &args))?;

    // A `--until-decided` run that decided keeps the items it completed: the rest were never
    // asked (their lines, if a request was in flight, stay in results.jsonl).
    let items = if executed.decided {
        Arc::new(rundir::keep_complete_items(
            &plan.dir,
            &plan.work.items,
            plan.manifest.repeats,
        )?)
    } else {
        plan.work.items.clone()
    };
    let refold = plan.appends || executed.decided;
    let (summary, tallies, item_tallies) =
        super::summarize(&plan.dir, &plan.manifest, &items, executed, refold)?;
    let concluded = conclude(
        &plan.dir,
        &summary,
        &items,
        &item_tallies,
        &Views::of_run(args.quiet),
    )?;
    explain_the_end(&plan, &summary, &tallies);
    writeln!(std::io::stdout().lock(), "{}", plan.dir.display())?;
    Ok(match concluded.exit {
        Exit::Inconclusive if args.allow_inconclusive => Exit::Pass,
        exit => exit,
    })
}

/// A run that did not complete says why, and how to go on.
fn explain_the_end(plan: &Plan, summary: &Summary, tallies: &Sides<ModelTally>) {
    if summary.status == Status::Failed {
        for side in Side::BOTH {
            let t = &tallies[side].all;
            if t.requests > 0 && t.answered == 0 {
                let c = &plan.work.clients[side];
                eprintln!(
                    "error: the run could not complete: every request to {} ({}) failed; see the errors in results.jsonl",
                    crate::text::printable(&c.label),
                    crate::text::printable(&c.model)
                );
            }
        }
        // Above the error ceiling: the models answered, too rarely to be judged.
        if tallies.values().iter().all(|t| t.all.answered > 0)
            && let Some(why) = &summary.failure
        {
            eprintln!(
                "error: the run could not be judged: {why}; see the errors in results.jsonl, or raise max_error_rate"
            );
        }
    }
    if summary.status == Status::Interrupted {
        eprintln!(
            "interrupted: partial results kept; finish with `goldgate run --resume {}`",
            plan.dir.display()
        );
    }
}

/// What a run will do, decided before any model is called.
struct Plan {
    /// The run directory: new, or the one being resumed.
    dir: PathBuf,
    manifest: Manifest,
    /// The items of this run (as `items.jsonl` holds them), the clients, prompt and scorers.
    work: Arc<Work>,
    /// Results are already there (a resumed run, or a `--baseline` run's copied answers): the
    /// run appends, skips what is done, and its summary is folded from the whole file.
    appends: bool,
    /// (item, model, trial) already answered: a resumed run skips them and appends.
    done: TrialSet,
    /// What those answers tally to, for a `--until-decided` run's looks.
    prior: ItemTallies,
    concurrency: usize,
    /// Held until the run is concluded: no other process writes this directory meanwhile.
    _lock: rundir::RunLock,
}

impl Plan {
    fn make(args: &RunArgs) -> anyhow::Result<Plan> {
        // Locked before its answers are read: a second `--resume` of the same run would
        // otherwise read the same missing work and pay for it again.
        let resume_lock = args
            .resume
            .as_deref()
            .map(rundir::RunLock::acquire)
            .transpose()?;
        // A resumed run takes its evaluation from its own directory, not from the flags; its
        // items and answers are read once the evaluation is loaded (below).
        let resumed = args
            .resume
            .as_deref()
            .map(|dir| anyhow::Ok((dir.to_path_buf(), rundir::read_manifest(dir)?)))
            .transpose()?;
        // A re-run takes its evaluation from the earlier run, and only the items it selects.
        let rerun = args
            .rerun
            .as_deref()
            .map(|dir| RerunSelection::of(dir, args.rerun_only))
            .transpose()?;
        let (config_path, overrides) = evaluation_source(
            args,
            resumed
                .as_ref()
                .map(|(dir, manifest)| (dir.as_path(), manifest)),
            rerun.as_ref(),
        )?;
        let mut evaluation = Evaluation::load(&config_path, &overrides)?;
        let fingerprint = fingerprint(&[
            &config_path,
            &evaluation.config.current,
            &evaluation.config.candidate,
        ]);
        let locked = evaluation.golden.lock_state() == golden::LockState::Locked;
        if let Some((dir, manifest)) = &resumed {
            let recorded = manifest.source().map(|s| s.fingerprint.as_str());
            if recorded != Some(fingerprint.as_str()) {
                return Err(Error::Usage(format!(
                    "the evaluation changed since {} started (goldgate.toml or a provider file differs): resuming would mix two evaluations; start a new run",
                    dir.display()
                ))
                .into());
            }
        } else if !locked {
            if args.allow_unlocked {
                eprintln!(
                    "warning: {} is not locked at its current content; this run records it as unlocked",
                    evaluation.golden.dir.display()
                );
            } else {
                evaluation.golden.require_locked()?;
            }
        }

        let out_dir = match &resumed {
            Some((dir, _)) => dir.parent().map(Path::to_path_buf).unwrap_or_default(),
            None => args.out.clone(),
        };
        let cache = if args.cache && !args.no_cache {
            Some(Arc::new(provider::cache::Cache::open(
                &out_dir.join(".cache").join("responses.redb"),
            )?))
        } else {
            None
        };
        evaluation.clients = evaluation.clients.map(|c| {
            let c = c.verbose(args.verbose);
            match &cache {
                Some(cache) => c.with_cache(cache.clone()),
                None => c,
            }
        });
        let concurrency = evaluation.concurrency(
            args.concurrency
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        );
        if evaluation
            .clients
            .iter()
            .any(|(_, c)| c.kind == crate::config::ProviderKind::Reference)
        {
            // The reference answerers count tokens inside the timed attempt; load the tokenizer first.
            crate::tokens::warm();
        }

        let (dir, manifest, items, fold, lock) = match (resumed, resume_lock) {
            (Some((dir, manifest)), Some(lock)) => {
                // The run's own items, not the golden set's: never both held at once.
                evaluation.golden.items = golden::Items::default();
                let items = rundir::read_items(&dir)?;
                let fold = rundir::Fold::of(&dir, &items, manifest.repeats)?;
                (dir, manifest, items, Some(fold), lock)
            }
            _ => {
                select_items(&mut evaluation, args, rerun.as_ref())?;
                let baseline = args
                    .baseline
                    .as_deref()
                    .map(|b| Baseline::resolve(b, args, &mut evaluation))
                    .transpose()?;
                let sequential = args
                    .until_decided
                    .then(|| sequential_order(&mut evaluation, args));
                let (run_id, dir) = rundir::create(&args.out, "")?;
                let lock = rundir::RunLock::acquire(&dir)?;
                let absolute =
                    |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
                let source = crate::manifest::RunSource {
                    config: absolute(&config_path),
                    golden: absolute(&evaluation.config.golden),
                    current: absolute(&evaluation.config.current),
                    candidate: absolute(&evaluation.config.candidate),
                    fingerprint,
                };
                let mut manifest = fresh_manifest(&evaluation, args, run_id, locked, source, rerun);
                if let Some(b) = &baseline {
                    b.describe(&mut manifest);
                }
                manifest.sequential = sequential;
                rundir::write_start(&dir, &manifest, &evaluation.golden.items)?;
                let items = std::mem::take(&mut evaluation.golden.items);
                // The baseline's answers are this run's current model's, copied in first: the
                // run then goes on as a resumed one whose current side is all done.
                let fold = baseline
                    .map(|b| b.copy_answers(&dir, &items, manifest.repeats))
                    .transpose()?;
                (dir, manifest, items, fold, lock)
            }
        };
        let Evaluation {
            config,
            clients,
            prompt,
            scoring,
            ..
        } = evaluation;
        // What is done, and (only a `--until-decided` run's monitor needs them) its tallies.
        let sequential = manifest.sequential.is_some();
        let (done, prior) = match fold {
            Some(f) if sequential => (Some(f.done), f.item_tallies),
            Some(f) => (Some(f.done), ItemTallies::default()),
            None if sequential => (None, ItemTallies::new(items.len())),
            None => (None, ItemTallies::default()),
        };
        Ok(Plan {
            dir,
            manifest,
            work: Arc::new(Work {
                items: Arc::new(items),
                clients: clients.map(Arc::new),
                prompt: Arc::new(prompt),
                system: config.system,
                scoring: Arc::new(scoring),
                chats: None,
            }),
            appends: done.is_some(),
            prior,
            done: done.unwrap_or_default(),
            concurrency,
            _lock: lock,
        })
    }
}

/// Which evaluation file and paths a run uses: the flags', or those an earlier run recorded.
fn evaluation_source(
    args: &RunArgs,
    resumed: Option<(&Path, &Manifest)>,
    rerun: Option<&RerunSelection>,
) -> anyhow::Result<(PathBuf, Overrides)> {
    Ok(match (resumed, rerun) {
        (None, Some(rerun)) => {
            let src = &rerun.source;
            let overrides = Overrides {
                golden: Some(args.golden.clone().unwrap_or_else(|| src.golden.clone())),
                current: Some(args.current.clone().unwrap_or_else(|| src.current.clone())),
                candidate: Some(
                    args.candidate
                        .clone()
                        .unwrap_or_else(|| src.candidate.clone()),
                ),
                current_stored: false,
            };
            (src.config.clone(), overrides)
        }
        (Some((dir, manifest)), _) if manifest.shadow.is_some() => {
            return Err(Error::Usage(format!(
                "{} is a shadow run: finish it with `goldgate shadow --resume {}`",
                dir.display(),
                dir.display()
            ))
            .into());
        }
        (Some((dir, manifest)), _) => {
            let src = manifest.source().ok_or_else(|| {
                Error::Usage(format!(
                    "{} records no evaluation to resume (it was made by `goldgate diff`)",
                    dir.display()
                ))
            })?;
            let overrides = Overrides {
                golden: Some(src.golden.clone()),
                current: Some(src.current.clone()),
                candidate: Some(src.candidate.clone()),
                // A resumed `--baseline` run recorded the candidate's file as the current's.
                current_stored: manifest.baseline.is_some(),
            };
            (src.config.clone(), overrides)
        }
        (None, None) => (
            args.config.clone(),
            Overrides {
                golden: args.golden.clone(),
                current: args.current.clone(),
                candidate: args.candidate.clone(),
                current_stored: args.baseline.is_some(),
            },
        ),
    })
}

/// A fresh run's items: the golden set's, narrowed by `--rerun`, `--shard` and `--limit`.
fn select_items(
    evaluation: &mut Evaluation,
    args: &RunArgs,
    rerun: Option<&RerunSelection>,
) -> anyhow::Result<()> {
    let items = &mut evaluation.golden.items;
    if let Some(rerun) = rerun {
        items.retain_ids(|id| rerun.ids.contains(id));
        let missing = rerun.ids.len() - items.len();
        if missing > 0 {
            eprintln!(
                "warning: {missing} of the {} {} item(s) of run {} are no longer in the golden set; re-running the other {}",
                rerun.ids.len(),
                rerun.of.only.as_str(),
                rerun.of.run_id,
                items.len()
            );
        }
        if items.is_empty() {
            return Err(Error::Usage(format!(
                "none of the {} item(s) selected in run {} is in the golden set any more: nothing to re-run",
                rerun.of.only.as_str(),
                rerun.of.run_id
            ))
            .into());
        }
    }
    if let Some(shard) = args.shard {
        items.retain_ids(|id| shard.contains(id));
    }
    if let Some(limit) = args.limit {
        items.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    }
    Ok(())
}

fn fresh_manifest(
    evaluation: &Evaluation,
    args: &RunArgs,
    run_id: String,
    locked: bool,
    source: crate::manifest::RunSource,
    rerun: Option<RerunSelection>,
) -> Manifest {
    let model_ref = |c: &Client| ModelRef {
        provider: c.label.clone(),
        kind: c.kind,
        model: c.model.clone(),
        settings: Some(c.settings_fingerprint()),
    };
    let golden = &evaluation.golden;
    Manifest {
        schema: crate::manifest::MANIFEST_SCHEMA.to_owned(),
        run_id,
        started_at: rundir::now_rfc3339(),
        goldgate_version: env!("CARGO_PKG_VERSION").to_owned(),
        golden: GoldenRef {
            name: golden.meta.name.clone(),
            version: golden.meta.version,
            sha256: golden.sha256.clone(),
            items: golden.items.len(),
            locked,
        },
        repeats: args.repeat.unwrap_or(evaluation.config.repeats),
        models: evaluation.clients.as_ref().map(model_ref),
        gates: evaluation.gates.clone(),
        max_error_rate: Some(evaluation.config.max_error_rate),
        statistics: Some(evaluation.config.statistics),
        item_pass: Some(evaluation.config.item_pass),
        warnings: Vec::new(),
        kind: RunKind::Run {
            source: Some(source),
            shard: args.shard,
            rerun_of: rerun.map(|r| r.of),
        },
        machine: Some(crate::manifest::Machine::now()),
        evaluation: Some(crate::manifest::EvaluationRef {
            name: evaluation.name().to_owned(),
            scoring: evaluation.config.scoring_fingerprint(),
        }),
        baseline: None,
        sequential: None,
        shadow: None,
    }
}

/// Both models over every (item, trial) the plan has not done yet, results appended as they
/// arrive.
async fn execute(plan: &mut Plan, args: &RunArgs) -> anyhow::Result<RunOutput> {
    let repeats = plan.manifest.repeats;
    let total = plan.work.items.len() as u64 * u64::from(repeats) * 2 - plan.done.len() as u64;
    let progress = Progress::new(total, args.quiet);
    let results = if plan.appends {
        ResultsWriter::append(&plan.dir)?
    } else {
        ResultsWriter::create(&plan.dir)?
    };
    let runner = Runner {
        work: plan.work.clone(),
        repeats,
        concurrency: plan.concurrency,
        grace: Duration::from_secs(30),
        done: plan.appends.then_some(&plan.done),
        // A `--baseline` run's current answers are stored ones: that model is never asked (an
        // answer missing after a crash mid-copy leaves its item incomplete, never answered by
        // the candidate's provider in its place).
        skip: plan.manifest.baseline.is_some().then_some(Side::Current),
    };
    let prior = std::mem::take(&mut plan.prior);
    let mut monitor = plan.manifest.sequential.map(|p| {
        crate::gate::sequential::Monitor::new(
            plan.manifest.gates.clone(),
            p,
            repeats,
            plan.manifest.statistics.unwrap_or_default().confidence,
            plan.work.items.clone(),
            prior,
        )
    });
    let output = runner.run(results, &progress, monitor.as_mut()).await;
    progress.finish();
    output
}

/// `--until-decided`: the items in a seeded random order, cut at `--max-items`, and the plan
/// the run records.
fn sequential_order(
    evaluation: &mut Evaluation,
    args: &RunArgs,
) -> crate::gate::sequential::SequentialPlan {
    use crate::gate::sequential;
    let seed = evaluation.config.statistics.seed;
    let order = sequential::order(&evaluation.golden.items, seed);
    let mut items = evaluation.golden.items.reordered(&order);
    if let Some(max) = args.max_items {
        items.truncate(usize::try_from(max).unwrap_or(usize::MAX));
    }
    evaluation.golden.items = items;
    if !sequential::any_holds(&evaluation.gates) {
        eprintln!(
            "warning: --until-decided: no gate can hold the run (only `harm` or `point` gates, or metrics with no anytime-valid interval); every item will be run"
        );
    }
    sequential::SequentialPlan {
        seed,
        batch: usize::try_from(args.batch).unwrap_or(usize::MAX),
        min_items: usize::try_from(args.min_items).unwrap_or(usize::MAX),
        items_total: evaluation.golden.items.len(),
    }
}

/// The items `--rerun` takes from an earlier run, and the evaluation that run recorded.
struct RerunSelection {
    source: crate::manifest::RunSource,
    ids: HashSet<String>,
    of: RerunOf,
}

impl RerunSelection {
    fn of(dir: &Path, only: RerunOnly) -> anyhow::Result<RerunSelection> {
        let data = RunData::load(dir)?;
        let source = data.manifest.source().cloned().ok_or_else(|| {
            Error::Usage(format!(
                "{} records no evaluation to re-run (it was made by `goldgate diff`); re-run one of the runs it compares",
                dir.display()
            ))
        })?;
        let repeats = data.manifest.repeats;
        let ids: HashSet<String> = data
            .item_tallies
            .iter()
            .enumerate()
            .filter(|(_, t)| only.selects(t, repeats))
            .map(|(i, _)| data.items.id(i).to_owned())
            .collect();
        if ids.is_empty() {
            return Err(Error::Usage(format!(
                "no item {} in {}: nothing to re-run (--rerun-only regressed|failed|changed chooses which items)",
                only.as_str(),
                dir.display()
            ))
            .into());
        }
        Ok(RerunSelection {
            source,
            of: RerunOf {
                run_id: data.manifest.run_id.clone(),
                only,
                items: ids.len(),
            },
            ids,
        })
    }
}

/// SHA-256 over the given files' contents (a missing file hashes as empty).
pub(super) fn fingerprint(paths: &[&Path]) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for p in paths {
        let bytes = std::fs::read(p).unwrap_or_default();
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(&bytes);
    }
    crate::text::hex(&h.finalize())
}

/// The stored run a `run --baseline` compares with: its answers stand in for the current model.
struct Baseline {
    run: RunData,
    side: Side,
    accepted: bool,
    golden_changed: bool,
    /// What every report of this run must say about the comparison.
    warnings: Vec<String>,
}

impl Baseline {
    /// Find and check the baseline run, and narrow the evaluation's items to those it answered.
    fn resolve(
        spec: &str,
        args: &RunArgs,
        evaluation: &mut Evaluation,
    ) -> anyhow::Result<Baseline> {
        let (dir, side, accepted) = if spec == "accepted" {
            let name = evaluation.name().to_owned();
            let a = crate::history::accepted::Accepted::read(&args.out, &name)?.ok_or_else(|| {
                Error::Usage(format!(
                    "evaluation {name:?} has no accepted baseline under {}: accept a run with `goldgate accept RUN_DIR`, or pass --baseline RUN_DIR",
                    args.out.display()
                ))
            })?;
            let dir = a.dir(&args.out);
            if !dir.is_dir() {
                return Err(Error::Usage(format!(
                    "the accepted baseline of {name:?}, run {}, is not under {} (was reports/ restored?); accept another run with `goldgate accept RUN_DIR`",
                    a.run_id,
                    args.out.display()
                ))
                .into());
            }
            (dir, args.baseline_side.unwrap_or(a.side), true)
        } else {
            (
                PathBuf::from(spec),
                args.baseline_side.unwrap_or(Side::Candidate),
                false,
            )
        };
        let run = RunData::load(&dir)?;
        let mut warnings = Vec::new();
        let (theirs, ours) = (&run.manifest.golden, &evaluation.golden);
        let golden_changed = theirs.sha256 != ours.sha256;
        if golden_changed {
            let described = format!(
                "the baseline run {} used {}@{} ({}); this run uses {}@{} ({})",
                run.manifest.run_id,
                theirs.name,
                theirs.version,
                golden::short(&theirs.sha256),
                ours.meta.name,
                ours.meta.version,
                golden::short(&ours.sha256)
            );
            if !args.allow_golden_change {
                return Err(Error::Usage(format!(
                    "the golden set changed: {described}. Its answers are to other items; accept a run of this golden set, or pass --allow-golden-change to compare the item ids both share"
                ))
                .into());
            }
            warnings.push(format!(
                "golden set changed: {described}; only the item ids both share are compared (--allow-golden-change)"
            ));
        }
        let repeats = args.repeat.unwrap_or(evaluation.config.repeats);
        if run.manifest.repeats < repeats {
            return Err(Error::Usage(format!(
                "the baseline run {} has {} trial(s) per item and this run asks for {repeats}: pass --repeat {}, or compare with a run that has as many",
                run.manifest.run_id, run.manifest.repeats, run.manifest.repeats
            ))
            .into());
        }
        // Only items the baseline's model answered in full: a missing answer would otherwise be
        // asked of the candidate's provider, standing in for the current model.
        let answered: HashSet<&str> = (0..run.items.len())
            .filter(|&i| run.item_tallies[i].done[side] >= repeats)
            .map(|i| run.items.id(i))
            .collect();
        let before = evaluation.golden.items.len();
        evaluation
            .golden
            .items
            .retain_ids(|id| answered.contains(id));
        let kept = evaluation.golden.items.len();
        if kept == 0 {
            return Err(Error::Usage(format!(
                "the baseline run {} answered none of this run's item ids with its {} model: nothing to compare",
                run.manifest.run_id,
                side.as_str()
            ))
            .into());
        }
        if kept < before {
            warnings.push(format!(
                "{} of this run's {before} item(s) have no complete answer of the {} model in the baseline run {} (not among its items, or not answered): {kept} are compared",
                before - kept,
                side.as_str(),
                run.manifest.run_id
            ));
        }
        for w in &warnings {
            eprintln!("warning: {w}");
        }
        Ok(Baseline {
            run,
            side,
            accepted,
            golden_changed,
            warnings,
        })
    }

    /// Record in the manifest where the current model's answers come from.
    fn describe(&self, manifest: &mut Manifest) {
        let theirs = &self.run.manifest;
        let m = &theirs.models[self.side];
        manifest.models.current = ModelRef {
            provider: format!(
                "{} ({} of run {})",
                m.provider,
                self.side.as_str(),
                theirs.run_id
            ),
            ..m.clone()
        };
        manifest.baseline = Some(crate::manifest::BaselineOf {
            run_id: theirs.run_id.clone(),
            side: self.side,
            accepted: self.accepted,
            golden_sha256: self.golden_changed.then(|| theirs.golden.sha256.clone()),
        });
        manifest.warnings.extend(self.warnings.iter().cloned());
    }

    /// Copy the baseline's answers to this run's items into its results, as the current
    /// model's; the fold of what is then done (every current trial the baseline answered).
    fn copy_answers(
        self,
        dir: &Path,
        items: &golden::Items,
        repeats: u32,
    ) -> anyhow::Result<rundir::Fold> {
        let keep: HashSet<&str> = items.ids().collect();
        let mut out = ResultsWriter::create(dir)?;
        let side = self.side;
        out.copy_from(&self.run.dir, |r| {
            let kept = r.model == side && r.trial < repeats && keep.contains(r.id.as_str());
            r.model = Side::Current;
            kept
        })?;
        out.flush()?;
        drop(out);
        rundir::Fold::of(dir, items, repeats)
    }
}
