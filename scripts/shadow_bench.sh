#!/usr/bin/env bash
# What `goldgate shadow` costs (issue 19, "Measure and report"):
#
# 1. Replay: N logged requests (a generated request/response log, each a system and a user
#    message, distinct) replayed against the benchmark server (examples/bench_server.rs) at
#    LATENCY_MS, CONCURRENCY requests in flight in all: once with the noise baseline (both models,
#    2N calls, CONCURRENCY/2 each) and once with --no-current (the candidate alone, N calls, all of
#    CONCURRENCY). Each is timed with its peak memory (GNU time); the ideal wall time is
#    calls x LATENCY_MS / CONCURRENCY.
# 2. Parse rate: a log of about PARSE_MB MB (the same lines, repeated with new ids) read by
#    `goldgate golden from-log LOG --sample 1` pinned to one core (taskset -c 0): every line is
#    parsed, checked, fingerprinted for de-duplication and offered to the sample; one item is
#    written. MB/s = file size / wall time.
#
#   bash scripts/shadow_bench.sh [N] [LATENCY_MS] [CONCURRENCY] [PARSE_MB]   defaults: 100000 50 256 1024
#
# Prints a table and appends a JSON line to bench/shadow.jsonl. GOLDGATE=path measures that binary;
# KEEP=1 keeps the work directory. About 2 minutes on 2 cores after the build, and ~1.1 GB of
# temporary disk for the parse log. The set-up is scripts/bench_common.sh's.
set -euo pipefail
N=${1:-100000}; LATENCY_MS=${2:-50}; CONC=${3:-256}; PARSE_MB=${4:-1024}
cd "$(dirname "$0")/.."
# shellcheck source=scripts/bench_common.sh
source scripts/bench_common.sh
bench_build
bench_workdir
bench_start_server "$LATENCY_MS"

# log FILE COUNT FIRST_ID: COUNT request/response lines, distinct, of the size a chat turn has.
log() {
  python3 - "$1" "$2" "$3" <<'PY'
import json, sys
path, count, first = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
system = "You are the support assistant of an online shop. Answer from the policy; be brief and polite."
with open(path, "w") as out:
    for i in range(first, first + count):
        line = {
            "id": f"req-{i}", "timestamp": f"2026-11-01T{(i // 3600) % 24:02d}:{(i // 60) % 60:02d}:{i % 60:02d}Z",
            "latency_ms": 700 + i % 300, "metadata": {"route": "returns" if i % 3 else "billing", "tenant": f"t{i % 17}"},
            "request": {"model": "prod-model", "temperature": 0.2, "max_tokens": 256,
                        "messages": [{"role": "system", "content": system},
                                     {"role": "user", "content": f"How long is the refund window for order {i}? I bought it last week."}]},
            "response": {"id": f"chatcmpl-{i}", "object": "chat.completion", "created": 1761990000 + i, "model": "prod-model-2026-10",
                         "choices": [{"index": 0, "finish_reason": "stop",
                                      "message": {"role": "assistant", "content": "The refund window is 30 days from delivery."}}],
                         "usage": {"prompt_tokens": 120, "completion_tokens": 12, "total_tokens": 132}},
        }
        out.write(json.dumps(line, separators=(",", ":")) + "\n")
PY
}

mkdir -p "$work/providers"
project() { # project CONCURRENCY_EACH
  for side in current candidate; do
    printf 'kind = "openai"\nmodel = "%s"\nbase_url = "http://%s/v1"\n[pricing]\ninput = 2.5\noutput = 10\n[limits]\nconcurrency = %s\ntimeout_s = 30\n' \
      "$side" "$addr" "$1" > "$work/providers/$side.toml"
  done
  printf 'golden = "goldens/none"\ncurrent = "providers/current.toml"\ncandidate = "providers/candidate.toml"\n[[shadow.gate]]\nmetric = "error_rate"\nmax = 0.01\n' > "$work/goldgate.toml"
}

log "$work/traffic.jsonl" "$N" 0
log_mb=$(python3 -c "import os,sys; print(round(os.path.getsize(sys.argv[1]) / 1e6, 1))" "$work/traffic.jsonl")

