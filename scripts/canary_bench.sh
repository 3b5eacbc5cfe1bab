#!/usr/bin/env bash
# The canary analysis at scale: 10 million simulated log records (a 5% canary, users, every
# optional field; about 2 GB of JSON lines), analysed by the release binary. Prints the wall time
# and peak memory of the analysis (GNU time), fixed and --sequential. Targets (issue 20): <= 60 s,
# <= 200 MB on the 2-core development machine.
#
#   bash scripts/canary_bench.sh [RECORDS]      (default 10000000; the log is kept in bench/)
set -euo pipefail
cd "$(dirname "$0")/.."
records="${1:-10000000}"
mkdir -p bench/canary
log="bench/canary/canary-${records}.jsonl"
cargo build --release --quiet --bin goldgate --example canary_log
if [ ! -s "$log" ]; then
  ./target/release/examples/canary_log --records "$records" --out "$log" --scenario none \
    --users 200000 --seed 1
fi
echo "log: $log ($(du -h "$log" | cut -f1), $records records)"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
for mode in fixed sequential; do
  extra=()
  [ "$mode" = sequential ] && extra=(--sequential --state "$out/state.json")
  set +e
  /usr/bin/time -f "%e %M" -o "$out/time" ./target/release/goldgate canary --log "$log" \
    --candidate-percent 50 --out "$out/reports" --quiet "${extra[@]}" >/dev/null
  rc=$?
  set -e
  read -r wall kb < "$out/time"
  echo "$mode: exit $rc, ${wall} s wall, $((kb / 1024)) MB peak"
done
