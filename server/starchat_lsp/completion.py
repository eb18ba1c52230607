"""Chat-driven completion: what to ask the model at a cursor, and what to insert from its answer.

`completion_scope` decides (cheaply, before any model) whether to complete and how much; `complete`
runs on the model's thread: it fits the text around the cursor to a token budget, asks by
fill-in-the-middle when the model can, else by a chat prompt with the nearest instruction comment,
and cleans the answer. `CompletionCache` makes typing through a suggestion cost nothing.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from starchat_lsp.context import other_files as workspace_files
from starchat_lsp.context import prompts, syntax
from starchat_lsp.context.completion_cleaning import clean_completion
from starchat_lsp.context.completion_scope import Scope, completion_scope
from starchat_lsp.engine.base import (
    CancelFlag,
    Engine,
    GenerationResult,
    GenerationSettings,
    StopReason,
)

LINE_MAX_NEW_TOKENS = 48
WINDOW_STEP = 16  # the first line of the text before the cursor moves in steps of these
INSTRUCTION_REACH = 10  # lines above the cursor in which a comment counts as the instruction


@dataclass(frozen=True)
class Completion:
    text: str  # what to insert at the cursor; "" for nothing
    scope: Scope
    result: GenerationResult

    @property
    def finished(self) -> bool:
        """Whether the model run ended on its own: a cancelled or failed one offers nothing."""
        return self.result.stop_reason not in (StopReason.CANCELLED, StopReason.ERROR)


def language_of(path: str | None) -> str | None:
    """The document's language, from its file name."""
    return syntax.language_for_path(path) if path else None


def scope_at(text: str, offset: int, path: str | None) -> tuple[str | None, Scope]:
    """The document's language (from its file name) and how much to complete at `offset`."""
    language = language_of(path)
    return language, completion_scope(text, offset, language)


