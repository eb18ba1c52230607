"""Every word we say to the model: chat prompts for feedback, fixes, explanations, instructions.

Line numbers in prompts are the document's, 1-based, as editors show them. Only the feedback
prompt numbers each line (`12 | code`), because there the model must name lines; it is told the
numbers are not code, and `answers.pick_fix` strips them if it copies them anyway. The other
prompts give plain code and say where it starts. Prompts stay short: the models are small.
"""

from __future__ import annotations

from dataclasses import dataclass

from starchat_lsp.context import languages
from starchat_lsp.context.other_files import OtherFile
from starchat_lsp.engine.base import ChatMessage, CompletionPrompt, OtherFiles

DEFAULT_SYSTEM_PROMPT = (
    "You are a helpful, precise coding assistant. Answer briefly and put code in fenced blocks."
)


@dataclass(frozen=True, kw_only=True)
class CodeContext:
    """A selection of a document and what surrounds it, ready to be put into a prompt.

    Lines are 0-based and end-inclusive. `enclosing` is the full text of the definition around
    the selection, starting at `enclosing_start_line` (prompts replace the selected lines in it by
    a placeholder). `notes` say what was left out to fit the model; they reach model and user.
    """

    code: str
    language: str | None = None
    path: str | None = None
    start_line: int = 0
    end_line: int = 0
    enclosing: str | None = None
    enclosing_start_line: int | None = None
    imports: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def _messages(system_prompt: str | None, user: str) -> list[ChatMessage]:
    # An empty system prompt means none: some chat templates have no system role.
    system = DEFAULT_SYSTEM_PROMPT if system_prompt is None else system_prompt
    head = [ChatMessage("system", system)] if system else []
    return [*head, ChatMessage("user", user)]


def _tag(language: str | None) -> str:
    return language or ""


def _named(language: str | None) -> str:
    """ "Python code", or just "code" when we don't know the language."""
    return f"{languages.DISPLAY_NAMES.get(language, language)} code" if language else "code"


def _fence(code: str, language: str | None) -> str:
    fence = "```"
    while fence in code:  # code that holds a fence needs a longer one around it
        fence += "`"
    return f"{fence}{_tag(language)}\n{code}\n{fence}"


def _last_line(ctx: CodeContext) -> int:
    return max(ctx.end_line, ctx.start_line + ctx.code.count("\n"))


def _lines(ctx: CodeContext) -> str:
    """ "lines 12-18": document lines, 1-based."""
    first, last = ctx.start_line + 1, _last_line(ctx) + 1
    return f"line {first}" if first == last else f"lines {first}-{last}"


def _where(ctx: CodeContext) -> str:
    return f"{_lines(ctx)} of {ctx.path}" if ctx.path else _lines(ctx)


def number_lines(code: str, first_line: int) -> str:
    """Prefix each line with its 1-based document number: `12 | code`, numbers right-aligned."""
    lines = code.split("\n")
    width = len(str(first_line + len(lines)))
    return "\n".join(
        f"{first_line + i + 1:>{width}} | {line}".rstrip() for i, line in enumerate(lines)
    )


def _surroundings(ctx: CodeContext) -> str:
    """The imports and the enclosing definition, with the selection replaced by a placeholder."""
    parts = ["\n".join(ctx.imports)] if ctx.imports else []
    if ctx.enclosing:
        lines = ctx.enclosing.split("\n")
        offset = ctx.start_line - (ctx.enclosing_start_line or 0)
        count = _last_line(ctx) - ctx.start_line + 1
        if ctx.enclosing_start_line is not None and offset >= 0 and offset + count <= len(lines):
            selected = lines[offset]
            indent = selected[: len(selected) - len(selected.lstrip())]
            text = f"... {_lines(ctx)}: my code below ..."
            placeholder = indent + (languages.comment_line(ctx.language, text) or text)
            lines[offset : offset + count] = [placeholder]
        parts.append("\n".join(lines))
    if not parts:
        return ""
    surroundings = _fence("\n\n".join(parts), ctx.language)
    return f"The surrounding code, for reference:\n{surroundings}\n\n"


def _code(ctx: CodeContext, *, numbered: bool = False) -> str:
    """The selection under a heading that says where it comes from."""
    if numbered:
        heading = f"My code, {_where(ctx)} (the numbers on the left are line numbers, not code):"
        return f"{heading}\n{_fence(number_lines(ctx.code, ctx.start_line), ctx.language)}"
    return f"My code, {_where(ctx)}:\n{_fence(ctx.code, ctx.language)}"


def _notes(ctx: CodeContext) -> str:
    return "".join(f"\nNote: {note}." for note in ctx.notes)


