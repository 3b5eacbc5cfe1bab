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

use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Serialize;

use crate::error::Error;
use crate::golden::{Item, Items};
use crate::manifest::Manifest;
use crate::metrics::{ItemTallies, ModelTally, Status};
use crate::record::{ReadStats, ResultRecord, Sides, TrialKey, TrialSet, read_results};
use crate::summary::Summary;

pub fn manifest_path(dir: &Path) -> PathBuf {
    dir.join("run.json")
}
pub fn items_path(dir: &Path) -> PathBuf {
    dir.join("items.jsonl")
}
pub fn results_path(dir: &Path) -> PathBuf {
    dir.join("results.jsonl")
}
pub fn summary_path(dir: &Path) -> PathBuf {
    dir.join("summary.json")
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

/// Keep in `items.jsonl` only the items both models completed (a `--until-decided` run that
/// stopped: the rest were never asked), rewritten beside and renamed; the items kept.
pub fn keep_complete_items(dir: &Path, items: &Items, repeats: u32) -> anyhow::Result<Items> {
    let fold = Fold::of(dir, items, repeats)?;
    let mut kept = Items::default();
    for (i, t) in fold.item_tallies.iter().enumerate() {
        if t.is_complete(repeats) {
            kept.push_from(items, i);
        }
    }
    let path = items_path(dir);
    let tmp = path.with_extension("jsonl.tmp");
    let mut out = BufWriter::new(
        std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?,
    );
    for i in 0..kept.len() {
        out.write_all(kept.json(i))?;
        out.write_all(b"\n")?;
    }
    out.flush()
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    drop(out);
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(kept)
}

/// Write `summary.json`, beside and renamed, so a reader never sees half a summary.
pub fn write_summary(dir: &Path, summary: &Summary) -> anyhow::Result<()> {
    write_json(&summary_path(dir), summary)
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
    pub tallies: Sides<ModelTally>,
    pub item_tallies: ItemTallies,
    pub read: ReadStats,
    /// How the run recorded its end, if it wrote a summary.
    pub recorded: Option<Recorded>,
}

/// What a run's own `summary.json` says of its end.
pub struct Recorded {
    pub status: Status,
    pub finished_at: String,
}

/// A run's results folded over its items: what every metric, the item comparison and `--resume`
/// are computed from.
pub struct Fold {
    pub tallies: Sides<ModelTally>,
    pub item_tallies: ItemTallies,
    /// Every (item index, model, trial) that has its result.
    pub done: TrialSet,
    pub read: ReadStats,
}

impl Fold {
    /// Fold `dir`'s results over `items` (the run's own, as [`RunData::load`] reads them).
    pub fn of(dir: &Path, items: &Items, repeats: u32) -> anyhow::Result<Fold> {
        let mut tallies = Sides::<ModelTally>::default();
        let mut item_tallies = ItemTallies::new(items.len());
        // A (item, model, trial) answered twice counts once: the first answer.
        let mut seen = TrialSet::new(items.len(), repeats);
        let read = if results_path(dir).exists() {
            read_results(&results_path(dir), |r| {
                let Some(i) = items.position(&r.id) else {
                    return;
                };
                let key = TrialKey {
                    item: i,
                    side: r.model,
                    trial: r.trial,
                };
                if !seen.insert(key) {
                    return;
                }
                tallies[r.model].record(items.tags(i), &r);
                item_tallies.record(i, &r);
            })?
        } else {
            ReadStats::default()
        };
        Ok(Fold {
            tallies,
            item_tallies,
            done: seen,
            read,
        })
    }

    /// Whether every (item, model, trial) has its result.
    pub fn is_complete(&self, repeats: u32) -> bool {
        self.item_tallies.iter().all(|t| t.is_complete(repeats))
    }
}

fn not_a_run(dir: &Path, what: &str) -> Error {
    Error::Usage(format!(
        "{} is not a goldgate run directory ({what}); pass a directory under reports/",
        dir.display()
    ))
}

/// A run directory's manifest alone.
pub fn read_manifest(dir: &Path) -> anyhow::Result<Manifest> {
    let manifest_text =
        std::fs::read_to_string(manifest_path(dir)).map_err(|_| not_a_run(dir, "no run.json"))?;
    let manifest: Manifest = serde_json::from_str(&manifest_text).with_context(|| {
        format!(
            "{} is not a goldgate run manifest",
            manifest_path(dir).display()
        )
    })?;
    Ok(manifest)
}

/// A run directory's items, as `items.jsonl` holds them.
pub fn read_items(dir: &Path) -> anyhow::Result<Items> {
    // Read a line at a time: the file is as large as the items held, and a million items'
    // text held twice was the peak of `goldgate report`.
    let items_file =
        std::fs::File::open(items_path(dir)).map_err(|_| not_a_run(dir, "no items.jsonl"))?;
    let mut items = Items::default();
    let lines = std::io::BufReader::with_capacity(1 << 16, items_file).lines();
    let mut numbered = 0;
    for line in lines {
        let line = line.map_err(|_| not_a_run(dir, "no items.jsonl"))?;
        if line.trim().is_empty() {
            continue;
        }
        numbered += 1;
        let item: Item = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}", items_path(dir).display(), numbered))?;
        items.push(&item);
    }
    items.shrink_to_fit();
    Ok(items)
}

