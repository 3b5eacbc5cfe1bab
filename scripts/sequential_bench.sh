#!/usr/bin/env bash
# What `run --until-decided` saves (issue 18, "Measure and report"): on bench.sh's N-item golden
# set and accuracy gate (min_ratio 0.95, decided by non-inferiority), the calls, wall time and
# verdict of a sequential run against a full run, for a candidate 5 points worse than, equal to
# and 5 points better than the current model.
#
#   bash scripts/sequential_bench.sh [N] [LATENCY_MS] [CONCURRENCY]      defaults: 10000 50 64
#
# Per scenario the benchmark server (examples/bench_server.rs) is restarted with
# BENCH_ACCURACY="current=$CURRENT,candidate=RATE": an answer holds the keyword only for the items
# whose prompt hashes below the model's rate, the same hash for both models, so the candidate at
# 0.85 fails exactly the current model's items in [0.85, 0.90) (paired outcomes, as two versions
# of one model give). Then RUNS times, alternating: a full `goldgate run --quiet` and a
# `goldgate run --until-decided --quiet` (its defaults: --batch 50, --min-items 100, plus SEQ_ARGS).
# Each is timed (GNU time's %e); the server's /stats count before and after gives the requests it
# made; its exit code, verdict, the gate's estimate and interval, and for the sequential run
# summary.json's sequential.items_used / items_total / stopped are read from the run directory.
# Wall times are RUNS medians (each run's kept); the rest is the first run's, each run's requests,
# exit codes and items used kept too (the order is seeded and the server deterministic, but the
# answers in flight when a sequential run stops are kept, so its items used vary by a few).
#
# Prints a table and appends a JSON line to bench/sequential.jsonl.
# Environment: RUNS (default 1), CURRENT (0.90), SCENARIOS ("worse=0.85 equal=0.90 better=0.95":
# NAME=candidate rate), SEQ_ARGS (extra arguments of the sequential run, e.g. "--batch 100");
# GOLDGATE=path measures that binary instead of building one; KEEP=1 keeps the work directory.
# The binaries are built into $CARGO_TARGET_DIR (default target/). With the defaults a full run
# takes about 10 s and the whole script about a minute on 2 cores (after the build).
# The set-up (build, server, golden set, providers, goldgate.toml) is scripts/bench_common.sh's.
set -euo pipefail
N=${1:-10000}; LATENCY_MS=${2:-50}; CONC=${3:-64}
RUNS=${RUNS:-1}; CURRENT=${CURRENT:-0.90}
SCENARIOS=${SCENARIOS:-worse=0.85 equal=0.90 better=0.95}; SEQ_ARGS=${SEQ_ARGS:-}
cd "$(dirname "$0")/.."
# shellcheck source=scripts/bench_common.sh
source scripts/bench_common.sh
bench_build
bench_workdir

# Requests the benchmark server has answered so far.
served() { curl -s "http://$addr/stats" | python3 -c 'import json, sys; print(json.load(sys.stdin)["count"])'; }

# run_once SCENARIO MODE [ARGS...]: one timed run; "exit requests run_dir" is appended to
# $work/SCENARIO-MODE.runs.
run_once() {
  local scenario=$1 mode=$2 before code=0; shift 2
  before=$(served)
  bench_measure "$work/$scenario-$mode.time" "$goldgate" run -c "$work/goldgate.toml" \
    --out "$work/reports-$scenario" --quiet "$@" > "$work/$scenario-$mode.out" 2> "$work/$scenario-$mode.err" || code=$?
  case $code in 0|1|4) ;; *) echo "goldgate run $* exited $code:" >&2; cat "$work/$scenario-$mode.err" >&2; exit 1 ;; esac
  echo "$code $(( $(served) - before )) $(tail -n 1 "$work/$scenario-$mode.out")" >> "$work/$scenario-$mode.runs"
}

