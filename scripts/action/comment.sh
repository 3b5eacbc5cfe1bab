#!/usr/bin/env bash
# Step (e) of action.yml: on a pull request, create or update ONE comment holding report.md. The
# comment is found again by the hidden marker on its first line, so every push edits the same one.
# A comment that cannot be written (a fork's read-only token, a missing `pull-requests: write`) is a
# warning, not a failure: the action's result is the gate's alone.
#
# Inputs (environment): GH_TOKEN, REPORT_MD (may be empty), EXIT_CODE, GITHUB_REPOSITORY,
# GITHUB_EVENT_NAME, GITHUB_EVENT_PATH; GITHUB_SERVER_URL and GITHUB_RUN_ID for the link to the run.
set -euo pipefail
# shellcheck source=scripts/action/lib.sh
. "$(dirname "$0")/lib.sh"

marker='<!-- goldgate -->'
# GitHub refuses a comment body over 65,536 characters; report.md stays under that, the marker and
# the link to the run are added, and anything else is cut here rather than refused there.
limit=65000

case "${GITHUB_EVENT_NAME:-}" in
  pull_request | pull_request_target) ;;
  *)
    echo "comment: not a pull request (${GITHUB_EVENT_NAME:-no event}); nothing to do"
    exit 0
    ;;
esac
pr=$(jq -r '.pull_request.number // empty' "${GITHUB_EVENT_PATH:?}")
if [ -z "$pr" ]; then
  echo "::warning title=goldgate comment::the event has no pull request number; no comment written"
  exit 0
fi
repo=${GITHUB_REPOSITORY:?}
run_url="${GITHUB_SERVER_URL:-https://github.com}/$repo/actions/runs/${GITHUB_RUN_ID:-}"

body=$(mktemp)
trap 'rm -f "$body" "$body.json"' EXIT
{
  echo "$marker"
  if [ -n "${REPORT_MD:-}" ] && [ -f "$REPORT_MD" ]; then
    cat "$REPORT_MD"
  else
    code=${EXIT_CODE:-?}
    echo "## goldgate: no report"
    echo
    echo "\`goldgate\` exited $code: $(exit_meaning "$code")."
  fi
  echo
  echo "<sub>The full HTML report is in the artifact of [this workflow run]($run_url).</sub>"
} >"$body"
# jq counts characters, not bytes, so a cut never splits one.
jq -Rs --argjson limit "$limit" \
  'if length > $limit then {body: (.[:$limit] + "\n\n… (cut: the full report is in the artifact)")} else {body: .} end' \
  "$body" >"$body.json"

warn() {
  echo "::warning title=goldgate comment::$1"
  exit 0
}
ids=$(gh api --paginate "repos/$repo/issues/$pr/comments" \
  --jq ".[] | select(.body | startswith(\"$marker\")) | .id") ||
  warn "could not list the comments of #$pr (does the token have pull-requests: write?)"
id=${ids%%$'\n'*}
if [ -n "$id" ]; then
  gh api --method PATCH "repos/$repo/issues/comments/$id" --input "$body.json" >/dev/null ||
    warn "could not update comment $id on #$pr"
  echo "comment: updated $id on #$pr"
else
  gh api --method POST "repos/$repo/issues/$pr/comments" --input "$body.json" >/dev/null ||
    warn "could not comment on #$pr (does the token have pull-requests: write?)"
  echo "comment: created on #$pr"
fi
