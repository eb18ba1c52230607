"""`starchat-lsp serve`: the language server over stdio (default) or TCP."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import socket
import sys
from typing import TYPE_CHECKING, Any

from starchat_lsp.cli.errors import UserError

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from starchat_lsp.server import StarchatServer


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
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="let --tcp listen on a host other than loopback (no authentication: anyone who "
        "can reach the port can read the code sent and run the model)",
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
    if host.startswith("[") and host.endswith("]"):  # an IPv6 literal, as in [::1]:2087
        host = host[1:-1]
    return host or "127.0.0.1", number


def is_loopback(host: str) -> bool | None:
    """Whether every address `host` stands for is this machine's own; None if it won't resolve."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return None  # listening fails on it with its own clear line
    return all(ipaddress.ip_address(info[4][0]).is_loopback for info in found)


def check_exposure(host: str, allow_remote: bool) -> None:
    """Refuse a non-loopback host without --allow-remote; with it, warn on stderr."""
    if is_loopback(host) is not False:
        return
    if not allow_remote:
        raise UserError(
            f"--tcp {host} listens beyond this machine, with no authentication: add "
            "--allow-remote if you mean it, or leave the host out for 127.0.0.1"
        )
    # Printed, not only logged: the log may go to a file the user never reads.
    print(
        f"starchat-lsp: warning: listening on {host}, reachable from other machines, with no "
        "authentication: anyone who can connect can read the code sent and run the model",
        file=sys.stderr,
        flush=True,
    )


def run(args: argparse.Namespace) -> int:
    from starchat_lsp.server import create_server

    address = parse_address(args.tcp) if args.tcp else None  # a bad one fails before any work
    if address is not None:
        check_exposure(address[0], getattr(args, "allow_remote", False))
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
    end_process_on_exit(server)
    if address is None:
        server.start_io()
    else:
        try:
            server.start_tcp(*address)
        except OSError as error:  # the host does not resolve, the port is taken or not allowed
            # asyncio's bind error repeats the address; the errno's own words are enough
            errno = error.errno if isinstance(error.errno, int) else 0
            reason = os.strerror(errno) if errno > 0 else error.strerror or str(error)
            raise UserError(f"cannot listen on {address[0]}:{address[1]}: {reason}") from None
    # The client went away without `exit` (stdin or the socket closed): leave now. A load or a
    # generation still running on a worker thread would otherwise keep the process alive and
    # write to a closed stdout.
    server.host.close()
    logging.shutdown()
    os._exit(0)


def end_process_on_exit(server: StarchatServer) -> None:
    """End the process as soon as `exit` arrives, over stdio and TCP alike.

    pygls ends it with `sys.exit` from inside the message handler. Over stdio `start_io` catches
    that; over TCP the SystemExit escapes the connection task, asyncio logs it as an unhandled
    exception with a traceback, and either way `asyncio.run` then waits for the worker threads:
    a model load in progress (seconds) or a generation's last token. Exit code as LSP says: 0
    after `shutdown`, 1 without it.
    """
    from lsprotocol import types

    @server.feature(types.EXIT)
    def leave(ls: StarchatServer, params: None) -> None:
        code = 0 if getattr(ls.protocol, "_shutdown", True) else 1
        log.info("exit received: ending the process (code %d)", code)
        ls.host.close()
        logging.shutdown()
        os._exit(code)
