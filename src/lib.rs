//! goldgate: gate a model change on a versioned golden set.
//!
//! The pipeline, one way: [`golden`] set → [`provider`] clients → [`runner`] → [`score`] →
//! [`metrics`] → [`gate`] → [`report`]. `main.rs` only parses the command line and maps the
//! result of [`main`] to an exit code.

pub mod cache;
pub mod cli;
pub mod config;
mod diff;
pub mod error;
pub mod evaluation;
pub mod gate;
pub mod golden;
mod http;
pub mod init;
mod merge;
pub mod metrics;
pub mod progress;
pub mod prompt;
pub mod provider;
pub mod ratelimit;
pub mod record;
pub mod report;
pub mod retry;
pub mod rundir;
pub mod runner;
pub mod score;
pub mod text;
pub mod tokens;

use std::io::Write;
use std::time::Duration;

use anyhow::Context as _;

use crate::cli::{Cli, Command, GoldenCommand, ReportArgs, RunArgs, ValidateArgs};
use crate::error::Exit;
use crate::evaluation::{Evaluation, Overrides};
use crate::golden::GoldenSet;
use crate::report::Summary;
use crate::report::summary::GoldenRef;
use crate::runner::{Runner, Side, Status};

/// Run one command; the returned [`Exit`] is the process exit code.
pub fn main(cli: Cli) -> anyhow::Result<Exit> {
    match cli.command {
        Command::Run(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            runtime.block_on(run(args))
        }
        Command::Validate(args) => validate(&args),
        Command::Report(args) => report_command(&args),
        Command::Diff(args) => diff::diff(&args),
        Command::Merge(args) => merge::merge(&args),
        Command::Golden(cmd) => golden(cmd),
        Command::Init(args) => {
            let created = init::scaffold(&args.dir)?;
            let mut out = std::io::stdout().lock();
            for path in created {
                writeln!(out, "created {}", path.display())?;
            }
            writeln!(out, "\nnext: cd {} && goldgate run", args.dir.display())?;
            Ok(Exit::Pass)
        }
    }
}

fn validate(args: &ValidateArgs) -> anyhow::Result<Exit> {
    let eval = Evaluation::load(&args.config, &Overrides::default())?;
    let g = &eval.golden;
    // `run` would refuse a set that is not locked: validate must not say all is well.
    g.require_locked()?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "ok: {} — golden set {}@{} ({} items, locked at {}), current {} ({}), candidate {} ({}), {} gate rule(s)",
        args.config.display(),
        g.meta.name,
        g.meta.version,
        g.items.len(),
        golden::short(&g.sha256),
        eval.clients[0].model,
        eval.clients[0].label,
        eval.clients[1].model,
        eval.clients[1].label,
        eval.gates.len()
    )?;
    if args.check_reachable {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let mut problems = Vec::new();
        for client in &eval.clients {
            let Some(url) = client.endpoint() else {
                writeln!(out, "  {}: no endpoint to check", client.label)?;
                continue;
            };
            match runtime.block_on(probe(url)) {
                Ok(status) => writeln!(out, "  {}: {url} answers (HTTP {status})", client.label)?,
                Err(e) => problems.push(
                    error::Problem::new(
                        error::Location::file(&client.config_path).field(
                            if client.kind == config::ProviderKind::Http {
                                "http.url"
                            } else {
                                "base_url"
                            },
                        ),
                        format!("{url} is unreachable: {e}"),
                    )
                    .fix("check base_url and that the server is running (and reachable from here)"),
                ),
            }
        }
        if !problems.is_empty() {
            return Err(error::Error::Input(problems).into());
        }
    }
    Ok(Exit::Pass)
}

/// One cheap request: any HTTP answer, even 401 or 404, means the endpoint is there. No key is sent.
async fn probe(url: &str) -> Result<u16, String> {
    let client = http::client_builder(Duration::from_secs(5), 1)
        .build()
        .map_err(|e| e.to_string())?;
    match client.get(url).send().await {
        Ok(r) => Ok(r.status().as_u16()),
        Err(e) => Err(http::classify(e).message),
    }
}

