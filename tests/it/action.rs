//! The GitHub Action (action.yml) as a runner executes it: each step's script from
//! scripts/action/, started with the very `run:` line and `env:` mapping action.yml gives it (read
//! from the file, so the test follows any change to it), with the runner's files (GITHUB_OUTPUT per
//! step, one GITHUB_STEP_SUMMARY) in a temp dir, and the goldgate built for these tests on PATH,
//! against a loopback model server. Also: docs/ci.md shows every file of docs/examples/ verbatim.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use crate::server::{MockServer, Reply};
use crate::support::{Project, item};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// One composite step of action.yml: its id, its `run:` line and its `env:` (name, expression).
struct StepDef {
    id: Option<String>,
    run: String,
    env: Vec<(String, String)>,
}

/// What the test needs of action.yml, read with a few lines of parsing: the file's layout is
/// fixed (two-space indents, one key per line), and check_action.py lints its structure in CI.
struct ActionYml {
    defaults: HashMap<String, String>,
    steps: Vec<StepDef>,
}

impl ActionYml {
    fn load() -> ActionYml {
        let text = std::fs::read_to_string(repo().join("action.yml")).unwrap();
        let indent = |l: &str| l.len() - l.trim_start().len();
        let unquote = |v: &str| v.trim().trim_matches('\'').trim_matches('"').to_owned();

        let mut defaults = HashMap::new();
        let mut input = None;
        let mut in_inputs = false;
        for line in text.lines() {
            if !line.starts_with(' ') && !line.trim().is_empty() {
                in_inputs = line == "inputs:";
                continue;
            }
            if !in_inputs || line.trim().is_empty() {
                continue;
            }
            if indent(line) == 2 {
                input = Some(line.trim().trim_end_matches(':').to_owned());
            } else if let (4, Some(v), Some(name)) =
                (indent(line), line.trim().strip_prefix("default:"), &input)
            {
                defaults.insert(name.clone(), unquote(v));
            }
        }

        let body = text.split("\n  steps:\n").nth(1).expect("runs.steps");
        let mut steps = Vec::new();
        for block in body.split("\n    - ").skip(1) {
            let mut step = StepDef {
                id: None,
                run: String::new(),
                env: Vec::new(),
            };
            let mut in_env = false;
            for line in block.lines() {
                let t = line.trim();
                if indent(line) == 6 || !line.starts_with(' ') {
                    in_env = t == "env:";
                    if let Some(v) = t.strip_prefix("id:") {
                        step.id = Some(v.trim().to_owned());
                    } else if let Some(v) = t.strip_prefix("run:") {
                        step.run = v.trim().to_owned();
                    }
                } else if in_env && indent(line) == 8 {
                    let (k, v) = t.split_once(':').expect("NAME: value");
                    step.env.push((k.to_owned(), v.trim().to_owned()));
                }
            }
            steps.push(step);
        }
        ActionYml { defaults, steps }
    }

    /// The step whose `run:` starts scripts/action/`script`.
    fn step(&self, script: &str) -> &StepDef {
        let wanted = format!("bash -eo pipefail \"$GITHUB_ACTION_PATH/scripts/action/{script}\"");
        self.steps
            .iter()
            .find(|s| s.run == wanted)
            .unwrap_or_else(|| panic!("no step of action.yml runs `{wanted}`"))
    }
}

/// The state of one job: the `with:` inputs, each step's outputs so far, the summary.
struct Job {
    action: ActionYml,
    tmp: tempfile::TempDir,
    workspace: PathBuf,
    with: HashMap<String, String>,
    outputs: HashMap<String, HashMap<String, String>>,
    env: Vec<(String, String)>,
    path: OsString,
    steps_run: usize,
}

/// What one step did.
struct StepRun {
    output: Output,
    outputs: HashMap<String, String>,
}

impl StepRun {
    fn code(&self) -> i32 {
        self.output.status.code().unwrap_or(-1)
    }
    fn log(&self) -> String {
        format!(
            "stdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&self.output.stdout),
            String::from_utf8_lossy(&self.output.stderr)
        )
    }
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
}

