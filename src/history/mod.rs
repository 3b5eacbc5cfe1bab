//! Nights of an evaluation, side by side: `goldgate history` reads every run directory under the
//! output directory (whole or pruned), groups them by evaluation, and finds what a person
//! watching a nightly job wants told:
//!
//! - each gate metric's nightly series with its interval, broken by **markers** where the golden
//!   set, a model or its settings, goldgate or the scoring changed (values on the two sides of a
//!   marker measure different things);
//! - **change points** in each series between markers ([`crate::stats::changepoint`]);
//! - **tonight against the accepted baseline**, by the same paired per-item gates as a run;
//! - an item × night **grid** of the newest nights and the items that flipped most;
//! - **drift**: the same model name and settings answering differently from the night before on
//!   more items than is normal for it.
//!
//! It reads only: nothing is ever written into a run directory. A directory it cannot use is
//! listed with the reason and the rest goes on.

pub mod accepted;
pub mod prune;
mod render;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::gate::{GateResult, Verdict};
use crate::manifest::{BaselineOf, GoldenRef, Manifest};
use crate::metrics::{MetricRef, Status};
use crate::record::{Side, Sides};
use crate::stats::changepoint::{ChangePoint, Detector};
use crate::stats::{Interval, dist};
use crate::summary::{ItemDiff, Summary};

pub use render::write_all;

pub const HISTORY_SCHEMA: &str = "goldgate/history/v1";

/// Directories under the output directory that are goldgate's own, not runs.
const NOT_RUNS: &[&str] = &["history", accepted::ACCEPTED_DIR];

/// Answers changed since the night before on more items than this probability allows, under
/// the model's normal rate of change, are drift.
const DRIFT_P: f64 = 0.001;
/// Drift findings name this many of the changed items.
const DRIFT_EXAMPLES: usize = 5;
/// Items listed as the most flipped.
const MOST_FLIPPED: usize = 20;

/// `history.json`.
#[derive(Debug, Serialize)]
pub struct History {
    pub schema: &'static str,
    pub generated_at: String,
    /// Nights in the item grid and searched for flips and drift.
    pub window: usize,
    pub detector: Detector,
    pub evaluations: Vec<EvaluationHistory>,
    /// Directories that are not usable runs, with why.
    pub skipped: Vec<Skipped>,
}

#[derive(Debug, Serialize)]
pub struct Skipped {
    pub dir: PathBuf,
    pub reason: String,
}

/// One evaluation's nights.
#[derive(Debug, Serialize)]
pub struct EvaluationHistory {
    pub name: String,
    pub runs: Vec<Night>,
    pub markers: Vec<Marker>,
    pub series: Vec<Series>,
    pub accepted: Option<AcceptedRef>,
    /// The newest complete night against the accepted baseline.
    pub tonight: Option<Tonight>,
    pub grid: Grid,
    pub drift: Vec<Drift>,
}

/// One run, as the history shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Night {
    pub run_id: String,
    pub dir: PathBuf,
    pub started_at: String,
    pub status: Status,
    /// `null` for a run that never wrote its summary (a crash: `goldgate report DIR` rebuilds it).
    pub verdict: Option<Verdict>,
    pub golden: GoldenRef,
    pub models: Sides<NightModel>,
    pub goldgate_version: String,
    pub scoring: Option<String>,
    pub baseline: Option<BaselineOf>,
    /// Thinned by `history prune`: no answer text (drift is judged on the answers' hashes).
    pub pruned: bool,
    pub cost_usd: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NightModel {
    pub model: String,
    pub settings: Option<String>,
}

/// Something changed between run `index - 1` and run `index`.
#[derive(Debug, Clone, Serialize)]
pub struct Marker {
    pub index: usize,
    pub run_id: String,
    pub changes: Vec<Change>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// `golden`, `model`, `settings`, `baseline`, `goldgate`, `scoring`.
    pub what: &'static str,
    /// The side it concerns, for a model's change; `null` for both.
    pub side: Option<Side>,
    pub text: String,
}

impl Marker {
    /// Whether this marker breaks the series of `side`'s metrics.
    fn breaks(&self, side: Side) -> bool {
        self.changes
            .iter()
            .any(|c| c.side.is_none_or(|s| s == side))
    }
}

