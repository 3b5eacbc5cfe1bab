//! `goldgate golden lock|check|stats`: the golden set's own commands.

use std::io::Write;

use crate::cli::GoldenCommand;
use crate::error::Exit;
use crate::golden::{self, GoldenSet};

pub fn golden(cmd: GoldenCommand) -> anyhow::Result<Exit> {
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