impl Job {
    /// A job whose workspace is `workspace`, with `with` as the `uses:` step's inputs and the
    /// goldgate under test first on PATH.
    fn new(workspace: &Path, with: &[(&str, &str)]) -> Job {
        let bin = assert_cmd::cargo::cargo_bin("goldgate");
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("bin")).unwrap();
        let path = std::env::join_paths(
            [tmp.path().join("bin"), bin.parent().unwrap().to_path_buf()]
                .into_iter()
                .chain(std::env::split_paths(
                    &std::env::var_os("PATH").unwrap_or_default(),
                )),
        )
        .unwrap();
        Job {
            action: ActionYml::load(),
            tmp,
            workspace: workspace.to_path_buf(),
            with: with
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            outputs: HashMap::new(),
            env: Vec::new(),
            path,
            steps_run: 0,
        }
    }

    fn summary_path(&self) -> PathBuf {
        self.tmp.path().join("step_summary.md")
    }

    fn summary(&self) -> String {
        std::fs::read_to_string(self.summary_path()).unwrap_or_default()
    }

    /// An executable in a directory first on PATH (a stand-in for `gh`).
    fn fake_bin(&self, name: &str, script: &str) {
        let path = self.tmp.path().join("bin").join(name);
        std::fs::write(&path, script).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }

    /// The value of one `env:` expression of action.yml.
    fn eval(&self, expr: &str) -> String {
        let inner = expr
            .strip_prefix("${{")
            .and_then(|e| e.strip_suffix("}}"))
            .map(str::trim)
            .unwrap_or_else(|| panic!("not an expression: {expr}"));
        if let Some(name) = inner.strip_prefix("inputs.") {
            return self
                .with
                .get(name)
                .or_else(|| self.action.defaults.get(name))
                .unwrap_or_else(|| panic!("action.yml has no input {name}"))
                .clone();
        }
        if let Some(rest) = inner.strip_prefix("steps.") {
            let (id, output) = rest.split_once(".outputs.").expect("steps.ID.outputs.NAME");
            return self
                .outputs
                .get(id)
                .and_then(|o| o.get(output))
                .cloned()
                .unwrap_or_default();
        }
        panic!("the test cannot evaluate {expr}")
    }

    /// Run the step of action.yml that starts `script`, as the runner does.
    fn step(&mut self, script: &str) -> StepRun {
        self.steps_run += 1;
        let def = self.action.step(script);
        let github_output = self.tmp.path().join(format!("output-{}", self.steps_run));
        std::fs::write(&github_output, "").unwrap();
        let mut cmd = std::process::Command::new("bash");
        cmd.args(["-eo", "pipefail"])
            .arg(repo().join("scripts/action").join(script))
            .current_dir(&self.workspace);
        // Hermetic: nothing of the machine's own CI or goldgate settings leaks in.
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if ["INPUT_", "GITHUB_", "RUNNER_", "GOLDGATE_", "GH_"]
                .iter()
                .any(|p| k.starts_with(p))
            {
                cmd.env_remove(k);
            }
        }
        for (k, expr) in &def.env {
            cmd.env(k, self.eval(expr));
        }
        cmd.env("GITHUB_ACTION_PATH", repo())
            .env("GITHUB_WORKSPACE", &self.workspace)
            .env("GITHUB_OUTPUT", &github_output)
            .env("GITHUB_STEP_SUMMARY", self.summary_path())
            .env("PATH", &self.path)
            .env("NO_COLOR", "1");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let output = assert_cmd::Command::from_std(cmd)
            .timeout(Duration::from_secs(60))
            .output()
            .unwrap();
        let outputs: HashMap<String, String> = std::fs::read_to_string(&github_output)
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        if let Some(id) = &def.id {
            self.outputs.insert(id.clone(), outputs.clone());
        }
        StepRun { output, outputs }
    }

    /// validate, gate, conclude: the steps of action.yml that run goldgate, in its order.
    fn gate(&mut self) -> (StepRun, StepRun) {
        let validate = self.step("validate.sh");
        assert_eq!(
            validate.code(),
            0,
            "validate never fails its step: {}",
            validate.log()
        );
        let gate = self.step("gate.sh");
        let conclude = self.step("conclude.sh");
        (gate, conclude)
    }
}

