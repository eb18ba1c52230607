"""1,000 random incremental edits through the server's didChange handling: after each one the
server's text equals the editor's, and its tree-sitter tree equals a fresh parse.

The server runs in this process (its protocol fed decoded messages, replies to a buffer) so the
test can read its copy of the document after every edit; the messages take the same path as
over stdio from `handle_message` on. Positions are UTF-16, as editors send them, with emoji,
accents, Windows line ends (CRLF) and several changes in one notification.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from starchat_lsp.context import syntax
from starchat_lsp.server import StarchatServer, create_server
from test_document_trees import client_position, shape

EDITS = int(os.environ.get("STARCHAT_SYNC_EDITS", "1000"))
EDITS_PER_EXAMPLE = 20
URI = "file:///sync/edited.py"
# Windows line ends too: "\r\n" is one line break; an edit never starts or ends inside one
# (an editor's positions are on characters, and a CRLF is one end of line to it).
PIECES = ["def f(x):\n", "    return x\n", "é", "😀", "\n", "(", ")", " ", "'", "# ", "x"]
PIECES += ["def g(y):\r\n", "\r\n"]
edits_done = 0


class Discard:
    def write(self, data: Any) -> None:
        pass

    def close(self) -> None:
        pass


def started_server() -> StarchatServer:
    server = create_server()
    server.protocol.set_writer(Discard())  # type: ignore[arg-type]
    send(server, "initialize", {"processId": None, "rootUri": None, "capabilities": {}}, 1)
    return server


def send(server: StarchatServer, method: str, params: Any, msg_id: int | None = None) -> None:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params}
    if msg_id is not None:
        message["id"] = msg_id
    server.protocol.handle_message(message)


@st.composite
def one_change(draw: st.DrawFn, text: str) -> tuple[int, int, str]:
    """A replacement of text[start:end] (code points) by a few pieces."""
    start = _outside_crlf(text, draw(st.integers(0, len(text))))
    end = _outside_crlf(text, draw(st.integers(start, min(len(text), start + 40))))
    return start, end, "".join(draw(st.lists(st.sampled_from(PIECES), max_size=4)))


def _outside_crlf(text: str, index: int) -> int:
    return index + 1 if 0 < index < len(text) and text[index - 1 : index + 1] == "\r\n" else index


@settings(
    max_examples=max(1, EDITS // EDITS_PER_EXAMPLE),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(st.sampled_from(PIECES), max_size=30), st.data())
def test_random_edits_keep_the_server_in_step(pieces: list[str], data: st.DataObject) -> None:
    global edits_done
    server = started_server()
    text = "".join(pieces)
    item = {"uri": URI, "languageId": "python", "version": 1, "text": text}
    send(server, "textDocument/didOpen", {"textDocument": item})
    for version in range(2, EDITS_PER_EXAMPLE + 2):
        changes = []
        for _ in range(data.draw(st.integers(1, 3))):  # applied in order, each on the last
            start, end, new = data.draw(one_change(text))
            span = (*client_position(text, start), *client_position(text, end))
            changes.append(
                {
                    "range": {
                        "start": {"line": span[0], "character": span[1]},
                        "end": {"line": span[2], "character": span[3]},
                    },
                    "text": new,
                }
            )
            text = text[:start] + new + text[end:]
        document = {"uri": URI, "version": version}
        send(
            server, "textDocument/didChange", {"textDocument": document, "contentChanges": changes}
        )
        edits_done += 1
        assert server.workspace.get_text_document(URI).source == text
        tree, fresh = server.trees.tree(URI, version), syntax.parse(text, "python")
        assert tree is not None and fresh is not None
        assert shape(tree) == shape(fresh)
    assert server.trees.incremental_parses >= 1  # in step by reparsing in part, not afresh


def test_the_edits_were_all_made() -> None:
    """Runs after the one above (file order): the figure in docs/reliability.md is real."""
    assert edits_done >= EDITS, edits_done