impl RunData {
    pub fn load(dir: &Path) -> anyhow::Result<RunData> {
        let manifest = read_manifest(dir)?;
        let items = read_items(dir)?;
        let Fold {
            tallies,
            item_tallies,
            read,
            ..
        } = Fold::of(dir, &items, manifest.repeats)?;
        let recorded = std::fs::read_to_string(summary_path(dir))
            .ok()
            .and_then(|t| serde_json::from_str::<Summary>(&t).ok())
            .map(|s| Recorded {
                status: s.status,
                finished_at: s.finished_at,
            });
        Ok(RunData {
            dir: dir.to_path_buf(),
            manifest,
            items,
            tallies,
            item_tallies,
            read,
            recorded,
        })
    }

    /// Whether every (item, model, trial) has its result.
    pub fn is_complete(&self) -> bool {
        let r = self.manifest.repeats;
        self.item_tallies.iter().all(|t| t.is_complete(r))
    }

    /// The status to report: what the run recorded, or, for a run that never wrote its summary
    /// (a crash), what its results show.
    pub fn status(&self) -> Status {
        self.recorded.as_ref().map_or_else(
            || {
                Status::of(
                    &self.tallies,
                    !self.is_complete(),
                    self.manifest.max_error_rate,
                )
            },
            |r| r.status,
        )
    }

    pub fn summary(&self, status: Status, finished_at: String) -> Summary {
        Summary::build(
            &self.manifest,
            &self.tallies,
            &self.items,
            &self.item_tallies,
            status,
            finished_at,
        )
    }
}

/// Cut a torn last line (a crash mid-write) off a results file, so appending starts clean.
fn truncate_torn_tail(path: &Path) -> anyhow::Result<()> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    let keep = end_of_last_line(path).with_context(|| format!("cannot read {}", path.display()))?;
    if keep < len {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        file.set_len(keep)
            .with_context(|| format!("cannot truncate {}", path.display()))?;
    }
    Ok(())
}

