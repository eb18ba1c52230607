"""A small JSON-RPC client for end-to-end server tests that need what pytest-lsp hides: a TCP
socket, the server's process id (for its memory), and the arrival time of every message.

Messages are LSP frames (Content-Length header, JSON body) over any byte stream: a server
process's stdin/stdout, or a socket. A reader thread files replies by id and partial results
(`$/progress` without a `kind`) by token, each with the `time.monotonic()` it arrived; the server's
own requests (`window/workDoneProgress/create`) are answered with a `null` result.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

SERVER = [sys.executable, "-m", "starchat_lsp", "serve"]
REPLY_TIMEOUT_S = 30.0
HANG_GUARD_S = 120.0  # for waits on what must come (a run stopping): only a hang takes this long


class ServerGone(Exception):
    """The server closed the connection while a reply was awaited."""


class RawLspClient:
    def __init__(self, reader: IO[bytes], write: Callable[[bytes], None]) -> None:
        self._reader = reader
        self._write = write
        self._write_lock = threading.Lock()
        self._changed = threading.Condition()
        self._ids = itertools.count(1)
        self.replies: dict[Any, dict[str, Any]] = {}
        self.reply_times: dict[Any, float] = {}
        self.partial: dict[Any, list[tuple[float, Any]]] = {}  # token -> [(arrived, value)]
        self.notifications: list[dict[str, Any]] = []
        self.notification_times: list[float] = []  # when each of `notifications` arrived
        self.server_requests: list[dict[str, Any]] = []  # e.g. workspace/applyEdit
        self.closed = False
        threading.Thread(target=self._read_frames, daemon=True).start()

    # -- reading ---------------------------------------------------------------------------

    def _read_frames(self) -> None:
        try:
            while (message := self._read_one()) is not None:
                self._file(message, time.monotonic())
        except (OSError, ValueError):
            pass  # the socket was closed under us: the same as the end of the stream
        with self._changed:
            self.closed = True
            self._changed.notify_all()

    def _read_one(self) -> dict[str, Any] | None:
        length = None
        while (line := self._reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("ascii").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        if not line or length is None:
            return None
        body = self._reader.read(length)
        if len(body) < length:
            return None
        message: dict[str, Any] = json.loads(body)
        return message

    def _file(self, message: dict[str, Any], arrived: float) -> None:
        method = message.get("method")
        if method is not None and "id" in message:  # a request from the server
            with self._changed:
                self.server_requests.append(message)
            self.send({"jsonrpc": "2.0", "id": message["id"], "result": None})
            return
        with self._changed:
            if method is None:
                self.replies[message.get("id")] = message
                self.reply_times[message.get("id")] = arrived
            elif method == "$/progress" and "kind" not in (message["params"]["value"] or {}):
                params = message["params"]
                self.partial.setdefault(params["token"], []).append((arrived, params["value"]))
            else:
                self.notifications.append(message)
                self.notification_times.append(arrived)
            self._changed.notify_all()

    # -- writing ---------------------------------------------------------------------------

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps(message).encode()
        with self._write_lock:
            self._write(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def notify(self, method: str, params: Any) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def send_request(self, method: str, params: Any) -> int:
        """Send a request without waiting; returns its id."""
        msg_id = next(self._ids)
        self.send({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
        return msg_id

    # -- waiting ---------------------------------------------------------------------------

    def wait_until(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not condition():
                left = deadline - time.monotonic()
                if self.closed:
                    raise ServerGone(f"the server closed the connection while waiting for {what}")
                if left <= 0:
                    raise TimeoutError(f"no {what} within {timeout} s")
                self._changed.wait(left)

    def reply(self, msg_id: int, timeout: float = REPLY_TIMEOUT_S) -> dict[str, Any]:
        self.wait_until(lambda: msg_id in self.replies, timeout, f"reply to request {msg_id}")
        return self.replies[msg_id]

    def request(self, method: str, params: Any, timeout: float = REPLY_TIMEOUT_S) -> Any:
        """Send a request and return its result; an error reply fails with AssertionError."""
        reply = self.reply(self.send_request(method, params), timeout)
        assert "error" not in reply, reply
        return reply["result"]

    def chunks(self, token: Any) -> int:
        with self._changed:
            return len(self.partial.get(token, []))

    def chunk_counts(self) -> dict[Any, int]:
        """How many partial results each token got so far."""
        with self._changed:
            return {token: len(values) for token, values in self.partial.items()}

    def wait_for_chunks(self, token: Any, count: int = 1, timeout: float = REPLY_TIMEOUT_S) -> None:
        self.wait_until(lambda: self.chunks(token) >= count, timeout, f"partial result {token}")

    def status_when(
        self, holds: Callable[[dict[str, Any]], bool], what: str, timeout: float = HANG_GUARD_S
    ) -> dict[str, Any]:
        """`starchat/status` once `holds` it, asked every 50 ms. `timeout` only stops a hung
        test: how soon it comes is for bench/ to measure."""
        deadline = time.monotonic() + timeout
        while not holds(status := self.request("starchat/status", None)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {what} within {timeout:g} s: {status}")
            time.sleep(0.05)
        result: dict[str, Any] = status
        return result

    def idle(self) -> dict[str, Any]:
        """`starchat/status` once no model run is left: a cancelled or superseded request is
        answered at once, its run stops a token later."""
        return self.status_when(lambda status: not status["running"], "end of the model runs")

    # -- the LSP session -------------------------------------------------------------------

    def initialize(self, options: Any) -> dict[str, Any]:
        """`initialize` then `initialized`: the server starts loading the model `options` name."""
        result: dict[str, Any] = self.request(
            "initialize",
            {"processId": os.getpid(), "rootUri": None, "capabilities": {}, **options},
        )
        self.notify("initialized", {})
        return result

    def open(self, uri: str, text: str, version: int = 1) -> None:
        self.notify(
            "textDocument/didOpen",
            {
                "textDocument": {
                    "uri": uri,
                    "languageId": "python",
                    "version": version,
                    "text": text,
                }
            },
        )

    def shutdown_and_exit(self) -> None:
        assert self.request("shutdown", None) is None
        self.notify("exit", None)


def tiny_options(model: Path, max_new_tokens: int) -> dict[str, Any]:
    """initialize params that load the tiny test model (fp32: the same on every CPU)."""
    return {
        "initializationOptions": {
            "model": {"name": str(model), "dtype": "float32"},
            "generation": {"max_new_tokens": max_new_tokens},
        }
    }


def whole_lines(first: int, end: int) -> dict[str, Any]:
    return {"start": {"line": first, "character": 0}, "end": {"line": end, "character": 0}}


def start_stdio_server(
    stderr_path: Path, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], RawLspClient]:
    """The real server process on stdio, its stderr to a file; the caller ends it.

    `env` adds to this process's environment (the fault-injection variables, for example).
    """
    with stderr_path.open("wb") as stderr:
        proc = subprocess.Popen(
            SERVER,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=None if env is None else {**os.environ, **env},
        )
    assert proc.stdin is not None and proc.stdout is not None
    stdin = proc.stdin

    def write(data: bytes) -> None:
        stdin.write(data)
        stdin.flush()

    return proc, RawLspClient(proc.stdout, write)


def connect_tcp(host: str, port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> Any:
    """Connect to the server's port, retrying while the process starts up; a socket."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return socket.create_connection((host, port), timeout=REPLY_TIMEOUT_S)
        except OSError:
            if proc.poll() is not None:
                raise
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def socket_client(sock: socket.socket) -> RawLspClient:
    return RawLspClient(sock.makefile("rb"), sock.sendall)


def free_port(host: str = "127.0.0.1") -> int:
    """A port that nothing listens on now (the OS picks it; closed again at once)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def rss_bytes(pid: int) -> int:
    """Resident memory of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


def rss_with_model(pid: int, client: RawLspClient) -> int:
    """Resident memory of the server and of its model worker (another process: the model's
    memory, its key-value cache included, lives there)."""
    worker = client.request("starchat/status", None)["worker"]
    model = rss_bytes(worker["pid"]) if worker and worker.get("pid") else 0
    return rss_bytes(pid) + model


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Kill the process if it is still running (after a failed test)."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def log_tail(path: Path) -> str:
    return "\nserver stderr:\n" + path.read_text(errors="replace")[-3000:]
