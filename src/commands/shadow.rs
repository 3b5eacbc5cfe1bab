//! `goldgate shadow`: replay captured production traffic through the candidate (and, for the
//! noise baseline, through the current model again), score every replayed answer against the
//! answer production gave, and gate on what changed.
//!
//! A shadow run is a run directory like any other: its items are the logged requests (each
//! item's `expected` is production's answer, redacted), its results the replays, and
//! [`super::conclude`] gives it its summary, reports and exit code. What only a shadow run has —
//! the logs, how they were read, production's side — is `shadow` in run.json and summary.json.
//! The conversations themselves are held in memory for the replay and never written, unless
//! `--keep-raw`; a resumed run reads the logs again.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::{Map, Value};

use super::{Views, conclude};
use crate::cli::ShadowArgs;
use crate::config::{ContextRule, EvalConfig, ProviderConfig, SimilarityConfig};
use crate::error::{Error, Exit};
use crate::gate::Gate;
use crate::golden::{Item, ItemProvenance, Items, MatchMode};
use crate::manifest::{
    GoldenRef, Manifest, ModelRef, ProductionInfo, RunKind, RunSource, ShadowCounts, ShadowOf,
    ShadowRead,
};
use crate::metrics::Status;
use crate::progress::Progress;
use crate::provider::{self, Chat, Client};
use crate::record::{Side, Sides};
use crate::rundir::{self, ResultsWriter};
use crate::runner::{Chats, Runner, Work};
use crate::score::{ShadowScoring, is_refusal};
use crate::shadow::log::{self, LogFormat, LoggedRequest, ReadOptions, ReadReport, Sample};
use crate::shadow::redact::Redactor;

pub fn shadow(args: ShadowArgs) -> anyhow::Result<Exit> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let plan = {
        let _inside = runtime.enter();
        Plan::make(&args)?
    };
    let mut plan = plan;
    let executed = runtime.block_on(execute(&plan, &args))?;
    // The conversations were for the replay: the reports need the memory more (a third of what
    // a 100,000-request run holds).
    if let Some(work) = Arc::get_mut(&mut plan.work) {
        work.chats = None;
    }

    let (summary, _, item_tallies) = super::summarize(
        &plan.dir,
        &plan.manifest,
        &plan.work.items,
        executed,
        plan.appends || plan.production.is_some(),
    )?;
    let concluded = conclude(
        &plan.dir,
        &summary,
        &plan.work.items,
        &item_tallies,
        &Views::of_run(args.quiet),
    )?;
    if summary.status == Status::Interrupted {
        eprintln!(
            "interrupted: partial results kept; finish with `goldgate shadow --resume {}`",
            plan.dir.display()
        );
    }
    writeln!(std::io::stdout().lock(), "{}", plan.dir.display())?;
    Ok(match concluded.exit {
        Exit::Inconclusive if args.allow_inconclusive => Exit::Pass,
        exit => exit,
    })
}

/// What a shadow run will do, decided before any model is called.
struct Plan {
    dir: PathBuf,
    manifest: Manifest,
    work: Arc<Work>,
    /// Results are already there (a resumed run): skip what is done, fold the whole file.
    appends: bool,
    done: crate::record::TrialSet,
    concurrency: usize,
    /// `--no-current`, fresh: production's logged answers, by item, to stand as the current
    /// model's before the replay starts.
    production: Option<Vec<ProductionCall>>,
    _lock: rundir::RunLock,
}

/// What the log says about production's answer to one replayed request, beside its text.
#[derive(Debug, Clone, Copy)]
struct ProductionCall {
    latency_ms: Option<f64>,
    usage: Option<provider::Usage>,
}

/// The evaluation file and provider files a shadow run uses, loaded.
struct Loaded {
    config_path: PathBuf,
    config: EvalConfig,
    paths: Sides<PathBuf>,
    providers: Sides<ProviderConfig>,
    noise_baseline: bool,
}

impl Loaded {
    fn load(
        config_path: &Path,
        current: Option<&Path>,
        candidate: Option<&Path>,
        noise_baseline: bool,
    ) -> Result<Loaded, Error> {
        let config = EvalConfig::load(config_path)?;
        let paths = Sides {
            current: current.map_or_else(|| config.current.clone(), Path::to_path_buf),
            candidate: candidate.map_or_else(|| config.candidate.clone(), Path::to_path_buf),
        };
        let candidate = provider::load_config(&paths.candidate)?;
        // Without the noise baseline the current model is never called: its file is not needed
        // (nor its key), and the candidate's stands in for it.
        let current = if noise_baseline {
            provider::load_config(&paths.current)?
        } else {
            candidate.clone()
        };
        Ok(Loaded {
            config_path: config_path.to_path_buf(),
            config,
            paths,
            providers: Sides { current, candidate },
            noise_baseline,
        })
    }

