//! `goldgate canary`: read the canary's logs, judge them by the gates, write `decision.json` and
//! the reports into a new directory under `--out`, update the flag file, exit with the decision.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::canary::analysis::{self, Analysis, Looks, Plan};
use crate::canary::flag::{self, FlagPlan};
use crate::canary::log::{ReadOptions, Reader};
use crate::canary::state::State;
use crate::canary::tally::Tally;
use crate::cli::CanaryArgs;
use crate::config::{CanaryFile, parse_toml};
use crate::error::{Error, Exit, Location, Problem};
use crate::gate::{Gate, default_canary_gates};

pub fn canary(args: &CanaryArgs) -> anyhow::Result<Exit> {
    let config = load_config(&args.config)?;
    let settings = config.statistics;
    let c = &config.canary;
    // Every problem of the file at once: the checks of [canary] and of its gates.
    let gates = match (
        check_config(&config, &args.config),
        gates(&config, &args.config),
    ) {
        (Ok(()), Ok(gates)) => gates,
        (a, b) => {
            let mut problems = Vec::new();
            for e in [a.err(), b.err()].into_iter().flatten() {
                match e {
                    Error::Input(p) => problems.extend(p),
                    other => return Err(other.into()),
                }
            }
            return Err(Error::Input(problems).into());
        }
    };

    let flag_plan = args.flag_key.as_deref().map(|key| FlagPlan {
        key,
        current_variant: &c.flag.current,
        candidate_variant: &c.flag.candidate,
        steps: &c.steps,
    });
    if let (Some(path), Some(plan)) = (&args.flag_file, &flag_plan) {
        flag::validate(path, plan)?;
    }
    let rollout = match (&args.flag_file, &flag_plan) {
        (Some(path), Some(plan)) => Some(flag::read_rollout(path, plan)?),
        _ => None,
    };
    let candidate_percent = match (args.candidate_percent, c.candidate_percent) {
        (Some(p), _) | (None, Some(p)) => Some(check_percent(p)?),
        (None, None) => rollout
            .and_then(|r| r.share)
            .filter(|&s| s > 0 && s < 100)
            .map(f64::from),
    };

    let until_ms = instant_ms("until", args.until.as_deref())?;
    // After goldgate moved the traffic, the records served at the old split say nothing of
    // the new one's split (and their mix of arms differs): the look starts at the step, a
    // minute on, unless --since starts it later.
    let since_ms = instant_ms("since", args.since.as_deref())?;
    let step_ms = rollout
        .and_then(|r| r.changed_at_ms)
        .map(|t| t + flag::SETTLE_MS);
    let since_ms = match (since_ms, step_ms) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    let state_path = args
        .state
        .clone()
        .unwrap_or_else(|| args.out.join("canary-state.json"));
    let mut state = if args.sequential {
        Some(State::load(
            &state_path,
            &gates,
            settings.confidence,
            since_ms,
        )?)
    } else {
        None
    };

    let gate_count = gates.len().max(1) as f64;
    // Each arm's sequence at half of its gate's share of the error (Bonferroni over the gates).
    let sequence_confidence = args
        .sequential
        .then(|| 1.0 - (1.0 - settings.confidence) / gate_count / 2.0);
    let interval_ms = c.interval_seconds().unwrap_or(300) as i64 * 1000;
    let mut tally = Tally::new(interval_ms, c.price, sequence_confidence);
    let mut reader = Reader::new(ReadOptions {
        fields: &c.fields,
        variants: &c.variants,
        since_ms,
        until_ms,
        strict: args.strict,
    });
    for path in &args.logs {
        reader.read_file(path, &mut |r| tally.add(r))?;
    }
    let read = reader.report;
    if read.records == 0 && read.malformed > 0 && read.unknown_variants.is_empty() {
        return Err(Error::Input(vec![
            Problem::new(
                Location::file(&args.logs[0]),
                format!(
                    "no line of the logs is a canary record ({} skipped; first: {})",
                    read.malformed,
                    read.examples.first().map_or("", String::as_str)
                ),
            )
            .fix("check the format (JSON lines, CSV with a header, OTLP/JSON) and [canary.fields]"),
        ])
        .into());
    }
    if let Some(s) = &state {
        s.check_growth(
            &state_path,
            [tally.arms[0].requests, tally.arms[1].requests],
        )?;
    }

    let running = state.as_ref().map(|s| s.running.clone());
    let mut analysis = analysis::analyse(
        &tally,
        &read,
        &Plan {
            gates: &gates,
            settings,
            min_requests: c.min_requests,
            candidate_percent,
            sequential: running.as_deref(),
        },
    );
    analysis.since = since_ms.map(crate::canary::analysis::rfc3339);
    analysis.since_step = step_ms.is_some() && since_ms == step_ms;
    drop(tally);

    let (_, dir) = crate::rundir::create(&args.out, "-canary")?;
    if let Some(s) = &mut state {
        s.record(
            &analysis,
            crate::rundir::now_rfc3339(),
            dir.display().to_string(),
        );
        analysis.sequential = Some(Looks {
            state_file: state_path.display().to_string(),
            looks: s.looks.clone(),
        });
    }
    // The flag moves only on a trustworthy analysis: with the split broken, nothing measured
    // says which way to go.
    // A `continue` for want of data holds the flag: stepping up without evidence would take the
    // candidate to 100% on looks that judged nothing.
    let holds = analysis.decision == crate::canary::Decision::Continue && !analysis.enough_data;
    if let (Some(path), Some(plan)) = (&args.flag_file, &flag_plan)
        && analysis.trustworthy
        && !holds
    {
        let now_ms = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
        // A log wholly ahead of the clock (a replay, a test) steps at its own end; a live log
        // at the clock, whatever one skewed record says.
        let at_ms = match (read.first_ms, read.last_ms) {
            (Some(first), Some(last)) if first > now_ms => last,
            _ => now_ms,
        };
        match flag::apply(path, plan, analysis.decision, at_ms) {
            Ok(change) => analysis.flag = serde_json::to_value(&change).ok(),
            Err(e) => {
                write(&dir, &analysis)?;
                return Err(e.into());
            }
        }
    }
    write(&dir, &analysis)?;
    if let Some(s) = &state {
        s.write(&state_path)?;
    }
    if !args.quiet {
        print!("{}", crate::report::canary::terminal(&analysis));
    }
    // The directory is the last line, --quiet or not, as `run` prints it: scripts read it.
    println!("{}", dir.display());
    Ok(match analysis.exit_code {
        0 => Exit::Pass,
        1 => Exit::GateFailed,
        3 => Exit::RunFailed,
        _ => Exit::Inconclusive,
    })
}