/// One metric of one model over the nights.
#[derive(Debug, Serialize)]
pub struct Series {
    pub metric: MetricRef,
    pub side: Side,
    /// One per run, in run order; `null` where the run has no value.
    pub points: Vec<Option<Point>>,
    pub change_points: Vec<SeriesChange>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Point {
    pub value: f64,
    pub interval: Option<Interval>,
    /// Left out of change detection: the run did not complete.
    pub partial: bool,
}

#[derive(Debug, Serialize)]
pub struct SeriesChange {
    /// The first run after the change.
    pub index: usize,
    pub run_id: String,
    #[serde(flatten)]
    pub change: ChangePoint,
}

#[derive(Debug, Clone, Serialize)]
pub struct AcceptedRef {
    pub run_id: String,
    pub side: Side,
    pub model: String,
    pub accepted_at: String,
    /// Whether the accepted run is among the runs read.
    pub found: bool,
}

/// The newest complete night against the accepted baseline, item by item, under its gates.
#[derive(Debug, Serialize)]
pub struct Tonight {
    pub run_id: String,
    pub baseline_run_id: String,
    pub baseline_side: Side,
    pub verdict: Verdict,
    /// A gate failed: tonight is worse than the accepted baseline.
    pub regressed: bool,
    pub gates: Vec<GateResult>,
    /// Per metric, tonight − baseline item by item, with its interval.
    pub comparisons: Vec<crate::metrics::Comparison>,
    pub items: ItemDiff,
    pub compared_items: usize,
    pub warnings: Vec<String>,
    /// The newest run, when it is not the one compared (it did not complete).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub newer_incomplete: Option<String>,
}

/// Items × the newest nights, for the candidate model: `P` passed every trial, `F` failed every
/// trial, `K` flaky (some of each), `-` missing (not in the run, or not answered).
#[derive(Debug, Default, Serialize)]
pub struct Grid {
    pub side: Option<Side>,
    pub runs: Vec<String>,
    /// Every item of the window, most flipped first; `cells` has one letter per run.
    pub items: Vec<GridRow>,
    pub most_flipped: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct GridRow {
    pub id: String,
    pub cells: String,
    /// Night-to-night changes between pass and fail (flaky counts as a change to and from).
    pub flips: usize,
}

/// The same model, asked the same way, answering differently from the night before.
#[derive(Debug, Serialize)]
pub struct Drift {
    pub run_id: String,
    pub previous_run_id: String,
    pub side: Side,
    pub model: String,
    /// Items whose answer changed, of the items both nights answered.
    pub changed: usize,
    pub compared: usize,
    pub share: f64,
    /// The share of changed answers that is normal for this model, and where that came from.
    pub normal: f64,
    pub normal_from: &'static str,
    /// How likely this many changes are at the normal rate.
    pub p: f64,
    pub examples: Vec<String>,
}

/// A run directory read for the history.
struct Run {
    dir: PathBuf,
    manifest: Manifest,
    summary: Option<Summary>,
    pruned: bool,
}

impl Run {
    fn status(&self) -> Status {
        self.summary
            .as_ref()
            .map_or(Status::Interrupted, |s| s.status)
    }
}

/// Read the runs (every directory under `out`, or `dirs`), group them, and analyse each
/// evaluation.
pub fn build(out: &Path, dirs: &[PathBuf], window: usize) -> History {
    let (by_evaluation, skipped) = gather(out, dirs);
    let detector = Detector::default();
    let evaluations = by_evaluation
        .into_iter()
        .map(|(name, runs)| analyse(out, name, &runs, window, &detector))
        .collect();
    History {
        schema: HISTORY_SCHEMA,
        generated_at: crate::rundir::now_rfc3339(),
        window,
        detector,
        evaluations,
        skipped,
    }
}

/// The runs under `out` (or `dirs`), by evaluation, each evaluation's oldest first; and the
/// directories that are not usable runs.
fn gather(out: &Path, dirs: &[PathBuf]) -> (BTreeMap<String, Vec<Run>>, Vec<Skipped>) {
    let mut skipped = Vec::new();
    let candidates: Vec<PathBuf> = if dirs.is_empty() {
        list_dirs(out, &mut skipped)
    } else {
        dirs.to_vec()
    };
    let mut by_evaluation: BTreeMap<String, Vec<Run>> = BTreeMap::new();
    for dir in candidates {
        match read_run(&dir) {
            Ok(run) => by_evaluation
                .entry(run.manifest.evaluation_name().to_owned())
                .or_default()
                .push(run),
            Err(Unused::Skipped(reason)) => skipped.push(Skipped { dir, reason }),
            // Another command's output found under `out` is passed over without a word: an
            // output directory holds every kind of run. Named on the command line, it is
            // listed with why it is not used.
            Err(Unused::Other(_)) if dirs.is_empty() => {}
            Err(Unused::Other(reason)) => skipped.push(Skipped { dir, reason }),
        }
    }
    for runs in by_evaluation.values_mut() {
        // By start; runs started in the same second by their end, then by id.
        let end = |r: &Run| r.summary.as_ref().map(|s| s.finished_at.clone());
        runs.sort_by(|a, b| {
            (&a.manifest.started_at, end(a), &a.manifest.run_id).cmp(&(
                &b.manifest.started_at,
                end(b),
                &b.manifest.run_id,
            ))
        });
    }
    (by_evaluation, skipped)
}

impl History {
    /// Whether tonight regressed against the accepted baseline in any evaluation.
    pub fn regressed(&self) -> bool {
        self.evaluations
            .iter()
            .any(|e| e.tonight.as_ref().is_some_and(|t| t.regressed))
    }
}

fn list_dirs(out: &Path, skipped: &mut Vec<Skipped>) -> Vec<PathBuf> {
    let entries = match std::fs::read_dir(out) {
        Ok(e) => e,
        Err(e) => {
            skipped.push(Skipped {
                dir: out.to_path_buf(),
                reason: format!("cannot list it: {e}"),
            });
            return Vec::new();
        }
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            !name.starts_with('.') && !NOT_RUNS.contains(&name.as_ref())
        })
        .map(|e| e.path())
        .collect();
    dirs.sort();
    dirs
}

/// Why a directory is not a night of any evaluation.
enum Unused {
    /// A run directory of the golden set (or what looks like one) that cannot be used, or a part
    /// or derivative of a night (a diff, a shard, a re-run): listed as skipped, with this reason.
    Skipped(String),
    /// Another command's output, never a night of a golden set: a canary analysis
    /// (`<id>-canary`, `decision.json`) or a shadow replay. Listed only when named.
    Other(String),
}

/// What `goldgate canary` names its analysis directories (`<id>-canary`) and writes into them.
const CANARY_SUFFIX: &str = "-canary";
const CANARY_DECISION: &str = "decision.json";

/// A run directory's manifest and summary, or why it is not a night of any evaluation.
fn read_run(dir: &Path) -> Result<Run, Unused> {
    use Unused::{Other, Skipped};
    if !crate::rundir::manifest_path(dir).exists() {
        let canary = dir.join(CANARY_DECISION).is_file()
            || dir
                .file_name()
                .is_some_and(|n| n.to_string_lossy().ends_with(CANARY_SUFFIX));
        return Err(if canary {
            Other(
                "a canary analysis of live traffic (`goldgate canary`), \
                 not a night of the golden set"
                    .to_owned(),
            )
        } else {
            Skipped("not a run directory (no run.json)".to_owned())
        });
    }
    let manifest = crate::rundir::read_manifest(dir).map_err(|e| Skipped(format!("{e:#}")))?;
    if let Some(d) = manifest.diff_of() {
        return Err(Skipped(format!(
            "a `goldgate diff` of runs {} and {}, not a night",
            d.a, d.b
        )));
    }
    if manifest.shadow.is_some() {
        return Err(Other(
            "a shadow replay of logged traffic, not a night of the golden set".to_owned(),
        ));
    }
    if let Some(shard) = manifest.shard() {
        return Err(Skipped(format!(
            "shard {shard} of a run; history reads the merged run (`goldgate merge`)"
        )));
    }
    if let Some(r) = manifest.rerun_of() {
        return Err(Skipped(format!(
            "a re-run of {} item(s) of run {}, not a night",
            r.only.as_str(),
            r.run_id
        )));
    }
    let summary = match std::fs::read(crate::rundir::summary_path(dir)) {
        Ok(bytes) => Some(serde_json::from_slice::<Summary>(&bytes).map_err(|e| {
            Skipped(format!(
                "summary.json is unreadable ({e}); `goldgate report DIR` rebuilds it"
            ))
        })?),
        // A crash before the summary: shown as an interrupted night.
        Err(_) => None,
    };
    if let Some(s) = &summary
        && s.run_id != manifest.run_id
    {
        return Err(Skipped(format!(
            "summary.json belongs to run {}, run.json to run {}",
            s.run_id, manifest.run_id
        )));
    }
    Ok(Run {
        dir: dir.to_path_buf(),
        pruned: prune::is_pruned(dir),
        manifest,
        summary,
    })
}

fn analyse(
    out: &Path,
    name: String,
    runs: &[Run],
    window: usize,
    detector: &Detector,
) -> EvaluationHistory {
    let nights: Vec<Night> = runs.iter().map(night).collect();
    let markers = markers(&nights);
    let series = series(runs, &nights, &markers, detector);
    let accepted = accepted::Accepted::read(out, &name).ok().flatten();
    let tonight = accepted
        .as_ref()
        .and_then(|a| tonight(runs, a, out).transpose())
        .and_then(|t| {
            t.map_err(|e| {
                eprintln!("warning: {name}: tonight against the accepted baseline: {e:#}")
            })
            .ok()
        });
    let accepted = accepted.map(|a| AcceptedRef {
        found: runs.iter().any(|r| r.manifest.run_id == a.run_id),
        run_id: a.run_id,
        side: a.side,
        model: a.model.model,
        accepted_at: a.accepted_at,
    });
    let first = runs.len().saturating_sub(window);
    // A night whose marker breaks a model's series (a new golden set, prompt, scoring, goldgate,
    // model or settings) changes its answers for a reason on record: not drift.
    let breaks = |night: usize, side: Side| {
        markers
            .iter()
            .any(|m| m.index == first + night && m.breaks(side))
    };
    let (grid, drift) = WindowFold::fold(&runs[first..], &breaks);
    EvaluationHistory {
        name,
        runs: nights,
        markers,
        series,
        accepted,
        tonight,
        grid,
        drift,
    }
}

fn night(run: &Run) -> Night {
    let m = &run.manifest;
    Night {
        run_id: m.run_id.clone(),
        dir: run.dir.clone(),
        started_at: m.started_at.clone(),
        status: run.status(),
        verdict: run.summary.as_ref().map(|s| s.verdict),
        golden: m.golden.clone(),
        models: m.models.as_ref().map(|r| NightModel {
            model: r.model.clone(),
            settings: r.settings.clone(),
        }),
        goldgate_version: m.goldgate_version.clone(),
        scoring: m.evaluation.as_ref().map(|e| e.scoring.clone()),
        baseline: m.baseline.clone(),
        pruned: run.pruned,
        cost_usd: run.summary.as_ref().map(|s| {
            s.models
                .values()
                .iter()
                .map(|m| m.metrics.cost_usd)
                .sum::<f64>()
        }),
    }
}

/// What changed between consecutive nights.
fn markers(nights: &[Night]) -> Vec<Marker> {
    let mut markers = Vec::new();
    for (i, pair) in nights.windows(2).enumerate() {
        let (a, b) = (&pair[0], &pair[1]);
        let mut changes = Vec::new();
        if a.golden.sha256 != b.golden.sha256 {
            changes.push(Change {
                what: "golden",
                side: None,
                text: format!(
                    "golden set {}@{} ({}) -> {}@{} ({})",
                    a.golden.name,
                    a.golden.version,
                    crate::golden::short(&a.golden.sha256),
                    b.golden.name,
                    b.golden.version,
                    crate::golden::short(&b.golden.sha256)
                ),
            });
        }
        for side in Side::BOTH {
            let (x, y) = (&a.models[side], &b.models[side]);
            if x.model != y.model {
                changes.push(Change {
                    what: "model",
                    side: Some(side),
                    text: format!("{} model {} -> {}", side.as_str(), x.model, y.model),
                });
            } else if let (Some(s), Some(t)) = (&x.settings, &y.settings)
                && s != t
            {
                changes.push(Change {
                    what: "settings",
                    side: Some(side),
                    text: format!("{} provider settings changed ({})", side.as_str(), x.model),
                });
            }
        }
        let base = |n: &Night| n.baseline.as_ref().map(|b| (b.run_id.clone(), b.side));
        if base(a) != base(b) {
            changes.push(Change {
                what: "baseline",
                side: Some(Side::Current),
                text: match &b.baseline {
                    Some(bl) => format!(
                        "current = stored answers of run {} ({})",
                        bl.run_id,
                        bl.side.as_str()
                    ),
                    None => "current model called again (no --baseline)".to_owned(),
                },
            });
        }
        if a.goldgate_version != b.goldgate_version {
            changes.push(Change {
                what: "goldgate",
                side: None,
                text: format!("goldgate {} -> {}", a.goldgate_version, b.goldgate_version),
            });
        }
        if let (Some(s), Some(t)) = (&a.scoring, &b.scoring)
            && s != t
        {
            changes.push(Change {
                what: "scoring",
                side: None,
                text: "prompt or scoring changed".to_owned(),
            });
        }
        if !changes.is_empty() {
            markers.push(Marker {
                index: i + 1,
                run_id: b.run_id.clone(),
                changes,
            });
        }
    }
    markers
}

/// Every gate metric of the evaluation's runs (the newest run's gates first), on both sides.
fn series(runs: &[Run], nights: &[Night], markers: &[Marker], detector: &Detector) -> Vec<Series> {
    let mut metrics: Vec<MetricRef> = Vec::new();
    for run in runs.iter().rev() {
        for g in &run.manifest.gates {
            if !metrics.contains(&g.metric) {
                metrics.push(g.metric.clone());
            }
        }
    }
    let mut out = Vec::new();
    for metric in &metrics {
        for side in Side::BOTH {
            let points: Vec<Option<Point>> = runs
                .iter()
                .map(|run| {
                    let s = run.summary.as_ref()?;
                    let m = &s.models[side].metrics;
                    Some(Point {
                        value: metric.value(m).filter(|v| v.is_finite())?,
                        interval: m.interval(metric),
                        partial: s.status != Status::Complete,
                    })
                })
                .collect();
            if points.iter().all(Option::is_none) {
                continue;
            }
            let change_points = change_points(&points, markers, side, detector)
                .into_iter()
                .map(|c| SeriesChange {
                    index: c.index,
                    run_id: nights[c.index].run_id.clone(),
                    change: c,
                })
                .collect();
            out.push(Series {
                metric: metric.clone(),
                side,
                points,
                change_points,
            });
        }
    }
    out
}

/// Change points of one series, searched between the markers that break it, over its complete
/// nights only (an interrupted night is not a drop); indices are runs'.
fn change_points(
    points: &[Option<Point>],
    markers: &[Marker],
    side: Side,
    detector: &Detector,
) -> Vec<ChangePoint> {
    let mut cuts: Vec<usize> = markers
        .iter()
        .filter(|m| m.breaks(side))
        .map(|m| m.index)
        .collect();
    cuts.push(points.len());
    let mut found = Vec::new();
    let mut start = 0;
    for end in cuts {
        let (runs, values): (Vec<usize>, Vec<f64>) = (start..end)
            .filter_map(|i| points[i].filter(|p| !p.partial).map(|p| (i, p.value)))
            .unzip();
        for mut c in detector.detect(&values) {
            c.index = runs[c.index];
            found.push(c);
        }
        start = end;
    }
    found
}

/// The newest complete run against the accepted baseline: its own gates when it ran with that
/// baseline (`run --baseline accepted`), otherwise the two runs paired item by item as `diff`
/// pairs them. `None` when tonight is the accepted run itself, or there is no complete run.
fn tonight(
    runs: &[Run],
    accepted: &accepted::Accepted,
    out: &Path,
) -> anyhow::Result<Option<Tonight>> {
    let newest = runs.last().map(|r| &r.manifest.run_id);
    let Some(run) = runs.iter().rev().find(|r| r.status() == Status::Complete) else {
        return Ok(None);
    };
    if run.manifest.run_id == accepted.run_id {
        return Ok(None);
    }
    let newer_incomplete = newest.filter(|id| **id != run.manifest.run_id).cloned();
    let summary = run.summary.as_ref().expect("a complete run has a summary");
    let same_baseline = run
        .manifest
        .baseline
        .as_ref()
        .is_some_and(|b| b.run_id == accepted.run_id && b.side == accepted.side);
    let summary = if same_baseline {
        summary.clone()
    } else {
        let base_dir = runs
            .iter()
            .find(|r| r.manifest.run_id == accepted.run_id)
            .map_or_else(|| accepted.dir(out), |r| r.dir.clone());
        let pair = crate::rundir::Pair::load(&base_dir, accepted.side, &run.dir, Side::Candidate)?;
        let mut manifest = run.manifest.clone();
        manifest.models.current = pair.baseline_model.clone();
        manifest.repeats = pair.repeats;
        manifest.warnings.extend(pair.warnings.iter().cloned());
        Summary::build(
            &manifest,
            &pair.tallies,
            &pair.items,
            &pair.item_tallies,
            Status::Complete,
            summary.finished_at.clone(),
        )
    };
    // The items the comparison holds (a `--until-decided` night: those it used).
    let compared_items = summary.golden.items;
    Ok(Some(Tonight {
        run_id: run.manifest.run_id.clone(),
        baseline_run_id: accepted.run_id.clone(),
        baseline_side: accepted.side,
        verdict: summary.verdict,
        regressed: summary.verdict == Verdict::Fail,
        gates: summary.gates,
        comparisons: summary.comparisons,
        items: summary.items,
        compared_items,
        warnings: summary.warnings,
        newer_incomplete,
    }))
}

/// One item on one model in one run: trials passed and run, and its answers' hashes.
#[derive(Default, Clone, Copy)]
struct ItemAnswers {
    passed: u32,
    done: u32,
    /// Trial 0's answer, hashed; 0 when it has none.
    first: u64,
    /// Some answered trials' answers differ.
    varies: bool,
    /// An answered trial's hash, to compare later trials with.
    seen: Option<u64>,
}

impl ItemAnswers {
    /// The grid's letter: passed every trial, failed every trial, some of each, or not all run.
    fn cell(&self, repeats: u32) -> u8 {
        if self.done < repeats {
            b'-'
        } else if self.passed == self.done {
            b'P'
        } else if self.passed == 0 {
            b'F'
        } else {
            b'K'
        }
    }
}

/// The part of a result line the grid and drift need.
#[derive(serde::Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    id: std::borrow::Cow<'a, str>,
    model: Side,
    trial: u32,
    ok: bool,
    pass: bool,
    #[serde(borrow, default)]
    answer: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    answer_hash: Option<std::borrow::Cow<'a, str>>,
}

