"""The language server as an editor sees it: the real process over stdio, on a tiny model."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import ClientServerConfig, client_capabilities

from lsp_client import StarchatTestClient, eventually, idle, make_client

BUGGY = '''import math


def total(values):
    """Add up the values."""
    result = 0
    for index in range(len(values) - 1):
        result += values[index]
    return result
'''
URI = "file:///work/total.py"
SERVER = [sys.executable, "-m", "starchat_lsp", "serve"]
CONFIG = ClientServerConfig(server_command=SERVER, client_factory=make_client)


async def start(client: StarchatTestClient, options: dict[str, Any]) -> types.InitializeResult:
    params = types.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"), initialization_options=options
    )
    return await client.initialize_session(params)


def tiny_options(model: Path, max_new_tokens: int = 16) -> dict[str, Any]:
    return {
        "model": {"name": str(model), "dtype": "float32"},
        "generation": {"max_new_tokens": max_new_tokens},
    }


def open_buggy(client: StarchatTestClient, text: str = BUGGY, uri: str = URI) -> None:
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id="python", version=1, text=text
            )
        )
    )


def load_ends(client: StarchatTestClient) -> list[types.WorkDoneProgressEnd]:
    """The ends of the model loads' progress, as the client got them."""
    reports = [r for rs in client.progress_reports.values() for r in rs]
    return [r for r in reports if isinstance(r, types.WorkDoneProgressEnd)]


def whole(first: int, last: int) -> dict[str, Any]:
    return {"start": {"line": first, "character": 0}, "end": {"line": last, "character": 0}}


async def request(client: StarchatTestClient, method: str, params: Any, msg_id: str) -> Any:
    return await asyncio.wrap_future(client.protocol.send_request(method, params, msg_id=msg_id))


async def start_streaming(
    client: StarchatTestClient, method: str, token: str, msg_id: str
) -> asyncio.Future[Any]:
    """Send a starchat/* request on the whole function; return once its text is streaming."""
    params = {"textDocument": {"uri": URI}, "range": whole(3, 9), "partialResultToken": token}
    pending = asyncio.ensure_future(request(client, method, params, msg_id))
    while not client.partial_results.get(token):
        await asyncio.sleep(0.01)
    return pending


def cursor(line: int) -> types.Range:
    return types.Range(
        start=types.Position(line=line, character=4), end=types.Position(line=line, character=4)
    )


async def list_actions(
    client: StarchatTestClient,
    line: int = 6,
    *,
    uri: str = URI,
    diagnostics: list[types.Diagnostic] | None = None,
    only: list[str] | None = None,
) -> list[Any] | None:
    """textDocument/codeAction with the cursor on `line`."""
    return await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=cursor(line),
            context=types.CodeActionContext(diagnostics=diagnostics or [], only=only),
        )
    )


@pytest_lsp.fixture(config=CONFIG)
async def client(lsp_client: StarchatTestClient, tiny_chatml_model: Path) -> Any:
    await start(lsp_client, tiny_options(tiny_chatml_model))
    open_buggy(lsp_client)
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=CONFIG)
async def bare(lsp_client: StarchatTestClient) -> Any:
    """A client connected to a server that the test initializes itself."""
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=CONFIG)
async def long_client(lsp_client: StarchatTestClient, tiny_chatml_model: Path) -> Any:
    """Answers run until the model's context is full: long enough to cancel or edit meanwhile."""
    await start(lsp_client, tiny_options(tiny_chatml_model, max_new_tokens=100_000))
    open_buggy(lsp_client)
    yield
    await lsp_client.shutdown_session()


async def test_initialize_is_answered_before_the_model_loads(
    bare: StarchatTestClient, tiny_chatml_model: Path
) -> None:
    started = time.monotonic()
    result = await start(bare, tiny_options(tiny_chatml_model))
    elapsed = time.monotonic() - started
    provider = result.capabilities.code_action_provider
    assert isinstance(provider, types.CodeActionOptions) and provider.resolve_provider
    assert result.capabilities.text_document_sync is not None
    # The load reports begin, progress and end on a token the server created.
    await eventually(lambda: load_ends(bare), "end of the load")
    reports = [r for rs in bare.progress_reports.values() for r in rs]
    kinds = [type(r).__name__ for r in reports]
    assert kinds[0] == "WorkDoneProgressBegin" and kinds[-1] == "WorkDoneProgressEnd", kinds
    assert "WorkDoneProgressReport" in kinds
    assert reports[-1].message.endswith("is ready")
    print(f"initialize answered in {elapsed * 1000:.0f} ms (process start included)")


