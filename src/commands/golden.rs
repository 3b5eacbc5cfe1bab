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
