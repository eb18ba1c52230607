"""`Engine.together`: the answers to several chat prompts in one call, ask 0's first streamed.

`together_in_turn` (for engines that cannot decode prompts together) on a scripted engine; the
transformers engine, which runs it, on a tiny model; the worker process and the shared host carry
the call over their channel. The HTTP backend's is in test_engine_http.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from starchat_lsp.engine import (
    Ask,
    CancelFlag,
    ChatMessage,
    Engine,
    GenerationSettings,
    StopReason,
    TextStream,
)
from starchat_lsp.engine.factory import EngineSettings, create_engine, open_engine
from starchat_lsp.engine.worker import protocol
from test_eval_support import ScriptedEngine

HELLO = [ChatMessage("user", "Write a Python function that adds two numbers. Only the code.")]
OTHER = [ChatMessage("user", "And one that multiplies them.")]
GREEDY = GenerationSettings(max_new_tokens=8)
SAMPLED = GenerationSettings(max_new_tokens=6, temperature=1.0, seed=3)
# The tiny model never ends on its own: this runs for seconds unless it is stopped.
LONG = GenerationSettings(max_new_tokens=2000)


def record_chats(
    engine: ScriptedEngine, delay_s: float = 0.0
) -> list[tuple[str, GenerationSettings]]:
    """Each chat's last message and settings, in call order; each chat takes `delay_s` first."""
    calls: list[tuple[str, GenerationSettings]] = []
    chat = engine.chat

    def recording_chat(
        messages: list[ChatMessage],
        settings: GenerationSettings,
        cancel: CancelFlag | None = None,
    ) -> TextStream:
        calls.append((messages[-1].content, settings))
        time.sleep(delay_s)
        return chat(messages, settings, cancel)

    engine.chat = recording_chat  # type: ignore[method-assign]
    return calls


def ask(
    content: str, n: int = 1, *, seed: int | None = None, time_limit_s: float | None = None
) -> Ask:
    settings = GenerationSettings(seed=seed, time_limit_s=time_limit_s)
    return Ask([ChatMessage("user", content)], settings, n)


# ---- together_in_turn ----------------------------------------------------------------------------


def test_in_turn_gives_n_answers_per_ask_in_order_with_their_seeds() -> None:
    engine = ScriptedEngine(["a0", "a1", "b0", "c0", "c1", "c2"])
    calls = record_chats(engine)
    streamed: list[str] = []
    asks = [ask("A", 2, seed=5), ask("B"), ask("none", 0, seed=1), ask("C", 3, seed=9)]
    answers = engine.together(asks, on_text=streamed.append)
    assert [[r.text for r in answer] for answer in answers] == [
        ["a0", "a1"],
        ["b0"],
        [],
        ["c0", "c1", "c2"],
    ]
    assert [(content, s.seed) for content, s in calls] == [
        ("A", 5),
        ("A", 6),
        ("B", None),
        ("C", 9),
        ("C", 10),
        ("C", 11),
    ]
    assert streamed == ["a0"]  # ask 0's first answer only, as it came
    assert all(r.stop_reason is StopReason.EOS for answer in answers for r in answer)


def test_in_turn_counts_each_time_limit_from_the_call_start() -> None:
    engine = ScriptedEngine(["first", "second"])
    calls = record_chats(engine, delay_s=0.3)
    answers = engine.together(
        [ask("A", time_limit_s=5.0), ask("B", 2, time_limit_s=0.1), ask("C")],
        on_text=lambda _text: None,
    )
    # B's 0.1 s were spent while A ran: it ends at once, never asked, with no text.
    assert [r.stop_reason for r in answers[1]] == [StopReason.TIME] * 2
    assert all(r.text == "" and r.tokens_out == 0 for r in answers[1])
    assert [r.text for r in answers[0] + answers[2]] == ["first", "second"]
    assert [content for content, _ in calls] == ["A", "C"]
    limit = calls[0][1].time_limit_s
    assert limit is not None and 4.0 < limit <= 5.0  # A's limit, less the time already spent
    assert calls[1][1].time_limit_s is None


