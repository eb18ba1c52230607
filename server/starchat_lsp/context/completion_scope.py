"""Whether to complete at a cursor, and how much: nothing, the rest of a line, or a block.

Decided before any model runs (as llm-ls does), from the text around the cursor and the syntax
node it sits in. Offsets are Python string indices; `syntax` turns them into UTF-8 bytes.
"""

from __future__ import annotations

from enum import Enum

from starchat_lsp.context import syntax

# What may follow the cursor on its line for a completion to still make sense: closers.
_CLOSERS = set(")]}>\"'`;:,. \t")
_BLOCK_OPENERS = ("{", ":", "(", "[", "=>", "->")


class Scope(str, Enum):
    NONE = "none"  # don't complete: the cursor is in a word, a comment, or mid-code
    LINE = "line"  # the rest of the current line
    BLOCK = "block"  # one or more lines: a statement, a body


def _is_word(char: str) -> bool:
    return char.isalnum() or char == "_"


def line_around(text: str, offset: int) -> tuple[str, str]:
    """The text before and after the offset on its line."""
    start = text.rfind("\n", 0, offset) + 1
    end = text.find("\n", offset)
    return text[start:offset], text[offset : len(text) if end < 0 else end]


def completion_scope(text: str, offset: int, language: str | None) -> Scope:
    before, after = line_around(text, offset)
    if after[:1] and _is_word(after[0]):
        return Scope.NONE  # inside or before a word: the user is editing it
    if any(char not in _CLOSERS for char in after):
        return Scope.NONE  # code follows the cursor on this line
    types = syntax.node_types_at(text, language, offset) if language else []
    if any("comment" in kind for kind in types):
        return Scope.NONE  # prose: the "write code" action serves instructions in comments
    if any(kind in {"string_content", "string_fragment"} for kind in types[:2]):
        return Scope.LINE  # the rest of the string
    if before[-1:] and _is_word(before[-1]) and after.strip():
        return Scope.NONE  # mid-expression edit such as `foo|)`: too easy to get wrong
    if after.strip():
        # closers after the cursor, as in `print(|)`: an empty pair becomes a block when it is a
        # body (`{|}`), else the line is finished before them
        empty_body = after.strip()[0] == "}" and before.rstrip().endswith("{")
        return Scope.BLOCK if empty_body else Scope.LINE
    if not before.strip():
        return Scope.BLOCK  # an empty line: a statement or a body goes here
    if before.rstrip().endswith(_BLOCK_OPENERS):
        return Scope.BLOCK  # `def f(x):|`, `if (a) {|`: the body comes next
    return Scope.LINE
