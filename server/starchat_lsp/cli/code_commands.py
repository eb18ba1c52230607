"""`feedback`, `fix`, `explain` and `ask`: the assistant's main jobs without an editor."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.markup import escape

from starchat_lsp import tasks
from starchat_lsp.cli import terminal, verified_fix
from starchat_lsp.cli.engine_options import add_engine_options
from starchat_lsp.cli.errors import UserError
from starchat_lsp.cli.targets import parse_target, read_source, zero_based_range
from starchat_lsp.context import answers, prompts, syntax
from starchat_lsp.context.budget import ContextTooSmallError
from starchat_lsp.engine.base import Engine, GenerationResult, GenerationSettings
from starchat_lsp.engine.errors import ModelCrashedError
from starchat_lsp.engine.factory import EngineSettings, open_engine
from starchat_lsp.models.catalogue import DEFAULT_MODEL

HELP = {
    tasks.TaskKind.FEEDBACK: "stream a review of buggy code, then the proposed fix as a diff",
    tasks.TaskKind.FIX: "propose a fix as a diff (--apply writes it)",
    tasks.TaskKind.EXPLAIN: "explain what the code does",
}


def _model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help=f"catalogue name, model folder or hub id (default: {DEFAULT_MODEL})",
    )
    add_engine_options(
        parser, "auto (default): llama.cpp for a pulled model on a CPU (fast), else transformers"
    )
    parser.add_argument("--max-new-tokens", type=int, default=512, metavar="N")
    parser.add_argument(
        "--temperature",
        type=float,
        default=0.0,
        help="0 = greedy, the same answer every time (default)",
    )
    parser.add_argument("--system-prompt", default=None, help="replace the default system prompt")
    parser.add_argument("--json", action="store_true", help="print one JSON object at the end")


def register(subparsers: Any) -> None:
    for kind, help_text in HELP.items():
        parser = subparsers.add_parser(kind.value, help=help_text, description=help_text)
        parser.add_argument(
            "target",
            metavar="FILE[:START-END]",
            help="a file, a line (its function) or a range of lines, 1-based",
        )
        parser.add_argument(
            "--note", default=None, help="what you saw go wrong (an error, a wrong result)"
        )
        if kind in tasks.FIXING:
            parser.add_argument(
                "--apply",
                action="store_true",
                help="write the fix into the file (atomically, FILE.orig kept)",
            )
        if kind in tasks.VERIFIED:
            verified_fix.add_options(parser)
        _model_options(parser)
        parser.set_defaults(func=run_code_task, kind=kind)
    ask = subparsers.add_parser("ask", help="write code for an instruction (code to stdout)")
    ask.add_argument("instruction")
    ask.add_argument("--language", default=None, help="the language to write in")
    _model_options(ask)
    ask.set_defaults(func=run_ask)


def _settings(args: argparse.Namespace) -> GenerationSettings:
    if args.max_new_tokens < 1:
        raise UserError("--max-new-tokens must be at least 1")
    if args.temperature < 0:
        raise UserError("--temperature must be 0 or more")
    return GenerationSettings(max_new_tokens=args.max_new_tokens, temperature=args.temperature)


# A crash restarts the worker once, then falls back (auto): two retries reach the fallback.
CRASH_RETRIES = 2


def _engine(args: argparse.Namespace) -> Engine:
    """The model in the shared host (or a new one); a crash there falls back at once (`auto`)."""
    engine = open_engine(
        EngineSettings(
            model=args.model, backend=args.backend, device=args.device, dtype=args.dtype
        ),
        notify=lambda message: terminal.stderr.print(f"[yellow]{escape(message)}[/yellow]"),
        restarts=0,
    )
    try:
        terminal.load_engine(engine)
    except BaseException:
        engine.close()
        raise
    return engine


def _answering(engine: Engine, work: Callable[[], int]) -> int:
    """Run `work`; when the model runtime crashes and a new worker takes over, once more.

    A fallback to another backend was told on stderr as it happened (one line); the answer
    comes from the new worker. When no worker is left the error leaves as it is: one line and
    a non-zero exit.
    """
    try:
        for _ in range(CRASH_RETRIES):
            try:
                return work()
            except ModelCrashedError as crash:
                if not crash.retry:
                    raise
        return work()
    finally:
        engine.close()


def _stats(engine: Engine, result: GenerationResult) -> None:
    load_time = getattr(engine, "load_time_s", None)
    terminal.stderr.print(f"[dim]{terminal.describe(engine.name, result, load_time)}[/dim]")


def run_code_task(args: argparse.Namespace) -> int:
    kind: tasks.TaskKind = args.kind
    settings = _settings(args)
    target = parse_target(args.target)
    text = read_source(target.path)
    if not text.strip():
        raise UserError(f"{target.path} is empty: there is no code to look at")
    language = syntax.language_for_path(str(target.path))
    named = zero_based_range(target, text)
    if named is None:
        start, end = 0, len(text.splitlines()) - 1
    elif target.end is None:
        start, end = tasks.lines_for(text, language, named[0])
    else:
        start, end = named
    request = tasks.CodeRequest(
        text=text,
        path=str(target.path),
        start_line=start,
        end_line=end,
        language=language,
        note=args.note,
    )
    engine = _engine(args)
    return _answering(
        engine, lambda: _code_task(args, kind, settings, target.path, request, engine)
    )


def _code_task(
    args: argparse.Namespace,
    kind: tasks.TaskKind,
    settings: GenerationSettings,
    path: Path,
    request: tasks.CodeRequest,
    engine: Engine,
) -> int:
    try:
        prepared = tasks.prepare(
            kind,
            request,
            engine,
            max_new_tokens=settings.max_new_tokens,
            system_prompt=args.system_prompt,
        )
    except ContextTooSmallError as error:
        raise UserError(str(error)) from None
    for note in prepared.notes:
        terminal.stderr.print(f"[yellow]note:[/yellow] {note}")
    out = None if args.json else sys.stdout
    verified = None
    if kind in tasks.VERIFIED and not args.no_verify:
        verified = verified_fix.run(args, kind, request, engine, prepared, settings, out)
        outcome, result = verified.outcome, verified.draft_result
    else:
        result = terminal.stream_text(engine.chat(prepared.messages, settings), out)
        outcome = tasks.conclude(kind, request, prepared, result)
    applied = _apply(args, path, outcome) if kind in tasks.FIXING else False
    if args.json:
        found = _as_json(args, engine, request, prepared, outcome, result, applied)
        if verified is not None:
            found["verification"] = verified_fix.as_json(verified)
        print(json.dumps(found))
    else:
        _report(kind, outcome)
        if verified is not None:
            verified_fix.report(verified)
        _stats(engine, result)
    if getattr(args, "apply", False) and not applied:
        return 1
    return 0


def _report(kind: tasks.TaskKind, outcome: tasks.Outcome) -> None:
    sys.stdout.flush()  # the answer first, then the summary on stderr
    if outcome.lines:
        shown = ", ".join(str(line + 1) for line in outcome.lines)
        terminal.stderr.print(f"[bold]lines:[/bold] {shown}")
    if kind not in tasks.FIXING:
        return
    if not outcome.diff:
        terminal.stderr.print("[yellow]no fix proposed[/yellow] (no code block with a change)")
        return
    terminal.stderr.print("[bold]proposed fix:[/bold]")
    terminal.print_diff(outcome.diff)
    for problem in outcome.problems:
        terminal.stderr.print(f"[yellow]warning:[/yellow] {escape(problem)}")


def _apply(args: argparse.Namespace, path: Any, outcome: tasks.Outcome) -> bool:
    if not args.apply:
        return False
    if not outcome.applicable or outcome.new_text is None:
        reasons = "; ".join(outcome.problems) or "the answer has no fix"
        terminal.stderr.print(f"[red]not applied:[/red] {reasons}")
        return False
    backup = terminal.write_atomically(path, outcome.new_text)
    terminal.stderr.print(f"[green]applied[/green] to {path} (backup: {backup})")
    return True


def _as_json(
    args: argparse.Namespace,
    engine: Engine,
    request: tasks.CodeRequest,
    prepared: tasks.Prepared,
    outcome: tasks.Outcome,
    result: GenerationResult,
    applied: bool,
) -> dict[str, object]:
    return {
        "command": args.kind.value,
        "model": engine.name,
        "path": request.path,
        "start_line": request.start_line + 1,
        "end_line": request.end_line + 1,
        "answer": outcome.answer,
        "complete": outcome.complete,
        "lines": [line + 1 for line in outcome.lines],
        "fix": outcome.fix,
        "diff": outcome.diff,
        "problems": outcome.problems,
        "applied": applied,
        "notes": list(prepared.notes),
        "load_time_s": getattr(engine, "load_time_s", None),
        "metrics": result.as_dict(),
    }


def run_ask(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if not args.instruction.strip():
        raise UserError("the instruction is empty: say what code you want")
    engine = _engine(args)
    return _answering(engine, lambda: _ask(args, settings, engine))


def _ask(args: argparse.Namespace, settings: GenerationSettings, engine: Engine) -> int:
    messages = prompts.build_instruction_prompt(
        args.instruction, args.language, system_prompt=args.system_prompt
    )
    # The whole answer streams to stderr as it comes; stdout gets only the code, for pipes.
    result = terminal.stream_text(
        engine.chat(messages, settings), None if args.json else sys.stderr
    )
    blocks = answers.code_blocks(result.text)
    code = max(blocks, key=lambda block: len(block.code)).code if blocks else result.text
    if args.json:
        print(
            json.dumps(
                {
                    "command": "ask",
                    "model": engine.name,
                    "answer": result.text,
                    "code": code,
                    "metrics": result.as_dict(),
                }
            )
        )
    else:
        print(code)
        _stats(engine, result)
    return 0
