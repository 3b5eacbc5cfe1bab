//! `run.json`, the manifest of a run directory: what is being compared, and how, written before
//! the first request. Every kind of run directory (a run, a diff of two runs, a merge of shards)
//! has one; what only one kind records is in its [`RunKind`].

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::gate::Gate;
use crate::record::Sides;

pub const MANIFEST_SCHEMA: &str = "goldgate/run/v1";

/// `run.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub schema: String,
    pub run_id: String,
    pub started_at: String,
    pub goldgate_version: String,
    pub golden: GoldenRef,
    pub repeats: u32,
    pub models: Sides<ModelRef>,
    pub gates: Vec<Gate>,
    /// The evaluation's error ceiling; absent in run directories written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_error_rate: Option<f64>,
    /// `[statistics]`: the confidence level, seed and resamples every interval is computed with
    /// (absent in run directories written before intervals: the defaults then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statistics: Option<crate::stats::Settings>,
    /// When an item passes for a model over its trials (absent before: `all`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_pass: Option<crate::stats::ItemPass>,
    /// Notes every view must show (e.g. a diff of runs over different golden sets).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// What made this directory, with what only that kind of run records.
    #[serde(flatten)]
    pub kind: RunKind,
    /// The machine when the run started: latency measures everything else it was doing too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<Machine>,
    /// Which evaluation this run belongs to, and how it scored (absent before `history`: the
    /// golden set's name stands for it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation: Option<EvaluationRef>,
    /// For `run --baseline`: the stored run whose answers stand in for the current model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<BaselineOf>,
    /// For `run --until-decided`: the items' order and when the gates were looked at. The
    /// run's items.jsonl holds the items in that order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequential: Option<crate::gate::sequential::SequentialPlan>,
    /// For `goldgate shadow`: the logged traffic replayed, and how it was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ShadowOf>,
}

/// What a shadow run replayed: its items are logged requests, each item's `expected` the answer
/// production gave; the candidate (and, for the noise baseline, the current model) answered
/// them again.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ShadowOf {
    /// The log files, absolute, as read (a resumed run reads them again: their text is never
    /// copied here unless `keep_raw`).
    pub logs: Vec<std::path::PathBuf>,
    /// How they were read, so that a resumed run selects the same requests.
    pub read: ShadowRead,
    /// The current model answered the same requests again: a difference counts only where the
    /// candidate differs from production more than the current model's replay does.
    pub noise_baseline: bool,
    /// Personal data was replaced before anything was written (`--redact`, the default).
    pub redacted: bool,
    /// `requests.jsonl` holds the replayed requests as logged (`--keep-raw`).
    pub keep_raw: bool,
    /// What the reading found, line by line.
    pub counts: ShadowCounts,
    /// Production's side of the requests replayed, as logged.
    pub production: ProductionInfo,
    /// Redactions made, by kind (`email`, `phone`, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub redactions: BTreeMap<String, u64>,
}

/// The read options of a shadow run, as given.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ShadowRead {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample: Option<u64>,
    pub seed: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stratify: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
}

/// Lines read and what became of them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ShadowCounts {
    pub lines: u64,
    /// Requests with a production answer that could be replayed.
    pub usable: u64,
    /// Lines that are not what the format says (JSON broken, fields missing).
    pub malformed: u64,
    /// Well-formed records that cannot be replayed (an OTel span without message text).
    pub unusable: u64,
    pub duplicates: u64,
    pub outside_window: u64,
    pub sampled_out: u64,
    /// Lines the format has but that are no request (other span kinds, blank lines).
    pub ignored: u64,
    /// Requests whose production answer was empty (withheld, filtered): nothing to compare.
    #[serde(default)]
    pub no_answer: u64,
    /// Replayed (after the sample and the shard).
    pub replayed: u64,
    /// The first malformed or unusable lines, as `file:line: reason`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<String>,
    /// With `--sample`: the sample frame, each stratum's requests seen and kept (one stratum,
    /// `value` absent, without `--stratify`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub strata: Vec<StratumCount>,
}

/// One stratum of a shadow run's sample: the `--stratify` field's value (redacted like the rest),
/// the distinct requests that had it, and how many of them the sample kept.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StratumCount {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub seen: u64,
    pub kept: u64,
}

/// Production's answers to the replayed requests, as the log has them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ProductionInfo {
    /// The models that answered, as logged, with their request counts.
    pub models: BTreeMap<String, u64>,
    /// Logged latency: another environment's (network, load, hardware), shown, never gated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<crate::metrics::LatencyMs>,
    /// Production answers that were tool calls.
    pub tool_calls: u64,
    /// Production answers that declined.
    pub refusals: u64,
}

/// The evaluation a run belongs to: what `history` groups runs by and `accept` keys its file on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EvaluationRef {
    /// `name` in goldgate.toml, or the golden set's name.
    pub name: String,
    /// SHA-256 (16 hex digits) of the prompt, system message, `[scoring]` and `item_pass`: when
    /// it changes, scores of one night are not comparable with the night before.
    pub scoring: String,
}

/// Where a `run --baseline` took its current model's answers from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BaselineOf {
    pub run_id: String,
    /// Which model of that run.
    pub side: crate::record::Side,
    /// Whether it was named as the evaluation's accepted baseline (`--baseline accepted`).
    pub accepted: bool,
    /// That run's golden set hash, when it differs from this run's (`--allow-golden-change`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub golden_sha256: Option<String>,
}

