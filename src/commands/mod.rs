//! One file per command. Each reads its arguments, drives the pipeline's stages, and ends in
//! [`conclude`] — the one way a run directory becomes `summary.json`, reports, the terminal
//! summary and an exit code, whether it was just run, re-read, diffed or merged.

mod accept;
mod canary;
mod diff;
mod golden;
mod history;
mod init;
mod merge;
mod report;
mod run;
mod shadow;
mod validate;

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::cli::{Cli, Command};
use crate::error::Exit;
use crate::golden::Items;
use crate::metrics::{ItemTally, Status};
use crate::report::{Format, ItemView, ReportInput};
use crate::summary::Summary;

/// Run one command; the returned [`Exit`] is the process exit code.
pub fn main(cli: Cli) -> anyhow::Result<Exit> {
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Validate(args) => validate::validate(&args),
        Command::Report(args) => report::report(&args),
        Command::Diff(args) => diff::diff(&args),
        Command::Merge(args) => merge::merge(&args),
        Command::Golden(cmd) => golden::golden(cmd),
        Command::Init(args) => init::init(&args),
        Command::Accept(args) => accept::accept(&args),
        Command::History(args) => history::history(&args),
        Command::Shadow(args) => shadow::shadow(args),
        Command::Canary(args) => canary::canary(&args),
    }
}

/// What [`conclude`] writes and shows.
struct Views<'a> {
    formats: &'a [Format],
    /// The terminal summary and what to do next; off for `--quiet` and for `goldgate report`.
    terminal: bool,
}

impl Views<'_> {
    /// What a run, a diff and a merge write: the contract and the three reports a person reads.
    fn of_run(quiet: bool) -> Views<'static> {
        Views {
            formats: &Format::ALL,
            terminal: !quiet,
        }
    }
}

/// What [`conclude`] did.
struct Concluded {
    exit: Exit,
    written: Vec<PathBuf>,
}

/// The end of every command that makes or re-reads a run directory: `summary.json` first (if a
/// view fails to render, the result is still on disk), then the reports, then the terminal
/// summary, and the exit code the verdict gives.
fn conclude(
    dir: &Path,
    summary: &Summary,
    items: &Items,
    item_tallies: &[ItemTally],
    views: &Views,
) -> anyhow::Result<Concluded> {
    if views.formats.contains(&Format::Json) {
        crate::rundir::write_summary(dir, summary)?;
    }
    let reports: Vec<Format> = views
        .formats
        .iter()
        .copied()
        .filter(|f| *f != Format::Json)
        .collect();
    if !reports.is_empty() || views.terminal {
        let view = ItemView::build(
            &crate::rundir::results_path(dir),
            items,
            item_tallies,
            summary.repeats,
            summary
                .statistics
                .as_ref()
                .map(|s| s.item_pass)
                .unwrap_or_default(),
        )?;
        let input = ReportInput {
            summary,
            view: &view,
        };
        crate::report::write(dir, &input, &reports)?;
        if views.terminal {
            print_terminal(dir, summary, &view)?;
        }
    }
    let written = views
        .formats
        .iter()
        .map(|f| dir.join(f.file_name()))
        .collect();
    Ok(Concluded {
        exit: exit_for_summary(summary),
        written,
    })
}

/// The summary of a run just executed, with the tallies it comes from: those the runner kept, or,
/// when `refold` (a resumed run's tallies cover only what it added; a `--until-decided` run keeps
/// fewer items), folded from the whole results file over `items`.
fn summarize(
    dir: &Path,
    manifest: &crate::manifest::Manifest,
    items: &Items,
    executed: crate::runner::RunOutput,
    refold: bool,
) -> anyhow::Result<(
    Summary,
    crate::record::Sides<crate::metrics::ModelTally>,
    crate::metrics::ItemTallies,
)> {
    let (tallies, item_tallies, incomplete) = if refold {
        let fold = crate::rundir::Fold::of(dir, items, manifest.repeats)?;
        let incomplete = executed.interrupted || !fold.is_complete(manifest.repeats);
        (fold.tallies, fold.item_tallies, incomplete)
    } else {
        (executed.tallies, executed.items, executed.interrupted)
    };
    let status = Status::of(&tallies, incomplete, manifest.max_error_rate);
    let summary = Summary::build(
        manifest,
        &tallies,
        items,
        &item_tallies,
        status,
        crate::rundir::now_rfc3339(),
    );
    Ok((summary, tallies, item_tallies))
}

/// The end of a command that built a run directory by copying stored results (`diff`, `merge`):
/// fold it as any run's, conclude, and print its path last.
fn conclude_copied(dir: &Path, quiet: bool) -> anyhow::Result<Exit> {
    let data = crate::rundir::RunData::load(dir)?;
    // No summary is recorded yet: the status is what the results show.
    let summary = data.summary(data.status(), crate::rundir::now_rfc3339());
    let concluded = conclude(
        dir,
        &summary,
        &data.items,
        &data.item_tallies,
        &Views::of_run(quiet),
    )?;
    writeln!(std::io::stdout().lock(), "{}", dir.display())?;
    Ok(concluded.exit)
}

fn print_terminal(dir: &Path, summary: &Summary, view: &ItemView) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    crate::report::terminal::print(
        &mut out,
        summary,
        view,
        crate::report::terminal::use_colour(),
    )?;
    // What a person does next when a gate failed: see whether the regressions are real.
    if summary.items.regressed > 0 && summary.diff_of.is_none() {
        writeln!(
            out,
            "re-run the {} regressed item(s): goldgate run --rerun {} --repeat 5",
            summary.items.regressed,
            dir.display()
        )?;
    }
    writeln!(out, "report: {}", dir.join("report.html").display())?;
    Ok(())
}

/// The exit code a finished run (or diff, or merge) gives.
fn exit_for_summary(summary: &Summary) -> Exit {
    match summary.status {
        Status::Interrupted => Exit::Interrupted,
        Status::Failed => Exit::RunFailed,
        Status::Complete => match summary.verdict {
            crate::gate::Verdict::Pass => Exit::Pass,
            crate::gate::Verdict::Fail => Exit::GateFailed,
            crate::gate::Verdict::Inconclusive => Exit::Inconclusive,
        },
    }
}
