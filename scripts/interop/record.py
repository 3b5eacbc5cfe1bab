#!/usr/bin/env python3
"""Record what a real OpenAI-compatible server sends back, byte for byte, as test fixtures.

Each transcript is two files in --out: NAME.json (where it came from, the request body, the
status, every response header, and the body's chunks as they arrived: length and time) and
NAME.body (the response body exactly as received, de-chunked). tests/it/interop.rs replays them
through the test server. Only the standard library is used, so any Python 3 runs it.

    python3 scripts/interop/record.py --base http://127.0.0.1:8765/v1 \
        --out tests/fixtures/interop/llama-cpp-python --source "llama-cpp-python[server] 0.3.36, ..."
"""

import argparse
import datetime
import http.client
import json
import os
import sys
import threading
import time
import urllib.parse

# The shape goldgate sends (src/provider/openai.rs): greedy, bounded, seeded.
QUESTION = (
    "Context:\nRefunds are issued within 14 days of the return being received. "
    "Items must be unused and in their original packaging.\n\n"
    "Question: How long do refunds take?\nAnswer briefly."
)


def chat(stream, max_tokens=32, prompt=QUESTION):
    body = {
        "model": "local",
        "messages": [{"role": "user", "content": prompt}],
        "temperature": 0.0,
        "max_tokens": max_tokens,
        "seed": 7,
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


class Recorder:
    def __init__(self, base, out, source):
        url = urllib.parse.urlsplit(base)
        self.host, self.port = url.hostname, url.port or 80
        self.prefix = url.path.rstrip("/")
        self.out = out
        self.source = source
        os.makedirs(out, exist_ok=True)

    def send(self, path, body, on_first_bytes=None, raw=None):
        """POST and read the whole response, chunk by chunk as it arrives."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=600)
        payload = raw if raw is not None else json.dumps(body).encode()
        start = time.monotonic()
        conn.request("POST", self.prefix + path, payload, {"content-type": "application/json"})
        resp = conn.getresponse()
        chunks, data = [], bytearray()
        ended = "complete"
        while True:
            try:
                piece = resp.read1(65536)
            except http.client.IncompleteRead as e:
                # The connection closed inside the body (llama-cpp-python does this to a stream it
                # interrupts: no terminating chunk). Keep what came; the replay ends the same way.
                piece, ended = e.partial, "cut"
                if not piece:
                    break
            if not piece:
                break
            chunks.append({"len": len(piece), "at_ms": round((time.monotonic() - start) * 1000, 1)})
            data += piece
            if on_first_bytes is not None and len(chunks) == 1:
                on_first_bytes()
            if ended == "cut":
                break
        conn.close()
        return resp.status, resp.getheaders(), chunks, bytes(data), ended

    def save(self, name, note, path, body, status, headers, chunks, data, ended):
        meta = {
            "source": self.source,
            "recorded_at": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "recorded_by": "scripts/interop/record.py",
            "note": note,
            "request": {"method": "POST", "path": self.prefix + path, "body": body},
            "status": status,
            "headers": [[k, v] for k, v in headers],
            "chunks": chunks,
            # "cut": the connection closed before the body's end (no terminating chunk).
            "ended": ended,
        }
        with open(os.path.join(self.out, name + ".json"), "w") as f:
            json.dump(meta, f, indent=2)
            f.write("\n")
        with open(os.path.join(self.out, name + ".body"), "wb") as f:
            f.write(data)
        print(f"{name}: HTTP {status}, {len(data)} bytes in {len(chunks)} chunk(s), {ended}", file=sys.stderr)

    def record(self, name, note, body, path="/chat/completions", raw=None):
        got = self.send(path, body, raw=raw)
        self.save(name, note, path, body if raw is None else raw.decode(), *got)
        return got

    def record_interrupted(self):
        """A stream, and a second request sent as soon as the stream's first bytes arrive."""
        body = chat(stream=True, max_tokens=64)
        second = {}

        def interrupt():
            def go():
                second["result"] = self.send("/chat/completions", chat(stream=False, max_tokens=8))
            t = threading.Thread(target=go)
            t.start()
            second["thread"] = t

        got = self.send("/chat/completions", body, on_first_bytes=interrupt)
        second["thread"].join()
        self.save(
            "stream-interrupted",
            "a stream, while a second request arrived (sent when the stream's first bytes came)",
            "/chat/completions", body, *got,
        )


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, help="the API root, e.g. http://127.0.0.1:8765/v1")
    ap.add_argument("--out", required=True)
    ap.add_argument("--source", required=True, help="which server, version and model")
    ap.add_argument("--tokenize", help="the server's token-count endpoint, to record too")
    args = ap.parse_args()
    r = Recorder(args.base, args.out, args.source)
    r.record("stream", "a streamed answer, usage asked for", chat(stream=True))
    r.record("nonstream", "the same request, not streamed", chat(stream=False))
    r.record_interrupted()
    r.record(
        "context-exceeded",
        "a prompt longer than the server's context window",
        chat(stream=False, prompt="refund policy " * 3000),
    )
    # Note: a body without messages is no error to llama-cpp-python (it has a default); a string
    # where the list belongs is.
    r.record(
        "invalid-request",
        "messages is a string, not a list",
        None,
        raw=b'{"model": "local", "messages": "How long do refunds take?"}',
    )
    if args.tokenize:
        url = urllib.parse.urlsplit(args.tokenize)
        t = Recorder(f"{url.scheme}://{url.netloc}", args.out, args.source)
        t.record("tokenize-count", "the server's tokenizer counting the question", {"input": QUESTION}, path=url.path)


if __name__ == "__main__":
    main()
