#!/usr/bin/env bash
# One night of a nightly regression watch (docs/nightly.md). Every recipe calls this script, from the
# evaluation's directory (where goldgate.toml is) with goldgate on PATH; extra arguments go to
# `goldgate run`, e.g. `bash ci/nightly.sh --concurrency 16`.
#
#   1. Tonight's gate: `goldgate run --baseline accepted` (only the candidate is called; the current
#      model's answers are the accepted run's stored ones) when the output directory holds an
#      accepted baseline. Otherwise it is the first night: a full run, accepted as the baseline when
#      no gate failed.
#   2. report.md to $GITHUB_STEP_SUMMARY, when that is set.
#   3. `goldgate history prune --keep-full $KEEP_FULL`: older runs keep their scores, not answer text.
#   4. `goldgate history`: <out>/history/index.html, and whether tonight regressed.
#   5. On a regression, a short message to $GOLDGATE_WEBHOOK_URL, when that is set.
#
# Exit codes, those of `goldgate run`, so a scheduler sees a regression:
#   0    no regression (or the first night, accepted)
#   1    tonight regressed against the accepted baseline: a gate failed (on the first night: the
#        candidate failed a gate against the current model, and nothing was accepted)
#   2    bad usage, configuration or input, nothing was run (e.g. the golden set changed since the
#        accepted run; docs/nightly.md#troubleshooting)
#   3    tonight's run could not complete (e.g. the provider was unreachable throughout)
#   4    inconclusive: no gate failed, but some could not be decided
#   75   another nightly run holds the lock; this one did nothing
#   130  interrupted (`goldgate run --resume DIR` finishes the run)
# A failed prune or history turns a 0 into its own exit code.
#
# Environment:
#   GOLDGATE_OUT=reports      where the runs, accepted/ and history/ are (and the lock, .nightly.lock)
#   KEEP_FULL=30              runs of each evaluation kept whole; older ones are pruned
#   GOLDGATE_WEBHOOK_URL      a Slack-compatible incoming webhook, posted to on a regression; a
#                             secret, never printed
#   NIGHTLY_LINK              a link for that message (the CI job's page, the published history)
#   NIGHTLY_EXPECT_BASELINE=1 a missing accepted baseline is an error (exit 2), not a first night:
#                             set it where reports/ is restored from storage that can lose it (a CI
#                             cache), so a lost cache is never taken for a first night
# Sharded (docs/nightly.md#sharded): N pods run shards, one more merges them.
#   NIGHTLY_SHARD=K/N         run only shard K of N, then move its run directory into
#   NIGHTLY_SHARDS=DIR        DIR (on the same volume as the output directory); nothing else
#   NIGHTLY_MERGE=DIR         instead of running, merge the shard run directories in DIR, waiting
#   NIGHTLY_MERGE_EXPECT=N    first until DIR holds N of them, for at most
#   NIGHTLY_MERGE_WAIT=0      this many seconds (then the shards that are there are merged, and
#                             every report says which are missing)
set -euo pipefail

out=${GOLDGATE_OUT:-reports}
keep_full=${KEEP_FULL:-30}
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

say() { echo "nightly: $*" >&2; }

# An accepted baseline of any evaluation under $out. One evaluation per output directory: a second
# one's first night then fails with exit 2 (`goldgate accept` its first run by hand).
has_baseline() { compgen -G "$out/accepted/*.json" >/dev/null; }

if [ "${NIGHTLY_EXPECT_BASELINE:-}" = 1 ] && ! has_baseline; then
  say "no accepted baseline under $out/accepted/, and NIGHTLY_EXPECT_BASELINE=1: was $out restored? (docs/nightly.md#troubleshooting)"
  exit 2
fi

# The run directory: the last line goldgate printed, when it is one.
last_dir() {
  local dir
  dir=$(tail -n 1 "$1")
  if [ -n "$dir" ] && [ -d "$dir" ]; then echo "$dir"; fi
}

# A shard: run it, hand its directory to the merge, and leave the verdict to the merged run.
if [ -n "${NIGHTLY_SHARD:-}" ]; then
  shards=${NIGHTLY_SHARDS:?NIGHTLY_SHARD needs NIGHTLY_SHARDS, the directory the merge reads}
  mkdir -p "$shards/.failed"
  code=0
  if has_baseline; then
    goldgate run --out "$out" --shard "$NIGHTLY_SHARD" --baseline accepted "$@" | tee "$tmp/run.out" || code=$?
  else
    goldgate run --out "$out" --shard "$NIGHTLY_SHARD" "$@" | tee "$tmp/run.out" || code=$?
  fi
  dir=$(last_dir "$tmp/run.out")
  case $code in
    0 | 1 | 4) # complete: its own gates are not the verdict, the merged run's are
      [ -n "$dir" ] || exit 3
      mv "$dir" "$shards/"
      exit 0
      ;;
    *)
      if [ -n "$dir" ]; then mv "$dir" "$shards/.failed/"; fi
      exit "$code"
      ;;
  esac
fi

# One night at a time: a second one (a slow night, a manual run) exits 75 and does nothing.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$out/.nightly.lock"
  if ! flock -n 9; then
    say "another nightly run holds $out/.nightly.lock; nothing done"
    exit 75
  fi
