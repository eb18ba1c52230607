"""A completion is never stuck behind a chat answer (issue 16, item 4), through the real server
process, its shared model host and worker, on the real smollm2-135m with llama.cpp: a completion
asked while a long answer streams comes back before that answer ends, and the answer is the same,
token for token, as alone. Orders of events are asserted, never durations.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import pytest_lsp

from lsp_client import StarchatTestClient
from starchat_lsp.models.catalogue import SMALL_MODEL
from test_server import CONFIG, request, start
from test_server_completion import end_of, inline, open_document

pytestmark = pytest.mark.default_model

NOTES = "file:///work/notes.txt"
TEXT = "shopping list\n- apples\n- "
QUESTION = [{"role": "user", "content": "Explain in detail how a hash map works, with an example."}]
ANSWER_TOKENS = 120


@pytest_lsp.fixture(config=CONFIG)
async def server(lsp_client: StarchatTestClient) -> Any:
    await start(
        lsp_client,
        {
            "model": {"name": SMALL_MODEL, "backend": "llamacpp"},
            "generation": {"max_new_tokens": ANSWER_TOKENS},
            "completion": {"debounce_ms": 0, "max_new_tokens": 8},
        },
    )
    yield
    await lsp_client.shutdown_session()


async def ask(client: StarchatTestClient, msg_id: str, token: str | None = None) -> Any:
    params: dict[str, Any] = {"messages": QUESTION}
    if token is not None:
        params["partialResultToken"] = token
    return await request(client, "starchat/chat", params, msg_id)


async def test_a_completion_is_served_while_a_long_answer_streams(
    server: StarchatTestClient,
) -> None:
    client = server
    open_document(client, NOTES, TEXT)
    suggestion_alone = await inline(client, NOTES, end_of(TEXT))
    # Twice alone: the second run starts from the KV cache the run under test starts from.
    await ask(client, "alone-1")
    alone = await ask(client, "alone-2")
    assert alone.usage.tokens_out == ANSWER_TOKENS, "the answer must be long enough to interrupt"

    answer = asyncio.ensure_future(ask(client, "during", token="during"))
    while not client.partial_results.get("during"):
        await asyncio.sleep(0.01)
    suggestion = await inline(client, NOTES, end_of(TEXT))
    assert not answer.done(), "the completion came back before the answer's end"
    assert suggestion == suggestion_alone
    during = await answer
    assert during.text == alone.text
    assert during.usage.tokens_out == ANSWER_TOKENS
