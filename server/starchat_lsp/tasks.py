"""The assistant's jobs on a piece of code, shared by the CLI, the language server and the eval.

`prepare` turns a document and a line range into chat messages (context fitted to the model);
the caller streams them through an engine however it likes; `conclude` turns the answer into
what the user gets: the fix as new document text and a diff, and the lines the answer names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from starchat_lsp import edits
from starchat_lsp.context import answers, dropped_code, languages, prompts, syntax
from starchat_lsp.context.budget import gather_context, prompt_token_budget
from starchat_lsp.context.instructions import Instruction, code_to_insert, instruction_at
from starchat_lsp.context.prompts import CodeContext
from starchat_lsp.engine.base import ChatMessage, Engine, GenerationResult, StopReason
from starchat_lsp.verify import analyzer


class TaskKind(str, Enum):
    FEEDBACK = "feedback"
    FIX = "fix"
    EXPLAIN = "explain"
    WRITE = "write"  # the code a comment or docstring asks for


# Tasks whose answer carries code to offer as an edit.
FIXING = (TaskKind.FEEDBACK, TaskKind.FIX, TaskKind.WRITE)
# Tasks whose fix goes through verification (verify.pipeline) unless the user turns it off.
VERIFIED = (TaskKind.FEEDBACK, TaskKind.FIX)


@dataclass(frozen=True, kw_only=True)
class CodeRequest:
    text: str  # the whole document
    path: str | None
    start_line: int  # 0-based, inclusive
    end_line: int
    language: str | None = None
    note: str | None = None  # what the user observed, or a diagnostic's message for a fix


@dataclass(frozen=True, kw_only=True)
class Prepared:
    messages: list[ChatMessage]
    context: CodeContext
    instruction: Instruction | None = None  # for WRITE: what to write and where
    # Feedback and fixes in Python: what the analyzer finds on or next to the lines worked on
    # (shown to the model as hints, and to the user as diagnostics).
    findings: tuple[analyzer.Finding, ...] = ()

    @property
    def notes(self) -> tuple[str, ...]:
        """What was left out to fit the model; the user is told."""
        return self.context.notes


@dataclass(frozen=True, kw_only=True)
class Outcome:
    answer: str
    complete: bool  # the model finished its answer (not cut by length, time or cancel)
    fix: str | None = None  # the corrected code for the range
    new_text: str | None = None  # the whole document with the fix in place
    diff: str = ""
    fix_parses: bool = True
    lines: list[int] = field(default_factory=list)  # 0-based document lines the answer names
    problems: list[str] = field(default_factory=list)  # why the fix must not be applied

    @property
    def applicable(self) -> bool:
        return self.new_text is not None and bool(self.diff) and not self.problems


def lines_for(text: str, language: str | None, line: int) -> tuple[int, int]:
    """The range to work on when the user points at one line: its function, else the line."""
    if language:
        span = syntax.enclosing_definition(text, language, line)
        if span is not None:
            return span.start_line, span.end_line
    return line, line


def prepare(
    kind: TaskKind,
    request: CodeRequest,
    engine: Engine,
    *,
    max_new_tokens: int,
    system_prompt: str | None = None,
    analyze: bool = True,
) -> Prepared:
    """The prompt for a task on a request. `analyze=False` leaves the analyzer's hints out (the
    eval's plain baseline: the model asked as a user would, without our help)."""
    language = request.language or (
        syntax.language_for_path(request.path) if request.path else None
    )
    # A huge max_new_tokens must not squeeze the code out: the answer gets at most half the window
    # (the engine also stops at the window's end).
    answer_room = min(max_new_tokens, engine.context_window // 2)
    overhead = engine.count_tokens(
        (system_prompt or prompts.DEFAULT_SYSTEM_PROMPT) + (request.note or "")
    )
    start_line, end_line = request.start_line, request.end_line
    instruction = None
    if kind is TaskKind.WRITE:
        instruction = instruction_at(request.text, language, start_line, end_line)
        if instruction is None:
            raise NoInstructionError(
                "no instruction here: put the cursor on a comment that asks for code, "
                "or in a function whose body is only a docstring"
            )
        start_line, end_line = _write_context_lines(request.text, language, instruction)
    context = gather_context(
        request.text,
        path=request.path,
        language=language,
        start_line=start_line,
        end_line=end_line,
        count_tokens=engine.count_tokens,
        max_prompt_tokens=prompt_token_budget(engine.context_window, answer_room) - overhead,
    )
    if instruction is not None:
        messages = prompts.build_write_prompt(
            instruction.text, context, docstring=instruction.docstring, system_prompt=system_prompt
        )
        return Prepared(messages=messages, context=context, instruction=instruction)
    if kind in (TaskKind.FEEDBACK, TaskKind.FIX):
        # A fix starts from the feedback prompt: asked for the code only, small models hand the
        # buggy code back unchanged far more often than when they first say what is wrong (issue
        # 15: 8 against 11 of 30 held-out bugs), and the fix must be as good as the feedback.
        findings = _findings(request, language, context) if analyze else ()
        messages = prompts.build_feedback_prompt(
            context,
            request.note,
            system_prompt,
            hints=tuple(finding.describe() for finding in findings),
        )
        return Prepared(messages=messages, context=context, findings=findings)
    messages = prompts.build_explain_prompt(context, system_prompt)
    return Prepared(messages=messages, context=context)


def _findings(
    request: CodeRequest, language: str | None, context: CodeContext
) -> tuple[analyzer.Finding, ...]:
    """The analyzer's findings on the lines worked on or next to them (Python only)."""
    if language != "python":
        return ()
    found = analyzer.analyze(request.text, request.path)
    last = max(context.end_line, context.start_line + context.code.count("\n"))
    return tuple(analyzer.near(found, context.start_line, last)[: analyzer.MOST_HINTS])


def _write_context_lines(
    text: str, language: str | None, instruction: Instruction
) -> tuple[int, int]:
    """The code to show with an instruction: the function its docstring is in, or the comment."""
    if instruction.docstring and language:
        span = syntax.enclosing_definition(text, language, instruction.start_line)
        if span is not None:
            return span.start_line, span.end_line
    return instruction.start_line, instruction.end_line


class NoInstructionError(ValueError):
    """WRITE was asked where no comment or docstring asks for code."""


def _written(answer: str, instruction: Instruction, request: CodeRequest) -> str | None:
    """The code to insert from the answer's first block in the language; None without one."""
    want = languages.normalize(request.language)
    blocks = answers.code_blocks(answer)
    fitting = [b for b in blocks if b.language is None or languages.normalize(b.language) == want]
    if not (fitting or blocks):
        return None
    return code_to_insert((fitting or blocks)[0].code, instruction, request.text) or None


def conclude(
    kind: TaskKind, request: CodeRequest, prepared: Prepared, result: GenerationResult
) -> Outcome:
    ctx = prepared.context
    complete = result.stop_reason in (StopReason.EOS, StopReason.STOP_STRING)
    lines = answers.referenced_lines(result.text, ctx.code, ctx.start_line)
    if kind not in FIXING:
        return Outcome(answer=result.text, complete=complete, lines=lines)
    if prepared.instruction is not None:
        fix = _written(result.text, prepared.instruction, request)
        new_text = (
            None
            if fix is None
            else edits.insert_lines(request.text, prepared.instruction.replace, fix)
        )
    else:
        fix = answers.pick_fix(result.text, ctx.code, ctx.language)
        if fix is not None and ctx.language == "python":
            fix = dropped_code.restore(ctx.code, fix)
        new_text = (
            None
            if fix is None
            else edits.replace_lines(request.text, ctx.start_line, ctx.end_line, fix)
        )
    if fix is None or new_text is None:
        return Outcome(answer=result.text, complete=complete, lines=lines)
    diff = edits.unified_diff(request.text, new_text, request.path or "untitled")
    problems = []
    if not complete:
        problems.append(f"the answer was cut ({result.stop_reason.value}), so the fix may be too")
    fix_parses = not (
        ctx.language
        and syntax.has_errors(new_text, ctx.language)
        and not syntax.has_errors(request.text, ctx.language)
    )
    if not fix_parses:
        problems.append("the proposed code does not parse")
    if not diff:
        problems.append("the proposed code is the same as yours")
    return Outcome(
        answer=result.text,
        complete=complete,
        fix=fix,
        new_text=new_text,
        diff=diff,
        fix_parses=fix_parses,
        lines=lines or edits.replaced_lines(request.text, new_text),
        problems=problems,
    )
