"""Open, change, close: keep each document's syntax tree and feedback diagnostics in step.

pygls has already applied the change to its copy of the document when these run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from lsprotocol import types

from starchat_lsp.context.document_trees import Span
from starchat_lsp.features import feedback_diagnostics
from starchat_lsp.features.assist_jobs import language_of

if TYPE_CHECKING:
    from starchat_lsp.server import StarchatServer


def _spans(changes: Sequence[types.TextDocumentContentChangeEvent]) -> list[tuple[Span, str]]:
    spans: list[tuple[Span, str]] = []
    for change in changes:
        if isinstance(change, types.TextDocumentContentChangePartial):
            start, end = change.range.start, change.range.end
            spans.append(((start.line, start.character, end.line, end.character), change.text))
        else:
            spans.append((None, change.text))
    return spans


def register(server: StarchatServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def opened(ls: StarchatServer, params: types.DidOpenTextDocumentParams) -> None:
        document = ls.workspace.get_text_document(params.text_document.uri)
        ls.trees.open(document.uri, document.source, document.version, language_of(document))

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def changed(ls: StarchatServer, params: types.DidChangeTextDocumentParams) -> None:
        document = ls.workspace.get_text_document(params.text_document.uri)
        codec = ls.workspace.position_codec

        def to_index(lines: Sequence[str], line: int, column: int) -> int:
            position = types.Position(line=line, character=column)
            return codec.position_from_client_units(lines, position).character

        ls.trees.change(
            document.uri,
            document.version,
            _spans(params.content_changes),
            to_index,
            document.source,
        )
        feedback_diagnostics.on_change(ls, params)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def closed(ls: StarchatServer, params: types.DidCloseTextDocumentParams) -> None:
        ls.trees.close(params.text_document.uri)
        feedback_diagnostics.on_close(ls, params.text_document.uri)
