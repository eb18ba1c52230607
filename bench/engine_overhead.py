"""1. Our transformers engine against raw `model.generate`: same model, prompt, greedy settings
and number of new tokens. Time to first token, tokens/s and peak memory, interleaved runs."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from bench.harness import Bench, explain_messages
from bench.memory import PeakMemory
from bench.results_model import Row, Section
from bench.stats import Spread, ratio
from bench.timing import timed


@dataclass(frozen=True)
class Run:
    ttft_s: float
    tokens_per_s: float
    tokens: int
    peak_mb: float | None


class _FirstTokenClock:
    """A transformers streamer that only notes when the first new token came (the first `put`
    is the prompt)."""

    def __init__(self) -> None:
        self.puts = 0
        self.first: float | None = None

    def put(self, value: Any) -> None:
        self.puts += 1
        if self.puts == 2:
            self.first = time.perf_counter()

    def end(self) -> None:
        pass


def raw_generate(bench: Bench, prompt: str, tokens: int) -> Run:
    """What a user of transformers writes: tokenize, `generate`, exactly `tokens` new tokens."""
    import torch

    loaded = bench.engine().loaded
    clock = _FirstTokenClock()
    with PeakMemory() as peak:
        start = time.perf_counter()
        inputs = loaded.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        inputs = inputs.to(loaded.device)
        with torch.inference_mode():
            loaded.model.generate(
                **inputs,
                max_new_tokens=tokens,
                min_new_tokens=tokens,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                pad_token_id=loaded.tokenizer.pad_token_id or loaded.tokenizer.eos_token_id,
                streamer=clock,
            )
        end = time.perf_counter()
    assert clock.first is not None
    return Run(clock.first - start, (tokens - 1) / (end - clock.first), tokens, peak.added_mb)


def engine_generate(bench: Bench, max_new_tokens: int) -> Run:
    """The engine as the server calls it, timed from the call to the text the caller reads."""
    engine = bench.engine(reuse_prefix=False)
    with PeakMemory() as peak:
        start = time.perf_counter()
        first, speed, result = timed(
            engine.chat(explain_messages(), bench.settings(max_new_tokens)), start
        )
    return Run(first, speed, result.tokens_out, peak.added_mb)


def run(bench: Bench) -> Section:
    section = Section("engine", "1. Engine overhead: our transformers engine vs raw model.generate")
    engine = bench.engine()
    prompt = engine.render_chat(explain_messages())
    # Greedy: the engine's answer has a fixed length; raw generate is held to exactly as many.
    warm = engine_generate(bench, bench.options.new_tokens)
    tokens = warm.tokens
    raw_generate(bench, prompt, tokens)
    raws, ours = [], []
    for _ in range(bench.options.runs):
        raws.append(raw_generate(bench, prompt, tokens))
        ours.append(engine_generate(bench, bench.options.new_tokens))
    bench.log(f"engine overhead: {tokens} tokens, {len(raws)} runs each")
    assert all(run.tokens == tokens for run in ours), "greedy answers differ in length"
    prompt_tokens = engine.count_tokens(prompt)
    section.notes.append(
        f"{prompt_tokens}-token prompt, {tokens} new tokens, greedy; runs interleaved; "
        "times from the call to the first text the caller can read"
    )
    ttft_raw = Spread.of([r.ttft_s for r in raws])
    ttft_ours = Spread.of([r.ttft_s for r in ours])
    section.add(_row("time to first token", ttft_ours, ttft_raw, "s", higher_is_better=False))
    tps_raw = Spread.of([r.tokens_per_s for r in raws])
    tps_ours = Spread.of([r.tokens_per_s for r in ours])
    section.add(_row("tokens/s", tps_ours, tps_raw, "tok/s", higher_is_better=True))
    peaks_raw = [r.peak_mb for r in raws if r.peak_mb is not None]
    peaks_ours = [r.peak_mb for r in ours if r.peak_mb is not None]
    if peaks_raw and peaks_ours:
        mem_raw, mem_ours = Spread.of(peaks_raw), Spread.of(peaks_ours)
        section.add(
            Row(
                "peak memory added by a run",
                mem_ours.show("MB"),
                mem_raw.show("MB"),
                ratio(mem_ours.median, mem_raw.median) if mem_raw.median >= 1 else None,
                "within 5% (or 10 MB)",
                mem_ours.median <= max(mem_raw.median * 1.05, mem_raw.median + 10),
            )
        )
    section.series["ratios"] = {row.measure: row.ratio for row in section.rows if row.ratio}
    return section


def _row(measure: str, ours: Spread, raw: Spread, unit: str, *, higher_is_better: bool) -> Row:
    r = ratio(ours.median, raw.median)
    met = r >= 0.95 if higher_is_better else r <= 1.05
    return Row(measure, ours.show(unit), raw.show(unit), r, "within 5% of raw", met)
