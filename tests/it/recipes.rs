//! The scheduling recipes of docs/nightly.md, run as a user runs them. `docs/examples/shell/nightly.sh`,
//! which every recipe calls, runs three nights on a `goldgate init` scaffold with the goldgate of
//! these tests first on PATH and a loopback chat webhook; the Kubernetes CronJob's sharded pod
//! script, taken from the manifest, runs its shards and its merge for two nights; and every
//! `goldgate …` command line of the recipes and of docs/nightly.md is parsed by the real command
//! line, so a renamed flag fails here. `.ci/lint-actions.sh` does the rest: actionlint on the
//! workflow, shellcheck on the script, and every YAML document parsed (`.ci/check_action.py`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use clap::Parser as _;
use serde_json::Value;

use crate::server::{MockServer, Reply};
use crate::support::assert_exit;

const NIGHTLY_SH: &str = "docs/examples/shell/nightly.sh";
const GITHUB: &str = "docs/examples/github/nightly.yml";
const GITLAB: &str = "docs/examples/gitlab/.gitlab-ci.yml";
const KUBERNETES: &str = "docs/examples/kubernetes/nightly-cronjob.yaml";
const GUIDE: &str = "docs/nightly.md";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// What a process printed, for assertion messages.
fn said(out: &Output) -> String {
    format!(
        "--- stdout\n{}\n--- stderr\n{}",
        text(&out.stdout),
        text(&out.stderr)
    )
}

/// A scaffold from `goldgate init`, where nightly.sh runs as cron would run it: from the
/// evaluation's directory, with a clean environment and the tests' goldgate first on PATH.
struct Watch {
    tmp: tempfile::TempDir,
    eval: PathBuf,
    env: Vec<(String, String)>,
}

impl Watch {
    fn new() -> Watch {
        let tmp = tempfile::tempdir().unwrap();
        let eval = tmp.path().join("eval");
        let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("goldgate"))
            .arg("init")
            .arg(&eval)
            .output()
            .unwrap();
        assert_exit(&out, 0);
        // The scaffold's gates decide by "harm" on 5 items; its latency gate would compare two
        // 200 ms sleeps, where a loaded test machine could fail a night by chance. Widened to
        // 3x, it still fails the slowed candidate of the regression night (5x) every time.
        let toml = eval.join("goldgate.toml");
        let config = std::fs::read_to_string(&toml).unwrap();
        let widened = config.replace("max_ratio = 1.10", "max_ratio = 3.0");
        assert_ne!(
            config, widened,
            "goldgate init's latency gate changed: {config}"
        );
        std::fs::write(&toml, widened).unwrap();
        let bin_dir = assert_cmd::cargo::cargo_bin("goldgate")
            .parent()
            .unwrap()
            .to_path_buf();
        let path = std::env::join_paths(std::iter::once(bin_dir).chain(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        )))
        .unwrap();
        let env = vec![
            ("PATH".to_owned(), path.to_string_lossy().into_owned()),
            ("HOME".to_owned(), tmp.path().display().to_string()),
            ("NO_COLOR".to_owned(), "1".to_owned()),
        ];
        Watch { tmp, eval, env }
    }

    fn reports(&self) -> PathBuf {
        self.eval.join("reports")
    }

    /// `bash -c SCRIPT` (or a script file) in the evaluation's directory, with only this
    /// environment: nothing of the test process's (a CI's GITHUB_STEP_SUMMARY, GOLDGATE_OUT).
    fn bash(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = assert_cmd::Command::new("bash");
        cmd.current_dir(&self.eval).env_clear().args(args);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.timeout(Duration::from_secs(120));
        cmd.output().unwrap()
    }

    fn night(&self, env: &[(&str, &str)]) -> Output {
        let script = repo().join(NIGHTLY_SH);
        self.bash(&[script.to_str().unwrap()], env)
    }

    /// The run directories under `dir` (not accepted/ or history/).
    fn runs_in(dir: &Path) -> BTreeSet<PathBuf> {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .map(|e| e.unwrap().path())
                    .filter(|p| p.join("run.json").is_file())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The accepted baseline's run id (one evaluation: one file).
    fn accepted(reports: &Path) -> Option<String> {
        let files: Vec<PathBuf> = std::fs::read_dir(reports.join("accepted"))
            .ok()?
            .map(|e| e.unwrap().path())
            .filter(|p| !p.to_string_lossy().ends_with(".previous.json"))
            .collect();
        assert!(files.len() <= 1, "{files:?}");
        files
            .first()
            .map(|f| json(f)["run_id"].as_str().unwrap().to_owned())
    }

    fn set_candidate_delay(&self, from: &str, to: &str) {
        let path = self.eval.join("providers/candidate.toml");
        let provider = std::fs::read_to_string(&path).unwrap();
        let slowed = provider.replace(&format!("base_ms = {from}"), &format!("base_ms = {to}"));
        assert_ne!(
            provider, slowed,
            "goldgate init's candidate changed: {provider}"
        );
        std::fs::write(&path, slowed).unwrap();
    }
}

