#!/usr/bin/env bash
# Step (c) of action.yml: the gate. Runs `goldgate run` (or `goldgate merge` of shards), shows its
# output in the log, and records what later steps need, WITHOUT failing: the step summary, the artifact
# and the pull-request comment must be written whatever the verdict. conclude.sh fails the job
# afterwards with goldgate's exit code.
#
# Inputs (environment):
#   INPUT_CONFIG              evaluation file (default goldgate.toml)
#   INPUT_OUT                 where run directories are created (default reports)
#   INPUT_ARGS                extra arguments, split on whitespace (no quoting, no globbing)
#   INPUT_WORKING_DIRECTORY   directory to run in (default .)
#   INPUT_MERGE               a directory of shard run directories: `goldgate merge DIR/*/` instead of a run
#   VALIDATE_EXIT_CODE        the validate step's exit code; non-zero: do not run, report it
#   GITHUB_OUTPUT, GITHUB_STEP_SUMMARY   files the runner reads (default /dev/null, for use by hand)
# Outputs: exit-code, verdict (pass|fail|inconclusive, empty without a summary), run-dir and
# report-md (absolute paths, empty when there is none).
set -euo pipefail
# shellcheck source=scripts/action/lib.sh
. "$(dirname "$0")/lib.sh"

summary_file=${GITHUB_STEP_SUMMARY:-/dev/null}
code=${VALIDATE_EXIT_CODE:-0}
if ! cd "${INPUT_WORKING_DIRECTORY:-.}"; then
  echo "working-directory ${INPUT_WORKING_DIRECTORY} does not exist"
  code=2
fi

# `args` is word-split on purpose: `--limit 20 --repeat 3` is four arguments. `read -a` splits on
# whitespace (newlines too, with -d '') without expanding globs or variables, so an input can never
# run code; quotes are not interpreted. read returns 1 at the end of its input, hence `|| true`.
extra=()
read -r -d '' -a extra <<<"${INPUT_ARGS:-}" || true

stdout_log=$(mktemp)
trap 'rm -f "$stdout_log"' EXIT
if [ "$code" -eq 0 ]; then
  # The exit code is goldgate's own (PIPESTATUS[0]), not tee's; `set +e` so a failed gate cannot end
  # this script before the outputs below are written.
  set +e
  if [ -n "${INPUT_MERGE:-}" ]; then
    # A glob over a directory name expands to paths, never to code.
    cmd=(merge "${INPUT_MERGE%/}"/*/ --out "${INPUT_OUT:-reports}")
  else
    cmd=(run -c "${INPUT_CONFIG:-goldgate.toml}" --out "${INPUT_OUT:-reports}")
  fi
  goldgate "${cmd[@]}" ${extra[@]+"${extra[@]}"} | tee "$stdout_log"
  statuses=("${PIPESTATUS[@]}")
  set -e
  code=${statuses[0]}
else
  echo "not running goldgate: exit code $code before it ($(exit_meaning "$code"))"
fi

# goldgate prints the run directory as its last stdout line; anything else there (an error, an empty
# line) is not a directory and is ignored.
run_dir=""
last=$(tail -n 1 "$stdout_log" | tr -d '\r')
if [ -n "$last" ] && [ -d "$last" ]; then
  run_dir=$(cd "$last" && pwd)
fi

verdict=""
if [ -n "$run_dir" ] && [ -f "$run_dir/summary.json" ]; then
  if command -v jq >/dev/null 2>&1; then
    verdict=$(jq -r '.verdict // empty' "$run_dir/summary.json" 2>/dev/null || true)
  elif command -v python3 >/dev/null 2>&1; then
    verdict=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("verdict") or "")' \
      "$run_dir/summary.json" 2>/dev/null || true)
  else
    verdict=$(sed -n 's/.*"verdict"[[:space:]]*:[[:space:]]*"\([a-z]*\)".*/\1/p' "$run_dir/summary.json" | head -n 1)
  fi
fi
report_md=""
if [ -n "$run_dir" ] && [ -f "$run_dir/report.md" ]; then
  report_md="$run_dir/report.md"
fi

set_output exit-code "$code"
set_output verdict "$verdict"
set_output run-dir "$run_dir"
set_output report-md "$report_md"

if [ -n "$report_md" ]; then
  cat "$report_md" >>"$summary_file"
else
  {
    echo "## goldgate: no report"
    echo
    echo "\`goldgate\` exited $code: $(exit_meaning "$code"). See the step log for why."
  } >>"$summary_file"
fi
echo "goldgate exit code: $code ($(exit_meaning "$code")); verdict: ${verdict:-none}; run directory: ${run_dir:-none}"
