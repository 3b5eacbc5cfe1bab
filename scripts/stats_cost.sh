#!/usr/bin/env bash
# What the statistics cost (issue 16: "under 1 s and 20 MB more than today" for 100,000 items):
# the wall time and peak RSS of concluding a run, for the binary with intervals (NEW) against one
# from before them (OLD, e.g. built from f238c04). Starts the benchmark server
# (examples/bench_server.rs) answering at once, generates bench.sh's N-item golden set, makes ONE
# real run directory with the new binary, then times `goldgate report RUN_DIR` on copies of it:
# the results folded again and summary.json written (every interval, paired comparison and gate
# test is computed there, nowhere else). Each binary concludes its own copy, so neither reads
# what the other wrote; new - old is what the statistics add.
#
#   GOLDGATE_OLD=path GOLDGATE_NEW=path bash scripts/stats_cost.sh [N] [CONCURRENCY]   defaults: 100000 256
#
# - `--format json` (summary.json only) RUNS times per binary (default 3; median and each run),
#   old and new taking turns so that drift on a shared machine hits both alike;
# - `--format json,md,html,junit` (every view) once per binary: the whole conclude.
# Prints a table and appends a JSON line per binary and format set to bench/stats_cost.jsonl,
# with new - old on the new binary's lines. Wall time and peak RSS are GNU time's `%e` and `%M`;
# CPU seconds (`%U` + `%S`) are recorded too: on a busy machine they move less than wall time.
#
# The evaluation is bench.sh's with the rest of the default gate set written out
# (faithfulness min 4, latency_p95_ms max_ratio 1.10, error_rate max_ratio 1.0): the latency
# ratio gate is the one decided by the paired cluster bootstrap, the costliest statistic, so it
# must be in. [statistics] is left at its defaults (95%, seed 1, 1000 resamples).
#
# GOLDGATE_NEW unset: the new binary (and the benchmark server) are built into $CARGO_TARGET_DIR
# (default target/) from this tree. GOLDGATE_OLD unset: only the new binary is measured. With
# both set nothing is built, as long as the benchmark server is found next to GOLDGATE_NEW
# (its examples/) or in $CARGO_TARGET_DIR. An old binary, from a worktree so this one is left alone:
#   git worktree add /tmp/gg-old f238c04
#   (cd /tmp/gg-old && CARGO_TARGET_DIR=/tmp/gg-old-target cargo build --release --bin goldgate)
#   GOLDGATE_OLD=/tmp/gg-old-target/release/goldgate bash scripts/stats_cost.sh
#   git worktree remove --force /tmp/gg-old
# KEEP=1 keeps the work directory (the run directory and each conclude's output).
# The set-up (server, golden set, providers, the accuracy gate) is scripts/bench_common.sh's.
set -euo pipefail
N=${1:-100000}; CONC=${2:-256}; RUNS=${RUNS:-3}
cd "$(dirname "$0")/.."
# shellcheck source=scripts/bench_common.sh
source scripts/bench_common.sh
if [ -z "${GOLDGATE_NEW:-}" ]; then
  cargo build --release --quiet --bin goldgate --example bench_server
  new=$target/release/goldgate
else
  new=$GOLDGATE_NEW
fi
old=${GOLDGATE_OLD:-}
# The benchmark server: beside the new binary, else in the target dir, else built.
bench_server=$(dirname "$new")/examples/bench_server
[ -x "$bench_server" ] || bench_server=$target/release/examples/bench_server
[ -x "$bench_server" ] || cargo build --release --quiet --example bench_server
goldgate=$new  # what bench_project locks the golden set with
bench_workdir
bench_start_server 0

# The same golden set, providers and gate as scripts/bench.sh and scripts/memory.sh, and then
# the rest of the default gate set.
bench_project "$N" "$CONC"
cat >> "$work/goldgate.toml" <<'TOML'
[[gate]]
metric = "faithfulness"
min = 4.0
[[gate]]
metric = "latency_p95_ms"
max_ratio = 1.10
[[gate]]
metric = "error_rate"
max_ratio = 1.0
TOML

# The run: 0 pass, 1 a gate failed, 4 inconclusive; anything else is no run to measure.
set +e
"$new" run -c "$work/goldgate.toml" --out "$work/reports" --quiet > "$work/run.out" 2> "$work/run.err"
code=$?
set -e
case $code in 0|1|4) ;; *) echo "goldgate run exited $code:" >&2; cat "$work/run.err" >&2; exit 1 ;; esac
run_dir=$(tail -n 1 "$work/run.out")
bench_stop_server

