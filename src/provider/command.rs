//! `kind = "command"`: a local program, run once per request. The request goes to its stdin as
//! JSON; the answer comes from its stdout, as plain text or as a JSON object with token counts.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::{CallError, Completion, ErrorKind, Provider, Request, Usage};
use crate::config::{CommandOutput, ProviderConfig};
use crate::error::{Error, Location, Problem};

/// An answer longer than this is not an answer.
const MAX_STDOUT_BYTES: usize = 16 << 20;
/// How much of stderr is kept (its end: where a traceback says what went wrong).
const STDERR_TAIL_BYTES: usize = 16 << 10;
/// How much of it goes into an error message.
const STDERR_MESSAGE_CHARS: usize = 500;

/// What a program gets of goldgate's own environment besides what its file names: enough to find
/// programs and libraries, a home, a locale and a temporary directory (and what Windows needs to
/// start a process at all), none of which holds a key. Every `LC_*` variable is passed too.
pub const INHERITED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TMPDIR",
    "SYSTEMROOT",
    "SYSTEMDRIVE",
    "WINDIR",
    "COMSPEC",
    "PATHEXT",
    "TEMP",
    "TMP",
    "USERPROFILE",
    "APPDATA",
    "LOCALAPPDATA",
];

pub struct CommandProvider {
    /// The resolved program and the display name it was given as.
    program: PathBuf,
    name: String,
    args: Vec<String>,
    /// The whole environment of the program: [`INHERITED_ENV`] as goldgate found it, then
    /// `[command.env]`.
    env: Vec<(OsString, OsString)>,
    dir: PathBuf,
    output: CommandOutput,
    timeout: Duration,
    model: String,
    temperature: Option<f64>,
    max_tokens: Option<u32>,
    seed: Option<u64>,
}

/// What the program reads on stdin.
#[derive(Serialize)]
struct CommandRequest<'a> {
    model: &'a str,
    prompt: &'a str,
    system: Option<&'a str>,
    question: &'a str,
    /// The item's context passages joined by blank lines, as the prompt shows them.
    context: String,
    contexts: &'a [String],
    temperature: Option<f64>,
    max_tokens: Option<u32>,
    seed: Option<u64>,
}

/// What the program prints with `output = "json"`.
#[derive(Deserialize)]
struct CommandAnswer {
    answer: String,
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
}

/// The checks of `kind = "command"`: a program in `argv`, valid variable names in `env`, and no
/// `base_url` or `api_key_env`, which a local program has no use for.
pub(super) fn check(path: &Path, cfg: &ProviderConfig) -> Vec<Problem> {
    let at = |field: &str| Location::file(path).field(field);
    let mut problems = super::kinds::unused_endpoint_keys(
        path,
        cfg,
        "remove base_url",
        "remove api_key_env and pass the key in [command.env] as KEY = \"${MY_KEY}\": the program gets only the variables its file names",
    );
    let Some(c) = &cfg.command else {
        problems.push(
            Problem::new(at("command"), "kind = \"command\" needs a [command] table")
                .fix("add [command] with argv = [\"python3\", \"model.py\"]"),
        );
        return problems;
    };
    if c.argv.first().is_none_or(|p| p.trim().is_empty()) {
        problems.push(
            Problem::new(at("command.argv"), "names no program")
                .fix("argv = [\"python3\", \"model.py\"]: the program, then its arguments"),
        );
    }
    for name in c.env.keys() {
        if name.is_empty() || name.contains(['=', '\0']) {
            problems.push(
                Problem::new(
                    at(&format!("command.env.{name}")),
                    "is not a valid environment variable name",
                )
                .fix("use letters, digits and underscores"),
            );
        }
    }
    problems
}

/// The adapter of a `kind = "command"` file; keys reach the program only through `[command.env]`.
pub(super) fn build(
    path: &Path,
    cfg: &ProviderConfig,
    _key: Option<SecretString>,
    timeout: Duration,
) -> Result<Arc<dyn Provider>, Error> {
    Ok(Arc::new(CommandProvider::new(path, cfg, timeout)?))
}

impl CommandProvider {
    /// Resolve the program now, so a typo'd or missing program is a configuration error before
    /// anything runs rather than one failed request per item.
    pub fn new(
        path: &Path,
        cfg: &ProviderConfig,
        timeout: Duration,
    ) -> Result<CommandProvider, Error> {
        let at = |field: &str| Location::file(path).field(field);
        let Some(opts) = &cfg.command else {
            return Err(Error::input(
                at("command"),
                "kind = \"command\" needs a [command] table",
                "add [command] with argv = [\"python3\", \"model.py\"]",
            ));
        };
        let Some((name, args)) = opts.argv.split_first() else {
            return Err(Error::input(
                at("command.argv"),
                "names no program",
                "argv = [\"python3\", \"model.py\"]",
            ));
        };
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
        let dir = std::fs::canonicalize(parent.unwrap_or(Path::new("."))).map_err(|e| {
            Error::input(
                at("command"),
                format!("cannot use the provider file's directory as the working directory: {e}"),
                "check that the directory exists",
            )
        })?;
        let program = resolve_program(name, &dir)
            .map_err(|(message, fix)| Error::input(at("command.argv"), message, fix))?;
        let mut env = inherited_env(std::env::vars_os());
        for (var, template) in &opts.env {
            let field = format!("command.env.{var}");
            let (value, used) = super::env::substitute(template, |v| std::env::var(v).ok())
                .map_err(|missing| super::env::unset_error(at(&field), &missing, ""))?;
            for secret in &used {
                let what = "a value read from the environment through ${…}";
                super::secrets::register(secret, at(&field), what);
            }
            env.push((var.into(), value.into()));
        }
        Ok(CommandProvider {
            program,
            name: name.clone(),
            args: args.to_vec(),
            env,
            dir,
            output: opts.output,
            timeout,
            model: cfg.model.clone(),
            temperature: cfg.temperature,
            max_tokens: cfg.max_tokens,
            seed: cfg.seed,
        })
    }

