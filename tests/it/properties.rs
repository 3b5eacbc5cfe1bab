//! Properties of every parser of what a user writes, through the library's public loaders: any
//! items.jsonl, golden.toml, goldgate.toml or provider file is loaded or refused with a located
//! error, never a panic; a valid item round-trips; the set's hash ignores how the file is laid
//! out; a lock is a lock; a URL the check accepts is one a client can use. The parsers of what
//! a server sends are properties beside their code (src/provider/http.rs, env.rs) and fuzz
//! targets (fuzz/).

use std::path::Path;

use goldgate::check::CheckSpec;
use goldgate::config::{EvalConfig, ProviderConfig, http_url_problem, parse_toml};
use goldgate::error::Error;
use goldgate::golden::{GoldenMeta, GoldenSet, Item, LockState, MatchMode};
use proptest::prelude::*;
use proptest::test_runner::Config;

/// 256 cases, the default, for the pure parsers; the ones that write files take fewer (each
/// case is a temporary directory) and still add only a second or two to `cargo test`.
fn file_cases() -> Config {
    if std::env::var_os("PROPTEST_CASES").is_some() {
        Config::default() // which reads it
    } else {
        Config::with_cases(128)
    }
}

/// A golden set directory holding exactly these two files.
fn golden_dir(meta: &str, items: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("golden.toml"), meta).unwrap();
    std::fs::write(dir.path().join("items.jsonl"), items).unwrap();
    dir
}

/// Every problem of an input error names `file` and, if it has a line, one that exists.
fn assert_located(err: &Error, file: &str, lines: usize) -> Result<(), TestCaseError> {
    let Error::Input(problems) = err else {
        return Err(TestCaseError::fail(format!("not an input error: {err}")));
    };
    prop_assert!(!problems.is_empty());
    for p in problems {
        prop_assert!(p.at.path.ends_with(file), "{p} does not name {file}");
        if let Some(line) = p.at.line {
            prop_assert!(
                (1..=lines.max(1)).contains(&line),
                "{p}: line {line} of {lines}"
            );
        }
        prop_assert!(!p.message.trim().is_empty(), "{p}");
    }
    Ok(())
}

fn line_count(text: &str) -> usize {
    text.split('\n').count()
}

// ---- items.jsonl ------------------------------------------------------------------------------

/// A name a golden set may use for an id or a tag: visible characters, no outer whitespace.
fn name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9._/é中🦀-]([a-zA-Z0-9 ._/é中🦀-]{0,30}[a-zA-Z0-9._/é中🦀-])?"
}

/// Text an item may carry anywhere: any characters, with something visible in it.
fn text() -> impl Strategy<Value = String> {
    (any::<String>(), "[a-zA-Z]").prop_map(|(any, visible)| format!("{visible}{any}"))
}

fn item() -> impl Strategy<Value = Item> {
    let lists = (
        proptest::collection::vec(text(), 0..3),
        proptest::collection::vec(text(), 0..3),
        proptest::collection::vec(any::<String>(), 0..3),
        proptest::collection::vec(name(), 0..3),
    );
    let optional = (
        proptest::option::of(any::<String>()),
        proptest::option::of(text()),
        any::<bool>(),
        proptest::collection::vec(
            prop_oneof![
                Just(CheckSpec::Json),
                ("[a-z]{1,5}|\\\\d\\+|\\(\\?i\\)refund", any::<bool>())
                    .prop_map(|(pattern, negate)| CheckSpec::Regex { pattern, negate }),
            ],
            0..3,
        ),
    );
    (name(), text(), lists, optional).prop_map(
        |(id, question, (keywords, forbidden, context, tags), (expected, label, all, checks))| {
            Item {
                id,
                question,
                keywords,
                match_mode: if all { MatchMode::All } else { MatchMode::Any },
                forbidden,
                context,
                expected,
                label,
                tags,
                group: None,
                checks,
                reference: None,
                provenance: None,
            }
        },
    )
}

