//! Writes a simulated canary log with a known truth (`goldgate::canary::simulate`), for the
//! `goldgate canary` benchmark, and reports the generation rate on stderr.
//!
//!     cargo run --release --example canary_log -- --records 10000000 --out /tmp/canary.jsonl
//!
//! Flags: `--records N` (required), `--out FILE` (required; `-` = stdout),
//! `--scenario none|latency|csat|errors|srm` (default none), `--seed S` (default 1),
//! `--users U` (sticky users with a moderate per-user effect, 0.5; default 0 = no user ids),
//! `--share F` (candidate share, default 0.5), `--format jsonl|csv` (default jsonl), `--gzip`.
//!
//! The scenarios: `latency` = candidate 1.2x slower, `csat` = candidate CSAT 0.2 lower,
//! `errors` = candidate error rate 3 % against 1 %, `srm` = 5 % of the candidate's records lost.

use std::fs::File;
use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Instant;

use flate2::Compression;
use flate2::write::GzEncoder;
use goldgate::canary::simulate::Scenario;

struct Args {
    records: u64,
    out: String,
    scenario: String,
    seed: u64,
    users: u64,
    share: f64,
    csv: bool,
    gzip: bool,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        records: 0,
        out: String::new(),
        scenario: "none".to_owned(),
        seed: 1,
        users: 0,
        share: 0.5,
        csv: false,
        gzip: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--gzip" {
            args.gzip = true;
            continue;
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = |what: &str| format!("{flag} {value}: not {what}");
        match flag.as_str() {
            "--records" => args.records = value.parse().map_err(|_| number("a count"))?,
            "--out" => args.out = value,
            "--scenario" => args.scenario = value,
            "--seed" => args.seed = value.parse().map_err(|_| number("an integer"))?,
            "--users" => args.users = value.parse().map_err(|_| number("a count"))?,
            "--share" => args.share = value.parse().map_err(|_| number("a number"))?,
            "--format" => {
                args.csv = match value.as_str() {
                    "jsonl" => false,
                    "csv" => true,
                    _ => return Err(format!("--format {value}: use jsonl or csv")),
                }
            }
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if args.records == 0 || args.out.is_empty() {
        return Err("--records N and --out FILE are required".to_owned());
    }
    Ok(args)
}

fn scenario(args: &Args) -> Result<Scenario, String> {
    let base = Scenario::no_effect(args.records, args.seed)
        .split(args.share)
        .per_user(args.users, if args.users > 0 { 0.5 } else { 0.0 });
    let s = match args.scenario.as_str() {
        "none" => base,
        "latency" => base.latency_shift(1.2),
        "csat" => base.csat_drop(0.2),
        "errors" => base.error_spike(0.03),
        "srm" => base.srm(0.05),
        other => {
            return Err(format!(
                "--scenario {other}: use none, latency, csat, errors or srm"
            ));
        }
    };
    s.validate()?;
    Ok(s)
}

fn write(s: &Scenario, args: &Args, out: Box<dyn Write>) -> io::Result<u64> {
    // The writers buffer in 64 KiB chunks themselves; no BufWriter needed.
    let log = |w: &mut dyn Write| {
        if args.csv {
            s.write_csv(w)
        } else {
            s.write_jsonl(w)
        }
    };
    if args.gzip {
        let mut gz = GzEncoder::new(out, Compression::fast());
        let written = log(&mut gz)?;
        // finish, not drop: drop would swallow the error of the last write.
        gz.finish()?.flush()?;
        Ok(written)
    } else {
        let mut out = out;
        log(&mut out)
    }
}

fn main() -> ExitCode {
    let run = || -> Result<(), String> {
        let args = parse()?;
        let s = scenario(&args)?;
        let out: Box<dyn Write> = if args.out == "-" {
            Box::new(io::stdout().lock())
        } else {
            Box::new(File::create(&args.out).map_err(|e| format!("{}: {e}", args.out))?)
        };
        let started = Instant::now();
        let written = write(&s, &args, out).map_err(|e| format!("{}: {e}", args.out))?;
        let seconds = started.elapsed().as_secs_f64();
        eprintln!(
            "{written} records ({} scenario) in {seconds:.2} s: {:.2} M records/s",
            args.scenario,
            written as f64 / seconds / 1e6
        );
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
