"""Model text to document edits, pure: replace a line range, minimal line edits, unified diffs.

Lines are 0-based here. Nothing in this module knows about LSP: the server turns `LineEdit`s into
versioned TextEdits, the CLI prints `unified_diff` and writes `replace_lines`.
"""

from __future__ import annotations

import difflib
import textwrap
from dataclasses import dataclass


@dataclass(frozen=True)
class LineEdit:
    """Replace lines [start_line, end_line) of the old text with `new_lines` (no line endings)."""

    start_line: int
    end_line: int
    new_lines: tuple[str, ...]


def newline_of(text: str) -> str:
    """The document's own line ending, so an edit never mixes CRLF and LF."""
    return "\r\n" if "\r\n" in text else "\n"


def indent_like(original: str, replacement: str) -> str:
    """Give `replacement` the indentation of `original` when the model dropped or changed it.

    Models answer a method body selected from inside a class at column 0; pasted back as it is,
    it would break the file.
    """
    base = _common_indent(original)
    body = textwrap.dedent(replacement)
    if not base:
        return body
    return "\n".join(base + line if line.strip() else line for line in body.split("\n"))


def _common_indent(text: str) -> str:
    lines = [line for line in text.split("\n") if line.strip()]
    if not lines:
        return ""
    first = lines[0]
    prefix = first[: len(first) - len(first.lstrip())]
    for line in lines[1:]:
        while prefix and not line.startswith(prefix):
            prefix = prefix[:-1]
    return prefix


def replace_lines(text: str, start_line: int, end_line: int, replacement: str) -> str:
    """`text` with lines start_line..end_line (inclusive) replaced by `replacement`."""
    newline = newline_of(text)
    lines = text.splitlines()
    if not 0 <= start_line <= end_line < max(len(lines), 1):
        raise ValueError(f"lines {start_line}-{end_line} are outside a {len(lines)}-line text")
    original = "\n".join(lines[start_line : end_line + 1])
    fixed = indent_like(original, replacement.replace("\r\n", "\n").rstrip("\n")).split("\n")
    new_lines = lines[:start_line] + fixed + lines[end_line + 1 :]
    trailing = newline if text.endswith(("\n", "\r")) else ""
    return newline.join(new_lines) + trailing


def insert_lines(text: str, replace: tuple[int, int], code: str) -> str:
    """`text` with lines replace[0]..replace[1] (inclusive; none when the end is before the
    start) replaced by `code` as it is: no re-indenting."""
    newline = newline_of(text)
    lines = text.splitlines()
    start, end = replace
    if not 0 <= start <= len(lines) or end >= len(lines) or end < start - 1:
        raise ValueError(f"lines {start}-{end} are outside a {len(lines)}-line text")
    new_lines = lines[:start] + code.replace("\r\n", "\n").split("\n") + lines[end + 1 :]
    trailing = newline if text.endswith(("\n", "\r")) else ""
    return newline.join(new_lines) + trailing


def _changed_opcodes(old: str, new: str) -> list[tuple[int, int, int, int]]:
    matcher = difflib.SequenceMatcher(a=old.splitlines(), b=new.splitlines(), autojunk=False)
    return [(i1, i2, j1, j2) for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal"]


def line_edits(old: str, new: str) -> list[LineEdit]:
    """The smallest set of whole-line replacements that turns `old` into `new`."""
    new_lines = new.splitlines()
    return [
        LineEdit(i1, i2, tuple(new_lines[j1:j2])) for i1, i2, j1, j2 in _changed_opcodes(old, new)
    ]


def replaced_lines(old: str, new: str) -> list[int]:
    """0-based lines of `old` that the edit replaces or deletes (where a bug was fixed)."""
    found: set[int] = set()
    for i1, i2, _j1, _j2 in _changed_opcodes(old, new):
        # A pure insertion replaces nothing: point at the line it goes before.
        found.update(range(i1, max(i2, i1 + 1)))
    return sorted(found)


def unified_diff(old: str, new: str, path: str, context: int = 3) -> str:
    """A `git diff`-style patch from `old` to `new`; empty when they are equal."""
    diff = difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        fromfile=f"a/{path}",
        tofile=f"b/{path}",
        n=context,
    )
    lines = [
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in diff
    ]
    return "".join(lines)