    fn fingerprint(&self) -> String {
        super::run::fingerprint(&[
            &self.config_path,
            &self.paths.current,
            &self.paths.candidate,
        ])
    }

    fn gates(&self, tags: &BTreeSet<&str>) -> Result<Vec<Gate>, Error> {
        let gates = if self.config.shadow.gates.is_empty() {
            crate::gate::default_shadow_gates()
        } else {
            Gate::parse_table(
                &self.config.shadow.gates,
                &self.config_path,
                tags,
                "shadow.gate",
            )?
        };
        if !self.noise_baseline
            && let Some(g) = gates.iter().find(|g| {
                matches!(
                    g.bound,
                    crate::gate::Bound::MinRatio(_) | crate::gate::Bound::MaxRatio(_)
                )
            })
        {
            return Err(Error::Usage(format!(
                "--no-current leaves gate `{}` ({}) nothing to compare with: drop --no-current (the current model's replay is the noise baseline), or write absolute bounds (min/max) in [[shadow.gate]] of {}",
                g.metric,
                g.bound,
                self.config_path.display()
            )));
        }
        Ok(gates)
    }
}

impl Plan {
    fn make(args: &ShadowArgs) -> anyhow::Result<Plan> {
        match &args.resume {
            Some(dir) => Plan::resume(args, dir),
            None => Plan::fresh(args),
        }
    }