/// The newest nights read one at a time, oldest first, and folded into the item grid and the
/// drift findings as they come: only the night before is kept whole, so memory grows with the
/// items (a letter per item and night, two nights' hashes), not with the window.
struct WindowFold<'a> {
    runs: &'a [Run],
    /// Item id → row.
    rows: HashMap<String, usize>,
    ids: Vec<String>,
    /// Per row, one letter per night of the window.
    cells: Vec<Vec<u8>>,
    /// The night before, by row, and whether it had answers (or their hashes).
    previous: Option<(Vec<Sides<ItemAnswers>>, bool)>,
    normal: Sides<NormalChange>,
    drift: Vec<Drift>,
}

impl<'a> WindowFold<'a> {
    fn fold(runs: &'a [Run], breaks: &dyn Fn(usize, Side) -> bool) -> (Grid, Vec<Drift>) {
        let mut w = WindowFold {
            runs,
            rows: HashMap::new(),
            ids: Vec::new(),
            cells: Vec::new(),
            previous: None,
            normal: Sides::default(),
            drift: Vec::new(),
        };
        for night in 0..runs.len() {
            let tonight = w.read(night);
            for (row, cells) in w.cells.iter_mut().enumerate() {
                cells[night] = tonight.as_ref().map_or(b'-', |(t, _)| {
                    t.get(row)
                        .map_or(b'-', |a| a.candidate.cell(runs[night].manifest.repeats))
                });
            }
            if night > 0 {
                for side in Side::BOTH {
                    if breaks(night, side) {
                        w.normal[side] = NormalChange::default();
                    } else {
                        w.judge_drift(night, side, tonight.as_ref());
                    }
                }
            }
            w.previous = tonight;
        }
        let drift = std::mem::take(&mut w.drift);
        (w.grid(), drift)
    }

