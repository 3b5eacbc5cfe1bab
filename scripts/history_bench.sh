#!/usr/bin/env bash
# What a year of nightly runs costs (issue 17, "Measure and report"): `goldgate history` over
# NIGHTS runs of N items (targets at 365 x 10,000: <= 10 s wall, <= 300 MB peak RSS), the size of
# a pruned run against a full one, and `run --baseline accepted` (only the candidate called)
# against a full two-sided run.
#
#   bash scripts/history_bench.sh [NIGHTS] [N] [LATENCY_MS] [CONCURRENCY]    defaults: 365 10000 50 64
#
# 1. Starts the benchmark server (examples/bench_server.rs) at LATENCY_MS, generates bench.sh's
#    N-item golden set, and times RUNS real runs of both models (the full two-sided run) and,
#    after `goldgate accept` of the first, RUNS `run --baseline accepted` (the one-sided run);
#    the server's /stats count gives the requests each made.
# 2. Builds a nightly store of NIGHTS runs from the first real run, one night a day apart: each
#    night's results.jsonl is the real run's lines with ~3% of each model's outcomes flipped
#    around a fixed per-item base (~90% pass; the candidate a few points worse over the last fifth
#    of the nights, a change point for history to find), the answer text following the outcome,
#    latencies jittered by +-15%; its summary.json is rebuilt from those results by
#    `goldgate report DIR`. The first night is accepted. Like a real store with retention, it is
#    thinned as it grows by the real `goldgate history prune --keep-full KEEP_FULL` after every
#    BATCH nights, so in the end KEEP_FULL runs (and the accepted one) are whole and the rest
#    pruned; the newest night is two-sided, so history pairs it with the accepted run's results.
# 3. Times `goldgate history --quiet` over the store RUNS times (median; each run's kept), and
#    once with `--window 2` (the item grid and drift over two nights instead of 30: what reading
#    the window's results costs); sizes a copy of the real run before and after pruning it.
#
# Prints a table and appends a JSON line to bench/history.jsonl. Wall time and peak RSS are GNU
# time's `%e` and `%M` (python's getrusage of the child where /usr/bin/time is missing).
# Environment: RUNS (default 3), KEEP_FULL (30), BATCH (10), SEED (1); GOLDGATE=path measures
# that binary instead of building one; KEEP=1 keeps the work directory (under $TMPDIR: 3.6 GB
# for the defaults, the store being most of it). The binaries are built into $CARGO_TARGET_DIR
# (default target/). The defaults take about 5 minutes on 2 cores, 3 of them generating the store.
# The set-up (build, server, golden set, providers, goldgate.toml) is scripts/bench_common.sh's.
set -euo pipefail
NIGHTS=${1:-365}; N=${2:-10000}; LATENCY_MS=${3:-50}; CONC=${4:-64}
RUNS=${RUNS:-3}; KEEP_FULL=${KEEP_FULL:-30}; BATCH=${BATCH:-10}; SEED=${SEED:-1}
cd "$(dirname "$0")/.."
# shellcheck source=scripts/bench_common.sh
source scripts/bench_common.sh
bench_build
bench_workdir

# Requests the benchmark server has answered so far.
served() { curl -s "http://$addr/stats" | python3 -c 'import json, sys; print(json.load(sys.stdin)["count"])'; }

bench_start_server "$LATENCY_MS"
# The same golden set, providers and gate as scripts/bench.sh.
bench_project "$N" "$CONC"

# run_once TAG [ARGS...]: one timed run; its directory and the requests it made are recorded.
run_once() {
  local tag=$1 before code=0; shift
  before=$(served)
  bench_measure "$work/time-$tag" "$goldgate" run -c "$work/goldgate.toml" --out "$work/reports" --quiet "$@" \
    > "$work/$tag.out" 2> "$work/$tag.err" || code=$?
  case $code in 0|1|4) ;; *) echo "goldgate run $* exited $code:" >&2; cat "$work/$tag.err" "$work/time-$tag" >&2; exit 1 ;; esac
  echo $(( $(served) - before )) >> "$work/requests-$tag"
  tail -n 1 "$work/$tag.out" >> "$work/dirs-$tag"
}
echo "timing $RUNS full two-sided run(s) of $N items, then $RUNS run(s) with --baseline accepted" >&2
for _ in $(seq "$RUNS"); do run_once full; done
source_run=$(head -n 1 "$work/dirs-full")
"$goldgate" accept "$source_run" > /dev/null
for _ in $(seq "$RUNS"); do run_once baseline --baseline accepted; done
bench_stop_server

