//! `goldgate validate`: load and check everything an evaluation needs, without calling a model
//! — or, with `--check-reachable`, with one cheap call per model. A file with a `[canary]` table
//! also has that table and its `[[canary.gate]]` gates checked as `goldgate canary` checks them.

use std::io::Write;
use std::path::Path;

use anyhow::Context as _;

use crate::cli::ValidateArgs;
use crate::error::{self, Exit};
use crate::evaluation::{Evaluation, Overrides};
use crate::{config, golden, provider, text};

pub fn validate(args: &ValidateArgs) -> anyhow::Result<Exit> {
    let (canary_gates, canary_problems) = match check_canary(&args.config) {
        Ok(gates) => (gates, Vec::new()),
        Err(problems) => (None, problems),
    };
    // `run` would refuse a set that is not locked: validate must not say all is well.
    let loaded = Evaluation::load(&args.config, &Overrides::default())
        .and_then(|eval| eval.golden.require_locked().map(|()| eval));
    // Every problem of the file at once: the evaluation's, then those of [canary].
    let eval = match loaded {
        Ok(eval) if canary_problems.is_empty() => eval,
        Ok(_) => return Err(error::Error::Input(canary_problems).into()),
        Err(error::Error::Input(mut problems)) => {
            // A syntax or type error inside [canary] stops both readings of the file: say it once.
            let said: Vec<String> = problems.iter().map(ToString::to_string).collect();
            problems.extend(
                canary_problems
                    .into_iter()
                    .filter(|p| !said.contains(&p.to_string())),
            );
            return Err(error::Error::Input(problems).into());
        }
        Err(other) => return Err(other.into()),
    };
    let g = &eval.golden;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "ok: {} — golden set {}@{} ({} items, locked at {}), current {} ({}), candidate {} ({}), {} gate rule(s)",
        args.config.display(),
        g.meta.name,
        g.meta.version,
        g.items.len(),
        golden::short(&g.sha256),
        eval.clients.current.model,
        eval.clients.current.label,
        eval.clients.candidate.model,
        eval.clients.candidate.label,
        eval.gates.len()
    )?;
    if let Some((gates, defaults)) = canary_gates {
        writeln!(
            out,
            "  [canary]: {gates} gate rule(s){}",
            if defaults {
                " (the defaults: no [[canary.gate]])"
            } else {
                ""
            }
        )?;
    }
    if args.check_reachable {
        let problems = check_reachable(&eval, &mut out)?;
        if !problems.is_empty() {
            return Err(error::Error::Input(problems).into());
        }
    }
    Ok(Exit::Pass)
}

/// `[canary]` and its `[[canary.gate]]` gates, read and checked as `goldgate canary` reads and
/// checks them (leniently: only `[canary]` and `[statistics]`), when the file has a `[canary]`
/// table: its number of gate rules and whether they are the defaults, or its problems. `None`
/// when there is no `[canary]` table, or nothing to read: the evaluation's own reading reports a
/// file that is missing, unreadable or not TOML.
fn check_canary(path: &Path) -> Result<Option<(usize, bool)>, Vec<error::Problem>> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(None);
    };
    if !toml::from_str::<toml::Table>(&text).is_ok_and(|t| t.contains_key("canary")) {
        return Ok(None);
    }
    // Only problems of the file come back from these; anything else is still one, placed there.
    let problems = |e: error::Error| match e {
        error::Error::Input(problems) => problems,
        other => vec![error::Problem::new(
            error::Location::file(path),
            other.to_string(),
        )],
    };
    let file: config::CanaryFile = config::parse_toml(path, &text).map_err(problems)?;
    use super::canary::{check_config, gates};
    match (check_config(&file, path), gates(&file, path)) {
        (Ok(()), Ok(gates)) => Ok(Some((gates.len(), file.canary.gates.is_empty()))),
        (a, b) => Err([a.err(), b.err()]
            .into_iter()
            .flatten()
            .flat_map(problems)
            .collect()),
    }
}