    /// One night's answers by row (new items get rows); `None` if its results cannot be read.
    fn read(&mut self, night: usize) -> Option<(Vec<Sides<ItemAnswers>>, bool)> {
        let run = &self.runs[night];
        let repeats = run.manifest.repeats;
        let mut by_row: Vec<Sides<ItemAnswers>> = vec![Sides::default(); self.ids.len()];
        let mut has_text = false;
        let path = crate::rundir::results_path(&run.dir);
        let window = self.runs.len();
        let read = crate::record::read_lines(&path, |line| {
            let l: Line = serde_json::from_slice(line)?;
            if l.trial >= repeats {
                return Ok(());
            }
            let row = match self.rows.get(l.id.as_ref()) {
                Some(&row) => row,
                None => {
                    let row = self.ids.len();
                    self.rows.insert(l.id.to_string(), row);
                    self.ids.push(l.id.into_owned());
                    self.cells.push(vec![b'-'; window]);
                    row
                }
            };
            if row >= by_row.len() {
                by_row.resize(row + 1, Sides::default());
            }
            let a = &mut by_row[row][l.model];
            a.done += 1;
            a.passed += u32::from(l.pass);
            let hash = match (&l.answer, &l.answer_hash) {
                (Some(text), _) => Some(crate::record::answer_hash(text)),
                // A pruned run keeps the answer's hash.
                (None, Some(h)) => u64::from_str_radix(h, 16).ok(),
                (None, None) => None,
            };
            if l.ok
                && let Some(h) = hash
            {
                has_text = true;
                if l.trial == 0 {
                    a.first = h;
                }
                match a.seen {
                    Some(s) if s != h => a.varies = true,
                    _ => a.seen = Some(h),
                }
            }
            Ok(())
        });
        read.ok().map(|_| (by_row, has_text))
    }

