#!/usr/bin/env bash
# Any CI, plain shell: run the gate, show the report, fail exactly when goldgate does.
set -euo pipefail

goldgate validate

# Keep goldgate's exit code. With pipefail a pipeline fails with goldgate's code, not tee's, and
# `|| code=$?` stops `set -e` from ending the script before the report is shown. Never
# `echo "dir=$(goldgate run | tail -n 1)"`: echo's status (0) replaces goldgate's.
code=0
goldgate run --out reports | tee goldgate.out || code=$?

# The last line is the run directory (when one was written).
dir=$(tail -n 1 goldgate.out)
if [ -f "$dir/report.md" ]; then
  cat "$dir/report.md" # or post it where your CI shows Markdown
fi
exit "$code"