/// A valid item's line, damaged the way a hand edit or a cut file damages one.
fn damaged_line() -> impl Strategy<Value = String> {
    let edit = prop_oneof![
        any::<prop::sample::Index>().prop_map(|cut| (cut, None)),
        (any::<prop::sample::Index>(), any::<char>()).prop_map(|(at, c)| (at, Some(c))),
    ];
    (item(), proptest::collection::vec(edit, 1..4)).prop_map(|(item, edits)| {
        let mut line = serde_json::to_string(&item).unwrap();
        for (at, insert) in edits {
            let boundaries: Vec<usize> = line
                .char_indices()
                .map(|(i, _)| i)
                .chain([line.len()])
                .collect();
            let i = boundaries[at.index(boundaries.len())];
            match insert {
                Some(c) => line.insert(i, c),
                None => line.truncate(i),
            }
        }
        line
    })
}

/// JSON a line could hold: any value, objects with the item's keys (and near-misses) among others.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let key = prop_oneof![
        proptest::sample::select(vec![
            "id",
            "question",
            "keywords",
            "match",
            "forbidden",
            "context",
            "expected",
            "label",
            "tags",
            "checks",
            "type",
            "pattern",
            "negate",
            "keyword",
            "",
        ])
        .prop_map(str::to_owned),
        any::<String>(),
    ];
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        prop_oneof![
            text(),
            Just("any".to_owned()),
            Just("regex".to_owned()),
            Just("json".to_owned())
        ]
        .prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            proptest::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

fn hostile_line() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => damaged_line(),
        2 => json_value().prop_map(|v| v.to_string()),
        1 => any::<String>(),
        1 => damaged_line().prop_map(|l| format!("\u{feff}{l}")),
        1 => "[{}\\[\\]\",: \\\\0-9a-z\r\t]{0,30}",
    ]
}

const META: &str = "name = \"set\"\nversion = 1\n";

proptest! {
    #![proptest_config(file_cases())]

    #[test]
    fn any_items_file_loads_or_is_refused_at_its_lines(
        lines in proptest::collection::vec(hostile_line(), 1..6),
        crlf in any::<bool>(),
    ) {
        let text = lines.join(if crlf { "\r\n" } else { "\n" });
        let dir = golden_dir(META, &text);
        match GoldenSet::load(dir.path()) {
            Ok(set) => prop_assert!(set.items.len() <= line_count(&text)),
            Err(e) => assert_located(&e, "items.jsonl", line_count(&text))?,
        }
    }

    #[test]
    fn any_bytes_in_items_jsonl_load_or_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("golden.toml"), META).unwrap();
        std::fs::write(dir.path().join("items.jsonl"), &bytes).unwrap();
        if let Err(e) = GoldenSet::load(dir.path()) {
            let lines = bytes.split(|b| *b == b'\n').count();
            assert_located(&e, "items.jsonl", lines)?;
        }
    }

    #[test]
    fn a_valid_item_reads_back_as_written(items in proptest::collection::vec(item(), 1..5)) {
        // Ids are unique within a set.
        let items: Vec<Item> = items
            .into_iter()
            .enumerate()
            .map(|(i, mut item)| {
                item.id = format!("{i}-{}", item.id);
                item
            })
            .collect();
        let lines: Vec<String> = items.iter().map(|i| serde_json::to_string(i).unwrap()).collect();
        let dir = golden_dir(META, &lines.join("\n"));
        let set = GoldenSet::load(dir.path()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(set.items.len(), items.len());
        for (i, item) in items.iter().enumerate() {
            prop_assert_eq!(&set.items.get(i), item);
            prop_assert_eq!(set.items.id(i), item.id.as_str());
            prop_assert!(set.items.tags(i).eq(item.tags.iter().map(String::as_str)));
        }
    }

    #[test]
    fn the_set_hash_ignores_key_order_line_order_and_blank_lines(
        items in proptest::collection::vec(item(), 1..5),
    ) {
        let items: Vec<Item> = items
            .into_iter()
            .enumerate()
            .map(|(i, mut item)| {
                item.id = format!("{i}-{}", item.id);
                item
            })
            .collect();
        let as_written: Vec<String> = items.iter().map(|i| serde_json::to_string(i).unwrap()).collect();
        // A Value's keys come out sorted: another key order, the same items.
        let reordered: Vec<String> = items
            .iter()
            .rev()
            .map(|i| format!("  {}\r\n", serde_json::to_value(i).unwrap()))
            .collect();
        let a = GoldenSet::load(golden_dir(META, &as_written.join("\n")).path());
        let b = GoldenSet::load(golden_dir(META, &format!("\n{}\n\n", reordered.concat())).path());
        let (a, b) = (a.map_err(|e| TestCaseError::fail(e.to_string()))?, b.map_err(|e| TestCaseError::fail(e.to_string()))?);
        prop_assert_eq!(a.sha256, b.sha256);
    }
}

