"""Turn a model's raw completion into text fit to insert at the cursor, or into nothing.

No fences, no special tokens, no restating of the line before the cursor, no repetition of the
text after it, no more than the scope asks for, and never a block that breaks the file's syntax:
such a block is trimmed from its end until it fits, or dropped.
"""

from __future__ import annotations

import re

from starchat_lsp.context import answers, syntax
from starchat_lsp.context.completion_scope import Scope, line_around

# Control tokens of the chat and fill-in-the-middle formats we know, should the model print one.
_SPECIAL = re.compile(
    r"<CURSOR>|<\|[a-z_]+\|>|<fim_[a-z]+>|</?s>"
    r"|<(?:file_sep|repo_name|filename|gh_stars|jupyter_[a-z]+)>"
)
_FENCE_LINE = re.compile(r"[ \t]*(`{3,}|~{3,})[^\n]*")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _unfence(text: str) -> str:
    """A chat answer's first code block, else the text without stray fence lines."""
    blocks = answers.code_blocks(text)
    if blocks:
        return blocks[0].code
    text = "\n".join(line for line in text.split("\n") if not _FENCE_LINE.fullmatch(line))
    return text.split("```")[0]  # a fence that closes code mid-line: prose follows it


def _drop_restated_prefix(text: str, before: str, prefix: str) -> str:
    """Chat models often repeat the line being completed, or the lines above it: drop that."""
    typed = before.strip()
    if typed and text.lstrip().startswith(typed):
        text = text.lstrip()[len(typed) :]
        if before != before.rstrip():  # the space typed after it is already there
            text = text.lstrip(" \t")
    recent = {line.strip() for line in prefix.split("\n")[-20:] if len(line.strip()) > 3}
    lines = text.split("\n")
    while len(lines) > 1 and lines[0].strip() in recent:
        lines.pop(0)
    return "\n".join(lines)


def _drop_suffix_overlap(text: str, suffix: str, after: str) -> str:
    """Cut the completion where it starts to repeat what already follows the cursor."""
    lines = text.split("\n")
    closers = after.strip()
    if closers and lines[0].rstrip().endswith(closers):
        lines[0] = lines[0].rstrip()[: -len(closers)]
        return lines[0]  # the line is closed by what follows it: nothing more belongs here
    following = [line.rstrip() for line in suffix.split("\n")[1:] if line.strip()]
    if following:
        for index, line in enumerate(lines[1:], start=1):
            if line.rstrip() == following[0]:
                return "\n".join(lines[:index])
    return text


def _one_block(text: str, before: str) -> str:
    """Keep one block: stop where the code leaves the cursor's block, or after a blank line."""
    lines = text.split("\n")
    opened = before.strip() and before.rstrip().endswith((":", "{"))
    floor = _indent(before) if before.strip() else len(before)
    first_indent: int | None = None
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        indent = floor + _indent(line) if index == 0 else _indent(line)
        if index > 0 and (indent < floor or (opened and indent <= floor)):
            return "\n".join(lines[:index])
        if first_indent is None:
            first_indent = indent
        elif not lines[index - 1].strip() and indent <= first_indent:
            return "\n".join(lines[: index - 1])  # a new statement after a blank line
    return text


def _fit_syntax(text: str, prefix: str, suffix: str, language: str | None) -> str:
    """Trim lines from the end until the file parses as well as it did without the completion."""
    if not language:
        return text
    baseline = syntax.error_count(prefix + suffix, language)
    lines = text.split("\n")
    while lines:
        candidate = "\n".join(lines).rstrip()
        if candidate and syntax.error_count(prefix + candidate + suffix, language) <= baseline:
            return candidate
        lines.pop()
    return ""


def clean_completion(raw: str, text: str, offset: int, scope: Scope, language: str | None) -> str:
    """What to insert at `offset` of `text`; "" when nothing fit survives."""
    if scope is Scope.NONE:
        return ""
    prefix, suffix = text[:offset], text[offset:]
    before, after = line_around(text, offset)
    completion = _unfence(_SPECIAL.sub("", raw))
    completion = _drop_restated_prefix(completion, before, prefix)
    if before and not before.strip():
        # the cursor sits after indentation: a chat answer indents its first line again
        first = completion.lstrip("\n")
        completion = first[min(len(before), _indent(first)) :]
    if scope is Scope.LINE:
        completion = completion.split("\n")[0]
    completion = _drop_suffix_overlap(completion, suffix, after)
    if scope is Scope.BLOCK:
        completion = _one_block(completion, before)
    completion = completion.rstrip()
    if not completion.strip():
        return ""
    return _fit_syntax(completion, prefix, suffix, language)
