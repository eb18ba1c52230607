"""`starchat-lsp models list | pull NAME | path NAME | remove NAME`: the local model cache."""

from __future__ import annotations

import argparse
import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from starchat_lsp.cli import terminal
from starchat_lsp.models.catalogue import DEFAULT_MODEL
from starchat_lsp.models.store import ModelStore

_STAGES = {
    "wait": "waiting for another pull of this model",
    "download": "downloading",
    "verify": "joining and verifying",
    "copy": "copying",
    "convert": "converting to transformers",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "models",
        help="list, pull, locate or remove local models",
        description="Manage the local model cache (set STARCHAT_LSP_CACHE to move it).",
    )
    actions = parser.add_subparsers(dest="models_action", metavar="ACTION", required=True)
    actions.add_parser("list", help="the catalogue and what is pulled")
    pull = actions.add_parser("pull", help="download (or copy) and convert a model")
    pull.add_argument(
        "name",
        nargs="?",
        default=DEFAULT_MODEL,
        help=f"a catalogue name (default {DEFAULT_MODEL}), a .gguf file, a model folder "
        "or a Hugging Face hub id",
    )
    path = actions.add_parser("path", help="print a pulled model's folder (for scripts)")
    path.add_argument("name")
    remove = actions.add_parser("remove", help="delete a pulled model from the cache")
    remove.add_argument("name")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    store = ModelStore()
    action: str = args.models_action
    if action == "list":
        return _list(store)
    if action == "pull":
        return _pull(store, args.name)
    if action == "path":
        print(store.path(args.name))
        return 0
    if store.remove(args.name):
        print(f"removed {args.name}")
    else:
        print(f"{args.name} is not in the cache ({store.root}): nothing removed")
    return 0


def _list(store: ModelStore) -> int:
    table = Table(box=None, pad_edge=False, caption=f"* default model; cache: {store.root}")
    for column in ("NAME", "PULLED", "SIZE", "DESCRIPTION"):
        table.add_column(column, justify="right" if column == "SIZE" else "left")
    for status in store.list():
        table.add_row(
            ("* " if status.is_default else "  ") + status.name,
            "yes" if status.pulled else "no",
            _human(status.size_on_disk) if status.size_on_disk else "-",
            status.description,
        )
    Console().print(table)
    return 0


def _pull(store: ModelStore, name: str) -> int:
    started = time.monotonic()
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
    )
    tasks: dict[str, TaskID] = {}
    console = terminal.stderr
    # Bars only in a terminal: in a log or a script, stderr keeps to errors.
    with Progress(*columns, console=console, disable=not console.is_terminal) as bars:

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                for task in tasks.values():  # a new stage means the earlier ones are done
                    bars.update(task, total=1, completed=1)
                tasks[stage] = bars.add_task(_STAGES.get(stage, stage), total=None, detail="")
            if not total:
                detail = ""
            elif stage == "convert":
                detail = f"{done}/{total} tensors"
            else:
                detail = f"{_human(done)} / {_human(total)}"
            bars.update(tasks[stage], completed=done, total=total or None, detail=detail)

        folder = store.pull(name, progress=report)
        for task in tasks.values():
            bars.update(task, total=1, completed=1)
    took = time.monotonic() - started
    print(f"{folder.parent.name} is ready ({took:.0f} s): {folder}")
    return 0


def _human(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"