// ---- TOML files: golden.toml, goldgate.toml, providers/*.toml --------------------------------

/// A TOML value as a careless or hostile file writes one: numbers past every range, `inf`, `nan`,
/// strings with escapes, URLs, templates and regexes, arrays and inline tables.
fn toml_value() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(vec![
            "0",
            "-1",
            "1",
            "8",
            "-0.0",
            "0.5",
            "1e308",
            "-1e308",
            "5e-324",
            "inf",
            "-inf",
            "nan",
            "+nan",
            "9223372036854775807",
            "-9223372036854775808",
            "18446744073709551616",
            "4294967296",
            "true",
            "false",
            "1979-05-27T07:32:00Z",
            "\"\"",
            "\" \"",
            "\"openai\"",
            "\"reference\"",
            "\"http\"",
            "\"command\"",
            "\"anthropic\"",
            "\"ollama\"",
            "\"gguf\"",
            "\"http://127.0.0.1:1/v1\"",
            "\"http://exa mple.com\"",
            "\"http://[::1\"",
            "\"https://h:99999\"",
            "\"{{ prompt | json }}\"",
            "\"{% if %}\"",
            "\"${KEY}\"",
            "\"${\"",
            "\"/choices/0/message/content\"",
            "\"(\"",
            "\"\\\\d+\"",
            "\"\\u0000\"",
            "\"\\n\"",
            "\"accuracy\"",
            "\"accuracy[tag=x]\"",
            "\"lexical\"",
            "\"judge\"",
            "[]",
            "[\"sh\", \"-c\"]",
            "[1, \"a\"]",
            "{}",
            "{ method = \"lexical\" }",
            "{ threshold = 2 }",
            "'''\nmulti\nline'''",
            "\"\"\"\n\"\"\"",
        ])
        .prop_map(str::to_owned),
        any::<f64>().prop_map(|v| format!("{v:?}")),
        any::<i64>().prop_map(|v| v.to_string()),
        "\"[^\"\\\\\\n]{0,12}\"",
    ]
}

fn toml_key() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => proptest::sample::select(vec![
            "name", "version", "description", "sha256", "locked_version", "source", "license",
            "golden", "current", "candidate", "prompt", "system", "repeats", "concurrency",
            "max_error_rate", "kind", "model", "base_url", "api_key_env", "temperature",
            "max_tokens", "seed", "stream", "input", "output", "per_hour", "timeout_s",
            "retries", "requests_per_minute", "tokens_per_minute", "url", "method", "body",
            "answer", "input_tokens", "output_tokens", "argv", "env", "sentences", "base_ms",
            "per_output_token_ms", "path", "template", "threads", "context", "field", "metric",
            "min", "max", "min_ratio", "max_ratio", "faithfulness", "similarity", "keywords",
            "fuzzy", "threshold", "checks", "extract", "\"sha256\"", "'version'",
        ])
        .prop_map(str::to_owned),
        1 => "[a-z_]{1,8}",
    ]
}