fn write(dir: &Path, analysis: &Analysis) -> anyhow::Result<()> {
    crate::rundir::write_json(&dir.join("decision.json"), analysis)?;
    crate::report::canary::write(dir, analysis)?;
    Ok(())
}

/// `[canary]` and `[statistics]` of the evaluation file; the defaults when the default file is
/// absent (a canary needs no golden set), an error when a named one is.
fn load_config(path: &PathBuf) -> Result<CanaryFile, Error> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_toml(path, &text),
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound && path.as_os_str() == "goldgate.toml" =>
        {
            Ok(CanaryFile::default())
        }
        Err(e) => Err(Error::input(
            Location::file(path),
            format!("cannot read the configuration: {e}"),
            "check the path given to -c",
        )),
    }
}

pub(crate) fn check_config(config: &CanaryFile, path: &Path) -> Result<(), Error> {
    let c = &config.canary;
    let at = |f: &str| Location::file(path).field(format!("canary.{f}"));
    let mut problems = Vec::new();
    let steps_ok = !c.steps.is_empty()
        && c.steps.windows(2).all(|w| w[0] < w[1])
        && c.steps.iter().all(|&s| (1..=100).contains(&s));
    if !steps_ok {
        problems.push(
            Problem::new(
                at("steps"),
                format!("steps {:?} are not a rollout", c.steps),
            )
            .fix("give increasing percentages from 1 to 100, e.g. steps = [1, 5, 25, 50, 100]"),
        );
    }
    if c.interval_seconds().is_none() {
        problems.push(
            Problem::new(
                at("interval"),
                format!("`{}` is not a duration", c.interval),
            )
            .fix("write a whole number of s, m, h or d, e.g. interval = \"5m\""),
        );
    }
    if let Some(p) = c.candidate_percent
        && !(p > 0.0 && p < 100.0)
    {
        problems.push(
            Problem::new(
                at("candidate_percent"),
                format!("{p} is not a share of traffic"),
            )
            .fix("give the candidate's percent of requests, above 0 and below 100, e.g. 5"),
        );
    }
    if let Some(price) = c.price {
        for (arm, p) in [("current", price.current), ("candidate", price.candidate)] {
            if !(p.input.is_finite() && p.input >= 0.0 && p.output.is_finite() && p.output >= 0.0) {
                problems.push(
                    Problem::new(at(&format!("price.{arm}")), "a price must be a number >= 0")
                        .fix("USD per million tokens, e.g. { input = 2.5, output = 10 }"),
                );
            }
        }
    }
    for (arm, names) in [
        ("current", &c.variants.current),
        ("candidate", &c.variants.candidate),
    ] {
        if names.iter().all(|n| n.trim().is_empty()) {
            problems.push(
                Problem::new(at(&format!("variants.{arm}")), "no name for this arm")
                    .fix("list the values of the variant field that mean this arm"),
            );
        }
    }
    let lower = |v: &Vec<String>| -> BTreeSet<String> {
        v.iter().map(|s| s.trim().to_lowercase()).collect()
    };
    let both: Vec<String> = lower(&c.variants.current)
        .intersection(&lower(&c.variants.candidate))
        .cloned()
        .collect();
    if !both.is_empty() {
        problems.push(
            Problem::new(
                at("variants"),
                format!("`{}` names both arms", both.join("`, `")),
            )
            .fix("give each variant name to one arm only"),
        );
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Input(problems))
    }
}

pub(crate) fn gates(config: &CanaryFile, path: &Path) -> Result<Vec<Gate>, Error> {
    let c = &config.canary;
    if c.gates.is_empty() {
        return Ok(default_canary_gates());
    }
    // A tag's presence can only be known from the logs: a gate on a tag no record carries is
    // skipped, with that note, rather than refused here.
    let tags: Vec<String> = c
        .gates
        .iter()
        .filter_map(|g| crate::metrics::MetricRef::parse(&g.metric)?.tag)
        .collect();
    let tags: BTreeSet<&str> = tags.iter().map(String::as_str).collect();
    Gate::parse_table(&c.gates, path, &tags, "canary.gate")
}

fn check_percent(p: f64) -> Result<f64, Error> {
    if p > 0.0 && p < 100.0 {
        Ok(p)
    } else {
        Err(Error::Usage(format!(
            "--candidate-percent {p}: give the candidate's percent of requests, above 0 and below 100"
        )))
    }
}

fn instant_ms(flag: &str, text: Option<&str>) -> Result<Option<i64>, Error> {
    Ok(crate::shadow::log::instant_flag(flag, text)?
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64))
}
