"""What section 8 measures on one engine, in-process or in the worker, all from the caller's side:
a streamed answer against the clock, a cancel and the request after it, a follow-up turn.

Every figure is taken the same way on both engines, so that their difference is what the
worker process adds; the engine's own `total_s` (its run, from the model starting on the
request to its end) is subtracted where the question is the cost around the model.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace

from bench import cpu_share
from bench.harness import explain_messages
from starchat_lsp.engine.base import (
    ChatMessage,
    Engine,
    GenerationResult,
    GenerationSettings,
    StopReason,
    TextStream,
)

NEXT = [ChatMessage("user", "Name three sorting algorithms.")]
UNRELATED = [ChatMessage("user", "What is a binary heap? Answer briefly.")]
CHUNKS_BEFORE_CANCEL = 5


@dataclass(frozen=True)
class Reading:
    """One stream read to its end; times in seconds after the call that started it."""

    first_s: float | None  # the first chunk of text (None: no text came)
    end_s: float  # the stream's end: the result is known
    result: GenerationResult
    others: float | None = None  # the cores' share other processes took meanwhile (0-1)

    @property
    def tokens_per_s(self) -> float | None:
        """Decoding speed the caller sees: tokens after the first over the time after it."""
        tokens = self.result.tokens_out
        if self.first_s is None or tokens < 2 or self.end_s <= self.first_s:
            return None
        return (tokens - 1) / (self.end_s - self.first_s)

    @property
    def outside_s(self) -> float:
        """The caller's wall time less the engine's own run: prompt rendering, tokenizing, the
        hand-over to the model's thread (and for the worker: the pipes, JSON, the chunks'
        and the result's way back)."""
        return self.end_s - self.result.total_s


def read(stream: TextStream, started: float) -> Reading:
    """Read `stream` to its end; `started` is the `time.monotonic()` of the call."""
    first = None
    for _ in stream:
        if first is None:
            first = time.monotonic()
    end = time.monotonic()
    return Reading(None if first is None else first - started, end - started, stream.result)


def chat(engine: Engine, messages: list[ChatMessage], tokens: int) -> Reading:
    before = cpu_share.sample()
    started = time.monotonic()
    reading = read(engine.chat(messages, GenerationSettings(max_new_tokens=tokens)), started)
    return replace(reading, others=cpu_share.others_share(before, cpu_share.sample()))


def timed_messages(round_: int) -> list[ChatMessage]:
    """The explain question, opened with the round's number: no run finds the last one's prompt
    in the KV cache beyond the chat template's opening, in either engine."""
    question = explain_messages()[0]
    return [ChatMessage("user", f"Request {round_}. {question.content}")]


@dataclass(frozen=True)
class Cancel:
    """One cancel, timed from `cancel()` (seconds)."""

    stream_end_s: float  # the cancelled stream's end, read on another thread
    next_start_s: float  # the next request's start: its end less its own run time
    token_s: float | None  # one token's time in the cancelled answer (the engine's own figure)
    others: float | None = None  # the cores' share other processes took meanwhile (0-1)

    @property
    def free_s(self) -> float:
        """The model free: the cancelled stream ended and the next request started."""
        return max(self.stream_end_s, self.next_start_s)


def cancel_round(engine: Engine) -> Cancel | None:
    """Cancel a long answer after a few chunks, at once send a tiny request; None when the answer
    ended by itself first (nothing was cancelled)."""
    before = cpu_share.sample()
    stream = engine.chat(explain_messages(), GenerationSettings(max_new_tokens=100_000))
    chunks = iter(stream)
    for _ in range(CHUNKS_BEFORE_CANCEL):
        if next(chunks, None) is None:
            return None
    ended: list[float] = []
    failed: list[BaseException] = []

    def drain() -> None:
        try:
            stream.finish()
            ended.append(time.monotonic())
        except BaseException as error:  # re-raised on the caller's thread
            failed.append(error)

    drainer = threading.Thread(target=drain, name="bench-drain")
    drainer.start()  # waiting on the stream already: its end is seen when it comes
    cancelled_at = time.monotonic()
    stream.cancel()
    following = engine.chat(NEXT, GenerationSettings(max_new_tokens=2))
    following.finish()
    next_done = time.monotonic()
    drainer.join(600)
    if failed:
        raise failed[0]
    assert ended, "the cancelled stream did not end"
    result = stream.result
    if result.stop_reason is not StopReason.CANCELLED:
        return None
    speed = result.tokens_per_s
    return Cancel(
        stream_end_s=ended[0] - cancelled_at,
        next_start_s=next_done - following.result.total_s - cancelled_at,
        token_s=1 / speed if speed > 0 else None,
        others=cpu_share.others_share(before, cpu_share.sample()),
    )


@dataclass(frozen=True)
class FollowUp:
    """The follow-up turn's first token after an unrelated request (cold) and after its own
    conversation (warm: the shared prefix's KV cache is there to reuse)."""

    cold: Reading
    warm: Reading

    @staticmethod
    def first_s(reading: Reading) -> float:
        return reading.end_s if reading.first_s is None else reading.first_s


def follow_up(
    engine: Engine, history: list[ChatMessage], turn: list[ChatMessage], tokens: int
) -> FollowUp:
    chat(engine, UNRELATED, tokens)
    cold = chat(engine, turn, tokens)
    chat(engine, history, tokens)
    warm = chat(engine, turn, tokens)
    return FollowUp(cold, warm)


@dataclass
class Figures:
    """What one engine measured."""

    load_s: float = 0.0
    readings: list[Reading] = field(default_factory=list)
    cancels: list[Cancel] = field(default_factory=list)
    follow_ups: list[FollowUp] = field(default_factory=list)
