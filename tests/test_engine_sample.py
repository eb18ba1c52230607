"""`Engine.sample`: several answers to one chat prompt at once (issue 15, item 5).

llama.cpp decodes them together, one batch per token, on the real pulled smollm2-135m; the
transformers engine with one `generate(num_return_sequences=n)` on a tiny model; the worker
process and the shared host carry the call over their pipe. The HTTP backend's is in
test_engine_http.py.

A batch computes each sequence's logits with other kernels than one sequence alone, so a batched
answer may part from chat's where two tokens were nearly tied: the first token (drawn from the
very logits chat draws from, with the same sampler and seed) is asserted equal, longer texts only
to begin alike.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from starchat_lsp.engine import CancelFlag, ChatMessage, GenerationSettings, StopReason
from starchat_lsp.engine.factory import EngineSettings, create_engine, open_engine
from starchat_lsp.engine.llamacpp_batch import MAX_SEQUENCES, rounds
from starchat_lsp.engine.llamacpp_engine import LlamaCppEngine
from test_engine_interactive import CURSOR, INTERACTIVE
from test_engine_llamacpp import HELLO, MODEL, small_llama

pytestmark = pytest.mark.default_model

SAMPLED = GenerationSettings(max_new_tokens=24, temperature=1.0, top_p=0.95, seed=7)
GREEDY = GenerationSettings(max_new_tokens=40)
# An answer that goes on for as long as it may: long runs to cancel or time out.
ENDLESS = [ChatMessage("user", "Count from 1 to 1000, one number per line, nothing else.")]
ENDLESS_SETTINGS = GenerationSettings(max_new_tokens=2000, temperature=1.0, seed=1)


@pytest.fixture(scope="module")
def llama() -> Iterator[LlamaCppEngine]:
    yield from small_llama()


def common_prefix(a: str, b: str) -> int:
    length = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        length += 1
    return length


# ---- llama.cpp: one batch per token -----------------------------------------------------------


def test_each_answer_draws_its_first_token_as_chat_with_its_seed(llama: LlamaCppEngine) -> None:
    one = dataclasses.replace(SAMPLED, max_new_tokens=1, temperature=1.5)
    batch = llama.sample(HELLO, one, 6)
    alone = [llama.chat(HELLO, dataclasses.replace(one, seed=7 + i)).finish() for i in range(6)]
    assert [r.text for r in batch] == [r.text for r in alone]
    assert all(r.tokens_out == 1 and r.stop_reason is StopReason.LENGTH for r in batch)


def test_greedy_answers_in_a_batch_begin_as_the_greedy_chat(llama: LlamaCppEngine) -> None:
    chat = llama.chat(HELLO, GREEDY).finish()
    batch = llama.sample(HELLO, GREEDY, 2)
    assert len(batch) == 2
    for result in batch:
        assert common_prefix(result.text, chat.text) >= 30, (result.text, chat.text)
        assert result.tokens_in == chat.tokens_in
        assert result.stop_reason in (StopReason.LENGTH, StopReason.EOS)


def test_a_seed_repeats_the_set_and_different_seeds_differ(llama: LlamaCppEngine) -> None:
    first = [r.text for r in llama.sample(HELLO, SAMPLED, 4)]
    again = [r.text for r in llama.sample(HELLO, SAMPLED, 4)]
    assert first == again
    assert len(set(first)) > 1, first
    assert all(0 < r.tokens_out <= 24 for r in llama.sample(HELLO, SAMPLED, 2))


def test_each_answer_ends_on_its_own(llama: LlamaCppEngine) -> None:
    settings = dataclasses.replace(SAMPLED, max_new_tokens=60, stop=("\n",))
    results = llama.sample(HELLO, settings, 5)
    for result in results:
        assert "\n" not in result.text
        if result.stop_reason is StopReason.STOP_STRING:
            assert result.tokens_out < 60
        else:
            assert result.stop_reason in (StopReason.EOS, StopReason.LENGTH), result
    # The first line of a code answer ("```python") is short; the batch went on for the rest.
    short = llama.sample(HELLO, dataclasses.replace(SAMPLED, max_new_tokens=3), 3)
    assert [r.tokens_out for r in short] == [3, 3, 3]
    assert all(r.stop_reason is StopReason.LENGTH for r in short)


def test_cancel_stops_every_answer_promptly(llama: LlamaCppEngine) -> None:
    flag = CancelFlag()
    box: list[object] = []
    worker = threading.Thread(
        target=lambda: box.append(llama.sample(ENDLESS, ENDLESS_SETTINGS, 3, flag))
    )
    worker.start()
    time.sleep(1.0)
    cancelled_at = time.monotonic()
    flag.cancel()
    worker.join(timeout=10)
    assert not worker.is_alive()
    assert time.monotonic() - cancelled_at < 2.0
    results = box[0]
    assert isinstance(results, list) and len(results) == 3
    for result in results:
        assert result.stop_reason in (StopReason.CANCELLED, StopReason.EOS)
        assert result.tokens_out < 2000
    assert any(r.stop_reason is StopReason.CANCELLED for r in results)


def test_the_time_limit_is_for_the_whole_call(llama: LlamaCppEngine) -> None:
    settings = dataclasses.replace(ENDLESS_SETTINGS, time_limit_s=0.5)
    started = time.monotonic()
    results = llama.sample(ENDLESS, settings, 3)
    assert time.monotonic() - started < 5.0
    assert any(r.stop_reason is StopReason.TIME for r in results)
    assert all(r.stop_reason in (StopReason.TIME, StopReason.EOS) for r in results)


def test_the_prompt_is_reused_and_the_cache_left_clean(llama: LlamaCppEngine) -> None:
    before = llama.chat(HELLO, GREEDY).finish()
    batch = llama.sample(HELLO, SAMPLED, 3)
    assert batch[0].reused_tokens > 0  # the chat's prompt was not read again
    assert all(r.reused_tokens == batch[0].reused_tokens for r in batch)
    after = llama.chat(HELLO, GREEDY).finish()
    assert after.reused_tokens > 0
    assert after.text == before.text


def test_more_answers_than_sequences_go_in_groups(llama: LlamaCppEngine) -> None:
    n = MAX_SEQUENCES + 2
    one = dataclasses.replace(SAMPLED, max_new_tokens=1, temperature=1.5)
    batch = llama.sample(HELLO, one, n)
    alone = [llama.chat(HELLO, dataclasses.replace(one, seed=7 + i)).finish() for i in range(n)]
    assert [r.text for r in batch] == [r.text for r in alone]
    assert llama.chat(HELLO, GREEDY).finish().reused_tokens > 0


def test_rounds_fit_the_cache_leave_room_and_never_fall_below_one() -> None:
    # (tokens a branch reads past sequence 0's prompt, its answers' limits)
    assert rounds(4096, 300, [(1, [48] * 4)]) == [[0, 1, 2, 3]]
    many = rounds(4096, 300, [(1, [48] * 50)])
    assert [len(r) for r in many] == [MAX_SEQUENCES - 1] * 7 + [1]
    assert rounds(4096, 1000, [(1, [1000] * 4)]) == [[0, 1], [2, 3]]
    assert rounds(2048, 1500, [(1, [500] * 4)]) == [[0], [1], [2], [3]]
    # a draft, three samples of another prompt (its 300 own tokens read once), four tests
    assert rounds(4096, 400, [(1, [600]), (300, [200] * 3), (100, [256])]) == [[0, 1, 2, 3, 4]]
    assert rounds(4096, 400, [(1, [1200]), (300, [400] * 3), (100, [256])]) == [[0, 1, 2], [3, 4]]


def test_a_completion_runs_between_two_steps_and_the_answers_go_on(llama: LlamaCppEngine) -> None:
    settings = GenerationSettings(max_new_tokens=80)
    completion_alone = llama.complete(CURSOR, INTERACTIVE).finish().text
    llama.sample(HELLO, settings, 2)  # the next run starts from the same cache as the paused one
    alone = [r.text for r in llama.sample(HELLO, settings, 2)]
    paused = llama.pauses
    box: list[object] = []
    worker = threading.Thread(target=lambda: box.append(llama.sample(HELLO, settings, 2)))
    worker.start()
    deadline = time.monotonic() + 10
    while llama._running is None and time.monotonic() < deadline:
        time.sleep(0.001)
    time.sleep(0.05)  # into the answers' steps
    completion = llama.complete(CURSOR, INTERACTIVE).finish().text
    worker.join(timeout=30)
    assert completion == completion_alone
    assert llama.pauses > paused, "the completion should have run between two steps"
    results = box[0]
    assert isinstance(results, list) and len(results) == 2
    # Their KV cells stayed where they were; the tokens after the pause land in other cells, so
    # the attention sums in another order: the texts run alike well past the pause, not always
    # to the end. A lost cache would have them part right there.
    for result, reference in zip(results, alone, strict=True):
        assert common_prefix(result.text, reference) >= 60, (result.text, reference)


# ---- transformers: one generate() with num_return_sequences --------------------------------------


@pytest.fixture(scope="module")
def tiny(tiny_chatml_model: Path) -> Iterator[object]:
    engine = create_engine(
        EngineSettings(model=str(tiny_chatml_model), backend="transformers", dtype="float32")
    )
    engine.load()
    yield engine
    engine.close()


def test_transformers_samples_rows_that_end_on_their_own(tiny: object) -> None:
    from starchat_lsp.engine.transformers_engine import TransformersEngine

    assert isinstance(tiny, TransformersEngine)
    settings = GenerationSettings(max_new_tokens=12, temperature=1.0, seed=3)
    first = tiny.sample(HELLO, settings, 3)
    assert [r.text for r in first] == [r.text for r in tiny.sample(HELLO, settings, 3)]
    assert len({r.text for r in first}) > 1
    for result in first:
        assert 0 < result.tokens_out <= 12
        assert result.stop_reason in (StopReason.LENGTH, StopReason.EOS)
        assert result.tokens_in == first[0].tokens_in > 0
    greedy = GenerationSettings(max_new_tokens=8)
    chat = tiny.chat(HELLO, greedy).finish()
    assert [r.text for r in tiny.sample(HELLO, greedy, 2)] == [chat.text, chat.text]
    flag = CancelFlag()
    flag.cancel()
    assert {r.stop_reason for r in tiny.sample(HELLO, settings, 2, flag)} == {StopReason.CANCELLED}


def test_transformers_rows_stop_at_their_stop_string(tiny: object) -> None:
    from starchat_lsp.engine.transformers_engine import TransformersEngine

    assert isinstance(tiny, TransformersEngine)
    settings = GenerationSettings(max_new_tokens=16, temperature=1.0, seed=5)
    free = tiny.sample(HELLO, settings, 3)
    # A stop string from inside the first row's answer: that row ends before it.
    text = free[0].text
    stop = text[len(text) // 2 : len(text) // 2 + 2]
    if not stop.strip():
        pytest.skip("the tiny model's answer has no usable stop string")
    stopped = tiny.sample(HELLO, dataclasses.replace(settings, stop=(stop,)), 3)
    assert stopped[0].stop_reason is StopReason.STOP_STRING
    assert stop not in stopped[0].text
    assert text.startswith(stopped[0].text)


# ---- over the worker's pipe and the shared host's socket -----------------------------------------


@pytest.mark.parametrize("shared", [False, True], ids=["worker", "shared-host"])
def test_sample_travels_to_the_model_process_with_its_cancel(shared: bool) -> None:
    engine = open_engine(EngineSettings(model=MODEL, backend="llamacpp"), shared=shared)
    try:
        results = engine.sample(HELLO, SAMPLED, 3)
        assert len(results) == 3 and len({r.text for r in results}) > 1
        assert all(0 < r.tokens_out <= 24 for r in results)
        flag = CancelFlag()
        box: list[object] = []
        worker = threading.Thread(
            target=lambda: box.append(engine.sample(ENDLESS, ENDLESS_SETTINGS, 2, flag))
        )
        worker.start()
        time.sleep(1.5)
        flag.cancel()
        worker.join(timeout=15)
        assert not worker.is_alive()
        cancelled = box[0]
        assert isinstance(cancelled, list)
        assert any(r.stop_reason is StopReason.CANCELLED for r in cancelled)
    finally:
        engine.close()