/// The one run a night added.
fn tonight(before: &BTreeSet<PathBuf>, after: &BTreeSet<PathBuf>) -> PathBuf {
    let new: Vec<&PathBuf> = after.difference(before).collect();
    assert_eq!(new.len(), 1, "one run per night: {new:?}");
    new[0].clone()
}

fn run_id(dir: &Path) -> String {
    json(&dir.join("run.json"))["run_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn nightly_sh_accepts_the_first_night_then_watches_and_posts_only_a_regression() {
    let hook = MockServer::start(|_| Reply::json(serde_json::json!({"ok": true})));
    // Where the secret of a real incoming webhook is: in its path.
    let secret = "T0AAAAAAA/B0BBBBBBB/s3cretWebhookToken";
    let url = format!("http://{}/services/{secret}", hook.addr);
    let w = Watch::new();
    let summary = w.tmp.path().join("step-summary.md");
    let env = [
        ("GOLDGATE_WEBHOOK_URL", url.as_str()),
        ("NIGHTLY_LINK", "https://ci.example/job/7"),
        ("KEEP_FULL", "1"),
        ("GITHUB_STEP_SUMMARY", summary.to_str().unwrap()),
    ];
    let reports = w.reports();
    let check_output = |night: usize, out: &Output| {
        let all = said(out);
        assert!(
            !all.contains(secret) && !all.contains(&url),
            "night {night} printed the webhook URL:\n{all}"
        );
        let last = text(&out.stdout)
            .lines()
            .last()
            .unwrap_or_default()
            .to_owned();
        assert!(
            last.ends_with("history/index.html") && w.eval.join(&last).is_file(),
            "night {night}: the history page's path is the last line:\n{all}"
        );
    };

    // Night 1: no accepted baseline, so a full run of both models, accepted.
    let before = Watch::runs_in(&reports);
    let out = w.night(&env);
    assert_eq!(out.status.code(), Some(0), "{}", said(&out));
    check_output(1, &out);
    let night1 = tonight(&before, &Watch::runs_in(&reports));
    assert!(json(&night1.join("run.json")).get("baseline").is_none());
    assert_eq!(Watch::accepted(&reports), Some(run_id(&night1)));
    assert!(hook.seen().is_empty(), "no regression, no message");

    // Night 2: tonight's candidate against the accepted run's stored answers.
    let before = Watch::runs_in(&reports);
    let out = w.night(&env);
    assert_eq!(out.status.code(), Some(0), "{}", said(&out));
    check_output(2, &out);
    let night2 = tonight(&before, &Watch::runs_in(&reports));
    let baseline = &json(&night2.join("run.json"))["baseline"];
    assert_eq!(baseline["accepted"], true, "{baseline}");
    assert_eq!(baseline["run_id"], run_id(&night1).as_str());
    assert!(hook.seen().is_empty(), "no regression, no message");

    // Night 3: the candidate answers five times slower; its latency gate fails.
    w.set_candidate_delay("200", "1000");
    let before = Watch::runs_in(&reports);
    let out = w.night(&env);
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    check_output(3, &out);
    let night3 = tonight(&before, &Watch::runs_in(&reports));
    assert_eq!(json(&night3.join("run.json"))["baseline"]["accepted"], true);
    assert_eq!(json(&night3.join("summary.json"))["verdict"], "fail");
    assert_eq!(
        Watch::accepted(&reports),
        Some(run_id(&night1)),
        "a regression is never accepted"
    );

    let seen = hook.seen();
    assert_eq!(seen.len(), 1, "one message, on the regression: {seen:?}");
    let post = &seen[0];
    assert_eq!(post.method, "POST");
    assert_eq!(post.path, format!("/services/{secret}"));
    assert_eq!(post.header("content-type"), Some("application/json"));
    let message = post.json();
    let words = message["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", post.body));
    for expected in [
        "regressed",
        "REGRESSED",
        "latency_p95_ms",
        &run_id(&night3),
        "https://ci.example/job/7",
    ] {
        assert!(words.contains(expected), "{expected:?} in {words:?}");
    }

    // The job summary got each night's report.md.
    let summary = std::fs::read_to_string(&summary).unwrap();
    let report3 = std::fs::read_to_string(night3.join("report.md")).unwrap();
    assert!(summary.contains(&report3), "{summary}");

    // KEEP_FULL=1: the newest run stays whole, and the accepted one; night 2 is pruned.
    assert!(night2.join("pruned.json").is_file());
    assert!(!night2.join("report.html").exists());
    for whole in [&night1, &night3] {
        assert!(!whole.join("pruned.json").exists(), "{}", whole.display());
        assert!(whole.join("report.html").is_file(), "{}", whole.display());
    }
    let history = json(&reports.join("history/history.json"));
    let evaluation = &history["evaluations"][0];
    assert_eq!(evaluation["runs"].as_array().unwrap().len(), 3);
    assert_eq!(evaluation["tonight"]["regressed"], true);

    // Another night while one is running: nothing done, exit 75.
    let lock_dir = reports.join(".nightly.lock.d");
    let has_flock = w.bash(&["-c", "command -v flock"], &[]).status.success();
    let lock = std::fs::File::create(reports.join(".nightly.lock")).unwrap();
    if has_flock {
        lock.try_lock().unwrap();
    } else {
        std::fs::create_dir(&lock_dir).unwrap();
    }
    let before = Watch::runs_in(&reports);
    let out = w.night(&env);
    assert_eq!(out.status.code(), Some(75), "{}", said(&out));
    assert!(
        text(&out.stderr).contains("another nightly run"),
        "{}",
        said(&out)
    );
    assert_eq!(before, Watch::runs_in(&reports), "nothing ran");
    assert_eq!(hook.seen().len(), 1);
}

