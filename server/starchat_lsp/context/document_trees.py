"""The open documents' syntax trees, one per (uri, version), re-parsed incrementally on edits.

Editors send edits as line/column ranges in the client's units (UTF-16 unless negotiated);
tree-sitter wants UTF-8 byte offsets and (row, byte column) points. `to_index` (the server's
position codec) turns a client column into a code-point index on the text as it was before
each edit; from there everything is converted here, explicitly. If the result ever disagrees
with the editor's text, the document is parsed from scratch: a wrong tree is never kept.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import tree_sitter

from starchat_lsp.context import syntax

# (start line, start column, end line, end column) in client units, or None: the whole text
Span = tuple[int, int, int, int] | None
# A client column on a line of the text before the edit -> its code-point index in that line
ToIndex = Callable[[Sequence[str], int, int], int]


@dataclass(frozen=True)
class _Entry:
    version: int | None
    text: str
    language: str
    tree: tree_sitter.Tree | None


def _point(text: str, index: int) -> tuple[int, int]:
    """tree-sitter's (row, UTF-8 byte column) for a code-point index."""
    line_start = text.rfind("\n", 0, index) + 1
    return text.count("\n", 0, index), len(text[line_start:index].encode("utf-8"))


def _index(lines: Sequence[str], line: int, index_in_line: int) -> int:
    if line >= len(lines):
        return sum(len(item) for item in lines)
    return sum(len(item) for item in lines[:line]) + min(index_in_line, len(lines[line]))


class DocumentTrees:
    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self.incremental_parses = 0

    def open(self, uri: str, text: str, version: int | None, language: str | None) -> None:
        if language is None:
            self.close(uri)
            return
        tree = syntax.parse(text, language)
        self._keep(uri, _Entry(version, text, language, tree))

    def change(
        self,
        uri: str,
        version: int | None,
        changes: Sequence[tuple[Span, str]],
        to_index: ToIndex,
        editor_text: str,
    ) -> None:
        """Apply the edits to the kept tree and re-parse only what they touched."""
        with self._lock:
            entry = self._entries.get(uri)
        if entry is None:
            return
        text = entry.text
        tree = entry.tree.copy() if entry.tree is not None else None
        for span, new in changes:
            if span is None:
                text, tree = new, None  # the whole text was replaced
                continue
            lines = text.splitlines(keepends=True)
            start = _index(lines, span[0], to_index(lines, span[0], span[1]))
            end = _index(lines, span[2], to_index(lines, span[2], span[3]))
            if tree is not None:
                start_byte = len(text[:start].encode("utf-8"))
                tree.edit(
                    start_byte=start_byte,
                    old_end_byte=start_byte + len(text[start:end].encode("utf-8")),
                    new_end_byte=start_byte + len(new.encode("utf-8")),
                    start_point=_point(text, start),
                    old_end_point=_point(text, end),
                    new_end_point=_point(text[:start] + new, start + len(new)),
                )
            text = text[:start] + new + text[end:]
        if text != editor_text:  # out of step with the editor: trust its text, parse afresh
            text, tree = editor_text, None
        elif tree is not None:
            self.incremental_parses += 1
        self._keep(
            uri, _Entry(version, text, entry.language, syntax.parse(text, entry.language, tree))
        )

    def tree(self, uri: str, version: int | None) -> tree_sitter.Tree | None:
        """The tree for this version of the document; None if it is not the one kept."""
        with self._lock:
            entry = self._entries.get(uri)
        return entry.tree if entry is not None and entry.version == version else None

    def close(self, uri: str) -> None:
        with self._lock:
            self._entries.pop(uri, None)

    def _keep(self, uri: str, entry: _Entry) -> None:
        with self._lock:
            self._entries[uri] = entry
        # Requests ask `syntax` about the document's text: they get this tree, not a new parse.
        syntax.adopt(entry.text, entry.language, entry.tree)
