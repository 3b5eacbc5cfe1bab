//! `goldgate init`: a working evaluation in a directory, runnable at once with no key.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::cli::InitArgs;
use crate::error::{Error, Exit, Location};

pub fn init(args: &InitArgs) -> anyhow::Result<Exit> {
    let created = scaffold(&args.dir)?;
    let mut out = std::io::stdout().lock();
    for path in created {
        writeln!(out, "created {}", path.display())?;
    }
    writeln!(out, "\nnext: cd {} && goldgate run", args.dir.display())?;
    Ok(Exit::Pass)
}

const GOLDGATE_TOML: &str = r#"# The evaluation: which golden set, which two providers, the prompt, the gates.
# Paths are relative to this file.
golden = "goldens/example"
current = "providers/current.toml"
candidate = "providers/candidate.toml"
repeats = 1
# With repeats: an item passes for a model when "all" (default), "majority" or "any" of its trials pass.
item_pass = "all"

# A tera template. Variables: question, context, contexts, id, tags.
prompt = """{% if context %}Answer the question using only the context below.

Context:
{{ context }}

{% endif %}Question: {{ question }}"""

# Every metric gets a confidence interval, and each gate one of three outcomes: pass (the data
# show the bound holds), fail (they show it does not), inconclusive (exit 4: more items needed).
[statistics]
confidence = 0.95
seed = 1            # the bootstrap's seed: same results, same intervals
resamples = 1000

# Five items cannot show that a candidate is as good as the current model (`goldgate golden stats
# goldens/example --baseline-accuracy 0.9` says how many can), so until the set has a few hundred
# items these gates fail only on a significant worsening ("harm"). Then remove the `decide`
# lines: the default, "noninferiority", makes the candidate show it is no worse.

# Candidate accuracy at least 95% of the current model's (paired, item by item).
[[gate]]
metric = "accuracy"
min_ratio = 0.95
decide = "harm"

# Faithfulness to the context, 1-5.
[[gate]]
metric = "faithfulness"
min = 4.0
decide = "harm"

# p95 latency at most 110% of the current model's (a paired bootstrap of the ratio).
[[gate]]
metric = "latency_p95_ms"
max_ratio = 1.10
decide = "harm"

# No more failed requests than the current model. A zero margin can never be shown to hold, so
# this gate fails only on a significant worsening ("harm", Holm-adjusted across such gates).
[[gate]]
metric = "error_rate"
max_ratio = 1.0
decide = "harm"
"#;

const CURRENT_TOML: &str = r#"# The current model. This scaffold uses a built-in extractive answerer so it runs with no key.
# For a real model, replace with e.g.:
#   kind = "openai"
#   model = "gpt-4o-mini"
#   api_key_env = "OPENAI_API_KEY"          # the key is read from this variable, never from a file
#   # base_url = "http://127.0.0.1:8000/v1" # any OpenAI-compatible server
kind = "reference"
model = "best-sentence"

[reference]
sentences = 1
# A simulated service time, so the latency gate compares two real durations. At 0 ms it would
# compare scheduler noise (microseconds) and fail at random.
base_ms = 200

[pricing]   # USD per million tokens
input = 0.15
output = 0.60

[limits]
concurrency = 8
timeout_s = 60
retries = 4
"#;

const CANDIDATE_TOML: &str = r#"# The candidate model. See current.toml for how to point this at a real API.
kind = "reference"
model = "best-two-sentences"

[reference]
sentences = 2
base_ms = 200

[pricing]   # USD per million tokens
input = 0.15
output = 0.60

[limits]
concurrency = 8
timeout_s = 60
retries = 4
"#;

const GOLDEN_TOML: &str = r#"name = "example"
version = 1
description = "A starter golden set: replace these items with your own"
"#;

const ITEMS: &str = r#"{"id": "returns-window", "question": "How long do I have to return an item?", "context": "Items can be returned within 30 days of delivery. Refunds go to the original payment method.", "keywords": ["30 days"], "tags": ["returns"]}
{"id": "refund-method", "question": "Where does my refund go?", "context": "Items can be returned within 30 days of delivery. Refunds go to the original payment method.", "keywords": ["original payment method"], "tags": ["returns"]}
{"id": "shipping-free", "question": "When is shipping free?", "context": "Standard shipping is free on orders over $50. Express shipping costs $12.", "keywords": ["$50"], "tags": ["shipping"]}
{"id": "shipping-express", "question": "How much does express shipping cost?", "context": "Standard shipping is free on orders over $50. Express shipping costs $12.", "keywords": ["$12"], "tags": ["shipping"]}
{"id": "password-reset", "question": "How do I reset my password?", "context": "Use the Forgot password link on the sign-in page. Support staff will never ask for your password.", "keywords": ["Forgot password"], "forbidden": ["send us your password"], "tags": ["account"]}
"#;

/// Create the scaffold; refuses to overwrite anything that exists.
fn scaffold(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let files: [(&str, &str); 5] = [
        ("goldgate.toml", GOLDGATE_TOML),
        ("providers/current.toml", CURRENT_TOML),
        ("providers/candidate.toml", CANDIDATE_TOML),
        ("goldens/example/golden.toml", GOLDEN_TOML),
        ("goldens/example/items.jsonl", ITEMS),
    ];
    for (rel, _) in &files {
        let path = dir.join(rel);
        if path.exists() {
            return Err(Error::input(
                Location::file(&path),
                "already exists; init never overwrites",
                "run init in an empty directory, or edit the existing files",
            ));
        }
    }
    let mut created = Vec::new();
    for (rel, content) in files {
        let path = dir.join(rel);
        let write = || -> std::io::Result<()> {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&path, content)
        };
        write().map_err(|e| {
            Error::input(
                Location::file(&path),
                format!("cannot write: {e}"),
                "check the directory is writable",
            )
        })?;
        created.push(path);
    }
    crate::golden::lock(&dir.join("goldens/example"))?;
    Ok(created)
}
