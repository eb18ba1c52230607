"""Trees kept per document and re-parsed incrementally match a fresh parse, non-ASCII included."""

from __future__ import annotations

from collections.abc import Sequence

import tree_sitter
from hypothesis import given, settings
from hypothesis import strategies as st
from lsprotocol import types
from pygls.workspace.position_codec import PositionCodec

from starchat_lsp.context import syntax
from starchat_lsp.context.document_trees import DocumentTrees

UTF16 = PositionCodec(encoding=types.PositionEncodingKind.Utf16)
PIECES = ["def f(x):\n", "    return x\n", "é", "😀", "\n", "(", ")", " ", "s = '", "'", "# ", "x"]


def to_index(lines: Sequence[str], line: int, column: int) -> int:
    return UTF16.position_from_client_units(
        lines, types.Position(line=line, character=column)
    ).character


def shape(tree: tree_sitter.Tree) -> list[tuple[object, ...]]:
    """Every node with its type, bytes and points: trees equal in this are the same."""
    found, pending = [], [tree.root_node]
    while pending:
        node = pending.pop()
        found.append((node.type, node.start_byte, node.end_byte, node.start_point, node.end_point))
        pending.extend(node.children)
    return found


def client_position(text: str, index: int) -> tuple[int, int]:
    """What an editor sends for a code-point index: line and UTF-16 column."""
    line_start = text.rfind("\n", 0, index) + 1
    return text.count("\n", 0, index), len(text[line_start:index].encode("utf-16-le")) // 2


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=30), st.data())
def test_incremental_trees_equal_fresh_parses(pieces: list[str], data: st.DataObject) -> None:
    text = "".join(pieces)
    trees = DocumentTrees()
    trees.open("file:///t.py", text, 1, "python")
    version = 1
    for _ in range(data.draw(st.integers(1, 5))):
        start = data.draw(st.integers(0, len(text)))
        end = data.draw(st.integers(start, len(text)))
        new = "".join(data.draw(st.lists(st.sampled_from(PIECES), max_size=4)))
        span = (*client_position(text, start), *client_position(text, end))
        text = text[:start] + new + text[end:]
        version += 1
        before = trees.incremental_parses
        trees.change("file:///t.py", version, [(span, new)], to_index, text)
        tree = trees.tree("file:///t.py", version)
        fresh = syntax.parse(text, "python")
        assert tree is not None and fresh is not None
        assert shape(tree) == shape(fresh)
        assert trees.incremental_parses == before + 1  # reused, not parsed from scratch


def test_several_changes_in_one_notification_apply_in_order() -> None:
    text = "a = 'é😀'\nb = 2\n"
    trees = DocumentTrees()
    trees.open("u", text, 1, "python")
    # Insert after the emoji (UTF-16 column 8), then delete line 1's "2".
    changes = [((0, 8, 0, 8), "x"), ((1, 4, 1, 5), "(3)")]
    trees.change("u", 2, changes, to_index, "a = 'é😀x'\nb = (3)\n")
    tree = trees.tree("u", 2)
    assert tree is not None and not tree.root_node.has_error
    assert trees.incremental_parses == 1
    assert trees.tree("u", 1) is None  # only the current version is kept


def test_text_out_of_step_with_the_editor_is_parsed_afresh() -> None:
    trees = DocumentTrees()
    trees.open("u", "x = 1\n", 1, "python")
    trees.change("u", 2, [((0, 4, 0, 5), "2")], to_index, "x = 3\n")  # the editor says 3
    tree = trees.tree("u", 2)
    assert tree is not None and trees.incremental_parses == 0
    assert tree.root_node.text == b"x = 3\n"


def test_documents_without_a_grammar_keep_no_tree() -> None:
    trees = DocumentTrees()
    trees.open("u", "notes", 1, None)
    trees.change("u", 2, [((0, 0, 0, 0), "more ")], to_index, "more notes")
    assert trees.tree("u", 2) is None
