"""`starchat-lsp eval run | judge | report`: answer a prompt set, judge the answers, report."""

from __future__ import annotations

import argparse
import dataclasses
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
from starchat_lsp.eval import judge, runner
from starchat_lsp.eval.candidates import CandidateError, engine_settings, label
from starchat_lsp.eval.prompt_sets import (
    PROMPT_TYPES,
    PromptSetError,
    load_prompts,
    shipped_prompts_path,
)
from starchat_lsp.models.catalogue import DEFAULT_MODEL

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

    report = actions.add_parser("report", help="write report.md, report.html and a chart")
    report.add_argument("folder", type=Path, metavar="DIR", help="the run folder")
    report.set_defaults(func=run_report)


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


def run_report(args: argparse.Namespace) -> int:
    from starchat_lsp.eval import report

    try:
        written = report.write_report(args.folder)
    except (report.ReportError, PromptSetError) as error:
        raise UserError(str(error)) from None
    for path in written:
        print(path)
    return 0
