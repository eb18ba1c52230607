"""Interactive requests (issue 16, item 4): a completion at the cursor goes ahead of waiting
requests and runs between two tokens of a running one (on llama.cpp, also between two slices of
its prompt), which then goes on exactly as if it had run alone; each keeps the KV cache of its own
prefix.

On the real pulled smollm2-135m, on both backends. Orders of events are asserted, never
durations.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from starchat_lsp.engine import CancelFlag, CompletionPrompt, GenerationSettings, StopReason
from starchat_lsp.engine.base import Engine, TextStream
from starchat_lsp.engine.factory import EngineSettings, create_engine
from starchat_lsp.engine.llamacpp_engine import LlamaCppEngine
from starchat_lsp.engine.transformers_engine import TransformersEngine
from test_engine_llamacpp import COUNTING, LONG, MODEL, small_llama

pytestmark = pytest.mark.default_model

# Longer than the shortest prefix the transformers engine reuses (16 tokens).
CURSOR = CompletionPrompt(
    prefix='def area(width, height):\n    """The area of a rectangle, in square units."""\n'
    "    return"
)
BACKGROUND = GenerationSettings(max_new_tokens=40)
INTERACTIVE = GenerationSettings(max_new_tokens=6, interactive=True)


@pytest.fixture(scope="module")
def llama() -> Iterator[LlamaCppEngine]:
    yield from small_llama()


@pytest.fixture(scope="module", params=["llamacpp", "transformers"])
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    if request.param == "llamacpp":
        yield request.getfixturevalue("llama")
        return
    engine = create_engine(EngineSettings(model=MODEL, backend="transformers", dtype="float32"))
    engine.load()
    yield engine
    engine.close()


def alone(engine: Engine, prompt: CompletionPrompt, settings: GenerationSettings) -> str:
    return engine.complete(prompt, settings).finish().text


def from_the_same_cache(
    engine: Engine, prompt: CompletionPrompt, settings: GenerationSettings
) -> str:
    """`prompt`'s answer alone, run twice: the second run starts with the KV cache that the run
    after it starts with too (its own prompt and answer), so the two compute exactly alike."""
    alone(engine, prompt, settings)
    return alone(engine, prompt, settings)


def pauses(engine: Engine) -> int:
    assert isinstance(engine, LlamaCppEngine | TransformersEngine)
    return engine.pauses


def test_a_completion_runs_between_two_tokens_of_a_long_answer(engine: Engine) -> None:
    llama = engine
    completion_alone = alone(llama, CURSOR, INTERACTIVE)
    answer_alone = from_the_same_cache(llama, COUNTING, BACKGROUND)
    paused = pauses(llama)

    running = llama.complete(COUNTING, BACKGROUND)
    chunks = iter(running)
    text = next(chunks) + next(chunks)  # the answer is under way
    completion = llama.complete(CURSOR, INTERACTIVE).finish()
    tokens_then = running.tokens_out_now()
    text += "".join(chunks)
    answer = running.result

    assert completion.stop_reason is not StopReason.CANCELLED
    assert completion.text == completion_alone
    # Served while the answer ran, not after it: the answer had tokens still to make.
    assert tokens_then < answer.tokens_out == BACKGROUND.max_new_tokens
    assert pauses(llama) > paused
    # The answer went on from where it was: the same text as alone, token for token.
    assert text == answer.text == answer_alone


def test_a_completion_pauses_a_long_prompt_between_two_slices(llama: LlamaCppEngine) -> None:
    settings = GenerationSettings(max_new_tokens=4)
    completion_alone = alone(llama, CURSOR, INTERACTIVE)
    other = CompletionPrompt(prefix="Once upon a time")
    # Each run of the long prompt starts after the same other one: its whole prompt goes in.
    alone(llama, other, settings)
    answer_alone = alone(llama, LONG, settings)
    alone(llama, other, settings)

    running = llama.complete(LONG, settings)  # about 2,000 prompt tokens: slices of 64
    while llama._running is None:  # the worker has taken it
        threading.Event().wait(0.001)
    completion = llama.complete(CURSOR, INTERACTIVE)
    completion_result = completion.finish()
    assert running.tokens_out_now() == 0, "served before the answer's first token"
    assert completion_result.text == completion_alone
    assert running.finish().text == answer_alone


def test_each_side_keeps_the_kv_cache_of_its_own_prefix(engine: Engine) -> None:
    llama = engine
    chat = CompletionPrompt(prefix="Question: what does a hash map do?\nAnswer: " * 6)
    llama.complete(chat, GenerationSettings(max_new_tokens=2)).finish()
    llama.complete(CURSOR, INTERACTIVE).finish()
    follow_up = CompletionPrompt(prefix=chat.prefix + "It maps keys")
    chat_again = llama.complete(follow_up, GenerationSettings(max_new_tokens=2)).finish()
    assert chat_again.reused_tokens >= llama.count_tokens(chat.prefix) - 1
    typed = CompletionPrompt(prefix=CURSOR.prefix + " width")
    cursor_again = llama.complete(typed, INTERACTIVE).finish()
    assert cursor_again.reused_tokens >= llama.count_tokens(CURSOR.prefix) - 1


def test_waiting_completions_go_ahead_of_waiting_answers(engine: Engine) -> None:
    llama = engine
    first = llama.complete(COUNTING, BACKGROUND)
    next(iter(first))
    second = llama.complete(COUNTING, GenerationSettings(max_new_tokens=4))
    completion = llama.complete(CURSOR, INTERACTIVE)
    done: list[str] = []

    def read(name: str, stream: TextStream) -> None:
        stream.finish()
        done.append(name)

    readers = [
        threading.Thread(target=read, args=(name, stream))
        for name, stream in (("second", second), ("completion", completion))
    ]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(timeout=120)
    first.finish()
    assert done == ["completion", "second"]


def test_a_cancelled_completion_leaves_the_answer_untouched(engine: Engine) -> None:
    llama = engine
    answer_alone = from_the_same_cache(llama, COUNTING, BACKGROUND)
    running = llama.complete(COUNTING, BACKGROUND)
    next(iter(running))
    flag = CancelFlag()
    flag.cancel()
    cancelled = llama.complete(CURSOR, INTERACTIVE, cancel=flag).finish()
    assert cancelled.stop_reason is StopReason.CANCELLED and cancelled.tokens_out == 0
    assert running.finish().text == answer_alone


@pytest.mark.parametrize("backend", ["llamacpp", "transformers"])
def test_close_ends_a_waiting_completion(backend: str) -> None:
    engine = create_engine(EngineSettings(model=MODEL, backend=backend, dtype="float32"))
    engine.load()
    flag = CancelFlag()
    running = engine.complete(COUNTING, GenerationSettings(max_new_tokens=400), cancel=flag)
    next(iter(running))
    waiting = engine.complete(CURSOR, INTERACTIVE)
    # A completion that has not started when the engine closes ends, with no text, instead of
    # leaving its reader waiting.
    closer = threading.Thread(target=engine.close)
    closer.start()
    result = waiting.finish()
    flag.cancel()  # the transformers engine lets a running answer finish when it closes
    closer.join(timeout=120)
    assert result.stop_reason in (StopReason.CANCELLED, StopReason.EOS, StopReason.LENGTH)
    assert running.finish().stop_reason is StopReason.CANCELLED