else
  # No flock (macOS): a lock directory, removed on exit; one left by `kill -9` is removed by hand.
  if ! mkdir "$out/.nightly.lock.d" 2>/dev/null; then
    say "another nightly run holds $out/.nightly.lock.d (remove it if none is running); nothing done"
    exit 75
  fi
  trap 'rm -rf "$tmp" "$out/.nightly.lock.d"' EXIT
fi

first_night=true
if has_baseline; then first_night=false; fi

# 1. Tonight's gate. With pipefail the pipeline's status is goldgate's, and `|| code=$?` keeps it
# from ending the script before the reports are published.
code=0
if [ -n "${NIGHTLY_MERGE:-}" ]; then
  expect=${NIGHTLY_MERGE_EXPECT:-0}
  deadline=$((SECONDS + ${NIGHTLY_MERGE_WAIT:-0}))
  shopt -s nullglob
  while true; do
    found=("$NIGHTLY_MERGE"/*/)
    if [ "${#found[@]}" -ge "$expect" ] || [ "$SECONDS" -ge "$deadline" ]; then break; fi
    sleep 10
  done
  shopt -u nullglob
  if [ "${#found[@]}" -eq 0 ]; then
    say "no shard finished under $NIGHTLY_MERGE: nothing to merge"
    exit 3
  fi
  say "merging ${#found[@]} shard(s) of $expect expected"
  goldgate merge "${found[@]}" --out "$out" | tee "$tmp/run.out" || code=$?
elif $first_night; then
  say "no accepted baseline under $out/accepted/: the first night, a full run"
  goldgate run --out "$out" "$@" | tee "$tmp/run.out" || code=$?
else
  goldgate run --out "$out" --baseline accepted "$@" | tee "$tmp/run.out" || code=$?
fi
dir=$(last_dir "$tmp/run.out")

if $first_night && [ -n "$dir" ]; then
  if [ "$code" = 0 ] || [ "$code" = 4 ]; then
    goldgate accept "$dir" || code=$?
  elif [ "$code" = 1 ]; then
    say "a gate failed, so this run is not accepted; accept one by hand: goldgate accept RUN_DIR"
  fi
fi

# 2. The run's report in the job summary, before a prune could thin it.
if [ -n "${GITHUB_STEP_SUMMARY:-}" ] && [ -n "$dir" ] && [ -f "$dir/report.md" ]; then
  cat "$dir/report.md" >>"$GITHUB_STEP_SUMMARY"
fi

# 3. and 4. Retention, then the history (which reads pruned runs too).
prune_code=0
goldgate history prune --keep-full "$keep_full" --out "$out" || prune_code=$?
history_code=0
goldgate history --out "$out" | tee "$tmp/history.out" || history_code=$?

final=$code
if [ "$history_code" = 1 ] && { [ "$final" = 0 ] || [ "$final" = 4 ]; }; then final=1; fi
if [ "$final" = 0 ] && [ "$history_code" != 0 ]; then final=$history_code; fi
if [ "$final" = 0 ] && [ "$prune_code" != 0 ]; then final=$prune_code; fi

# 5. The message: JSON built here, escaped for JSON and for Slack (<, > and & are its markup, so
# a model name such as <!channel> notifies nobody); the URL goes to curl in a config on stdin, so
# it is in no log and in no process's command line.
json_string() {
  local s=$1
  # Replacements quoted: bash 5.2 reads an unquoted & in one as the matched text.
  s=${s//'&'/'&amp;'}
  s=${s//'<'/'&lt;'}
  s=${s//'>'/'&gt;'}
  s=${s//"\\"/"\\\\"}
  s=${s//'"'/'\"'}
  s=${s//$'\n'/'\n'}
  s=${s//$'\t'/' '}
  s=${s//[[:cntrl:]]/}
  printf '"%s"' "$s"
}
if [ "$final" = 1 ] && [ -n "${GOLDGATE_WEBHOOK_URL:-}" ]; then
  text="goldgate nightly: a gate failed (exit 1)"
  if [ -n "$dir" ]; then text+=$'\n'"run ${dir##*/}"; fi
  # The verdict and the failed gates, as the run and the history printed them.
  while IFS= read -r line; do
    line=$(tr -s ' ' <<<"$line")
    text+=$'\n'"${line# }"
  done < <(grep -h -e '^verdict:' -e 'REGRESSED' -e ': FAIL$' "$tmp/run.out" "$tmp/history.out" || true)
  if [ -n "${NIGHTLY_LINK:-}" ]; then text+=$'\n'"$NIGHTLY_LINK"; fi
  printf '{"text": %s}\n' "$(json_string "$text")" >"$tmp/message.json"
  url=${GOLDGATE_WEBHOOK_URL//\\/\\\\}
  url=${url//\"/\\\"}
  if curl --fail --silent --show-error --max-time 30 --retry 2 --output /dev/null \
    --header 'Content-Type: application/json' --data-binary @"$tmp/message.json" \
    --config - <<<"url = \"$url\""; then
    say "posted the regression to the webhook"
  else
    say "warning: could not post to the webhook (GOLDGATE_WEBHOOK_URL)"
  fi
fi

case $final in
  0) say "exit 0: no regression" ;;
  1) say "exit 1: a gate failed" ;;
  2) say "exit 2: bad usage, configuration or input" ;;
  3) say "exit 3: tonight's run could not complete" ;;
  4) say "exit 4: inconclusive" ;;
  *) say "exit $final" ;;
esac
exit "$final"