replay() { # replay NAME CALLS ARGS...
  local name=$1 calls=$2 code=0 start; shift 2
  start=$(date +%s.%N)
  bench_measure "$work/$name.time" "$goldgate" shadow -c "$work/goldgate.toml" --log "$work/traffic.jsonl" \
    --out "$work/reports-$name" --quiet "$@" > "$work/$name.out" 2> "$work/$name.err" || code=$?
  [ "$code" = 0 ] || { echo "goldgate shadow $* exited $code:" >&2; cat "$work/$name.err" >&2; exit 1; }
  read -r wall kb _ < "$work/$name.time"
  # The phases, from the run directory's file times: run.json is written before the first call,
  # results.jsonl last modified by the last answer, summary.json and junit.xml after them.
  python3 - "$name" "$calls" "$wall" "$kb" "$LATENCY_MS" "$CONC" "$start" "$work/reports-$name/$(tail -n 1 "$work/$name.out" | xargs basename)" <<'PY' >> "$work/rows.jsonl"
import json, os, sys
name, calls, wall, kb, latency, conc = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
start, run = float(sys.argv[7]), sys.argv[8]
at = lambda f: os.path.getmtime(os.path.join(run, f)) - start
ideal = calls * latency / 1000 / conc
phases = {"before_first_call_s": round(at("run.json"), 2),
          "replay_s": round(at("results.jsonl") - at("run.json"), 2),
          "summary_s": round(at("summary.json") - at("results.jsonl"), 2),
          "reports_s": round(at("junit.xml") - at("summary.json"), 2)}
print(json.dumps({"run": name, "calls": calls, "wall_s": wall, "ideal_s": round(ideal, 2),
                  "vs_ideal": round(wall / ideal, 3), "peak_mb": round(kb / 1024, 1), "phases": phases}))
PY
}

project $((CONC / 2))
replay noise-baseline $((2 * N))
project "$CONC"
replay candidate-only "$N" --no-current

# The parse log: the replay log repeated, each copy with new ids, to PARSE_MB.
copies=$(python3 -c "import math,sys; print(max(1, math.ceil(float(sys.argv[1]) / float(sys.argv[2]))))" "$PARSE_MB" "$log_mb")
: > "$work/big.jsonl"
for c in $(seq 0 $((copies - 1))); do
  sed "s/\"req-/\"req-$c-/; s/order \\([0-9]*\\)?/order $c-\\1?/" "$work/traffic.jsonl" >> "$work/big.jsonl"
done
rm -f "$work/traffic.jsonl"
big_mb=$(python3 -c "import os,sys; print(round(os.path.getsize(sys.argv[1]) / 1e6, 1))" "$work/big.jsonl")
pin=()
command -v taskset >/dev/null && pin=(taskset -c 0)
bench_measure "$work/parse.time" "${pin[@]}" "$goldgate" golden from-log "$work/big.jsonl" --sample 1 \
  --out "$work/goldens/parsed" > "$work/parse.out" 2> "$work/parse.err"
read -r pwall pkb _ < "$work/parse.time"

python3 - "$work/rows.jsonl" "$big_mb" "$pwall" "$pkb" "$N" "$LATENCY_MS" "$CONC" "$log_mb" <<'PY' | tee -a bench/shadow.jsonl
import json, sys, datetime, os
rows = [json.loads(l) for l in open(sys.argv[1])]
big_mb, pwall, pkb = float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
n, latency, conc, log_mb = int(sys.argv[5]), float(sys.argv[6]), int(sys.argv[7]), float(sys.argv[8])
for r in rows:
    p = r["phases"]
    print(f"# {r['run']:15} {r['calls']:>7} calls  {r['wall_s']:7.2f} s  ideal {r['ideal_s']:6.2f} s  {r['vs_ideal']:.3f}x  peak {r['peak_mb']:6.1f} MB"
          f"  (before the first call {p['before_first_call_s']} s, replay {p['replay_s']} s, summary {p['summary_s']} s, reports {p['reports_s']} s)", file=sys.stderr)
print(f"# parse {big_mb:.0f} MB on one core: {pwall:.2f} s = {big_mb / pwall:.0f} MB/s, peak {pkb / 1024:.1f} MB", file=sys.stderr)
load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
print(json.dumps({"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "load_avg_1m": load,
                  "requests": n, "log_mb": log_mb, "latency_ms": latency, "concurrency": conc, "cpus": os.cpu_count(),
                  "replay": rows, "parse": {"mb": big_mb, "wall_s": pwall, "mb_per_s": round(big_mb / pwall, 1),
                                            "peak_mb": round(pkb / 1024, 1)}}))
PY