    async fn attempt(&self, request: &Request) -> Result<Completion, CallError> {
        let input = serde_json::to_vec(&CommandRequest {
            model: &self.model,
            prompt: &request.prompt,
            system: request.system.as_deref(),
            question: &request.question,
            context: request.context.join("\n\n"),
            contexts: &request.context,
            temperature: self.temperature,
            max_tokens: self.max_tokens,
            seed: self.seed,
        })
        .map_err(|e| CallError::new(ErrorKind::BadResponse, e.to_string()))?;
        let mut child = tokio::process::Command::new(&self.program)
            .args(&self.args)
            // Not goldgate's environment, where every other provider's key is.
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // A timed-out or abandoned attempt must not leave the program running.
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                CallError::new(
                    ErrorKind::Connect,
                    format!("cannot start `{}`: {e}", self.name),
                )
            })?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let exchange = async {
            let write = async move {
                if let Some(mut stdin) = stdin {
                    // A program that answers without reading all of stdin closes the pipe: fine.
                    let _ = stdin.write_all(&input).await;
                    let _ = stdin.shutdown().await;
                }
                Ok::<(), CallError>(())
            };
            let (_, out, err) = tokio::try_join!(write, read_stdout(stdout), async {
                Ok(read_tail(stderr).await)
            })?;
            let status = child.wait().await.map_err(|e| {
                CallError::new(
                    ErrorKind::Connect,
                    format!("lost `{}` while waiting for it: {e}", self.name),
                )
            })?;
            Ok::<_, CallError>((status, out, err))
        };
        let (status, stdout, stderr) = match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result?,
            Err(_) => {
                // Dropping the exchange released the child; kill it and reap it now.
                let _ = child.kill().await;
                return Err(CallError::new(
                    ErrorKind::Timeout,
                    format!(
                        "`{}` did not finish within {:.1}s and was killed",
                        self.name,
                        self.timeout.as_secs_f64()
                    ),
                ));
            }
        };
        if !status.success() {
            // A program that fails fails again: not retried.
            return Err(CallError::new(
                ErrorKind::BadResponse,
                format!(
                    "`{}` failed ({status}); stderr: {}",
                    self.name,
                    stderr_excerpt(&stderr)
                ),
            ));
        }
        let text = String::from_utf8(stdout).map_err(|_| {
            CallError::new(
                ErrorKind::BadResponse,
                format!("`{}` printed something that is not UTF-8", self.name),
            )
        })?;
        match self.output {
            CommandOutput::Text => Ok(Completion::text(text.trim_end().to_owned(), None)),
            CommandOutput::Json => {
                let answer: CommandAnswer = serde_json::from_str(&text).map_err(|e| {
                    CallError::new(
                        ErrorKind::BadResponse,
                        format!(
                            "`{}` did not print a JSON object {{\"answer\": \"…\", \"input_tokens\": n, \"output_tokens\": n}} ({e}); stdout: {}",
                            self.name,
                            crate::provider::http::snippet(text.as_bytes())
                        ),
                    )
                })?;
                let usage = match (answer.input_tokens, answer.output_tokens) {
                    (Some(input), Some(output)) => Some(Usage { input, output }),
                    _ => None,
                };
                Ok(Completion::text(answer.answer, usage))
            }
        }
    }
}

impl Provider for CommandProvider {
    fn complete<'a>(
        &'a self,
        request: &'a Request,
    ) -> BoxFuture<'a, Result<Completion, CallError>> {
        Box::pin(self.attempt(request))
    }
}

/// The variables of `environment` that every program gets: [`INHERITED_ENV`] and `LC_*`.
fn inherited_env(
    environment: impl Iterator<Item = (OsString, OsString)>,
) -> Vec<(OsString, OsString)> {
    environment
        .filter(|(name, _)| {
            name.to_str().is_some_and(|name| {
                // Windows spells them as it likes (`Path`, `SystemRoot`): its names ignore case.
                let name = if cfg!(windows) {
                    name.to_ascii_uppercase()
                } else {
                    name.to_owned()
                };
                INHERITED_ENV.contains(&name.as_str()) || name.starts_with("LC_")
            })
        })
        .collect()
}

