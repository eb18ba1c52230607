"""One model worker process, seen from its parent: start it, route its messages, see it die.

Each incarnation has three threads: one reads the worker's messages and hands each to the request
it names, one reads its stderr (its log, re-logged here at the level it was written with), and a
watchdog that pings a worker with requests in flight and kills one that stops answering. When
the pipe closes, every request in flight gets a "crashed" message with what happened.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from starchat_lsp.engine.factory import EngineSettings
from starchat_lsp.engine.worker import protocol
from starchat_lsp.engine.worker.protocol import Message

log = logging.getLogger(__name__)
RUNTIME = "starchat_lsp.runtime"  # the model runtime's own log: DEBUG, shown with --verbose
runtime_log = logging.getLogger(RUNTIME)

PING_EVERY_S = 1.0
# A worker with work in flight that answers nothing (not even a ping) this long is hung.
HANG_DEADLINE_ENV = "STARCHAT_LSP_WORKER_DEADLINE_S"
DEFAULT_HANG_DEADLINE_S = 30.0
STDERR_TAIL_LINES = 20
_LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}


@dataclass
class Pending:
    """A request in flight: its messages arrive on `inbox`; `tokens` is the latest count."""

    inbox: queue.Queue[Message] = field(default_factory=queue.Queue)
    tokens: int = 0


def hang_deadline_s() -> float:
    try:
        return float(os.environ.get(HANG_DEADLINE_ENV, DEFAULT_HANG_DEADLINE_S))
    except ValueError:
        return DEFAULT_HANG_DEADLINE_S


class WorkerProcess:
    def __init__(self, settings: EngineSettings) -> None:
        self.backend = settings.backend
        self._ids = itertools.count(1)
        self._pending: dict[int, Pending] = {}
        self._lock = threading.Lock()
        self._last_heard = time.monotonic()
        self._hung = False
        self._deadline_s = hang_deadline_s()
        self.death: str | None = None  # what happened, once the worker is gone
        self.reported: Exception | None = None  # the error its death was told as (once)
        self.gone = threading.Event()
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        log_r, log_w = os.pipe()
        level = logging.getLevelName(
            min(logging.getLogger(name).getEffectiveLevel() for name in ("starchat_lsp", RUNTIME))
        )
        wire = json.dumps(protocol.settings_to_wire(settings))
        command = [sys.executable, "-m", "starchat_lsp.engine.worker.child"]
        command += ["--input", str(to_child_r), "--output", str(from_child_w)]
        command += ["--settings", wire, "--log-level", str(level)]
        try:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log_w,  # native prints, never the parent's stdout (JSON-RPC there)
                stderr=log_w,
                pass_fds=(to_child_r, from_child_w),
                start_new_session=True,  # a Ctrl-C in the terminal is the CLI's to handle
            )
        finally:
            for fd in (to_child_r, from_child_w, log_w):
                os.close(fd)
        self.pid = self._process.pid
        self._writer = protocol.Writer(to_child_w)
        self._messages = os.fdopen(from_child_r, "rb")
        self._log = os.fdopen(log_r, "rb")
        for target, name in (
            (self._read_messages, "messages"),
            (self._read_log, "log"),
            (self._watch, "watchdog"),
        ):
            threading.Thread(target=target, name=f"starchat-worker-{name}", daemon=True).start()

    # -- requests --------------------------------------------------------------------------

    def request(self, op: str, **fields: object) -> tuple[int, Pending]:
        """Send a request; its messages come on the returned Pending's inbox."""
        pending = Pending()
        with self._lock:
            request = next(self._ids)
            if self.gone.is_set():
                pending.inbox.put({"op": "crashed"})
                return request, pending
            self._pending[request] = pending
        self.send({"op": op, "id": request, **fields})
        return request, pending

    def finished(self, request: int) -> None:
        with self._lock:
            self._pending.pop(request, None)

    def send(self, message: Message) -> None:
        # The worker may be gone: its reader tells every request so.
        with contextlib.suppress(OSError):
            self._writer.send(message)

    @property
    def busy(self) -> int:
        with self._lock:
            return len(self._pending)

    # -- the end ---------------------------------------------------------------------------

    def close(self, timeout_s: float = 5.0) -> None:
        """Ask the worker to stop; kill it when it does not within `timeout_s`."""
        self.send({"op": "close"})
        self._writer.close()
        try:
            self._process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
        self.gone.wait(timeout_s)

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self._process.kill()

    def _read_messages(self) -> None:
        try:
            while (message := protocol.read(self._messages)) is not None:
                self._last_heard = time.monotonic()
                request = message.get("id")
                with self._lock:
                    pending = self._pending.get(request) if isinstance(request, int) else None
                if pending is None:
                    continue  # a pong, or the answer to a request given up on
                if message["op"] == "chunk":
                    pending.tokens = int(message.get("n", pending.tokens))
                pending.inbox.put(message)
        except (OSError, ValueError) as error:
            log.error("model worker %s: unreadable message (%s)", self.pid, error)
            self.kill()
        self._messages.close()
        returncode = self._process.wait()
        self.death = self._describe(returncode)
        with self._lock:
            self.gone.set()
            pending_now = list(self._pending.values())
            self._pending.clear()
        for pending in pending_now:
            pending.inbox.put({"op": "crashed"})

    def _describe(self, returncode: int) -> str:
        if self._hung:
            return f"stopped answering (no reply in {self._deadline_s:g} s) and was stopped"
        if returncode < 0:
            try:
                name = signal.Signals(-returncode).name
            except ValueError:
                name = f"signal {-returncode}"
            if -returncode == signal.SIGKILL:
                return f"was killed ({name}; out of memory?)"
            return f"crashed ({name})"
        return f"exited unexpectedly (exit code {returncode})"

    def _read_log(self) -> None:
        """The worker's stderr: its own log lines keep their level; native chatter is DEBUG."""
        for raw in self._log:
            line = raw.decode("utf-8", "replace").rstrip()
            if not line:
                continue
            self.stderr_tail.append(line)
            level_name, _, rest = line.partition(" ")
            if level_name in _LEVELS:
                runtime_log.log(logging.getLevelName(level_name), "worker: %s", rest)
            else:
                runtime_log.debug("%s", line)
        self._log.close()

    def _watch(self) -> None:
        last_ping = 0.0
        while not self.gone.wait(PING_EVERY_S / 4):
            if not self.busy:
                self._last_heard = time.monotonic()
                continue
            now = time.monotonic()
            silent = now - self._last_heard
            if silent >= self._deadline_s:
                log.error("model worker %s: no reply in %.0f s: stopping it", self.pid, silent)
                self._hung = True
                self.kill()
                return
            if silent >= PING_EVERY_S and now - last_ping >= PING_EVERY_S:
                last_ping = now
                self.send({"op": "ping", "id": 0})