# One night of the store: the real run's files, its results varied (see the header).
cat > "$work/generate.py" <<'PY'
import datetime, json, os, random, shutil, sys
src, store = sys.argv[1], sys.argv[2]
first, count, nights, keep_full, seed = map(int, sys.argv[3:8])
FAIL = "Please contact our support team about returns for this order."
LAT = 123456789.5  # stands for the latency in a line's template
FLIP, BASE_FAIL, STEP_FAIL = 0.03, {"current": 0.08, "candidate": 0.10}, 0.03
step_night = int(nights * 0.8) + 1

def template(rec):
    rec = dict(rec, latency_ms=LAT)
    head, tail = json.dumps(rec, separators=(",", ":"), ensure_ascii=False).split(repr(LAT))
    return head, tail

# Per result line: its pass and fail forms as (head, tail) around the latency, its latency, and
# the per-item randoms that fix its base outcome (the same in every batch: one seed).
base = random.Random(seed)
lines = []
with open(f"{src}/results.jsonl") as f:
    for raw in f:
        r = json.loads(raw)
        if not r.get("ok") or r.get("latency_ms") is None:
            lines.append((raw.rstrip("\n"), None, None, None, None, None))
            continue
        ok = dict(r, **{"pass": True})
        bad = json.loads(raw)
        bad["pass"], bad["answer"] = False, FAIL
        kw = bad.get("checks", {}).get("keywords")
        if kw:
            kw.update({"pass": False, "matched": [], "missing": kw["matched"] + kw["missing"], "spans": []})
        fa = bad.get("faithfulness")
        if fa:
            fa.update(score=1.0, supported=0, support=0.1,
                      details=[dict(d, claim=FAIL, support=0.1, supported=False) for d in fa.get("details", [])])
        lines.append((None, template(ok), template(bad), r["latency_ms"], r["model"], (base.random(), base.random())))

run = json.load(open(f"{src}/run.json"))
summary = json.load(open(f"{src}/summary.json"))
took = (datetime.datetime.fromisoformat(summary["finished_at"].replace("Z", "+00:00"))
        - datetime.datetime.fromisoformat(summary["started_at"].replace("Z", "+00:00")))
today = datetime.datetime.now(datetime.timezone.utc).replace(hour=2, minute=0, second=0, microsecond=0)
stamp = lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")
for night in range(first, first + count):
    rng = random.Random(seed * 1_000_003 + night)
    started = today - datetime.timedelta(days=nights - night)
    run_id = f"{started:%Y%m%dT%H%M%SZ}-{night:04d}"
    d = os.path.join(store, run_id)
    os.makedirs(d)
    with open(f"{d}/results.jsonl", "w") as out:
        for fixed, ok, bad, lat, model, uv in lines:
            if fixed is not None:
                out.write(fixed + "\n")
                continue
            u, v = uv
            fails = u < BASE_FAIL[model] or (model == "candidate" and night >= step_night and v < STEP_FAIL)
            if rng.random() < FLIP:
                fails = not fails
            head, tail = bad if fails else ok
            out.write(f"{head}{round(lat * rng.uniform(0.85, 1.15), 6)!r}{tail}\n")
    shutil.copyfile(f"{src}/items.jsonl", f"{d}/items.jsonl")
    json.dump(dict(run, run_id=run_id, started_at=stamp(started)), open(f"{d}/run.json", "w"), indent=2)
    json.dump(dict(summary, run_id=run_id, started_at=stamp(started), finished_at=stamp(started + took)),
              open(f"{d}/summary.json", "w"), indent=2)
    # Every view for the runs that stay whole (the accepted first night, the newest KEEP_FULL);
    # summary.json only for the rest, which prune would thin anyway.
    whole = night == 1 or night > nights - keep_full
    print(d, "--format=" + ("html,md,junit,json" if whole else "json"))