#[test]
fn nightly_sh_refuses_to_take_a_lost_history_for_a_first_night() {
    let w = Watch::new();
    let out = w.night(&[("NIGHTLY_EXPECT_BASELINE", "1")]);
    assert_eq!(out.status.code(), Some(2), "{}", said(&out));
    assert!(
        text(&out.stderr).contains("was reports restored?"),
        "{}",
        said(&out)
    );
    assert!(Watch::runs_in(&w.reports()).is_empty(), "nothing ran");
}

/// The pod script of the sharded CronJob, as written in the manifest.
fn sharded_pod_script(manifest: &str) -> String {
    let lines: Vec<&str> = manifest.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim() == "args:")
        .expect("the sharded CronJob's args:");
    assert_eq!(lines[start + 1].trim(), "- |", "args: is one block scalar");
    let indent = |l: &str| l.len() - l.trim_start().len();
    let outer = indent(lines[start + 1]);
    let body: Vec<&str> = lines[start + 2..]
        .iter()
        .take_while(|l| l.trim().is_empty() || indent(l) > outer)
        .copied()
        .collect();
    let inner = indent(body[0]);
    body.iter()
        .map(|l| l.get(inner..).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// A number a line `key: N` (the first after `after`) of the manifest holds.
fn manifest_number(manifest: &str, after: &str, key: &str) -> u32 {
    let rest = &manifest[manifest.find(after).unwrap_or_else(|| panic!("{after}"))..];
    let line = rest
        .lines()
        .find_map(|l| l.trim().strip_prefix(key))
        .unwrap_or_else(|| panic!("{key} after {after}"));
    let number: String = line
        .trim_start_matches(|c: char| !c.is_ascii_digit())
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    number.parse().unwrap_or_else(|_| panic!("{key} {line}"))
}

#[test]
fn the_kubernetes_sharded_job_runs_its_shards_then_one_merge() {
    let manifest = read(KUBERNETES);
    // The manifest's own arithmetic: one pod per shard and one for the merge, all at once.
    let shards = manifest_number(&manifest, "- name: SHARDS", "value:");
    let sharded = "name: goldgate-nightly-sharded";
    let completions = manifest_number(&manifest, sharded, "completions:");
    assert_eq!(completions, shards + 1, "completions = SHARDS + 1");
    assert_eq!(
        manifest_number(&manifest, sharded, "parallelism:"),
        completions
    );
    assert_eq!(
        manifest.matches("kind: CronJob").count(),
        manifest.matches("concurrencyPolicy: Forbid").count(),
        "every CronJob forbids overlapping nights"
    );
    assert_eq!(manifest.matches("suspend: true").count(), 1, "never both");

    let w = Watch::new();
    let data = w.tmp.path().join("data");
    // The pod script as the manifest has it, with the claim mounted at a temp dir and the
    // evaluation's copy of nightly.sh this repository's.
    let mut script = sharded_pod_script(&manifest);
    for (from, to) in [
        ("/data/", format!("{}/", data.display())),
        (
            "bash ci/nightly.sh",
            format!("bash {}", repo().join(NIGHTLY_SH).display()),
        ),
    ] {
        assert!(
            script.contains(from),
            "{from:?} in the pod script:\n{script}"
        );
        script = script.replace(from, &to);
    }
    let reports = data.join("reports");
    let out_dir = reports.display().to_string();
    // Two shards here, so the test stays fast; the pods are the manifest's.
    let pod = |job: &str, index: u32| {
        let index = index.to_string();
        w.bash(
            &["-c", &script],
            &[
                ("JOB_COMPLETION_INDEX", &index),
                ("SHARDS", "2"),
                ("JOB_NAME", job),
                ("GOLDGATE_OUT", &out_dir),
                ("KEEP_FULL", "30"),
            ],
        )
    };

    for (night, job) in [
        "goldgate-nightly-sharded-29000001",
        "goldgate-nightly-sharded-29001441",
    ]
    .into_iter()
    .enumerate()
    {
        let before = Watch::runs_in(&reports);
        for index in 0..2 {
            let out = pod(job, index);
            assert_eq!(out.status.code(), Some(0), "shard {index}: {}", said(&out));
        }
        let tonight_shards = Watch::runs_in(&data.join("shards").join(job));
        assert_eq!(tonight_shards.len(), 2, "both shards handed to the merge");
        assert_eq!(
            before,
            Watch::runs_in(&reports),
            "no shard left among the runs"
        );
        let out = pod(job, 2);
        assert_eq!(out.status.code(), Some(0), "the merge: {}", said(&out));
        let merged = tonight(&before, &Watch::runs_in(&reports));
        let manifest = json(&merged.join("run.json"));
        assert_eq!(
            manifest["merged_from"].as_array().map(Vec::len),
            Some(2),
            "{manifest}"
        );
        let summary = json(&merged.join("summary.json"));
        assert_eq!(summary["status"], "complete");
        if night == 0 {
            // The first night: both models, merged, accepted.
            assert!(manifest.get("baseline").is_none(), "{manifest}");
            assert_eq!(Watch::accepted(&reports), Some(run_id(&merged)));
        } else {
            // Then each shard compares with the accepted run: only the candidate is called.
            for shard in &tonight_shards {
                assert_eq!(json(&shard.join("run.json"))["baseline"]["accepted"], true);
            }
            assert_eq!(manifest["baseline"]["accepted"], true, "{manifest}");
            assert_ne!(Watch::accepted(&reports), Some(run_id(&merged)));
        }
        assert!(reports.join("history/index.html").is_file());
        let history = json(&reports.join("history/history.json"));
        assert_eq!(history["skipped"], serde_json::json!([]), "{history}");
    }
}

// ---------------------------------------------------------------------------------------------
// Every `goldgate …` command line of the recipes, parsed by the real command line.

/// A `goldgate` command found in a recipe, its variables replaced by placeholders.
#[derive(Debug)]
struct CommandLine {
    at: String,
    words: Vec<String>,
}

/// What a shell variable stands for, so the command line can parse it: a shard is `K/N`,
/// anything else a path or a count, which `1` is.
fn placeholder(name: &str) -> &'static str {
    match name {
        "NIGHTLY_SHARD" => "1/2",
        _ => "1",
    }
}