    fn fresh(args: &ShadowArgs) -> anyhow::Result<Plan> {
        let loaded = Loaded::load(
            &args.config,
            args.current.as_deref(),
            args.candidate.as_deref(),
            !args.no_current,
        )?;
        let redact = !args.no_redact;
        let redactor = Arc::new(Redactor::new(&loaded.config.shadow.redact)?);
        let read = ShadowRead {
            format: args
                .format
                .and_then(|f| clap::ValueEnum::to_possible_value(&f))
                .map(|v| v.get_name().to_owned()),
            since: args.since.clone(),
            until: args.until.clone(),
            sample: args.sample,
            seed: args.seed,
            stratify: args.stratify.clone(),
            shard: args.shard,
        };
        let logs: Vec<PathBuf> = args
            .logs
            .iter()
            .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()))
            .collect();
        let traffic = Traffic::read(
            &logs,
            &read,
            args.strict,
            &loaded.config.shadow.context,
            redact.then_some(&*redactor),
        )?;
        let gates = loaded.gates(
            &traffic
                .items
                .tag_names()
                .iter()
                .map(String::as_str)
                .collect(),
        )?;
        let clients = clients(&loaded, args)?;

        let (run_id, dir) = rundir::create(&args.out, "")?;
        let lock = rundir::RunLock::acquire(&dir)?;
        let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        let source = RunSource {
            config: absolute(&loaded.config_path),
            golden: PathBuf::new(),
            current: absolute(&loaded.paths.current),
            candidate: absolute(&loaded.paths.candidate),
            fingerprint: loaded.fingerprint(),
        };
        let name = loaded
            .config
            .name
            .clone()
            .unwrap_or_else(|| "shadow".to_owned());
        let counts = traffic.counts;
        let manifest = Manifest {
            schema: crate::manifest::MANIFEST_SCHEMA.to_owned(),
            run_id,
            started_at: rundir::now_rfc3339(),
            goldgate_version: env!("CARGO_PKG_VERSION").to_owned(),
            golden: GoldenRef {
                name: format!("traffic:{}", log_names(&logs)),
                version: 1,
                sha256: traffic.sha256,
                items: traffic.items.len(),
                // Logged traffic is not a golden set anyone locked: what was replayed is
                // pinned by the hash above and the logs' names.
                locked: true,
            },
            repeats: 1,
            models: Sides {
                current: if loaded.noise_baseline {
                    model_ref(&clients.current)
                } else {
                    production_ref(&traffic.production, clients.candidate.kind)
                },
                candidate: model_ref(&clients.candidate),
            },
            gates,
            max_error_rate: Some(loaded.config.max_error_rate),
            statistics: Some(loaded.config.statistics),
            item_pass: Some(loaded.config.item_pass),
            warnings: Vec::new(),
            kind: RunKind::Run {
                source: Some(source),
                shard: args.shard,
                rerun_of: None,
            },
            machine: Some(crate::manifest::Machine::now()),
            evaluation: Some(crate::manifest::EvaluationRef {
                name: format!("{name} (shadow)"),
                scoring: loaded.config.scoring_fingerprint(),
            }),
            baseline: None,
            sequential: None,
            shadow: Some(ShadowOf {
                logs,
                read,
                noise_baseline: loaded.noise_baseline,
                redacted: redact,
                keep_raw: args.keep_raw,
                counts,
                production: traffic.production,
                redactions: redaction_counts(&redactor),
            }),
        };
        rundir::write_start(&dir, &manifest, &traffic.items)?;
        if args.keep_raw {
            write_raw(&dir, &traffic.items, &traffic.chats)?;
        }
        let concurrency = concurrency(&loaded, &clients, args.concurrency);
        let production = (!loaded.noise_baseline).then_some(traffic.calls);
        let work = work(
            &loaded,
            traffic.items,
            traffic.chats,
            clients,
            redact.then_some(redactor),
        )?;
        Ok(Plan {
            dir,
            manifest,
            work: Arc::new(work),
            appends: false,
            done: Default::default(),
            concurrency,
            production,
            _lock: lock,
        })
    }

    fn resume(args: &ShadowArgs, dir: &Path) -> anyhow::Result<Plan> {
        let lock = rundir::RunLock::acquire(dir)?;
        let manifest = rundir::read_manifest(dir)?;
        let (Some(shadow), Some(source)) = (manifest.shadow.clone(), manifest.source().cloned())
        else {
            return Err(Error::Usage(format!(
                "{} is not a shadow run: finish it with `goldgate run --resume {}`",
                dir.display(),
                dir.display()
            ))
            .into());
        };
        let loaded = Loaded::load(
            &source.config,
            Some(&source.current),
            Some(&source.candidate),
            shadow.noise_baseline,
        )?;
        if loaded.fingerprint() != source.fingerprint {
            return Err(Error::Usage(format!(
                "the evaluation changed since {} started (goldgate.toml or a provider file differs): resuming would mix two evaluations; start a new shadow run",
                dir.display()
            ))
            .into());
        }
        let items = rundir::read_items(dir)?;
        let redactor = Arc::new(Redactor::new(&loaded.config.shadow.redact)?);
        // The same logs read the same way select the same requests: find each item's again.
        let traffic = Traffic::read(
            &shadow.logs,
            &shadow.read,
            false,
            &loaded.config.shadow.context,
            shadow.redacted.then_some(&*redactor),
        )?;
        let mut by_id: HashMap<&str, usize> = HashMap::new();
        for i in 0..traffic.items.len() {
            by_id.insert(traffic.items.id(i), i);
        }
        let mut chats = Chats::default();
        let mut missing = 0usize;
        for i in 0..items.len() {
            match by_id.get(items.id(i)) {
                Some(&j) => chats.push_json(traffic.chats.json(j)),
                None => {
                    missing += 1;
                    chats.push(&Chat::default());
                }
            }
        }
        if missing > 0 {
            return Err(Error::Usage(format!(
                "{missing} of the {} request(s) of {} are no longer in its logs ({}): they changed since the run started; start a new shadow run",
                items.len(),
                dir.display(),
                log_names(&shadow.logs)
            ))
            .into());
        }
        let fold = rundir::Fold::of(dir, &items, 1)?;
        let clients = clients(&loaded, args)?;
        let concurrency = concurrency(&loaded, &clients, args.concurrency);
        let redact = shadow.redacted;
        let work = work(&loaded, items, chats, clients, redact.then_some(redactor))?;
        Ok(Plan {
            dir: dir.to_path_buf(),
            manifest,
            work: Arc::new(work),
            appends: true,
            done: fold.done,
            concurrency,
            production: None,
            _lock: lock,
        })
    }
}

/// The clients of both models, with the cache when asked for; without the noise baseline the
/// current model's is the candidate's, never called.
fn clients(loaded: &Loaded, args: &ShadowArgs) -> anyhow::Result<Sides<Client>> {
    let cache = if args.cache && !args.no_cache {
        Some(Arc::new(provider::cache::Cache::open(
            &args.out.join(".cache").join("responses.redb"),
        )?))
    } else {
        None
    };
    let build = |path: &Path, cfg: &ProviderConfig| -> anyhow::Result<Client> {
        let c = Client::from_config(path, cfg)?.verbose(args.verbose);
        Ok(match &cache {
            Some(cache) => c.with_cache(cache.clone()),
            None => c,
        })
    };
    let candidate = build(&loaded.paths.candidate, &loaded.providers.candidate)?;
    let current = if loaded.noise_baseline {
        build(&loaded.paths.current, &loaded.providers.current)?
    } else {
        build(&loaded.paths.candidate, &loaded.providers.candidate)?
    };
    Ok(Sides { current, candidate })
}

