//! A throw-away evaluation on disk: golden set, two provider files, goldgate.toml.

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use serde_json::Value;

pub struct Project {
    pub dir: tempfile::TempDir,
}

/// One item: id, question, context, keywords.
pub fn item(id: &str, question: &str, keywords: &[&str]) -> Value {
    serde_json::json!({
        "id": id,
        "question": question,
        "context": format!("The answer to {question} is in this policy text."),
        "keywords": keywords,
        "tags": [if id.ends_with(['0', '2', '4', '6', '8']) { "even" } else { "odd" }],
    })
}

/// The evaluation file of a test project. The latency gate is absolute: sub-millisecond loopback
/// latencies are noise, and a ratio of two noises would make a test that can fail by chance.
/// The gates decide on point estimates: these projects hold a handful of items, too few for any
/// interval to decide, and the tests using them are about what a run does, not about what its
/// statistics conclude (tests/it/statistics.rs is).
pub fn eval_toml(extra: &str) -> String {
    format!(
        r#"golden = "goldens/set"
current = "providers/current.toml"
candidate = "providers/candidate.toml"
prompt = "{{{{ question }}}}"
{extra}
[[gate]]
metric = "accuracy"
min_ratio = 0.95
decide = "point"
[[gate]]
metric = "latency_p95_ms"
max = 5000
decide = "point"
[[gate]]
metric = "error_rate"
max_ratio = 1.0
decide = "point"
"#
    )
}

impl Project {
    /// A project whose two providers are `kind = "openai"` at `base_url`, models "current" and
    /// "candidate"; `limits` is TOML for the `[limits]` table of both.
    pub fn openai(base_url: &str, items: &[Value], limits: &str) -> Project {
        let p = Project {
            dir: tempfile::tempdir().unwrap(),
        };
        for side in ["current", "candidate"] {
            p.write(
                &format!("providers/{side}.toml"),
                &format!(
                    "kind = \"openai\"\nmodel = \"{side}\"\nbase_url = \"{base_url}\"\n\n[pricing]\ninput = 2.0\noutput = 8.0\n\n[limits]\n{limits}\n"
                ),
            );
        }
        p.write("goldgate.toml", &eval_toml(""));
        p.golden(items);
        p
    }

    /// A project whose two provider files `provider("current")` and `provider("candidate")` write,
    /// with `eval_extra` appended to goldgate.toml.
    pub fn with_providers(
        items: &[Value],
        eval_extra: &str,
        provider: impl Fn(&str) -> String,
    ) -> Project {
        let p = Project {
            dir: tempfile::tempdir().unwrap(),
        };
        for side in ["current", "candidate"] {
            p.write(&format!("providers/{side}.toml"), &provider(side));
        }
        p.write("goldgate.toml", &eval_toml(eval_extra));
        p.golden(items);
        p
    }

    /// `goldgate run` with these environment variables set.
    pub fn run_with_env(&self, env: &[(&str, &str)]) -> Run {
        let mut cmd = self.cmd();
        cmd.arg("run");
        for (k, v) in env {
            cmd.env(k, v);
        }
        Run::new(self.path(), cmd.output().unwrap())
    }

    pub fn write(&self, rel: &str, content: &str) {
        let path = self.dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    /// Write and lock the golden set.
    pub fn golden(&self, items: &[Value]) {
        self.write("goldens/set/golden.toml", "name = \"set\"\nversion = 1\n");
        let lines: Vec<String> = items.iter().map(Value::to_string).collect();
        self.write("goldens/set/items.jsonl", &(lines.join("\n") + "\n"));
        goldgate::golden::lock(&self.path().join("goldens/set")).unwrap();
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("goldgate").unwrap();
        c.current_dir(self.path())
            .env_remove("CI")
            .env("NO_COLOR", "1");
        c.timeout(std::time::Duration::from_secs(120));
        c
    }

    /// `goldgate validate --check-reachable` with these extra environment variables.
    pub fn check_reachable(&self, env: &[(&str, &str)]) -> Output {
        let mut cmd = self.cmd();
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.args(["validate", "--check-reachable"])
            .output()
            .unwrap()
    }

    pub fn run(&self, args: &[&str]) -> Run {
        let output = self.cmd().arg("run").args(args).output().unwrap();
        Run::new(self.path(), output)
    }
}

pub struct Run {
    pub output: Output,
    pub dir: Option<PathBuf>,
}

impl Run {
    pub fn new(base: &Path, output: Output) -> Run {
        let stdout = String::from_utf8_lossy(&output.stdout);
        let dir = stdout
            .lines()
            .last()
            .map(|l| base.join(l.trim()))
            .filter(|d| d.join("summary.json").exists() || d.join("results.jsonl").exists());
        Run { output, dir }
    }

