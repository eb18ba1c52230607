"""Instructions in the code: a comment or docstring that asks for code, and where that code goes.

`instruction_at` finds one under a cursor or selection (cheap: listing code actions calls it);
`code_to_insert` turns the model's code block into the lines to put below the instruction.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass

from starchat_lsp.context import syntax

# Comments that are tool directives or legal text, not requests for code.
_DIRECTIVES = re.compile(
    r"^(?:type:|noqa|pylint:|fmt:|isort:|mypy:|pragma|-\*-|!|eslint|prettier|@ts-|tslint|"
    r"spdx|copyright|license|nolint|#include|region|endregion)",
    re.IGNORECASE,
)
_WORD = re.compile(r"[^\W\d_]{2,}")
_REACH = 30
_BODY_PLACEHOLDERS = {"pass", "...", "pass  # TODO", "raise NotImplementedError", "todo!()"}


@dataclass(frozen=True)
class Instruction:
    """What to write and where: 0-based lines; the new code replaces lines `replace` (inclusive,
    possibly empty: (n, n - 1)) that follow the instruction, with `indent` in front of each."""

    text: str
    start_line: int
    end_line: int
    replace: tuple[int, int]
    indent: str
    docstring: bool


def asks_for_code(text: str) -> bool:
    """A sentence of a few words that is not a directive, a license or commented-out code."""
    words = _WORD.findall(text)
    if len(words) < 3 or _DIRECTIVES.match(text.strip()):
        return False
    symbols = sum(text.count(c) for c in "=();{}[]")
    return symbols <= len(words)  # `x = f(a); g(b)` is code, "sort (stably) the names" is not


def _indent_of(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def instruction_at(
    text: str, language: str | None, start_line: int, end_line: int
) -> Instruction | None:
    """The instruction the lines touch, else the docstring of an empty function around them."""
    if not language:
        return None
    lines = text.split("\n")
    # Neighbouring lines too: a run of line comments may start above the cursor.
    found = syntax.comments(text, language, (max(start_line - _REACH, 0), end_line + _REACH))
    touching = [c for c in found if c.start_line <= end_line and start_line <= c.end_line]
    for comment in touching:
        if comment.docstring or not asks_for_code(comment.text):
            continue
        # A comment after code on its line (`x = 1  # make it faster`) is about that line.
        first = lines[comment.start_line]
        if first.lstrip()[:1] not in {"#", "/", "-", "<", "*"}:
            continue
        after = comment.end_line + 1
        return Instruction(
            comment.text,
            comment.start_line,
            comment.end_line,
            (after, after - 1),
            _indent_of(first),
            False,
        )
    if not syntax.body_is_only_docstring(text, language, start_line):
        return None
    span = syntax.enclosing_definition(text, language, start_line)
    assert span is not None  # body_is_only_docstring found it
    doc = next(c for c in found if c.docstring and span.start_line <= c.start_line <= span.end_line)
    after = doc.end_line + 1
    placeholder_end = after - 1
    for index in range(after, span.end_line + 1):
        if lines[index].strip() and lines[index].strip() not in _BODY_PLACEHOLDERS:
            break
        placeholder_end = index
    return Instruction(
        doc.text,
        doc.start_line,
        doc.end_line,
        (after, placeholder_end),
        _indent_of(lines[doc.start_line]),
        True,
    )


def code_to_insert(code: str, instruction: Instruction, text: str) -> str:
    """The model's code without what repeats the lines above it, indented like the instruction."""
    head_lines = text.split("\n")[: instruction.end_line + 1]
    seen = {line.strip() for line in head_lines[-40:] if line.strip()}
    lines = code.replace("\r\n", "\n").strip("\n").split("\n")
    in_docstring = False
    while lines:
        stripped = lines[0].strip()
        quotes = stripped.count('"""') + stripped.count("'''")
        if in_docstring or stripped in seen or (instruction.docstring and quotes):
            in_docstring = in_docstring != (quotes % 2 == 1)  # a docstring's lines, restated
            lines.pop(0)
            continue
        break
    body = textwrap.dedent("\n".join(lines)).strip("\n")
    if not body.strip():
        return ""
    return "\n".join(instruction.indent + line if line.strip() else "" for line in body.split("\n"))
