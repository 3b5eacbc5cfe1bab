//! The command line. Doc comments are the help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Gate a model change: run the current and the candidate model over a versioned golden set,
/// score every answer, compare, and decide by the promotion gates.
///
/// Exit codes: 0 every gate passed; 1 a gate failed; 2 bad usage, configuration or input (nothing
/// was run); 3 the run could not complete; 130 interrupted (partial results kept).
#[derive(Debug, Parser)]
#[command(name = "goldgate", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run both models over the golden set, score, apply the gates, write reports/<run-id>/.
    Run(RunArgs),
    /// Re-render the reports of a run directory (also after a crash or an interrupted run).
    Report(ReportArgs),
    /// Compare two stored runs item by item (A as the baseline) under the same gates.
    Diff(DiffArgs),
    /// Combine the run directories of the shards of one run into one run, exactly.
    Merge(MergeArgs),
    /// Check the evaluation, providers, golden set and gates without calling any model.
    Validate(ValidateArgs),
    /// Lock, check or describe a golden set, or make one from production traffic logs.
    #[command(subcommand)]
    Golden(GoldenCommand),
    /// Scaffold a working evaluation (config, providers, a small golden set) in a directory.
    Init(InitArgs),
    /// Record a run as its evaluation's accepted baseline (`run --baseline accepted`, `history`).
    Accept(AcceptArgs),
    /// Every night of every evaluation: trends, change points, drift, tonight against the
    /// accepted baseline; writes <out>/history/. `history prune` thins old runs.
    History(HistoryArgs),
    /// Replay captured production traffic through the candidate (and the current model, the
    /// noise baseline), compare with production's answers, and gate on what changed.
    Shadow(ShadowArgs),
    /// Judge a canary or A/B split from its live-traffic logs: per-arm metrics, the gates, the
    /// sample-ratio check, and the decision (exit 0 promote, 1 rollback, 4 continue, 3 the split
    /// is not what was configured), optionally written to a flagd flag file.
    Canary(CanaryArgs),
}