fn concurrency(loaded: &Loaded, clients: &Sides<Client>, flag: Option<u64>) -> usize {
    let replayed = |side: Side| side == Side::Candidate || loaded.noise_baseline;
    flag.map(|n| usize::try_from(n).unwrap_or(usize::MAX))
        .or(loaded.config.concurrency)
        .unwrap_or_else(|| {
            clients
                .iter()
                .filter(|(side, _)| replayed(*side))
                .map(|(_, c)| c.concurrency)
                .sum()
        })
        .max(1)
}

fn model_ref(c: &Client) -> ModelRef {
    ModelRef {
        provider: c.label.clone(),
        kind: c.kind,
        model: c.model.clone(),
        settings: Some(c.settings_fingerprint()),
    }
}

/// Production as the current side (`--no-current`): its answers as logged.
fn production_ref(p: &ProductionInfo, kind: crate::config::ProviderKind) -> ModelRef {
    ModelRef {
        provider: "production, as logged (--no-current)".to_owned(),
        kind,
        model: p.models.keys().cloned().collect::<Vec<_>>().join(", "),
        settings: None,
    }
}

/// What the runner needs: the items, their conversations, the clients and the scoring of
/// replays against production's answers.
fn work(
    loaded: &Loaded,
    items: Items,
    chats: Chats,
    clients: Sides<Client>,
    redactor: Option<Arc<Redactor>>,
) -> anyhow::Result<Work> {
    let shadow = &loaded.config.shadow;
    // Redacted inside the clients: before the response cache stores an answer or the verbose
    // log prints an error, not only before the results are written.
    let scrub: Option<provider::Scrub> = redactor.map(|r| {
        let scrub: provider::Scrub = Arc::new(move |t: &str| r.redact(t).into_owned());
        scrub
    });
    let scrubbed = |c: Client| match &scrub {
        Some(s) => c.with_scrub(s.clone()),
        None => c,
    };
    let mut scoring = loaded.config.scoring.clone();
    // Production's answer is the reference: agreement with it is the shadow run's accuracy.
    // The evaluation's own checks were written for its golden set, not for this traffic.
    scoring.similarity = Some(SimilarityConfig {
        threshold: shadow.agree_at,
        measure: crate::check::Measure::TokenSet,
    });
    scoring.checks = Vec::new();
    scoring.allow_unchecked = true;
    scoring.echo = false;
    scoring.patterns = Default::default();
    let judge = match &scoring.faithfulness.provider {
        Some(path) if scoring.faithfulness.method == crate::config::FaithfulnessMethod::Judge => {
            let cfg = provider::load_config(path)?;
            Some(crate::score::Judge::new(scrubbed(Client::from_config(
                path, &cfg,
            )?)))
        }
        _ => None,
    };
    let scoring = crate::score::Scoring::new(&scoring, &items, Default::default(), judge, None)
        .map_err(|e| Error::Usage(format!("a check pattern does not compile: {e}")))?
        .for_shadow(ShadowScoring {
            exact_max_words: shadow.exact_max_words,
        });
    let prompt = crate::prompt::PromptTemplate::new(loaded.config.prompt(), &loaded.config_path)?;
    Ok(Work {
        items: Arc::new(items),
        clients: clients.map(|c| Arc::new(scrubbed(c))),
        prompt: Arc::new(prompt),
        system: None,
        scoring: Arc::new(scoring),
        chats: Some(Arc::new(chats)),
    })
}

/// The replay: the candidate (and the current model, for the noise baseline) over every item
/// not yet done, interleaved item by item.
async fn execute(plan: &Plan, args: &ShadowArgs) -> anyhow::Result<crate::runner::RunOutput> {
    let noise_baseline = plan
        .manifest
        .shadow
        .as_ref()
        .is_some_and(|s| s.noise_baseline);
    let sides: u64 = if noise_baseline { 2 } else { 1 };
    let total = (plan.work.items.len() as u64 * sides).saturating_sub(plan.done.len() as u64);
    let progress = Progress::new(total, args.quiet);
    let mut results = if plan.appends {
        ResultsWriter::append(&plan.dir)?
    } else {
        ResultsWriter::create(&plan.dir)?
    };
    if let Some(calls) = &plan.production {
        // Without the noise baseline, production's own answers stand as the current model's:
        // every report then compares the candidate with what users were given.
        for (i, call) in calls.iter().enumerate() {
            let item = plan.work.items.get(i);
            let answer = item.expected.clone().unwrap_or_default();
            let scores = plan.work.scoring.score(&item, &answer).await;
            results.write(&production_record(&item, answer, *call, scores))?;
        }
        results.flush()?;
    }
    let runner = Runner {
        work: plan.work.clone(),
        repeats: 1,
        concurrency: plan.concurrency,
        grace: Duration::from_secs(30),
        done: plan.appends.then_some(&plan.done),
        skip: (!noise_baseline).then_some(Side::Current),
    };
    let output = runner.run(results, &progress, None).await;
    progress.finish();
    output
}

