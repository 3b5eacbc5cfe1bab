#!/usr/bin/env python3
"""Reference next-token log-probabilities of the two local models, computed by llama.cpp.

goldgate runs GGUF models with its own forward pass (src/provider/gguf/model.rs, on candle's
quantized kernels). This script computes what an independent implementation, llama.cpp (through
llama-cpp-python), gives for the same token ids, and writes small JSON fixtures that
`gguf_forward_pass_matches_llama_cpp_*` in tests/it/gguf.rs compare goldgate's logits with.

Five prompts per model (`prompts()` below): two plain texts (5 and ~190 tokens) and three with
the chat template (~20-100 tokens, and one of ~620-670 tokens, past Gemma 3's 512-position
sliding window). llama.cpp runs each in one batch with f32 keys and values (as goldgate keeps
them; its default f16 cache alone moves SmolLM2's top-20 log-probabilities by up to 0.68). For
each model and prompt it records:

- the token ids fed: the chat template applied exactly as src/provider/gguf/template.rs applies it
  (control tokens inserted by id, the text between them tokenized by llama.cpp with
  special=False), or the plain text after BOS when the model adds one (template "none"). The Rust
  test checks that goldgate's own tokenizer and template give the same ids, then feeds these ids,
  so the logit comparison isolates the forward pass;
- at seven positions (five spread over the sequence, and the last two): the next-token log-probabilities (log-softmax of the
  logits, in float64) of the top-20 tokens, the entropy of the whole distribution, and, before
  the last position, the log-probability of the token that actually follows.

Generated with llama-cpp-python 0.3.36 (llama.cpp built portable, AVX2, CPU), by:

    ~/.cache/goldgate/interop/venv/bin/python scripts/reference_logits.py

(models from `bash scripts/fetch-models.sh`, in ~/.cache/goldgate/models or $GOLDGATE_MODELS;
fixtures written to tests/fixtures/gguf/logits-{smollm2,gemma3}.json). The output is
deterministic for a given llama.cpp build (two runs gave identical files); a different build or
CPU may move the last digits, far less than the tests' tolerances.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import llama_cpp
from llama_cpp import Llama

ROOT = Path(__file__).resolve().parent.parent
MODELS = Path(os.environ.get("GOLDGATE_MODELS", Path.home() / ".cache/goldgate/models"))
OUT = ROOT / "tests/fixtures/gguf"
TOP_K = 20
GGML_TYPE_F32 = 0

# name, file, the ChatML default system message (SmolLM2's own template inserts it when a
# conversation has none; goldgate reads it from the file, template.rs: chatml_default_system).
MODELS_RUN = [
    {
        "name": "smollm2",
        "file": "SmolLM2-135M-Instruct.Q4_1.gguf",
        "sha256": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        "template": "chatml",
        "default_system": "You are a helpful AI assistant named SmolLM, trained by Hugging Face",
    },
    {
        "name": "gemma3",
        "file": "gemma-3-270m-q4_k_m.gguf",
        "sha256": "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        "template": "gemma",
        "default_system": None,
    },
]

# goldgate's default prompt (src/config.rs DEFAULT_PROMPT), rendered for one golden item.
def rag_prompt(context: str, question: str) -> str:
    return (
        "Answer the question using only the context below.\n\n"
        f"Context:\n{context}\n\nQuestion: {question}"
    )


def golden_items() -> list[dict]:
    path = ROOT / "goldens/support-faq/items.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def prompts() -> list[dict]:
    items = golden_items()
    first = items[0]
    # About 600 tokens in all: past Gemma 3's 512-position sliding window, so its local
    # layers' window is part of what is compared.
    long_context = "\n".join(i["context"] for i in items[:10] if i.get("context"))
    return [
        {"name": "plain-short", "template": "none", "system": None,
         "prompt": "The capital of France is"},
        {"name": "chat-short", "template": "chat", "system": None,
         "prompt": "What is the capital of France? Answer in one word."},
        {"name": "chat-rag", "template": "chat", "system": "Answer in one sentence.",
         "prompt": rag_prompt(first["context"], first["question"])},
        {"name": "plain-mid", "template": "none", "system": None,
         "prompt": "Refunds take 5–7 business days (€40+ orders ship free). "
                   + " ".join(i["context"] for i in items[1:4])},
        {"name": "chat-long", "template": "chat", "system": None,
         "prompt": rag_prompt(long_context, items[13]["question"])},
    ]


def single(llm: Llama, text: str) -> int:
    ids = llm.tokenize(text.encode(), add_bos=False, special=True)
    assert len(ids) == 1, (text, ids)
    return ids[0]


def render(llm: Llama, model: dict, p: dict) -> list[int]:
    """The prompt's ids as template.rs renders them (ChatTemplate::render)."""
    tok = lambda s: llm.tokenize(s.encode(), add_bos=False, special=False)  # noqa: E731
    add_bos = llm.metadata.get("tokenizer.ggml.add_bos_token") == "true"
    bos = llm.token_bos()
    system, prompt = p["system"], p["prompt"]
    if p["template"] == "none":
        text = f"{system}\n\n{prompt}" if system is not None else prompt
        return ([bos] if add_bos else []) + tok(text)
    if model["template"] == "chatml":
        start, end = single(llm, "<|im_start|>"), single(llm, "<|im_end|>")
        ids = [bos] if add_bos else []
        system = system if system is not None else model["default_system"]
        if system is not None:
            ids += [start] + tok(f"system\n{system}") + [end] + tok("\n")
        ids += [start] + tok(f"user\n{prompt}") + [end] + tok("\n")
        ids += [start] + tok("assistant\n")
        return ids
    # Gemma: always BOS; no system role, the system text goes before the prompt; both trimmed.
    start, end = single(llm, "<start_of_turn>"), single(llm, "<end_of_turn>")
    content = f"{system.strip()}\n\n{prompt.strip()}" if system is not None else prompt.strip()
    return [bos, start] + tok(f"user\n{content}") + [end] + tok("\n") + [start] + tok("model\n")