# One copy per binary. The old binary reads the new run.json (its new keys are additive and
# unknown keys are ignored); should it refuse them, its copy loses `statistics`, `item_pass` and
# every gate's `decide`, which it knows nothing of (it then computes what it always did).
cp -r "$run_dir" "$work/new"
sides=(new)
if [ -n "$old" ]; then
  cp -r "$run_dir" "$work/old"
  sides=(old new)
  if ! "$old" report "$work/old" --format json > /dev/null 2> "$work/old.err"; then
    echo "the old binary refused the run directory ($(head -n 1 "$work/old.err")); stripping the new keys from its run.json" >&2
    python3 - "$work/old/run.json" <<'PY'
import json, sys
p = sys.argv[1]
run = json.load(open(p))
run.pop("statistics", None); run.pop("item_pass", None)
for g in run.get("gates", []):
    g.pop("decide", None)
json.dump(run, open(p, "w"), indent=2)
PY
    "$old" report "$work/old" --format json > /dev/null
  fi
fi
bin() { if [ "$1" = old ]; then echo "$old"; else echo "$new"; fi; }

# Warm the page cache (the copies were just written, but a first read is not what is measured).
cat "$work"/new/* > /dev/null
# conclude SIDE FORMATS TAG: one `goldgate report`, its "wall_s peak_kB user_s sys_s" appended
# to $work/time-SIDE-TAG.
conclude() {
  /usr/bin/time -f '%e %M %U %S' -a -o "$work/time-$1-$3" "$(bin "$1")" report "$work/$1" --format "$2" > /dev/null
}
for _ in $(seq "$RUNS"); do
  for side in "${sides[@]}"; do conclude "$side" json summary; done
done
for side in "${sides[@]}"; do conclude "$side" json,md,html,junit all; done

mkdir -p bench
python3 - "$work" "$N" "$old" "$new" "$run_dir" bench/stats_cost.jsonl "${sides[@]}" <<'PY'
import json, statistics, sys, datetime
work, n, old, new, run_dir, log = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
sides = sys.argv[7:]
when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
summary = json.load(open(f"{run_dir}/summary.json"))
rows, lines = [], []
for tag, formats in (("summary", "json"), ("all", "json,md,html,junit")):
    m = {}
    for side in sides:
        runs = [tuple(float(x) for x in l.split()) for l in open(f"{work}/time-{side}-{tag}") if l.strip()]
        walls, peaks = [r[0] for r in runs], [round(r[1] / 1024, 1) for r in runs]
        cpus = [round(r[2] + r[3], 2) for r in runs]
        m[side] = {"wall_s": round(statistics.median(walls), 2), "wall_s_runs": walls,
                   "cpu_s": round(statistics.median(cpus), 2), "cpu_s_runs": cpus,
                   "peak_rss_mb": max(peaks), "peak_rss_mb_runs": peaks}
    for side in sides:
        line = {"when": when, "items": n, "formats": formats, "side": side,
                "binary": old if side == "old" else new, **m[side]}
        if side == "new" and "old" in m:
            line["minus_old"] = {"wall_s": round(m["new"]["wall_s"] - m["old"]["wall_s"], 2),
                                 "cpu_s": round(m["new"]["cpu_s"] - m["old"]["cpu_s"], 2),
                                 "peak_rss_mb": round(m["new"]["peak_rss_mb"] - m["old"]["peak_rss_mb"], 1)}
        if side == "new":
            line["run_status"], line["verdict"] = summary.get("status"), summary.get("verdict")
        lines.append(line)
    rows.append((formats, m))
# The JSON lines are appended to bench/stats_cost.jsonl and printed, then the table.
with open(log, "a") as f:
    for l in lines:
        f.write(json.dumps(l) + "\n")
        print(json.dumps(l))
out = sys.stdout
print(f"\n`goldgate report` of a {n}-item run (wall and CPU s: median [runs]; peak RSS MB)", file=out)
for formats, m in rows:
    for side in sides:
        r = m[side]
        runs = " ".join(f"{w:.2f}" for w in r["wall_s_runs"])
        cpus = " ".join(f"{c:.2f}" for c in r["cpu_s_runs"])
        print(f"  --format {formats:<19} {side:<4} wall {r['wall_s']:6.2f} s [{runs}]  cpu {r['cpu_s']:6.2f} s [{cpus}]"
              f"  peak {r['peak_rss_mb']:7.1f} MB", file=out)
    if "old" in m:
        dw = m["new"]["wall_s"] - m["old"]["wall_s"]
        dc = m["new"]["cpu_s"] - m["old"]["cpu_s"]
        dm = m["new"]["peak_rss_mb"] - m["old"]["peak_rss_mb"]
        met = "met" if dw < 1.0 and dm < 20.0 else "NOT met"
        print(f"  --format {formats:<19} new - old: wall {dw:+.2f} s, cpu {dc:+.2f} s, peak {dm:+.1f} MB"
              f" (target < 1 s and < 20 MB: {met})", file=out)
PY
