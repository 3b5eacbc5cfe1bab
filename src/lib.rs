//! goldgate: gate a model change on a versioned golden set.
//!
//! The pipeline, one way: [`golden`] set → [`provider`] clients → [`runner`] → [`score`] →
//! [`metrics`] → [`gate`] → [`report`]. `main.rs` only parses the command line and maps the
//! result of [`main`] to an exit code.

pub mod cli;
pub mod config;
mod diff;
pub mod error;
pub mod evaluation;
pub mod gate;
pub mod golden;

pub mod init;
mod merge;
pub mod metrics;
pub mod progress;
pub mod prompt;
pub mod provider;

pub mod record;
pub mod report;

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
        let problems = check_reachable(&eval, &mut out)?;
        if !problems.is_empty() {
            return Err(error::Error::Input(problems).into());
        }
    }
    Ok(Exit::Pass)
}

/// `validate --check-reachable`: one real, minimal call per model — the first item's prompt, a
/// few output tokens, no retry — through the same client a run uses. A wrong path (404), a
/// refused key (401/403), an unknown model or an answer in another API's shape fails here, with
/// the fix, instead of failing every request of the run.
fn check_reachable(eval: &Evaluation, out: &mut dyn Write) -> anyhow::Result<Vec<error::Problem>> {
    /// Enough for any model to answer something, little enough to cost nothing.
    const PROBE_TOKENS: u32 = 8;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let item = eval.golden.items.get(0);
    let request = provider::Request {
        system: eval.config.system.clone(),
        prompt: eval.prompt.render(&item),
        question: item.question.clone(),
        context: item.context.clone(),
        trial: 0,
    };
    let mut problems = Vec::new();
    for (cfg, client) in eval.providers.iter().zip(&eval.clients) {
        let mut probe_cfg = cfg.clone();
        probe_cfg.max_tokens = Some(cfg.max_tokens.map_or(PROBE_TOKENS, |m| m.min(PROBE_TOKENS)));
        probe_cfg.limits.retries = 0;
        let probe = provider::Client::from_config(&client.config_path, &probe_cfg)?;
        let outcome = runtime.block_on(probe.call(&request));
        let ms = outcome.latency.map_or(0.0, |d| d.as_secs_f64() * 1000.0);
        match outcome.result {
            Ok(text) => writeln!(
                out,
                "  {}: {} answered a test call in {ms:.0} ms: \"{}\"",
                client.label,
                client.model,
                text::ellipsize(&text, 60)
            )?,
            // The endpoint, the key and the model are all there; only the pace is limited.
            Err(e) if e.kind == provider::ErrorKind::RateLimited => writeln!(
                out,
                "  {}: {} is rate-limited right now (HTTP 429), so the endpoint, key and model answered; mind [limits] requests_per_minute",
                client.label, client.model
            )?,
            Err(e) => problems.push(unreachable_problem(cfg, client, &e)),
        }
    }
    Ok(problems)
}