/// Production's logged answer to an item as the current model's result line: its latency as
/// logged (another environment's), its usage, no price.
fn production_record(
    item: &Item,
    answer: String,
    call: ProductionCall,
    scores: crate::score::Scores,
) -> crate::record::ResultRecord {
    crate::record::ResultRecord {
        id: item.id.clone(),
        model: Side::Current,
        trial: 0,
        ok: true,
        pass: scores.pass(),
        answer: Some(answer),
        latency_ms: call.latency_ms.filter(|ms| ms.is_finite() && *ms >= 0.0),
        ttft_ms: None,
        server_ms: None,
        cached: false,
        attempts: 0,
        tokens: call.usage.map(|u| crate::record::TokenCount {
            input: u.input,
            output: u.output,
            estimated: false,
        }),
        cost_usd: 0.0,
        faithfulness: scores.faithfulness.clone(),
        similarity: scores.similarity,
        judge: scores
            .judge
            .clone()
            .map(|(usage, error)| crate::record::JudgeRecord { usage, error }),
        shadow: scores.shadow,
        checks: scores.checks,
        error: None,
        answer_hash: None,
    }
}

/// The requests selected from the logs: items (what is written, redacted), conversations (what
/// is sent, as logged) and production's side.
struct Traffic {
    items: Items,
    chats: Chats,
    counts: ShadowCounts,
    production: ProductionInfo,
    /// SHA-256 of the ids of every request selected, before a shard took its part: what pins
    /// the replay, for each shard alike.
    sha256: String,
    /// Production's latency and usage, by item.
    calls: Vec<ProductionCall>,
}

impl Traffic {
    fn read(
        logs: &[PathBuf],
        read: &ShadowRead,
        strict: bool,
        context: &ContextRule,
        redactor: Option<&Redactor>,
    ) -> Result<Traffic, Error> {
        let format = read
            .format
            .as_deref()
            .map(|f| {
                <LogFormat as clap::ValueEnum>::from_str(f, true)
                    .map_err(|_| Error::Usage(format!("unknown log format {f:?}")))
            })
            .transpose()?;
        let options = ReadOptions {
            format,
            strict,
            dedup: true,
            since: log::instant_flag("since", read.since.as_deref())?,
            until: log::instant_flag("until", read.until.as_deref())?,
            sample: read.sample.map(|n| Sample {
                n: usize::try_from(n).unwrap_or(usize::MAX),
                seed: read.seed,
                stratify: read.stratify.clone(),
            }),
            ..ReadOptions::default()
        };
        let mut items = Items::default();
        let mut chats = Chats::default();
        let mut production = ProductionInfo::default();
        let mut latency = crate::metrics::new_histogram();
        let mut ids = HashSet::new();
        let mut selected: Vec<String> = Vec::new();
        let mut calls = Vec::new();
        // The logs are parsed on a thread of their own while this one redacts and stores what
        // it hands over: reading a large log takes the two about as long each.
        let (sender, requests) = std::sync::mpsc::sync_channel::<LoggedRequest>(256);
        let mut no_answer = 0u64;
        let mut take = |request: LoggedRequest| {
            // Nothing to compare a replay with (an answer withheld by a content filter, say):
            // counted, not replayed.
            if production_text(&request).trim().is_empty() {
                no_answer += 1;
                return;
            }
            let Some((item, chat)) = replay_of(
                &request,
                context,
                read.stratify.as_deref(),
                redactor,
                &mut ids,
            ) else {
                return;
            };
            let p = &request.production;
            *production
                .models
                .entry(
                    p.model
                        .clone()
                        .or_else(|| request.model.clone())
                        .unwrap_or_else(|| "(not logged)".to_owned()),
                )
                .or_default() += 1;
            if let Some(ms) = p.latency_ms.filter(|ms| ms.is_finite() && *ms >= 0.0) {
                let _ = latency.record((ms * 1000.0) as u64);
            }
            production.tool_calls += u64::from(!p.tool_calls.is_empty());
            production.refusals += u64::from(p.refusal.is_some() || is_refusal(&p.text));
            // Production's side, and the hash, are of the whole selection: every shard of one
            // replay records the same, and a merge of the shards keeps it as it is.
            selected.push(item.id.clone());
            if read.shard.is_some_and(|s| !s.contains(&item.id)) {
                return;
            }
            items.push(&item);
            chats.push_json(&chat);
            calls.push(ProductionCall {
                latency_ms: p.latency_ms,
                usage: p.usage,
            });
        };
        let report = std::thread::scope(|scope| {
            let reader = scope.spawn(move || {
                log::read_logs(logs, &options, |request| {
                    // The receiver lives until the reader is done.
                    let _ = sender.send(request);
                })
            });
            for request in requests {
                take(request);
            }
            reader.join().expect("the log reader does not panic")
        })?;
        production.latency_ms = crate::metrics::LatencyMs::from_histogram(&latency);
        let mut counts = counts_of(&report, redactor);
        counts.no_answer = no_answer;
        counts.replayed = items.len() as u64;
        selected.sort_unstable();
        let sha256 = {
            use sha2::Digest;
            let mut h = sha2::Sha256::new();
            for id in &selected {
                h.update(id.as_bytes());
                h.update(b"\n");
            }
            crate::text::hex(&h.finalize())
        };
        // A shard may hold none of a small selection: an empty replay, not bad input.
        if selected.is_empty() {
            return Err(nothing_usable(logs, &report, redactor));
        }
        print_findings(&report, redactor);
        Ok(Traffic {
            items,
            chats,
            counts,
            production,
            sha256,
            calls,
        })
    }
}

