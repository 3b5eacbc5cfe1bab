//! No configured secret reaches anything goldgate writes or prints: servers and programs that
//! echo a key, in every cheap form, in answers and in errors, for the judged models and the judge;
//! a cache written before the key was a secret; and a `command` program that sees only the
//! environment its file names.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use redb::ReadableTable as _;
use serde_json::{Value, json};

use crate::server::{MockServer, Reply};
use crate::support::{Project, Run, assert_exit, error_of, item};

/// Most requests here fail on purpose; the error-rate ceiling would stop the run (exit 3) before
/// it is judged, and the reports are part of what is searched.
const JUDGED_BY_ERRORS: &str = "max_error_rate = 1.0\n";

/// The keys: each has characters that percent-encoding changes, and a base64 form in which `+`
/// or `/` tells the standard alphabet from the URL-safe one.
const CURRENT_KEY: &str = "gg-Cur/Key+9z=Q?x~~~ r7T-4f1c";
const CANDIDATE_KEY: &str = "gg-Cand?Key/Wm+3=~~~ Zp-b8e2";
const JUDGE_KEY: &str = "gg-Judge+Key/Lq7?=~~~ Vn-0d6a";

/// Every form of `secret` that must not appear: as written, in each case, base64 (both alphabets,
/// padded or not, and the part that stays the same inside a longer base64 string, at each of the
/// three byte alignments), hexadecimal and percent-encoded.
fn forms(secret: &str) -> Vec<String> {
    let bytes = secret.as_bytes();
    let mut forms = vec![
        secret.to_owned(),
        secret.to_uppercase(),
        secret.to_lowercase(),
        STANDARD.encode(bytes),
        URL_SAFE.encode(bytes),
        STANDARD_NO_PAD.encode(bytes),
        URL_SAFE_NO_PAD.encode(bytes),
        bytes.iter().map(|b| format!("{b:02x}")).collect(),
        percent(secret, false),
        percent(secret, true),
    ];
    for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
        for prefix in ["", "u", "us"] {
            // The characters encoding the secret's bits alone, whatever comes before or after.
            let encoded = engine.encode(format!("{prefix}{secret}"));
            let first = (8 * prefix.len()).div_ceil(6);
            let end = 8 * (prefix.len() + bytes.len()) / 6;
            forms.push(encoded[first..end].to_owned());
        }
    }
    // Any 12 characters in a row of the secret: a cut-off copy leaks too.
    let chars: Vec<char> = secret.chars().collect();
    forms.extend(chars.windows(12).map(|w| w.iter().collect::<String>()));
    forms
}

