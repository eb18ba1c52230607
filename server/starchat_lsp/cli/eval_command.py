"""`starchat-lsp eval run | judge | complete | report`: answer a prompt set, judge the answers,
benchmark completion on holes cut from real code, report."""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from starchat_lsp import sandbox
from starchat_lsp.cli import terminal
from starchat_lsp.cli.engine_options import add_engine_options
from starchat_lsp.cli.errors import UserError
from starchat_lsp.engine.base import Engine, GenerationSettings
from starchat_lsp.engine.factory import open_engine
from starchat_lsp.eval import complete_runner, holes, judge, runner
from starchat_lsp.eval.candidates import CandidateError, engine_settings, label
from starchat_lsp.eval.prompt_sets import (
    PROMPT_TYPES,
    PromptSetError,
    load_prompts,
    shipped_prompts_path,
)
from starchat_lsp.models.catalogue import DEFAULT_MODEL
from starchat_lsp.settings import CompletionOptions

MODEL_HELP = (
    "a catalogue name, model folder or hub id; NAME@llamacpp for llama.cpp; "
    "http://HOST:PORT[#MODEL] for a serving engine"
)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="evaluate models on a prompt set: run, judge, report",
        description="Answer a prompt set with one or two models, run the tests on their code, "
        "score the answers with a judge model and write a report.",
    )
    actions = parser.add_subparsers(dest="eval_action", metavar="ACTION", required=True)

    run = actions.add_parser("run", help="answer the prompts and test the code (resumable)")
    run.add_argument(
        "--model",
        action="append",
        dest="models",
        metavar="MODEL",
        help=f"a candidate (give twice to compare two; default {DEFAULT_MODEL}): {MODEL_HELP}",
    )
    run.add_argument(
        "--prompts",
        type=Path,
        default=None,
        help="a JSONL prompt set (default: the set shipped with starchat-lsp)",
    )
    run.add_argument("--out", type=Path, required=True, help="the run folder (created or resumed)")
    run.add_argument("--type", choices=PROMPT_TYPES, default=None, help="only prompts of this type")
    run.add_argument(
        "--limit", type=int, default=None, metavar="N", help="only the first N prompts"
    )
    run.add_argument("--max-new-tokens", type=int, default=512, metavar="N")
    run.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    run.add_argument(
        "--answer-time-limit",
        type=float,
        default=180.0,
        metavar="SECONDS",
        help="stop one answer's generation after this long (default 180)",
    )
    run.add_argument(
        "--test-time-limit",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="kill the tests of one answer after this long (default 10)",
    )
    run.add_argument(
        "--test-memory-mb",
        type=int,
        default=512,
        metavar="MB",
        help="memory limit of the process running the tests (default 512)",
    )
    _engine_options(run)
    run.set_defaults(func=run_eval)

    scoring = actions.add_parser("judge", help="score the answers of a run folder with a judge")
    scoring.add_argument("--judge", required=True, metavar="MODEL", help=MODEL_HELP)
    scoring.add_argument("folder", type=Path, metavar="DIR", help="the run folder")
    scoring.add_argument(
        "--max-new-tokens",
        type=int,
        default=256,
        metavar="N",
        help="room for the judge's scores and reasons (default 256)",
    )
    _engine_options(scoring)
    scoring.set_defaults(func=run_judge)

    _register_complete(actions)

    report = actions.add_parser("report", help="write report.md, report.html and a chart")
    report.add_argument("folder", type=Path, metavar="DIR", help="the run folder")
    report.set_defaults(func=run_report)


def _register_complete(actions: Any) -> None:
    defaults = CompletionOptions()
    complete = actions.add_parser(
        "complete",
        help="benchmark completion on holes cut from real code (resumable)",
        description="Cut holes (a whole line, the rest of a line, a function body, a body with "
        "doctests) from real Python files, seeded, and fill each the way the editor does at that "
        "cursor: one run per model, prompt (fim, chat) and context size. Scores: exact match, "
        "edit similarity, whether the file still parses, how often nothing was suggested, "
        "latency, and the doctests of function bodies.",
    )
    complete.add_argument(
        "--source",
        type=Path,
        default=None,
        metavar="DIR",
        help=f"the .py files to cut from (default: the standard library, {holes.stdlib_root()})",
    )
    complete.add_argument(
        "--model",
        action="append",
        dest="models",
        metavar="MODEL",
        help=f"a model (give several to compare; default {DEFAULT_MODEL}): {MODEL_HELP}",
    )
    complete.add_argument(
        "--kinds",
        default=",".join(holes.KINDS),
        help=f"the kinds of hole, comma-separated (default {','.join(holes.KINDS)})",
    )
    complete.add_argument(
        "--count", type=int, default=20, metavar="N", help="holes of each kind (default 20)"
    )
    complete.add_argument("--seed", type=int, default=0, help="the holes' seed (default 0)")
    complete.add_argument(
        "--modes",
        default="fim,chat",
        help="the prompts to compare: fim (fill-in-the-middle, for a model that has it), "
        "fim-line (fill-in-the-middle with the cursor line's start after the middle token), "
        "fim-spm (suffix, prefix, then middle), chat "
        "(default: fim,chat); each with "
        "+files (fim+files) also gives the definitions from other files of --source that the "
        "hole's code uses (completion.other_files); +typed (fim+typed) asks each hole just "
        "after the same request one key earlier, as while typing (the KV cache then holds "
        "that prompt); +moved (fim+moved) asks each hole just after a request at another "
        "place of the file, 8 to 64 lines away (the cursor moved there)",
    )
    complete.add_argument(
        "--context-tokens",
        type=int,
        action="append",
        metavar="N",
        help="text around the cursor the model sees (completion.max_context_tokens; default "
        f"{defaults.max_context_tokens}); give several to compare",
    )
    complete.add_argument(
        "--max-new-tokens",
        type=int,
        default=defaults.max_new_tokens,
        metavar="N",
        help=f"completion.max_new_tokens (default {defaults.max_new_tokens}; a line gets 48)",
    )
    complete.add_argument("--out", type=Path, required=True, help="the run folder")
    _engine_options(complete)
    complete.set_defaults(func=run_complete)


