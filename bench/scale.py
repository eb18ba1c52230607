"""7. How time to first token and tokens/s grow with the prompt's length and with requests queued
at once; then the llama.cpp and HTTP backends against their raw clients (bench/backends.py)."""

from __future__ import annotations

import threading
import time
from typing import Any

from bench import backends
from bench.harness import Bench, explain_messages
from bench.results_model import Row, Section
from bench.stats import Spread
from bench.timing import timed
from starchat_lsp.engine.base import ChatMessage, TextStream


def sized_messages(engine: Any, tokens: int) -> list[ChatMessage]:
    """The explain question padded to about `tokens` prompt tokens (within 5%, or its shortest)."""

    def size(words: int) -> int:
        return int(engine.count_tokens(engine.render_chat(explain_messages(words))))

    words, base = 0, size(0)
    for _ in range(8):  # the padding's tokens per word grow with the numbers in it: converge
        current = size(words)
        if tokens <= base or abs(current - tokens) <= tokens * 0.05:
            break
        per_word = (current - base) / words if words else 3.0
        words = max(1, words + int((tokens - current) / per_word))
    return explain_messages(words)


def lengths(bench: Bench, section: Section, engine: Any, label: str = "") -> None:
    """First token and tokens/s as the prompt grows (`engine` must not reuse prefixes)."""
    points = []
    for length in bench.options.prompt_lengths:
        if length + bench.options.new_tokens > engine.context_window:
            section.notes.append(f"{label}{length} tokens: past the model's window, skipped")
            continue
        messages = sized_messages(engine, length)
        tokens_in = engine.count_tokens(engine.render_chat(messages))
        ttfts, speeds = [], []
        for _ in range(max(1, bench.options.runs // 2)):
            started = time.perf_counter()
            ttft, speed, _ = timed(engine.chat(messages, bench.settings()), started)
            ttfts.append(ttft)
            speeds.append(speed)
        ttft_s, speed_s = Spread.of(ttfts), Spread.of(speeds)
        section.add(
            Row(
                f"{label}{tokens_in}-token prompt: first token; tokens/s",
                f"{ttft_s.show()}; {speed_s.show('tok/s')}",
            )
        )
        points.append((tokens_in, ttft_s.median, speed_s.median))
        bench.log(f"scale: {label}{tokens_in}-token prompt")
    section.series[f"{label}prompt_length"] = points


def _read_all(streams: list[TextStream], started: float) -> tuple[list[float], list[int]]:
    """Read the streams at once, one thread each, as clients do: (first tokens, tokens out)."""
    ttfts: list[float] = []
    totals: list[int] = []
    lock = threading.Lock()

    def read(stream: TextStream) -> None:
        ttft, _, result = timed(stream, started)
        with lock:
            ttfts.append(ttft)
            totals.append(result.tokens_out)

    threads = [threading.Thread(target=read, args=(stream,)) for stream in streams]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return ttfts, totals


def _concurrency(bench: Bench, section: Section) -> None:
    engine = bench.engine(reuse_prefix=False)
    points = []
    for count in bench.options.concurrency:
        started = time.perf_counter()
        # different questions, so that no request reuses another's prefix
        streams = [
            engine.chat(
                [ChatMessage("user", f"Request {i}. " + explain_messages()[0].content)],
                bench.settings(),
            )
            for i in range(count)
        ]
        ttfts, totals = _read_all(streams, started)
        wall = time.perf_counter() - started
        throughput = sum(totals) / wall
        worst = max(ttfts)
        section.add(
            Row(
                f"{count} requests at once: first token median / last; all tokens/s",
                f"{Spread.of(ttfts).median:.2f} s / {worst:.2f} s; {throughput:.1f} tok/s",
            )
        )
        points.append((count, Spread.of(ttfts).median, worst, throughput))
        bench.log(f"scale: {count} requests at once")
    section.series["concurrency"] = points
    section.notes.append(
        "one model worker per engine: requests at once queue, so the later ones' first token "
        "waits for the earlier answers (the server never runs two generations on one model)"
    )


def run(bench: Bench) -> Section:
    section = Section("scale", "7. Scale: prompt length, requests at once, llama.cpp")
    lengths(bench, section, bench.engine(reuse_prefix=False))
    _concurrency(bench, section)
    backends.llamacpp(bench, section)
    backends.http(bench, section)
    section.notes.append(f"{bench.options.new_tokens} new tokens per request (at most)")
    return section
