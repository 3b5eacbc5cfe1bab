#!/usr/bin/env bash
# Step (f) of action.yml, the last one: fail the action exactly when goldgate did not exit 0, with
# an annotation that says what the exit code means. Every report step has already run.
#
# Inputs (environment): EXIT_CODE (the gate step's exit-code output), RUN_DIR (optional, named in
# the message).
set -euo pipefail
# shellcheck source=scripts/action/lib.sh
. "$(dirname "$0")/lib.sh"

code=${EXIT_CODE:-}
case "$code" in
  '' | *[!0-9]*)
    echo "::error title=goldgate::the gate step recorded no exit code (${code:-empty}): goldgate did not run"
    exit 1
    ;;
esac
where=${RUN_DIR:+ (report: $RUN_DIR)}
if [ "$code" -eq 0 ]; then
  echo "goldgate: $(exit_meaning 0)$where"
  exit 0
fi
echo "::error title=goldgate::goldgate run exited $code: $(exit_meaning "$code")$where"
# An exit status is one byte; keep a code that would wrap to 0 a failure.
[ "$code" -le 255 ] || code=1
exit "$code"