/// One line of a TOML file: a key, a table header, a comment, or junk.
fn toml_line() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => (toml_key(), toml_value()).prop_map(|(k, v)| format!("{k} = {v}")),
        2 => proptest::sample::select(vec![
            "[pricing]", "[limits]", "[http]", "[http.headers]", "[command]", "[command.env]",
            "[reference]", "[gguf]", "[tokenize]", "[scoring]", "[scoring.keywords]",
            "[scoring.similarity]", "[scoring.classification]", "[[gate]]", "[[scoring.checks]]",
            "[limits", "[[gate]", "[]",
        ])
        .prop_map(str::to_owned),
        1 => Just("# a comment".to_owned()),
        1 => any::<String>(),
    ]
}

/// A file of TOML-ish lines, usually starting like the file it stands for.
fn toml_file(start: &'static str) -> impl Strategy<Value = String> {
    (any::<bool>(), proptest::collection::vec(toml_line(), 0..12)).prop_map(move |(keep, lines)| {
        let body = lines.join("\n");
        if keep {
            format!("{start}{body}\n")
        } else {
            body
        }
    })
}

const ITEM: &str = "{\"id\": \"q1\", \"question\": \"Why?\", \"keywords\": [\"because\"]}\n";

/// A golden.toml as people write them, lock fields in every state (stale, quoted, commented out,
/// inside a multi-line string, at the largest version TOML can hold), each key at most once so
/// that most of them load, in any order, sometimes with a line of anything.
fn golden_toml() -> impl Strategy<Value = String> {
    use proptest::sample::select;
    let version = select(vec![
        "version = 1",
        "version = 2",
        "version = 9223372036854775807",
        "\"version\" = 3",
        "'version' = 4",
        "version=5 # bumped by hand",
    ]);
    let sha256 = proptest::option::of(select(vec![
        "sha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"",
        "\"sha256\" = \"deadbeef\"",
        "sha256 = ''",
        "# sha256 = \"commented out\"",
    ]));
    let locked = proptest::option::of(select(vec![
        "locked_version = 1",
        "locked_version = 9223372036854775807",
        "\"locked_version\" = 2",
    ]));
    let description = proptest::option::of(select(vec![
        "description = \"\"\"\nversion = 7\nsha256 = \"x\"\n\"\"\"",
        "description = 'version = 8'",
        "description = \"a = b # not a comment\"",
    ]));
    let others = proptest::collection::vec(
        select(vec![
            "source = \"s\"",
            "license = \"MIT\"",
            "",
            "# version = 6",
        ]),
        0..3,
    );
    let name = select(vec!["name = \"set\"", "\"name\" = \"set\""]);
    let junk = proptest::option::weighted(0.1, toml_line());
    (name, version, sha256, locked, description, others, junk)
        .prop_map(
            |(name, version, sha256, locked, description, others, junk)| {
                let mut lines: Vec<String> =
                    [Some(name), Some(version), sha256, locked, description]
                        .into_iter()
                        .flatten()
                        .chain(others)
                        .map(str::to_owned)
                        .collect();
                lines.extend(junk);
                lines
            },
        )
        .prop_shuffle()
        .prop_map(|lines| lines.join("\n") + "\n")
}

const EVAL_START: &str =
    "golden = \"goldens/set\"\ncurrent = \"p/current.toml\"\ncandidate = \"p/candidate.toml\"\n";

