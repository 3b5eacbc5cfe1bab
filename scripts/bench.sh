#!/usr/bin/env bash
# goldgate's own cost next to the models it measures. Starts a local OpenAI-compatible server with
# a fixed latency (examples/bench_server.rs), generates an N-item golden set, runs both models
# against it, and prints (and appends to bench/results.jsonl) wall time against the ideal
# N x latency / per-provider concurrency, requests per second, CPU seconds per 1,000 requests,
# peak RSS, goldgate's p50 against the server's own measured p50, and the time to render the reports.
#
#   bash scripts/bench.sh [N] [LATENCY_MS] [CONCURRENCY]      defaults: 2000 50 64
#
# RUNS=k runs goldgate k times against the same server and reports the median wall time (each
# run's in wall_s_runs): on a shared machine one run is noise. The binaries are built into
# $CARGO_TARGET_DIR (default target/); GOLDGATE=path measures that binary instead, unbuilt.
# The set-up (build, server, golden set, providers, goldgate.toml) is scripts/bench_common.sh's.
set -euo pipefail
N=${1:-2000}; LATENCY_MS=${2:-50}; CONC=${3:-64}; RUNS=${RUNS:-1}
cd "$(dirname "$0")/.."
# shellcheck source=scripts/bench_common.sh
source scripts/bench_common.sh
bench_build
bench_workdir
bench_start_server "$LATENCY_MS"
bench_project "$N" "$CONC"
validate_start=$(date +%s.%N)
"$goldgate" validate -c "$work/goldgate.toml" >/dev/null
validate_s=$(echo "$(date +%s.%N) - $validate_start" | bc)

for run in $(seq "$RUNS"); do
  set +e
  /usr/bin/time -v "$goldgate" run -c "$work/goldgate.toml" --out "$work/reports" --quiet \
    > "$work/run.out" 2> "$work/time-$run.txt"
  code=$?
  set -e
done
run_dir=$(tail -n 1 "$work/run.out")
curl -s "http://$addr/stats" > "$work/stats.json"
# The server (and a bare Rust client) alone at the same load: the ceiling goldgate is measured against.
"$bench_server" load "http://$addr" 3 $((2 * CONC)) > "$work/capacity.json"
report_start=$(date +%s.%N)
"$goldgate" report "$run_dir" >/dev/null
report_s=$(echo "$(date +%s.%N) - $report_start" | bc)
mkdir -p bench
python3 - "$N" "$LATENCY_MS" "$CONC" "$work" "$run_dir/summary.json" "$code" "$work/stats.json" "$report_s" "$validate_s" "$work/capacity.json" "$RUNS" <<'PY' | tee -a bench/results.jsonl
import json, re, sys, datetime, statistics
n, lat, conc = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
runs = [open(f"{sys.argv[4]}/time-{k}.txt").read() for k in range(1, int(sys.argv[11]) + 1)]
def field(t, name):
    return re.search(re.escape(name) + r":\s*(.+)", t).group(1).strip()
def wall_of(t):
    parts = [float(p) for p in field(t, "Elapsed (wall clock) time (h:mm:ss or m:ss)").split(":")]
    return sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
walls = [wall_of(t) for t in runs]
wall = statistics.median(walls)
cpu = statistics.median(float(field(t, "User time (seconds)")) + float(field(t, "System time (seconds)")) for t in runs)
peak_kb = max(int(field(t, "Maximum resident set size (kbytes)")) for t in runs)
s = json.load(open(sys.argv[5]))
server = json.load(open(sys.argv[7]))
ideal = n * lat / 1000 / conc
m = s["models"]["current"]["metrics"]
print(json.dumps({
    "when": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "items": n, "latency_ms": lat, "concurrency": conc, "exit": int(sys.argv[6]), "status": s["status"],
    "wall_s": round(wall, 3), "wall_s_runs": [round(w, 3) for w in walls],
    "ideal_s": round(ideal, 3), "ratio": round(wall / ideal, 3) if ideal else None,
    "requests_per_s": round(2 * n / wall, 1), "cpu_s_per_1k_requests": round(cpu / (2 * n) * 1000, 4),
    "peak_rss_mb": round(peak_kb / 1024, 1),
    "p50_ms": m["latency_ms"]["p50"], "server_p50_ms": server["p50_ms"],
    "p50_minus_server_ms": round(m["latency_ms"]["p50"] - server["p50_ms"], 3),
    "errors": m["errors"] + s["models"]["candidate"]["metrics"]["errors"],
    "report_s": round(float(sys.argv[8]), 3), "validate_s": round(float(sys.argv[9]), 3),
    "server_alone_requests_per_s": json.load(open(sys.argv[10]))["requests_per_s"]}))
PY
