"""Section 8's table: each figure for a model process (the private worker, the shared host: the
"starchat-lsp" column) against the same engine in-process ("baseline"), with their ratio or
difference; the medians again in `series["worker"]` for results.json."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence

from bench.results_model import Row, Section
from bench.stats import Spread, ms, ratio
from bench.worker_probe import CHUNKS_BEFORE_CANCEL, Figures, FollowUp

TTFT_TARGET = 1.05  # ours / in-process
OVERHEAD_TARGET_S = 0.001  # per token
CANCEL_SLACK_S = 0.020  # over one token's time
REUSE_TARGET = 2.0  # the follow-up's first token at least this much faster than cold

METHOD = [
    "worker: `open_engine(settings, shared=False)`, the model in a worker process of the "
    "caller's own (pipes); shared host: `open_engine(settings)`, the default since the shared "
    "host came: the caller talks to the host over a Unix socket and the host to its model "
    "worker over pipes (two hops); here the host is the benchmark's own (a private socket "
    "folder) and is closed with it; in-process: `create_engine(settings)`, what the worker "
    "runs itself",
    "first token: from the chat() call to the first text the caller reads; tokens/s: the "
    "tokens after the first over the time after it, as the caller reads them; each timed "
    "prompt opens with its round's number, so no run reuses more than the chat template's "
    "opening from the run before (every engine gets the same prompts in the same order)",
    "streaming overhead: the caller's wall time from the call to the stream's end less the "
    "engine's own run time (`total_s`: the model's thread starting on the request to the end "
    "of the answer, measured where the model runs), divided by the tokens; it holds what "
    "happens outside the model's run - prompt rendering and tokenizing (in all), and for a "
    "model process the request's and the answer's way through the pipes and socket, JSON, and "
    "the last chunk's and the result's delay - spread over the answer's tokens. A chunk's "
    "delay while the model decodes the next token overlaps that decoding: only a channel too "
    "slow to keep up with the model, or the last chunk's delay, reaches the caller's wall "
    "time, and both would show here and in tokens/s",
    f"cancel: after {CHUNKS_BEFORE_CANCEL} chunks of a long answer, `cancel()`, then at once "
    "a 2-token request; the model is free once the cancelled stream has ended (read on "
    "another thread) and the next request has started (its end less its own run time, so "
    "the result's way back counts against the model process); one token's time is the "
    "cancelled answer's own decoding speed as its engine reports it",
    "quiet rounds: before and after each timed run and each cancel the benchmark reads how "
    "much CPU the machine spent outside its own processes (the engines' worker and host "
    "processes are its own; /proc); a run during which others took 10% of the cores or more "
    "is disturbed. Full runs repeat rounds (up to 3 times the count asked for) until every "
    "engine has its count of quiet ones; the rows count only quiet runs when every engine has "
    "at least 2, and the notes say which",
    "load: in-process first, then the worker (its process start, imports and load), then the "
    "shared host (the host's start, then its worker's); the model file is in the page cache "
    "for all by then",
    "reuse: the follow-up turn (2 more messages) after its conversation (warm) and after an "
    "unrelated question (cold), 4 new tokens; first token as for the first row",
]

Values = Sequence[float]


def _median(values: Values) -> float:
    return statistics.median(values)


def _text(values: Values, unit: str, other: Values) -> str:
    """The spread of `values` and its median's difference from the in-process median."""
    spread = Spread.of(values)
    difference = _median(values) - _median(other)
    if unit == "s":
        return f"{spread.show()}; {'+' if difference >= 0 else '-'}{ms(abs(difference))}"
    return f"{spread.show(unit)}; {difference:+.2f} {unit}"


def _compare(
    section: Section,
    measure: str,
    ours: Values,
    local: Values,
    *,
    unit: str = "s",
    target: str = "",
    met: Callable[[float, float], bool] | None = None,
    with_ratio: bool = True,
) -> float | None:
    """A row of the two engines' spreads (their ratio or difference); None when one is empty."""
    if not ours or not local:
        section.add(Row(measure, "not measured (no text came)", "", None, target, None))
        return None
    o, i = _median(ours), _median(local)
    section.add(
        Row(
            measure,
            _text(ours, unit, local),
            Spread.of(local).show(unit),
            ratio(o, i) if with_ratio else None,
            target,
            None if met is None else met(o, i),
        )
    )
    section.series.setdefault("worker", {})[measure] = {"ours": o, "in_process": i}
    return ratio(o, i)


def _firsts(figures: Figures) -> list[float]:
    return [r.first_s for r in figures.readings if r.first_s is not None]


def _speeds(figures: Figures) -> list[float]:
    return [s for r in figures.readings if (s := r.tokens_per_s) is not None]


def _per_token_us(figures: Figures) -> list[float]:  # in µs: a fraction of a millisecond
    readings = [r for r in figures.readings if r.result.tokens_out]
    return [r.outside_s / r.result.tokens_out * 1e6 for r in readings]


