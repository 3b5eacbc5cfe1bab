#!/usr/bin/env python3
"""Check and describe one goldgate run against a real server (scripts/interop.sh).

Prints, per side: answers, errors by kind, empty answers, time to first token, and the tokens with
where they came from. Exits 1 when an assertion asked for fails.

    check.py RUN_DIR [--no-empty] [--ttft SIDE] [--errors N] [--streamed SIDE]
                     [--tokens-from RUN_DIR] [--interrupted-named]
    check.py RUN_DIR --same-as OTHER_RUN_DIR     # each side's answers equal the other run's
"""

import argparse
import json
import os
import statistics
import sys


def load(run_dir):
    with open(os.path.join(run_dir, "results.jsonl")) as f:
        results = [json.loads(line) for line in f if line.strip()]
    with open(os.path.join(run_dir, "summary.json")) as f:
        summary = json.load(f)
    return results, summary


def by_side(results):
    sides = {"current": {}, "candidate": {}}
    for r in results:
        sides[r["model"]][r["id"]] = r
    return sides


def tokens(rs):
    ok = [r for r in rs.values() if r["ok"]]
    return (
        sum(r["tokens"]["input"] for r in ok),
        sum(r["tokens"]["output"] for r in ok),
        any(r["tokens"]["estimated"] for r in ok),
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir")
    ap.add_argument("--same-as", metavar="RUN_DIR", help="every answer must equal that run's, side by side")
    ap.add_argument("--errors", type=int, metavar="N", help="the failed requests there must be, per side")
    ap.add_argument("--streamed", default="candidate", metavar="SIDE", help="the streamed side (default candidate)")
    ap.add_argument("--no-empty", action="store_true")
    ap.add_argument("--ttft", metavar="SIDE")
    ap.add_argument("--tokens-from", metavar="RUN_DIR", help="a run of the same items: compare token counts")
    ap.add_argument("--interrupted-named", action="store_true")
    args = ap.parse_args()
    results, summary = load(args.run_dir)
    sides = by_side(results)
    failures = []
    if args.same_as:
        other = by_side(load(args.same_as)[0])
        for side, rs in sides.items():
            same = sum(1 for i, r in rs.items() if r["ok"] and other[side].get(i, {}).get("answer") == r["answer"])
            print(f"  {side}: {same} of {len(rs)} answers identical to {os.path.basename(args.same_as)}'s {side}")
            if same != len(rs):
                failures.append(f"{side}: {len(rs) - same} answer(s) differ from {args.same_as}")
        for f in failures:
            print(f"  FAILED: {f}")
        sys.exit(1 if failures else 0)
    print(f"run {args.run_dir}: verdict {summary['verdict']}, status {summary['status']}")
    for side, rs in sides.items():
        m = summary["models"][side]["metrics"]
        ok = [r for r in rs.values() if r["ok"]]
        empty = [r["id"] for r in ok if not (r.get("answer") or "").strip()]
        kinds = {k: v for k, v in m["errors_by_kind"].items() if v}
        ttfts = [r["ttft_ms"] for r in ok if r.get("ttft_ms") is not None]
        tin, tout, est = tokens(rs)
        print(
            f"  {side:<9} {len(ok)}/{len(rs)} answered, errors {kinds or 'none'}, "
            f"retries {m['retries']}, empty {len(empty)} (summary: {m.get('empty_answers')}), "
            f"accuracy {m['accuracy']:.3f}, latency p50 {m['latency_ms']['p50']:.0f} ms"
            + (f", TTFT p50 {statistics.median(ttfts):.0f} ms ({len(ttfts)} answers)" if ttfts else "")
            + f", tokens in/out {tin}/{tout} {'estimated' if est else 'exact'}"
        )
        if args.no_empty and empty:
            failures.append(f"{side}: {len(empty)} empty answer(s): {empty[:5]}")
        if m.get("empty_answers") != len(empty):
            failures.append(f"{side}: summary says {m.get('empty_answers')} empty, results {len(empty)}")
        if args.ttft == side and len(ttfts) != len(ok):
            failures.append(f"{side}: {len(ok) - len(ttfts)} answer(s) without TTFT")
        if args.errors is not None and len(rs) - len(ok) != args.errors:
            failures.append(f"{side}: {len(rs) - len(ok)} failed request(s), expected {args.errors}")
    cur, cand = sides["current"], sides["candidate"]
    both = [i for i in cur if cur[i]["ok"] and cand.get(i, {}).get("ok")]
    same = sum(1 for i in both if cur[i]["answer"] == cand[i]["answer"])
    print(f"  the two sides' answers identical on {same} of {len(both)} items answered by both")
    streamed = args.streamed
    plain = "current" if streamed == "candidate" else "candidate"
    # The side not streamed carries the server's own counts: the reference.
    exact_in, exact_out, exact_est = tokens(sides[plain])
    if exact_est:
        failures.append(f"the not-streamed side's ({plain}) tokens are estimated: the server gave no usage")
    tin, tout, est = tokens(sides[streamed])
    print(
        f"  {streamed} (streamed) tokens vs the server's own count on the same items: input {tin} vs {exact_in} "
        f"({100 * (tin - exact_in) / exact_in:+.1f}%), output {tout} vs {exact_out} ({100 * (tout - exact_out) / max(exact_out, 1):+.1f}%)"
        " (the answers may differ, so output counts compare different texts)"
    )
    if args.tokens_from:
        other, _ = load(args.tokens_from)
        oin, oout, _ = tokens(by_side(other)[streamed])
        print(f"  the same items counted without [tokenize] (cl100k_base), run {os.path.basename(args.tokens_from)}: input {oin}, output {oout}")
    if args.interrupted_named:
        errors = [r for r in cand.values() if not r["ok"]]
        unnamed = [r["id"] for r in errors if r["error"]["kind"] != "bad_response" or "interrupt_requests" not in r["error"]["message"]]
        print(f"  candidate: {len(errors)} request(s) failed; {len(errors) - len(unnamed)} of them as interrupted streams naming the cause")
        if errors:
            print(f"    e.g. {errors[0]['id']}: {errors[0]['error']['message'][:200]}")
        if unnamed:
            failures.append(f"{len(unnamed)} failure(s) not reported as an interrupted stream: {unnamed[:5]}")
    for f in failures:
        print(f"  FAILED: {f}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
