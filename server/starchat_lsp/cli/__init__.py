"""The `starchat-lsp` command: one module per subcommand, each with `register(subparsers)`."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from starchat_lsp import __version__
from starchat_lsp.cli.errors import UserError
from starchat_lsp.errors import EngineError


def build_parser() -> argparse.ArgumentParser:
    from starchat_lsp.cli import (
        code_commands,
        doctor_command,
        eval_command,
        models_command,
        serve_command,
    )

    parser = argparse.ArgumentParser(
        prog="starchat-lsp",
        description="A local coding assistant: feedback, fixes and explanations from a code model.",
    )
    parser.add_argument("--version", action="version", version=f"starchat-lsp {__version__}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log details to stderr, the model runtime's own log included",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (code_commands, models_command, serve_command, eval_command, doctor_command):
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.verbose:  # the model runtime's own log too: llama.cpp's load, metadata, template
        logging.getLogger("starchat_lsp.runtime").setLevel(logging.DEBUG)
    # No hub downloads unless the user opts in: this tool runs offline.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        code: int = args.func(args)
        return code
    except (UserError, EngineError) as error:
        print(f"starchat-lsp: error: {error}", file=sys.stderr)
        return getattr(error, "exit_code", 1)
    except KeyboardInterrupt:
        print("starchat-lsp: stopped", file=sys.stderr)
        return 130