fn items(n: usize) -> Vec<serde_json::Value> {
    (0..n)
        .map(|i| item(&format!("i{i}"), &format!("q{i}"), &["30 days"]))
        .collect()
}

/// The gate step itself succeeded and its outputs describe a run directory holding a report whose
/// content is in the step summary. Returns the report.
fn assert_reported(job: &Job, gate: &StepRun, code: &str, verdict: &str) -> String {
    assert_eq!(gate.code(), 0, "the gate step never fails: {}", gate.log());
    assert_eq!(gate.outputs["exit-code"], code, "{}", gate.log());
    assert_eq!(gate.outputs["verdict"], verdict);
    let run_dir = PathBuf::from(&gate.outputs["run-dir"]);
    assert!(run_dir.is_absolute(), "{}", run_dir.display());
    assert!(
        run_dir.join("summary.json").is_file(),
        "{}",
        run_dir.display()
    );
    assert!(run_dir.starts_with(job.workspace.join("reports")));
    assert_eq!(
        PathBuf::from(&gate.outputs["report-md"]),
        run_dir.join("report.md")
    );
    let report = std::fs::read_to_string(run_dir.join("report.md")).unwrap();
    assert!(report.len() > 100, "{report}");
    assert!(
        job.summary().contains(&report),
        "the step summary holds report.md"
    );
    // goldgate's own output is in the step's log.
    assert!(
        gate.stdout().contains("accuracy"),
        "goldgate's terminal summary is in the log: {}",
        gate.log()
    );
    report
}

#[test]
fn passing_gate_reports_and_concludes_0() {
    let server = MockServer::start(|_| Reply::answer("It is 30 days."));
    let project = Project::openai(&server.base_url(), &items(4), "");
    let mut job = Job::new(project.path(), &[]);
    let (gate, conclude) = job.gate();
    assert_reported(&job, &gate, "0", "pass");
    assert_eq!(conclude.code(), 0, "{}", conclude.log());
    assert!(
        conclude.stdout().contains("goldgate: every gate passed"),
        "{}",
        conclude.log()
    );
    assert!(!conclude.stdout().contains("::error"));
}

