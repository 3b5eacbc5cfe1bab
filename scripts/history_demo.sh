#!/usr/bin/env bash
# The history page of docs/nightly.md, made again: twenty simulated nights of
# docs/examples/shell/nightly.sh on a `goldgate init` scaffold, then `goldgate history`.
#
#   bash scripts/history_demo.sh [--screenshot]
#
# The scenario, in a new temporary directory: the scaffold with its golden set replaced by
# goldens/support-faq (48 items); the current model the scaffold's reference answerer at 1200 ms;
# the candidate a `kind = "command"` provider, support-bot-v2, a small Python stand-in for a hosted
# model (written by this script) that reads the night's number from a file and whose answers are a
# pure function of the question, its context and the night: from night 9 it answers "I am not
# sure" to a fifth of the questions and is slower, from night 17 it starts every answer with
# "Certainly!" (a silent swap behind the same name); on night 12 its provider file raises
# max_tokens (a settings marker). The latency gate is widened to 1.25x. Each night is
# `bash docs/examples/shell/nightly.sh` with KEEP_FULL=10 and this goldgate first on PATH (night 1,
# a full run, is accepted; nights 9 to 20 regress). Then every run's started_at is set to 03:17:05
# on 1 to 20 November 2026 (run.json and summary.json; finished_at moved with it, and the accepted
# baseline's accepted_at), so the nights spread over the charts' dates, and `goldgate history`
# runs once more: its terminal summary is printed on stdout, the nights' progress on stderr.
#
# With --screenshot (or SCREENSHOT=1), headless Chromium (CHROMIUM=path, else chromium,
# chromium-browser or google-chrome on PATH) then writes the page to docs/history.png, 1280 wide and
# 1600 high, less high when the PNG would reach 250 KB. Besides the build, nothing else in the
# repository is written.
#
# Takes about 2.5 minutes on 2 cores once goldgate is built, nearly all of it the models'
# simulated service time (python3 is needed). Deterministic where goldgate is: the answers, scores,
# gates, drift and the accuracy and faithfulness change points are the same every time. Latencies
# are measured: their chart, and whether the candidate's slowdown at night 9 is found as a change
# point, depend on the machine's load. Run ids and the page's "Generated" time are the clock's.
# GOLDGATE=path uses that binary instead of building target/release/goldgate ($CARGO_TARGET_DIR
# honoured); KEEP=1 keeps the temporary directory (its path is printed), each night's output in
# night-N.log.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
screenshot=${SCREENSHOT:-}
for arg in "$@"; do
  case $arg in
    --screenshot) screenshot=1 ;;
    *) echo "usage: bash scripts/history_demo.sh [--screenshot]" >&2; exit 2 ;;
  esac
done
[ "$screenshot" != 0 ] || screenshot=
start=$SECONDS
say() { echo "history_demo: $*" >&2; }

command -v python3 >/dev/null || { say "python3 is needed (the stand-in model is a Python program)"; exit 2; }
if [ -n "$screenshot" ]; then
  chromium=${CHROMIUM:-}
  for name in chromium chromium-browser google-chrome; do
    [ -n "$chromium" ] || chromium=$(command -v "$name" || true)
  done
  [ -n "$chromium" ] || { say "--screenshot needs Chromium: set CHROMIUM=path"; exit 2; }
fi

target=${CARGO_TARGET_DIR:-target}
if [ -z "${GOLDGATE:-}" ]; then cargo build --release --quiet; fi
goldgate=$(realpath "${GOLDGATE:-$target/release/goldgate}")

work=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
[ -z "${KEEP:-}" ] || say "working in $work"
# nightly.sh calls `goldgate`: this one, whatever the binary's file is called.
mkdir "$work/bin"
ln -s "$goldgate" "$work/bin/goldgate"
eval_dir=$work/eval
"$goldgate" init "$eval_dir" >/dev/null
cd "$eval_dir"

# Replace FROM by TO in FILE, failing when the scaffold no longer has FROM.
edit() {
  grep -qF -- "$2" "$1" || { say "$1 has no '$2': goldgate init changed, update this script"; exit 1; }
  local text
  text=$(<"$1")
  printf '%s\n' "${text//"$2"/"$3"}" >"$1"
}
rm -r goldens/example
cp -r "$repo/goldens/support-faq" goldens/
edit goldgate.toml goldens/example goldens/support-faq
edit goldgate.toml 'max_ratio = 1.10' 'max_ratio = 1.25'
edit providers/current.toml 'base_ms = 200' 'base_ms = 1200'

cat >providers/candidate.toml <<'TOML'
# A stand-in for a hosted model that changes behind its name (scripts/history_demo.sh).
kind = "command"
model = "support-bot-v2"
max_tokens = 256

[command]
argv = ["python3", "model.py"]

[pricing]
input = 0.15
output = 0.60

[limits]
concurrency = 8
timeout_s = 30
retries = 0
TOML