#[derive(Debug, Args)]
pub struct CanaryArgs {
    /// The request logs: JSON lines, CSV with a header, or OTel spans as OTLP/JSON lines; gzip is
    /// read as it is.
    #[arg(long = "log", num_args = 1.., value_name = "FILE", required = true)]
    pub logs: Vec<PathBuf>,
    /// The evaluation file; only `[canary]` and `[statistics]` are read. Without one, the
    /// defaults (docs/canary.md).
    #[arg(
        short = 'c',
        long,
        default_value = "goldgate.toml",
        env = "GOLDGATE_CONFIG"
    )]
    pub config: PathBuf,
    /// Where the analysis directory is created.
    #[arg(long, default_value = "reports", env = "GOLDGATE_OUT")]
    pub out: PathBuf,
    /// Only records at or after this instant (RFC 3339 or epoch seconds): e.g. since the last
    /// step of the rollout.
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    /// Only records before this instant.
    #[arg(long, value_name = "T")]
    pub until: Option<String>,
    /// Stop at the first line that is not a record (exit 2) instead of skipping and counting it.
    #[arg(long)]
    pub strict: bool,
    /// Always-valid intervals, for an analysis re-run on the growing log every few minutes: the
    /// error rate holds however often it is looked at. Keeps its state in --state.
    #[arg(long)]
    pub sequential: bool,
    /// The state of a sequential analysis between looks (default: <out>/canary-state.json).
    #[arg(long, value_name = "FILE", requires = "sequential")]
    pub state: Option<PathBuf>,
    /// The candidate's configured share of traffic in percent, for the sample-ratio check
    /// (default: `[canary] candidate_percent`, else the flag file's split).
    #[arg(long, value_name = "PERCENT")]
    pub candidate_percent: Option<f64>,
    /// An OpenFeature flagd flag definition to write the decision to (atomically; the previous
    /// file is kept as <file>.previous).
    #[arg(long, value_name = "FILE", requires = "flag_key")]
    pub flag_file: Option<PathBuf>,
    /// The flag in --flag-file that routes requests between the two models.
    #[arg(long, value_name = "KEY", requires = "flag_file")]
    pub flag_key: Option<String>,
    /// No terminal summary; the analysis directory is still printed last.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct ShadowArgs {
    /// The traffic logs (request/response lines, OpenAI Batch input/output files, OTel GenAI
    /// spans as OTLP/JSON, or a goldgate results.jsonl; gzip is read as it is).
    #[arg(long = "log", num_args = 1.., value_name = "FILE", required_unless_present = "resume")]
    pub logs: Vec<PathBuf>,
    /// The evaluation file: providers, `[scoring]`, `[shadow]` (gates, context rule, patterns).
    #[arg(
        short = 'c',
        long,
        default_value = "goldgate.toml",
        env = "GOLDGATE_CONFIG"
    )]
    pub config: PathBuf,
    /// Where run directories are created.
    #[arg(long, default_value = "reports", env = "GOLDGATE_OUT")]
    pub out: PathBuf,
    /// Replay through this candidate provider file instead of the evaluation's.
    #[arg(long, value_name = "P.toml")]
    pub candidate: Option<PathBuf>,
    /// Replay through this current provider file (the noise baseline) instead of the evaluation's.
    #[arg(long, value_name = "P.toml", conflicts_with = "no_current")]
    pub current: Option<PathBuf>,
    /// Do not replay through the current model: no noise baseline (gates must be absolute).
    #[arg(long)]
    pub no_current: bool,
    /// The logs' format (default: recognised per file).
    #[arg(long, value_enum)]
    pub format: Option<crate::shadow::log::LogFormat>,
    /// Replay a seeded random sample of N requests (default: every distinct request).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub sample: Option<u64>,
    /// The sample's seed: one seed draws one sample from the same logs.
    #[arg(long, value_name = "S", default_value_t = 1)]
    pub seed: u64,
    /// A metadata field (a key or dotted path): the sample is stratified on it, and results are
    /// tallied per value (tags).
    #[arg(long, value_name = "FIELD")]
    pub stratify: Option<String>,
    /// Take requests made at or after this instant (RFC 3339 or epoch seconds).
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    /// Take requests made before this instant (RFC 3339 or epoch seconds).
    #[arg(long, value_name = "T")]
    pub until: Option<String>,
    /// Replace e-mail addresses, phone numbers, card numbers, IBANs, API-key shapes and
    /// `[shadow] redact` patterns before anything is written (the default).
    #[arg(long, overrides_with = "no_redact")]
    pub redact: bool,
    /// Write text as logged and answered, personal data included.
    #[arg(long, overrides_with = "redact")]
    pub no_redact: bool,
    /// Also keep the replayed requests as logged (requests.jsonl, unredacted) in the run
    /// directory; by default no log text is copied there beyond what the reports show.
    #[arg(long)]
    pub keep_raw: bool,
    /// Exit 2 at the first malformed log line instead of skipping and counting it.
    #[arg(long)]
    pub strict: bool,
    /// Replay only shard K of N (requests partitioned by a hash of their id); `goldgate merge`
    /// combines the shards.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<crate::manifest::Shard>,
    /// Finish an interrupted shadow run: the logs are read again, and only what is missing is
    /// replayed.
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["logs", "shard", "sample"])]
    pub resume: Option<PathBuf>,
    /// Requests in flight across both models (overrides the evaluation's `concurrency`).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub concurrency: Option<u64>,
    /// Serve repeated requests from the response cache (<out>/.cache/responses.redb).
    #[arg(long, env = "GOLDGATE_CACHE", overrides_with = "no_cache")]
    pub cache: bool,
    /// Do not use the response cache (the default; overrides GOLDGATE_CACHE).
    #[arg(long, overrides_with = "cache")]
    pub no_cache: bool,
    /// Log failed attempts and retries to stderr.
    #[arg(short, long)]
    pub verbose: bool,
    /// No progress bar and no terminal summary.
    #[arg(short, long)]
    pub quiet: bool,
    /// Exit 0 instead of 4 when the verdict is inconclusive.
    #[arg(long)]
    pub allow_inconclusive: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The evaluation file.
    #[arg(
        short = 'c',
        long,
        default_value = "goldgate.toml",
        env = "GOLDGATE_CONFIG"
    )]
    pub config: PathBuf,
    /// Where run directories are created.
    #[arg(long, default_value = "reports", env = "GOLDGATE_OUT")]
    pub out: PathBuf,
    /// Use this golden set directory instead of the evaluation's.
    #[arg(long, value_name = "DIR")]
    pub golden: Option<PathBuf>,
    /// Use this provider file for the current model.
    #[arg(long, value_name = "P.toml")]
    pub current: Option<PathBuf>,
    /// Use this provider file for the candidate model.
    #[arg(long, value_name = "P.toml")]
    pub candidate: Option<PathBuf>,
    /// Evaluate only the first N items.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: Option<u64>,
    /// Run only shard K of N (items partitioned by a hash of their id); `goldgate merge` combines
    /// the shards' directories into one run. Kubernetes: --shard $((JOB_COMPLETION_INDEX+1))/N.
    #[arg(long, value_name = "K/N", env = "GOLDGATE_SHARD")]
    pub shard: Option<crate::manifest::Shard>,
    /// Trials per item and model (overrides `repeats`).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub repeat: Option<u32>,
    /// Requests in flight across both models (overrides the evaluation's `concurrency`).
    #[arg(long, value_name = "N", env = "GOLDGATE_CONCURRENCY", value_parser = clap::value_parser!(u64).range(1..))]
    pub concurrency: Option<u64>,
    /// Run a golden set whose items changed since it was locked.
    #[arg(long)]
    pub allow_unlocked: bool,
    /// Finish an interrupted or crashed run in its own directory, without repeating any answered
    /// (item, model, trial). The evaluation recorded in the run is used.
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["golden", "current", "candidate", "limit", "repeat"])]
    pub resume: Option<PathBuf>,
    /// Re-run only the items that regressed in RUN_DIR (see --rerun-only), with the evaluation it
    /// recorded (--golden, --current and --candidate still override it). With --repeat, this tells
    /// a real regression from noise.
    #[arg(long, value_name = "RUN_DIR", conflicts_with = "resume")]
    pub rerun: Option<PathBuf>,
    /// Which items of the --rerun run to take.
    #[arg(long, value_enum, default_value_t = crate::manifest::RerunOnly::Regressed)]
    pub rerun_only: crate::manifest::RerunOnly,
    /// Serve repeated requests from the response cache (<out>/.cache/responses.redb), and store new answers in it.
    #[arg(long, env = "GOLDGATE_CACHE", overrides_with = "no_cache")]
    pub cache: bool,
    /// Do not use the response cache (the default; overrides GOLDGATE_CACHE).
    #[arg(long, overrides_with = "cache")]
    pub no_cache: bool,
    /// Log every failed attempt and retry to stderr.
    #[arg(short, long)]
    pub verbose: bool,
    /// No progress bar and no terminal summary; the run directory is still printed last.
    #[arg(short, long, env = "GOLDGATE_QUIET")]
    pub quiet: bool,
    /// Exit 0 instead of 4 when no gate failed but some could not be decided with the data
    /// (the verdict stays `inconclusive` in every report).
    #[arg(long, env = "GOLDGATE_ALLOW_INCONCLUSIVE")]
    pub allow_inconclusive: bool,
    /// Compare the candidate with the stored answers of an earlier run instead of calling the
    /// current model: `accepted` (the evaluation's accepted baseline under --out, see `goldgate
    /// accept`) or a run directory. Only the candidate is called.
    #[arg(long, value_name = "accepted|RUN_DIR", conflicts_with_all = ["resume", "rerun"])]
    pub baseline: Option<String>,
    /// Which model of the --baseline run stands for the current one (default: the accepted
    /// side, or the candidate).
    #[arg(long, value_enum, requires = "baseline")]
    pub baseline_side: Option<crate::record::Side>,
    /// With --baseline: compare on the item ids the two golden sets share when their hashes
    /// differ (every report says so), instead of refusing.
    #[arg(long, requires = "baseline")]
    pub allow_golden_change: bool,
    /// Take the items in a seeded random order and stop as soon as the verdict is decided, by
    /// anytime-valid intervals evaluated after every --batch items (docs/statistics.md).
    #[arg(long, conflicts_with_all = ["shard", "rerun", "resume"])]
    pub until_decided: bool,
    /// With --until-decided: no look before this many items.
    #[arg(long, value_name = "N", default_value_t = 100, requires = "until_decided", value_parser = clap::value_parser!(u64).range(1..))]
    pub min_items: u64,
    /// With --until-decided: take at most this many items (of the order).
    #[arg(long, value_name = "N", requires = "until_decided", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_items: Option<u64>,
    /// With --until-decided: look at the gates each time this many more items are complete.
    #[arg(long, value_name = "N", default_value_t = 50, requires = "until_decided", value_parser = clap::value_parser!(u64).range(1..))]
    pub batch: u64,
}

