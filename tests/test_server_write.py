"""The "write code for this instruction" action through the real server, on a scripted model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from lsp_client import StarchatTestClient
from starchat_lsp.context import syntax
from test_server import CONFIG, request, start
from tiny_model import build_scripted_model

SOURCE = """import math

# return the largest even number in xs

def mean(xs):
    return sum(xs) / len(xs)
"""
URI = "file:///work/evens.py"
CODE = "def largest_even(xs):\n    return max(x for x in xs if x % 2 == 0)\n"
ANSWER = f"Here it is:\n\n```python\n{CODE}```\n"


@pytest.fixture(scope="module")
def scripted_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_scripted_model(tmp_path_factory.mktemp("scripted-write"), ANSWER)


@pytest_lsp.fixture(config=CONFIG)
async def client(lsp_client: StarchatTestClient, scripted_model: Path) -> Any:
    await start(lsp_client, {"model": {"name": str(scripted_model), "dtype": "float32"}})
    lsp_client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=URI, language_id="python", version=1, text=SOURCE
            )
        )
    )
    yield
    await lsp_client.shutdown_session()


def at_line(line: int) -> types.Range:
    return types.Range(
        start=types.Position(line=line, character=3), end=types.Position(line=line, character=3)
    )


def apply(text: str, edits: list[types.TextEdit]) -> str:
    """Apply LSP edits (ASCII text: columns are characters) from the last to the first."""
    lines = text.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    for edit in sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character))[::-1]:
        start = offsets[edit.range.start.line] + edit.range.start.character
        end = offsets[edit.range.end.line] + edit.range.end.character
        text = text[:start] + edit.new_text + text[end:]
    return text


async def actions_at(client: StarchatTestClient, line: int) -> list[types.CodeAction]:
    actions = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=URI),
            range=at_line(line),
            context=types.CodeActionContext(diagnostics=[]),
        )
    )
    assert actions is not None
    return [a for a in actions if isinstance(a, types.CodeAction)]


async def test_a_comment_that_asks_for_code_gets_the_code_below_it(
    client: StarchatTestClient,
) -> None:
    actions = await actions_at(client, 2)
    write = actions[0]
    assert write.title == "Write code for this instruction with starchat"
    assert write.kind == "refactor.starchat.write" and write.edit is None
    resolved = await client.code_action_resolve_async(write)
    assert resolved.edit is not None and resolved.edit.document_changes
    change = resolved.edit.document_changes[0]
    assert isinstance(change, types.TextDocumentEdit) and change.text_document.version == 1
    edited = apply(SOURCE, list(change.edits))  # type: ignore[arg-type]
    assert edited == SOURCE.replace("in xs\n", f"in xs\n{CODE}"), edited
    assert not syntax.has_errors(edited, "python")


async def test_code_lines_get_no_write_action(client: StarchatTestClient) -> None:
    titles = [a.title for a in await actions_at(client, 5)]
    assert "Write code for this instruction with starchat" not in titles
    assert "Fix this code with starchat" in titles


async def test_the_write_request_streams_and_returns_the_edit(client: StarchatTestClient) -> None:
    params = {
        "textDocument": {"uri": URI},
        "range": {"start": {"line": 2, "character": 0}, "end": {"line": 2, "character": 0}},
        "partialResultToken": "w1",
    }
    result = await request(client, "starchat/write", params, "write-1")
    assert result.text == ANSWER and result.complete
    assert "".join(p["text"] for p in client.partial_results["w1"]) == ANSWER
    assert result.fix.parses and result.fix.edit is not None
    assert result.fix.code == CODE.rstrip("\n")
    # Asked on a line with no instruction: a clear error, nothing edited.
    params["range"] = {"start": {"line": 5, "character": 0}, "end": {"line": 5, "character": 0}}
    with pytest.raises(JsonRpcException) as caught:
        await request(client, "starchat/write", params, "write-2")
    assert caught.value.code == -32602 and "instruction" in str(caught.value)
