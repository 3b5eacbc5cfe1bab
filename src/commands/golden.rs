//! `goldgate golden lock|check|stats|from-log`: the golden set's own commands.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use time::format_description::well_known::Rfc3339;

use crate::cli::{FromLogArgs, GoldenCommand};
use crate::error::{Error, Exit};
use crate::golden::{self, GoldenMeta, GoldenSet, Item, ItemProvenance};
use crate::shadow::log::{self, LoggedRequest, ReadOptions, ReadReport, Sample};
use crate::shadow::redact::Redactor;

pub fn golden(cmd: GoldenCommand) -> anyhow::Result<Exit> {
    let mut out = std::io::stdout().lock();
    match cmd {
        GoldenCommand::FromLog(args) => return from_log(&args, &mut out),
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
        GoldenCommand::Stats {
            dir,
            json,
            baseline_accuracy,
            margin,
            correlation,
            confidence,
        } => {
            let set = GoldenSet::load(&dir)?;
            let s = set.stats();
            let plan = baseline_accuracy.map(|p| {
                crate::stats::power_plan(s.items as u64, p, margin, correlation, confidence)
            });
            if json {
                let mut value = serde_json::to_value(&s)?;
                if let Some(plan) = &plan {
                    value["power"] = serde_json::to_value(plan)?;
                }
                serde_json::to_writer_pretty(&mut out, &value)?;
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
                if let Some(p) = &plan {
                    write_plan(&mut out, p)?;
                }
            }
        }
    }
    Ok(Exit::Pass)
}

/// What a paired accuracy gate on this set can decide, in plain words.
fn write_plan(out: &mut dyn Write, p: &crate::stats::PowerPlan) -> anyhow::Result<()> {
    let pct = |v: f64| format!("{:.1}%", v * 100.0);
    writeln!(
        out,
        "\npower, planned (baseline accuracy {}, per-item correlation {}, {}% confidence):",
        pct(p.baseline),
        p.correlation,
        (p.confidence * 100.0).round()
    )?;
    writeln!(
        out,
        "  the models would disagree on about {} of the items",
        pct(p.discordance)
    )?;
    writeln!(
        out,
        "  {} items detect an accuracy drop of {} points or more with 80% power",
        p.items,
        format_args!("{:.1}", p.detectable_drop * 100.0)
    )?;
    writeln!(
        out,
        "  an equally good candidate passes `min_ratio = {}` with probability {}",
        1.0 - p.margin,
        pct(p.pass_probability)
    )?;
    writeln!(
        out,
        "  {} items are needed for that probability to reach 80% (more repeats help only where the models are not deterministic)",
        p.items_for_80_percent
    )?;
    Ok(())
}

/// `golden from-log`: a new golden set from logged traffic, one item per distinct request.
///
/// An item is single-turn: `question` is the last user message, `context` the system (and
/// developer) messages joined as one passage — where a RAG service puts what it retrieved —
/// and earlier turns are dropped. The production answer is `reference`, for the person who
/// writes the item's checks; it is never scored. The id is `log-` and the first 12 hex digits of
/// the request's fingerprint as written (after redaction), so the same logs give the same ids.
fn from_log(args: &FromLogArgs, out: &mut dyn Write) -> anyhow::Result<Exit> {
    let dir = &args.out;
    refuse_existing(dir)?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| {
            Error::Usage(format!(
                "--out {}: name the new set's directory, e.g. --out goldens/traffic",
                dir.display()
            ))
        })?;
    let options = ReadOptions {
        format: args.format,
        strict: args.strict,
        dedup: true,
        since: log::instant_flag("since", args.since.as_deref())?,
        until: log::instant_flag("until", args.until.as_deref())?,
        sample: args.sample.map(|n| Sample {
            n: usize::try_from(n).unwrap_or(usize::MAX),
            seed: args.seed,
            stratify: args.stratify.clone(),
        }),
        ..ReadOptions::default()
    };
    let redactor = if args.no_redact {
        None
    } else {
        Some(Redactor::new(&[])?)
    };

    // Items are written as the requests arrive, so a log is streamed, never held.
    let created = !dir.exists();
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::Usage(format!("cannot create {}: {e}", dir.display())))?;
    let written = write_items(args, &options, redactor.as_ref(), dir);
    let (report, tally) = match written {
        Ok(Written { report, tally }) if tally.items > 0 => (report, tally),
        other => {
            remove_partial(dir, created);
            return Err(match other {
                Ok(Written { report, tally }) => nothing_usable(&args.logs, &report, &tally).into(),
                Err(e) => e,
            });
        }
    };
    let meta = GoldenMeta {
        name,
        version: 1,
        description: Some(describe(args, &report, tally.items)),
        sha256: None,
        locked_version: None,
        source: Some("production traffic (`goldgate golden from-log`)".to_owned()),
        license: None,
    };
    let toml = toml::to_string(&meta)?;
    if let Err(e) = std::fs::write(GoldenSet::meta_path(dir), toml) {
        remove_partial(dir, created);
        return Err(Error::Usage(format!("cannot write {}: {e}", dir.display())).into());
    }
    let locked = match golden::lock(dir) {
        Ok(message) => message,
        Err(e) => {
            remove_partial(dir, created);
            return Err(e.into());
        }
    };

    write_counts(out, &report, &tally)?;
    match &redactor {
        Some(r) => {
            let counts: Vec<String> = r
                .counts()
                .iter()
                .filter(|&(_, n)| n > 0)
                .map(|(kind, n)| format!("{n} {}", kind.as_str()))
                .collect();
            writeln!(
                out,
                "redacted: {}",
                if counts.is_empty() {
                    "nothing found".to_owned()
                } else {
                    counts.join(", ")
                }
            )?;
        }
        None => writeln!(
            out,
            "not redacted (--no-redact): the items hold the text as logged, personal data included"
        )?,
    }
    writeln!(out, "{locked}")?;
    writeln!(
        out,
        "next: the items have no checks yet. Read each one (`reference` is the production answer, not scored), \
         give it `keywords`, `forbidden` or `checks`, then run `goldgate golden lock {}`; \
         until then a run needs `allow_unchecked = true` under [scoring]",
        dir.display()
    )?;
    writeln!(out, "{}", dir.display())?;
    Ok(Exit::Pass)
}