/// The kinds of run directory. Stored flat in `run.json` (`diff_of`, `merged_from`, `source`…), so
/// the file reads as before; a kind is told by the field only it has.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RunKind {
    /// `goldgate diff`: one model of each of two stored runs.
    Diff { diff_of: DiffOf },
    /// `goldgate merge`: the shards of one run, combined.
    Merge {
        merged_from: Vec<String>,
        /// Shards of a `--rerun` keep saying so.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rerun_of: Option<RerunOf>,
    },
    /// `goldgate run`: both models called over the golden set.
    Run {
        /// The evaluation it ran, so `--resume` can finish it (absent in hand-made fixtures).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source: Option<RunSource>,
        /// For one shard of a sharded run: which (`2/4`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shard: Option<Shard>,
        /// For `goldgate run --rerun`, the run whose items it re-runs.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rerun_of: Option<RerunOf>,
    },
}

impl Manifest {
    /// The evaluation this run belongs to: recorded, or (runs written before it was) the golden
    /// set's name.
    pub fn evaluation_name(&self) -> &str {
        self.evaluation
            .as_ref()
            .map_or(self.golden.name.as_str(), |e| e.name.as_str())
    }

    /// For a `goldgate diff`, the two runs it compares.
    pub fn diff_of(&self) -> Option<&DiffOf> {
        match &self.kind {
            RunKind::Diff { diff_of } => Some(diff_of),
            _ => None,
        }
    }

    /// For a `goldgate run`, the evaluation it ran.
    pub fn source(&self) -> Option<&RunSource> {
        match &self.kind {
            RunKind::Run { source, .. } => source.as_ref(),
            _ => None,
        }
    }

    /// For one shard of a sharded run, which.
    pub fn shard(&self) -> Option<Shard> {
        match &self.kind {
            RunKind::Run { shard, .. } => *shard,
            _ => None,
        }
    }

    /// For a re-run (or the merge of a re-run's shards), the run whose items it re-runs.
    pub fn rerun_of(&self) -> Option<&RerunOf> {
        match &self.kind {
            RunKind::Run { rerun_of, .. } | RunKind::Merge { rerun_of, .. } => rerun_of.as_ref(),
            RunKind::Diff { .. } => None,
        }
    }
}

/// The golden set a run used.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GoldenRef {
    pub name: String,
    pub version: u64,
    pub sha256: String,
    /// Items evaluated in this run (after `--limit`).
    pub items: usize,
    /// Whether the items matched the locked hash; a run with `--allow-unlocked` says so here.
    pub locked: bool,
}

/// Which items of an earlier run `goldgate run --rerun` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum RerunOnly {
    /// The candidate passed fewer trials than the current model.
    Regressed,
    /// The candidate failed at least one trial (or did not finish it).
    Failed,
    /// The two models passed a different number of trials (regressed or improved).
    Changed,
}

impl RerunOnly {
    pub fn as_str(self) -> &'static str {
        match self {
            RerunOnly::Regressed => "regressed",
            RerunOnly::Failed => "failed",
            RerunOnly::Changed => "changed",
        }
    }

    /// Whether an item of a run with `repeats` trials per model belongs to this selection.
    pub fn selects(self, t: &crate::metrics::ItemTally, repeats: u32) -> bool {
        let complete = t.is_complete(repeats);
        let (cur, cand) = (t.passed.current, t.passed.candidate);
        match self {
            RerunOnly::Regressed => complete && cand < cur,
            RerunOnly::Failed => cand < repeats,
            RerunOnly::Changed => complete && cand != cur,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RerunOf {
    pub run_id: String,
    pub only: RerunOnly,
    /// Items selected in that run (those still in the golden set are run).
    pub items: usize,
}

/// What a latency figure depends on besides the model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    pub cpus: usize,
    /// 1-, 5- and 15-minute load averages (where the OS reports them: Linux's /proc/loadavg).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_avg: Option<[f64; 3]>,
    pub os: String,
    pub arch: String,
}

impl Machine {
    pub fn now() -> Machine {
        let load_avg = std::fs::read_to_string("/proc/loadavg").ok().and_then(|t| {
            let mut f = t.split_whitespace().map(|v| v.parse::<f64>().ok());
            Some([f.next()??, f.next()??, f.next()??])
        });
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            load_avg,
            os: std::env::consts::OS.to_owned(),
            arch: std::env::consts::ARCH.to_owned(),
        }
    }

    /// `2 CPUs, load average 1.52 0.80 0.40`.
    pub fn describe(&self) -> String {
        match self.load_avg {
            Some([a, b, c]) => format!(
                "{} CPUs, load average {a:.2} {b:.2} {c:.2} at the start",
                self.cpus
            ),
            None => format!("{} CPUs", self.cpus),
        }
    }
}

/// Shard `index` (1-based) of `count`: the items whose id hashes to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// Deterministic by id alone (FNV-1a), so every machine computes the same partition and an
    /// item keeps its shard when others are added or removed.
    pub fn contains(&self, id: &str) -> bool {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in id.as_bytes() {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h % u64::from(self.count) == u64::from(self.index - 1)
    }
}

impl std::str::FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Shard, String> {
        let bad = || format!("`{s}` is not a shard: write K/N with 1 <= K <= N, e.g. 2/4");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count): (u32, u32) = (
            k.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if index == 0 || count == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunSource {
    pub config: PathBuf,
    pub golden: PathBuf,
    pub current: PathBuf,
    pub candidate: PathBuf,
    /// SHA-256 of the evaluation file and both provider files as they were: a resumed run must
    /// not mix two evaluations.
    pub fingerprint: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelRef {
    pub provider: String,
    pub kind: crate::config::ProviderKind,
    pub model: String,
    /// SHA-256 (16 hex digits) of everything in the provider file that shapes an answer (kind,
    /// model, endpoint, sampling settings; not prices, limits or the key's variable): two runs
    /// with the same value asked the same model the same way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DiffOf {
    pub a: String,
    pub a_side: crate::record::Side,
    pub b: String,
    pub b_side: crate::record::Side,
}