#[derive(Debug, Args)]
pub struct AcceptArgs {
    /// The run directory to accept (reports/<run-id>).
    pub run_dir: PathBuf,
    /// Which of its models is the accepted one.
    #[arg(long, value_enum, default_value_t = crate::record::Side::Candidate)]
    pub side: crate::record::Side,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct HistoryArgs {
    #[command(subcommand)]
    pub command: Option<HistoryCommand>,
    /// Where the runs are, and where history/ is written.
    #[arg(long, default_value = "reports", env = "GOLDGATE_OUT")]
    pub out: PathBuf,
    /// Read these run directories instead of every one under --out.
    pub run_dirs: Vec<PathBuf>,
    /// Nights shown in the item grid and searched for flips and drift (the series and change
    /// points use every night).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(2..=1000))]
    pub window: u32,
    /// No terminal summary; history/index.html's path is still printed last.
    #[arg(short, long, env = "GOLDGATE_QUIET")]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum HistoryCommand {
    /// Keep the newest N runs of each evaluation whole; thin older ones to summary.json, the
    /// manifest and a compact per-item record (pass, scores, latency; no answer text).
    Prune {
        /// Runs of each evaluation kept whole (the accepted baseline is always kept whole).
        #[arg(long, value_name = "N")]
        keep_full: usize,
        /// Where the runs are.
        #[arg(long, default_value = "reports", env = "GOLDGATE_OUT")]
        out: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The run directory (reports/<run-id>).
    pub run_dir: PathBuf,
    /// Formats to write; all by default.
    #[arg(long, value_delimiter = ',', value_enum, default_values_t = crate::report::Format::ALL)]
    pub format: Vec<crate::report::Format>,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The shards' run directories (one per shard, any order).
    #[arg(required = true, num_args = 1..)]
    pub run_dirs: Vec<PathBuf>,
    /// Where the merged run's directory is created.
    #[arg(long, default_value = "reports", env = "GOLDGATE_OUT")]
    pub out: PathBuf,
    /// No terminal summary; the merged run's directory is still printed last.
    #[arg(short, long, env = "GOLDGATE_QUIET")]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The baseline run directory.
    pub run_a: PathBuf,
    /// The run directory compared against it.
    pub run_b: PathBuf,
    /// Where the comparison's directory is created.
    #[arg(long, default_value = "reports", env = "GOLDGATE_OUT")]
    pub out: PathBuf,
    /// Which model of run A is the baseline.
    #[arg(long, value_enum, default_value_t = crate::record::Side::Candidate)]
    pub a_side: crate::record::Side,
    /// Which model of run B is compared.
    #[arg(long, value_enum, default_value_t = crate::record::Side::Candidate)]
    pub b_side: crate::record::Side,
    /// No terminal summary; the comparison's directory is still printed last.
    #[arg(short, long, env = "GOLDGATE_QUIET")]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The evaluation file.
    #[arg(
        short = 'c',
        long,
        default_value = "goldgate.toml",
        env = "GOLDGATE_CONFIG"
    )]
    pub config: PathBuf,
    /// Also send one cheap request to each provider's endpoint to check it answers.
    #[arg(long)]
    pub check_reachable: bool,
}