    /// Whether `side` drifted between the night before and `night`: same model name and provider
    /// settings, and more answers changed than is normal for it (see [`NormalChange`]).
    fn judge_drift(
        &mut self,
        night: usize,
        side: Side,
        tonight: Option<&(Vec<Sides<ItemAnswers>>, bool)>,
    ) {
        let (a, b) = (&self.runs[night - 1], &self.runs[night]);
        let (ma, mb) = (&a.manifest.models[side], &b.manifest.models[side]);
        // A stored baseline's answers are copies, never the model answering again.
        let asked_again = !(side == Side::Current
            && (a.manifest.baseline.is_some() || b.manifest.baseline.is_some()));
        let same = ma.model == mb.model && ma.settings.is_some() && ma.settings == mb.settings;
        if !same || !asked_again {
            self.normal[side] = NormalChange::default();
            return;
        }
        let (Some((before, true)), Some((after, true))) = (self.previous.as_ref(), tonight) else {
            return;
        };
        let mut compared = 0usize;
        let mut changed: Vec<&str> = Vec::new();
        let (mut varying, mut repeated) = (0usize, 0usize);
        for (row, now) in after.iter().enumerate() {
            let now = now[side];
            if b.manifest.repeats > 1 && now.seen.is_some() {
                repeated += 1;
                varying += usize::from(now.varies);
            }
            let Some(then) = before.get(row).map(|s| s[side]) else {
                continue;
            };
            if then.first == 0 || now.first == 0 {
                continue;
            }
            compared += 1;
            if then.first != now.first {
                changed.push(&self.ids[row]);
            }
        }
        if compared == 0 {
            return;
        }
        let within = (b.manifest.repeats > 1).then_some((varying, repeated));
        let Some(verdict) = self.normal[side].judge(changed.len(), compared, within) else {
            return;
        };
        changed.sort_unstable();
        self.drift.push(Drift {
            run_id: b.manifest.run_id.clone(),
            previous_run_id: a.manifest.run_id.clone(),
            side,
            model: mb.model.clone(),
            changed: changed.len(),
            compared,
            share: changed.len() as f64 / compared as f64,
            normal: verdict.normal,
            normal_from: verdict.from,
            p: verdict.p,
            examples: changed
                .iter()
                .take(DRIFT_EXAMPLES)
                .map(|s| (*s).to_owned())
                .collect(),
        });
    }

