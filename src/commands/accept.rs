//! `goldgate accept RUN_DIR`: make a run its evaluation's accepted baseline.

use std::io::Write;
use std::path::Path;

use crate::cli::AcceptArgs;
use crate::error::{Error, Exit};
use crate::history::accepted::{ACCEPTED_SCHEMA, Accepted};
use crate::metrics::Status;
use crate::rundir::RunData;

pub fn accept(args: &AcceptArgs) -> anyhow::Result<Exit> {
    let run = RunData::load(&args.run_dir)?;
    let m = &run.manifest;
    let refuse = |why: String| -> anyhow::Result<Exit> { Err(Error::Usage(why).into()) };
    if m.diff_of().is_some() {
        return refuse(format!(
            "{} is a `goldgate diff`, not a run: accept one of the runs it compares",
            args.run_dir.display()
        ));
    }
    if let Some(shard) = m.shard() {
        return refuse(format!(
            "{} is shard {shard} of a run: `goldgate merge` the shards and accept the merged run",
            args.run_dir.display()
        ));
    }
    if m.rerun_of().is_some() {
        return refuse(format!(
            "{} re-ran only some items of run {}: accept a run of the whole golden set",
            args.run_dir.display(),
            m.rerun_of().map_or("", |r| r.run_id.as_str())
        ));
    }
    let status = run.status();
    if status != Status::Complete {
        return refuse(format!(
            "{} is {} (not every answer is there): finish it with `goldgate run --resume {}`, then accept it",
            args.run_dir.display(),
            status.as_str(),
            args.run_dir.display()
        ));
    }
    let out = args.run_dir.parent().unwrap_or(Path::new("."));
    let run_dir = args
        .run_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| m.run_id.clone());
    let accepted = Accepted {
        schema: ACCEPTED_SCHEMA.to_owned(),
        evaluation: m.evaluation_name().to_owned(),
        run_id: m.run_id.clone(),
        run_dir,
        side: args.side,
        model: m.models[args.side].clone(),
        golden: m.golden.clone(),
        accepted_at: crate::rundir::now_rfc3339(),
    };
    let previous = Accepted::read(out, &accepted.evaluation).ok().flatten();
    let path = accepted.write(out)?;
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "accepted: {} of run {} ({}) is the baseline of evaluation {:?}{}",
        args.side.as_str(),
        m.run_id,
        crate::text::printable(&m.models[args.side].model),
        accepted.evaluation,
        previous.map_or(String::new(), |p| format!(" (was run {})", p.run_id))
    )?;
    writeln!(stdout, "{}", path.display())?;
    Ok(Exit::Pass)
}
