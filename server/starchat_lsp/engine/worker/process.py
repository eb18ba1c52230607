"""One model worker process, seen from its parent: start it, talk to it, see it die.

Besides the channel's reader (connection.py), each incarnation has two threads: one reads the
worker's stderr (its log, re-logged here at the level it was written with) and a watchdog that
pings a worker with requests in flight and kills one that stops answering. Its death is told
with its exit status: the signal that killed it, or its exit code.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from typing import IO

from starchat_lsp.engine.factory import EngineSettings
from starchat_lsp.engine.worker import protocol
from starchat_lsp.engine.worker.connection import Connection

log = logging.getLogger(__name__)
RUNTIME = "starchat_lsp.runtime"  # the model runtime's own log: DEBUG, shown with --verbose
runtime_log = logging.getLogger(RUNTIME)

PING_EVERY_S = 1.0
# A worker with work in flight that answers nothing (not even a ping) this long is hung.
HANG_DEADLINE_ENV = "STARCHAT_LSP_WORKER_DEADLINE_S"
DEFAULT_HANG_DEADLINE_S = 30.0
STDERR_TAIL_LINES = 20
_LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}


def hang_deadline_s() -> float:
    try:
        return float(os.environ.get(HANG_DEADLINE_ENV, DEFAULT_HANG_DEADLINE_S))
    except ValueError:
        return DEFAULT_HANG_DEADLINE_S


def log_level_for_children() -> str:
    """The level a child logs at: ours, or the runtime's own when that one is lower."""
    level = min(logging.getLogger(name).getEffectiveLevel() for name in ("starchat_lsp", RUNTIME))
    return str(logging.getLevelName(level))


def forward_log_line(line: str) -> None:
    """A child's stderr line into our log: its own log lines keep their level; native chatter
    (what a runtime prints itself) is DEBUG."""
    level_name, _, rest = line.partition(" ")
    if level_name in _LEVELS:
        runtime_log.log(logging.getLevelName(level_name), "worker: %s", rest)
    elif line:
        runtime_log.debug("%s", line)


class WorkerProcess(Connection):
    def __init__(self, settings: EngineSettings) -> None:
        self.backend = settings.backend
        self._hung = False
        self._deadline_s = hang_deadline_s()
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        log_r, log_w = os.pipe()
        wire = json.dumps(protocol.settings_to_wire(settings))
        command = [sys.executable, "-m", "starchat_lsp.engine.worker.child"]
        command += ["--input", str(to_child_r), "--output", str(from_child_w)]
        command += ["--settings", wire, "--log-level", log_level_for_children()]
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
        self._log = os.fdopen(log_r, "rb")
        super().__init__(
            os.fdopen(from_child_r, "rb"), protocol.Writer(to_child_w), name="worker-messages"
        )
        threading.Thread(target=self._read_log, name="starchat-worker-log", daemon=True).start()
        threading.Thread(target=self._watch, name="starchat-worker-watchdog", daemon=True).start()

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

    def _describe_end(self) -> str:
        returncode = self._process.wait()
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
        stream: IO[bytes] = self._log
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                self.stderr_tail.append(line)
                forward_log_line(line)
        stream.close()

    def _watch(self) -> None:
        last_ping = 0.0
        while not self.gone.wait(PING_EVERY_S / 4):
            if not self.busy:
                self.last_heard = time.monotonic()
                continue
            now = time.monotonic()
            silent = now - self.last_heard
            if silent >= self._deadline_s:
                log.error("model worker %s: no reply in %.0f s: stopping it", self.pid, silent)
                self._hung = True
                self.kill()
                return
            if silent >= PING_EVERY_S and now - last_ping >= PING_EVERY_S:
                last_ping = now
                self.send({"op": "ping", "id": 0})
