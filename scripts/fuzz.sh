#!/usr/bin/env bash
# Fuzz the parsers of untrusted input (fuzz/fuzz_targets/*.rs): SECONDS per target (default 20),
# two targets at a time, every target unless some are named. What CI runs after the tests, and what
# to run, longer, after changing a parser:
#
#   bash scripts/fuzz.sh                 # every target, 20 s each
#   bash scripts/fuzz.sh 600 items       # one target, 10 minutes
#   FUZZ_JOBS=1 bash scripts/fuzz.sh 300 # one at a time (a busy machine)
#   FUZZ_PROFILE=dev bash scripts/fuzz.sh # an unoptimised build: half the build time (CI)
#
# FUZZ_TARGET_DIR (default fuzz/target) is where the instrumented build goes: CI keeps it in its
# cache, since a clean build is 11 CPU-minutes (6 to 12 minutes on 2 cores) and a rebuild of
# goldgate alone 2.
#
# A crash, a panic, an input slower than 10 s or one using more than 2 GB fails the script; the
# input that did it is in fuzz/artifacts/<target>/, and `cargo fuzz run <target> <that file>`
# (with the flags below) replays it. New inputs that reach new code go to fuzz/target/corpus/
# (not committed); the seeds are fuzz/corpus/<target>/ (committed).
#
# Stable Rust is enough: with `--sanitizer none` cargo-fuzz passes only stable -C flags. Built as
# release with debug assertions (so an integer overflow is a crash, as in `cargo test`) and 16
# codegen units (with cargo-fuzz's default of 1, goldgate compiles on one core).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-20}"
shift || true
jobs="${FUZZ_JOBS:-2}"
CARGO_FUZZ_VERSION=0.13.2
flags=(--sanitizer none --debug-assertions --codegen-units 16 --target-dir "${FUZZ_TARGET_DIR:-fuzz/target}")
# FUZZ_PROFILE=dev builds without optimisation: about half the clean build, 9 to 17 times fewer
# executions a second. What CI uses on a cold cache, where the build is most of the phase's time
# and 20 s of fuzzing is a smoke test either way; longer runs want the default, release.
if [ "${FUZZ_PROFILE:-release}" = dev ]; then
  flags+=(--dev)
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz $CARGO_FUZZ_VERSION (once)"
  cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
fi

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

start=$SECONDS
cargo fuzz build "${flags[@]}"
echo "built ${#targets[@]} fuzz targets in $((SECONDS - start)) s"

logs=fuzz/target/logs
mkdir -p "$logs"
run_target() {
  local target=$1 status=0
  mkdir -p "fuzz/target/corpus/$target" "fuzz/corpus/$target"
  # The first directory receives new inputs; the committed seeds are only read.
  cargo fuzz run "${flags[@]}" "$target" "fuzz/target/corpus/$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    >"$logs/$target.log" 2>&1 || status=$?
  echo "$status" >"$logs/$target.status"
}

for target in "${targets[@]}"; do
  rm -f "$logs/$target.status"
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
    wait -n || true
  done
  run_target "$target" &
done
wait

failed=()
for target in "${targets[@]}"; do
  if [ "$(cat "$logs/$target.status" 2>/dev/null)" = 0 ]; then
    runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$logs/$target.log" | grep -o '[0-9]*$' || echo "?")
    corpus=$(find "fuzz/target/corpus/$target" -type f | wc -l)
    printf '%-16s ok   %10s runs in %s s, %s inputs in its corpus\n' "$target" "$runs" "$seconds" "$corpus"
  else
    failed+=("$target")
    printf '%-16s FAILED (log: %s)\n' "$target" "$logs/$target.log"
  fi
done
rm -rf fuzz/target/scratch

for target in "${failed[@]}"; do
  echo "== $target: the end of its log"
  tail -n 60 "$logs/$target.log"
  echo "== the input is in fuzz/artifacts/$target/; replay it with:"
  echo "   cargo fuzz run ${flags[*]} $target fuzz/artifacts/$target/<file>"
done
[ "${#failed[@]}" -eq 0 ]