/// One logged request as an item (redacted) and the conversation to send (as logged, a
/// [`Chat`]'s JSON); `None`
/// for a request with nothing to replay.
fn replay_of(
    request: &LoggedRequest,
    rule: &ContextRule,
    stratify: Option<&str>,
    redactor: Option<&Redactor>,
    ids: &mut HashSet<String>,
) -> Option<(Item, Vec<u8>)> {
    if request.messages.is_empty() {
        return None;
    }
    let chat = chat_json(request);
    let redacted = |text: &str| -> String {
        match redactor {
            Some(r) => r.redact(text).into_owned(),
            None => text.to_owned(),
        }
    };
    let question = request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == "user" && !m.content.trim().is_empty())
        .or_else(|| request.messages.last())
        .map(|m| redacted(m.content.trim()))
        .unwrap_or_default();
    let context: Vec<String> = context_of(request, rule)
        .into_iter()
        .map(|c| redacted(&c))
        .collect();
    let production = production_text(request);
    let expected = (!production.trim().is_empty()).then(|| redacted(production.trim()));
    let json = expected.as_deref().is_some_and(crate::score::is_json);
    // The ids `golden from-log` gives the same requests: a set made from a log and a shadow run
    // of it name each request alike.
    let base = format!("log-{:016x}", request.fingerprint())[..16].to_owned();
    let mut id = base.clone();
    let mut n = 1;
    while !ids.insert(id.clone()) {
        n += 1;
        id = format!("{base}-{n}");
    }
    let tags = stratify
        .and_then(|field| log::stratum_of(&request.metadata, field))
        .map(|t| redacted(&t))
        .filter(|t| !t.trim().is_empty() && !t.contains(['[', ']']) && t.len() <= 100)
        .into_iter()
        .collect();
    let item = Item {
        id,
        question,
        keywords: Vec::new(),
        match_mode: MatchMode::Any,
        forbidden: Vec::new(),
        context,
        expected,
        label: None,
        tags,
        group: None,
        checks: if json {
            vec![crate::check::CheckSpec::Json]
        } else {
            Vec::new()
        },
        reference: None,
        provenance: Some(ItemProvenance {
            file: request.source.file.display().to_string(),
            line: request.source.line as u64,
            timestamp: request.timestamp.and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            }),
            id: request.source.id.as_deref().map(redacted),
        }),
    };
    Some((item, chat))
}

/// What production answered, as one text, by the rule the adapters follow for a replay: its
/// tool calls when it made some (written as a replay's are), else its words, else its refusal.
fn production_text(request: &LoggedRequest) -> String {
    let p = &request.production;
    if !p.tool_calls.is_empty() {
        provider::tool_calls_text(
            p.tool_calls
                .iter()
                .map(|c| (c.name.as_str(), c.arguments.as_str())),
        )
    } else if !p.text.trim().is_empty() {
        p.text.clone()
    } else {
        p.refusal.clone().unwrap_or_default()
    }
}

