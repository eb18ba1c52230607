"""The llama.cpp engine on the real pulled smollm2-135m GGUF, next to the transformers engine.

The feature tests run on both backends (the same model: the GGUF and the transformers folder
converted from it), so the two behave alike; llama.cpp-only checks follow. The language server
on each backend is in test_backends_features.py. `make test` pulls the model before the suite;
run `make pull` first when calling pytest directly.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from starchat_lsp import completion
from starchat_lsp.context.completion_scope import Scope
from starchat_lsp.engine import (
    CancelFlag,
    ChatMessage,
    CompletionPrompt,
    EngineError,
    GenerationSettings,
    ModelLoadError,
    StopReason,
)
from starchat_lsp.engine.base import Engine
from starchat_lsp.engine.factory import EngineSettings, create_engine
from starchat_lsp.engine.llamacpp_engine import DEFAULT_CONTEXT_CAP, LlamaCppEngine
from starchat_lsp.engine.llamacpp_shift import READ_AGAIN
from starchat_lsp.models.store import ModelStore
from test_engine_transformers import in_turn

MODEL = "smollm2-135m"
HELLO = [ChatMessage("user", "Write a Python function that adds two numbers. Only the code.")]
# A raw prompt the model continues for as long as it may: long runs to cancel or time out.
COUNTING = CompletionPrompt(prefix="1, 2, 3, 4, 5, 6, 7, 8, 9, 10,")
CODE = "def add(a, b):\n    # <|im_end|> is special\n    return a + b  # naïve ✓\n"

FIM_MODEL = "qwen2.5-coder-1.5b"  # has FIM tokens; used only when pulled (4.7 GB)

needs_llama = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None,
    reason="llama-cpp-python is not installed: pip install 'starchat-lsp[llamacpp]'",
)


def _gguf() -> Path:
    resolved = ModelStore().resolve(MODEL)
    if resolved.gguf_path is None or not resolved.gguf_path.is_file():
        pytest.fail(f"{MODEL} is not pulled: run `make pull` before this test")
    return resolved.gguf_path


def small_llama() -> Iterator[LlamaCppEngine]:
    """The small model on llama.cpp, loaded, closed after: for module-scoped fixtures."""
    pytest.importorskip("llama_cpp", reason="pip install 'starchat-lsp[llamacpp]'")
    engine = LlamaCppEngine(str(_gguf()), name=MODEL)
    engine.load()
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def llama() -> Iterator[LlamaCppEngine]:
    yield from small_llama()


@pytest.fixture(scope="module", params=["llamacpp", "transformers"])
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """Each backend on the same model: the feature tests below run on both."""
    if request.param == "llamacpp":
        yield request.getfixturevalue("llama")
        return
    engine = create_engine(EngineSettings(model=MODEL, backend="transformers", dtype="float32"))
    engine.load()
    yield engine
    engine.close()


def chat(engine: Engine, **settings: Any) -> tuple[list[str], Any]:
    stream = engine.chat(HELLO, GenerationSettings(**settings))
    chunks = list(stream)
    return chunks, stream.result


def counting(engine: Engine, cancel: CancelFlag | None = None, **settings: Any) -> Any:
    return engine.complete(COUNTING, GenerationSettings(**settings), cancel=cancel)


# ---- the same features on both backends -------------------------------------------------------


@pytest.mark.default_model
def test_streams_chunks_that_add_up_to_the_result(engine: Engine) -> None:
    chunks, result = chat(engine, max_new_tokens=12)
    assert len(chunks) > 1, "text must arrive token by token, not at the end"
    assert "".join(chunks) == result.text
    assert result.tokens_out == 12
    assert result.stop_reason is StopReason.LENGTH
    assert result.tokens_in > 10
    assert result.time_to_first_token_s is not None
    assert 0 < result.time_to_first_token_s <= result.total_s
    assert result.tokens_per_s > 0
    assert result.queue_wait_s >= 0  # reported; how long is bench/'s to measure


@pytest.mark.default_model
def test_greedy_is_deterministic(engine: Engine) -> None:
    assert chat(engine, max_new_tokens=10)[1].text == chat(engine, max_new_tokens=10)[1].text


@pytest.mark.default_model
def test_a_seed_repeats_a_sampled_answer(engine: Engine) -> None:
    first = chat(engine, max_new_tokens=10, temperature=0.9, seed=7)[1].text
    assert chat(engine, max_new_tokens=10, temperature=0.9, seed=7)[1].text == first


@pytest.mark.default_model
def test_stop_string_ends_the_answer_before_it(engine: Engine) -> None:
    full = counting(engine, max_new_tokens=24).finish().text
    assert full.startswith(" 11, 12,"), full
    stream = counting(engine, max_new_tokens=24, stop=("14",))
    chunks = list(stream)
    assert stream.result.stop_reason is StopReason.STOP_STRING
    assert stream.result.text == full[: full.find("14")] == " 11, 12, 13, "
    assert "14" not in "".join(chunks)
    assert stream.result.tokens_out < 24


@pytest.mark.default_model
def test_the_end_of_turn_token_ends_the_answer(engine: Engine) -> None:
    _, result = chat(engine, max_new_tokens=400)
    assert result.stop_reason is StopReason.EOS, result.text
    assert "<|im_end|>" not in result.text and "<|im_start|>" not in result.text
    assert "def " in result.text


@pytest.mark.default_model
def test_time_limit_stops_generation(engine: Engine) -> None:
    # What must happen, not how fast (bench/ times the engines): the limit ended it, long before
    # the 100,000 tokens.
    result = counting(engine, max_new_tokens=100_000, time_limit_s=1.0).finish()
    assert result.stop_reason is StopReason.TIME
    assert result.tokens_out < 1000


@pytest.mark.default_model
def test_cancel_stops_within_one_token_and_frees_the_model(engine: Engine) -> None:
    stream = counting(engine, max_new_tokens=100_000)
    iterator = iter(stream)
    next(iterator)
    while stream.tokens_out_now() < 8:
        time.sleep(0.001)
    seen = stream.tokens_out_now()
    stream.cancel()
    result = stream.finish()
    assert result.stop_reason is StopReason.CANCELLED
    # One token may be in flight when the flag is set, and one more between reading and setting.
    assert result.tokens_out <= seen + 2
    follow_up = counting(engine, max_new_tokens=2).finish()
    assert follow_up.tokens_out == 2  # the model is free: finish() returned once it had stopped


@pytest.mark.default_model
def test_cancel_from_another_thread_while_the_reader_blocks(engine: Engine) -> None:
    flag = CancelFlag()
    stream = counting(engine, flag, max_new_tokens=100_000)
    threading.Timer(0.3, flag.cancel).start()
    result = stream.finish()
    assert result.stop_reason is StopReason.CANCELLED  # the cancel ended it, not the 100,000


@pytest.mark.default_model
def test_a_request_cancelled_while_queued_never_runs(engine: Engine) -> None:
    long_run = counting(engine, max_new_tokens=100_000, time_limit_s=0.5)
    queued_flag = CancelFlag()
    queued = engine.chat(HELLO, GenerationSettings(max_new_tokens=50), cancel=queued_flag)
    queued_flag.cancel()
    assert long_run.finish().stop_reason is StopReason.TIME
    queued_result = queued.finish()
    assert queued_result.stop_reason is StopReason.CANCELLED
    assert queued_result.tokens_out == 0


@pytest.mark.default_model
def test_one_worker_runs_requests_one_after_the_other(engine: Engine) -> None:
    first = counting(engine, max_new_tokens=100_000, time_limit_s=0.4)
    second = counting(engine, max_new_tokens=3)
    first_result, second_result = in_turn(first, second)
    assert first_result.stop_reason is StopReason.TIME
    assert second_result.tokens_out == 3


@pytest.mark.default_model
def test_abandoning_a_stream_frees_the_model(engine: Engine) -> None:
    stream = counting(engine, max_new_tokens=100_000)
    iterator = iter(stream)
    next(iterator)
    iterator.close()  # type: ignore[attr-defined]  # the reader went away (editor closed, Ctrl-C)
    assert stream.result.stop_reason is StopReason.CANCELLED  # whole, right when it closed
    assert stream.result.tokens_out < 100_000
    # The model is free: the result above is whole only once the run has stopped, and a
    # follow-up is served. (How soon: bench/cancellation.py.)
    follow_up = counting(engine, max_new_tokens=3).finish()
    assert follow_up.tokens_out == 3


@pytest.mark.default_model
def test_completion_uses_the_raw_prompt(engine: Engine) -> None:
    result = engine.complete(
        CompletionPrompt(prefix="def add(a, b):\n"), GenerationSettings(max_new_tokens=4)
    ).finish()
    assert result.tokens_out == 4
    assert result.tokens_in == engine.count_tokens("def add(a, b):\n")


@pytest.mark.default_model
def test_without_fim_tokens_a_suffix_is_ignored(engine: Engine) -> None:
    # SmolLM2's vocabulary has no fill-in-the-middle tokens: complete() continues the prefix.
    assert engine.fill_in_middle is False
    prompt = CompletionPrompt(prefix="def add(a, b):\n", suffix="\nprint(add(1, 2))\n")
    result = engine.complete(prompt, GenerationSettings(max_new_tokens=6)).finish()
    assert result.tokens_in == engine.count_tokens("def add(a, b):\n")
    assert result.text.strip()


@pytest.mark.default_model
def test_generation_is_clamped_to_the_context_window(engine: Engine) -> None:
    window = engine.context_window
    assert window in (DEFAULT_CONTEXT_CAP, 8192)  # llama.cpp caps SmolLM2's 8192 by default
    result = counting(engine, max_new_tokens=window * 2, time_limit_s=0.2).finish()
    assert result.stop_reason is StopReason.TIME  # the huge max_new_tokens did not fail


@needs_llama
@pytest.mark.default_model
def test_fill_in_the_middle_where_the_vocabulary_has_fim_tokens() -> None:
    resolved = ModelStore().resolve(FIM_MODEL)
    if resolved.gguf_path is None or not resolved.gguf_path.is_file():
        pytest.skip(f"{FIM_MODEL} is not pulled (`starchat-lsp models pull {FIM_MODEL}`)")
    engine = LlamaCppEngine(str(resolved.gguf_path), name=FIM_MODEL)
    try:
        assert engine.fill_in_middle is True
        prompt = CompletionPrompt(
            prefix="def add(a, b):\n    return ", suffix="\n\nprint(add(1, 2))\n"
        )
        fim = "<|fim_prefix|>def add(a, b):\n    return <|fim_suffix|>\n\nprint(add(1, 2))\n"
        result = engine.complete(prompt, GenerationSettings(max_new_tokens=12)).finish()
        assert result.tokens_in == engine.count_tokens(fim + "<|fim_middle|>")
        assert result.text.strip() == "a + b"
        assert result.stop_reason is StopReason.EOS
    finally:
        engine.close()


@needs_llama
@pytest.mark.default_model
def test_typing_on_a_line_reads_only_the_typed_tokens_again() -> None:
    """With the cursor line's start after the middle token, or the suffix first (SPM), a key
    changes the prompt's end only; in the plain layout the text after the cursor is not read
    again either: its KV cells move one token on (llamacpp_shift)."""
    resolved = ModelStore().resolve(FIM_MODEL)
    if resolved.gguf_path is None or not resolved.gguf_path.is_file():
        pytest.skip(f"{FIM_MODEL} is not pulled (`starchat-lsp models pull {FIM_MODEL}`)")
    engine = LlamaCppEngine(str(resolved.gguf_path), name=FIM_MODEL)
    head = "def mean(values):\n    total = 0\n    for value in values:\n        total += value\n"
    tail = "\n    return average\n\n\nprint(mean([1, 2, 3]))\n" * 4

    def at_cursor(line: str, layout: str) -> completion.Completion:
        text = head + line + tail
        return completion.complete(
            engine,
            text,
            len(head + line),
            language="python",
            path="stats.py",
            scope=Scope.LINE,
            max_new_tokens=4,
            max_context_tokens=1024,
            flag=CancelFlag(),
            line_in_middle=layout == "line-in-middle",
            suffix_first=layout == "suffix-first",
        )

    try:
        for layout in ("line-in-middle", "suffix-first", "plain"):
            engine.llama.reset()
            at_cursor("    aver", layout)
            typed = at_cursor("    avera", layout).result
            # Only the cursor word's last tokens, a few after them (llamacpp_shift.READ_AGAIN)
            # and the prompt's last one are read again.
            assert typed.tokens_in - typed.reused_tokens <= 4 + READ_AGAIN, layout
            assert typed.reused_tokens > engine.count_tokens(tail), layout
        # A space of indentation (one token for another, the cached cells stay where they are).
        engine.llama.reset()
        at_cursor("       ", "plain")
        indented = at_cursor("        ", "plain").result
        assert indented.tokens_in - indented.reused_tokens <= 4 + READ_AGAIN
        assert indented.reused_tokens > engine.count_tokens(tail)
    finally:
        engine.close()


# ---- the two backends agree on the same model --------------------------------------------------


@pytest.mark.default_model
def test_backends_count_and_template_alike(llama: LlamaCppEngine) -> None:
    other = create_engine(EngineSettings(model=MODEL, backend="transformers", dtype="float32"))
    try:
        # CODE has no digits: the transformers folder converted from the GGUF splits numbers
        # differently (no SmolLM2 digit pre-tokenizer), so "1 |" counts differ there.
        assert llama.count_tokens(CODE) == other.count_tokens(CODE)
        messages = [ChatMessage("system", "Be brief."), *HELLO]
        assert llama.render_chat(messages) == other.render_chat(messages)  # type: ignore[attr-defined]
        # The same prompt tokens: the chat template came from the GGUF, identical to the folder's.
        ours = llama.chat(messages, GenerationSettings(max_new_tokens=1)).finish()
        theirs = other.chat(messages, GenerationSettings(max_new_tokens=1)).finish()
        assert ours.tokens_in == theirs.tokens_in
    finally:
        other.close()


# ---- llama.cpp only ----------------------------------------------------------------------------


@pytest.mark.default_model
def test_count_tokens(llama: LlamaCppEngine) -> None:
    assert llama.count_tokens("") == 0
    assert llama.count_tokens("<|im_end|>") == 1  # special tokens written in text count as one
    assert 0 < llama.count_tokens("def add(a, b):") < len("def add(a, b):")


LONG = CompletionPrompt(prefix=", ".join(str(n) for n in range(1, 600)))  # about 2000 tokens


@pytest.mark.default_model
def test_cancel_during_a_long_prompt_does_not_wait_for_all_of_it(llama: LlamaCppEngine) -> None:
    # The prompt goes in slices; llama.cpp's abort callback reads the cancel inside each.
    short = CompletionPrompt(prefix="def add(a, b):")
    before = llama.complete(short, GenerationSettings(max_new_tokens=6)).finish().text
    flag = CancelFlag()
    stream = llama.complete(LONG, GenerationSettings(max_new_tokens=5), cancel=flag)
    threading.Timer(0.2, flag.cancel).start()
    result = stream.finish()
    assert result.stop_reason is StopReason.CANCELLED
    assert result.tokens_out == 0 and result.time_to_first_token_s is None
    # Inside the prompt, not at the end of the 2,000-token prompt.
    assert llama.llama.n_tokens < result.tokens_in  # stopped part-way through the prompt
    limited = llama.complete(LONG, GenerationSettings(max_new_tokens=5, time_limit_s=0.2))
    assert limited.finish().stop_reason is StopReason.TIME
    # What a stopped prompt leaves is only its own beginning: another prompt starts from scratch.
    after = llama.complete(short, GenerationSettings(max_new_tokens=6)).finish()
    assert after.text == before and after.reused_tokens == 0


@pytest.mark.default_model
@pytest.mark.parametrize("interactive", [False, True], ids=["answer", "completion"])
def test_a_stopped_prompt_leaves_what_it_read_to_the_next_run(
    llama: LlamaCppEngine, interactive: bool
) -> None:
    # A completion stopped by the next keystroke: the next one's prompt begins the same. (A
    # completion stops between two slices, so all it read stays; an answer inside one.)
    settings = GenerationSettings(max_new_tokens=3, interactive=interactive)
    llama.llama.reset()
    whole = llama.complete(LONG, settings).finish()
    assert whole.reused_tokens == 0
    llama.llama.reset()
    flag = CancelFlag()
    stream = llama.complete(LONG, settings, cancel=flag)
    while llama.llama.n_tokens == 0:  # until a first slice is read
        time.sleep(0.001)
    flag.cancel()
    assert stream.finish().stop_reason is StopReason.CANCELLED
    read = llama.llama.n_tokens
    assert 0 < read < whole.tokens_in
    again = llama.complete(LONG, settings).finish()
    assert again.reused_tokens == read
    assert again.text == whole.text


@pytest.mark.default_model
def test_a_shared_prefix_is_not_computed_again(llama: LlamaCppEngine) -> None:
    code = "def moving_average(values, window):\n    averages = []\n" * 8
    first = llama.complete(CompletionPrompt(prefix=code), GenerationSettings(max_new_tokens=2))
    assert first.finish().tokens_out == 2
    follow_up = CompletionPrompt(prefix=code + "    for start in range(len(values)):\n")
    result = llama.complete(follow_up, GenerationSettings(max_new_tokens=2)).finish()
    assert result.reused_tokens >= llama.count_tokens(code) - 1
    assert result.reused_tokens < result.tokens_in
    # The answer is the same as from scratch.
    llama.llama.reset()
    again = llama.complete(follow_up, GenerationSettings(max_new_tokens=2)).finish()
    assert again.reused_tokens == 0 and again.text == result.text


@pytest.mark.default_model
@needs_llama
def test_a_small_context_clamps_the_answer_and_refuses_a_long_prompt() -> None:
    engine = LlamaCppEngine(str(_gguf()), name=MODEL, context_size=48, threads=1)
    try:
        assert engine.context_window == 48
        result = counting(engine, max_new_tokens=1000).finish()
        assert result.stop_reason is StopReason.LENGTH
        assert result.tokens_in + result.tokens_out == 48
        too_long = CompletionPrompt(prefix=", ".join(str(n) for n in range(100)))
        with pytest.raises(EngineError, match="context window holds 48"):
            engine.complete(too_long, GenerationSettings(max_new_tokens=5)).finish()
        assert counting(engine, max_new_tokens=2).finish().tokens_out == 2  # still usable
    finally:
        engine.close()


@pytest.mark.default_model
@needs_llama
def test_starchat_template_for_a_gguf_without_one() -> None:
    engine = LlamaCppEngine(str(_gguf()), name=MODEL)
    try:
        engine.load()
        metadata = dict(engine.llama.metadata)
        metadata.pop("tokenizer.chat_template")
        engine._inspect(_WithMetadata(engine.llama, metadata))
        prompt = engine.render_chat([ChatMessage("system", "S"), ChatMessage("user", "U")])
        assert prompt == "<|system|>\nS<|end|>\n<|user|>\nU<|end|>\n<|assistant|>\n"
        # SmolLM2 has no <|end|> token: the markers stop the answer as text.
        result = engine.chat(HELLO, GenerationSettings(max_new_tokens=60)).finish()
        assert "<|end|>" not in result.text and "<|user|>" not in result.text
        assert result.tokens_out <= 60
    finally:
        engine.close()


class _WithMetadata:
    def __init__(self, llama: Any, metadata: dict[str, str]) -> None:
        self._llama = llama
        self.metadata = metadata

    def __getattr__(self, name: str) -> Any:
        return getattr(self._llama, name)


@pytest.mark.default_model
@needs_llama
def test_close_stops_a_running_answer_and_refuses_new_ones() -> None:
    engine = LlamaCppEngine(str(_gguf()), name=MODEL)
    stream = counting(engine, max_new_tokens=100_000)
    queued = counting(engine, max_new_tokens=5)
    iterator = iter(stream)
    next(iterator)
    engine.close()
    assert stream.finish().stop_reason is StopReason.CANCELLED
    assert queued.finish().stop_reason is StopReason.CANCELLED
    with pytest.raises(EngineError, match="closed"):
        counting(engine, max_new_tokens=2)


@pytest.mark.default_model
@needs_llama
def test_the_factory_builds_it_from_the_pulled_gguf() -> None:
    engine = create_engine(EngineSettings(model=MODEL, backend="llamacpp", threads=1))
    assert isinstance(engine, LlamaCppEngine)
    assert engine.name == MODEL
    engine.close()


def test_without_llama_cpp_python_the_error_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # what a missing package looks like
    engine = LlamaCppEngine(str(tmp_path / "model.gguf"), name="m")
    with pytest.raises(EngineError, match=r"pip install 'starchat-lsp\[llamacpp\]'"):
        engine.load()


@needs_llama
def test_a_missing_gguf_is_a_clear_load_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        LlamaCppEngine(str(tmp_path / "none.gguf"), name="none").load()


@needs_llama
def test_a_damaged_gguf_says_pull_again(tmp_path: Path) -> None:
    broken = tmp_path / "model.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(ModelLoadError, match="pull it again") as caught:
        LlamaCppEngine(str(broken), name="broken").load()
    assert "\n" not in str(caught.value)


@needs_llama
@pytest.mark.default_model  # the pulled smollm2-135m GGUF
def test_out_of_memory_while_loading_says_choose_a_smaller_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import llama_cpp

    def no_memory(*args: object, **kwargs: object) -> None:
        raise MemoryError

    monkeypatch.setattr(llama_cpp, "Llama", no_memory)
    path = ModelStore().resolve(MODEL).gguf_path
    assert path is not None
    engine = LlamaCppEngine(str(path), name=MODEL)
    with pytest.raises(ModelLoadError, match="not enough memory to load") as caught:
        engine.load()
    assert "choose a smaller model" in str(caught.value) and "\n" not in str(caught.value)
    monkeypatch.undo()
    engine.load()  # the next try, with memory, loads
    assert engine.context_window > 0
    engine.close()
