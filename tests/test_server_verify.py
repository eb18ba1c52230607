"""Verified feedback and fixes through the real server process over stdio, on the tiny model."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from lsp_client import StarchatTestClient, eventually, idle
from test_server import CONFIG, URI, open_buggy, request, start, tiny_options, whole

NOTE = "total([1, 2, 3]) gives 3 instead of 6"


def feedback_params(token: str) -> dict[str, Any]:
    return {
        "textDocument": {"uri": URI},
        "range": whole(3, 9),
        "note": NOTE,
        "partialResultToken": token,
    }


def samples(client: StarchatTestClient) -> int:
    """How many fixes verification has sampled so far."""
    return sum(1 for s in client.stages if s["stage"] == "sampling")


async def fix_until_sampling(
    client: StarchatTestClient, token: str, msg_id: str
) -> asyncio.Future[Any]:
    """Send a starchat/fix; return once its draft is done and fixes are being sampled."""
    pending = asyncio.ensure_future(request(client, "starchat/fix", feedback_params(token), msg_id))
    await eventually(lambda: samples(client), "fix sampled")
    return pending


@pytest_lsp.fixture(config=CONFIG)
async def client(lsp_client: StarchatTestClient, tiny_chatml_model: Path) -> Any:
    options = tiny_options(tiny_chatml_model)
    options["verify"] = {"candidates": 3, "time_budget_s": 60}
    await start(lsp_client, options)
    open_buggy(lsp_client)
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=CONFIG)
async def plain(lsp_client: StarchatTestClient, tiny_chatml_model: Path) -> Any:
    options = tiny_options(tiny_chatml_model)
    options["verify"] = {"enabled": False}
    await start(lsp_client, options)
    open_buggy(lsp_client)
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=CONFIG)
async def long_client(lsp_client: StarchatTestClient, tiny_chatml_model: Path) -> Any:
    options = tiny_options(tiny_chatml_model, max_new_tokens=64)
    options["verify"] = {"candidates": 1000, "time_budget_s": 600}
    await start(lsp_client, options)
    open_buggy(lsp_client)
    yield
    await lsp_client.shutdown_session()


async def test_feedback_streams_the_draft_then_reports_the_checks(
    client: StarchatTestClient,
) -> None:
    result = await request(client, "starchat/feedback", feedback_params("v1"), "verify-1")
    draft = "".join(p["text"] for p in client.partial_results["v1"])
    verification = result.verification
    assert verification is not None
    assert verification.draft == draft  # what streamed is the draft
    assert [e._asdict() for e in verification.evidence] == [
        {"code": "assert total([1, 2, 3]) == 6", "source": "your message"}
    ]
    assert 1 <= verification.candidates <= 6  # up to 3, and as many again on a second look
    assert verification.verdict and verification.seconds > 0
    stages = [s for s in client.stages if s["token"] == "v1"]
    names = [s["stage"] for s in stages]
    assert names[0] == "evidence" and "checking" in names and "done" in names
    assert stages[names.index("done")]["message"] == verification.verdict
    assert all(s["uri"] == URI for s in stages)
    if not verification.verified:  # the tiny model's fixes fail the example: no edit offered
        assert result.fix is None or result.fix.edit is None
    if verification.chosen is None:  # nothing to offer after the first answers: a second look
        assert names.index("second-look") < names.index("done")


async def test_verification_can_be_turned_off(plain: StarchatTestClient) -> None:
    result = await request(plain, "starchat/feedback", feedback_params("p1"), "plain-1")
    assert result.verification is None
    assert result.text == "".join(p["text"] for p in plain.partial_results["p1"])
    await asyncio.sleep(0.1)
    assert plain.stages == []


async def test_cancel_during_verification_stops_it_and_frees_the_model(
    long_client: StarchatTestClient,
) -> None:
    client = long_client
    pending = await fix_until_sampling(client, "c1", "verify-long")
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="verify-long"))
    with pytest.raises(JsonRpcException) as caught:
        await pending
    assert caught.value.code == -32800  # RequestCancelled
    await idle(client)  # the pipeline stops within a token or one sandbox run
    answer = await request(
        client, "starchat/chat", {"messages": [{"role": "user", "content": "hi"}]}, "chat-1"
    )
    assert answer.usage.stop_reason == "length"
    assert samples(client) < 1000  # it stopped, not at the end of its 1000 samples


async def test_an_edit_during_verification_stops_it_and_gives_content_modified(
    long_client: StarchatTestClient,
) -> None:
    client = long_client
    pending = await fix_until_sampling(client, "e1", "verify-edit")
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=URI, version=2),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text="# edited\n")],
        )
    )
    with pytest.raises(JsonRpcException) as caught:
        await pending
    assert caught.value.code == -32801  # ContentModified
    await idle(client)
    assert samples(client) < 1000  # not 1000 samples for text that is gone