async def test_listing_offers_actions_on_the_function_under_the_cursor(
    client: StarchatTestClient,
) -> None:
    actions = await list_actions(client)
    assert actions is not None
    titles = [a.title for a in actions if isinstance(a, types.CodeAction)]
    assert titles == [
        "Ask starchat for feedback on this code",
        "Fix this code with starchat",
        "Explain this code with starchat",
    ]
    data = actions[0].data  # type: ignore[union-attr]
    assert (data["start_line"], data["end_line"]) == (3, 8)  # `def total` to `return result`
    assert all(a.edit is None for a in actions if isinstance(a, types.CodeAction))


async def test_a_diagnostic_from_another_tool_gets_its_own_fix(client: StarchatTestClient) -> None:
    diagnostic = types.Diagnostic(
        range=cursor(6), message="loop skips the last value", source="pylint"
    )
    actions = await list_actions(client, diagnostics=[diagnostic], only=["quickfix"])
    assert actions is not None
    assert [a.title for a in actions] == [  # type: ignore[union-attr]
        "Fix this code with starchat",
        "Fix with starchat: loop skips the last value",
    ]
    assert actions[1].data["note"] == "loop skips the last value"  # type: ignore[union-attr]


async def test_unopened_document_gets_no_actions(client: StarchatTestClient) -> None:
    actions = await list_actions(client, 0, uri="file:///nowhere.py")
    assert actions is None


async def test_resolving_explain_runs_the_model_and_shows_the_answer(
    client: StarchatTestClient,
) -> None:
    actions = await list_actions(client, only=["refactor.starchat.explain"])
    assert actions is not None and len(actions) == 1
    resolved = await client.code_action_resolve_async(actions[0])  # type: ignore[arg-type]
    assert resolved.title == "Explain this code with starchat"
    assert resolved.edit is None
    assert any(m.type == types.MessageType.Info and m.message for m in client.messages)


async def test_explain_request_streams_partial_results(client: StarchatTestClient) -> None:
    params = {"textDocument": {"uri": URI}, "range": whole(3, 9), "partialResultToken": "t1"}
    result = await request(client, "starchat/explain", params, "explain-1")
    partial = "".join(p["text"] for p in client.partial_results["t1"])
    assert len(client.partial_results["t1"]) > 1
    assert partial == result.text
    assert result.usage.tokens_out == 16
    assert result.range.start.line == 3 and result.range.end.line == 9


async def test_cancel_stops_the_model_and_frees_it(long_client: StarchatTestClient) -> None:
    client = long_client
    pending = await start_streaming(client, "starchat/explain", "c1", "long-1")
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="long-1"))
    with pytest.raises(JsonRpcException) as caught:
        await pending
    assert caught.value.code == -32800  # RequestCancelled
    # The model is free: a chat request gets a full answer right after, and nothing is left
    # running. What must happen, not how fast: bench/cancellation.py times it.
    chunks_before = len(client.partial_results["c1"])
    answer = await request(
        client, "starchat/chat", {"messages": [{"role": "user", "content": "hi"}]}, "chat-1"
    )
    assert answer.usage.stop_reason == "length"
    await idle(client)
    await asyncio.sleep(0.2)
    assert len(client.partial_results["c1"]) == chunks_before  # nothing follows the reply


async def test_document_changed_while_fixing_gives_content_modified(
    long_client: StarchatTestClient,
) -> None:
    client = long_client
    pending = await start_streaming(client, "starchat/fix", "f1", "fix-1")
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=URI, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(
                        start=types.Position(line=0, character=0),
                        end=types.Position(line=0, character=0),
                    ),
                    text="# edited\n",
                )
            ],
        )
    )
    with pytest.raises(JsonRpcException) as caught:
        await pending
    assert caught.value.code == -32801  # ContentModified: never a stale edit


