"""The llama.cpp and HTTP backends against the raw clients a user would otherwise call: the same
prompt and server, greedy, the same number of tokens (part of section 7)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from bench.harness import Bench, explain_messages
from bench.results_model import Row, Section
from bench.stats import Spread, ratio
from bench.timing import first_and_end
from starchat_lsp.engine.base import TextStream


def _compare(
    bench: Bench,
    section: Section,
    label: str,
    ours: Callable[[], TextStream],
    raw: Callable[[], Iterator[Any]],
    before_each: Callable[[], None] = lambda: None,
) -> None:
    """Interleaved runs of both; rows for first token and for the whole answer."""
    firsts: dict[str, list[float]] = {"ours": [], "raw": []}
    wholes: dict[str, list[float]] = {"ours": [], "raw": []}
    for attempt in range(bench.options.runs + 1):
        for who, chunks in (("ours", lambda: iter(ours())), ("raw", raw)):
            before_each()
            started = time.perf_counter()
            first, whole, _ = first_and_end(chunks(), started)
            if attempt:  # the first round warms both up
                firsts[who].append(first)
                wholes[who].append(whole)
    for measure, values in (("first token", firsts), ("whole answer", wholes)):
        o, r = Spread.of(values["ours"]), Spread.of(values["raw"])
        q = ratio(o.median, r.median)
        section.add(Row(f"{label}: {measure}", o.show(), r.show(), q, "within 5%", q <= 1.05))
    bench.log(f"backends: {label}")


def llamacpp(bench: Bench, section: Section) -> None:
    """The llama.cpp backend against `Llama.create_completion` on the same Llama object."""
    gguf = bench.resolved.gguf_path
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        section.notes.append("llama.cpp rows skipped: llama-cpp-python is not installed")
        return
    if gguf is None:
        section.notes.append("llama.cpp rows skipped: the model has no GGUF file")
        return
    from bench.scale import lengths
    from starchat_lsp.engine.llamacpp_engine import LlamaCppEngine

    engine = LlamaCppEngine(str(gguf), name=bench.resolved.name)
    engine.load()
    llama = engine.llama
    messages = explain_messages()
    prompt = engine.render_chat(messages)
    settings = bench.settings()
    llama.reset()
    tokens = engine.chat(messages, settings).finish().tokens_out

    def raw() -> Iterator[Any]:
        return iter(
            llama.create_completion(prompt, max_tokens=tokens, temperature=0.0, stream=True)
        )

    # reset: no prefix left from the last run, for either
    _compare(
        bench,
        section,
        "llama.cpp backend vs raw llama-cpp-python",
        lambda: engine.chat(messages, settings),
        raw,
        before_each=llama.reset,
    )

    class _NoReuse:  # the engine keeps the shared prefix: reset before each prompt
        def __getattr__(self, name: str) -> Any:
            return getattr(engine, name)

        def chat(self, *args: Any, **kwargs: Any) -> TextStream:
            llama.reset()
            return engine.chat(*args, **kwargs)

    lengths(bench, section, _NoReuse(), "llama.cpp, ")
    engine.close()


def http(bench: Bench, section: Section) -> None:
    """The HTTP backend against a plain streaming httpx request, both to one llama_cpp.server."""
    gguf = bench.resolved.gguf_path
    if gguf is None:
        section.notes.append("HTTP rows skipped: the model has no GGUF file for llama_cpp.server")
        return
    import httpx
    from tests.llama_server import CONTEXT, llama_cpp_server

    from starchat_lsp.engine.factory import HttpEngineSettings
    from starchat_lsp.engine.http_engine import HttpEngine

    name = bench.resolved.name
    messages = explain_messages()
    wire = [{"role": m.role, "content": m.content} for m in messages]
    threads = len(os.sched_getaffinity(0))
    with llama_cpp_server(bench.options.out, model=bench.options.model, threads=threads) as url:
        engine = HttpEngine(
            HttpEngineSettings(endpoint=url, model=name, context_window=CONTEXT), name=name
        )
        settings = bench.settings()
        raw_client = httpx.Client(timeout=600)  # one connection kept open, as our engine does

        def raw() -> Iterator[Any]:
            body = {
                "model": name,
                "messages": wire,
                "max_tokens": settings.max_new_tokens,
                "temperature": 0.0,
                "stream": True,
            }
            with raw_client.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
                for line in response.iter_lines():
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    delta = json.loads(line[6:])["choices"][0].get("delta", {})
                    if delta.get("content"):
                        yield delta["content"]

        _compare(
            bench,
            section,
            "HTTP backend vs a raw streaming request (llama_cpp.server)",
            lambda: engine.chat(messages, settings),
            raw,
        )
        engine.close()
        raw_client.close()
    section.notes.append(
        f"HTTP: python -m llama_cpp.server on the same GGUF, {threads} threads; both clients "
        "send the same messages; the server's own prompt cache is in play for both alike"
    )