/// The request as it is replayed, as a [`Chat`]'s JSON: its messages in the chat shape, its
/// parameters, no model. Written straight from the logged request, without building a tree of
/// JSON values for each of 100,000 requests.
fn chat_json(request: &LoggedRequest) -> Vec<u8> {
    use serde::Serialize;

    #[derive(Serialize)]
    struct ChatOut<'a> {
        messages: Vec<MessageOut<'a>>,
        params: ParamsOut<'a>,
    }
    #[derive(Serialize)]
    struct MessageOut<'a> {
        role: &'a str,
        content: Content<'a>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<CallOut<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        tool_call_id: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<&'a str>,
    }
    #[derive(Serialize)]
    #[serde(untagged)]
    enum Content<'a> {
        Text(&'a str),
        Parts(&'a Value),
    }
    #[derive(Serialize)]
    struct CallOut<'a> {
        id: std::borrow::Cow<'a, str>,
        r#type: &'static str,
        function: FunctionOut<'a>,
    }
    #[derive(Serialize)]
    struct FunctionOut<'a> {
        name: &'a str,
        arguments: &'a str,
    }
    #[derive(Serialize)]
    struct ParamsOut<'a> {
        // The named fields were taken out of `other` when the log was read: no key is twice.
        #[serde(flatten)]
        other: &'a Map<String, Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        temperature: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        top_p: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        max_tokens: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        seed: Option<i64>,
        #[serde(skip_serializing_if = "<[String]>::is_empty")]
        stop: &'a [String],
        #[serde(skip_serializing_if = "Option::is_none")]
        response_format: Option<&'a Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        tools: Option<&'a Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        tool_choice: Option<&'a Value>,
    }

    let messages = request
        .messages
        .iter()
        .map(|m| MessageOut {
            role: &m.role,
            content: m
                .parts
                .as_ref()
                .map_or(Content::Text(&m.content), Content::Parts),
            tool_calls: m
                .tool_calls
                .iter()
                .enumerate()
                .map(|(i, c)| CallOut {
                    id: c
                        .id
                        .as_deref()
                        .map_or_else(|| format!("call_{i}").into(), Into::into),
                    r#type: "function",
                    function: FunctionOut {
                        name: &c.name,
                        arguments: &c.arguments,
                    },
                })
                .collect(),
            tool_call_id: m.tool_call_id.as_deref(),
            name: m.name.as_deref(),
        })
        .collect();
    let p = &request.params;
    let chat = ChatOut {
        messages,
        params: ParamsOut {
            other: &p.other,
            temperature: p.temperature,
            top_p: p.top_p,
            max_tokens: p.max_tokens,
            seed: p.seed,
            stop: &p.stop,
            response_format: p.response_format.as_ref(),
            tools: p.tools.as_ref(),
            tool_choice: p.tool_choice.as_ref(),
        },
    };
    serde_json::to_vec(&chat).expect("a logged request always serialises")
}

/// The retrieved context of a request by the rule: the text of its messages in the rule's roles,
/// or only what stands between the rule's markers in them.
fn context_of(request: &LoggedRequest, rule: &ContextRule) -> Vec<String> {
    let mut out = Vec::new();
    for m in request
        .messages
        .iter()
        .filter(|m| rule.roles.contains(&m.role))
    {
        match (&rule.start, &rule.end) {
            (Some(start), Some(end)) => {
                let mut rest = m.content.as_str();
                while let Some(at) = rest.find(start.as_str()) {
                    let after = &rest[at + start.len()..];
                    let Some(stop) = after.find(end.as_str()) else {
                        break;
                    };
                    let passage = after[..stop].trim();
                    if !passage.is_empty() {
                        out.push(passage.to_owned());
                    }
                    rest = &after[stop + end.len()..];
                }
            }
            _ => {
                let text = m.content.trim();
                if !text.is_empty() {
                    out.push(text.to_owned());
                }
            }
        }
    }
    out
}

fn counts_of(report: &ReadReport, redactor: Option<&Redactor>) -> ShadowCounts {
    let examples = [
        ("malformed", &report.malformed),
        ("unusable", &report.unusable),
    ]
    .into_iter()
    .flat_map(|(what, f)| {
        f.first
            .iter()
            .map(move |f| format!("{what}: {}: {}", f.at, f.why))
    })
    // A reason may quote the line (a value that is not a timestamp): redacted like the rest.
    .map(|e: String| match redactor {
        Some(r) => r.redact(&e).into_owned(),
        None => e,
    })
    .collect();
    ShadowCounts {
        lines: report.lines as u64,
        usable: report.usable as u64,
        malformed: report.malformed.count as u64,
        unusable: report.unusable.count as u64,
        duplicates: report.duplicates as u64,
        outside_window: (report.outside_window + report.undated) as u64,
        sampled_out: report.sampled_out as u64,
        ignored: (report.ignored + report.torn) as u64,
        no_answer: 0,
        replayed: 0,
        examples,
        strata: report
            .sample
            .iter()
            .flat_map(|frame| &frame.strata)
            .map(|s| crate::manifest::StratumCount {
                value: s.value.as_deref().map(|v| match redactor {
                    Some(r) => r.redact(v).into_owned(),
                    None => v.to_owned(),
                }),
                seen: s.seen as u64,
                kept: s.kept as u64,
            })
            .collect(),
    }
}