/// A program named with a path is found relative to the provider file's directory; a bare name
/// is looked up in `PATH`, as a shell would.
fn resolve_program(name: &str, dir: &Path) -> Result<PathBuf, (String, String)> {
    let as_path = Path::new(name);
    if as_path.components().count() > 1 || as_path.is_absolute() {
        let full = dir.join(as_path);
        if !full.is_file() {
            return Err((
                format!(
                    "the program `{name}` does not exist (looked at {})",
                    full.display()
                ),
                "a program path is relative to the provider file; or name a program on PATH"
                    .to_owned(),
            ));
        }
        if !is_executable(&full) {
            return Err((
                format!("`{name}` is not executable"),
                format!(
                    "chmod +x it, or run it through its interpreter: argv = [\"python3\", \"{name}\"]"
                ),
            ));
        }
        return Ok(full);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file() && is_executable(p))
        .ok_or_else(|| {
            (
                format!("the program `{name}` was not found on PATH"),
                format!("install {name}, or give its path (relative to the provider file)"),
            )
        })
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

async fn read_stdout(stdout: Option<impl AsyncRead + Unpin>) -> Result<Vec<u8>, CallError> {
    let mut out = Vec::new();
    if let Some(stdout) = stdout {
        // One byte more than allowed tells an over-long answer from one exactly at the limit.
        let mut limited = stdout.take(MAX_STDOUT_BYTES as u64 + 1);
        limited.read_to_end(&mut out).await.map_err(|e| {
            CallError::new(
                ErrorKind::Connect,
                format!("cannot read the program's output: {e}"),
            )
        })?;
    }
    if out.len() > MAX_STDOUT_BYTES {
        return Err(CallError::new(
            ErrorKind::BadResponse,
            format!(
                "the program's output exceeds {} MiB",
                MAX_STDOUT_BYTES >> 20
            ),
        ));
    }
    Ok(out)
}

/// Read stderr to its end (a program blocked on a full pipe never exits), keeping its tail.
async fn read_tail(stderr: Option<impl AsyncRead + Unpin>) -> Vec<u8> {
    let mut tail = Vec::new();
    let Some(mut stderr) = stderr else {
        return tail;
    };
    let mut buf = [0u8; 8192];
    while let Ok(n) = stderr.read(&mut buf).await {
        if n == 0 {
            break;
        }
        tail.extend_from_slice(&buf[..n]);
        if tail.len() > 2 * STDERR_TAIL_BYTES {
            tail.drain(..tail.len() - STDERR_TAIL_BYTES);
        }
    }
    tail
}

/// The end of stderr, one line, at most ~500 characters.
fn stderr_excerpt(stderr: &[u8]) -> String {
    let excerpt =
        crate::text::ellipsize_start(&String::from_utf8_lossy(stderr), STDERR_MESSAGE_CHARS);
    if excerpt.is_empty() {
        return "(empty)".to_owned();
    }
    excerpt
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_keeps_its_end() {
        assert_eq!(stderr_excerpt(b""), "(empty)");
        assert_eq!(stderr_excerpt(b"Traceback:\n  boom\n"), "Traceback: boom");
        let long = format!("{}ValueError: the real cause", "x".repeat(2000));
        let e = stderr_excerpt(long.as_bytes());
        assert!(e.starts_with('…') && e.ends_with("the real cause"), "{e}");
        assert_eq!(e.chars().count(), STDERR_MESSAGE_CHARS + 1);
    }

    #[test]
    fn a_program_inherits_only_the_minimal_environment() {
        let parent = [
            ("PATH", "/usr/bin"),
            ("HOME", "/home/u"),
            ("LC_ALL", "C.UTF-8"),
            ("LANG", "en_US.UTF-8"),
            ("OPENAI_API_KEY", "sk-parent"),
            ("AWS_SECRET_ACCESS_KEY", "aws"),
            ("GOLDGATE_CACHE", "1"),
            ("PATHOLOGY", "x"),
        ]
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        let names: Vec<_> = inherited_env(parent.into_iter())
            .into_iter()
            .map(|(k, _)| k.into_string().unwrap())
            .collect();
        assert_eq!(names, ["PATH", "HOME", "LC_ALL", "LANG"]);
    }

    #[test]
    fn programs_resolve_on_path_or_beside_the_file() {
        let d = tempfile::tempdir().unwrap();
        assert!(resolve_program("sh", d.path()).is_ok());
        let (message, _) = resolve_program("no-such-program-gg", d.path()).unwrap_err();
        assert!(message.contains("not found on PATH"), "{message}");
        let (message, _) = resolve_program("./model.py", d.path()).unwrap_err();
        assert!(message.contains("does not exist"), "{message}");
        std::fs::write(d.path().join("model.py"), "print('x')").unwrap();
        let (message, fix) = resolve_program("./model.py", d.path()).unwrap_err();
        assert!(message.contains("not executable"), "{message}");
        assert!(fix.contains("python3"), "{fix}");
    }
}
