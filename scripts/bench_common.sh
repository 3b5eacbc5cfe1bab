#!/usr/bin/env bash
# The set-up scripts/bench.sh, memory.sh, stats_cost.sh, history_bench.sh and sequential_bench.sh
# share: sourced, not run, from the repository root after `set -euo pipefail`:
#
#   cd "$(dirname "$0")/.."
#   # shellcheck source=scripts/bench_common.sh
#   source scripts/bench_common.sh
#
# Sourcing it sets target (${CARGO_TARGET_DIR:-target}) and defines, in the order they are called:
#
#   bench_build                  builds goldgate and the benchmark server (examples/bench_server.rs)
#                                into $target, or with GOLDGATE=path only the server, and only if it
#                                is missing. Sets goldgate (GOLDGATE, else $target/release/goldgate)
#                                and bench_server ($target/release/examples/bench_server).
#                                stats_cost.sh finds its binaries itself and sets both instead.
#   bench_workdir                sets work (a new `mktemp -d`) and server_pid (empty), and an EXIT
#                                trap that kills the server if it runs and removes $work unless
#                                KEEP is set.
#   bench_start_server LATENCY_MS
#                                starts `$bench_server serve 127.0.0.1:0 LATENCY_MS 0` (its log
#                                $work/server.log), sets server_pid, waits up to 5 s for it to
#                                listen and sets addr (host:port).
#   bench_stop_server            kills the server and waits for it; server_pid empty again.
#   bench_project N CONCURRENCY  writes the evaluation into $work: the N-item golden set
#                                goldens/bench (item-000000..., a refund question each, the keyword
#                                "30 days"), providers/current.toml and providers/candidate.toml
#                                (OpenAI-compatible, both at $addr, at CONCURRENCY), and
#                                goldgate.toml with the one accuracy gate (min_ratio 0.95); then
#                                locks the golden set with $goldgate.
#   bench_measure TIMEFILE CMD...
#                                runs CMD, appending "wall_s peak_kB user_s sys_s" to TIMEFILE
#                                (GNU time, else python's getrusage); returns CMD's exit code.

target=${CARGO_TARGET_DIR:-target}

bench_build() {
  if [ -z "${GOLDGATE:-}" ]; then
    cargo build --release --quiet --bin goldgate --example bench_server
  elif [ ! -x "$target/release/examples/bench_server" ]; then
    cargo build --release --quiet --example bench_server
  fi
  goldgate=${GOLDGATE:-$target/release/goldgate}
  bench_server=$target/release/examples/bench_server
}

bench_workdir() {
  work=$(mktemp -d)
  server_pid=
  trap '[ -z "$server_pid" ] || kill "$server_pid" 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
}

bench_start_server() {
  "$bench_server" serve 127.0.0.1:0 "$1" 0 > "$work/server.log" &
  server_pid=$!
  for _ in $(seq 50); do grep -q listening "$work/server.log" 2>/dev/null && break; sleep 0.1; done
  addr=$(sed -n 's/listening on //p' "$work/server.log")
}

bench_stop_server() {
  kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; server_pid=
}

bench_project() {
  local n=$1 conc=$2 side
  mkdir -p "$work/goldens/bench" "$work/providers"
  printf 'name = "bench"\nversion = 1\n' > "$work/goldens/bench/golden.toml"
  python3 - "$n" > "$work/goldens/bench/items.jsonl" <<'PY'
import json, sys
for i in range(int(sys.argv[1])):
    print(json.dumps({"id": f"item-{i:06d}", "question": f"How long is the refund window for order {i}?",
                      "context": "Returns are accepted within 30 days of delivery. Refunds go to the original payment method.",
                      "keywords": ["30 days"], "tags": ["returns" if i % 2 else "billing"]}))
PY
  for side in current candidate; do
    printf 'kind = "openai"\nmodel = "%s"\nbase_url = "http://%s/v1"\n[pricing]\ninput = 2.5\noutput = 10\n[limits]\nconcurrency = %s\ntimeout_s = 30\n' \
      "$side" "$addr" "$conc" > "$work/providers/$side.toml"
  done
  printf 'golden = "goldens/bench"\ncurrent = "providers/current.toml"\ncandidate = "providers/candidate.toml"\nprompt = "{{ question }}"\n[[gate]]\nmetric = "accuracy"\nmin_ratio = 0.95\n' > "$work/goldgate.toml"
  "$goldgate" golden lock "$work/goldens/bench" >/dev/null
}

# bench_measure TIMEFILE CMD...: runs CMD, appending "wall_s peak_kB user_s sys_s" to TIMEFILE; CMD's
# exit code is returned.
bench_measure() {
  local file=$1; shift
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -f '%e %M %U %S' -a -o "$file" "$@"
  else
    python3 - "$file" "$@" <<'PY'
import resource, subprocess, sys, time
start = time.monotonic()
code = subprocess.call(sys.argv[2:])
wall = time.monotonic() - start
r = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(sys.argv[1], "a") as f:
    f.write(f"{wall:.2f} {r.ru_maxrss} {r.ru_utime:.2f} {r.ru_stime:.2f}\n")
sys.exit(code)
PY
  fi
}