#[derive(Debug, Subcommand)]
pub enum GoldenCommand {
    /// Write the items' canonical hash into golden.toml (bumping `version` if the items changed).
    Lock {
        /// The golden set directory.
        dir: PathBuf,
    },
    /// Validate the items and check they still hash to the locked sha256 (exit 2 if not).
    Check {
        /// The golden set directory.
        dir: PathBuf,
    },
    /// Describe the set: items, checks, contexts, tags; with --baseline-accuracy, what a paired
    /// accuracy gate on this many items can decide.
    Stats {
        /// The golden set directory.
        dir: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Plan a comparison: the current model's expected accuracy (0 to 1), e.g. 0.9.
        #[arg(long, value_parser = unit_interval)]
        baseline_accuracy: Option<f64>,
        /// The non-inferiority margin: 0.05 plans the gate `min_ratio = 0.95`.
        #[arg(long, default_value_t = 0.05, value_parser = unit_interval)]
        margin: f64,
        /// How strongly the two models' per-item outcomes agree beyond chance (0 to 1; 0.5 is
        /// typical of two models of one family).
        #[arg(long, default_value_t = 0.5, value_parser = unit_interval)]
        correlation: f64,
        /// The confidence level of the planned intervals.
        #[arg(long, default_value_t = 0.95, value_parser = unit_interval)]
        confidence: f64,
    },
    /// Make a new golden set from logged production traffic: one item per distinct request (the
    /// last user message as the question, the production answer as an unscored `reference`,
    /// where it was logged as `provenance`), locked. Logs hold user data: text is redacted
    /// (e-mail addresses, phone and card numbers, IBANs, keys) unless --no-redact is given.
    FromLog(FromLogArgs),
}

