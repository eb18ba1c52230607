"""`starchat-lsp models list | pull NAME | path NAME | remove NAME`: the local model cache.

A pull fetches what the default backend (llama.cpp) runs: the verified GGUF. Its transformers copy
is converted on the transformers backend's first use, or at pull with `--backend transformers`;
`remove --keep-gguf` deletes that copy alone.
"""

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
from starchat_lsp.models.store import ModelStatus, ModelStore

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
    actions.add_parser(
        "list", help="the catalogue, what is pulled and its size on disk per backend"
    )
    pull = actions.add_parser(
        "pull",
        help="download (or copy) and verify a model",
        description="Download (or copy) and verify a model: a GGUF is what the default backend "
        "(llama.cpp) runs; the transformers backend converts it on first use.",
    )
    pull.add_argument(
        "name",
        nargs="?",
        default=DEFAULT_MODEL,
        help=f"a catalogue name (default {DEFAULT_MODEL}), a .gguf file, a model folder "
        "or a Hugging Face hub id",
    )
    pull.add_argument(
        "--backend",
        choices=("llamacpp", "transformers"),
        default="llamacpp",
        help="llamacpp (default): the GGUF only; transformers: also convert it to a "
        "transformers folder now (several times the GGUF's size on disk)",
    )
    path = actions.add_parser(
        "path", help="print a pulled model's folder: model.gguf, and hf/ once converted"
    )
    path.add_argument("name")
    remove = actions.add_parser("remove", help="delete a pulled model from the cache")
    remove.add_argument("name")
    remove.add_argument(
        "--keep-gguf",
        action="store_true",
        help="delete only the transformers copy converted from the GGUF (most of the space); "
        "llama.cpp keeps working, transformers converts again on its next use",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    store = ModelStore()
    action: str = args.models_action
    if action == "list":
        return _list(store)
    if action == "pull":
        return _pull(store, args.name, convert=args.backend == "transformers")
    if action == "path":
        print(store.path(args.name))
        return 0
    if args.keep_gguf:
        freed = store.remove_converted(args.name)
        if freed:
            print(f"removed the transformers copy of {args.name} ({_human(freed)}); its GGUF stays")
        else:
            print(f"{args.name} has no transformers copy in {store.root}: nothing removed")
        return 0
    if store.remove(args.name):
        print(f"removed {args.name}")
    else:
        print(f"{args.name} is not in the cache ({store.root}): nothing removed")
    return 0


def _list(store: ModelStore) -> int:
    table = Table(
        box=None,
        pad_edge=False,
        caption="* default model; GGUF: what llama.cpp (the default backend) runs; "
        f"TRANSFORMERS: converted from it on first use\ncache: {store.root}",
        caption_justify="left",
    )
    for column in ("NAME", "PULLED", "GGUF", "TRANSFORMERS", "TOTAL", "DESCRIPTION"):
        table.add_column(column, justify="left" if column in ("NAME", "DESCRIPTION") else "right")
    for status in store.list():
        table.add_row(
            ("* " if status.is_default else "  ") + status.name,
            "yes" if status.pulled else "no",
            _human(status.gguf_size) if status.gguf_size else "-",
            _transformers_column(status),
            _human(status.size_on_disk) if status.size_on_disk else "-",
            status.description,
        )
    Console().print(table)
    return 0


def _transformers_column(status: ModelStatus) -> str:
    if status.gguf_size is None or not status.pulled:  # no GGUF: the folder is the model
        return _human(status.transformers_size) if status.transformers_size else "-"
    if status.converted:
        return _human(status.transformers_size)
    if status.transformers_size:
        return f"outdated {_human(status.transformers_size)}"  # converted again on use
    return "not converted"


def _pull(store: ModelStore, name: str, *, convert: bool) -> int:
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
        if convert:
            store.converted(folder.name, progress=report)
        for task in tasks.values():
            bars.update(task, total=1, completed=1)
    took = time.monotonic() - started
    [status] = [s for s in store.list() if s.name == folder.name]
    print(f"{folder.name} is ready ({took:.0f} s, {_human(status.size_on_disk)}): {folder}")
    return 0


def _human(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"
