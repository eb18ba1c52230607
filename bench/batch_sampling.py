"""Sampled answers decoded together (Engine.sample) against one answer and against n in turn.

On a CPU one decoding step is bound by reading the weights: n answers in one llama.cpp batch
should cost little more than one. One short run, on its own (not a section of `python -m bench`):

    python -m bench.batch_sampling --model qwen2.5-coder-1.5b --threads 2

The prompt (about 300 tokens) is read once before the timings, so each timed call reuses it and
what is compared is the decoding. Each figure is the median of `--runs` calls.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import replace

from bench.harness import EXAMPLE
from starchat_lsp.engine.base import ChatMessage, GenerationResult, GenerationSettings
from starchat_lsp.engine.llamacpp_engine import LlamaCppEngine
from starchat_lsp.models.store import ModelStore


def prompt(engine: LlamaCppEngine, tokens: int) -> list[ChatMessage]:
    """A request for a long explanation of code, about `tokens` tokens once rendered."""
    code = EXAMPLE
    while True:
        messages = [
            ChatMessage("system", "You are a careful reviewer of Python code."),
            ChatMessage("user", f"```python\n{code}```\nExplain it line by line, in 300 words."),
        ]
        if engine.count_tokens(engine.render_chat(messages)) >= tokens:
            return messages
        code += EXAMPLE


def timed(work: Callable[[], list[GenerationResult]]) -> tuple[float, int]:
    started = time.monotonic()
    results = work()
    return time.monotonic() - started, sum(r.tokens_out for r in results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.batch_sampling")
    parser.add_argument("--model", default="qwen2.5-coder-1.5b")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    gguf = ModelStore().resolve(args.model).gguf_path
    if gguf is None:
        parser.error(f"{args.model} has no GGUF: run `starchat-lsp models pull {args.model}`")
    engine = LlamaCppEngine(str(gguf), name=args.model, threads=args.threads)
    engine.load()
    messages = prompt(engine, 300)
    settings = GenerationSettings(max_new_tokens=args.tokens, temperature=0.8, top_p=0.95, seed=1)
    warm = engine.chat(messages, replace(settings, max_new_tokens=1)).finish()

    def one() -> list[GenerationResult]:
        return [engine.chat(messages, settings).finish()]

    def batch() -> list[GenerationResult]:
        return engine.sample(messages, settings, args.n)

    def in_turn() -> list[GenerationResult]:
        return [
            engine.chat(messages, replace(settings, seed=1 + i)).finish() for i in range(args.n)
        ]

    rows: dict[str, list[tuple[float, int]]] = {"one": [], "batch": [], "in_turn": []}
    for _ in range(args.runs):
        for name, work in (("one", one), ("batch", batch), ("in_turn", in_turn)):
            rows[name].append(timed(work))
            print(name, rows[name][-1], flush=True)  # a run cut short still says something
    engine.close()
    median = {name: statistics.median(s for s, _ in runs) for name, runs in rows.items()}
    tokens = {name: [t for _, t in runs] for name, runs in rows.items()}
    report = {
        "model": args.model,
        "threads": args.threads,
        "prompt_tokens": warm.tokens_in,
        "n": args.n,
        "max_new_tokens": args.tokens,
        "seconds": {name: round(value, 2) for name, value in median.items()},
        "tokens_out": tokens,
        "batch_vs_one": round(median["batch"] / median["one"], 2),
        "in_turn_vs_one": round(median["in_turn"] / median["one"], 2),
        "in_turn_vs_batch": round(median["in_turn"] / median["batch"], 2),
        "load_average": os.getloadavg()[0],
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
