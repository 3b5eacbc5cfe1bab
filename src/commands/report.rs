//! `goldgate report RUN_DIR`: re-render the reports of a run directory from its files — also
//! after a crash or an interrupt, which is why it folds the results again.

use std::io::Write;

use super::{Views, conclude};
use crate::cli::ReportArgs;
use crate::error::Exit;
use crate::rundir::{self, RunData};

pub fn report(args: &ReportArgs) -> anyhow::Result<Exit> {
    let data = RunData::load(&args.run_dir)?;
    if data.read.torn_tail {
        eprintln!(
            "note: the last line of results.jsonl was cut off (the run was killed mid-write); it is ignored"
        );
    }
    let finished_at = data
        .recorded
        .as_ref()
        .map_or_else(rundir::now_rfc3339, |r| r.finished_at.clone());
    let summary = data.summary(data.status(), finished_at);
    let views = Views {
        formats: &args.format,
        terminal: false,
    };
    // Re-rendering is not a verdict: the exit code says only that the reports were written.
    let concluded = conclude(
        &args.run_dir,
        &summary,
        &data.items,
        &data.item_tallies,
        &views,
    )?;
    let mut out = std::io::stdout().lock();
    for path in concluded.written {
        writeln!(out, "{}", path.display())?;
    }
    Ok(Exit::Pass)
}
