"""An Engine that attaches to the machine's shared model host, starting it when none runs.

Every language server and terminal command of a user that asks for the same model with the same
settings talks to one host (`host.py`) and so to one copy of the model: the memory of one
model, and one generation at a time on the CPU instead of several thrashing each other. The
host's socket lives in a folder only the user can open; a lock file keeps two clients that
start at once from starting two hosts.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import logging
import os
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from starchat_lsp.engine.base import ProgressCallback
from starchat_lsp.engine.errors import ModelCrashedError
from starchat_lsp.engine.factory import EngineSettings
from starchat_lsp.engine.worker import protocol
from starchat_lsp.engine.worker.connection import Connection
from starchat_lsp.engine.worker.process import log_level_for_children
from starchat_lsp.engine.worker.protocol import Message
from starchat_lsp.engine.worker.remote import RemoteEngine
from starchat_lsp.errors import EngineError

log = logging.getLogger(__name__)

RUNTIME_DIR_ENV = "STARCHAT_LSP_RUNTIME_DIR"
START_TIMEOUT_S = 60.0
ATTACH_TRIES = 3  # a host that was just leaving (idle) is replaced once or twice, then we give up


def runtime_dir() -> Path:
    """The user's private folder for host sockets: created 0700, refused if others can enter."""
    configured = os.environ.get(RUNTIME_DIR_ENV)
    if configured:
        folder = Path(configured)
    elif os.environ.get("XDG_RUNTIME_DIR"):
        folder = Path(os.environ["XDG_RUNTIME_DIR"]) / "starchat-lsp"
    else:
        folder = Path(tempfile.gettempdir()) / f"starchat-lsp-{os.getuid()}"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = folder.stat()
    if info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o077:
        raise EngineError(
            f"{folder} is not private to you (owner {info.st_uid}, mode "
            f"{stat.S_IMODE(info.st_mode):o}): remove it or set {RUNTIME_DIR_ENV} to a folder "
            "only you can open"
        )
    return folder


def host_key(settings: EngineSettings, model_location: str) -> str:
    """Clients with the same model file, settings and code share a host; anything else gets
    its own. The code counts: a host started before an upgrade (or an edit, while developing)
    runs the old code, and would serve a new client with it."""
    wire = protocol.settings_to_wire(settings)
    wire["model"] = model_location
    wire["code"] = code_digest(Path(__file__).resolve().parents[2])
    digest = hashlib.sha256(json.dumps(wire, sort_keys=True).encode()).hexdigest()
    return digest[:20]


@functools.cache
def code_digest(package: Path) -> str:
    """A digest of the package's Python files (their paths and contents)."""
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