def _engine_options(parser: argparse.ArgumentParser) -> None:
    add_engine_options(
        parser,
        "for models without @BACKEND: auto (default: llama.cpp for a pulled model on a CPU, "
        "else transformers), transformers or llamacpp",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        metavar="N",
        help="llama.cpp: CPU threads (default 0: as many as there are cores)",
    )


def _open_engine(spec: str, args: argparse.Namespace) -> Engine:
    try:
        settings = engine_settings(spec)  # a label: any backend but transformers is in it
    except CandidateError as error:
        raise UserError(str(error)) from None
    if args.threads < 0:
        raise UserError("--threads must be 0 (all cores) or more")
    engine = open_engine(
        dataclasses.replace(settings, device=args.device, dtype=args.dtype, threads=args.threads),
        notify=lambda message: terminal.stderr.print(f"[yellow]{message}[/yellow]"),
    )
    terminal.load_engine(engine)
    return engine


@contextmanager
def _progress(total: int, what: str) -> Iterator[Progress]:
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[last]}"),
        console=terminal.stderr,
    )
    with progress:
        progress.add_task(what, total=total, last="")
        yield progress


def _positive(value: float | None, option: str) -> None:
    if value is not None and value <= 0:
        raise UserError(f"{option} must be more than 0")


def run_eval(args: argparse.Namespace) -> int:
    for value, option in (
        (args.limit, "--limit"),
        (args.max_new_tokens, "--max-new-tokens"),
        (args.answer_time_limit, "--answer-time-limit"),
        (args.test_time_limit, "--test-time-limit"),
        (args.test_memory_mb, "--test-memory-mb"),
    ):
        _positive(value, option)
    if args.temperature < 0:
        raise UserError("--temperature must be 0 or more")
    try:
        # A bad name fails before anything is written; the backend becomes part of the name.
        models = [label(spec, args.backend) for spec in args.models or [DEFAULT_MODEL]]
    except CandidateError as error:
        raise UserError(str(error)) from None
    if len(models) > 2 or len(set(models)) != len(models):
        raise UserError("give --model once, or twice with two different models to compare")
    settings = runner.RunSettings(
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        answer_time_limit_s=args.answer_time_limit,
        limits=sandbox.Limits(time_s=args.test_time_limit, memory_mb=args.test_memory_mb),
    )
    try:
        chosen = load_prompts(args.prompts or shipped_prompts_path(), args.type, args.limit)
        runner.prepare_folder(args.out, models, chosen, settings)
    except (PromptSetError, runner.RunFolderError) as error:
        raise UserError(str(error)) from None
    except OSError as error:
        raise UserError(f"can't write the run folder {args.out}: {error.strerror}") from None
    for name in models:
        todo = runner.pending(args.out, name, chosen)
        if not todo:
            terminal.stderr.print(f"{name}: all {len(chosen)} prompts already answered")
            continue
        done = len(chosen) - len(todo)
        if done:
            terminal.stderr.print(f"{name}: resuming, {done} of {len(chosen)} already answered")
        with runner.opened(_open_engine(name, args)) as engine, _progress(len(todo), name) as bar:

            def advance(answered: runner.Answered, bar: Progress = bar) -> None:
                check = answered.record["check"]
                last = f"{answered.prompt.id}: {check['status'] if check else 'answered'}"
                bar.update(bar.task_ids[0], advance=1, last=last)

            runner.answer_all(args.out, name, engine, todo, settings, advance)
    terminal.stderr.print(
        f"answers in {args.out / 'answers.jsonl'}; next: starchat-lsp eval judge --judge MODEL "
        f"{args.out}"
    )
    return 0


