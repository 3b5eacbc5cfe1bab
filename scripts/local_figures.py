#!/usr/bin/env python3
"""The speed figures of docs/local-models.md, from a run of the local example.

    bash scripts/demo.sh                                   # or: target/release/goldgate run -c examples/local/goldgate.toml
    python3 scripts/local_figures.py reports/<run-id>      # the run directory it printed last

Per model, over its answered requests: prompt processing = input tokens / time to first token (the
first token comes right after the prompt is processed); generation = (output tokens - 1) / (latency -
time to first token); latency and TTFT percentiles and cost per 1,000 queries as the summary has them.
The machine's load at the start is printed too: figures from a loaded machine are not speed figures.
"""

import json
import os
import statistics
import sys


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    run = sys.argv[1]
    summary = json.load(open(os.path.join(run, "summary.json")))
    results = [json.loads(l) for l in open(os.path.join(run, "results.jsonl")) if l.strip()]
    machine = summary.get("machine") or {}
    print(f"run {summary['run_id']}, started {summary['started_at']}, machine {machine}")
    for side in ("current", "candidate"):
        model = summary["models"][side]
        m = model["metrics"]
        ok = [r for r in results if r["model"] == side and r["ok"] and r.get("ttft_ms")]
        prompt = sum(r["tokens"]["input"] for r in ok) / (sum(r["ttft_ms"] for r in ok) / 1000)
        gen_tokens = sum(max(r["tokens"]["output"] - 1, 0) for r in ok)
        gen_time = sum(r["latency_ms"] - r["ttft_ms"] for r in ok) / 1000
        lat, ttft = m["latency_ms"], m.get("ttft_ms") or {}
        print(
            f"{model['model']}: prompt processing {prompt:.0f} tokens/s, generation {gen_tokens / gen_time:.0f} tokens/s, "
            f"latency p50/p95 {lat['p50']:.0f}/{lat['p95']:.0f} ms, TTFT p50 {ttft.get('p50', float('nan')):.0f} ms, "
            f"cost per 1k ${m['cost_per_1k']:.3f} ({len(ok)} answers; median output {statistics.median(r['tokens']['output'] for r in ok)} tokens)"
        )


if __name__ == "__main__":
    main()
