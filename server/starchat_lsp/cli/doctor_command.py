"""`doctor`: what a user runs when something is wrong. The CPU, the runtimes, a short answer
from each backend in its own worker process, and what to set on this machine."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console
from rich.markup import escape

from starchat_lsp.cli import terminal
from starchat_lsp.engine import checkup
from starchat_lsp.models.catalogue import DEFAULT_MODEL
from starchat_lsp.models.store import ModelStore

OUTCOME_STYLE = {"ok": "green", "crashed": "red", "error": "red", "not installed": "yellow"}


def register(subparsers: Any) -> None:
    help_text = "check this machine: CPU, runtimes, a short answer from each backend"
    parser = subparsers.add_parser("doctor", help=help_text, description=help_text)
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"the model to try (default: {DEFAULT_MODEL})"
    )
    parser.add_argument(
        "--backend",
        action="append",
        choices=checkup.LOCAL_BACKENDS,
        help="try only this backend (repeat for several; default: all)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    backends = tuple(args.backend) if args.backend else checkup.LOCAL_BACKENDS
    console = Console(highlight=False, soft_wrap=True)
    if args.json:
        found = checkup.examine(args.model, backends)
    else:
        console.print(f"[dim]trying {args.model} on {', '.join(backends)}…[/dim]")
        # A first transformers use converts the GGUF (minutes for a large model): its progress.
        with terminal.stderr.status(f"loading {args.model}…") as status:
            found = checkup.examine(
                args.model,
                backends,
                lambda backend, message: status.update(f"{backend}: {message}…"),
            )
    models = [
        {"name": m.name, "size_on_disk": m.size_on_disk, "default": m.is_default}
        for m in ModelStore().list()
        if m.pulled
    ]
    if args.json:
        print(json.dumps({**found.as_dict(), "models": models}))
    else:
        _print(console, found, models)
    return 0 if found.default_answers else 1


def _print(console: Console, found: checkup.Checkup, models: list[dict[str, Any]]) -> None:
    amx = " (AMX)" if found.amx_cpu else ""
    console.print(f"[bold]CPU[/bold]       {escape(found.cpu_model)}{amx}, {found.cores} cores")
    console.print(f"          {' '.join(found.flags) or 'no AVX2'}")
    versions = found.versions
    llama = versions.get("llama-cpp-python")
    if llama is None:
        console.print("[bold]llama.cpp[/bold] not installed (pip install 'starchat-lsp[llamacpp]')")
    else:
        path = "with the AMX path" if found.llamacpp_amx_path else "without the AMX path"
        console.print(f"[bold]llama.cpp[/bold] llama-cpp-python {llama}, built {path}")
    console.print(
        f"[bold]torch[/bold]     {versions.get('torch') or 'not installed'}, "
        f"transformers {versions.get('transformers') or 'not installed'}"
    )
    pulled = ", ".join(
        f"{m['name']}{'*' if m['default'] else ''} ({m['size_on_disk'] / 1e9:.1f} GB)"
        for m in models
    )
    console.print(f"[bold]models[/bold]    {pulled or 'none pulled'}")
    for result in found.smoke:
        style = OUTCOME_STYLE.get(result.outcome, "white")
        line = f"[{style}]{result.outcome.upper()}[/{style}]"
        if result.outcome == "ok":
            line += (
                f" · loaded in {result.load_s or 0:.1f} s"
                f" · first token {result.first_token_s or 0:.2f} s"
                f" · {result.tokens_per_s} tokens/s"
            )
        elif result.message:
            line += f" · {escape(result.message)}"
        console.print(f"[bold]{result.backend:<12}[/bold]{line}")
    for advice in found.advice:
        console.print(f"[bold]set[/bold]       {escape(advice)}")
