#!/usr/bin/env bash
# Interop against a real OpenAI-compatible server nobody here wrote: llama.cpp, as packaged by
# llama-cpp-python[server] (PyPI), serving the shipped local model SmolLM2-135M-Instruct.
#
# It runs goldgate over the shipped 48-item golden set and checks what it records
# (scripts/interop/check.py):
#   1. --interrupt_requests False, one request at a time: not streamed (current) against streamed
#      (candidate), then the other way round. Each side's answers must equal the other run's same
#      side exactly (greedy decoding, the same requests in the same order): streaming changes no
#      answer. None may be empty; every streamed answer has a time to first token.
#   2. the same server, CONCURRENCY requests per model (above the server's one slot): no errors, no
#      empty answers. Answers are compared but not required to match: the server reuses the cached
#      prefix of the previous prompt, so a different order of requests changes the arithmetic, and a
#      135M model's greedy choice with it.
#   3. the same, the streamed side counting tokens with the server's tokenizer ([tokenize]).
#   4. the server's defaults (interrupt_requests = True, which ends a running stream when a new
#      request arrives), CONCURRENCY per model: no answer may be recorded empty; interrupted
#      streams must show as bad_response errors naming the cause.
# With --record it then re-records the transcripts that tests/it/interop.rs replays, into
# tests/fixtures/interop/llama-cpp-python/.
#
# Not part of CI: the first run builds llama-cpp-python from source (about 9 minutes on 2 cores).
#
#   bash scripts/interop.sh [--record]          # or: just interop
#
# Environment: GOLDGATE_INTEROP (venv and scratch, default ~/.cache/goldgate/interop),
# GOLDGATE_MODELS (as scripts/fetch-models.sh), PYTHON (default python3), CONCURRENCY (default 4).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
VERSION="0.3.36"
WORK="${GOLDGATE_INTEROP:-$HOME/.cache/goldgate/interop}"
MODELS="${GOLDGATE_MODELS:-$HOME/.cache/goldgate/models}"
PYTHON="${PYTHON:-python3}"
CONCURRENCY="${CONCURRENCY:-4}"
RECORD=false
[[ "${1:-}" == "--record" ]] && RECORD=true

step() { printf '\n== %s (%ds)\n' "$1" "$SECONDS"; }

step "llama-cpp-python[server]==$VERSION in $WORK/venv"
VENV="$WORK/venv"
# A portable AVX2 build, not -march=native: on a virtual machine whose CPU reports AMX (Sapphire
# Rapids), the native build died with "Illegal instruction" at the first generation.
BUILD="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
if ! "$VENV/bin/python" -c "import llama_cpp, llama_cpp.server, sys; sys.exit(llama_cpp.__version__ != '$VERSION')" 2>/dev/null \
   || [[ "$(cat "$VENV/goldgate-build" 2>/dev/null)" != "$BUILD" ]]; then
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  CMAKE_ARGS="$BUILD" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    "$VENV/bin/pip" install --force-reinstall --no-cache-dir "llama-cpp-python[server]==$VERSION"
  echo "$BUILD" >"$VENV/goldgate-build"
fi
"$VENV/bin/python" -c "import llama_cpp; print('llama_cpp', llama_cpp.__version__)"

step "the model"
bash scripts/fetch-models.sh
MODEL="$MODELS/SmolLM2-135M-Instruct.Q4_1.gguf"

step "goldgate"
cargo build --release --locked --features gguf
GOLDGATE="$ROOT/target/release/goldgate"

PORT="$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
BASE="http://127.0.0.1:$PORT/v1"
SERVER_PID=""
stop_server() {
  if [[ -n "$SERVER_PID" ]]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  SERVER_PID=""
}
trap stop_server EXIT
start_server() { # extra server arguments...
  stop_server
  "$VENV/bin/python" -m llama_cpp.server --model "$MODEL" --host 127.0.0.1 --port "$PORT" \
    --n_ctx 2048 --verbose False "$@" >"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 120); do
    if curl -fsS "$BASE/models" >/dev/null 2>&1; then return 0; fi
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log"; exit 1; }
    sleep 0.5
  done
  echo "the server did not come up; its log:" >&2; cat "$WORK/server.log" >&2; exit 1
}

PROJECT="$WORK/project"
rm -rf "$PROJECT"; mkdir -p "$PROJECT/providers"
provider() { # FILE STREAM EXTRA
  cat >"$PROJECT/providers/$1.toml" <<TOML
kind = "openai"
model = "SmolLM2-135M-Instruct Q4_1"
base_url = "$BASE"
temperature = 0.0
seed = 7
max_tokens = 64
stream = $2
$3
[limits]
concurrency = $CONCURRENCY
retries = 2
timeout_s = 300
TOML
}
provider plain false ""
provider stream true ""
provider stream-tokenize true "[tokenize]
url = \"http://127.0.0.1:$PORT/extras/tokenize/count\"
field = \"input\""
evaluation() { # FILE CURRENT CANDIDATE [EXTRA]
  cat >"$PROJECT/$1" <<TOML
golden = "$ROOT/goldens/support-faq"
current = "providers/$2.toml"
candidate = "providers/$3.toml"
${4:-}
TOML
}
evaluation serial.toml plain stream "concurrency = 1"
evaluation serial-swapped.toml stream plain "concurrency = 1"
evaluation stream.toml plain stream
evaluation tokenize.toml plain stream-tokenize
run() { # CONFIG -> prints the run directory
  local code=0
  "$GOLDGATE" run -c "$PROJECT/$1" --out "$PROJECT/reports" >"$WORK/$1.out" 2>"$WORK/$1.err" || code=$?
  # 0 pass, 1 a gate failed: both are complete runs; anything else is not.
  if (( code > 1 )); then cat "$WORK/$1.out" "$WORK/$1.err" >&2; exit "$code"; fi
  tail -n 1 "$WORK/$1.out"
}

step "1. --interrupt_requests False, one request at a time: not streamed vs streamed, and swapped"
start_server --interrupt_requests False
RUN1="$(run serial.toml)"
RUN1S="$(run serial-swapped.toml)"
"$PYTHON" scripts/interop/check.py "$RUN1" --no-empty --ttft candidate --errors 0
"$PYTHON" scripts/interop/check.py "$RUN1S" --no-empty --ttft current --errors 0 --streamed current
"$PYTHON" scripts/interop/check.py "$RUN1" --same-as "$RUN1S"

step "2. the same server, $CONCURRENCY requests per model: not streamed vs streamed"
RUN2="$(run stream.toml)"
"$PYTHON" scripts/interop/check.py "$RUN2" --no-empty --ttft candidate --errors 0

step "3. the same, streamed tokens counted by the server's tokenizer"
RUN3="$(run tokenize.toml)"
"$PYTHON" scripts/interop/check.py "$RUN3" --no-empty --ttft candidate --errors 0 --tokens-from "$RUN2"

step "4. the server's defaults (interrupt_requests = True), $CONCURRENCY requests per model"
start_server
RUN4="$(run stream.toml)"
"$PYTHON" scripts/interop/check.py "$RUN4" --no-empty --interrupted-named

if $RECORD; then
  step "recording transcripts (server defaults)"
  "$VENV/bin/python" scripts/interop/record.py --base "$BASE" \
    --out tests/fixtures/interop/llama-cpp-python \
    --tokenize "http://127.0.0.1:$PORT/extras/tokenize/count" \
    --source "llama-cpp-python[server] $VERSION (python -m llama_cpp.server --n_ctx 2048, defaults otherwise), SmolLM2-135M-Instruct Q4_1 GGUF, Linux x86_64 2 cores"
fi
step "done"