def positions(n: int) -> list[int]:
    """Five earlier positions spread over the sequence, and the last two."""
    return sorted({max(0, n * k // 6) for k in range(1, 6)} | {n - 2, n - 1})


def log_softmax(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float64)
    m = x.max()
    return x - (m + np.log(np.exp(x - m).sum()))


def run(model: dict) -> dict:
    path = MODELS / model["file"]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest == model["sha256"], f"{path}: SHA-256 {digest}, expected {model['sha256']}"
    cases = prompts()
    vocab = Llama(model_path=str(path), vocab_only=True, verbose=False)
    rendered = [render(vocab, model, p) for p in cases]
    del vocab
    n_ctx = max(len(ids) for ids in rendered) + 16
    llm = Llama(
        model_path=str(path),
        logits_all=True,
        n_ctx=n_ctx,
        n_batch=n_ctx,
        n_ubatch=n_ctx,
        n_threads=2,
        seed=0,
        # f32 keys and values, as goldgate keeps them: llama.cpp's default f16 cache alone moves
        # SmolLM2's top-20 log-probabilities by up to 0.68 (measured), a noise that would
        # otherwise hide in the tolerance.
        type_k=GGML_TYPE_F32,
        type_v=GGML_TYPE_F32,
        verbose=False,
    )
    out = []
    for p, ids in zip(cases, rendered):
        llm.reset()
        llm.eval(ids)
        scores = np.asarray(llm.scores[: len(ids)], dtype=np.float32)
        recorded = []
        for pos in positions(len(ids)):
            lp = log_softmax(scores[pos])
            top = np.argsort(-lp, kind="stable")[:TOP_K]
            entry = {
                "pos": pos,
                "top": [[int(t), round(float(lp[t]), 5)] for t in top],
                "entropy": round(float(-(np.exp(lp) * lp).sum()), 5),
            }
            if pos + 1 < len(ids):
                entry["next"] = [ids[pos + 1], round(float(lp[ids[pos + 1]]), 5)]
            recorded.append(entry)
        out.append({**p, "ids": ids, "positions": recorded})
        print(f"{model['name']} {p['name']}: {len(ids)} tokens, top-1 at the end "
              f"{recorded[-1]['top'][0]}", file=sys.stderr)
    return {
        "generator": "scripts/reference_logits.py",
        "llama_cpp_python": llama_cpp.__version__,
        "model": model["file"],
        "sha256": model["sha256"],
        "top_k": TOP_K,
        "prompts": out,
    }


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for model in MODELS_RUN:
        fixture = run(model)
        target = OUT / f"logits-{model['name']}.json"
        # One prompt per line block, one position per line: small, and diffs read well.
        lines = ["{"]
        head = {k: v for k, v in fixture.items() if k != "prompts"}
        for k, v in head.items():
            lines.append(f"  {json.dumps(k)}: {json.dumps(v)},")
        lines.append('  "prompts": [')
        for i, p in enumerate(fixture["prompts"]):
            lines.append("    {")
            for k in ("name", "template", "system", "prompt", "ids"):
                lines.append(f"      {json.dumps(k)}: {json.dumps(p[k], ensure_ascii=False)},")
            lines.append('      "positions": [')
            for j, e in enumerate(p["positions"]):
                comma = "," if j + 1 < len(p["positions"]) else ""
                lines.append(f"        {json.dumps(e)}{comma}")
            lines.append("      ]")
            lines.append("    }" + ("," if i + 1 < len(fixture["prompts"]) else ""))
        lines.append("  ]")
        lines.append("}")
        target.write_text("\n".join(lines) + "\n", encoding="utf-8")
        json.loads(target.read_text(encoding="utf-8"))
        print(f"wrote {target.relative_to(ROOT)} ({target.stat().st_size} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
