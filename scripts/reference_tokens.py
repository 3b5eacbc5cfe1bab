#!/usr/bin/env python3
"""Reference token ids of the two local models' tokenizers over a real corpus, from llama.cpp.

goldgate rebuilds each GGUF file's tokenizer from its metadata (src/provider/gguf/tokenizer.rs).
This script tokenizes a corpus of a few thousand real texts with llama.cpp's own tokenizer
(through llama-cpp-python: `Llama(model_path, vocab_only=True).tokenize(text.encode(),
add_bos=False, special=False)`, plain text, control tokens not parsed) and writes a compact
fixture, tests/fixtures/gguf/tokens.json, that `gguf_tokenizers_match_llama_cpp_on_a_corpus` in
tests/it/gguf.rs checks goldgate's tokenizers against.

The corpus, rebuilt the same way by the Rust test (in this order, empty texts left out, each text
kept once, at its first occurrence):

1. `extra`: a few awkward strings, stored in the fixture itself;
2. goldens/support-faq/items.jsonl: per item its question, context, expected answer, and the
   default prompt (src/config.rs DEFAULT_PROMPT) rendered for it;
3. tests/fixtures/faithfulness/begin_dev_wow.tsv, then begin_test_wow.tsv: per data row (lines
   split at "\n", one trailing "\r" dropped, the header skipped) its `knowledge`, `message` and
   `response` columns (tab-separated columns 3, 4 and 5).

The fixture stores, rather than every id (a few hundred thousand per model):

- `corpus_sha256`: SHA-256 of the texts, each as UTF-8 followed by one NUL byte, so the test
  knows it rebuilt the same corpus;
- per model `ids_sha256`: SHA-256 of every text's ids, each id a little-endian u32, each text's
  ids followed by the u32 0xFFFFFFFF: exact agreement on the whole corpus;
- per model `per_text`: the first 2 bytes (4 hex digits) of SHA-256 of each text's ids alone,
  concatenated: localises a disagreement to the texts concerned;
- per model `sample`: the full ids of the `extra` texts and every 250th text, to show a diff.

Generated with llama-cpp-python 0.3.36 (llama.cpp built portable, AVX2, CPU), by:

    ~/.cache/goldgate/interop/venv/bin/python scripts/reference_tokens.py

(models from `bash scripts/fetch-models.sh`, in ~/.cache/goldgate/models or $GOLDGATE_MODELS).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import sys
from pathlib import Path

import llama_cpp
from llama_cpp import Llama

ROOT = Path(__file__).resolve().parent.parent
MODELS = Path(os.environ.get("GOLDGATE_MODELS", Path.home() / ".cache/goldgate/models"))
OUT = ROOT / "tests/fixtures/gguf/tokens.json"
SAMPLE_EVERY = 250

FILES = {
    "smollm2": "SmolLM2-135M-Instruct.Q4_1.gguf",
    "gemma3": "gemma-3-270m-q4_k_m.gguf",
}

EXTRA = [
    "Hello world",
    "  two  spaces, then\n\nnew lines\r\n\tand a tab",
    "It's 2026: prices rose 12.5% to $1,299.99!",
    "naïve café — “quotes” 🦀 日本語",
    "trailing space ",
    " leading space",
    "I'm sure they'll say you've done it; we'd agree",
    "Refunds take 5–7 business days (€40+).",
    "Ünïcödé ÀÉÎÕÜ ß ø å æ œ ñ ç — ½ ¾ ² ³ µ ¶ § © ® ™",
    "Привет, мир! Γειά σου κόσμε. مرحبا بالعالم. שלום עולם. नमस्ते दुनिया",
    "中文：你好，世界。日本語：こんにちは、世界。한국어: 안녕하세요",
    "emoji 👍🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️ and the variation selector\ufe0f",
    "\u00a0non-breaking\u2009thin\u200bzero-width\u3000ideographic space",
    "tabs\t\tand\n\n\nthree newlines\n\n\n\nfour",
    "<start_of_turn>user\nnot a control token<end_of_turn> <|im_start|> <bos>",
    "<b>bold</b> <table><tr><td>cell</td></tr></table> [link](http://x.y/z?a=1&b=2)",
    "code: fn main() { let x = vec![1, 2, 3]; println!(\"{x:?}\"); }",
    "1234567890 3.14159 1e-10 0x1F -42 +7 100,000,000",
    "MiXeD CaSe ALLCAPS lowercase camelCaseWord snake_case_word kebab-case-word",
    "a" * 200,
    " " * 17 + "x" + "\n" * 9,
]


def rag_prompt(context: str | None, question: str) -> str:
    if context:
        return (
            "Answer the question using only the context below.\n\n"
            f"Context:\n{context}\n\nQuestion: {question}"
        )
    return f"Question: {question}"


def corpus() -> list[str]:
    texts: list[str] = list(EXTRA)
    for line in (ROOT / "goldens/support-faq/items.jsonl").read_text(encoding="utf-8").split("\n"):
        if not line.strip():
            continue
        item = json.loads(line)
        texts += [item["question"], item.get("context") or "", item.get("expected") or ""]
        texts.append(rag_prompt(item.get("context"), item["question"]))
    for name in ("begin_dev_wow.tsv", "begin_test_wow.tsv"):
        raw = (ROOT / "tests/fixtures/faithfulness" / name).read_text(encoding="utf-8")
        for line in raw.split("\n")[1:]:
            line = line[:-1] if line.endswith("\r") else line
            cols = line.split("\t")
            if len(cols) >= 5:
                texts += cols[2:5]
    seen: set[str] = set()
    out = []
    for t in texts:
        if t and t not in seen:
            seen.add(t)
            out.append(t)
    return out


def ids_bytes(ids: list[int]) -> bytes:
    return struct.pack(f"<{len(ids)}I", *ids)


def main() -> None:
    texts = corpus()
    corpus_hash = hashlib.sha256()
    for t in texts:
        corpus_hash.update(t.encode("utf-8") + b"\0")
    fixture = {
        "generator": "scripts/reference_tokens.py",
        "llama_cpp_python": llama_cpp.__version__,
        "texts": len(texts),
        "corpus_sha256": corpus_hash.hexdigest(),
        "extra": EXTRA,
        "sample_every": SAMPLE_EVERY,
        "models": {},
    }
    for name, file in FILES.items():
        llm = Llama(model_path=str(MODELS / file), vocab_only=True, verbose=False)
        whole = hashlib.sha256()
        per_text = []
        sample = {}
        tokens = 0
        for i, t in enumerate(texts):
            ids = llm.tokenize(t.encode("utf-8"), add_bos=False, special=False)
            tokens += len(ids)
            b = ids_bytes(ids)
            whole.update(b + struct.pack("<I", 0xFFFFFFFF))
            per_text.append(hashlib.sha256(b).hexdigest()[:4])
            if i < len(EXTRA) or i % SAMPLE_EVERY == 0:
                sample[str(i)] = ids
        fixture["models"][name] = {
            "model": file,
            "tokens": tokens,
            "ids_sha256": whole.hexdigest(),
            "per_text": "".join(per_text),
            "sample": sample,
        }
        print(f"{name}: {len(texts)} texts, {tokens} tokens", file=sys.stderr)
    # Compact: one model per block, the sample one text per line.
    OUT.parent.mkdir(parents=True, exist_ok=True)
    lines = ["{"]
    for k, v in fixture.items():
        if k == "models":
            continue
        lines.append(f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)},")
    lines.append('  "models": {')
    for j, (name, m) in enumerate(fixture["models"].items()):
        lines.append(f"    {json.dumps(name)}: {{")
        for k in ("model", "tokens", "ids_sha256", "per_text"):
            lines.append(f"      {json.dumps(k)}: {json.dumps(m[k])},")
        lines.append('      "sample": {')
        items = list(m["sample"].items())
        for i, (idx, ids) in enumerate(items):
            comma = "," if i + 1 < len(items) else ""
            lines.append(f"        {json.dumps(idx)}: {json.dumps(ids)}{comma}")
        lines.append("      }")
        lines.append("    }" + ("," if j + 1 < len(fixture["models"]) else ""))
    lines.append("  }")
    lines.append("}")
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert json.loads(OUT.read_text(encoding="utf-8")) == fixture
    print(f"wrote {OUT.relative_to(ROOT)} ({OUT.stat().st_size} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