/// The `$…` expansion at the start of `s`: what it stands for, how many bytes it takes, and a
/// command substitution's text.
fn expansion(s: &str) -> (String, usize, Option<String>) {
    let b = s.as_bytes();
    let close = |open: u8, close: u8, from: usize| -> usize {
        let mut depth = 0;
        for (i, &c) in b.iter().enumerate().skip(from) {
            if c == open {
                depth += 1;
            } else if c == close {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
        }
        // Unclosed: the rest of the line (a splitter for finding commands, not a shell).
        b.len()
    };
    match b.get(1) {
        Some(b'(') if b.get(2) == Some(&b'(') => ("1".to_owned(), close(b'(', b')', 1), None),
        Some(b'(') => {
            let end = close(b'(', b')', 1);
            ("1".to_owned(), end, Some(s[2..end - 1].to_owned()))
        }
        // ${name}, ${name:-default}, ${a[@]}, and GitHub's ${{ expression }}.
        Some(b'{') => {
            let end = close(b'{', b'}', 1);
            let name: String = s[2..end - 1]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            (placeholder(&name).to_owned(), end, None)
        }
        Some(b'@' | b'*') => ("\0@".to_owned(), 2, None),
        Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {
            let len = s[1..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(s.len(), |n| n + 1);
            (placeholder(&s[1..len]).to_owned(), len, None)
        }
        Some(b'?' | b'#' | b'$' | b'!' | b'0'..=b'9') => ("1".to_owned(), 2, None),
        _ => ("$".to_owned(), 1, None),
    }
}

#[derive(Debug, PartialEq)]
enum Token {
    Word(String),
    /// `|`, `||`, `&&`, `;`, `&`, `(`, `)`: a command ends.
    End,
    /// `>`, `>>`, `<`, `<<<`, `>&`: the next word is not an argument.
    Redirect,
}

/// A line of shell, split as the shell would (quotes, expansions, comments, operators); the
/// text of every `$(…)` goes to `nested`.
fn lex(line: &str, nested: &mut Vec<String>) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut i = 0;
    let push = |tokens: &mut Vec<Token>, word: &mut String, in_word: &mut bool| {
        if *in_word {
            tokens.push(Token::Word(std::mem::take(word)));
            *in_word = false;
        }
    };
    while i < line.len() {
        let rest = &line[i..];
        let c = rest.chars().next().unwrap();
        match c {
            ' ' | '\t' => {
                push(&mut tokens, &mut word, &mut in_word);
                i += 1;
            }
            '#' if !in_word => break,
            '\'' => {
                let end = rest[1..].find('\'').map_or(rest.len(), |n| n + 1);
                word.push_str(&rest[1..end]);
                in_word = true;
                i += end + 1;
            }
            '"' => {
                in_word = true;
                let mut j = 1;
                loop {
                    let r = &rest[j.min(rest.len())..];
                    let Some(d) = r.chars().next() else { break };
                    match d {
                        '"' => break,
                        '\\' => {
                            let e = r[1..].chars().next().unwrap_or('\\');
                            if !"\"\\$`".contains(e) {
                                word.push('\\');
                            }
                            word.push(e);
                            j += 1 + e.len_utf8();
                        }
                        '$' => {
                            let (value, len, command) = expansion(r);
                            word.push_str(&value);
                            nested.extend(command);
                            j += len;
                        }
                        _ => {
                            word.push(d);
                            j += d.len_utf8();
                        }
                    }
                }
                i += j + 1;
            }
            '\\' => {
                let e = rest[1..].chars().next().unwrap_or(' ');
                word.push(e);
                in_word = true;
                i += 1 + e.len_utf8();
            }
            '$' => {
                let (value, len, command) = expansion(rest);
                word.push_str(&value);
                nested.extend(command);
                in_word = true;
                i += len;
            }
            '>' | '<' => {
                // `2>file`: the digits are a file descriptor, not an argument.
                if in_word && word.chars().all(|c| c.is_ascii_digit()) {
                    word.clear();
                    in_word = false;
                }
                push(&mut tokens, &mut word, &mut in_word);
                let len = rest
                    .find(|c: char| !"<>&".contains(c))
                    .unwrap_or(rest.len());
                tokens.push(Token::Redirect);
                i += len;
                // `>&2`: the descriptor is the target.
                if rest[..len].ends_with('&') {
                    let digits = line[i..]
                        .find(|c: char| !c.is_ascii_digit())
                        .unwrap_or(line.len() - i);
                    tokens.push(Token::Word(line[i..i + digits].to_owned()));
                    i += digits;
                }
            }
            '|' | '&' | ';' | '(' | ')' => {
                push(&mut tokens, &mut word, &mut in_word);
                tokens.push(Token::End);
                i += 1;
            }
            _ => {
                word.push(c);
                in_word = true;
                i += c.len_utf8();
            }
        }
    }
    push(&mut tokens, &mut word, &mut in_word);
    tokens
}

/// The `goldgate` commands of one logical line of shell.
fn commands_of_line(line: &str, at: &str, found: &mut Vec<CommandLine>) {
    let mut nested = Vec::new();
    let tokens = lex(line, &mut nested);
    let mut command: Vec<String> = Vec::new();
    let mut redirected = false;
    let finish = |command: &mut Vec<String>, found: &mut Vec<CommandLine>| {
        let skip = command
            .iter()
            .take_while(|w| {
                [
                    "if", "then", "else", "elif", "do", "while", "until", "!", "exec", "time", "{",
                ]
                .contains(&w.as_str())
                    || w.split_once('=').is_some_and(|(name, _)| {
                        !name.is_empty()
                            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    })
            })
            .count();
        let words = &command[skip..];
        if words
            .first()
            .is_some_and(|w| w == "goldgate" || w.ends_with("/goldgate"))
        {
            let mut words: Vec<String> = words
                .iter()
                .filter(|w| w.as_str() != "\0@")
                .map(|w| w.replace("\0@", "1"))
                .collect();
            words[0] = "goldgate".to_owned();
            found.push(CommandLine {
                at: at.to_owned(),
                words,
            });
        }
        command.clear();
    };
    for token in tokens {
        match token {
            Token::Word(_) if redirected => redirected = false,
            Token::Word(w) => command.push(w),
            Token::Redirect => redirected = true,
            Token::End => finish(&mut command, found),
        }
    }
    finish(&mut command, found);
    for inner in nested {
        commands_of_line(&inner, at, found);
    }
}

/// Every `goldgate` command in a shell script, a CI file (YAML) or a Markdown page (its fenced
/// code blocks but ```text ones).
fn goldgate_commands(rel: &str, content: &str) -> Vec<CommandLine> {
    let mut lines: Vec<(usize, String)> = Vec::new();
    // In Markdown: inside a fence, and not a ```text one (output, messages).
    let mut fence: Option<String> = None;
    let mut pending = String::new();
    for (n, raw) in content.lines().enumerate() {
        if rel.ends_with(".md") {
            if let Some(info) = raw.trim_start().strip_prefix("```") {
                fence = match fence {
                    None => Some(info.trim().to_owned()),
                    Some(_) => None,
                };
                continue;
            }
            if fence.as_deref().is_none_or(|info| info == "text") {
                continue;
            }
        }
        // A YAML list item or `run:` key holds the command; a prompt is not part of it.
        let mut line = raw.trim_start();
        for prefix in ["- ", "run: ", "$ "] {
            line = line.strip_prefix(prefix).unwrap_or(line);
        }
        if let Some(continued) = line.strip_suffix('\\') {
            pending.push_str(continued);
            pending.push(' ');
            continue;
        }
        pending.push_str(line);
        lines.push((n + 1, std::mem::take(&mut pending)));
    }
    let mut found = Vec::new();
    for (n, line) in lines {
        commands_of_line(&line, &format!("{rel}:{n}"), &mut found);
    }
    found
}

/// The command lines of `rel` that the real command line refuses, with clap's reason.
fn refused(found: &[CommandLine]) -> Vec<String> {
    found
        .iter()
        .filter_map(|c| {
            goldgate::cli::Cli::try_parse_from(&c.words)
                .err()
                .map(|e| format!("{}: {:?}: {}", c.at, c.words, e.kind()))
        })
        .collect()
}

#[test]
fn the_shell_splitter_finds_commands_as_the_shell_runs_them() {
    let line = r#"code=0; goldgate run --out "$out" --shard "$NIGHTLY_SHARD" "$@" 2>err | tee "$tmp/run.out" || code=$?"#;
    let found = goldgate_commands("x.sh", line);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        found[0].words,
        ["goldgate", "run", "--out", "1", "--shard", "1/2"]
    );
    let found = goldgate_commands(
        "x.yml",
        "    - export X=$(goldgate merge ${{ matrix.dir }}/*/ --out 'my reports' >&2)\n      # goldgate nothing\n      - echo \"goldgate is not run here\"\n",
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        found[0].words,
        ["goldgate", "merge", "1/*/", "--out", "my reports"]
    );
    let found = goldgate_commands(
        "x.md",
        "goldgate run --nope\n```bash\n$ goldgate history prune \\\n  --keep-full 30\n```\n```text\ngoldgate nightly: exit 1\n```\n",
    );
    assert_eq!(
        found.len(),
        1,
        "prose and ```text blocks are not commands: {found:?}"
    );
    assert_eq!(found[0].at, "x.md:4");
    assert_eq!(
        found[0].words,
        ["goldgate", "history", "prune", "--keep-full", "30"]
    );
}