#[test]
fn failing_gate_still_reports_then_concludes_1() {
    // The candidate loses every item: the accuracy gate fails.
    let server = MockServer::start(|seen| {
        Reply::answer(if seen.model == "candidate" {
            "I do not know."
        } else {
            "It is 30 days."
        })
    });
    let project = Project::openai(&server.base_url(), &items(5), "");
    // `args` is split on whitespace, newlines included: three items, not five.
    let mut job = Job::new(project.path(), &[("args", "--limit 3\n  --repeat 1")]);
    let (gate, conclude) = job.gate();
    let report = assert_reported(&job, &gate, "1", "fail");
    assert!(report.contains("FAIL"), "{report}");
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(PathBuf::from(&gate.outputs["run-dir"]).join("summary.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(summary["golden"]["items"], 3, "--limit 3 from `args`");
    assert_eq!(conclude.code(), 1, "{}", conclude.log());
    assert!(
        conclude
            .stdout()
            .contains("::error title=goldgate::goldgate run exited 1: a promotion gate failed"),
        "{}",
        conclude.log()
    );
}

#[test]
fn missing_config_concludes_2_with_its_meaning() {
    let server = MockServer::start(|_| Reply::answer("It is 30 days."));
    let project = Project::openai(&server.base_url(), &items(2), "");
    // validate 'true': validate refuses it and nothing runs; 'false': `goldgate run` refuses it;
    // a working-directory that does not exist is refused before either.
    for with in [
        [("config", "missing.toml"), ("validate", "true")],
        [("config", "missing.toml"), ("validate", "false")],
        [("working-directory", "no/such/dir"), ("validate", "true")],
    ] {
        let mut job = Job::new(project.path(), &with);
        let (gate, conclude) = job.gate();
        assert_eq!(gate.code(), 0, "{}", gate.log());
        assert_eq!(gate.outputs["exit-code"], "2", "{}", gate.log());
        for empty in ["verdict", "run-dir", "report-md"] {
            assert_eq!(gate.outputs[empty], "", "{empty}");
        }
        let summary = job.summary();
        assert!(
            summary.contains("`goldgate` exited 2: bad configuration or input: nothing was run"),
            "{summary}"
        );
        assert_eq!(conclude.code(), 2, "{}", conclude.log());
        assert!(
            conclude.stdout().contains(
                "::error title=goldgate::goldgate run exited 2: bad configuration or input: nothing was run"
            ),
            "{}",
            conclude.log()
        );
    }
    assert!(server.seen().is_empty(), "no model was called");
    assert!(!project.path().join("reports").exists());
}

#[test]
fn merged_shards_are_gated_like_a_run() {
    let server = MockServer::start(|_| Reply::answer("It is 30 days."));
    let project = Project::openai(&server.base_url(), &items(6), "");
    for shard in ["1/2", "2/2"] {
        let args = format!("--shard {shard}");
        let mut job = Job::new(project.path(), &[("args", &args), ("out", "shards")]);
        let (gate, conclude) = job.gate();
        assert_eq!(gate.outputs["exit-code"], "0", "{}", gate.log());
        assert_eq!(conclude.code(), 0);
    }
    let mut job = Job::new(project.path(), &[("merge", "shards")]);
    let (gate, conclude) = job.gate();
    assert_reported(&job, &gate, "0", "pass");
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(PathBuf::from(&gate.outputs["run-dir"]).join("summary.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(summary["golden"]["items"], 6, "both shards merged");
    assert_eq!(conclude.code(), 0, "{}", conclude.log());
}

/// A stand-in for `gh api`: logs each call, answers the comment listing from a JSON file through
/// the call's own --jq filter (with jq), keeps the body a write would send; fails when told to.
const FAKE_GH: &str = r#"#!/usr/bin/env bash
set -euo pipefail
echo "$*" >>"$FAKE_GH_DIR/calls"
[ ! -e "$FAKE_GH_DIR/fail" ] || { echo "HTTP 403: Resource not accessible by integration" >&2; exit 1; }
filter="" input=""
while [ $# -gt 0 ]; do
  case "$1" in
    --jq) filter=$2; shift ;;
    --input) input=$2; shift ;;
  esac
  shift
done
if [ -n "$filter" ]; then jq -r "$filter" "$FAKE_GH_DIR/comments.json"; fi
if [ -n "$input" ]; then cp "$input" "$FAKE_GH_DIR/body.json"; fi
"#;

#[test]
fn one_sticky_pull_request_comment_is_created_then_updated() {
    let workspace = tempfile::tempdir().unwrap();
    let mut job = Job::new(workspace.path(), &[("comment", "true")]);
    let gh = job.tmp.path().join("gh");
    std::fs::create_dir(&gh).unwrap();
    job.fake_bin("gh", FAKE_GH);
    let report = job.tmp.path().join("report.md");
    std::fs::write(&report, "## goldgate: PASS\n\n| Gate | Result |\n").unwrap();
    let event = job.tmp.path().join("event.json");
    std::fs::write(&event, r#"{"pull_request": {"number": 17}}"#).unwrap();
    // The gate step's outputs, as the comment step reads them.
    job.outputs.insert(
        "gate".to_owned(),
        HashMap::from([
            ("exit-code".to_owned(), "0".to_owned()),
            ("report-md".to_owned(), report.display().to_string()),
        ]),
    );
    job.with
        .insert("github-token".to_owned(), "token-for-test".to_owned());
    job.env = vec![
        ("FAKE_GH_DIR".to_owned(), gh.display().to_string()),
        ("GITHUB_EVENT_NAME".to_owned(), "pull_request".to_owned()),
        ("GITHUB_EVENT_PATH".to_owned(), event.display().to_string()),
        ("GITHUB_REPOSITORY".to_owned(), "acme/models".to_owned()),
        ("GITHUB_RUN_ID".to_owned(), "99".to_owned()),
    ];
    let calls = || std::fs::read_to_string(gh.join("calls")).unwrap_or_default();
    let body = || -> String {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(gh.join("body.json")).unwrap()).unwrap();
        v["body"].as_str().unwrap().to_owned()
    };

    // No comment of ours yet (someone else's comment does not count): one is created.
    std::fs::write(
        gh.join("comments.json"),
        r#"[{"id": 5, "body": "LGTM, and a <!-- goldgate --> in the middle"}]"#,
    )
    .unwrap();
    let step = job.step("comment.sh");
    assert_eq!(step.code(), 0, "{}", step.log());
    assert!(
        calls().contains("api --method POST repos/acme/models/issues/17/comments"),
        "{}",
        calls()
    );
    let posted = body();
    assert!(
        posted.starts_with("<!-- goldgate -->\n## goldgate: PASS"),
        "{posted}"
    );
    assert!(posted.contains("https://github.com/acme/models/actions/runs/99"));

    // Ours exists: it is edited, nothing new is posted.
    std::fs::remove_file(gh.join("calls")).unwrap();
    std::fs::write(
        gh.join("comments.json"),
        r#"[{"id": 5, "body": "LGTM"}, {"id": 42, "body": "<!-- goldgate -->\nold report"}]"#,
    )
    .unwrap();
    let step = job.step("comment.sh");
    assert_eq!(step.code(), 0, "{}", step.log());
    assert!(
        calls().contains("api --method PATCH repos/acme/models/issues/comments/42"),
        "{}",
        calls()
    );
    assert!(!calls().contains("POST"), "{}", calls());
    assert!(body().starts_with("<!-- goldgate -->\n## goldgate: PASS"));

    // A token that may not comment (a fork's pull request): a warning, not a failed action.
    std::fs::write(gh.join("fail"), "").unwrap();
    let step = job.step("comment.sh");
    assert_eq!(step.code(), 0, "{}", step.log());
    assert!(step.stdout().contains("::warning"), "{}", step.log());

    // Not a pull request: nothing is called.
    std::fs::remove_file(gh.join("calls")).unwrap();
    job.env[1].1 = "push".to_owned();
    let step = job.step("comment.sh");
    assert_eq!(step.code(), 0, "{}", step.log());
    assert_eq!(calls(), "");
}

#[test]
fn docs_ci_md_shows_every_example_verbatim() {
    let doc = std::fs::read_to_string(repo().join("docs/ci.md")).unwrap();
    // The nightly recipes are shown in docs/nightly.md.
    let shown = doc.clone() + &std::fs::read_to_string(repo().join("docs/nightly.md")).unwrap();
    let mut files = Vec::new();
    let mut dirs = vec![repo().join("docs/examples")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    assert!(files.len() >= 5, "{files:?}");
    let contents: Vec<String> = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    for (file, content) in files.iter().zip(&contents) {
        let rel = file.strip_prefix(repo()).unwrap().display().to_string();
        assert!(
            shown.contains(content.as_str()),
            "docs/ci.md and docs/nightly.md do not show {rel} verbatim"
        );
        assert!(
            shown.contains(&format!("`{rel}`")),
            "docs/ci.md or docs/nightly.md names {rel}"
        );
    }
    // And the other way: every YAML block of the page, and of the README's CI section, is one of
    // those files: a recipe a person copies is one the tests and actionlint have seen.
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    for block in doc
        .split("```yaml\n")
        .skip(1)
        .chain(readme.split("```yaml\n").skip(1))
    {
        let block = &block[..block.find("```").expect("a closed fence")];
        assert!(
            contents.iter().any(|c| c == block),
            "a workflow in docs/ci.md or README.md that is not a file of docs/examples/:\n{block}"
        );
    }
}
