//! `goldgate history`: every night of every evaluation under the output directory, written as
//! `history/index.html`, `history.json` and `history.csv`; the exit code says whether tonight
//! regressed against the accepted baseline. `goldgate history prune` thins old runs.

use std::io::Write;

use crate::cli::{HistoryArgs, HistoryCommand};
use crate::error::Exit;
use crate::history;

pub fn history(args: &HistoryArgs) -> anyhow::Result<Exit> {
    if let Some(HistoryCommand::Prune { keep_full, out }) = &args.command {
        return prune(out, *keep_full);
    }
    if !args.run_dirs.is_empty() || args.out.is_dir() {
        // Given run directories are read as they are; --out is where history/ goes.
    } else {
        return Err(crate::error::Error::Usage(format!(
            "{} is not a directory: pass --out with the directory the runs are in",
            args.out.display()
        ))
        .into());
    }
    let h = history::build(&args.out, &args.run_dirs, args.window as usize);
    let index = history::write_all(&h, &args.out)?;
    let mut stdout = std::io::stdout().lock();
    if !args.quiet {
        print_summary(&h, &mut stdout)?;
    }
    writeln!(stdout, "{}", index.display())?;
    Ok(if h.regressed() {
        Exit::GateFailed
    } else {
        Exit::Pass
    })
}

fn print_summary(h: &history::History, out: &mut dyn Write) -> anyhow::Result<()> {
    use crate::text::printable;
    for s in &h.skipped {
        writeln!(
            out,
            "skipped {}: {}",
            printable(&s.dir.display().to_string()),
            s.reason
        )?;
    }
    for e in &h.evaluations {
        let incomplete = e
            .runs
            .iter()
            .filter(|r| r.status != crate::metrics::Status::Complete)
            .count();
        writeln!(
            out,
            "{}: {} night(s){}, {} marker(s)",
            printable(&e.name),
            e.runs.len(),
            if incomplete > 0 {
                format!(" ({incomplete} did not complete)")
            } else {
                String::new()
            },
            e.markers.len()
        )?;
        for s in &e.series {
            for c in &s.change_points {
                writeln!(
                    out,
                    "  change point  {} {}: {} -> {} from night {} (run {}), p {}",
                    s.metric,
                    s.side.as_str(),
                    s.metric.kind.format(c.change.before),
                    s.metric.kind.format(c.change.after),
                    c.index + 1,
                    c.run_id,
                    crate::report::format_p(c.change.p)
                )?;
            }
        }
        for d in &e.drift {
            writeln!(
                out,
                "  drift         {} {}: {} of {} answers changed since run {} (normal {:.1}%, {}), night of run {}",
                d.side.as_str(),
                printable(&d.model),
                d.changed,
                d.compared,
                d.previous_run_id,
                d.normal * 100.0,
                d.normal_from,
                d.run_id
            )?;
        }
        match (&e.tonight, &e.accepted) {
            (Some(t), _) => {
                writeln!(
                    out,
                    "  tonight       run {} vs accepted run {}: {} ({} regressed, {} improved of {} items)",
                    t.run_id,
                    t.baseline_run_id,
                    if t.regressed {
                        "REGRESSED"
                    } else {
                        match t.verdict {
                            crate::gate::Verdict::Pass => "no regression",
                            _ => "inconclusive",
                        }
                    },
                    t.items.regressed,
                    t.items.improved,
                    t.compared_items
                )?;
                for g in t
                    .gates
                    .iter()
                    .filter(|g| g.outcome != crate::gate::Outcome::Pass)
                {
                    writeln!(
                        out,
                        "                {} {}: {}",
                        g.metric,
                        g.rule,
                        g.outcome.as_str().to_uppercase()
                    )?;
                }
            }
            (None, Some(a)) => writeln!(
                out,
                "  tonight       the accepted baseline is run {}; no newer complete run",
                a.run_id
            )?,
            (None, None) => writeln!(
                out,
                "  tonight       no accepted baseline (`goldgate accept RUN_DIR`)"
            )?,
        }
    }
    Ok(())
}

fn prune(out: &std::path::Path, keep_full: usize) -> anyhow::Result<Exit> {
    let report = history::prune::prune(out, keep_full)?;
    let mut stdout = std::io::stdout().lock();
    let (before, after) = report.pruned.iter().fold((0u64, 0u64), |(b, a), (_, p)| {
        (b + p.bytes_before, a + p.bytes_after)
    });
    for (dir, why) in &report.left {
        writeln!(stdout, "left whole {}: {why}", dir.display())?;
    }
    writeln!(
        stdout,
        "pruned {} run(s) ({:.1} MB -> {:.1} MB); {} kept whole, {} pruned before",
        report.pruned.len(),
        before as f64 / 1e6,
        after as f64 / 1e6,
        report.kept_whole,
        report.already_pruned
    )?;
    Ok(Exit::Pass)
}