def run_judge(args: argparse.Namespace) -> int:
    _positive(args.max_new_tokens, "--max-new-tokens")
    try:
        judge_name = label(args.judge, args.backend)  # a bad name fails before anything loads
        todo = judge.pending(args.folder, judge_name, judge.plan(args.folder))
    except (CandidateError, judge.JudgeError, PromptSetError) as error:
        raise UserError(str(error)) from None
    if not todo:
        terminal.stderr.print(f"{args.folder}: every answer is judged already")
        return 0
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens, temperature=0.0, seed=0)
    with (
        runner.opened(_open_engine(judge_name, args)) as engine,
        _progress(len(todo), f"judge {judge_name}") as bar,
    ):

        def advance(record: dict[str, Any]) -> None:
            scores = record["scores"]
            shown = " ".join(f"{v:g}" for v in scores.values()) if scores else "unparsed"
            bar.update(bar.task_ids[0], advance=1, last=f"{record['prompt_id']}: {shown}")

        judge.judge_all(args.folder, judge_name, engine, todo, settings, advance)
    terminal.stderr.print(f"judgments in {args.folder / 'judgments.jsonl'}")
    return 0


def _choices(value: str, known: tuple[str, ...], option: str) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))
    unknown = [part for part in chosen if part not in known]
    if unknown or not chosen:
        raise UserError(f"{option}: use some of {','.join(known)} (not {','.join(unknown)})")
    return chosen


def run_complete(args: argparse.Namespace) -> int:
    kinds = _choices(args.kinds, holes.KINDS, "--kinds")
    prompts = _choices(args.modes, complete_runner.MODES, "--modes")
    contexts = list(dict.fromkeys(args.context_tokens or [CompletionOptions().max_context_tokens]))
    _positive(args.count, "--count")
    _positive(args.max_new_tokens, "--max-new-tokens")
    if min(contexts) < 64:
        raise UserError("--context-tokens must be at least 64")
    try:
        models = list(dict.fromkeys(label(s, args.backend) for s in args.models or [DEFAULT_MODEL]))
    except CandidateError as error:
        raise UserError(str(error)) from None
    source = (args.source or holes.stdlib_root()).resolve()
    if not source.is_dir():
        raise UserError(f"--source {source} is not a folder")
    settings = complete_runner.HoleSettings(
        source=source,
        kinds=kinds,
        count=args.count,
        seed=args.seed,
        max_new_tokens=args.max_new_tokens,
    )
    limits = sandbox.Limits()
    try:
        with terminal.stderr.status(f"cutting holes from {source}"):
            cut = complete_runner.prepare(args.out, settings, limits)
    except complete_runner.RunFolderError as error:
        raise UserError(str(error)) from None
    except OSError as error:
        raise UserError(f"can't write the run folder {args.out}: {error.strerror}") from None
    complete_runner.note_run(args.out, command=shlex.join(["starchat-lsp", *sys.argv[1:]]))
    for name in models:
        modes = [complete_runner.Mode.parse(name, p, c) for p in prompts for c in contexts]
        todo = {mode: complete_runner.pending(args.out, mode, cut) for mode in modes}
        if not any(todo.values()):
            terminal.stderr.print(f"{name}: all {len(cut)} holes already filled in every mode")
            continue
        with runner.opened(_open_engine(name, args)) as engine:
            for mode in modes:
                if mode.prompt in complete_runner.FIM_PROMPTS and not engine.fill_in_middle:
                    why = "the model has no fill-in-the-middle tokens"
                    complete_runner.note_not_applicable(args.out, mode.label, why)
                    terminal.stderr.print(f"{mode.label}: not run, {why}")
                    continue
                if todo[mode]:
                    _complete_mode(args.out, settings, engine, mode, todo[mode], limits)
    terminal.stderr.print(f"next: starchat-lsp eval report {args.out}")
    return 0


def _complete_mode(
    out: Path,
    settings: complete_runner.HoleSettings,
    engine: Engine,
    mode: complete_runner.Mode,
    todo: list[dict[str, Any]],
    limits: sandbox.Limits,
) -> None:
    with _progress(len(todo), mode.label) as bar:

        def advance(record: dict[str, Any]) -> None:
            shown = "exact" if record["exact"] else f"{record['similarity']:.2f}"
            bar.update(bar.task_ids[0], advance=1, last=f"{record['hole_id']}: {shown}")

        complete_runner.run_mode(out, settings, engine, mode, todo, limits, advance)


def run_report(args: argparse.Namespace) -> int:
    from starchat_lsp.eval import complete_report, report

    try:
        if complete_report.is_completion_folder(args.folder):
            written = complete_report.write_report(args.folder)
        else:
            written = report.write_report(args.folder)
    except (report.ReportError, PromptSetError) as error:
        raise UserError(str(error)) from None
    for path in written:
        print(path)
    return 0