fn golden(cmd: GoldenCommand) -> anyhow::Result<Exit> {
    let mut out = std::io::stdout().lock();
    match cmd {
        GoldenCommand::Lock { dir } => {
            writeln!(out, "{}", golden::lock(&dir)?)?;
        }
        GoldenCommand::Check { dir } => {
            let set = GoldenSet::load(&dir)?;
            set.require_locked()?;
            writeln!(
                out,
                "ok: {}@{}, {} items, locked at {}",
                set.meta.name,
                set.meta.version,
                set.items.len(),
                golden::short(&set.sha256)
            )?;
        }
        GoldenCommand::Stats { dir, json } => {
            let set = GoldenSet::load(&dir)?;
            let s = set.stats();
            if json {
                serde_json::to_writer_pretty(&mut out, &s)?;
                writeln!(out)?;
            } else {
                writeln!(
                    out,
                    "{}@{}  sha256 {}",
                    set.meta.name, set.meta.version, set.sha256
                )?;
                writeln!(out, "lock: {:?}", set.lock_state())?;
                writeln!(out, "items: {}", s.items)?;
                writeln!(out, "  with context:   {}", s.with_context)?;
                writeln!(
                    out,
                    "  with keywords:  {} ({} match all)",
                    s.with_keywords, s.match_all
                )?;
                writeln!(out, "  with forbidden: {}", s.with_forbidden)?;
                writeln!(out, "  with expected:  {}", s.with_expected)?;
                writeln!(out, "  with label:     {}", s.with_label)?;
                writeln!(
                    out,
                    "  without checks: {} (these always pass when answered)",
                    s.without_checks
                )?;
                writeln!(
                    out,
                    "question length: median {} chars, max {}",
                    s.question_chars_median, s.question_chars_max
                )?;
                let tags: Vec<String> = s.tags.iter().map(|(t, n)| format!("{t} ({n})")).collect();
                writeln!(
                    out,
                    "tags: {}",
                    if tags.is_empty() {
                        "none".to_owned()
                    } else {
                        tags.join(", ")
                    }
                )?;
            }
        }
    }
    Ok(Exit::Pass)
}