async def test_code_actions_are_answered_while_the_model_runs(
    long_client: StarchatTestClient,
) -> None:
    client = long_client
    pending = await start_streaming(client, "starchat/explain", "r1", "busy-1")
    latencies = []
    for _ in range(20):
        started = time.monotonic()
        actions = await list_actions(client)
        latencies.append(time.monotonic() - started)
        assert actions is not None and len(actions) == 3
    assert not pending.done(), "the listing must not wait for the generation"
    latencies.sort()
    print(
        f"code action listing during a generation: p50 {latencies[10] * 1000:.1f} ms, "
        f"max {latencies[-1] * 1000:.1f} ms"
    )
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="busy-1"))
    with pytest.raises(JsonRpcException):
        await pending


async def test_bad_custom_params_are_invalid_params(client: StarchatTestClient) -> None:
    with pytest.raises(JsonRpcException) as caught:
        await request(client, "starchat/fix", {"textDocument": {"uri": URI}, "range": None}, "b1")
    assert caught.value.code == -32602
    with pytest.raises(JsonRpcException) as caught:
        await request(
            client,
            "starchat/explain",
            {"textDocument": {"uri": "file:///nope.py"}, "range": whole(0, 1)},
            "b2",
        )
    assert caught.value.code == -32602 and "didOpen" in str(caught.value)
    with pytest.raises(JsonRpcException) as caught:
        await request(client, "starchat/chat", {"messages": []}, "b3")
    assert "user message" in str(caught.value)


async def test_bad_settings_are_reported_and_replaced(
    bare: StarchatTestClient, tiny_chatml_model: Path
) -> None:
    options = tiny_options(tiny_chatml_model)
    options["generation"]["max_new_tokens"] = "lots"
    options["generation"]["temperature"] = -1
    options["colour"] = "blue"
    await start(bare, options)
    open_buggy(bare)
    params = {"textDocument": {"uri": URI}, "range": whole(3, 9)}
    result = await request(bare, "starchat/explain", params, "s1")
    shown = [m.message for m in bare.messages]
    assert any("max_new_tokens" in m and "default 512" in m for m in shown), shown
    assert any("temperature" in m for m in shown)
    assert any("colour" in m for m in shown)
    assert result.usage.tokens_out > 16  # the default (512, clamped by the context) was used


async def test_a_model_that_fails_to_load_says_why(
    bare: StarchatTestClient, tiny_chatml_model: Path
) -> None:
    await start(bare, {"model": {"name": "no-such-model"}})
    open_buggy(bare)
    params = {"textDocument": {"uri": URI}, "range": whole(3, 9)}
    with pytest.raises(JsonRpcException) as caught:
        await request(bare, "starchat/explain", params, "m1")
    assert caught.value.code == -32803 and "unknown model" in str(caught.value)
    await eventually(lambda: load_ends(bare), "end of the load")  # may follow the error
    assert "failed to load" in (load_ends(bare)[-1].message or "")
    # Still alive: listing works and a new setting loads a good model.
    actions = await list_actions(bare)
    assert actions is not None
    bare.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings=tiny_options(tiny_chatml_model))
    )
    result = await request(bare, "starchat/explain", params, "m2")
    assert result.usage.tokens_out == 16


async def test_chat_about_a_document_streams_even_with_a_huge_answer_limit(
    long_client: StarchatTestClient,
) -> None:
    client = long_client
    params = {
        "messages": [{"role": "user", "content": "What does this do?"}],
        "textDocument": {"uri": URI},
        "range": whole(3, 9),
        "partialResultToken": "doc-chat",
    }
    pending = asyncio.ensure_future(request(client, "starchat/chat", params, "doc-chat-1"))
    while not client.partial_results.get("doc-chat"):
        if pending.done():
            pending.result()  # an error instead of text: raise it
        await asyncio.sleep(0.01)
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="doc-chat-1"))
    with pytest.raises(JsonRpcException) as caught:
        await pending
    assert caught.value.code == -32800
