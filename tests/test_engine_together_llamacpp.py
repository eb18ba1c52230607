"""`Engine.together` on llama.cpp: several prompts' answers in one batch per token (issue 15).

On the real pulled smollm2-135m. A checked fix asks for a streamed draft, candidate fixes of
another prompt and tests of a third at once: each prompt reads only what it does not share with
the first (in sequence 0), and each answer is drawn as chat would draw it. A batch computes
logits with other kernels than one sequence alone, so first tokens are asserted equal to chat's
(the same sampler and seed on nearly the same logits) and longer texts only to begin alike.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator

import pytest

from starchat_lsp.engine import (
    Ask,
    CancelFlag,
    ChatMessage,
    CompletionPrompt,
    GenerationResult,
    GenerationSettings,
    StopReason,
)
from starchat_lsp.engine.llamacpp_engine import LlamaCppEngine
from test_engine_llamacpp import HELLO, small_llama
from test_engine_sample import ENDLESS, ENDLESS_SETTINGS, GREEDY, SAMPLED, common_prefix

pytestmark = pytest.mark.default_model

# Two other prompts: one that shares the system prompt with FIRST, one that shares nothing.
SYSTEM = ChatMessage("system", "You are a careful Python reviewer.")
FIRST = [SYSTEM, ChatMessage("user", "What does `sorted(xs)[-1]` return? One sentence.")]
SECOND = [SYSTEM, ChatMessage("user", "Write a Python function that reverses a string.")]


@pytest.fixture(scope="module")
def llama() -> Iterator[LlamaCppEngine]:
    yield from small_llama()


def test_each_prompt_answers_as_its_own_chat(llama: LlamaCppEngine) -> None:
    greedy_one = dataclasses.replace(GREEDY, max_new_tokens=1)
    sampled_one = dataclasses.replace(SAMPLED, max_new_tokens=1, temperature=1.5)
    asks = [Ask(FIRST, greedy_one), Ask(SECOND, sampled_one, 3), Ask(HELLO, greedy_one)]
    together = llama.together(asks)
    assert [len(answers) for answers in together] == [1, 3, 1]
    assert together[0][0].text == llama.chat(FIRST, greedy_one).finish().text
    alone = [
        llama.chat(SECOND, dataclasses.replace(sampled_one, seed=7 + i)).finish().text
        for i in range(3)
    ]
    assert [r.text for r in together[1]] == alone
    assert together[2][0].text == llama.chat(HELLO, greedy_one).finish().text
    # The second prompt shares the system prompt with the first: those cells were not read again
    # (the third shares the chat template's first tokens at most).
    assert together[1][0].reused_tokens > together[2][0].reused_tokens
    assert [r.tokens_in for r in (together[0][0], together[1][0], together[2][0])] == [
        llama.count_tokens(llama.render_chat(messages)) for messages in (FIRST, SECOND, HELLO)
    ]


def test_the_first_answer_streams_and_greedy_answers_begin_as_chat(llama: LlamaCppEngine) -> None:
    chunks: list[str] = []
    asks = [Ask(HELLO, GREEDY), Ask(SECOND, GREEDY, 2)]
    together = llama.together(asks, on_text=chunks.append)
    assert len(chunks) > 1
    assert "".join(chunks) == together[0][0].text
    assert common_prefix(together[0][0].text, llama.chat(HELLO, GREEDY).finish().text) >= 30
    second = llama.chat(SECOND, GREEDY).finish().text
    for result in together[1]:
        assert common_prefix(result.text, second) >= 30, (result.text, second)
    # The cache is left holding the first prompt: the next chat on it reuses it.
    assert llama.chat(HELLO, GREEDY).finish().reused_tokens > 0


def test_each_ask_has_its_own_time_limit(llama: LlamaCppEngine) -> None:
    short = dataclasses.replace(ENDLESS_SETTINGS, max_new_tokens=2000, time_limit_s=0.5)
    longer = dataclasses.replace(GREEDY, max_new_tokens=40)
    started = time.monotonic()
    together = llama.together([Ask(HELLO, longer), Ask(ENDLESS, short, 2)])
    assert time.monotonic() - started < 15.0
    assert together[0][0].stop_reason in (StopReason.LENGTH, StopReason.EOS)
    assert together[0][0].text
    assert together[0][0].tokens_out == 40 or together[0][0].stop_reason is StopReason.EOS
    # A sampled count may end early on its own; the rest stop at their limit.
    assert all(r.stop_reason in (StopReason.TIME, StopReason.EOS) for r in together[1])
    assert any(r.stop_reason is StopReason.TIME for r in together[1])
    assert all(r.tokens_out < 2000 for r in together[1])


def test_cancel_stops_every_answer_promptly(llama: LlamaCppEngine) -> None:
    flag = CancelFlag()
    box: list[list[list[GenerationResult]]] = []
    asks = [Ask(ENDLESS, ENDLESS_SETTINGS), Ask(SECOND, ENDLESS_SETTINGS, 2)]
    worker = threading.Thread(target=lambda: box.append(llama.together(asks, flag)))
    worker.start()
    time.sleep(1.0)
    cancelled_at = time.monotonic()
    flag.cancel()
    worker.join(timeout=10)
    assert not worker.is_alive()
    assert time.monotonic() - cancelled_at < 2.0
    assert box[0][0][0].stop_reason is StopReason.CANCELLED
    assert all(r.stop_reason in (StopReason.CANCELLED, StopReason.EOS) for r in box[0][1])


def test_asks_with_no_answers_get_none(llama: LlamaCppEngine) -> None:
    two = dataclasses.replace(GREEDY, max_new_tokens=2)
    together = llama.together([Ask(HELLO, GREEDY, 0), Ask(SECOND, two)])
    assert together[0] == []
    assert len(together[1]) == 1 and together[1][0].tokens_out == 2


def test_answers_that_follow_the_first_end_with_it(llama: LlamaCppEngine) -> None:
    first = dataclasses.replace(GREEDY, max_new_tokens=12)
    endless = dataclasses.replace(GREEDY, max_new_tokens=400)
    together = llama.together(
        [Ask(HELLO, first), Ask(ENDLESS, endless, until_first_ends=True), Ask(ENDLESS, endless)]
    )
    draft, (beside,), (full,) = together[0][0], together[1], together[2]
    assert draft.tokens_out <= 12
    # It ended on the step the first answer ended on; the one without it ran on.
    assert beside.stop_reason is StopReason.TIME
    assert 0 < beside.tokens_out <= draft.tokens_out + 1
    assert full.tokens_out > 3 * draft.tokens_out or full.stop_reason is StopReason.EOS


def test_completions_between_two_steps_leave_the_answers_as_they_were(
    llama: LlamaCppEngine,
) -> None:
    cursor = CompletionPrompt(prefix='def area(width, height):\n    """The area."""\n    return')
    interactive = GenerationSettings(max_new_tokens=4, interactive=True)
    counting = dataclasses.replace(GREEDY, max_new_tokens=150)
    asks = [Ask(ENDLESS, counting), Ask(SECOND, counting, 2)]
    llama.together(asks)
    alone = llama.together(asks)  # from the cache state the run below starts with too
    llama.complete(cursor, interactive).finish()
    paused = llama.pauses
    box: list[list[list[GenerationResult]]] = []
    worker = threading.Thread(target=lambda: box.append(llama.together(asks)))
    worker.start()
    served = 0
    while worker.is_alive() and served < 8:
        llama.complete(cursor, interactive).finish()  # served between two steps of the batch
        served += 1
    worker.join(timeout=60)
    assert llama.pauses > paused
    # A completion's run drops the cache past its own prompt in its own sequence only (`Llama`
    # asks for every sequence; llama-cpp-python's context takes that as sequence 0): the
    # answers went on from their whole prompt and tokens. Their cells sit elsewhere in the cache
    # after the pauses, so the sums run in another order: texts begin alike, not always whole.
    for paused_answers, answers in zip(box[0], alone, strict=True):
        for result, other in zip(paused_answers, answers, strict=True):
            alike = min(200, len(result.text), len(other.text))
            assert common_prefix(result.text, other.text) >= alike, (result.text, other.text)
