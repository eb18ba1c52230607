"""The shared model host: one process per user, model and settings, serving every language
server and terminal command on this machine through a Unix socket only the user can open.

It holds one `WorkerEngine` (the model in its own worker process, restarted and falled back as
that class says); every client's requests go to it and queue on the one model in the order they
came (generations of different clients never run at once: on a few cores two would thrash).
A fallback is announced to every client. The host exits `idle_s` after its last client left.

Started by `SharedEngine` (never by hand): `python -m starchat_lsp.engine.worker.host --socket
PATH --settings JSON [--restarts N] [--idle S]`.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from starchat_lsp.engine.factory import backend_order
from starchat_lsp.engine.worker import protocol
from starchat_lsp.engine.worker.engine import WorkerEngine
from starchat_lsp.engine.worker.serving import Requests

log = logging.getLogger(__name__)

IDLE_ENV = "STARCHAT_LSP_SHARED_IDLE_S"
DEFAULT_IDLE_S = 300.0
FIRST_CLIENT_WAIT_S = 60.0  # as long as a client waits for a host it started


def idle_seconds() -> float:
    try:
        return float(os.environ.get(IDLE_ENV, DEFAULT_IDLE_S))
    except ValueError:
        return DEFAULT_IDLE_S


class Host:
    def __init__(self, engine: WorkerEngine, idle_s: float) -> None:
        self._engine = engine
        self._idle_s = idle_s
        self._clients: dict[int, Requests] = {}  # by the connection's file descriptor
        self._lock = threading.Lock()
        self._started_at = time.monotonic()
        self._left_at: float | None = None  # when the last client left; None: none came yet
        self._pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="starchat-host")

    def notify(self, text: str) -> None:
        """Told to every client: a fallback concerns them all."""
        with self._lock:
            clients = list(self._clients.values())
        for requests in clients:
            requests.notice(text)

    def serve(self, listener: socket.socket) -> None:
        listener.settimeout(0.5)
        while True:
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                if self._idle():
                    return
                continue
            connection.settimeout(None)
            threading.Thread(
                target=self._client, args=(connection,), name="starchat-host-client", daemon=True
            ).start()

    def _idle(self) -> bool:
        """No client for `idle_s` since the last one left; or none came at all (its starter
        died before it connected) within the time a client waits for a host to start."""
        now = time.monotonic()
        with self._lock:
            if self._clients:
                return False
            if self._left_at is None:
                return now - self._started_at >= max(self._idle_s, FIRST_CLIENT_WAIT_S)
            return now - self._left_at >= self._idle_s

    def status(self) -> dict[str, object]:
        """The worker's health, and who uses the host: clients, generations in flight."""
        with self._lock:
            clients = len(self._clients)
            in_flight = sum(requests.in_flight for requests in self._clients.values())
        return {**self._engine.health, "clients": clients, "in_flight": in_flight}

    def _client(self, connection: socket.socket) -> None:
        key = connection.fileno()
        requests = Requests(self._engine, protocol.Writer(key), self._pool, status=self.status)
        with self._lock:
            self._clients[key] = requests
        try:
            with connection.makefile("rb") as reader:
                requests.serve(reader)
        finally:
            with self._lock:
                self._clients.pop(key, None)
                self._left_at = time.monotonic()
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()

    def close(self) -> None:
        self._engine.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="starchat-lsp shared model host")
    parser.add_argument("--socket", required=True, type=Path)
    parser.add_argument("--restarts", type=int, default=1)
    args, settings = protocol.start_process(parser, argv)
    resolved, backends = backend_order(settings)
    host: Host | None = None
    engine = WorkerEngine(
        settings,
        name=resolved.name,
        backends=backends,
        restarts=args.restarts,
        notify=lambda text: host.notify(text) if host is not None else None,
    )
    host = Host(engine, idle_seconds())
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_mask = os.umask(0o177)  # the socket file: the user's only
    try:
        listener.bind(str(args.socket))
    finally:
        os.umask(old_mask)
    listener.listen(64)
    try:
        host.serve(listener)
    finally:
        with contextlib.suppress(OSError):
            args.socket.unlink()
        listener.close()
        host.close()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
