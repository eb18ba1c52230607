"""The transformers engine on a tiny random model, through the real loading and streaming code."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from starchat_lsp.engine import (
    CancelFlag,
    ChatMessage,
    CompletionPrompt,
    EngineError,
    GenerationResult,
    GenerationSettings,
    ModelLoadError,
    StopReason,
    TextStream,
)
from starchat_lsp.engine.transformers_engine import TransformersEngine

HELLO = [ChatMessage("user", "I wrote this code and it has a bug, what's wrong?")]


@pytest.fixture(scope="module")
def engine(tiny_chatml_model: Path) -> TransformersEngine:
    engine = TransformersEngine(str(tiny_chatml_model), dtype="float32")
    engine.load()
    yield engine
    engine.close()


def in_turn(first: TextStream, second: TextStream) -> tuple[GenerationResult, GenerationResult]:
    """Both results, the second read first: it still waits for the first. An order, not a
    duration (a busy machine stretches those): the first had made its last token when the
    second made its first."""
    next(iter(second))
    first_tokens_then = first.tokens_out_now()
    second_result = second.finish()
    first_result = first.finish()
    assert first_result.tokens_out == first_tokens_then
    return first_result, second_result


def greedy(engine: TransformersEngine, tokens: int, **settings: object) -> tuple[list[str], object]:
    stream = engine.chat(HELLO, GenerationSettings(max_new_tokens=tokens, **settings))
    chunks = list(stream)
    return chunks, stream.result


def test_streams_chunks_that_add_up_to_the_result(engine: TransformersEngine) -> None:
    chunks, result = greedy(engine, 30)
    assert len(chunks) > 1, "text must arrive token by token, not at the end"
    assert "".join(chunks) == result.text
    assert result.tokens_out == 30
    assert result.stop_reason is StopReason.LENGTH
    assert result.tokens_in > 5
    assert result.time_to_first_token_s is not None
    assert 0 < result.time_to_first_token_s <= result.total_s
    assert result.tokens_per_s > 0


def test_greedy_is_deterministic(engine: TransformersEngine) -> None:
    assert greedy(engine, 20)[1].text == greedy(engine, 20)[1].text


def test_stop_string_ends_the_answer_before_it(engine: TransformersEngine) -> None:
    full = greedy(engine, 60)[1].text
    # A stop string taken from the middle of what the model would say anyway.
    stop = full[20:24]
    assert stop and full.find(stop) >= 1
    chunks, result = greedy(engine, 60, stop=(stop,))
    assert result.stop_reason is StopReason.STOP_STRING
    assert result.text == full[: full.find(stop)]
    assert stop not in "".join(chunks)
    assert result.tokens_out < 60


def test_time_limit_stops_generation(engine: TransformersEngine) -> None:
    # What must happen, not how fast (bench/ times the engines): the limit ended it, before the
    # 100,000 tokens.
    _, result = greedy(engine, 100_000, time_limit_s=0.2)
    assert result.stop_reason is StopReason.TIME
    assert 0 < result.tokens_out < 100_000  # generate() makes a token before it asks to stop


def test_cancel_stops_generate_within_one_token(engine: TransformersEngine) -> None:
    stream = engine.chat(HELLO, GenerationSettings(max_new_tokens=100_000))
    iterator = iter(stream)
    next(iterator)
    while stream.tokens_out_now() < 20:
        time.sleep(0.001)
    seen = stream.tokens_out_now()
    stream.cancel()
    result = stream.finish()
    assert result.stop_reason is StopReason.CANCELLED
    # One token may be in flight when the flag is set, and one more between reading and setting.
    assert result.tokens_out <= seen + 2


def test_cancel_from_another_thread_while_the_reader_blocks(engine: TransformersEngine) -> None:
    flag = CancelFlag()
    stream = engine.chat(HELLO, GenerationSettings(max_new_tokens=100_000), cancel=flag)
    threading.Timer(0.2, flag.cancel).start()
    result = stream.finish()
    assert result.stop_reason is StopReason.CANCELLED  # the cancel ended it, not the 100,000


def test_a_request_cancelled_while_queued_never_runs(engine: TransformersEngine) -> None:
    long_run = engine.chat(HELLO, GenerationSettings(max_new_tokens=100_000, time_limit_s=0.5))
    queued_flag = CancelFlag()
    queued = engine.chat(HELLO, GenerationSettings(max_new_tokens=50), cancel=queued_flag)
    queued_flag.cancel()
    long_result = long_run.finish()
    queued_result = queued.finish()
    assert long_result.stop_reason is StopReason.TIME
    assert queued_result.stop_reason is StopReason.CANCELLED
    assert queued_result.tokens_out == 0


def test_one_worker_runs_requests_one_after_the_other(engine: TransformersEngine) -> None:
    first = engine.chat(HELLO, GenerationSettings(max_new_tokens=100_000, time_limit_s=0.3))
    second = engine.chat(HELLO, GenerationSettings(max_new_tokens=5))
    first_result, second_result = in_turn(first, second)
    assert first_result.stop_reason is StopReason.TIME
    assert second_result.tokens_out == 5


def test_abandoning_a_stream_frees_the_model(engine: TransformersEngine) -> None:
    stream = engine.chat(HELLO, GenerationSettings(max_new_tokens=100_000))
    iterator = iter(stream)
    next(iterator)
    iterator.close()  # type: ignore[attr-defined]  # the reader went away (editor closed, Ctrl-C)
    assert stream.result.stop_reason is StopReason.CANCELLED  # whole once the run has stopped
    # The model is free: a follow-up is served. (How soon: bench/cancellation.py.)
    follow_up = engine.chat(HELLO, GenerationSettings(max_new_tokens=3)).finish()
    assert follow_up.tokens_out == 3


def test_completion_uses_the_raw_prompt(engine: TransformersEngine) -> None:
    stream = engine.complete(
        CompletionPrompt(prefix="def add(a, b):\n"), GenerationSettings(max_new_tokens=8)
    )
    result = stream.finish()
    assert result.tokens_out == 8
    assert result.tokens_in == engine.count_tokens("def add(a, b):\n")


def test_chatml_template_comes_from_the_tokenizer(engine: TransformersEngine) -> None:
    prompt = engine.render_chat([ChatMessage("system", "S"), ChatMessage("user", "U")])
    assert (
        prompt == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_starchat_template_for_tokenizers_without_one(tiny_starchat_model: Path) -> None:
    engine = TransformersEngine(str(tiny_starchat_model), dtype="float32")
    try:
        prompt = engine.render_chat([ChatMessage("system", "S"), ChatMessage("user", "U")])
        assert prompt == "<|system|>\nS<|end|>\n<|user|>\nU<|end|>\n<|assistant|>\n"
        end_id = engine.loaded.tokenizer.convert_tokens_to_ids("<|end|>")
        assert end_id in engine._eos_ids()
        assert engine.chat(HELLO, GenerationSettings(max_new_tokens=4)).finish().tokens_out <= 4
    finally:
        engine.close()


def test_missing_folder_is_a_clear_load_error(tmp_path: Path) -> None:
    engine = TransformersEngine(str(tmp_path / "nowhere"))
    with pytest.raises(ModelLoadError, match="does not exist"):
        engine.load()


def test_folder_without_config_says_what_it_needs(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"no config\.json"):
        TransformersEngine(str(tmp_path)).load()


def test_corrupt_weights_say_pull_again(tiny_chatml_model: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for item in tiny_chatml_model.iterdir():
        (broken / item.name).write_bytes(item.read_bytes())
    (broken / "model.safetensors").write_bytes(b"not safetensors at all")
    with pytest.raises(ModelLoadError) as caught:
        TransformersEngine(str(broken)).load()
    assert "\n" not in str(caught.value)


def test_offline_hub_id_fails_with_a_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    engine = TransformersEngine("nobody-here/no-such-model", is_hub_id=True)
    with pytest.raises(ModelLoadError, match="offline"):
        engine.load()


def test_engine_error_is_raised_when_generation_fails(engine: TransformersEngine) -> None:
    bad = GenerationSettings(max_new_tokens=5, temperature=0.7, top_p=-1.0)
    with pytest.raises(EngineError, match="generation failed"):
        engine.chat(HELLO, bad).finish()
    assert engine.chat(HELLO, GenerationSettings(max_new_tokens=2)).finish().tokens_out == 2


def test_completion_with_a_suffix_uses_fill_in_the_middle(tiny_fim_model: Path) -> None:
    engine = TransformersEngine(str(tiny_fim_model), dtype="float32")
    try:
        prompt = CompletionPrompt(
            prefix="def add(a, b):\n    return ", suffix="\n\nprint(add(1, 2))\n"
        )
        stream = engine.complete(prompt, GenerationSettings(max_new_tokens=4))
        result = stream.finish()
        fim = (
            "<fim_prefix>def add(a, b):\n    return <fim_suffix>\n\nprint(add(1, 2))\n<fim_middle>"
        )
        assert result.tokens_in == len(engine.loaded.tokenizer(fim)["input_ids"])
        assert result.tokens_out == 4
    finally:
        engine.close()


def test_completion_without_fim_tokens_uses_the_prefix(engine: TransformersEngine) -> None:
    prompt = CompletionPrompt(prefix="def add(a, b):\n", suffix="\nprint(1)\n")
    result = engine.complete(prompt, GenerationSettings(max_new_tokens=2)).finish()
    assert result.tokens_in == engine.count_tokens("def add(a, b):\n")


def test_a_follow_up_reuses_the_shared_prefix_and_answers_the_same(
    tiny_chatml_model: Path,
) -> None:
    settings = GenerationSettings(max_new_tokens=12)
    first_turn = [ChatMessage("user", "def add(a, b):\n    return a + b\n" * 8 + "Explain it.")]
    warm = TransformersEngine(str(tiny_chatml_model), dtype="float32")
    answer = warm.chat(first_turn, settings).finish()
    assert answer.reused_tokens == 0
    follow_up = [
        *first_turn,
        ChatMessage("assistant", answer.text),
        ChatMessage("user", "Is there a bug?"),
    ]
    reused = warm.chat(follow_up, settings).finish()
    cold = TransformersEngine(str(tiny_chatml_model), dtype="float32")
    fresh = cold.chat(follow_up, settings).finish()
    # The whole first turn came from the cache, and the answer is the one a fresh model gives.
    assert reused.reused_tokens >= answer.tokens_in
    assert reused.tokens_in == fresh.tokens_in and fresh.reused_tokens == 0
    assert reused.text == fresh.text
    # An unrelated prompt starts afresh.
    other = warm.chat(HELLO, settings).finish()
    assert other.reused_tokens == 0
    warm.close()
    cold.close()