class SharedEngine(RemoteEngine):
    def __init__(
        self,
        settings: EngineSettings,
        *,
        name: str,
        model_location: str,
        restarts: int = 1,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(name)
        self._settings = settings
        self._restarts = restarts
        self._notify = notify or (lambda _text: None)
        self._folder = runtime_dir()
        self._socket_path = self._folder / f"{host_key(settings, model_location)}.sock"
        self._lock = threading.RLock()
        self._connection: _SocketChannel | None = None
        self._loaded: Message = {}
        self._closed = False
        self._health: dict[str, object] | None = None

    @property
    def health(self) -> dict[str, object] | None:
        """The host's view (backend, worker, crashes), asked at most once a request; the last
        known view when the host is slow to say (the editor's status must not wait)."""
        connection = self._connection
        if connection is None or connection.gone.is_set():
            return self._health
        request, pending = connection.request("status")
        try:
            message = pending.inbox.get(timeout=1.0)
        except Exception:
            return self._health
        finally:
            connection.finished(request)
        if message.get("op") == "value" and isinstance(message.get("value"), dict):
            self._health = {**message["value"], "shared": True}
        return self._health

    def close(self) -> None:
        with self._lock:
            self._closed = True
            connection, self._connection = self._connection, None
        if connection is not None:
            connection.send({"op": "close"})
            connection.close_channel()

    def _ready(self, progress: ProgressCallback | None = None) -> tuple[Connection, Message]:
        with self._lock:
            for attempt in range(ATTACH_TRIES):
                if self._closed:
                    raise EngineError(f"the {self._name} engine is closed")
                connection = self._connection
                if connection is not None and not connection.gone.is_set():
                    return connection, self._loaded
                started = time.monotonic()
                connection = self._attach()
                request, pending = connection.request("load")
                try:
                    loaded = self._value(connection, request, pending, progress)
                except ModelCrashedError as crash:
                    if crash.backend == "host" and attempt + 1 < ATTACH_TRIES:
                        continue  # the host was leaving as we came: start another
                    raise
                self._connection, self._loaded = connection, loaded  # type: ignore[assignment]
                self.load_time_s = time.monotonic() - started
                return connection, self._loaded
            raise EngineError("the shared model host could not be started")  # pragma: no cover

    def _crashed(self, connection: Connection) -> ModelCrashedError:
        with self._lock:
            if isinstance(connection.reported, ModelCrashedError):
                return connection.reported
            if self._connection is connection:
                self._connection = None
            error = ModelCrashedError(
                f"the model runtime {connection.death}; it restarts for the next request",
                backend="host",
                retry=True,
            )
            connection.reported = error
            return error

    def _attach(self) -> _SocketChannel:
        """Connect to the running host; start one (under the lock file) when none answers."""
        with self._spawn_lock():
            sock = self._connect()
            if sock is None:
                process = self._start_host()
                deadline = time.monotonic() + START_TIMEOUT_S
                while (sock := self._connect()) is None:
                    if process.poll() is not None:
                        raise EngineError(
                            f"the shared model host exited as it started (exit code "
                            f"{process.returncode}): see {self.log_path}"
                        )
                    if time.monotonic() > deadline:
                        raise EngineError(
                            f"the shared model host did not start within {START_TIMEOUT_S:g} s: "
                            f"see {self.log_path}, or run `starchat-lsp doctor`"
                        )
                    time.sleep(0.02)
        return _SocketChannel(sock, on_notice=self._notify)

    def _connect(self) -> socket.socket | None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(self._socket_path))
        except OSError:
            sock.close()
            return None
        return sock

    @contextlib.contextmanager
    def _spawn_lock(self) -> Iterator[None]:
        lock_path = self._socket_path.with_suffix(".lock")
        with open(lock_path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _start_host(self) -> subprocess.Popen[bytes]:
        with contextlib.suppress(FileNotFoundError):
            self._socket_path.unlink()  # a host that died without removing it
        command = [sys.executable, "-m", "starchat_lsp.engine.worker.host"]
        command += ["--socket", str(self._socket_path), "--restarts", str(self._restarts)]
        command += ["--settings", json.dumps(protocol.settings_to_wire(self._settings))]
        command += ["--log-level", log_level_for_children()]
        # Its log goes to a file beside its socket: it outlives the client that started it.
        with open(self.log_path, "wb") as log_file:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                start_new_session=True,  # it outlives this client, and a Ctrl-C here
            )
        log.info(
            "started the shared model host %d for %s (its log: %s)",
            process.pid,
            self._name,
            self.log_path,
        )
        return process

    @property
    def log_path(self) -> Path:
        return self._socket_path.with_suffix(".log")


class _SocketChannel(Connection):
    def __init__(self, sock: socket.socket, *, on_notice: Callable[[str], None]) -> None:
        self._socket = sock
        super().__init__(
            sock.makefile("rb"),
            protocol.Writer(sock.fileno()),
            name="shared-host",
            on_notice=on_notice,
        )

    def close_channel(self) -> None:
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)

    def _describe_end(self) -> str:
        return "ended (the shared model host went away)"

    def _ended(self) -> None:
        self._socket.close()
