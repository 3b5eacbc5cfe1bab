# Developer recipes. `just` is optional: each recipe shows the plain cargo command it runs.

default: ci

# What CI runs: format check, lints, all tests.
ci:
    bash .ci/run

fmt:
    cargo fmt --all

lint:
    cargo clippy --all-targets -- -D warnings

test:
    cargo test

# The main job on the shipped example (no key, no network).
demo:
    cargo run --release -- run

# Validate the shipped evaluation without running it.
validate:
    cargo run --release -- validate

# The benchmark: N items against a local server answering in LATENCY_MS, per-provider concurrency CONC.
bench N="2000" LATENCY_MS="50" CONC="64":
    bash scripts/bench.sh {{N}} {{LATENCY_MS}} {{CONC}}