    pub fn code(&self) -> i32 {
        self.output.status.code().unwrap_or(-1)
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    pub fn summary(&self) -> Value {
        let dir = self.dir.as_ref().unwrap_or_else(|| {
            panic!(
                "no run dir; stdout: {}\nstderr: {}",
                self.stdout(),
                self.stderr()
            )
        });
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
    }

    pub fn results(&self) -> Vec<Value> {
        let dir = self.dir.as_ref().expect("a run directory");
        std::fs::read_to_string(dir.join("results.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The result line of (id, model); panics unless there is exactly one.
    pub fn result(&self, id: &str, model: &str) -> Value {
        let matching: Vec<Value> = self
            .results()
            .into_iter()
            .filter(|r| r["id"] == id && r["model"] == model)
            .collect();
        assert_eq!(matching.len(), 1, "exactly one line for ({id}, {model})");
        matching.into_iter().next().unwrap()
    }
}

/// A test cannot run here because `what` is missing (Chromium, the local models' weights).
///
/// Under CI — `CI` set by the CI system, or `GOLDGATE_REQUIRE_ALL` set by `.ci/run` — that is a
/// failure: a check that silently did not run is worse than a red build. Elsewhere (a fresh clone
/// without Chromium) the test passes, and says so on the terminal itself, since the test harness
/// shows a passing test's stderr to nobody.
pub fn skip_or_fail(what: &str) {
    let required = ["CI", "GOLDGATE_REQUIRE_ALL"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty()));
    assert!(!required, "required under CI, and missing: {what}");
    let message = format!("\nSKIPPED (not a failure outside CI): {what}\n");
    match std::fs::OpenOptions::new().write(true).open("/dev/tty") {
        Ok(mut tty) => {
            let _ = std::io::Write::write_all(&mut tty, message.as_bytes());
        }
        Err(_) => eprint!("{message}"),
    }
}

/// What a finished goldgate process left: its exit status and what it printed.
pub trait Finished {
    fn output(&self) -> &Output;
}

impl Finished for Output {
    fn output(&self) -> &Output {
        self
    }
}

impl Finished for Run {
    fn output(&self) -> &Output {
        &self.output
    }
}

/// Assert the exit code, and when it is not the one expected, show what the process said: an
/// exit code alone never explains a failing test.
#[track_caller]
pub fn assert_exit(finished: &impl Finished, code: i32) {
    let out = finished.output();
    assert_eq!(
        out.status.code(),
        Some(code),
        "expected exit {code}\n--- stderr\n{}\n--- stdout\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
}

/// A result line's error: (kind, HTTP status, message).
pub fn error_of(r: &Value) -> (String, Option<u64>, String) {
    (
        r["error"]["kind"].as_str().unwrap_or_default().to_owned(),
        r["error"]["status"].as_u64(),
        r["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

/// The evaluation key that turns the error ceiling off, for tests whose subject is the faults
/// themselves (how each is classified, retried and counted): with many requests failing on
/// purpose, the ceiling would fail such a run before its gates are judged. The ceiling's own
/// tests (hostile.rs) keep it on.
const NO_ERROR_CEILING: &str = "max_error_rate = 1\n";

impl Project {
    /// This project with the error ceiling off (see [`NO_ERROR_CEILING`]).
    pub fn without_error_ceiling(self) -> Project {
        let path = self.path().join("goldgate.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        // A top-level key, so before any table: first in the file.
        std::fs::write(&path, format!("{NO_ERROR_CEILING}{text}")).unwrap();
        self
    }
}

/// The run directory under `reports` once its `results.jsonl` holds at least `lines` lines: where
/// a test kills a run that is still going.
pub fn run_dir_once_answered(reports: &Path, lines: usize) -> PathBuf {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let found = std::fs::read_dir(reports)
            .ok()
            .and_then(|d| d.flatten().find(|e| e.path().is_dir()))
            .map(|e| e.path());
        if let Some(d) = found
            && std::fs::read_to_string(d.join("results.jsonl")).map_or(0, |t| t.lines().count())
                >= lines
        {
            return d;
        }
        assert!(std::time::Instant::now() < deadline, "no results appeared");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}