names=()
for scenario in $SCENARIOS; do
  name=${scenario%%=*}; rate=${scenario#*=}
  names+=("$name=$rate")
  echo "$name: BENCH_ACCURACY=current=$CURRENT,candidate=$rate; $RUNS x (full run, --until-decided run) of $N items" >&2
  [ -z "$server_pid" ] || bench_stop_server
  export BENCH_ACCURACY="current=$CURRENT,candidate=$rate"
  bench_start_server "$LATENCY_MS"
  unset BENCH_ACCURACY
  # bench_start_server waits 5 s; on a busy machine the server can take longer to say where it is.
  for _ in $(seq 200); do [ -z "$addr" ] || break; sleep 0.1; addr=$(sed -n 's/listening on //p' "$work/server.log"); done
  if [ -z "$addr" ]; then echo "the benchmark server did not start:" >&2; cat "$work/server.log" >&2; exit 1; fi
  # The providers name the server's address, new with every start: the evaluation is written anew.
  bench_project "$N" "$CONC"
  for _ in $(seq "$RUNS"); do
    run_once "$name" full
    # shellcheck disable=SC2086 # SEQ_ARGS is a list of arguments
    run_once "$name" sequential --until-decided $SEQ_ARGS
  done
done
bench_stop_server

mkdir -p bench
python3 - "$work" "$N" "$LATENCY_MS" "$CONC" "$RUNS" "$CURRENT" "$goldgate" "$SEQ_ARGS" bench/sequential.jsonl "${names[@]}" <<'PY'
import datetime, json, os, statistics, sys
work, n, lat, conc, runs, current, binary, seq_args, log = sys.argv[1:10]
n, lat, conc, runs = int(n), float(lat), int(conc), int(runs)
scenarios = [s.split("=", 1) for s in sys.argv[10:]]

def walls(tag):
    # GNU time writes "Command exited with non-zero status N" before its line for exit 1 and 4.
    out = []
    for line in open(f"{work}/{tag}.time"):
        try:
            out.append(float(line.split()[0]))
        except (ValueError, IndexError):
            continue
    return out

def mode(name, kind):
    tag = f"{name}-{kind}"
    recs = [l.split(" ", 2) for l in open(f"{work}/{tag}.runs").read().splitlines() if l.strip()]
    ws = walls(tag)
    code, requests, run_dir = int(recs[0][0]), int(recs[0][1]), recs[0][2]
    s = json.load(open(f"{run_dir}/summary.json"))
    gate = s["gates"][0]
    test = gate.get("test") or {}
    low, high = test.get("interval") or (None, None)  # [low, high]; an unbounded end is null
    m = s["models"]
    out = {
        "wall_s": round(statistics.median(ws), 2), "wall_s_runs": ws,
        "requests": requests, "requests_runs": [int(r[1]) for r in recs],
        "exit": code, "exit_runs": [int(r[0]) for r in recs], "verdict": s["verdict"],
        "accuracy": {"current": m["current"]["metrics"]["accuracy"], "candidate": m["candidate"]["metrics"]["accuracy"]},
        "gate": {"outcome": gate["outcome"], "statistic": test.get("statistic"), "estimate": test.get("estimate"),
                 "low": low, "high": high, "method": test.get("method"),
                 "items": test.get("items")},
    }
    if kind == "sequential":
        q = s.get("sequential") or {}
        used = [(json.load(open(f"{r[2]}/summary.json")).get("sequential") or {}).get("items_used") for r in recs]
        out.update(items_used=q.get("items_used"), items_used_runs=used, items_total=q.get("items_total"),
                   stopped=q.get("stopped"),
                   batch=q.get("batch"), min_items=q.get("min_items"), seed=q.get("seed"))
    return out

results = []
for name, rate in scenarios:
    full, seq = mode(name, "full"), mode(name, "sequential")
    results.append({
        "scenario": name, "bench_accuracy": f"current={current},candidate={rate}",
        "current_rate": float(current), "candidate_rate": float(rate),
        # The gate's statistic at the configured rates: candidate - 0.95 x current.
        "true_d": round(float(rate) - 0.95 * float(current), 4),
        "full": full, "sequential": seq,
        "calls_share": round(seq["requests"] / full["requests"], 4) if full["requests"] else None,
        "wall_share": round(seq["wall_s"] / full["wall_s"], 4) if full["wall_s"] else None,
        "same_verdict": seq["verdict"] == full["verdict"],
    })

line = {
    "when": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "items": n, "latency_ms": lat, "concurrency": conc, "runs": runs, "binary": binary,
    "sequential_args": seq_args, "gate": "accuracy min_ratio 0.95",
    "machine": {"cpus": os.cpu_count(), "load_avg": [round(x, 2) for x in os.getloadavg()]},
    "scenarios": results,
}
with open(log, "a") as f:
    f.write(json.dumps(line) + "\n")
print(json.dumps(line))

def fmt(x, spec="+.4f"):
    return "-" if x is None else format(x, spec)

print(f"\n{n} items, {lat:g} ms server, concurrency {conc} per model, gate accuracy min_ratio 0.95;"
      f" {os.cpu_count()} cores, load {line['machine']['load_avg']}; wall = median of {runs}")
print(f"{'scenario':<22} {'run':<14} {'verdict':<16} {'items':>13} {'requests':>9} {'wall s':>7}"
      f"  {'acc cur / cand':<15} {'d = cand - 0.95 cur [interval]':<32} stopped")
for r in results:
    for kind in ("full", "sequential"):
        x = r[kind]
        items = (f"{fmt(x['items_used'], ',')}/{fmt(x['items_total'], ',')}" if kind == "sequential"
                 else f"{n:,}")
        g = x["gate"]
        label = f"{r['scenario']} ({r['candidate_rate']:.2f} vs {r['current_rate']:.2f})"
        interval = f"{fmt(g['estimate'])} [{fmt(g['low'])}, {fmt(g['high'])}]"
        print(f"{label:<22} {'full' if kind == 'full' else 'until-decided':<14}"
              f" {x['verdict'] + ' (' + str(x['exit']) + ')':<16} {items:>13} {x['requests']:>9,} {x['wall_s']:>7.2f}"
              f"  {fmt(x['accuracy']['current'], '.4f')} / {fmt(x['accuracy']['candidate'], '.4f')}"
              f"  {interval:<32} {x.get('stopped') or ''}".rstrip())
    print(f"{'':<22} d at the set rates {r['true_d']:+.4f}; until-decided used {100 * r['calls_share']:.1f}% of the calls,"
          f" {100 * r['wall_share']:.1f}% of the wall time; same verdict: {'yes' if r['same_verdict'] else 'NO'}")
PY
