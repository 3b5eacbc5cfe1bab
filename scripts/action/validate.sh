#!/usr/bin/env bash
# Step (b) of action.yml: `goldgate validate` before anything is spent on a run.
# It never fails the step: its exit code goes to the `exit-code` output, and the gate step reports a
# failed validation (exit 2) exactly like a run refused for bad configuration, summary included.
#
# Inputs (environment): INPUT_CONFIG, INPUT_WORKING_DIRECTORY, INPUT_VALIDATE ('false' skips),
# INPUT_MERGE (set: shards are merged, nothing to validate), and the provider keys named by
# api_key_env, which come from the `env:` of the workflow step that uses the action.
set -euo pipefail
# shellcheck source=scripts/action/lib.sh
. "$(dirname "$0")/lib.sh"

if ! cd "${INPUT_WORKING_DIRECTORY:-.}"; then
  echo "working-directory ${INPUT_WORKING_DIRECTORY} does not exist"
  set_output exit-code 2
  exit 0
fi
if [ -n "${INPUT_MERGE:-}" ]; then
  echo "validate: skipped (merging the shards in ${INPUT_MERGE}: no model is called)"
  set_output exit-code 0
  exit 0
fi
if [ "${INPUT_VALIDATE:-true}" = false ]; then
  echo "validate: skipped (validate: 'false')"
  set_output exit-code 0
  exit 0
fi
code=0
goldgate validate -c "${INPUT_CONFIG:-goldgate.toml}" || code=$?
set_output exit-code "$code"