def _bug_report(ctx: CodeContext, user_note: str | None, hints: tuple[str, ...]) -> str:
    """The user's report: the bug, their note, the code numbered, the linter's findings."""
    note = f"\n{user_note.strip()}" if user_note and user_note.strip() else ""
    listed = "".join(f"\n- {hint}" for hint in hints)
    analyzer = (
        f"\n\nA linter reports (it may or may not be the bug I mean):{listed}" if hints else ""
    )
    return (
        f"I wrote this {_named(ctx.language)} and it has a bug. What's wrong with it?{note}\n\n"
        f"{_surroundings(ctx)}"
        f"{_code(ctx, numbered=True)}{analyzer}\n\n"
    )


def build_feedback_prompt(
    ctx: CodeContext,
    user_note: str | None = None,
    system_prompt: str | None = None,
    hints: tuple[str, ...] = (),
) -> list[ChatMessage]:
    """Ask, as the user who wrote the code, what the bug is, where, and for the corrected code.

    `hints`: what a static analyzer reports on these lines (`line 5: ... (B006)`).
    """
    user = (
        f"{_bug_report(ctx, user_note, hints)}"
        "Tell me what is wrong and on which line, then give the whole corrected code "
        f"in one ```{_tag(ctx.language)} block, without line numbers.{_notes(ctx)}"
    )
    return _messages(system_prompt, user)


def build_fix_prompt(
    ctx: CodeContext,
    problem: str | None = None,
    system_prompt: str | None = None,
    checks: tuple[str, ...] = (),
    hints: tuple[str, ...] = (),
) -> list[ChatMessage]:
    """Ask for the whole corrected code only, same names and parameters, nothing else changed.

    It begins as the feedback prompt with the same note and hints does, so that fixes sampled
    beside a feedback answer share its prompt's KV cache; only the request at the end differs.
    `checks` (Python asserts the user's examples became) are shown as what the fix must pass.
    """
    listed = _fence("\n".join(checks), ctx.language)
    must = f"The fixed code must pass these checks:\n{listed}\n\n" if checks else ""
    user = (
        f"{_bug_report(ctx, problem, hints)}{must}"
        f"Reply with only the whole corrected code in one ```{_tag(ctx.language)} block, "
        "without line numbers. Keep the same function names and parameters and change nothing "
        f"else.{_notes(ctx)}"
    )
    return _messages(system_prompt, user)


def build_second_look_prompt(
    ctx: CodeContext,
    user_note: str | None,
    tried: str | None,
    learned: tuple[str, ...],
    system_prompt: str | None = None,
    hints: tuple[str, ...] = (),
) -> list[ChatMessage]:
    """The feedback prompt again, after a fix that failed: the user says what was tried (`tried`,
    a diff of the selection's lines) and what it did (`learned`: "It still fails `assert f(2) ==
    4` (got 3)."), then asks as before, reasons first.

    A fresh prompt, not a follow-up: shown its own answer, the small model gave the draft's fix
    again in 21 of 26 answers on 13 development cases, sampled ones too (docs/eval/README.md).
    """
    change = f"\n\nI tried this change:\n{_fence(tried, 'diff')}" if tried else ""
    listed = "".join(f"\n- {fact}" for fact in learned)
    what = "That change" if tried else "A first try"
    note = f"{(user_note or '').strip()}{change}\n\n{what} did not fix the bug:{listed}".strip()
    return build_feedback_prompt(ctx, note, system_prompt, hints)


def build_test_writing_prompt(
    spec: str, note: str | None, name: str, count: int, system_prompt: str | None = None
) -> list[ChatMessage]:
    """Ask for asserts a correct version of a function passes, from its contract, not its body."""
    told = f"\nWhat I know goes wrong: {note.strip()}\n" if note and note.strip() else ""
    user = (
        f"Here is what my Python function must do:\n{_fence(spec, 'python')}\n{told}\n"
        f"Write {count} assert statements that call {name} with literal arguments and compare "
        "the result with the exact value a correct version returns. Include the case I said "
        "goes wrong, and edge cases. Reply with only the asserts, one per line, in one "
        "```python block."
    )
    return _messages(system_prompt, user)


def build_explain_prompt(ctx: CodeContext, system_prompt: str | None = None) -> list[ChatMessage]:
    """Ask for a Markdown explanation of the code."""
    user = (
        f"Explain what my {_named(ctx.language)} does.\n\n"
        f"{_surroundings(ctx)}{_code(ctx)}\n\n"
        f"Answer in Markdown: one short summary, then the important details.{_notes(ctx)}"
    )
    return _messages(system_prompt, user)


def build_instruction_prompt(
    instruction: str,
    language: str | None = None,
    ctx: CodeContext | None = None,
    system_prompt: str | None = None,
) -> list[ChatMessage]:
    """Ask for code that does what the instruction says, in one fenced block."""
    language = language or (ctx.language if ctx else None)
    parts = [instruction.strip()]
    if ctx is not None:
        parts.append(f"{_surroundings(ctx)}{_code(ctx)}{_notes(ctx)}")
    parts.append(f"Reply with the {_named(language)} in one ```{_tag(language)} block.")
    return _messages(system_prompt, "\n\n".join(parts))