#[test]
fn every_goldgate_command_in_the_recipes_parses() {
    // (file, at least this many goldgate commands: a splitter that finds none would pass)
    let recipes = [
        (NIGHTLY_SH, 8),
        (GITHUB, 0),
        (GITLAB, 2),
        (KUBERNETES, 0),
        (GUIDE, 6),
    ];
    let mut subcommands = BTreeSet::new();
    for (rel, least) in recipes {
        let found = goldgate_commands(rel, &read(rel));
        assert!(
            found.len() >= least,
            "{rel}: {} goldgate command(s), expected at least {least}: {found:?}",
            found.len()
        );
        let refused = refused(&found);
        assert!(refused.is_empty(), "{}", refused.join("\n"));
        subcommands.extend(found.iter().map(|c| c.words[1..].join(" ")));
    }
    for expected in [
        "accept 1",
        "history --out 1",
        "history prune --keep-full 1 --out 1",
        "merge 1 --out 1",
        "run --out 1 --baseline accepted",
        "run --out 1 --shard 1/2 --baseline accepted",
    ] {
        assert!(
            subcommands.contains(expected),
            "{expected:?} in {subcommands:#?}"
        );
    }

    // The check can fail: a flag or subcommand renamed in the script is refused.
    let script = read(NIGHTLY_SH);
    for (from, to) in [
        ("--keep-full", "--keep-fulll"),
        ("--baseline accepted", "--baseline-accepted"),
        ("goldgate accept", "goldgate approve"),
    ] {
        assert!(script.contains(from), "{from}");
        let renamed = goldgate_commands(NIGHTLY_SH, &script.replace(from, to));
        assert!(!refused(&renamed).is_empty(), "{to} was not refused");
    }
}