/// Where a failed test call points in the provider file, and how to fix it.
fn unreachable_problem(
    cfg: &config::ProviderConfig,
    client: &provider::Client,
    e: &provider::CallError,
) -> error::Problem {
    use config::ProviderKind as K;
    use provider::ErrorKind as E;
    let key_var = cfg.api_key_env.as_deref();
    let (field, fix) = match (e.kind, e.status) {
        (_, Some(404)) => (
            "base_url",
            "the server has no such route or model: check that base_url ends where the API's routes start (e.g. http://host:8000/v1 for an OpenAI-compatible server, https://api.anthropic.com/v1, http://host:11434 for Ollama) and that `model` names a model the server serves".to_owned(),
        ),
        (_, Some(401 | 403)) => (
            "api_key_env",
            match key_var {
                Some(var) => format!("the server refused the key: check that {var} holds a valid key for this server and model"),
                None => "the server wants a key: set api_key_env = \"NAME_OF_THE_VARIABLE\" and export that variable".to_owned(),
            },
        ),
        (E::HttpStatus, Some(s)) if s < 500 => (
            "model",
            "the server rejected the request: read its message; check `model` and the parameters sent (temperature, max_tokens, seed)".to_owned(),
        ),
        (E::HttpStatus, _) => (
            "base_url",
            "the server failed: check its logs, then try again".to_owned(),
        ),
        (E::Timeout, _) => (
            "limits.timeout_s",
            format!(
                "no answer within timeout_s = {}: check the server is not overloaded, or raise [limits] timeout_s",
                cfg.limits.timeout_s
            ),
        ),
        (E::BadResponse, _) => (
            "kind",
            format!(
                "something answered, but not in the shape of the `{}` kind's API: check `kind` and base_url (an HTML page, or another API)",
                cfg.kind.as_str()
            ),
        ),
        _ => (
            "base_url",
            "check base_url and that the server is running (and reachable from here)".to_owned(),
        ),
    };
    let field = match (cfg.kind, field) {
        (K::Http, "base_url") => "http.url",
        (K::Command, "base_url") => "command.argv",
        (K::Gguf, "base_url") => "gguf.path",
        (_, f) => f,
    };
    let status = e.status.map(|s| format!(" (HTTP {s})")).unwrap_or_default();
    error::Problem::new(
        error::Location::file(&client.config_path).field(field),
        format!(
            "a test call to {} {}failed{status}: {}: {}",
            client.model,
            client
                .endpoint()
                .map(|u| format!("at {u} "))
                .unwrap_or_default(),
            e.kind.as_str(),
            e.message
        ),
    )
    .fix(fix)
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
                let lock = match set.lock_state() {
                    golden::LockState::Locked => {
                        format!("locked at version {}", set.meta.version)
                    }
                    golden::LockState::Unlocked => format!(
                        "never locked (run `goldgate golden lock {}`)",
                        dir.display()
                    ),
                    golden::LockState::Mismatch { locked } => format!(
                        "items changed since version {} was locked at {} (run `goldgate golden lock {}`)",
                        set.meta.version,
                        golden::short(&locked),
                        dir.display()
                    ),
                };
                writeln!(out, "lock: {lock}")?;
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
    // A re-run takes its evaluation from the earlier run, and only the items it selects.
    let rerun = args
        .rerun
        .as_deref()
        .map(|dir| rerun_selection(dir, args.rerun_only))
        .transpose()?;
    let (config_path, overrides) = match (&resumed, &rerun) {
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
            };
            (src.config.clone(), overrides)
        }
        (Some(data), _) => {
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
        (None, None) => (
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
        Some(std::sync::Arc::new(provider::cache::Cache::open(
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
            if let Some(rerun) = &rerun {
                eval.golden.items.retain_ids(|id| rerun.ids.contains(id));
                let missing = rerun.ids.len() - eval.golden.items.len();
                if missing > 0 {
                    eprintln!(
                        "warning: {missing} of the {} {} item(s) of run {} are no longer in the golden set; re-running the other {}",
                        rerun.ids.len(),
                        rerun.of.only.as_str(),
                        rerun.of.run_id,
                        eval.golden.items.len()
                    );
                }
                if eval.golden.items.is_empty() {
                    return Err(error::Error::Usage(format!(
                        "none of the {} item(s) selected in run {} is in the golden set any more: nothing to re-run",
                        rerun.of.only.as_str(),
                        rerun.of.run_id
                    ))
                    .into());
                }
            }
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
                rerun_of: rerun.as_ref().map(|r| r.of.clone()),
                machine: Some(rundir::Machine::now()),
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

/// The items `--rerun` takes from an earlier run, and the evaluation that run recorded.
struct RerunSelection {
    source: rundir::RunSource,
    ids: std::collections::HashSet<String>,
    of: rundir::RerunOf,
}

fn rerun_selection(
    dir: &std::path::Path,
    only: rundir::RerunOnly,
) -> anyhow::Result<RerunSelection> {
    let data = rundir::RunData::load(dir)?;
    let source = data.manifest.source.clone().ok_or_else(|| {
        error::Error::Usage(format!(
            "{} records no evaluation to re-run (it was made by `goldgate diff`); re-run one of the runs it compares",
            dir.display()
        ))
    })?;
    let repeats = data.manifest.repeats;
    let ids: std::collections::HashSet<String> = data
        .item_tallies
        .iter()
        .enumerate()
        .filter(|(_, t)| only.selects(t, repeats))
        .map(|(i, _)| data.items.id(i).to_owned())
        .collect();
    if ids.is_empty() {
        return Err(error::Error::Usage(format!(
            "no item {} in {}: nothing to re-run (--rerun-only regressed|failed|changed chooses which items)",
            only.as_str(),
            dir.display()
        ))
        .into());
    }
    Ok(RerunSelection {
        source,
        of: rundir::RerunOf {
            run_id: data.manifest.run_id.clone(),
            only,
            items: ids.len(),
        },
        ids,
    })
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
        // What a person does next when a gate failed: see whether the regressions are real.
        if summary.items.regressed > 0 && summary.diff_of.is_none() {
            writeln!(
                out,
                "re-run the {} regressed item(s): goldgate run --rerun {} --repeat 5",
                summary.items.regressed,
                dir.display()
            )?;
        }
        writeln!(out, "report: {}", dir.join("report.html").display())?;
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