/// Skipped lines are never fatal, and never silent.
fn print_findings(report: &ReadReport, redactor: Option<&Redactor>) {
    let skipped = report.malformed.count + report.unusable.count;
    if skipped == 0 {
        return;
    }
    eprintln!(
        "warning: {} malformed and {} unusable log record(s) skipped (--strict makes a malformed one fatal):",
        report.malformed.count, report.unusable.count
    );
    for line in counts_of(report, redactor).examples {
        eprintln!("  {line}");
    }
    if skipped > report.malformed.first.len() + report.unusable.first.len() {
        eprintln!(
            "  … and {} more",
            skipped - report.malformed.first.len() - report.unusable.first.len()
        );
    }
}

fn nothing_usable(logs: &[PathBuf], report: &ReadReport, redactor: Option<&Redactor>) -> Error {
    let c = counts_of(report, redactor);
    let mut text = format!(
        "{} line(s) read: {} usable, {} malformed, {} unusable, {} duplicate(s), {} outside the window",
        c.lines, c.usable, c.malformed, c.unusable, c.duplicates, c.outside_window
    );
    for e in &c.examples {
        text.push_str(&format!("\n  {e}"));
    }
    Error::Usage(format!(
        "no usable request in {}: nothing to replay\n  {text}\n  fix: check the logs hold requests with their answers (--format names the format; --since/--until widen the window)",
        logs.iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

fn log_names(logs: &[PathBuf]) -> String {
    logs.iter()
        .map(|p| {
            p.file_name().map_or_else(
                || p.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn redaction_counts(r: &Redactor) -> BTreeMap<String, u64> {
    r.counts()
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| (k.as_str().to_owned(), n))
        .collect()
}

/// `--keep-raw`: the replayed conversations as logged, unredacted, beside the items.
fn write_raw(dir: &Path, items: &Items, chats: &Chats) -> anyhow::Result<()> {
    let path = dir.join("requests.jsonl");
    let file = std::fs::File::create_new(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    for i in 0..items.len() {
        out.write_all(b"{\"id\":")?;
        serde_json::to_writer(&mut out, items.id(i))?;
        out.write_all(b",\"request\":")?;
        out.write_all(chats.json(i))?;
        out.write_all(b"}\n")?;
    }
    out.flush()
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logged() -> LoggedRequest {
        serde_json::from_value(serde_json::json!({
            "source": {"file": "t.jsonl", "line": 3, "id": "r1"},
            "format": "request-response",
            "model": "prod",
            "messages": [
                {"role": "system", "content": "Use the tool. <context>Refunds: 30 days.</context>"},
                {"role": "user", "content": "Refund window?", "parts": [{"type": "text", "text": "Refund window?"}]},
                {"role": "assistant", "content": "", "tool_calls": [{"name": "search", "arguments": "{\"q\":\"refund\"}"}]},
                {"role": "tool", "content": "Refunds within 30 days.", "tool_call_id": "call_0"}
            ],
            "params": {"temperature": 0.2, "stop": ["\n"], "tools": [{"type": "function"}],
                       "other": {"presence_penalty": 0.5}},
            "production": {"text": "", "tool_calls": [{"name": "search", "arguments": "{ \"q\": \"refund\" }"}]}
        }))
        .unwrap()
    }

    #[test]
    fn the_replayed_chat_is_the_logged_conversation_and_parameters() {
        let chat: Chat = serde_json::from_slice(&chat_json(&logged())).unwrap();
        assert_eq!(chat.messages.len(), 4);
        assert_eq!(chat.messages[1]["content"][0]["text"], "Refund window?");
        let call = &chat.messages[2]["tool_calls"][0];
        assert_eq!(
            (&call["id"], &call["type"]),
            (&Value::from("call_0"), &Value::from("function"))
        );
        assert_eq!(call["function"]["arguments"], "{\"q\":\"refund\"}");
        assert_eq!(chat.messages[3]["tool_call_id"], "call_0");
        let keys: Vec<&str> = chat.params.keys().map(String::as_str).collect();
        assert_eq!(keys, ["presence_penalty", "stop", "temperature", "tools"]);
        assert!(!chat.params.contains_key("model"));
    }

    #[test]
    fn production_tool_calls_are_the_answer_and_the_context_rule_finds_passages() {
        let r = logged();
        assert_eq!(production_text(&r), "search {\"q\":\"refund\"}");
        assert_eq!(
            context_of(&r, &ContextRule::default()),
            ["Refunds within 30 days."]
        );
        let marked = ContextRule {
            roles: vec!["system".into()],
            start: Some("<context>".into()),
            end: Some("</context>".into()),
        };
        assert_eq!(context_of(&r, &marked), ["Refunds: 30 days."]);
    }
}
