"""Read a model's answer: its code blocks, which block is the fix, which lines it points at.

Line numbers in answers are read as the prompts write them: the document's, 1-based.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass

from starchat_lsp.context import languages, syntax

_OPENING = re.compile(r"(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)")
_CLOSING = re.compile(r"[ \t]*(?P<fence>`{3,}|~{3,})[ \t]*")
# "12 | code" or "12: code", as the feedback prompt numbers lines (see prompts.number_lines).
_NUMBERED = re.compile(r"[ \t]*(?P<number>\d+) ?[|:](?: |$)")
_DEFINED = re.compile(r"\b(?:def|class|function|fn|func|struct|interface)\s+([A-Za-z_]\w*)")
_RANGE = "[-\u2013\u2014]|to|through"  # "3-5", "3 to 5", en and em dashes
_LINE_REFERENCE = re.compile(
    rf"\blines?\s+(\d+(?:\s*(?:,\s*and|,\s*or|{_RANGE}|and|or|,|&)\s*\d+)*)", re.IGNORECASE
)
_INLINE_CODE = re.compile(r"`([^`\n]+)`")


@dataclass(frozen=True)
class CodeBlock:
    """A fenced block: its code, its tag, and where the block (fences included) sits in the answer.

    `end` is the offset just past the closing fence, or the answer's length when it is unclosed.
    """

    code: str
    language: str | None
    start: int
    end: int


def code_blocks(answer: str) -> list[CodeBlock]:
    """The ``` and ~~~ blocks of an answer; an unclosed last one (a cut answer) runs to the end."""
    blocks: list[CodeBlock] = []
    opening: re.Match[str] | None = None
    body: list[str] = []
    block_start = offset = 0
    for raw in answer.split("\n"):
        line, line_start = raw.removesuffix("\r"), offset
        offset += len(raw) + 1
        if opening is None:
            match = _OPENING.fullmatch(line)
            # "```x```" on one line is inline code, not a fence
            if match and not (match["fence"][0] == "`" and "`" in match["info"]):
                opening, block_start, body = match, line_start, []
            continue
        closing = _CLOSING.fullmatch(line)
        fence = opening["fence"]
        if closing and closing["fence"][0] == fence[0] and len(closing["fence"]) >= len(fence):
            end = line_start + len(raw)
            blocks.append(_block(body, opening, block_start, end))
            opening = None
        else:
            body.append(line)
    if opening is not None:
        if body and body[-1].strip() and not body[-1].strip().strip(opening["fence"][0]):
            body.pop()  # a closing fence still arriving: "``" at the end of a stream
        blocks.append(_block(body, opening, block_start, len(answer)))
    return blocks


def _block(body: list[str], opening: re.Match[str], start: int, end: int) -> CodeBlock:
    indent = len(opening["indent"])
    # An indented fence (in a list item) indents its code too: take that much back off.
    lines = [line[min(indent, len(line) - len(line.lstrip())) :] for line in body]
    info = opening["info"].split()
    return CodeBlock("\n".join(lines).rstrip("\n"), info[0] if info else None, start, end)


def strip_line_numbers(code: str) -> str:
    """Remove `12 | ` / `12: ` prefixes a model copied from a numbered prompt.

    Only when the numbers count up by one line by line, and either every non-blank line has one,
    or (for `|`, the prompt's own separator) the first line has one and the model stopped
    numbering after a few lines. Code that merely starts with a number (a dict entry `1: "a"`)
    is left alone.
    """
    lines = code.split("\n")
    matches = [_NUMBERED.match(line) for line in lines]
    numbered = [(i, m) for i, m in enumerate(matches) if m is not None]
    if not numbered:
        return code
    first = int(numbered[0][1]["number"]) - numbered[0][0]
    if any(int(m["number"]) != first + i for i, m in numbered):
        return code
    every = not any(m is None and line.strip() for line, m in zip(lines, matches, strict=True))
    leading = next((m for line, m in zip(lines, matches, strict=True) if line.strip()), None)
    copied = leading is not None and all("|" in m.group(0) for _, m in numbered)
    if not (every or copied):
        return code
    return "\n".join(line[m.end() :] if m else line for line, m in zip(lines, matches, strict=True))


def _definition_names(code: str, language: str | None) -> set[str]:
    if language in languages.GRAMMARS:
        return {d.name for d in syntax.definitions(code, language) if d.name}
    return set(_DEFINED.findall(code))


def _content_lines(code: str) -> set[str]:
    return {line.strip() for line in code.split("\n") if line.strip()}


def _layout(code: str) -> str:
    """Code as far as a fix can change it: indentation counts, trailing blanks don't."""
    return textwrap.dedent("\n".join(line.rstrip() for line in code.split("\n"))).strip("\n")


def pick_fix(answer: str, original: str, language: str | None = None) -> str | None:
    """The code block that is the corrected version of `original`; None when there is no block.

    In order: a block in the language (or untagged) beats one in another; one that shares a
    definition name or a line with the original beats a usage example; a changed block beats a
    copy of the original; then more shared names and lines; then the earlier block.
    """
    want = languages.normalize(language)
    original_lines = _content_lines(original)
    original_names = _definition_names(original, want)
    original_layout = _layout(original)

    def rank(item: tuple[int, CodeBlock]) -> tuple[bool, bool, bool, bool, int, int]:
        index, block = item
        code, tag = strip_line_numbers(block.code), languages.normalize(block.language)
        shares_name = bool(_definition_names(code, want or tag) & original_names)
        overlap = len(_content_lines(code) & original_lines)
        same_language = tag is None or want is None or tag == want
        changed = _layout(code) != original_layout
        return same_language, shares_name or overlap > 0, changed, shares_name, overlap, -index

    blocks = code_blocks(answer)
    if not blocks:
        return None
    return strip_line_numbers(max(enumerate(blocks), key=rank)[1].code)


def _prose(answer: str) -> str:
    """The answer with its code blocks blanked out: line talk in code is not feedback."""
    parts, offset = [], 0
    for block in code_blocks(answer):
        parts.append(answer[offset : block.start])
        offset = block.end
    return "\n".join([*parts, answer[offset:]])


def _numbers(reference: str) -> list[tuple[int, int]]:
    """ "3-5 and 7" -> [(3, 5), (7, 7)]."""
    tokens = re.findall(rf"\d+|{_RANGE}", reference, re.IGNORECASE)
    ranges: list[tuple[int, int]] = []
    joining = False
    for token in tokens:
        if not token.isdigit():
            joining = bool(ranges)
        elif joining:
            low, _ = ranges[-1]
            ranges[-1] = (min(low, int(token)), max(low, int(token)))
            joining = False
        else:
            ranges.append((int(token), int(token)))
    return ranges


def referenced_lines(answer: str, code: str, first_line: int) -> list[int]:
    """The 0-based document lines the answer points at, within `code` (which starts there).

    "line 12", "lines 12-14", "lines 12 and 15" name 1-based document lines, as the prompt numbers
    them; an inline `span` names the one line of the code it equals (stripped), if only one.
    """
    code_lines = code.split("\n")
    shown_first, shown_last = first_line + 1, first_line + len(code_lines)
    prose = _prose(answer)
    found: set[int] = set()
    for reference in _LINE_REFERENCE.finditer(prose):
        for low, high in _numbers(reference[1]):
            found.update(n - 1 for n in range(max(low, shown_first), min(high, shown_last) + 1))
    stripped = [line.strip() for line in code_lines]
    for span in _INLINE_CODE.findall(prose):
        if span.strip() and stripped.count(span.strip()) == 1:
            found.add(first_line + stripped.index(span.strip()))
    return sorted(found)