def build_write_prompt(
    instruction: str, ctx: CodeContext, *, docstring: bool, system_prompt: str | None = None
) -> list[ChatMessage]:
    """Ask for the code that a comment or a function's docstring asks for, and only that."""
    what = (
        "the body of this function, as its docstring describes"
        if docstring
        else (f"the code this comment asks for: {instruction.strip()}")
    )
    goes = "after the docstring" if docstring else f"right below the comment ({_lines(ctx)})"
    user = (
        f"Write {what}\n\n{_surroundings(ctx)}{_code(ctx)}\n\n"
        f"The new code goes {goes}. Reply with only the new code in one "
        f"```{_tag(ctx.language)} block, without repeating the code above.{_notes(ctx)}"
    )
    return _messages(system_prompt, user)


def build_chat_prompt(
    conversation: list[ChatMessage],
    ctx: CodeContext | None = None,
    system_prompt: str | None = None,
) -> list[ChatMessage]:
    """A conversation about code: the code (if any) goes with the first user turn."""
    system = DEFAULT_SYSTEM_PROMPT if system_prompt is None else system_prompt
    turns = [m for m in conversation if m.role != "system"]
    if ctx is not None:
        attached = f"{_surroundings(ctx)}{_code(ctx)}{_notes(ctx)}"
        for index, message in enumerate(turns):
            if message.role == "user":
                turns[index] = ChatMessage("user", f"{attached}\n\n{message.content}")
                break
    return [ChatMessage("system", system), *turns] if system else turns


def build_completion_prompt(
    prefix: str,
    suffix: str | None,
    language: str | None,
    path: str | None = None,
    *,
    line_in_middle: bool = False,
    suffix_first: bool = False,
    other_files: tuple[OtherFile, ...] = (),
    workspace: tuple[str, str] = ("", ""),
) -> CompletionPrompt:
    """A raw completion prompt; a comment naming the file heads it when we know how to comment.

    With a suffix and `line_in_middle`, the cursor line's start goes after the middle token, as
    the answer's beginning (llama.cpp server's infill does the same with its `prompt`): typing
    on the line then changes only the prompt's last tokens, where the plain layout changes
    everything from the cursor on, the text after the cursor included. It is off: on 32
    `eval complete` holes, qwen2.5-coder-1.5b matched 4 exactly this way against 11 with the
    plain layout (it went on from a trailing space with another one, or ended the line at once).
    `suffix_first` asks for the suffix-prefix-middle order (see `CompletionPrompt`).
    `other_files` go ahead of it all (the engine renders them, see `OtherFiles`); `workspace`
    is the workspace folder's name and the document's path in it.
    """
    header = languages.comment_line(language, path) if path else None
    middle = ""
    if suffix is not None and line_in_middle:
        head, newline, middle = prefix.rpartition("\n")
        prefix = head + newline
    files = None
    if other_files:
        files = OtherFiles(
            repo=workspace[0],
            path=workspace[1],
            files=tuple((f.path, f.text) for f in other_files),
            comment=languages.LINE_COMMENTS.get(language or "", ""),
        )
    return CompletionPrompt(
        prefix=f"{header}\n{prefix}" if header else prefix,
        suffix=suffix,
        middle=middle,
        other_files=files,
        suffix_first=suffix_first,
    )


CURSOR = "<CURSOR>"


def build_cursor_completion_prompt(
    prefix: str,
    suffix: str,
    *,
    language: str | None,
    path: str | None = None,
    one_line: bool = True,
    instruction: str | None = None,
    system_prompt: str | None = None,
    other_files: tuple[OtherFile, ...] = (),
) -> list[ChatMessage]:
    """For a model without fill-in-the-middle: ask in chat for the code at a cursor marker.

    `other_files` come first, as definitions from other files, so that their tokens stay cached.
    """
    where = f" in {path}" if path else ""
    asked = f"\nThe comment above it asks: {instruction.strip()}" if instruction else ""
    amount = "the rest of that line" if one_line else "the lines that go there"
    definitions = "".join(f"{f.path}:\n{_fence(f.text, language)}\n\n" for f in other_files)
    user = (
        (f"Definitions from other files that my code uses:\n\n{definitions}" if definitions else "")
        + f"Complete my {_named(language)}{where} at {CURSOR}.{asked}\n\n"
        f"{_fence(prefix + CURSOR + suffix, language)}\n\n"
        f"Reply with only the code that replaces {CURSOR} ({amount}), in one "
        f"```{_tag(language)} block, without repeating the code before or after it."
    )
    return _messages(system_prompt, user)