def _streams(section: Section, who: str, ours: Figures, local: Figures) -> None:
    first = _compare(
        section,
        f"{who}: first token",
        _firsts(ours),
        _firsts(local),
        target=f"within {TTFT_TARGET - 1:.0%}",
        met=lambda o, i: o <= i * TTFT_TARGET,
    )
    speed = _compare(
        section,
        f"{who}: decode tokens/s",
        _speeds(ours),
        _speeds(local),
        unit="tok/s",
        target="within 5%",
        met=lambda o, i: o >= i * 0.95,
    )
    ratios = section.series.setdefault("worker_ratios", {})
    for name, value in (("first token", first), ("tokens/s", speed)):
        if value is not None:
            ratios[f"{who}: {name}"] = value
    _compare(
        section,
        f"{who}: streaming overhead per token",
        _per_token_us(ours),
        _per_token_us(local),
        unit="µs",
        target=f"under {ms(OVERHEAD_TARGET_S)}",
        met=lambda o, _i: o <= OVERHEAD_TARGET_S * 1e6,
        with_ratio=False,
    )
    _compare(
        section,
        f"{who}: per request, wall time outside the engine's run",
        [r.outside_s for r in ours.readings],
        [r.outside_s for r in local.readings],
        with_ratio=False,
    )
    _compare(section, f"{who}: load, process start included", [ours.load_s], [local.load_s])


def _cancels(section: Section, who: str, ours: Figures, local: Figures) -> None:
    measure = f"{who}: cancel() to the model free"
    tokens = [c.token_s for c in ours.cancels if c.token_s is not None]
    if not tokens or not local.cancels:
        section.add(Row(measure, "not measured: no answer was long enough to cancel"))
        return
    token_s = _median(tokens)
    _compare(
        section,
        measure,
        [c.free_s for c in ours.cancels],
        [c.free_s for c in local.cancels],
        target=f"under one token ({ms(token_s)}) + 20 ms",
        met=lambda o, _i: o <= token_s + CANCEL_SLACK_S,
        with_ratio=False,
    )


def cancel_note(section: Section, who: str, figures: Figures) -> None:
    """When, after cancel(), the cancelled stream ended and the next request started."""
    if not figures.cancels:
        return
    ends = _median([c.stream_end_s for c in figures.cancels])
    starts = _median([c.next_start_s for c in figures.cancels])
    section.notes.append(
        f"{who}, {len(figures.cancels)} cancels: the cancelled stream ended {ms(ends)} after "
        f"cancel(), the next request started {ms(starts)} after it (medians)"
    )


def _reuse(section: Section, who: str, ours: Figures, local: Figures, size: int) -> None:
    def reused(figures: Figures) -> str:
        warm = [f.warm.result for f in figures.follow_ups]
        counts = sorted({r.reused_tokens for r in warm})
        return f"{'/'.join(map(str, counts))} of {warm[0].tokens_in} prompt tokens"

    def speedups(figures: Figures) -> list[float]:
        return [
            ratio(FollowUp.first_s(f.cold), FollowUp.first_s(f.warm)) for f in figures.follow_ups
        ]

    def warm_firsts(figures: Figures) -> list[float]:
        return [FollowUp.first_s(f.warm) for f in figures.follow_ups]

    section.add(
        Row(
            f"{who}: reuse, follow-up on a {size}-token conversation: tokens reused",
            reused(ours),
            reused(local),
            None,
            "more than 0, as in-process",
            min(f.warm.result.reused_tokens for f in ours.follow_ups) > 0,
        )
    )
    _compare(
        section,
        f"{who}: reuse, the follow-up's first token (prefix reused)",
        warm_firsts(ours),
        warm_firsts(local),
    )
    _compare(
        section,
        f"{who}: reuse, first token cold / reused",
        speedups(ours),
        speedups(local),
        unit="x",
        target=f"{REUSE_TARGET:.0f}x or more, as in-process",
        met=lambda o, _i: o >= REUSE_TARGET,
    )


def add(section: Section, who: str, ours: Figures, local: Figures, size: int) -> None:
    """The rows of one model process (`who`: "llama.cpp, worker") against in-process."""
    _streams(section, who, ours, local)
    _cancels(section, who, ours, local)
    cancel_note(section, who, ours)
    _reuse(section, who, ours, local, size)


def runs_note(section: Section, label: str, figures: list[Figures]) -> None:
    """What the timed runs were: prompt, answer length, runs, the prefix reused between them."""
    readings = [reading for one in figures for reading in one.readings]
    if not readings:
        return
    answers = sorted({r.result.tokens_out for r in readings})
    opening = sorted({r.result.reused_tokens for r in readings})
    section.notes.append(
        f"{label}: {readings[0].result.tokens_in}-token prompt, "
        f"{'/'.join(map(str, answers))} new tokens, {len(figures[0].readings)} timed runs each "
        "after a warm-up, greedy; prompt tokens reused from the run before (the chat "
        f"template's opening): {'/'.join(map(str, opening))}"
    )
