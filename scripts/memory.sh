#!/usr/bin/env bash
# goldgate's peak memory for N items: the figure docs/performance.md gives for 100,000 and 1,000,000.
# Starts the benchmark server (examples/bench_server.rs) answering at once, generates bench.sh's
# N-item golden set, runs both models over it, re-renders the reports with `goldgate report`, and
# resumes the finished run (`run --resume`: it reads the run back, finds nothing left to do and
# concludes again, which is all a resumed run holds beyond a fresh one). Prints (and appends to
# bench/memory.jsonl) the peak RSS of each, and the run's peak split into the request phase
# (results still arriving) and the end (summary and reports), from VmRSS sampled every 0.1 s.
#
#   bash scripts/memory.sh [N] [LATENCY_MS] [CONCURRENCY]      defaults: 100000 0 256
#
# The binaries are built into $CARGO_TARGET_DIR (default target/); GOLDGATE=path measures that
# binary instead, without building it (the benchmark server is built if missing).
# The set-up (build, server, golden set, providers, goldgate.toml) is scripts/bench_common.sh's.
set -euo pipefail
N=${1:-100000}; LATENCY_MS=${2:-0}; CONC=${3:-256}
cd "$(dirname "$0")/.."
# shellcheck source=scripts/bench_common.sh
source scripts/bench_common.sh
bench_build
bench_workdir
bench_start_server "$LATENCY_MS"
# The same golden set, providers and gate as scripts/bench.sh.
bench_project "$N" "$CONC"

# VmRSS (kB) and the size of results.jsonl so far, every 0.1 s, while the run lasts: samples
# taken once the file has its final size are the end (summary and reports).
sample() {
  local pid=$1 out=$2 rss size
  while kill -0 "$pid" 2>/dev/null; do
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    size=$(stat -c %s "$work"/reports/*/results.jsonl 2>/dev/null || echo 0)
    [ -z "$rss" ] || echo "$rss $size" >> "$out"
    sleep 0.1
  done
}
set +e
/usr/bin/time -v "$goldgate" run -c "$work/goldgate.toml" --out "$work/reports" --quiet \
  > "$work/run.out" 2> "$work/run.time" &
time_pid=$!
# The process /usr/bin/time started: its only child.
for _ in $(seq 100); do run_pid=$(pgrep -P "$time_pid" | head -n 1); [ -n "$run_pid" ] && break; sleep 0.01; done
sample "$run_pid" "$work/rss.txt" &
sampler_pid=$!
wait "$time_pid"; code=$?
wait "$sampler_pid"
set -e
# 0 pass, 1 a gate failed, 4 inconclusive: the run itself completed.
case $code in 0|1|4) ;; *) echo "goldgate run exited $code:" >&2; cat "$work/run.time" >&2; exit 1 ;; esac
run_dir=$(tail -n 1 "$work/run.out")
/usr/bin/time -v "$goldgate" report "$run_dir" > /dev/null 2> "$work/report.time"
/usr/bin/time -v "$goldgate" run --resume "$run_dir" --quiet > /dev/null 2> "$work/resume.time" || {
  echo "goldgate run --resume failed:" >&2; cat "$work/resume.time" >&2; exit 1; }
mkdir -p bench
python3 - "$N" "$LATENCY_MS" "$CONC" "$work/run.time" "$work/report.time" "$work/rss.txt" "$goldgate" "$work/resume.time" <<'PY' | tee -a bench/memory.jsonl
import json, re, sys, datetime
n, lat, conc = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
def field(path, name):
    return re.search(re.escape(name) + r":\s*(.+)", open(path).read()).group(1).strip()
def peak_mb(path):
    return round(int(field(path, "Maximum resident set size (kbytes)")) / 1024, 1)
def wall_s(path):
    parts = [float(p) for p in field(path, "Elapsed (wall clock) time (h:mm:ss or m:ss)").split(":")]
    return round(sum(p * 60 ** i for i, p in enumerate(reversed(parts))), 2)
samples = [tuple(map(int, l.split())) for l in open(sys.argv[6]) if len(l.split()) == 2]
final = max((size for _, size in samples), default=0)
during = [rss for rss, size in samples if size < final]
after = [rss for rss, size in samples if size == final]
mb = lambda xs: round(max(xs) / 1024, 1) if xs else None
print(json.dumps({
    "when": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "items": n, "latency_ms": lat, "concurrency": conc, "binary": sys.argv[7],
    "run_peak_rss_mb": peak_mb(sys.argv[4]), "run_wall_s": wall_s(sys.argv[4]),
    "run_sampled_peak_mb": {"requests": mb(during), "summary_and_reports": mb(after)},
    "report_peak_rss_mb": peak_mb(sys.argv[5]), "report_wall_s": wall_s(sys.argv[5]),
    "resume_peak_rss_mb": peak_mb(sys.argv[8]), "resume_wall_s": wall_s(sys.argv[8])}))
PY
