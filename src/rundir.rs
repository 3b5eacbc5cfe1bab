//! The run directory: what a run writes, and how any later command reads it back.
//!
//! ```text
//!     run.json        the manifest, written before the first request: what is being compared, how
//!     items.jsonl     the golden items of this run (after --limit), as they were
//!     results.jsonl   one line per (item, model, trial), appended as results arrive
//!     summary.json    the result, rebuilt from the three above at any time
//! ```
//!
//! Because the summary is a fold over the results, `report` can rebuild it after a crash, and
//! `diff` (and later `merge`) produce run directories of the same shape.

use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::gate::{Bound, Gate};
use crate::golden::{Item, Items};
use crate::metrics::ModelTally;
use crate::record::{ReadStats, read_results};
use crate::report::summary::{GoldenRef, Summary};
use crate::runner::{ItemTally, Status};

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
    pub models: ModelRefs,
    pub gates: Vec<GateRule>,
    /// Notes every view must show (e.g. a diff of runs over different golden sets).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// For a `goldgate diff`, the two runs it compares.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff_of: Option<DiffOf>,
    /// For a `goldgate run`, the evaluation it ran, so `--resume` can finish it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<RunSource>,
    /// For one shard of a sharded run: which (`2/4`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
    /// For a `goldgate merge`, the runs it combines.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged_from: Vec<String>,
    /// For `goldgate run --rerun`, the run whose items it re-runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun_of: Option<RerunOf>,
    /// The machine when the run started: latency measures everything else it was doing too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<Machine>,
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
    pub fn selects(self, t: &ItemTally, repeats: u32) -> bool {
        let complete = t.done == [repeats, repeats];
        let [cur, cand] = t.passed;
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
pub struct ModelRefs {
    pub current: ModelRef,
    pub candidate: ModelRef,
}

impl ModelRefs {
    pub fn get(&self, side: crate::record::Side) -> &ModelRef {
        match side {
            crate::record::Side::Current => &self.current,
            crate::record::Side::Candidate => &self.candidate,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelRef {
    pub provider: String,
    pub kind: crate::config::ProviderKind,
    pub model: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GateRule {
    pub metric: String,
    pub bound: Bound,
}

impl GateRule {
    pub fn from_gate(g: &Gate) -> GateRule {
        GateRule {
            metric: g.metric.name.clone(),
            bound: g.bound,
        }
    }

    pub fn gate(&self) -> anyhow::Result<Gate> {
        Ok(Gate {
            metric: crate::gate::MetricRef::parse(&self.metric).ok_or_else(|| {
                anyhow::anyhow!("run.json names an unknown gate metric `{}`", self.metric)
            })?,
            bound: self.bound,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DiffOf {
    pub a: String,
    pub a_side: crate::record::Side,
    pub b: String,
    pub b_side: crate::record::Side,
}

pub fn manifest_path(dir: &Path) -> PathBuf {
    dir.join("run.json")
}
pub fn items_path(dir: &Path) -> PathBuf {
    dir.join("items.jsonl")
}
pub fn results_path(dir: &Path) -> PathBuf {
    dir.join("results.jsonl")
}

/// Create `out/<run-id>/`, never reusing an existing directory: `create_dir` fails on one that
/// exists, and a collision just draws another suffix.
pub fn create(out: &Path, suffix: &str) -> anyhow::Result<(String, PathBuf)> {
    std::fs::create_dir_all(out).map_err(|e| {
        Error::Usage(format!(
            "cannot create the output directory {}: {e}",
            out.display()
        ))
    })?;
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let stamp = time::OffsetDateTime::now_utc()
        .format(&fmt)
        .unwrap_or_default();
    for _ in 0..100 {
        let id = format!("{stamp}-{:04x}{suffix}", fastrand::u16(..));
        let dir = out.join(&id);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok((id, dir)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot create the run directory {}", dir.display()));
            }
        }
    }
    anyhow::bail!(
        "cannot find a free run directory name under {}",
        out.display()
    )
}

/// Write the manifest and the items snapshot, before anything is run.
pub fn write_start(dir: &Path, manifest: &Manifest, items: &Items) -> anyhow::Result<()> {
    write_json(&manifest_path(dir), manifest)?;
    let path = items_path(dir);
    let file = std::fs::File::create_new(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = BufWriter::new(file);
    for i in 0..items.len() {
        out.write_all(items.json(i))?;
        out.write_all(b"\n")?;
    }
    out.flush()
        .with_context(|| format!("cannot write {}", path.display()))
}

pub fn write_json<T: Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value)?;
    bytes.push(b'\n');
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// A run directory read back: the manifest, the items, and the tallies folded from the results.
pub struct RunData {
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub items: Items,
    pub tallies: [ModelTally; 2],
    pub item_tallies: Vec<ItemTally>,
    /// Every (item index, model, trial) that has its result.
    pub done: std::collections::HashSet<(usize, crate::record::Side, u32)>,
    pub read: ReadStats,
    /// The status the run recorded, if it wrote a summary.
    pub recorded_status: Option<Status>,
}

impl RunData {
    pub fn load(dir: &Path) -> anyhow::Result<RunData> {
        let not_a_run = |what: &str| {
            Error::Usage(format!(
                "{} is not a goldgate run directory ({what}); pass a directory under reports/",
                dir.display()
            ))
        };
        let manifest_text =
            std::fs::read_to_string(manifest_path(dir)).map_err(|_| not_a_run("no run.json"))?;
        let manifest: Manifest = serde_json::from_str(&manifest_text).with_context(|| {
            format!(
                "{} is not a goldgate run manifest",
                manifest_path(dir).display()
            )
        })?;
        let items_text =
            std::fs::read_to_string(items_path(dir)).map_err(|_| not_a_run("no items.jsonl"))?;
        let mut items = Items::default();
        for (i, line) in items_text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .enumerate()
        {
            let item: Item = serde_json::from_str(line)
                .with_context(|| format!("{}:{}", items_path(dir).display(), i + 1))?;
            items.push(&item);
        }
        drop(items_text);
        items.shrink_to_fit();
        let index: HashMap<&str, usize> = items.ids().enumerate().map(|(i, id)| (id, i)).collect();
        let mut tallies = [ModelTally::default(), ModelTally::default()];
        let mut item_tallies = vec![ItemTally::default(); items.len()];
        // A (item, model, trial) answered twice counts once: the first answer.
        let mut seen = std::collections::HashSet::new();
        let read = if results_path(dir).exists() {
            read_results(&results_path(dir), |r| {
                let Some(&i) = index.get(r.id.as_str()) else {
                    return;
                };
                if !seen.insert((i, r.model, r.trial)) {
                    return;
                }
                tallies[r.model.index()].record(items.tags(i), &r);
                item_tallies[i].record(&r);
            })?
        } else {
            ReadStats::default()
        };
        let recorded_status = std::fs::read_to_string(dir.join("summary.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<Summary>(&t).ok())
            .map(|s| s.status);
        Ok(RunData {
            dir: dir.to_path_buf(),
            manifest,
            items,
            tallies,
            item_tallies,
            done: seen,
            read,
            recorded_status,
        })
    }

    /// Whether every (item, model, trial) has its result.
    pub fn is_complete(&self) -> bool {
        let r = self.manifest.repeats;
        self.item_tallies.iter().all(|t| t.done == [r, r])
    }

    /// The status to report: what the run recorded, or, for a run that never wrote its summary
    /// (a crash), what its results show.
    pub fn status(&self) -> Status {
        self.recorded_status
            .unwrap_or_else(|| status_of(&self.tallies, !self.is_complete()))
    }

    pub fn summary(&self, status: Status, finished_at: String) -> anyhow::Result<Summary> {
        let gates = self
            .manifest
            .gates
            .iter()
            .map(GateRule::gate)
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Summary::build(
            &self.manifest,
            &self.tallies,
            &self.item_tallies,
            &gates,
            status,
            finished_at,
        ))
    }
}

/// How a run ended, from its tallies: a model that answered nothing at all makes the comparison
/// meaningless, so the run failed.
pub fn status_of(tallies: &[ModelTally; 2], interrupted: bool) -> Status {
    if interrupted {
        Status::Interrupted
    } else if tallies
        .iter()
        .any(|t| t.all.requests > 0 && t.all.answered == 0)
    {
        Status::Failed
    } else {
        Status::Complete
    }
}

/// Cut a torn last line (a crash mid-write) off a results file, so appending starts clean.
pub fn truncate_torn_tail(path: &Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if keep < bytes.len() {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        file.set_len(keep as u64)
            .with_context(|| format!("cannot truncate {}", path.display()))?;
    }
    Ok(())
}