def test_in_turn_cancel_ends_every_answer_not_started() -> None:
    engine = ScriptedEngine(["a0", "a1", "b0"])
    calls = record_chats(engine)
    flag = CancelFlag()

    def cancel_on_text(_text: str) -> None:
        flag.cancel()

    answers = engine.together([ask("A", 2, seed=1), ask("B")], flag, cancel_on_text)
    assert [r.text for r in answers[0]] == ["a0", ""]
    assert [r.stop_reason for r in answers[0][1:] + answers[1]] == [StopReason.CANCELLED] * 2
    assert len(calls) == 1

    streamed: list[str] = []
    answers = engine.together([ask("A", 2), ask("B")], flag, streamed.append)  # cancelled before
    assert [[r.stop_reason for r in answer] for answer in answers] == [
        [StopReason.CANCELLED] * 2,
        [StopReason.CANCELLED],
    ]
    assert streamed == [] and len(calls) == 1


# ---- transformers: the asks in turn --------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tiny_chatml_model: Path) -> Iterator[Engine]:
    engine = create_engine(
        EngineSettings(model=str(tiny_chatml_model), backend="transformers", dtype="float32")
    )
    engine.load()
    yield engine
    engine.close()


def test_transformers_streams_ask_0_and_samples_the_rest(tiny: Engine) -> None:
    streamed: list[str] = []
    answers = tiny.together([Ask(HELLO, GREEDY, 2), Ask(OTHER, SAMPLED, 3)], None, streamed.append)
    assert [len(answer) for answer in answers] == [2, 3]
    chat = tiny.chat(HELLO, GREEDY).finish()
    assert "".join(streamed) == answers[0][0].text == chat.text != ""
    assert answers[0][1].text == chat.text  # greedy: the same answer again
    # Ask 1 is one sample() batch with its seed: the same answers as that call alone.
    assert [r.text for r in answers[1]] == [r.text for r in tiny.sample(OTHER, SAMPLED, 3)]
    assert all(r.tokens_out == 6 and r.stop_reason is StopReason.LENGTH for r in answers[1])


# ---- over the worker's pipe and the shared host's socket -------------------------------------


@pytest.mark.parametrize("shared", [False, True], ids=["worker", "shared-host"])
def test_together_travels_to_the_model_process_streaming_with_its_cancel(
    tiny_chatml_model: Path, shared: bool
) -> None:
    settings = EngineSettings(model=str(tiny_chatml_model), backend="transformers", dtype="float32")
    engine = open_engine(settings, shared=shared)
    try:
        streamed: list[str] = []
        answers = engine.together(
            [Ask(HELLO, GREEDY, 1), Ask(OTHER, SAMPLED, 2)], None, streamed.append
        )
        assert [len(answer) for answer in answers] == [1, 2]
        assert len(streamed) > 1  # chunk by chunk, not the whole text at the end
        assert "".join(streamed) == answers[0][0].text == engine.chat(HELLO, GREEDY).finish().text
        assert [r.text for r in answers[1]] == [r.text for r in engine.sample(OTHER, SAMPLED, 2)]
        assert all(r.tokens_out == 6 for r in answers[1])

        flag = CancelFlag()
        cut: list[str] = []

        def cancel_after_three(text: str) -> None:
            cut.append(text)
            if len(cut) == 3:
                flag.cancel()  # told to the model process over the channel

        started = time.monotonic()
        answers = engine.together(
            [Ask(HELLO, LONG, 1), Ask(OTHER, LONG, 2)], flag, cancel_after_three
        )
        first = answers[0][0]
        assert first.stop_reason is StopReason.CANCELLED
        assert 3 <= first.tokens_out < 200 and "".join(cut) == first.text
        assert [r.stop_reason for r in answers[1]] == [StopReason.CANCELLED] * 2
        assert all(r.text == "" for r in answers[1])
        assert time.monotonic() - started < 30  # a hang guard only: the counts above are the test
    finally:
        engine.close()


def test_asks_cross_to_the_model_process_whole() -> None:
    asks = [Ask(HELLO, GREEDY), Ask(OTHER, SAMPLED, 2, until_first_ends=True)]
    wire = json.loads(json.dumps(protocol.asks_to_wire(asks)))
    assert protocol.asks_from_wire(wire) == asks