def _fit(
    prefix: str, suffix: str, count_tokens: Callable[[str], int], budget: int
) -> tuple[str, str]:
    """Whole lines around the cursor within `budget` tokens.

    After the cursor: the rest of its line, then the next lines up to a quarter of the budget,
    on to a step of WINDOW_STEP lines counted from the file's end. Before it: all
    the rest, from a first line that moves in steps of WINDOW_STEP lines. So typing at a place
    keeps the prompt's beginning and its end, whose KV cache the model then reuses (the end's
    moved to its new place, engine/llamacpp_shift): each keystroke puts only the cursor's word
    through the model. A smaller share after the cursor (at most 64 tokens) made that cheaper
    but lost quality in `eval complete` (exact matches 11 -> 9 of 32 with qwen2.5-coder-1.5b):
    the later lines say what the code needs.
    """
    head, _, current = prefix.rpartition("\n")
    tail_line, newline, rest = suffix.partition("\n")
    left = budget - count_tokens(current + tail_line)
    # Not from `left`: typing at the cursor grows `current`, and the text after the cursor
    # must stay the same from key to key for its KV cache to be kept (engine/llamacpp_shift).
    allowance = (budget - count_tokens(tail_line)) // 4
    after_lines = rest.split("\n") if newline else []
    taken, used = 0, 0
    for line in after_lines:
        cost = count_tokens(line) + 1
        if used + cost > allowance:
            break
        taken, used = taken + 1, used + cost
    # On until the lines left out are a multiple of WINDOW_STEP, within half the budget: counted
    # from the file's end, the window's end then stays where it is while the cursor moves down
    # a few lines or a line is added above it (Enter), so the prompt's end is the same text and
    # its KV cache moves with it (engine/llamacpp_shift). Past half the budget, the end is left
    # where the token count put it.
    stepped = len(after_lines) - (len(after_lines) - taken) // WINDOW_STEP * WINDOW_STEP
    more = sum(count_tokens(line) + 1 for line in after_lines[taken:stepped])
    if used + more <= budget // 2:
        taken, used = stepped, used + more
    kept_after = after_lines[:taken]
    left -= used
    lines = head.split("\n") if "\n" in prefix else []
    kept = 0
    for line in reversed(lines):
        left -= count_tokens(line) + 1
        if left < 0:
            break
        kept += 1
    first = len(lines) - kept  # the file's line number of the first line kept
    if first > 0:  # cut: start at the next step, where it stays while the cursor's line grows
        first = min(-(-first // WINDOW_STEP) * WINDOW_STEP, len(lines))
    before = "".join(line + "\n" for line in lines[first:]) + current
    after = tail_line + "".join("\n" + line for line in kept_after)
    return before, after


def nearest_instruction(text: str, language: str | None, line: int) -> str | None:
    """The comment or docstring that ends closest above the line (within a few lines)."""
    if not language:
        return None
    above = [
        c
        for c in syntax.comments(text, language, (max(line - INSTRUCTION_REACH, 0), line))
        if c.start_line <= line and line - c.end_line <= INSTRUCTION_REACH and c.text
    ]
    return above[-1].text if above else None


def complete(
    engine: Engine,
    text: str,
    offset: int,
    *,
    language: str | None,
    path: str | None,
    scope: Scope,
    max_new_tokens: int,
    max_context_tokens: int,
    flag: CancelFlag,
    system_prompt: str | None = None,
    fill_in_middle: bool | None = None,
    line_in_middle: bool = False,
    suffix_first: bool = False,
    workspace: Path | None = None,
    other_files: bool = False,
) -> Completion:
    """On the model's thread: ask for the completion at `offset` and clean the answer.

    A line gets at most LINE_MAX_NEW_TOKENS of `max_new_tokens`; `max_context_tokens` bounds the
    text the model sees. `fill_in_middle` False asks by the chat prompt even when the model can
    fill in the middle (the eval compares the two); None: when it can. `line_in_middle` puts the
    cursor line's start after the middle token (see `prompts.build_completion_prompt`; it lost
    quality in the eval, so it is off); `suffix_first`, the suffix-prefix-middle order. With
    `other_files` and a
    `workspace` folder, the definitions from its other files that the cursor's scope uses go
    ahead of the text (`context.other_files`), taking up to a quarter of `max_context_tokens`
    from the text around the cursor.
    """
    found: tuple[workspace_files.OtherFile, ...] = ()
    if other_files and workspace is not None and path:
        share = workspace_files.budget(max_context_tokens)
        found = workspace_files.gather(text, path, workspace, offset, engine.count_tokens, share)
    window = max_context_tokens - sum(
        engine.count_tokens(f"{f.path}\n{f.text}\n") + 2 for f in found
    )
    prefix, suffix = _fit(text[:offset], text[offset:], engine.count_tokens, window)
    one_line = scope is Scope.LINE
    max_new = min(LINE_MAX_NEW_TOKENS, max_new_tokens) if one_line else max_new_tokens
    healed = ""
    if engine.fill_in_middle and fill_in_middle is not False:
        healed = _blank_at_cursor(prefix)
        prompt = prompts.build_completion_prompt(
            prefix[: len(prefix) - len(healed)],
            suffix,
            language,
            path,
            line_in_middle=line_in_middle,
            suffix_first=suffix_first,
            other_files=found,
            workspace=_names_in(workspace, path) if found else ("", ""),
        )
        settings = GenerationSettings(
            max_new_tokens=max_new,
            stop=("\n",) if one_line else ("\n\n\n",),
            interactive=True,
        )
        stream = engine.complete(prompt, settings, cancel=flag)
    else:
        line = text.count("\n", 0, offset)
        messages = prompts.build_cursor_completion_prompt(
            prefix,
            suffix,
            language=language,
            path=path,
            one_line=one_line,
            instruction=nearest_instruction(text, language, line),
            system_prompt=system_prompt,
            other_files=found,
        )
        # a chat answer opens a fence first: room for it and for the closing one
        settings = GenerationSettings(max_new_tokens=max_new + 16, interactive=True)
        stream = engine.chat(messages, settings, cancel=flag)
    result = stream.finish()
    answer = result.text
    while healed and answer[:1] == healed[0]:  # the user's blanks, written again by the model
        answer, healed = answer[1:], healed[1:]
    cleaned = clean_completion(answer, text, offset, scope, language)
    return Completion(cleaned, scope, result)


def _blank_at_cursor(prefix: str) -> str:
    """The spaces just typed after text on the cursor's line: the model is asked from before
    them, and they are taken off its answer's start (token healing, for blanks).

    A model reads " x" as one token: after `return ` it wrote ` lines`, a second space, when the
    cursor line's start followed the middle token (docs/eval/README.md), and so did the
    answers from a KV cache moved while typing (the key before was the space). Indentation
    (nothing else on the line yet) is left as it is.
    """
    line = prefix.rpartition("\n")[2]
    blank = line[len(line.rstrip(" \t")) :]
    return blank if blank and line.strip() else ""


def _names_in(workspace: Path | None, path: str | None) -> tuple[str, str]:
    """The workspace folder's name and the document's path in it (its file name if outside)."""
    if workspace is None or not path:
        return "", ""
    document = Path(path).resolve()
    root = workspace.resolve()
    inside = document.relative_to(root).as_posix() if document.is_relative_to(root) else None
    return root.name, inside or document.name


class CompletionCache:
    """Answers by (model, prefix, suffix); a prefix that has typed into an answer gets its rest."""

    def __init__(self, size: int = 64) -> None:
        self._size = size
        self._entries: OrderedDict[tuple[str, str, str], str] = OrderedDict()

    def get(self, model: str, prefix: str, suffix: str) -> str | None:
        key = (model, prefix, suffix)
        if key in self._entries:
            self._entries.move_to_end(key)
            return self._entries[key]
        for (cached_model, cached_prefix, cached_suffix), answer in reversed(self._entries.items()):
            if cached_model != model or cached_suffix != suffix:
                continue
            if not prefix.startswith(cached_prefix):
                continue
            typed = prefix[len(cached_prefix) :]
            if len(typed) < len(answer) and answer.startswith(typed):
                return answer[len(typed) :]
        return None

    def put(self, model: str, prefix: str, suffix: str, answer: str) -> None:
        self._entries[(model, prefix, suffix)] = answer
        self._entries.move_to_end((model, prefix, suffix))
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()