proptest! {
    #![proptest_config(file_cases())]

    #[test]
    fn any_golden_toml_loads_or_is_refused_at_its_lines(meta in prop_oneof![toml_file("name = \"set\"\nversion = 1\n"), golden_toml()]) {
        let dir = golden_dir(&meta, ITEM);
        match GoldenSet::load(dir.path()) {
            Ok(set) => {
                let parsed = parse_toml::<GoldenMeta>(Path::new("golden.toml"), &meta);
                prop_assert_eq!(parsed.map(|m| m.version).ok(), Some(set.meta.version));
            }
            Err(e) => assert_located(&e, "golden.toml", line_count(&meta))?,
        }
    }

    #[test]
    fn a_lock_that_says_locked_has_locked(meta in golden_toml()) {
        let dir = golden_dir(&meta, ITEM);
        if goldgate::golden::lock(dir.path()).is_ok() {
            let set = GoldenSet::load(dir.path()).map_err(|e| TestCaseError::fail(format!("{e}\nafter locking:\n{}", std::fs::read_to_string(dir.path().join("golden.toml")).unwrap())))?;
            prop_assert_eq!(set.lock_state(), LockState::Locked);
            // And locking again changes nothing.
            let before = std::fs::read_to_string(dir.path().join("golden.toml")).unwrap();
            goldgate::golden::lock(dir.path()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(std::fs::read_to_string(dir.path().join("golden.toml")).unwrap(), before);
        }
    }

    #[test]
    fn any_goldgate_toml_loads_or_is_refused_at_its_lines(text in toml_file(EVAL_START)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("goldgate.toml");
        std::fs::write(&path, &text).unwrap();
        if let Err(e) = EvalConfig::load(&path) {
            assert_located(&e, "goldgate.toml", line_count(&text))?;
        }
        if let Err(e) = parse_toml::<EvalConfig>(&path, &text) {
            assert_located(&e, "goldgate.toml", line_count(&text))?;
        }
    }

    #[test]
    fn any_provider_file_loads_and_builds_or_is_refused_at_its_lines(
        text in toml_file("kind = \"openai\"\nmodel = \"m\"\nbase_url = \"http://127.0.0.1:1/v1\"\n"),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("provider.toml");
        std::fs::write(&path, &text).unwrap();
        if let Err(e) = ProviderConfig::parse(&path) {
            assert_located(&e, "provider.toml", line_count(&text))?;
        }
        match goldgate::provider::load_config(&path) {
            // A file that passed its checks builds a client or names the problem, never panics:
            // every number in it is one a Duration, a semaphore and a rate limiter can take.
            Ok(cfg) => {
                if let Err(e) = goldgate::provider::Client::from_config(&path, &cfg) {
                    prop_assert!(matches!(e, Error::Input(_)), "{e}");
                }
            }
            Err(e) => assert_located(&e, "provider.toml", line_count(&text))?,
        }
    }
}

// ---- URLs ------------------------------------------------------------------------------------

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        // A label beginning `xn--` is punycode, which must then decode to a valid name (`a.xn--`
        // is refused by the URL standard, rightly): names, not encoded ones, are meant here.
        "[a-z][a-z0-9-]{0,10}(\\.[a-z][a-z0-9-]{0,10}){0,3}"
            .prop_filter("a label starting xn-- is punycode", |h: &String| !h
                .split('.')
                .any(|label| label.starts_with("xn--"))),
        "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}",
        Just("[::1]".to_owned()),
        Just("localhost".to_owned()),
    ]
}

proptest! {
    #[test]
    fn any_text_is_a_usable_url_or_says_why_not(url in prop_oneof![any::<String>(), "https?://[^/]{0,12}(/.{0,8})?"]) {
        match http_url_problem(&url) {
            None => {
                let parsed = reqwest::Url::parse(&url);
                prop_assert!(parsed.as_ref().is_ok_and(|u| u.host().is_some() && u.scheme().starts_with("http")), "{url:?}: {parsed:?}");
            }
            Some(problem) => prop_assert!(!problem.is_empty()),
        }
    }

    #[test]
    fn a_well_formed_url_is_accepted(
        https in any::<bool>(), host in host(), port in proptest::option::of(1u16..), path in "(/[a-zA-Z0-9._~-]{0,8}){0,3}",
    ) {
        let scheme = if https { "https" } else { "http" };
        let port = port.map(|p| format!(":{p}")).unwrap_or_default();
        let url = format!("{scheme}://{host}{port}{path}");
        prop_assert_eq!(http_url_problem(&url), None, "{}", url);
    }

    #[test]
    fn a_broken_host_or_port_is_refused(
        host in "[a-z]{1,8}", broken in prop_oneof![
            Just(" x".to_owned()), Just("[".to_owned()), Just(":port".to_owned()),
            (65_536u32..10_000_000).prop_map(|p| format!(":{p}")),
        ],
    ) {
        let url = format!("http://{host}{broken}/v1");
        prop_assert!(http_url_problem(&url).is_some(), "{}", url);
    }
}