PY

store=$work/store
mkdir -p "$store"
echo "generating $NIGHTS nights of $N items in $store, pruned every $BATCH nights to $KEEP_FULL whole runs" >&2
gen_start=$(date +%s.%N)
night=1
while [ "$night" -le "$NIGHTS" ]; do
  count=$(( NIGHTS - night + 1 < BATCH ? NIGHTS - night + 1 : BATCH ))
  python3 "$work/generate.py" "$source_run" "$store" "$night" "$count" "$NIGHTS" "$KEEP_FULL" "$SEED" \
    | xargs -r -L 1 -P "$(nproc)" "$goldgate" report > /dev/null
  if [ "$night" -eq 1 ]; then
    "$goldgate" accept "$(find "$store" -mindepth 1 -maxdepth 1 -name '*-0001' | head -n 1)" > /dev/null
  fi
  "$goldgate" history prune --out "$store" --keep-full "$KEEP_FULL" >> "$work/prune.log"
  night=$(( night + count ))
done
generate_s=$(echo "$(date +%s.%N) - $gen_start" | bc)

# history_once TAG [ARGS...]: one timed `goldgate history --quiet` of the store (exit 1 is
# "tonight regressed against the accepted baseline", which the store's change point makes likely).
history_once() {
  local tag=$1 code=0; shift
  bench_measure "$work/time-$tag" "$goldgate" history --out "$store" --quiet "$@" > /dev/null 2> "$work/$tag.err" || code=$?
  case $code in 0|1) ;; *) echo "goldgate history exited $code:" >&2; cat "$work/$tag.err" "$work/time-$tag" >&2; exit 1 ;; esac
}
echo "timing goldgate history over the store, $RUNS time(s), then once with --window 2" >&2
for _ in $(seq "$RUNS"); do history_once history; done
history_once window2 --window 2

# The real run, whole and pruned (a copy, pruned by the real command).
mkdir -p "$work/prunecheck"
cp -r "$source_run" "$work/prunecheck/"
"$goldgate" history prune --out "$work/prunecheck" --keep-full 0 > /dev/null
pruned_run=$work/prunecheck/$(basename "$source_run")

mkdir -p bench
python3 - "$work" "$store" "$source_run" "$pruned_run" "$goldgate" "$NIGHTS" "$N" "$LATENCY_MS" "$CONC" \
  "$KEEP_FULL" "$generate_s" bench/history.jsonl <<'PY'
import datetime, json, os, statistics, sys
work, store, full, pruned, binary = sys.argv[1:6]
nights, n, lat, conc, keep_full = int(sys.argv[6]), int(sys.argv[7]), float(sys.argv[8]), int(sys.argv[9]), int(sys.argv[10])
generate_s, log = float(sys.argv[11]), sys.argv[12]

def times(tag):
    # GNU time writes "Command exited with non-zero status N" before its line for exit 1.
    rows = []
    for line in open(f"{work}/time-{tag}"):
        parts = line.split()
        try:
            rows.append([float(p) for p in parts])
        except ValueError:
            continue
    walls = [r[0] for r in rows]
    return {"wall_s": round(statistics.median(walls), 2), "wall_s_runs": walls,
            "cpu_s": round(statistics.median(r[2] + r[3] for r in rows), 2),
            "peak_rss_mb": round(max(r[1] for r in rows) / 1024, 1),
            "peak_rss_mb_runs": [round(r[1] / 1024, 1) for r in rows]}

def requests(tag):
    return [int(l) for l in open(f"{work}/requests-{tag}") if l.strip()]

def size(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)

runs = sorted(e.path for e in os.scandir(store) if e.is_dir() and e.name not in ("accepted", "history"))
whole = [r for r in runs if not os.path.exists(f"{r}/pruned.json")]
history = json.load(open(f"{store}/history/history.json"))
ev = history["evaluations"][0]
changes = [(s["metric"] if isinstance(s["metric"], str) else json.dumps(s["metric"]), s["side"], c["index"] + 1)
           for s in ev["series"] for c in s["change_points"]]