/// Where the last complete line of a file ends (0 if it has none), read backwards a block at a
/// time: a results file holds every answer of the run (1.4 GB for a million items), and reading
/// it whole to look at its end was the peak of a resumed run.
fn end_of_last_line(path: &Path) -> std::io::Result<u64> {
    use std::io::{Read, Seek, SeekFrom};
    const BLOCK: u64 = 64 * 1024;
    let mut file = std::fs::File::open(path)?;
    let mut end = file.metadata()?.len();
    let mut block = vec![0; BLOCK as usize];
    while end > 0 {
        let start = end.saturating_sub(BLOCK);
        let bytes = &mut block[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(bytes)?;
        if let Some(i) = bytes.iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// `results.jsonl` opened for writing: created for a new run (never over an existing file),
/// appended to for a resumed one. Lines that arrive together are written together and flushed
/// once: a syscall per batch, not per line.
pub struct ResultsWriter {
    path: PathBuf,
    out: BufWriter<std::fs::File>,
    line: Vec<u8>,
}

impl ResultsWriter {
    pub fn create(dir: &Path) -> anyhow::Result<ResultsWriter> {
        let path = results_path(dir);
        let file = std::fs::File::create_new(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(ResultsWriter::new(path, file))
    }

    /// Continue a run's results after what it has, cutting off a line torn by a crash first.
    pub fn append(dir: &Path) -> anyhow::Result<ResultsWriter> {
        let path = results_path(dir);
        truncate_torn_tail(&path)?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        Ok(ResultsWriter::new(path, file))
    }

    fn new(path: PathBuf, file: std::fs::File) -> ResultsWriter {
        ResultsWriter {
            path,
            out: BufWriter::new(file),
            line: Vec::with_capacity(4096),
        }
    }

    /// Buffer one line; [`ResultsWriter::flush`] makes a batch durable.
    pub fn write(&mut self, record: &ResultRecord) -> anyhow::Result<()> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, record)?;
        self.line.push(b'\n');
        self.out
            .write_all(&self.line)
            .with_context(|| format!("cannot append to {}", self.path.display()))
    }

    /// Append the result lines of another run that `keep` keeps (and may relabel): how `diff`
    /// and `merge` build their run directories from stored runs.
    pub fn copy_from(
        &mut self,
        run: &Path,
        mut keep: impl FnMut(&mut ResultRecord) -> bool,
    ) -> anyhow::Result<()> {
        let mut failed = None;
        read_results(&results_path(run), |mut r| {
            if failed.is_none() && keep(&mut r) {
                failed = self.write(&r).err();
            }
        })?;
        failed.map_or(Ok(()), Err)
    }

    pub fn flush(&mut self) -> anyhow::Result<()> {
        self.out
            .flush()
            .with_context(|| format!("cannot append to {}", self.path.display()))
    }
}

/// Now, as run files record time: whole seconds, UTC. A person reads these, and a report never
/// needs more.
pub fn now_rfc3339() -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    time::OffsetDateTime::now_utc()
        .format(&fmt)
        .unwrap_or_default()
}

/// A run directory held for writing. Two processes writing one directory would both redo its
/// missing work (paid twice) and interleave their lines, so a process that writes a run holds an
/// exclusive OS lock on `<dir>/.lock` until it exits. The OS drops the lock of a process that dies
/// (killed, crashed, power cut), so a lock that is held belongs to a live process: nothing stale
/// needs detecting or cleaning up.
#[derive(Debug)]
pub struct RunLock {
    _file: std::fs::File,
}

impl RunLock {
    /// Take the lock, or say which process holds it (exit 2: nothing was run).
    pub fn acquire(dir: &Path) -> Result<RunLock, Error> {
        let path = dir.join(".lock");
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::Usage(format!("cannot open {}: {e}", path.display())))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                let holder = holder.trim();
                let by = if holder.is_empty() {
                    "another goldgate process".to_owned()
                } else {
                    format!("another goldgate process ({holder})")
                };
                return Err(Error::Usage(format!(
                    "{} is being written by {by}; wait for it to finish (a process that died would have released it)",
                    dir.display()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(Error::Usage(format!("cannot lock {}: {e}", path.display())));
            }
        }
        // Who holds it, for the message another process prints; best effort.
        let _ = file
            .set_len(0)
            .and_then(|()| writeln!(file, "pid {}, since {}", std::process::id(), now_rfc3339()));
        Ok(RunLock { _file: file })
    }
}

/// One model of a stored run against one model of another, items matched by id, folded in
/// memory: what `history` compares tonight with the accepted baseline by, without writing a
/// directory as `diff` does.
pub struct Pair {
    /// The items both runs have (run B's copy).
    pub items: Items,
    pub repeats: u32,
    pub tallies: Sides<ModelTally>,
    pub item_tallies: ItemTallies,
    /// Run A's model, as the current side.
    pub baseline_model: crate::manifest::ModelRef,
    pub warnings: Vec<String>,
}

impl Pair {
    pub fn load(
        a: &Path,
        a_side: crate::record::Side,
        b: &Path,
        b_side: crate::record::Side,
    ) -> anyhow::Result<Pair> {
        use crate::record::Side;
        let (ma, mb) = (read_manifest(a)?, read_manifest(b)?);
        let mut items = read_items(b)?;
        {
            let theirs = read_items(a)?;
            let ids: std::collections::HashSet<&str> = theirs.ids().collect();
            items.retain_ids(|id| ids.contains(id));
        }
        let mut warnings = Vec::new();
        if ma.golden.sha256 != mb.golden.sha256 {
            warnings.push(format!(
                "the golden set changed since run {} ({}@{}, {}): only the {} item id(s) both runs have are compared",
                ma.run_id,
                ma.golden.name,
                ma.golden.version,
                crate::golden::short(&ma.golden.sha256),
                items.len()
            ));
        }
        let repeats = ma.repeats.min(mb.repeats);
        let mut tallies = Sides::<ModelTally>::default();
        let mut item_tallies = ItemTallies::new(items.len());
        let mut seen = TrialSet::new(items.len(), repeats);
        for (dir, side, label) in [(a, a_side, Side::Current), (b, b_side, Side::Candidate)] {
            read_results(&results_path(dir), |mut r| {
                if r.model != side || r.trial >= repeats {
                    return;
                }
                let Some(i) = items.position(&r.id) else {
                    return;
                };
                r.model = label;
                let key = TrialKey {
                    item: i,
                    side: label,
                    trial: r.trial,
                };
                if seen.insert(key) {
                    tallies[label].record(items.tags(i), &r);
                    item_tallies.record(i, &r);
                }
            })?;
        }
        let m = &ma.models[a_side];
        Ok(Pair {
            items,
            repeats,
            tallies,
            item_tallies,
            baseline_model: crate::manifest::ModelRef {
                provider: format!("{} ({} of run {})", m.provider, a_side.as_str(), ma.run_id),
                ..m.clone()
            },
            warnings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_tail_is_cut_at_the_last_newline_however_far_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.jsonl");
        let block = 64 * 1024;
        let line = |n: usize| "x".repeat(n - 1) + "\n";
        let cases: Vec<(String, usize)> = vec![
            (String::new(), 0),
            ("\n".into(), 1),
            ("{}\n".into(), 3),
            ("{}\n{\"id\"".into(), 3),
            ("no newline at all".into(), 0),
            // A last line torn past one block, and newlines either side of a block boundary.
            (line(10) + &"y".repeat(3 * block), 10),
            (line(block) + "torn", block),
            (line(block + 1) + "torn", block + 1),
            (line(block - 1) + &line(2) + "torn", block + 1),
            ("z".repeat(2 * block), 0),
        ];
        for (text, keep) in cases {
            std::fs::write(&path, &text).unwrap();
            assert_eq!(end_of_last_line(&path).unwrap(), keep as u64, "{text:.20}");
            truncate_torn_tail(&path).unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), text.as_bytes()[..keep]);
        }
    }
}
