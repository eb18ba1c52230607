"""One feature suite for the three backends, through the real language server process.

The same model (smollm2-135m) on each backend: `transformers` and `llamacpp` load it by name,
`http` reaches a real `python -m llama_cpp.server` serving its GGUF. Each backend gets one server
process for the module (the model loads once); each test sets its own answer length with
workspace/didChangeConfiguration, which keeps the loaded model. `make test` pulls the model
before the suite; run `make pull` first when calling pytest directly.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from llama_server import CONTEXT, THREADS, llama_cpp_server
from lsp_client import StarchatTestClient, idle
from starchat_lsp.models.catalogue import SMALL_MODEL
from test_server import CONFIG, URI, list_actions, open_buggy, request, start, whole

pytestmark = [pytest.mark.default_model, pytest.mark.asyncio(loop_scope="module")]

MODEL = SMALL_MODEL  # smollm2-135m: the HTTP server serves its GGUF
BACKENDS = ("transformers", "llamacpp", "http")

SAMPLE = Path(__file__).parent.parent / "examples" / "off_by_one.py"
SAMPLE_URI = "file:///work/off_by_one.py"
BLANK_URI = "file:///work/add.py"
BLANK = "def add(a, b):\n    \n"


@dataclass(frozen=True)
class Backend:
    name: str
    url: str = ""  # the llama.cpp server, for "http"

    def options(self, max_new_tokens: int) -> dict[str, Any]:
        model: dict[str, Any] = {"name": MODEL, "backend": self.name}
        if self.name == "transformers":
            model["dtype"] = "float32"
        if self.name == "llamacpp":
            model["threads"] = THREADS  # as many as the HTTP server gets
        options: dict[str, Any] = {
            "model": model,
            "generation": {"max_new_tokens": max_new_tokens},
            "completion": {"debounce_ms": 0, "max_new_tokens": 16},
        }
        if self.name == "http":
            options["http"] = {"endpoint": self.url, "model": MODEL, "context_window": CONTEXT}
        return options


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with llama_cpp_server(tmp_path_factory.mktemp("llama-server")) as url:
        yield url


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "http":
        return Backend("http", request.getfixturevalue("llama_server"))
    return Backend(request.param)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(backend: Backend) -> AsyncIterator[StarchatTestClient]:
    """One language server process per backend. (Not `pytest_lsp.fixture`: pytest would not see
    that it depends on `backend`, and would keep one process for all three.)"""
    client = await CONFIG.start()
    assert isinstance(client, StarchatTestClient)
    await start(client, backend.options(16))
    open_buggy(client)
    open_buggy(client, SAMPLE.read_text(), SAMPLE_URI)
    open_buggy(client, BLANK, BLANK_URI)
    yield client
    await client.shutdown_session()
    await client.stop()


def configure(client: StarchatTestClient, backend: Backend, max_new_tokens: int) -> None:
    """New settings for the answers that follow; the same model, so it is not loaded again."""
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings=backend.options(max_new_tokens))
    )


def streamed(client: StarchatTestClient, token: str) -> str:
    return "".join(p["text"] for p in client.partial_results.get(token, []))


async def explain(client: StarchatTestClient, token: str) -> Any:
    params = {"textDocument": {"uri": URI}, "range": whole(3, 9), "partialResultToken": token}
    return await request(client, "starchat/explain", params, token)


# -- 1. explain streams ----------------------------------------------------------------------------


async def test_explain_streams_partial_results_that_add_up(
    server: StarchatTestClient, backend: Backend
) -> None:
    configure(server, backend, 20)
    result = await explain(server, "explain-1")
    assert len(server.partial_results["explain-1"]) > 1, "text must stream, not come at the end"
    assert streamed(server, "explain-1") == result.text and result.text.strip()
    assert 0 < result.usage.tokens_out <= 20 and result.usage.tokens_in > 20
    assert result.usage.stop_reason in ("eos", "stop_string", "length")
    if result.usage.stop_reason == "length":
        assert result.usage.tokens_out == 20 and result.complete is False
    assert result.range.start.line == 3 and result.range.end.line == 9
    assert result.fix is None  # explaining never proposes code


# -- 2. fix ----------------------------------------------------------------------------------------


def sample_fix_params(token: str) -> dict[str, Any]:
    lines = len(SAMPLE.read_text().splitlines())
    return {
        "textDocument": {"uri": SAMPLE_URI},
        "range": whole(0, lines),
        "partialResultToken": token,
    }


async def test_fix_of_the_sample_never_offers_an_edit_from_a_cut_answer(
    server: StarchatTestClient, backend: Backend
) -> None:
    configure(server, backend, 48)  # the sample's whole fix takes about 130 tokens: cut
    result = await request(server, "starchat/fix", sample_fix_params("fix-cut"), "fix-cut")
    usage = result.usage
    outcome = "no code" if result.fix is None else result.fix.problems
    print(f"\n{backend.name}: fix of the sample, {usage.tokens_out} tokens: {outcome}")
    assert result.text.strip() and streamed(server, "fix-cut") == result.text
    assert usage.stop_reason == "length" and usage.tokens_out == 48
    assert result.complete is False
    if result.fix is None:  # no code in the answer: nothing to apply, the answer is the text
        return
    assert result.fix.code.strip()
    assert result.fix.edit is None, "a cut answer must never be applied"
    assert any("cut (length)" in p for p in result.fix.problems), result.fix.problems


# -- 3. code actions -------------------------------------------------------------------------------


async def test_resolving_explain_shows_the_answer(
    server: StarchatTestClient, backend: Backend
) -> None:
    configure(server, backend, 16)
    actions = await list_actions(server)
    assert actions is not None
    titles = [a.title for a in actions if isinstance(a, types.CodeAction)]
    assert "Explain this code with starchat" in titles
    action = next(a for a in actions if a.title == "Explain this code with starchat")
    assert isinstance(action, types.CodeAction) and action.edit is None
    shown_before = len(server.messages)
    resolved = await server.code_action_resolve_async(action)
    assert resolved.title == "Explain this code with starchat" and resolved.edit is None
    shown = [m for m in server.messages[shown_before:] if m.type == types.MessageType.Info]
    assert len(shown) == 1 and shown[0].message.strip()
    # The message is the model's answer: the explain request on the same lines gives it again.
    again = await explain(server, "explain-action")
    assert shown[0].message == again.text


# -- 4. chat about a range -------------------------------------------------------------------------


async def test_chat_about_a_document_range_streams_and_answers(
    server: StarchatTestClient, backend: Backend
) -> None:
    configure(server, backend, 16)
    question = [{"role": "user", "content": "What does range(len(values) - 1) skip?"}]
    params = {
        "messages": question,
        "textDocument": {"uri": URI},
        "range": whole(3, 9),
        "partialResultToken": "chat-doc",
    }
    result = await request(server, "starchat/chat", params, "chat-doc")
    assert len(server.partial_results["chat-doc"]) > 1
    assert streamed(server, "chat-doc") == result.text and result.text.strip()
    assert 0 < result.usage.tokens_out <= 16
    # The range is in the prompt: the same question without it is much shorter.
    plain = await request(server, "starchat/chat", {"messages": question}, "chat-plain")
    assert plain.text.strip()
    assert result.usage.tokens_in - plain.usage.tokens_in > 30


# -- 5. cancel -------------------------------------------------------------------------------------


async def test_cancel_stops_the_answer_and_the_next_request_is_answered(
    server: StarchatTestClient, backend: Backend
) -> None:
    configure(server, backend, 100_000)  # clamped by the context: far longer than the test
    params = {"textDocument": {"uri": URI}, "range": whole(3, 9), "partialResultToken": "long"}
    pending = asyncio.ensure_future(request(server, "starchat/explain", params, "long-1"))
    while not server.partial_results.get("long"):
        if pending.done():
            pending.result()  # an error or a whole answer instead of streaming text: raise it
        await asyncio.sleep(0.01)
    server.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="long-1"))
    with pytest.raises(JsonRpcException) as caught:
        await pending
    assert caught.value.code == -32800  # RequestCancelled
    chunks_at_cancel = len(server.partial_results["long"])
    configure(server, backend, 8)
    answer = await explain(server, "after-cancel")
    # The model is free: the next request is answered and nothing is left running. (How soon:
    # bench/cancellation.py; a wall-clock limit here fails on a busy machine, not on a bug.)
    assert answer.text.strip() and 0 < answer.usage.tokens_out <= 8
    await idle(server)
    assert streamed(server, "after-cancel") == answer.text
    chunks_at_answer = len(server.partial_results["long"])
    await asyncio.sleep(0.3)
    assert len(server.partial_results["long"]) == chunks_at_answer, "it streams on"
    # Nothing of the cancelled answer follows the cancel's reply.
    late = chunks_at_answer - chunks_at_cancel
    assert late == 0, f"{late} chunks of the cancelled answer after its cancel"
    print(f"\n{backend.name}: {chunks_at_cancel} chunks before the cancel's reply, {late} after")


# -- 6. inline completion --------------------------------------------------------------------------


async def test_inline_completion_on_a_blank_line_runs_the_model(
    server: StarchatTestClient, backend: Backend
) -> None:
    before = (await request(server, "starchat/status", {}, "status-1")).generations
    items = await server.text_document_inline_completion_async(
        types.InlineCompletionParams(
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Automatic
            ),
            text_document=types.TextDocumentIdentifier(uri=BLANK_URI),
            position=types.Position(line=1, character=4),
        )
    )
    status = await request(server, "starchat/status", {}, "status-2")
    assert status.generations == before + 1
    assert status.backend == backend.name and status.model == MODEL
    assert isinstance(items, list)
    for item in items:  # what the model says varies; whatever survives cleaning is clean text
        assert isinstance(item.insert_text, str) and item.insert_text.strip()
        assert "<|" not in item.insert_text


# -- 7. greedy -------------------------------------------------------------------------------------


async def test_greedy_answers_are_the_same_twice(
    server: StarchatTestClient, backend: Backend
) -> None:
    configure(server, backend, 20)
    first = await explain(server, "greedy-1")
    second = await explain(server, "greedy-2")
    assert first.text.strip() and first.text == second.text
    assert first.usage.tokens_out == second.usage.tokens_out