cat >providers/model.py <<'PY'
# support-bot-v2: the context sentences (two at most) sharing the most words with the question; a
# function of the question, its context and the night (./night) only. From night 9 it gives up on
# a fifth of the questions and is slower; from night 17 another model answers behind the name.
import hashlib, json, random, re, sys, time

req = json.load(sys.stdin)
night = int(open("night").read())
STOP = {"the", "and", "for", "you", "your", "are", "can", "how", "what", "when", "does", "with",
        "our", "will", "have", "this", "that", "from", "about", "into"}
def words(s):
    return {w for w in re.findall(r"[a-z0-9]+", s.lower()) if len(w) > 2 and w not in STOP}
q = words(req["question"])
sentences = re.split(r"(?<=[.!?])\s+", (req.get("context") or "").strip())
best = sorted((i for i, s in enumerate(sentences) if words(s) & q), key=lambda i: (-len(words(sentences[i]) & q), i))
answer = " ".join(sentences[i] for i in sorted(best[:2])) or "I don't know."
h = int(hashlib.sha256(req["question"].encode()).hexdigest(), 16)
if night >= 9 and h % 5 == 0:
    answer = "I am not sure; please contact support."
if night >= 17:
    answer = "Certainly! " + answer
time.sleep((0.5 if night < 9 else 0.7) + random.Random(h * 1000 + night).random() * 0.05)
print(answer)
PY

# The nights, in a clean environment (no webhook, step summary or GOLDGATE_* of the caller's).
runs=()
for night in $(seq 20); do
  echo "$night" >providers/night
  if [ "$night" = 12 ]; then edit providers/candidate.toml 'max_tokens = 256' 'max_tokens = 384'; fi
  before=$(find reports -mindepth 1 -maxdepth 1 -name '2*' 2>/dev/null | sort || true)
  code=0
  env -i PATH="$work/bin:$PATH" HOME="$HOME" TMPDIR="${TMPDIR:-/tmp}" KEEP_FULL=10 \
    bash "$repo/docs/examples/shell/nightly.sh" >"$work/night-$night.log" 2>&1 || code=$?
  run=$(comm -13 <(echo "$before") <(find reports -mindepth 1 -maxdepth 1 -name '2*' | sort))
  say "night $night: run ${run#reports/}, exit $code"
  if [ "$code" -gt 1 ] || [ -z "$run" ] || [[ $run == *$'\n'* ]] || { [ "$night" = 1 ] && [ "$code" != 0 ]; }; then
    tail -n 30 "$work/night-$night.log" >&2
    say "night $night did not go as planned (exit $code); KEEP=1 keeps $work"
    exit 1
  fi
  runs+=("$run")
done

# 03:17:05 on 1 to 20 November, each run as long as it really took.
python3 - "${runs[@]}" <<'PY'
import datetime, glob, json, sys
fmt = "%Y-%m-%dT%H:%M:%SZ"
def edit(path, change):
    with open(path) as f:
        doc = json.load(f)
    change(doc)
    with open(path, "w") as f:
        json.dump(doc, f, indent=2, ensure_ascii=False)
        f.write("\n")
first_end = None
for night, run in enumerate(sys.argv[1:], 1):
    start = datetime.datetime(2026, 11, night, 3, 17, 5)
    def summary(doc):
        global first_end
        took = datetime.datetime.strptime(doc["finished_at"], fmt) - datetime.datetime.strptime(doc["started_at"], fmt)
        doc["started_at"], doc["finished_at"] = start.strftime(fmt), (start + took).strftime(fmt)
        first_end = first_end or start + took
    edit(f"{run}/run.json", lambda doc: doc.update(started_at=start.strftime(fmt)))
    edit(f"{run}/summary.json", summary)
for path in glob.glob("reports/accepted/*.json"):
    edit(path, lambda doc: doc.update(accepted_at=(first_end + datetime.timedelta(seconds=1)).strftime(fmt)))
PY

code=0
"$goldgate" history --out reports >"$work/history.out" || code=$?
cat "$work/history.out"
if [ "$code" != 1 ]; then
  say "goldgate history exited $code; tonight (night 20) should have regressed (exit 1)"
  exit 1
fi

if [ -n "$screenshot" ]; then
  png=$repo/docs/history.png
  height=1600
  while true; do
    "$chromium" --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1280,$height \
      --user-data-dir="$work/chromium" --screenshot="$png" "file://$eval_dir/reports/history/index.html" \
      >"$work/chromium.log" 2>&1 || { cat "$work/chromium.log" >&2; exit 1; }
    size=$(wc -c <"$png")
    if [ "$size" -lt 250000 ] || [ "$height" -le 1000 ]; then break; fi
    height=$((height - 100))
  done
  say "docs/history.png: 1280 x $height, $size bytes"
  [ "$size" -lt 250000 ] || { say "docs/history.png is not under 250 KB even at 1000 high"; exit 1; }
fi
say "done in $((SECONDS - start)) s"
