"""`starchat-lsp serve`: the language server over stdio (default) or TCP."""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any

from starchat_lsp.cli.errors import UserError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the language server (stdio unless --tcp)",
        description="Run the language server. stdout carries only JSON-RPC; logs go to stderr.",
    )
    parser.add_argument(
        "--tcp",
        metavar="[HOST:]PORT",
        default=None,
        help="listen on TCP instead of stdio (host 127.0.0.1 unless given)",
    )
    parser.add_argument("--log-file", default=None, help="also write the log to this file")
    parser.set_defaults(func=run)


def parse_address(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise UserError(f"bad --tcp address {value!r}: write PORT or HOST:PORT") from None
    if not 0 < number < 65536:
        raise UserError(f"bad --tcp port {number}: use 1-65535")
    return host or "127.0.0.1", number


def run(args: argparse.Namespace) -> int:
    from starchat_lsp.server import create_server

    root = logging.getLogger()
    if root.level > logging.INFO:
        root.setLevel(logging.INFO)
    if args.log_file:
        handler = logging.FileHandler(args.log_file)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    # pygls logs every message body at INFO: keep that out of the user's log.
    logging.getLogger("pygls").setLevel(logging.WARNING)
    server = create_server()
    address = parse_address(args.tcp) if args.tcp else None
    if address is None:
        server.start_io()
    else:
        server.start_tcp(*address)
    # `exit` was received: leave now. A load or a generation still running on a worker thread
    # would otherwise keep the process alive and write to a closed stdout.
    server.host.close()
    logging.shutdown()
    os._exit(0)