#[test]
fn the_recipes_call_nightly_sh_with_the_settings_it_reads() {
    let script = read(NIGHTLY_SH);
    let header: String = script
        .lines()
        .take_while(|l| l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let body = &script[header.len()..];
    let guide = read(GUIDE);
    for rel in [GITHUB, GITLAB, KUBERNETES, GUIDE] {
        let content = read(rel);
        assert!(
            content.contains("ci/nightly.sh"),
            "{rel} calls the script where docs/nightly.md says to put it"
        );
        // Every setting a recipe gives the script is one the script documents and reads.
        let mut names = BTreeSet::new();
        for start in content.match_indices("NIGHTLY_").map(|(i, _)| i) {
            let name: String = content[start..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                .collect();
            names.insert(name);
        }
        for name in ["KEEP_FULL", "GOLDGATE_WEBHOOK_URL", "GOLDGATE_OUT"] {
            if content.contains(name) {
                names.insert(name.to_owned());
            }
        }
        for name in &names {
            assert!(
                header.contains(name.as_str()),
                "{rel} sets {name}, which nightly.sh does not document"
            );
            assert!(
                body.contains(&format!("${{{name}")) || body.contains(&format!("${name}")),
                "{rel} sets {name}, which nightly.sh does not read"
            );
        }
    }
    // The crontab line of the guide: five schedule fields, then the script.
    let cron: Vec<&str> = guide
        .lines()
        .filter(|l| {
            let fields: Vec<&str> = l.split_whitespace().take(6).collect();
            fields.len() == 6
                && fields[..5]
                    .iter()
                    .all(|f| f.chars().all(|c| c.is_ascii_digit() || "*/,-".contains(c)))
        })
        .collect();
    assert_eq!(cron.len(), 1, "one crontab line in {GUIDE}: {cron:?}");
    assert!(cron[0].contains("ci/nightly.sh"), "{}", cron[0]);
    // cron ends a command at an unescaped %: none may be in the line.
    assert!(!cron[0].contains('%'), "{}", cron[0]);
    // The exit codes at the top of the script are the ones the guide explains.
    for code in ["75", "130"] {
        assert!(header.contains(&format!("#   {code}")), "{code}");
        assert!(
            guide.contains(&format!("| {code} |")),
            "{GUIDE} explains exit {code}"
        );
    }
}

#[test]
fn docs_nightly_md_shows_the_recipes_as_they_are() {
    let guide = read(GUIDE);
    let gitlab = read(GITLAB);
    let nightly_job = &gitlab[gitlab
        .find("# The nightly regression watch")
        .expect("the nightly job of the GitLab file")..];
    for (rel, shown) in [
        (NIGHTLY_SH, read(NIGHTLY_SH)),
        (GITHUB, read(GITHUB)),
        (KUBERNETES, read(KUBERNETES)),
        (GITLAB, nightly_job.to_owned()),
    ] {
        assert!(
            guide.contains(&format!("\n{shown}```\n")),
            "{GUIDE} does not show {rel} as it is (in a code block of its own)"
        );
        let name = rel.strip_prefix("docs/").unwrap();
        assert!(guide.contains(name), "{GUIDE} names {rel}");
    }
    assert!(repo().join("docs/history.png").is_file());
    assert!(guide.contains("](history.png)"));
}