/// What became of the usable requests, past the reader's own counts.
#[derive(Debug, Default)]
struct Tally {
    items: usize,
    /// Requests whose last user message has no text (only images or tool results, or none).
    without_question: usize,
}

struct Written {
    report: ReadReport,
    tally: Tally,
}

/// Read the logs and write `items.jsonl` into `dir`.
fn write_items(
    args: &FromLogArgs,
    options: &ReadOptions,
    redactor: Option<&Redactor>,
    dir: &Path,
) -> anyhow::Result<Written> {
    let path = GoldenSet::items_path(dir);
    let file = File::create(&path)
        .map_err(|e| Error::Usage(format!("cannot write {}: {e}", path.display())))?;
    let mut items = BufWriter::new(file);
    let mut tally = Tally::default();
    let mut ids = HashSet::new();
    let mut failed: Option<std::io::Error> = None;
    let report = log::read_logs(&args.logs, options, |mut request| {
        if failed.is_some() {
            return;
        }
        if let Some(r) = redactor {
            request.redact(r);
        }
        let Some(item) = item_of(&request, args.stratify.as_deref(), &mut ids) else {
            tally.without_question += 1;
            return;
        };
        let line = serde_json::to_string(&item).expect("items always serialise");
        match writeln!(items, "{line}") {
            Ok(()) => tally.items += 1,
            Err(e) => failed = Some(e),
        }
    })?;
    if let Some(e) = failed.or_else(|| items.flush().err()) {
        return Err(Error::Usage(format!("cannot write {}: {e}", path.display())).into());
    }
    Ok(Written { report, tally })
}

/// The item of one logged request, or `None` when it has no user question.
fn item_of(
    request: &LoggedRequest,
    stratify: Option<&str>,
    ids: &mut HashSet<String>,
) -> Option<Item> {
    let question = request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .map(|m| m.content.trim())
        .filter(|q| !q.is_empty())?
        .to_owned();
    let system: Vec<&str> = request
        .messages
        .iter()
        .filter(|m| m.role == "system" || m.role == "developer")
        .map(|m| m.content.trim())
        .filter(|c| !c.is_empty())
        .collect();
    let context = if system.is_empty() {
        Vec::new()
    } else {
        vec![system.join("\n\n")]
    };
    // Two requests that differ only in what redaction replaced share a fingerprint: number them.
    let base = format!("log-{:016x}", request.fingerprint());
    let base = &base[..16];
    let mut id = base.to_owned();
    let mut n = 1;
    while !ids.insert(id.clone()) {
        n += 1;
        id = format!("{base}-{n}");
    }
    let tags = stratify
        .and_then(|field| log::stratum_of(&request.metadata, field))
        .map(|t| t.trim().to_owned())
        .filter(|t| usable_tag(t))
        .into_iter()
        .collect();
    let answer = request.production.text.trim();
    Some(Item {
        id,
        question,
        keywords: Vec::new(),
        match_mode: golden::MatchMode::Any,
        forbidden: Vec::new(),
        context,
        expected: None,
        label: None,
        tags,
        group: None,
        checks: Vec::new(),
        reference: (!answer.is_empty()).then(|| answer.to_owned()),
        provenance: Some(ItemProvenance {
            file: request.source.file.display().to_string(),
            line: request.source.line as u64,
            timestamp: request.timestamp.and_then(|t| t.format(&Rfc3339).ok()),
            id: request.source.id.clone(),
        }),
    })
}