    /// The grid: every item of the window, the most flipped first.
    fn grid(self) -> Grid {
        let mut rows: Vec<GridRow> = self
            .ids
            .into_iter()
            .zip(self.cells)
            .map(|(id, cells)| {
                let known: Vec<u8> = cells.iter().copied().filter(|&c| c != b'-').collect();
                let flips = known
                    .windows(2)
                    .filter(|w| w[0] != w[1] || w[0] == b'K')
                    .count();
                GridRow {
                    id,
                    cells: String::from_utf8(cells).expect("grid letters are ASCII"),
                    flips,
                }
            })
            .collect();
        rows.sort_by(|a, b| b.flips.cmp(&a.flips).then_with(|| a.id.cmp(&b.id)));
        let most_flipped = rows
            .iter()
            .take_while(|r| r.flips > 0)
            .take(MOST_FLIPPED)
            .map(|r| r.id.clone())
            .collect();
        Grid {
            side: Some(Side::Candidate),
            runs: self
                .runs
                .iter()
                .map(|r| r.manifest.run_id.clone())
                .collect(),
            items: rows,
            most_flipped,
        }
    }
}

/// What is normal night-to-night change for one model, learned from its own nights.
#[derive(Debug, Default)]
struct NormalChange {
    /// (changed, compared) of the newest earlier nights that were not drift.
    nights: std::collections::VecDeque<(usize, usize)>,
}

