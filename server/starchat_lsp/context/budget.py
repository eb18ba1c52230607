"""Fit a selection and its surroundings into the model's context, saying what was left out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from starchat_lsp.context import syntax
from starchat_lsp.context.prompts import (
    CodeContext,
    build_explain_prompt,
    build_feedback_prompt,
    build_fix_prompt,
)

TokenCounter = Callable[[str], int]

_TO_FIT = "to fit the model's context"


class ContextTooSmallError(ValueError):
    """Not even the prompt's own words fit the model's context."""

    def __init__(self, max_prompt_tokens: int) -> None:
        room = f"in {max_prompt_tokens} tokens" if max_prompt_tokens > 0 else "at all"
        super().__init__(
            f"the prompt does not fit {room}, even without code: shorten the conversation, "
            "use a model with a larger context or lower max_new_tokens"
        )


def prompt_token_budget(context_window: int, max_new_tokens: int, reserve: int = 64) -> int:
    """Tokens left for the prompt; `reserve` covers the chat template's own tokens."""
    return max(0, context_window - max_new_tokens - reserve)


def prompt_tokens(ctx: CodeContext, count_tokens: TokenCounter) -> int:
    """Tokens in the largest prompt built from `ctx` (feedback, fix or explain, default system)."""
    builders = (build_feedback_prompt, build_fix_prompt, build_explain_prompt)
    return max(sum(count_tokens(m.content) for m in build(ctx)) for build in builders)


def gather_context(
    text: str,
    *,
    path: str | None,
    language: str | None,
    start_line: int,
    end_line: int,
    count_tokens: TokenCounter,
    max_prompt_tokens: int,
) -> CodeContext:
    """The context for lines start..end (0-based, inclusive) of a document, fitted to the budget.

    The budget holds for `prompt_tokens`: a caller that adds a user note or its own system prompt
    subtracts their tokens first. To fit, imports go first, then the enclosing definition, then
    the selection's tail; each cut adds a note. Raises ContextTooSmallError when nothing fits.
    """
    language = language or (syntax.language_for_path(path) if path else None)
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    start = min(max(start_line, 0), len(lines) - 1)
    end = min(max(end_line, start), len(lines) - 1)
    code = "\n".join(lines[start : end + 1])
    span: syntax.CodeSpan | None = None
    imports: tuple[str, ...] = ()
    if language:
        span = syntax.definition_around(text, language, start, end, strictly=True)
        # an import inside the selection is shown there already
        imports = tuple(i for i in syntax.imports(text, language) if i not in code)
    ctx = CodeContext(
        code=code,
        language=language,
        path=path,
        start_line=start,
        end_line=end,
        enclosing="\n".join(lines[span.start_line : span.end_line + 1]) if span else None,
        enclosing_start_line=span.start_line if span else None,
        imports=imports,
    )

    def fits(candidate: CodeContext) -> bool:
        return prompt_tokens(candidate, count_tokens) <= max_prompt_tokens

    if fits(ctx):
        return ctx
    if ctx.imports:
        ctx = replace(
            ctx, imports=(), notes=_noted(ctx, f"the file's imports were left out {_TO_FIT}")
        )
        if fits(ctx):
            return ctx
    if span is not None:
        what = f"the enclosing {span.kind}" + (f" `{span.name}`" if span.name else "")
        notes = _noted(ctx, f"{what} was left out {_TO_FIT}")
        ctx = replace(ctx, enclosing=None, enclosing_start_line=None, notes=notes)
        if fits(ctx):
            return ctx
    cut = _cut_selection(ctx, fits)
    if cut is None:
        raise ContextTooSmallError(max_prompt_tokens)
    return cut


def _noted(ctx: CodeContext, note: str) -> tuple[str, ...]:
    return (*ctx.notes, note)


def _largest(low: int, high: int, ok: Callable[[int], bool]) -> int:
    """The largest n in low..high with ok(n), assuming ok only turns false as n grows; else -1."""
    found = -1
    while low <= high:
        middle = (low + high) // 2
        if ok(middle):
            found, low = middle, middle + 1
        else:
            high = middle - 1
    return found


def _cut_selection(ctx: CodeContext, fits: Callable[[CodeContext], bool]) -> CodeContext | None:
    """Keep the selection's head: whole lines while one fits, else the first line's head."""
    lines = ctx.code.split("\n")

    def head_lines(count: int) -> CodeContext:
        note = f"the selection was cut to its first {count} of {len(lines)} lines {_TO_FIT}"
        cut = "\n".join(lines[:count])
        return replace(ctx, code=cut, end_line=ctx.start_line + count - 1, notes=_noted(ctx, note))

    def head_chars(count: int) -> CodeContext:
        note = (
            f"the selection was cut to the first {count} of {len(lines[0])} characters "
            f"of its first line {_TO_FIT}"
        )
        return replace(ctx, code=lines[0][:count], end_line=ctx.start_line, notes=_noted(ctx, note))

    count = _largest(1, len(lines) - 1, lambda n: fits(head_lines(n)))
    if count >= 1:
        return head_lines(count)
    count = _largest(0, len(lines[0]), lambda n: fits(head_chars(n)))
    return head_chars(count) if count >= 0 else None