/// Percent-encoded: reserved characters only, or every byte.
fn percent(secret: &str, every_byte: bool) -> String {
    secret
        .bytes()
        .map(|b| {
            if !every_byte && (b.is_ascii_alphanumeric() || b"-._~".contains(&b)) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Text as a reader sees it: HTML and XML entities decoded, Markdown's backslash escapes dropped,
/// so an escaped copy of a secret is still found.
fn as_read(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c == '&'
            && let Some(end) = rest.find(';').filter(|&e| e <= 10)
        {
            let entity = &rest[1..end];
            let decoded = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => entity
                    .strip_prefix("#x")
                    .or_else(|| entity.strip_prefix("#X"))
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                    .and_then(char::from_u32),
            };
            if let Some(d) = decoded {
                out.push(d);
                rest = &rest[end + 1..];
                continue;
            }
        }
        if c == '\\'
            && let Some(next) = rest[1..].chars().next()
            && next.is_ascii_punctuation()
        {
            out.push(next);
            rest = &rest[1 + next.len_utf8()..];
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// The form of a secret found in `text`, if any: raw or as a reader sees it, case ignored.
fn leak(text: &str, secrets: &[&str]) -> Option<String> {
    let raw = text.to_ascii_lowercase();
    let read = as_read(text).to_ascii_lowercase();
    for secret in secrets {
        for form in forms(secret) {
            let form = form.to_ascii_lowercase();
            if raw.contains(&form) || read.contains(&form) {
                return Some(form);
            }
        }
    }
    None
}

/// Every file under `dirs` (recursively), and the process's stdout and stderr: no form of any
/// secret in any of them. Returns how many files were read.
fn assert_no_leak(dirs: &[&Path], run: &Run, secrets: &[&str]) -> usize {
    for (stream, text) in [("stdout", run.stdout()), ("stderr", run.stderr())] {
        if let Some(form) = leak(&text, secrets) {
            panic!("{stream} holds `{form}`:\n{text}");
        }
    }
    let mut files = 0;
    let mut stack: Vec<_> = dirs.iter().map(|d| d.to_path_buf()).collect();
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            files += 1;
            let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
            if let Some(form) = leak(&text, secrets) {
                panic!("{} holds `{form}`", path.display());
            }
        }
    }
    files
}

/// Each (item, model, trial) has exactly one result line, and every item has both models'.
#[track_caller]
fn assert_one_line_each(run: &Run, ids: &[&str]) {
    let mut count: BTreeMap<(String, String, u64), usize> = BTreeMap::new();
    for r in run.results() {
        let key = (
            r["id"].as_str().unwrap().to_owned(),
            r["model"].as_str().unwrap().to_owned(),
            r["trial"].as_u64().unwrap(),
        );
        *count.entry(key).or_default() += 1;
    }
    assert!(count.values().all(|&n| n == 1), "{count:?}");
    assert_eq!(count.len(), ids.len() * 2, "{count:?}");
}

/// What a hostile server answers for each scenario (the item's question), given the key it was
/// sent: the key in an answer, in some form, or in an error body.
fn echo(question: &str, key: &str, other: &str) -> Reply {
    let status = |code: u16, body: String| Reply::Status {
        code,
        retry_after: Some("0".into()),
        body,
    };
    let text = match question {
        "q-plain" => format!("Your key is {key}."),
        "q-upper" => format!("KEY: {}", key.to_uppercase()),
        "q-lower" => format!("key: {}", key.to_lowercase()),
        "q-mixed" => key
            .chars()
            .enumerate()
            .map(|(i, c)| match i % 2 {
                0 => c.to_ascii_uppercase(),
                _ => c.to_ascii_lowercase(),
            })
            .collect(),
        "q-base64" => format!("encoded {}", STANDARD.encode(key)),
        "q-base64url" => format!("encoded {}", URL_SAFE_NO_PAD.encode(key)),
        // Basic credentials: the key at each of the three alignments inside longer base64.
        "q-basic-0" => format!("Basic {}", STANDARD.encode(format!("abc:{key}"))),
        "q-basic-1" => format!("Basic {}", STANDARD.encode(format!("ab:{key}!"))),
        "q-basic-2" => format!("Basic {}", URL_SAFE.encode(format!("a:{key}?x=1"))),
        "q-percent" => format!("https://x.test/?key={}", percent(key, false)),
        "q-percent-lower" => format!("?k={}", percent(key, true).to_lowercase()),
        "q-hex" => key.bytes().map(|b| format!("{b:02X}")).collect(),
        // The key of the other model (a gateway in front of both sees both).
        "q-other" => format!("the other key is {other}"),
        // The judge is asked about this answer, and fails.
        "q-judge-fail" => "fine; q-judge-fail".to_owned(),
        "q-500" => {
            return status(
                500,
                format!("upstream rejected {key} ({})", STANDARD.encode(key)),
            );
        }
        "q-401" => return status(401, format!("{{\"error\": \"invalid key {key}\"}}")),
        _ => "fine".to_owned(),
    };
    Reply::answer(&text)
}

/// The scenarios in which the key comes back in an answer.
const ECHOED_IN_ANSWERS: [&str; 13] = [
    "q-plain",
    "q-upper",
    "q-lower",
    "q-mixed",
    "q-base64",
    "q-base64url",
    "q-basic-0",
    "q-basic-1",
    "q-basic-2",
    "q-percent",
    "q-percent-lower",
    "q-hex",
    "q-other",
];

/// The scenarios in which it comes back in an error body (the 429's on a retried attempt).
const ECHOED_IN_ERRORS: [&str; 3] = ["q-500", "q-401", "q-429"];

/// The judge's replies: statements and verdicts that carry its own key, and a 500 that echoes it
/// for one item.
fn judge_reply(prompt: &str, key: &str) -> Reply {
    if prompt.contains("q-judge-fail") {
        return Reply::Status {
            code: 500,
            retry_after: None,
            body: format!("judge down, key {key}"),
        };
    }
    if prompt.starts_with("You split an answer") {
        let statements =
            json!({"statements": [format!("The key is {key}."), STANDARD.encode(key)]});
        return Reply::answer(&statements.to_string());
    }
    let verdicts = json!({"verdicts": [
        {"statement": format!("{key} holds"), "verdict": 1},
        {"statement": "second", "verdict": 0, "reason": key.to_uppercase()},
    ]});
    Reply::answer(&verdicts.to_string())
}

/// The current model speaks `openai` with `api_key_env`, the candidate `http` with the key in a
/// `${VAR}` header, the judge `openai`; one loopback server plays all three and echoes each key it
/// is sent — and the other model's — in every form, in answers and errors, in the judge's
/// statements and its errors, on a retried 429 logged by `--verbose`. Nothing of any key reaches a
/// file of the run, the cache, stdout or stderr. Removing the scrub from `Client::call` fails this.
#[test]
fn keys_echoed_in_any_form_by_servers_reach_no_file_and_no_output() {
    for key in [CURRENT_KEY, CANDIDATE_KEY, JUDGE_KEY] {
        assert_ne!(STANDARD.encode(key), URL_SAFE.encode(key), "{key}");
        assert_ne!(percent(key, false), key, "{key}");
    }
    let server = MockServer::start(|seen| {
        let key = seen
            .authorization
            .as_deref()
            .and_then(|a| a.strip_prefix("Bearer "))
            .unwrap_or("no-key-sent")
            .to_owned();
        if seen.model == "judge" {
            return judge_reply(&seen.prompt, &key);
        }
        let other = if key == CURRENT_KEY {
            CANDIDATE_KEY
        } else {
            CURRENT_KEY
        };
        if seen.prompt == "q-429" && seen.attempt == 1 {
            return Reply::Status {
                code: 429,
                retry_after: Some("0".into()),
                body: format!("slow down, {key} / {}", URL_SAFE.encode(&key)),
            };
        }
        echo(&seen.prompt, &key, other)
    });
    let mut ids: Vec<&str> = [ECHOED_IN_ANSWERS.as_slice(), &ECHOED_IN_ERRORS].concat();
    ids.push("q-judge-fail");
    let items: Vec<Value> = ids.iter().map(|q| item(q, q, &["fine"])).collect();
    let base = server.base_url();
    let project = Project::with_providers(
        &items,
        &format!(
            "{JUDGED_BY_ERRORS}[scoring]\nfaithfulness = {{ method = \"judge\", provider = \"providers/judge.toml\" }}\n"
        ),
        |side| match side {
            "current" => format!(
                "kind = \"openai\"\nmodel = \"current\"\nbase_url = \"{base}\"\napi_key_env = \"GG_CURRENT_KEY\"\n[limits]\nretries = 1\n"
            ),
            _ => format!(
                r#"kind = "http"
model = "candidate"
[http]
url = "{base}/chat/completions"
body = '{{"model": {{{{ model | json }}}}, "messages": [{{"role": "user", "content": {{{{ prompt | json }}}} }}]}}'
answer = "/choices/0/message/content"
[http.headers]
Authorization = "Bearer ${{GG_CANDIDATE_KEY}}"
[limits]
retries = 1
"#
            ),
        },
    );
    project.write(
        "providers/judge.toml",
        &format!(
            "kind = \"openai\"\nmodel = \"judge\"\nbase_url = \"{base}\"\napi_key_env = \"GG_JUDGE_KEY\"\n[limits]\nretries = 0\n"
        ),
    );
    let env = [
        ("GG_CURRENT_KEY", CURRENT_KEY),
        ("GG_CANDIDATE_KEY", CANDIDATE_KEY),
        ("GG_JUDGE_KEY", JUDGE_KEY),
    ];
    let secrets = [CURRENT_KEY, CANDIDATE_KEY, JUDGE_KEY];
    let run_once = || {
        let mut cmd = project.cmd();
        cmd.args(["run", "--cache", "--verbose"]).envs(env);
        Run::new(project.path(), cmd.output().unwrap())
    };
    let run = run_once();
    assert!(matches!(run.code(), 0 | 1), "{}", run.stderr());
    assert_one_line_each(&run, &ids);

    // The server did echo: each answer and error holds the redaction, not the key.
    for side in ["current", "candidate"] {
        for q in ECHOED_IN_ANSWERS {
            let r = run.result(q, side);
            let answer = r["answer"].as_str().unwrap_or_default();
            assert!(answer.contains("[redacted]"), "{q} {side}: {r}");
        }
        for (q, status) in [("q-500", 500), ("q-401", 401)] {
            let (kind, code, message) = error_of(&run.result(q, side));
            assert_eq!((kind.as_str(), code), ("http_status", Some(status)), "{q}");
            assert!(message.contains("[redacted]"), "{q} {side}: {message}");
        }
        // The judge's statements, recorded as claims, carried its key.
        let r = run.result("q-plain", side);
        assert_eq!(
            r["faithfulness"]["details"][0]["claim"], "[redacted] holds",
            "{r}"
        );
        let r = run.result("q-judge-fail", side);
        let judge_error = r["judge"]["error"].as_str().unwrap();
        assert!(judge_error.contains("[redacted]"), "{judge_error}");
    }
    assert!(run.stderr().contains("retrying"), "the verbose log ran");
    assert!(run.stderr().contains("[redacted]"), "{}", run.stderr());
    let reports = project.path().join("reports");
    let cache = reports.join(".cache/responses.redb");
    assert!(cache.is_file(), "the cache was written");
    let files = assert_no_leak(&[&reports], &run, &secrets);
    assert!(files >= 6, "the run's files and the cache: {files}");

    // A cache written before the key was a secret (or by an older goldgate) holds it: a hit is
    // scrubbed as it leaves the client, like a fresh answer.
    poison_cache(&cache, CURRENT_KEY);
    let again = run_once();
    assert!(matches!(again.code(), 0 | 1), "{}", again.stderr());
    let r = again.result("q-lower", "current");
    assert_eq!(r["cached"], true, "{r}");
    assert!(
        r["answer"]
            .as_str()
            .unwrap()
            .contains("poisoned [redacted]"),
        "{r}"
    );
    let dir = again.dir.clone().unwrap();
    assert_no_leak(&[&dir], &again, &secrets);
}

/// Put `key` into every answer the cache holds, as a cache written before scrubbing would.
fn poison_cache(path: &Path, key: &str) {
    let table: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("responses_v1");
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut t = txn.open_table(table).unwrap();
        let entries: Vec<(Vec<u8>, Vec<u8>)> = t
            .iter()
            .unwrap()
            .map(|e| {
                let (k, v) = e.unwrap();
                (k.value().to_vec(), v.value().to_vec())
            })
            .collect();
        assert!(!entries.is_empty());
        for (k, v) in entries {
            let mut cached: Value = serde_json::from_slice(&v).unwrap();
            cached["text"] = json!(format!("poisoned {key}"));
            t.insert(k.as_slice(), cached.to_string().as_bytes())
                .unwrap();
        }
    }
    txn.commit().unwrap();
}

/// The model program: answers with its key in some form, fails with it on stderr, or tells what
/// it can see of goldgate's environment.
const PROGRAM: &str = r#"
import base64, json, os, sys
req = json.load(sys.stdin)
q = req["question"]
key = os.environ.get("MODEL_KEY", "")
if q == "q-echo":
    print("my key is " + key)
elif q == "q-base64":
    print(base64.b64encode(("user:" + key).encode()).decode())
elif q == "q-upper":
    print(key.upper())
elif q == "q-fail":
    sys.stderr.write("Traceback: bad key " + key + " " + base64.urlsafe_b64encode(key.encode()).decode() + "\n")
    sys.exit(4)
elif q == "q-parent":
    print("parent=" + os.environ.get("GG_PARENT_ONLY", "") + " openai=" + os.environ.get("OPENAI_API_KEY", ""))
elif q == "q-names":
    print(",".join(sorted(os.environ)))
elif "--json" in sys.argv:
    print(json.dumps({"answer": "fine"}))
else:
    print("fine")
"#;

const COMMAND_SCENARIOS: [&str; 7] = [
    "q-echo", "q-base64", "q-upper", "q-fail", "q-parent", "q-names", "q-fine",
];

/// A `command` program given its key through `[command.env]` prints it — as its answer, encoded,
/// on stderr with a failing exit, in output that is not the JSON asked for — and none of it
/// reaches a file or the terminal. It sees no variable of goldgate's environment that its file
/// does not name, but for the documented minimal set: not a key goldgate holds for another
/// provider, not any other.
#[test]
fn a_command_program_sees_only_its_named_environment_and_cannot_leak_its_key() {
    const CURRENT_SECRET: &str = "cmd-cur-7Hq2+Zz9/Lm=p";
    const CANDIDATE_SECRET: &str = "cmd-cand-Wx4/Rt8+Yu=k";
    const PARENT_ONLY: &str = "parent-only-MARKER-3b9e1f";
    const PARENT_KEY: &str = "sk-parent-openai-MARKER-77aa";
    let items: Vec<Value> = COMMAND_SCENARIOS
        .iter()
        .map(|q| item(q, q, &["fine"]))
        .collect();
    // The candidate reads JSON, which the program never prints: its errors quote what it printed.
    // The interpreter itself, not a launcher on PATH (pyenv's shim sets variables of its own).
    let python = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .unwrap();
    let python = String::from_utf8(python.stdout).unwrap().trim().to_owned();
    let project = Project::with_providers(&items, JUDGED_BY_ERRORS, |side| {
        let (var, output) = match side {
            "current" => ("GG_CMD_CURRENT", "text"),
            _ => ("GG_CMD_CANDIDATE", "json"),
        };
        format!(
            "kind = \"command\"\nmodel = \"{side}\"\n[command]\nargv = [\"{python}\", \"../model.py\", \"--{output}\"]\noutput = \"{output}\"\n[command.env]\nMODEL_KEY = \"${{{var}}}\"\nMODEL_THREADS = \"2\"\n[limits]\nretries = 0\n"
        )
    });
    project.write("model.py", PROGRAM);
    let output = project
        .cmd()
        .args(["run", "--cache", "--verbose"])
        .env("GG_CMD_CURRENT", CURRENT_SECRET)
        .env("GG_CMD_CANDIDATE", CANDIDATE_SECRET)
        .env("GG_PARENT_ONLY", PARENT_ONLY)
        .env("OPENAI_API_KEY", PARENT_KEY)
        .output()
        .unwrap();
    let run = Run::new(project.path(), output);
    assert!(matches!(run.code(), 0 | 1), "{}", run.stderr());
    assert_one_line_each(&run, &COMMAND_SCENARIOS);

    for (q, expected) in [
        ("q-echo", "my key is [redacted]"),
        ("q-upper", "[redacted]"),
        ("q-parent", "parent= openai="),
    ] {
        assert_eq!(run.result(q, "current")["answer"], expected, "{q}");
    }
    let answer = run.result("q-base64", "current")["answer"].clone();
    assert!(answer.as_str().unwrap().contains("[redacted]"), "{answer}");
    for side in ["current", "candidate"] {
        let (kind, _, message) = error_of(&run.result("q-fail", side));
        assert_eq!(kind, "bad_response");
        assert!(
            message.contains("bad key [redacted] [redacted]"),
            "{message}"
        );
    }
    for (q, printed) in [
        ("q-echo", "my key is [redacted]"),
        ("q-upper", "[redacted]"),
    ] {
        let (kind, _, message) = error_of(&run.result(q, "candidate"));
        assert_eq!(kind, "bad_response");
        assert!(message.contains(&format!("stdout: {printed}")), "{message}");
    }

    // What the program saw: the variables its file names and the minimal set, nothing else.
    let names = run.result("q-names", "current")["answer"]
        .as_str()
        .unwrap()
        .to_owned();
    let allowed = [
        "MODEL_KEY",
        "MODEL_THREADS",
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TMPDIR",
    ];
    for name in names.split(',') {
        assert!(
            allowed.contains(&name) || name.starts_with("LC_"),
            "the program saw {name}: {names}"
        );
    }
    assert!(
        names.contains("MODEL_KEY") && names.contains("PATH"),
        "{names}"
    );

    let reports = project.path().join("reports");
    assert_no_leak(&[&reports], &run, &[CURRENT_SECRET, CANDIDATE_SECRET]);
    // Not secrets goldgate was given for this program, so not scrubbed: absent because the program
    // never saw them.
    assert_no_leak(&[&reports], &run, &[PARENT_ONLY, PARENT_KEY]);
}

/// A secret too short to scrub is named at `validate` (file and field), for a key and for a
/// `${VAR}` of a command's environment; one long enough is not.
#[test]
fn validate_warns_about_secrets_too_short_to_scrub() {
    let items = vec![item("a", "q-a", &["fine"])];
    let project = Project::with_providers(&items, "", |side| {
        match side {
        "current" => "kind = \"openai\"\nmodel = \"m\"\nbase_url = \"http://127.0.0.1:9/v1\"\napi_key_env = \"GG_SHORT_KEY\"\n".to_owned(),
        _ => "kind = \"command\"\nmodel = \"m\"\n[command]\nargv = [\"python3\", \"x.py\"]\n[command.env]\nTOKEN = \"${GG_SHORT_TOKEN}\"\nLONG = \"${GG_LONG_TOKEN}\"\n".to_owned(),
    }
    });
    let output = project
        .cmd()
        .arg("validate")
        .env("GG_SHORT_KEY", "k3y-7")
        .env("GG_SHORT_TOKEN", "tok1234")
        .env("GG_LONG_TOKEN", "long-enough-token")
        .output()
        .unwrap();
    assert_exit(&output, 0);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert_eq!(warnings.len(), 2, "{stderr}");
    assert!(
        warnings[0].contains("current.toml")
            && warnings[0].contains("api_key_env")
            && warnings[0].contains("GG_SHORT_KEY")
            && warnings[0].contains("5 character(s)")
            && warnings[0].contains("too short to be scrubbed"),
        "{stderr}"
    );
    assert!(
        warnings[1].contains("candidate.toml")
            && warnings[1].contains("command.env.TOKEN")
            && warnings[1].contains("7 character(s)"),
        "{stderr}"
    );
    assert!(!stderr.contains("k3y-7") && !stderr.contains("tok1234"));
}
