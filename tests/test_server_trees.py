"""The server parses a document once per version, incrementally after an edit, in UTF-16 terms."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest_lsp
from lsprotocol import types

from lsp_client import StarchatTestClient
from test_server import CONFIG, request, start

URI = "file:///work/emoji.py"
TEXT = 'greeting = "héllo 😀"\n\n\ndef shout(text):\n    return text.upper()\n'


@pytest_lsp.fixture(config=CONFIG)
async def client(lsp_client: StarchatTestClient, tiny_chatml_model: Path) -> Any:
    await start(lsp_client, {"model": {"name": str(tiny_chatml_model), "dtype": "float32"}})
    lsp_client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=URI, language_id="python", version=1, text=TEXT
            )
        )
    )
    yield
    await lsp_client.shutdown_session()


async def action_lines(client: StarchatTestClient, line: int) -> tuple[int, int]:
    actions = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=URI),
            range=types.Range(
                start=types.Position(line=line, character=0),
                end=types.Position(line=line, character=0),
            ),
            context=types.CodeActionContext(diagnostics=[]),
        )
    )
    assert actions and isinstance(actions[0], types.CodeAction)
    data = actions[0].data
    return data["start_line"], data["end_line"]


async def parses(client: StarchatTestClient, msg_id: str) -> Any:
    return (await request(client, "starchat/status", {}, msg_id)).syntax


async def test_one_parse_per_version_and_incremental_after_an_edit(
    client: StarchatTestClient,
) -> None:
    assert await action_lines(client, 4) == (3, 4)  # `def shout` to its return
    first = await parses(client, "p1")
    assert await action_lines(client, 4) == (3, 4)
    assert (await parses(client, "p2")).full_parses == first.full_parses  # cached per version
    # Type after the emoji on line 0 (UTF-16 column 19 is just past "😀", 2 units), then
    # add a line above the function: the tree follows without a full parse.
    end_of_string = types.Position(
        line=0, character=len('greeting = "héllo 😀'.encode("utf-16-le")) // 2
    )
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=URI, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(start=end_of_string, end=end_of_string), text=" 🎉"
                ),
                types.TextDocumentContentChangePartial(
                    range=types.Range(
                        start=types.Position(line=2, character=0),
                        end=types.Position(line=2, character=0),
                    ),
                    text="# shouting\n",
                ),
            ],
        )
    )
    assert await action_lines(client, 5) == (4, 5)  # the function moved down one line
    after = await parses(client, "p3")
    assert after.incremental_parses == first.incremental_parses + 1
    assert after.full_parses == first.full_parses
