"""A completion model beside the model (completion.model, issue 16): completions at the cursor run
on it, with its own KV cache, between two tokens of a running answer, which goes on exactly as
alone, and the model's KV cache is never copied; a completion model that cannot serve (not
pulled, another vocabulary) is said so at load, and the model completes instead; the model
itself named is loaded once.

On the real pulled smollm2-135m (a copy of its file as the completion model: the same vocabulary)
and qwen2.5-coder-1.5b (another vocabulary), on llama.cpp.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from starchat_lsp.engine import CompletionPrompt, GenerationSettings, StopReason
from starchat_lsp.engine.factory import EngineSettings, create_engine
from starchat_lsp.engine.llamacpp_engine import CompletionModel, LlamaCppEngine
from starchat_lsp.models.store import ModelStore
from test_engine_interactive import BACKGROUND, CURSOR, INTERACTIVE
from test_engine_llamacpp import COUNTING, MODEL, _gguf, needs_llama

pytestmark = [pytest.mark.default_model, needs_llama]


@pytest.fixture(scope="module")
def paired(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaCppEngine]:
    copied = tmp_path_factory.mktemp("completer") / "completer.gguf"
    shutil.copyfile(_gguf(), copied)  # another file of the same vocabulary: loaded beside
    engine = LlamaCppEngine(
        str(_gguf()), name=MODEL, completion=CompletionModel("completer", copied)
    )
    engine.load()
    yield engine
    engine.close()


def model_tokens(engine: LlamaCppEngine) -> list[int]:
    """What the model's own KV cache holds (sequence 0)."""
    llama = engine.llama
    return [int(t) for t in llama.input_ids[: llama.n_tokens]]


def test_completions_run_on_the_completion_model_and_leave_the_models_cache(
    paired: LlamaCppEngine,
) -> None:
    assert paired.completion_model == "completer"
    paired.complete(COUNTING, GenerationSettings(max_new_tokens=4)).finish()
    held = model_tokens(paired)

    completion = paired.complete(CURSOR, INTERACTIVE).finish()
    assert completion.tokens_out > 0 and completion.stop_reason is not StopReason.ERROR
    assert model_tokens(paired) == held  # nothing was copied out or in: the model never ran
    typed = CompletionPrompt(prefix=CURSOR.prefix + " width")
    again = paired.complete(typed, INTERACTIVE).finish()
    assert again.reused_tokens >= paired.count_tokens(CURSOR.prefix) - 1  # its own cache


def test_a_completion_during_an_answer_leaves_the_answer_as_alone(
    paired: LlamaCppEngine,
) -> None:
    paired.complete(COUNTING, BACKGROUND).finish()
    answer_alone = paired.complete(COUNTING, BACKGROUND).finish().text  # from the same cache
    completion_alone = paired.complete(CURSOR, INTERACTIVE).finish().text
    paused = paired.pauses

    running = paired.complete(COUNTING, BACKGROUND)
    chunks = iter(running)
    text = next(chunks) + next(chunks)
    completion = paired.complete(CURSOR, INTERACTIVE).finish()
    tokens_then = running.tokens_out_now()
    text += "".join(chunks)

    assert completion.text == completion_alone  # the same weights: the same suggestion
    assert tokens_then < running.result.tokens_out == BACKGROUND.max_new_tokens
    assert paired.pauses > paused
    assert text == answer_alone


def loaded(settings: EngineSettings) -> tuple[LlamaCppEngine, list[str]]:
    engine = create_engine(settings)
    assert isinstance(engine, LlamaCppEngine)
    said: list[str] = []
    engine.load(said.append)
    return engine, said


def test_the_model_itself_as_completion_model_is_loaded_once() -> None:
    engine, said = loaded(EngineSettings(model=MODEL, backend="llamacpp", completion_model=MODEL))
    try:
        assert engine.completion_model == MODEL and engine._companion is None
        assert not any("completion" in line for line in said), said
    finally:
        engine.close()


def test_a_completion_model_not_pulled_is_said_and_the_model_completes() -> None:
    engine, said = loaded(
        EngineSettings(model=MODEL, backend="llamacpp", completion_model="no-such-model")
    )
    try:
        assert engine.completion_model == MODEL
        assert any("completion model no-such-model not used" in line for line in said), said
        assert engine.complete(CURSOR, INTERACTIVE).finish().tokens_out > 0
    finally:
        engine.close()


def test_a_completion_model_of_another_vocabulary_is_refused() -> None:
    other = "qwen2.5-coder-1.5b"
    if not any(s.pulled for s in ModelStore().list() if s.name == other):
        pytest.fail(f"{other} is not pulled: run `make pull` before this test")
    engine, said = loaded(EngineSettings(model=MODEL, backend="llamacpp", completion_model=other))
    try:
        assert engine.completion_model == MODEL
        assert any(f"its vocabulary is not {MODEL}'s" in line for line in said), said
    finally:
        engine.close()
