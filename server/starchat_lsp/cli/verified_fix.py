"""`feedback` and `fix` through the verification pipeline: the draft streams, then the checked fix.

stdout gets the draft as it comes and, when a checked fix other than the draft's wins, its
explanation under a `--- checked fix ---` line; stderr gets the stages and the verdict.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO

from rich.markup import escape

from starchat_lsp import tasks
from starchat_lsp.cli import terminal
from starchat_lsp.cli.errors import UserError
from starchat_lsp.engine.base import (
    CancelFlag,
    Engine,
    GenerationSettings,
)
from starchat_lsp.verify import pipeline
from starchat_lsp.verify.pipeline import Stage, Verified, VerifyOptions

_PROJECT_MARKERS = (".git", "pyproject.toml", "setup.py", "setup.cfg", "tox.ini")


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-verify",
        action="store_true",
        help="only the plain answer: no candidate fixes, no checks (faster)",
    )
    parser.add_argument(
        "--candidates",
        type=int,
        default=VerifyOptions().candidates,
        metavar="N",
        help="fixes to try, the first answer's included (default: %(default)s)",
    )
    parser.add_argument(
        "--verify-time",
        type=float,
        default=None,
        metavar="SECONDS",
        help="time for the fixes and tests drawn beside the first answer (default: its own limit)",
    )


def workspace_of(path: Path) -> Path:
    """The project the file is in (the nearest folder with .git or pyproject.toml), else its own."""
    folder = path.resolve().parent
    for candidate in (folder, *folder.parents):
        if any((candidate / marker).exists() for marker in _PROJECT_MARKERS):
            return candidate
    return folder


def options(args: argparse.Namespace, path: str | None) -> VerifyOptions:
    if args.candidates < 1:
        raise UserError("--candidates must be at least 1")
    if args.verify_time is not None and args.verify_time < 0:
        raise UserError("--verify-time must be 0 or more")
    return VerifyOptions(
        candidates=args.candidates,
        time_budget_s=args.verify_time,
        workspace=workspace_of(Path(path)) if path else None,
    )


def run(
    args: argparse.Namespace,
    kind: tasks.TaskKind,
    request: tasks.CodeRequest,
    engine: Engine,
    prepared: tasks.Prepared,
    settings: GenerationSettings,
    out: TextIO | None,
) -> Verified:
    flag = CancelFlag()

    def write(chunk: str) -> None:  # the draft, as it comes
        if out is not None:
            out.write(chunk)
            out.flush()

    def stage(step: Stage) -> None:
        if step.name not in ("done", "checking") and out is not None:
            terminal.stderr.print(f"[dim]{step.message}...[/dim]")

    try:
        verified = pipeline.run(
            kind,
            request,
            engine,
            prepared,
            settings,
            on_text=write,
            options=options(args, request.path),
            cancel=flag,
            on_stage=stage,
            system_prompt=args.system_prompt,
        )
    except KeyboardInterrupt:
        flag.cancel()  # every generation still running stops within a token
        raise
    if out is not None:
        if verified.draft_result.text and not verified.draft_result.text.endswith("\n"):
            out.write("\n")
        if verified.chosen not in (None, 0):  # a sample's fix, in its own words
            out.write(f"\n--- checked fix ---\n{verified.outcome.answer.strip()}\n")
    return verified


def report(verified: Verified) -> None:
    sys.stdout.flush()
    for check in verified.evidence:  # what we found to check, and where
        terminal.stderr.print(f"[bold]check[/bold] ({check.source}): {escape(check.code)}")
    if verified.generated:
        terminal.stderr.print(
            f"[dim]{len(verified.generated)} tests the model wrote ordered the fixes[/dim]"
        )
    colour = "green" if verified.verified else "yellow"
    tried = len(verified.candidates)
    terminal.stderr.print(
        f"[{colour}]{escape(verified.verdict)}[/{colour}] "
        f"[dim]({tried} distinct fix{'es' if tried != 1 else ''} tried in "
        f"{verified.seconds:.1f} s)[/dim]"
    )


def as_json(verified: Verified) -> dict[str, Any]:
    return {
        "verdict": verified.verdict,
        "verified": verified.verified,
        "chosen": verified.chosen,
        "draft_answer": verified.draft.answer,
        "evidence": [
            {"code": check.code, "source": check.source, "kind": check.kind}
            for check in verified.evidence
        ],
        "candidates": [
            {
                "votes": c.votes,
                "problems": c.assessment.problems,
                "changed_lines": c.assessment.changed_lines,
                "loads": c.assessment.loads,
                "passed": [check.code for check in c.assessment.passed],
                "failed": [
                    {"code": check.code, "detail": detail} for check, detail in c.assessment.failed
                ],
            }
            for c in verified.candidates
        ],
        "seconds": verified.seconds,
        "tokens_out": verified.tokens_out,
    }
