#!/usr/bin/env bash
# Report rendering at scale: synthesise run directories of N items (a realistic mix of
# regressions, improvements, failures and unchanged items), time `goldgate report`, and time
# headless Chromium loading report.html until its first screenshot (minus the same for an empty
# page, i.e. browser start-up). --dump-dom then checks the items were drawn; it is not timed,
# since serialising a 40 MB DOM costs far more than loading it.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin goldgate
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking
  --disable-component-update --disable-sync --user-data-dir="$work/profile" --window-size=1200,900)
load() { chromium "${flags[@]}" --screenshot="$work/shot.png" "$1" >/dev/null 2>&1; }
dom() { chromium "${flags[@]}" --virtual-time-budget=1000 --dump-dom "$1" 2>/dev/null; }
echo '<html><body>empty</body></html>' > "$work/empty.html"
load "file://$work/empty.html"   # warm the profile
t0=$(date +%s.%N); load "file://$work/empty.html"; t1=$(date +%s.%N)
base=$(echo "$t1 - $t0" | bc)
# The sizes to try: the arguments, or these three (a quoted "${@:-…}" would be one word).
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(100 10000 100000)
for n in "${sizes[@]}"; do
  dir="$work/run-$n"; mkdir -p "$dir"
  python3 - "$n" "$dir" <<'PY'
import json, sys, random
n, d = int(sys.argv[1]), sys.argv[2]
random.seed(7)
json.dump({"schema": "goldgate/run/v1", "run_id": f"scale-{n}", "started_at": "2026-11-23T00:00:00Z", "goldgate_version": "0.1.0",
  "golden": {"name": "scale", "version": 1, "sha256": "0" * 64, "items": n, "locked": True}, "repeats": 1,
  "models": {"current": {"provider": "p/cur.toml", "kind": "openai", "model": "cur"}, "candidate": {"provider": "p/cand.toml", "kind": "openai", "model": "cand"}},
  "gates": [{"metric": "accuracy", "bound": {"min_ratio": 0.95}}, {"metric": "latency_p95_ms", "bound": {"max_ratio": 1.1}}]}, open(f"{d}/run.json", "w"))
with open(f"{d}/items.jsonl", "w") as it, open(f"{d}/results.jsonl", "w") as rs:
    for i in range(n):
        iid = f"item-{i:06d}"
        it.write(json.dumps({"id": iid, "question": f"How long is the refund window for order {i} bought in the spring sale?", "keywords": ["30 days"], "context": "Returns within 30 days.", "tags": [f"t{i % 7}"]}) + "\n")
        for model in ("current", "candidate"):
            ok = random.random() > 0.01
            p = ok and random.random() < (0.9 if model == "current" else 0.88)
            ans = ("You can return it within 30 days of delivery, unused and with tags attached; refunds go to the original payment method." if p
                   else "Returns are accepted for a limited time after delivery; please contact support for details about your order.")
            rs.write(json.dumps({"id": iid, "model": model, "trial": 0, "ok": ok, "pass": p, "answer": ans if ok else None,
              "latency_ms": round(random.gauss(800, 120), 3) if ok else None, "attempts": 1,
              "tokens": {"input": 150, "output": 30, "estimated": False} if ok else None, "cost_usd": 0.00068 if ok else 0.0,
              "checks": {"keywords": {"pass": p, "matched": ["30 days"] if p else [], "missing": [] if p else ["30 days"]}} if ok else {},
              "faithfulness": {"score": 5.0, "claims": 1, "supported": 1} if ok else None,
              "error": None if ok else {"kind": "timeout", "message": "timed out"}}) + "\n")
PY
  start=$(date +%s.%N)
  ./target/release/goldgate report "$dir" >/dev/null
  end=$(date +%s.%N)
  t0=$(date +%s.%N); load "file://$dir/report.html"; t1=$(date +%s.%N)
  dom "file://$dir/report.html" > "$work/dom.html"
  grep -q 'data-id="item-' "$work/dom.html" || { echo "report for $n items did not render its items" >&2; exit 1; }
  printf '{"items": %d, "render_all_formats_s": %.2f, "html_mb": %.1f, "md_kb": %.1f, "junit_mb": %.1f, "chromium_load_s": %.2f}\n' \
    "$n" "$(echo "$end - $start" | bc)" "$(echo "$(stat -c %s "$dir/report.html") / 1048576" | bc -l)" \
    "$(echo "$(stat -c %s "$dir/report.md") / 1024" | bc -l)" "$(echo "$(stat -c %s "$dir/junit.xml") / 1048576" | bc -l)" \
    "$(echo "$t1 - $t0 - $base" | bc)"
done