async fn run(args: RunArgs) -> anyhow::Result<Exit> {
    // A resumed run takes its evaluation from its own directory, not from the flags.
    let resumed = args
        .resume
        .as_deref()
        .map(rundir::RunData::load)
        .transpose()?;
    let (config_path, overrides) = match &resumed {
        Some(data) => {
            let src = data.manifest.source.as_ref().ok_or_else(|| {
                error::Error::Usage(format!(
                    "{} records no evaluation to resume (it was made by `goldgate diff`)",
                    data.dir.display()
                ))
            })?;
            let overrides = Overrides {
                golden: Some(src.golden.clone()),
                current: Some(src.current.clone()),
                candidate: Some(src.candidate.clone()),
            };
            (src.config.clone(), overrides)
        }
        None => (
            args.config.clone(),
            Overrides {
                golden: args.golden.clone(),
                current: args.current.clone(),
                candidate: args.candidate.clone(),
            },
        ),
    };
    let mut eval = Evaluation::load(&config_path, &overrides)?;
    let fingerprint = fingerprint(&[&config_path, &eval.config.current, &eval.config.candidate]);
    let locked = eval.golden.lock_state() == golden::LockState::Locked;
    if let Some(data) = &resumed {
        let recorded = data
            .manifest
            .source
            .as_ref()
            .map(|s| s.fingerprint.as_str());
        if recorded != Some(fingerprint.as_str()) {
            return Err(error::Error::Usage(format!(
                "the evaluation changed since {} started (goldgate.toml or a provider file differs): resuming would mix two evaluations; start a new run",
                data.dir.display()
            ))
            .into());
        }
    } else if !locked {
        if args.allow_unlocked {
            eprintln!(
                "warning: {} is not locked at its current content; this run records it as unlocked",
                eval.golden.dir.display()
            );
        } else {
            eval.golden.require_locked()?;
        }
    }

    let out_dir = match &resumed {
        Some(data) => data
            .dir
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default(),
        None => args.out.clone(),
    };
    let cache = if args.cache && !args.no_cache {
        Some(std::sync::Arc::new(cache::Cache::open(
            &out_dir.join(".cache").join("responses.redb"),
        )?))
    } else {
        None
    };
    eval.clients = eval.clients.map(|c| {
        let c = c.verbose(args.verbose);
        match &cache {
            Some(cache) => c.with_cache(cache.clone()),
            None => c,
        }
    });

    let concurrency = eval.concurrency(
        args.concurrency
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
    );
    if eval
        .clients
        .iter()
        .any(|c| c.kind == config::ProviderKind::Reference)
    {
        // The reference answerers count tokens inside the timed attempt; load the tokenizer first.
        tokens::warm();
    }
    let (run_dir, manifest, items) = match resumed {
        Some(ref data) => (data.dir.clone(), data.manifest.clone(), data.items.clone()),
        None => {
            if let Some(shard) = args.shard {
                eval.golden.items.retain_ids(|id| shard.contains(id));
            }
            if let Some(limit) = args.limit {
                eval.golden
                    .items
                    .truncate(usize::try_from(limit).unwrap_or(usize::MAX));
            }
            let repeats = args.repeat.unwrap_or(eval.config.repeats);
            let (run_id, run_dir) = rundir::create(&args.out, "")?;
            let client_ref = |c: &provider::Client| rundir::ModelRef {
                provider: c.label.clone(),
                kind: c.kind,
                model: c.model.clone(),
            };
            let absolute =
                |p: &std::path::Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
            let manifest = rundir::Manifest {
                schema: rundir::MANIFEST_SCHEMA.to_owned(),
                run_id,
                started_at: now_rfc3339(),
                goldgate_version: env!("CARGO_PKG_VERSION").to_owned(),
                golden: GoldenRef {
                    name: eval.golden.meta.name.clone(),
                    version: eval.golden.meta.version,
                    sha256: eval.golden.sha256.clone(),
                    items: eval.golden.items.len(),
                    locked,
                },
                repeats,
                models: rundir::ModelRefs {
                    current: client_ref(&eval.clients[0]),
                    candidate: client_ref(&eval.clients[1]),
                },
                gates: eval.gates.iter().map(rundir::GateRule::from_gate).collect(),
                warnings: Vec::new(),
                diff_of: None,
                source: Some(rundir::RunSource {
                    config: absolute(&config_path),
                    golden: absolute(&eval.config.golden),
                    current: absolute(&eval.config.current),
                    candidate: absolute(&eval.config.candidate),
                    fingerprint: fingerprint.clone(),
                }),
                shard: args.shard,
                merged_from: Vec::new(),
            };
            rundir::write_start(&run_dir, &manifest, &eval.golden.items)?;
            let items = std::mem::take(&mut eval.golden.items);
            (run_dir, manifest, items)
        }
    };
    let repeats = manifest.repeats;
    let done = resumed.as_ref().map(|d| &d.done);

    let total = items.len() as u64 * u64::from(repeats) * 2 - done.map_or(0, |d| d.len() as u64);
    let progress = progress::Progress::new(total, args.quiet);
    let Evaluation {
        config: eval_config,
        clients,
        gates,
        prompt,
        scoring,
        ..
    } = eval;
    let clients = clients.map(std::sync::Arc::new);
    let items = std::sync::Arc::new(items);
    let runner = Runner {
        work: std::sync::Arc::new(runner::Work {
            items: items.clone(),
            clients: clients.clone(),
            prompt: std::sync::Arc::new(prompt),
            system: eval_config.system.clone(),
            scoring: std::sync::Arc::new(scoring),
        }),
        repeats,
        concurrency,
        grace: Duration::from_secs(30),
        done,
    };
    let output = runner.run(&rundir::results_path(&run_dir), &progress).await;
    progress.finish();
    let output = output?;

    // A fresh run's tallies are complete; a resumed run's cover only what it added, so its
    // summary is folded from the whole results file.
    let (summary, tallies, item_tallies) = if resumed.is_some() {
        let data = rundir::RunData::load(&run_dir)?;
        let status = rundir::status_of(&data.tallies, output.interrupted || !data.is_complete());
        let summary = data.summary(status, now_rfc3339())?;
        (summary, data.tallies, data.item_tallies)
    } else {
        let status = rundir::status_of(&output.tallies, output.interrupted);
        let summary = Summary::build(
            &manifest,
            &output.tallies,
            &output.items,
            &gates,
            status,
            now_rfc3339(),
        );
        (summary, output.tallies, output.items)
    };
    let exit = finish(&run_dir, &summary, &items, &item_tallies, args.quiet)?;
    if summary.status == Status::Failed {
        for side in Side::BOTH {
            let t = &tallies[side.index()].all;
            if t.requests > 0 && t.answered == 0 {
                let c = &clients[side.index()];
                eprintln!(
                    "error: the run could not complete: every request to {} ({}) failed; see the errors in results.jsonl",
                    c.label, c.model
                );
            }
        }
    }
    if summary.status == Status::Interrupted {
        eprintln!(
            "interrupted: partial results kept; finish with `goldgate run --resume {}`",
            run_dir.display()
        );
    }
    writeln!(std::io::stdout().lock(), "{}", run_dir.display())?;
    Ok(exit)
}