/// `validate --check-reachable`: one real, minimal call per model — the first item's prompt, a
/// few output tokens, no retry — through the same client a run uses. A wrong path (404), a
/// refused key (401/403), an unknown model or an answer in another API's shape fails here, with
/// the fix, instead of failing every request of the run.
fn check_reachable(eval: &Evaluation, out: &mut dyn Write) -> anyhow::Result<Vec<error::Problem>> {
    /// Enough for any model to answer something, little enough to cost nothing.
    const PROBE_TOKENS: u32 = 8;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let item = eval.golden.items.get(0);
    let request = provider::Request {
        system: eval.config.system.clone(),
        prompt: eval.prompt.render(&item).map_err(|e| {
            anyhow::anyhow!("the prompt of item `{}` does not render: {e}", item.id)
        })?,
        question: item.question.clone(),
        context: item.context.clone(),
        trial: 0,
        chat: None,
    };
    let mut problems = Vec::new();
    for side in crate::record::Side::BOTH {
        let (cfg, client) = (&eval.providers[side], &eval.clients[side]);
        let mut probe_cfg = cfg.clone();
        probe_cfg.max_tokens = Some(cfg.max_tokens.map_or(PROBE_TOKENS, |m| m.min(PROBE_TOKENS)));
        probe_cfg.limits.retries = 0;
        let probe = provider::Client::from_config(&client.config_path, &probe_cfg)?;
        let outcome = runtime.block_on(probe.call(&request));
        let ms = outcome.latency.map_or(0.0, |d| d.as_secs_f64() * 1000.0);
        match outcome.result {
            Ok(text) => writeln!(
                out,
                "  {}: {} answered a test call in {ms:.0} ms: \"{}\"",
                client.label,
                client.model,
                text::ellipsize(&text, 60)
            )?,
            // The endpoint, the key and the model are all there; only the pace is limited.
            Err(e) if e.kind == provider::ErrorKind::RateLimited => writeln!(
                out,
                "  {}: {} is rate-limited right now (HTTP 429), so the endpoint, key and model answered; mind [limits] requests_per_minute",
                client.label, client.model
            )?,
            Err(e) => problems.push(unreachable_problem(cfg, client, &e)),
        }
    }
    Ok(problems)
}

/// Where a failed test call points in the provider file, and how to fix it.
fn unreachable_problem(
    cfg: &config::ProviderConfig,
    client: &provider::Client,
    e: &provider::CallError,
) -> error::Problem {
    use provider::ErrorKind as E;
    let key_var = cfg.api_key_env.as_deref();
    let (field, fix) = match (e.kind, e.status) {
        (_, Some(404)) => (
            "base_url",
            "the server has no such route or model: check that base_url ends where the API's routes start (e.g. http://host:8000/v1 for an OpenAI-compatible server, https://api.anthropic.com/v1, http://host:11434 for Ollama) and that `model` names a model the server serves".to_owned(),
        ),
        (_, Some(401 | 403)) => (
            "api_key_env",
            match key_var {
                Some(var) => format!("the server refused the key: check that {var} holds a valid key for this server and model"),
                None => "the server wants a key: set api_key_env = \"NAME_OF_THE_VARIABLE\" and export that variable".to_owned(),
            },
        ),
        (E::HttpStatus, Some(s)) if s < 500 => (
            "model",
            "the server rejected the request: read its message; check `model` and the parameters sent (temperature, max_tokens, seed)".to_owned(),
        ),
        (E::HttpStatus, _) => (
            "base_url",
            "the server failed: check its logs, then try again".to_owned(),
        ),
        (E::Timeout, _) => (
            "limits.timeout_s",
            format!(
                "no answer within timeout_s = {}: check the server is not overloaded, or raise [limits] timeout_s",
                cfg.limits.timeout_s
            ),
        ),
        (E::BadResponse, _) => (
            "kind",
            format!(
                "something answered, but not in the shape of the `{}` kind's API: check `kind` and base_url (an HTML page, or another API)",
                cfg.kind.as_str()
            ),
        ),
        _ => (
            "base_url",
            "check base_url and that the server is running (and reachable from here)".to_owned(),
        ),
    };
    // Not every kind says where its requests go in base_url: blame the field that does.
    let field = match field {
        "base_url" => provider::kind(cfg.kind).endpoint_field,
        f => f,
    };
    let status = e.status.map(|s| format!(" (HTTP {s})")).unwrap_or_default();
    error::Problem::new(
        error::Location::file(&client.config_path).field(field),
        format!(
            "a test call to {} {}failed{status}: {}: {}",
            client.model,
            client
                .endpoint()
                .map(|u| format!("at {u} "))
                .unwrap_or_default(),
            e.kind.as_str(),
            e.message
        ),
    )
    .fix(fix)
}