/// Earlier nights "normal" is learned from: a month, so a slow shift in a provider's
/// nondeterminism becomes normal, not drift.
const NORMAL_NIGHTS: usize = 30;

/// A night judged to be drift.
#[derive(Debug, Clone, Copy)]
struct DriftVerdict {
    normal: f64,
    from: &'static str,
    p: f64,
}

impl NormalChange {
    /// Whether `changed` of `compared` answers changing is drift, against the night's own
    /// repeats (`within`: items whose trials disagreed, of items with several trials) or, without
    /// them, this model's earlier nights (three at least; before that nothing says what is normal
    /// for it, and a model that rewords 15% of its answers every night would be called drifting
    /// for ever). Against observed
    /// counts the test is the conditional one for two rates (Przyborowski & Wilenski 1940): under
    /// "the same rate", tonight's share of all the changes seen is binomial with tonight's share
    /// of the answers compared, so the uncertainty of "normal" counts too — tested against a
    /// point estimate of a few nights, steady change was called drift 1.5 nights in 100.
    /// A night that is not drift becomes part of normal.
    fn judge(
        &mut self,
        changed: usize,
        compared: usize,
        within: Option<(usize, usize)>,
    ) -> Option<DriftVerdict> {
        let observed = match within {
            Some((varying, repeated)) if repeated > 0 => {
                Some((varying, repeated, "repeats within the night"))
            }
            _ if self.nights.len() >= 3 => {
                let (x, n) = self
                    .nights
                    .iter()
                    .fold((0, 0), |(x, n), &(c, m)| (x + c, n + m));
                Some((x, n, "the earlier nights"))
            }
            _ => None,
        };
        let (normal, from, p) = match observed {
            Some((x0, n0, from)) => {
                let total = (changed + x0) as u64;
                let share = compared as f64 / (compared + n0) as f64;
                let p = if changed == 0 {
                    1.0
                } else {
                    1.0 - dist::binomial_cdf(changed as u64 - 1, total, share)
                };
                (x0 as f64 / n0 as f64, from, p)
            }
            // No repeats and too few nights to know what is normal for this model: learn.
            None => (0.0, "", 1.0),
        };
        if p < DRIFT_P {
            // A drifted night is not what "normal" is measured on.
            return Some(DriftVerdict { normal, from, p });
        }
        if self.nights.len() == NORMAL_NIGHTS {
            self.nights.pop_front();
        }
        self.nights.push_back((changed, compared));
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nights of one model whose answers change at a steady rate `q` (no drift): how many nights
    /// `judge` calls drift, per 100 nights. Seeded.
    fn false_drift_per_100(q: f64, items: usize, nights: usize, series: usize, seed: u64) -> f64 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut flagged = 0;
        for _ in 0..series {
            let mut normal = NormalChange::default();
            for _ in 0..nights {
                let changed = (0..items).filter(|_| rng.f64() < q).count();
                flagged += usize::from(normal.judge(changed, items, None).is_some());
            }
        }
        100.0 * flagged as f64 / (series * nights) as f64
    }

