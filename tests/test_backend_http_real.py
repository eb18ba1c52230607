"""The HTTP backend against a real server: llama.cpp's OpenAI-compatible server
(`python -m llama_cpp.server`, from llama-cpp-python[server], started by `llama_server.py`)
serving the default model's GGUF.

The engine directly (chat, complete, cancel, stop strings, max tokens). The language server
process on backend "http" is in test_backends_features.py, with the same features as the other
backends. `make test` pulls the model before the suite.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from llama_server import CONTEXT, llama_cpp_server
from starchat_lsp import tasks
from starchat_lsp.context import syntax
from starchat_lsp.engine.base import ChatMessage, CompletionPrompt, GenerationSettings, StopReason
from starchat_lsp.engine.factory import HttpEngineSettings
from starchat_lsp.engine.http_engine import HttpEngine
from starchat_lsp.models.catalogue import SMALL_MODEL

pytestmark = pytest.mark.default_model

SAMPLE = Path(__file__).parent.parent / "examples" / "off_by_one.py"
COUNT = [ChatMessage("user", "Count from 1 to 300, one number a line.")]


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with llama_cpp_server(tmp_path_factory.mktemp("llama-server")) as url:
        yield url


@pytest.fixture(scope="module")
def engine(llama_server: str) -> Iterator[HttpEngine]:
    settings = HttpEngineSettings(endpoint=llama_server, context_window=CONTEXT)
    engine = HttpEngine(settings, name=SMALL_MODEL)
    engine.load()
    yield engine
    engine.close()


# -- the engine ----------------------------------------------------------------------------------


def test_chat_streams_an_answer_with_the_servers_usage(engine: HttpEngine) -> None:
    stream = engine.chat(
        [ChatMessage("user", "Write a Python function that adds two numbers.")],
        GenerationSettings(max_new_tokens=64),
    )
    chunks = list(stream)
    result = stream.result
    assert len(chunks) > 5 and "".join(chunks) == result.text and result.text.strip()
    assert result.stop_reason in (StopReason.EOS, StopReason.LENGTH)
    assert 0 < result.tokens_out <= 64 and result.tokens_in > 10
    assert result.time_to_first_token_s is not None and result.time_to_first_token_s > 0
    assert result.tokens_per_s > 0


def test_complete_continues_the_prefix(engine: HttpEngine) -> None:
    result = engine.complete(
        CompletionPrompt(prefix="def add(a, b):\n    return"), GenerationSettings(max_new_tokens=8)
    ).finish()
    assert result.text and result.stop_reason in (StopReason.EOS, StopReason.LENGTH)
    assert 0 < result.tokens_out <= 8


def test_max_new_tokens_ends_with_length(engine: HttpEngine) -> None:
    result = engine.chat(COUNT, GenerationSettings(max_new_tokens=5)).finish()
    assert result.stop_reason is StopReason.LENGTH and result.tokens_out == 5


def test_a_stop_string_ends_the_answer(engine: HttpEngine) -> None:
    settings = GenerationSettings(max_new_tokens=40)
    whole_answer = engine.chat(COUNT, settings).finish().text
    stop = " " + whole_answer.split()[3]  # greedy: the same answer again, cut before this word
    stream = engine.chat(COUNT, replace(settings, stop=(stop,)))
    result = stream.finish()
    assert result.stop_reason is StopReason.STOP_STRING
    assert result.text == whole_answer[: whole_answer.index(stop)]
    assert result.tokens_out < 40


def test_cancel_stops_the_answer_and_frees_the_server(engine: HttpEngine) -> None:
    stream = engine.chat(COUNT, GenerationSettings(max_new_tokens=1000))
    chunks = []
    for chunk in stream:
        chunks.append(chunk)
        if len(chunks) == 5:
            stream.cancel()
    result = stream.result
    assert result.stop_reason is StopReason.CANCELLED and len(chunks) <= 6  # within an event
    # The server is free for a new answer. (How soon, rather than after the 1000 tokens, is not
    # for a test to bound: a busy machine stretches it.)
    after = engine.chat(COUNT, GenerationSettings(max_new_tokens=4)).finish()
    assert after.stop_reason is StopReason.LENGTH and after.tokens_out == 4


def test_feedback_on_the_sample_file_through_http(engine: HttpEngine) -> None:
    """The prompt of `starchat-lsp feedback examples/off_by_one.py`, with its speed printed."""
    text = SAMPLE.read_text()
    request = tasks.CodeRequest(
        text=text,
        path=str(SAMPLE),
        start_line=0,
        end_line=len(text.splitlines()) - 1,
        language=syntax.language_for_path(str(SAMPLE)),
    )
    settings = GenerationSettings(max_new_tokens=512)
    prepared = tasks.prepare(tasks.TaskKind.FEEDBACK, request, engine, max_new_tokens=512)
    result = engine.chat(prepared.messages, settings).finish()
    outcome = tasks.conclude(tasks.TaskKind.FEEDBACK, request, prepared, result)
    print(
        f"\nhttp backend, llama_cpp.server, {SMALL_MODEL}: {result.tokens_in} tokens in, "
        f"{result.tokens_out} out, first token {result.time_to_first_token_s:.2f} s, "
        f"{result.tokens_per_s:.1f} tokens/s, {result.total_s:.2f} s, "
        f"stopped: {result.stop_reason.value}"
    )
    assert result.tokens_out > 10 and outcome.answer
    assert outcome.complete == (result.stop_reason in (StopReason.EOS, StopReason.STOP_STRING))