/// Whether a value can be a tag (tags are printed in terminals and reports; see golden.rs).
fn usable_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag.chars().count() <= 200
        && !tag
            .chars()
            .any(|c| c.is_control() || crate::text::is_hidden(c))
}

/// Refuse an `--out` that already holds something: a set is never written over.
fn refuse_existing(dir: &Path) -> Result<(), Error> {
    let occupied = match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_some(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(_) => dir.exists(),
    };
    if occupied {
        return Err(Error::Usage(format!(
            "--out {}: already exists and is not empty; golden sets are never overwritten\n  fix: give a new directory, e.g. --out {}-2",
            dir.display(),
            dir.display()
        )));
    }
    Ok(())
}

/// Remove what this command wrote into `dir` (and `dir`, if it made it).
fn remove_partial(dir: &Path, created: bool) {
    for path in [GoldenSet::items_path(dir), GoldenSet::meta_path(dir)] {
        let _ = std::fs::remove_file(path);
    }
    if created {
        let _ = std::fs::remove_dir(dir);
    }
}

fn describe(args: &FromLogArgs, report: &ReadReport, items: usize) -> String {
    let logs: Vec<String> = args.logs.iter().map(|p| p.display().to_string()).collect();
    let sample = match args.sample {
        Some(n) => format!(
            "a sample of {n} (seed {}{}) of the {} distinct requests",
            args.seed,
            args.stratify
                .as_deref()
                .map(|f| format!(", stratified on `{f}`"))
                .unwrap_or_default(),
            report.delivered + report.sampled_out
        ),
        None => "every distinct request".to_owned(),
    };
    format!(
        "{items} items from {sample} in {}; {}",
        logs.join(", "),
        if args.no_redact {
            "not redacted"
        } else {
            "redacted"
        }
    )
}

fn write_counts(out: &mut dyn Write, report: &ReadReport, tally: &Tally) -> anyhow::Result<()> {
    writeln!(
        out,
        "read {} lines: {} usable requests, {} malformed, {} unusable, {} duplicates, {} sampled out{}{}",
        report.lines,
        report.usable,
        report.malformed.count,
        report.unusable.count,
        report.duplicates,
        report.sampled_out,
        if report.outside_window + report.undated > 0 {
            format!(
                ", {} outside --since/--until ({} without a time)",
                report.outside_window + report.undated,
                report.undated
            )
        } else {
            String::new()
        },
        if tally.without_question > 0 {
            format!(", {} without a user question", tally.without_question)
        } else {
            String::new()
        },
    )?;
    write_findings(out, report)?;
    writeln!(out, "items: {}", tally.items)?;
    Ok(())
}

fn write_findings(out: &mut dyn Write, report: &ReadReport) -> std::io::Result<()> {
    for (what, findings) in [
        ("malformed", &report.malformed),
        ("unusable", &report.unusable),
    ] {
        for f in &findings.first {
            writeln!(out, "  {what}: {}: {}", f.at, f.why)?;
        }
        if findings.count > findings.first.len() {
            writeln!(
                out,
                "  … and {} more {what}",
                findings.count - findings.first.len()
            )?;
        }
    }
    Ok(())
}

/// The error for logs that gave no item, with what the reader found instead.
fn nothing_usable(logs: &[PathBuf], report: &ReadReport, tally: &Tally) -> Error {
    let mut text = Vec::new();
    let _ = write_counts(&mut text, report, tally);
    let names: Vec<String> = logs.iter().map(|p| p.display().to_string()).collect();
    Error::Usage(format!(
        "no usable request in {}: nothing written\n{}  fix: check the logs hold requests with their answers (--format names the format; --since/--until widen the window)",
        names.join(", "),
        String::from_utf8_lossy(&text)
    ))
}