#[derive(Debug, Args)]
pub struct FromLogArgs {
    /// The log files (request/response lines, OpenAI Batch files, OTel GenAI spans, or a
    /// goldgate results.jsonl; gzip is read as it is).
    #[arg(required = true, num_args = 1.., value_name = "LOG")]
    pub logs: Vec<PathBuf>,
    /// The new golden set's directory (must not exist, or be empty); its name is the set's name.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Take a seeded random sample of N requests (default: every distinct request).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub sample: Option<u64>,
    /// The sample's seed: one seed draws one sample from the same logs.
    #[arg(long, value_name = "S", default_value_t = 1)]
    pub seed: u64,
    /// A metadata field (a key or a dotted path): the sample is stratified on it and each item
    /// is tagged with its value.
    #[arg(long, value_name = "FIELD")]
    pub stratify: Option<String>,
    /// The logs' format (default: recognised per file).
    #[arg(long, value_enum)]
    pub format: Option<crate::shadow::log::LogFormat>,
    /// Take requests made at or after this instant (RFC 3339 or epoch seconds).
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    /// Take requests made before this instant (RFC 3339 or epoch seconds).
    #[arg(long, value_name = "T")]
    pub until: Option<String>,
    /// Write the text as logged, personal data included: only for logs known to hold none.
    #[arg(long)]
    pub no_redact: bool,
    /// Exit 2 at the first malformed log line instead of skipping and counting it.
    #[arg(long)]
    pub strict: bool,
}

/// A number from 0 to 1 (exclusive of neither end's nonsense: NaN is refused).
fn unit_interval(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    if (0.0..1.0).contains(&v) && v > 0.0 {
        Ok(v)
    } else {
        Err(format!(
            "{s} is outside 0 to 1 (exclusive): write 0.9 for 90%"
        ))
    }
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The directory to create the evaluation in (created if missing; must not already hold one).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }
}