    #[test]
    fn steady_change_is_not_drift() {
        // A year of nights at each rate of change a greedy provider shows (0: deterministic).
        for (q, items, bound) in [
            (0.0, 200, 0.0),
            (0.02, 200, 0.3),
            (0.05, 200, 0.3),
            (0.15, 80, 0.3),
            (0.3, 1000, 0.3),
        ] {
            let rate = false_drift_per_100(q, items, 365, 20, 7);
            println!("steady change {q} on {items} items: {rate:.3} false drift nights per 100");
            assert!(rate <= bound, "q {q}, {items} items: {rate} per 100 nights");
        }
    }

    #[test]
    fn a_swap_is_drift_and_the_test_can_fail() {
        let mut rng = fastrand::Rng::with_seed(3);
        let mut normal = NormalChange::default();
        for _ in 0..20 {
            let changed = (0..200).filter(|_| rng.f64() < 0.04).count();
            assert!(normal.judge(changed, 200, None).is_none());
        }
        // A silent swap rewords a third of the answers.
        assert!(normal.judge(66, 200, None).is_some());
        // Repeats that disagree on half the items make the same change normal.
        assert!(normal.judge(66, 200, Some((100, 200))).is_none());

        // The witness: calling drift whenever more answers changed than last night, by a
        // z-test on the difference, flags steady change constantly.
        let mut rng = fastrand::Rng::with_seed(7);
        let (mut last, mut flagged) = (None::<usize>, 0);
        for _ in 0..365 {
            let changed = (0..200).filter(|_| rng.f64() < 0.05).count();
            if let Some(l) = last {
                let (p1, p0) = (changed as f64 / 200.0, l as f64 / 200.0);
                let se = ((p1 * (1.0 - p1) + p0 * (1.0 - p0)) / 200.0).sqrt();
                flagged += usize::from(se > 0.0 && (p1 - p0) / se > 1.645);
            }
            last = Some(changed);
        }
        let naive = 100.0 * flagged as f64 / 365.0;
        println!("witness, night over night z-test: {naive:.1} false drift nights per 100");
        assert!(naive > 3.0, "{naive}");
    }
}