/// SHA-256 over the given files' contents (a missing file hashes as empty).
fn fingerprint(paths: &[&std::path::Path]) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for p in paths {
        let bytes = std::fs::read(p).unwrap_or_default();
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(&bytes);
    }
    golden::hex(&h.finalize())
}

/// Write every report of a finished run (or diff), print the terminal summary, give the exit code.
fn finish(
    dir: &std::path::Path,
    summary: &Summary,
    items: &golden::Items,
    item_tallies: &[runner::ItemTally],
    quiet: bool,
) -> anyhow::Result<Exit> {
    // The contract first: if a view fails to render, the result is still on disk.
    summary.write(dir)?;
    let view = report::ItemView::build(
        &rundir::results_path(dir),
        items,
        item_tallies,
        summary.repeats,
    )?;
    let input = report::ReportInput {
        summary,
        view: &view,
    };
    report::write(
        dir,
        &input,
        &[
            report::Format::Html,
            report::Format::Md,
            report::Format::Junit,
        ],
    )?;
    if !quiet {
        let mut out = std::io::stdout().lock();
        report::terminal::print(&mut out, summary, &view, report::terminal::use_colour())?;
    }
    Ok(exit_for_summary(summary))
}

fn report_command(args: &ReportArgs) -> anyhow::Result<Exit> {
    let data = rundir::RunData::load(&args.run_dir)?;
    if data.read.torn_tail {
        eprintln!(
            "note: the last line of results.jsonl was cut off (the run was killed mid-write); it is ignored"
        );
    }
    let finished_at = std::fs::read_to_string(args.run_dir.join("summary.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Summary>(&t).ok())
        .map_or_else(now_rfc3339, |s| s.finished_at);
    let summary = data.summary(data.status(), finished_at)?;
    let view = report::ItemView::build(
        &rundir::results_path(&args.run_dir),
        &data.items,
        &data.item_tallies,
        summary.repeats,
    )?;
    let input = report::ReportInput {
        summary: &summary,
        view: &view,
    };
    let mut out = std::io::stdout().lock();
    for path in report::write(&args.run_dir, &input, &args.format)? {
        writeln!(out, "{}", path.display())?;
    }
    Ok(Exit::Pass)
}

/// The exit code a finished run (or diff) gives.
pub(crate) fn exit_for_summary(summary: &Summary) -> Exit {
    match summary.status {
        Status::Interrupted => Exit::Interrupted,
        Status::Failed => Exit::RunFailed,
        Status::Complete if summary.verdict == gate::Verdict::Pass => Exit::Pass,
        Status::Complete => Exit::GateFailed,
    }
}

pub(crate) fn now_rfc3339() -> String {
    // Whole seconds: a person reads these, and a report never needs more.
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    time::OffsetDateTime::now_utc()
        .format(&fmt)
        .unwrap_or_default()
}