tonight = ev.get("tonight") or {}
line = {
    "when": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "nights": nights, "items": n, "latency_ms": lat, "concurrency": conc, "binary": binary,
    "machine": {"cpus": os.cpu_count(), "load_avg": [round(x, 2) for x in os.getloadavg()]},
    "full_run": {**times("full"), "requests": requests("full")},
    "baseline_run": {**times("baseline"), "requests": requests("baseline")},
    "history": times("history"), "history_window_2": times("window2"),
    "store": {"runs": len(runs), "whole": len(whole), "pruned": len(runs) - len(whole),
              "bytes": size(store), "generate_s": round(generate_s, 1)},
    "run_bytes": {"full": size(full), "pruned": size(pruned),
                  "full_results": size(f"{full}/results.jsonl"), "pruned_results": size(f"{pruned}/results.jsonl"),
                  "full_items": size(f"{full}/items.jsonl"), "pruned_items": size(f"{pruned}/items.jsonl")},
    "history_found": {"nights": len(ev["runs"]), "change_points": changes, "drift": len(ev["drift"]),
                      "tonight_regressed": tonight.get("regressed"), "skipped": len(history["skipped"])},
}
h = line["history"]
line["targets_met"] = {"wall_le_10_s": h["wall_s"] <= 10.0, "peak_le_300_mb": h["peak_rss_mb"] <= 300.0}
with open(log, "a") as f:
    f.write(json.dumps(line) + "\n")
print(json.dumps(line))

mb = lambda b: f"{b / 1e6:8.2f} MB"
fr, br = line["full_run"], line["baseline_run"]
s, rb = line["store"], line["run_bytes"]
print(f"\n{nights} nights x {n} items; {os.cpu_count()} cores, load {line['machine']['load_avg']}")
print(f"  goldgate history --quiet        wall {h['wall_s']:6.2f} s {h['wall_s_runs']}  cpu {h['cpu_s']:6.2f} s"
      f"  peak {h['peak_rss_mb']:6.1f} MB {h['peak_rss_mb_runs']}"
      f"   (targets <= 10 s: {'met' if line['targets_met']['wall_le_10_s'] else 'MISSED'},"
      f" <= 300 MB: {'met' if line['targets_met']['peak_le_300_mb'] else 'MISSED'})")
w1 = line["history_window_2"]
print(f"  goldgate history --window 2     wall {w1['wall_s']:6.2f} s  cpu {w1['cpu_s']:6.2f} s  peak {w1['peak_rss_mb']:6.1f} MB")
print(f"  full two-sided run              wall {fr['wall_s']:6.2f} s {fr['wall_s_runs']}  requests {fr['requests']}  peak {fr['peak_rss_mb']:.1f} MB")
print(f"  run --baseline accepted         wall {br['wall_s']:6.2f} s {br['wall_s_runs']}  requests {br['requests']}  peak {br['peak_rss_mb']:.1f} MB"
      f"   ({br['wall_s'] / fr['wall_s']:.2f} x the full run)")
print(f"  one run, whole                  {mb(rb['full'])}  (results.jsonl {mb(rb['full_results'])}, items.jsonl {mb(rb['full_items'])})")
print(f"  the same run, pruned            {mb(rb['pruned'])}  (results.jsonl {mb(rb['pruned_results'])}, items.jsonl {mb(rb['pruned_items'])})"
      f"   ({rb['full'] / rb['pruned']:.1f} x smaller)")
print(f"  the store                       {mb(s['bytes'])}  ({s['runs']} runs: {s['whole']} whole, {s['pruned']} pruned"
      f" by `history prune --keep-full {keep_full}`; generated in {s['generate_s']} s)")
f = line["history_found"]
print(f"  history found                   {f['nights']} nights, change points {f['change_points']}, {f['drift']} drift,"
      f" tonight regressed: {f['tonight_regressed']}, {f['skipped']} skipped")
PY
