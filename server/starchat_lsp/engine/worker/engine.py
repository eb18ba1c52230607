"""An Engine whose model runs in a worker process: a native crash there never takes us down.

Callers see the Engine interface unchanged. A worker that dies (any signal, any exit) or stops
answering fails the requests in flight with a `ModelCrashedError` that says what happened and
what comes next, and is restarted for the next request: `restarts` times on the same backend,
then on the next backend of `backends` (the `auto` choice: llama.cpp, then transformers), which
`notify` announces once. When none is left the error says what to do.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from starchat_lsp.engine.base import ProgressCallback
from starchat_lsp.engine.errors import ModelCrashedError
from starchat_lsp.engine.factory import EngineSettings
from starchat_lsp.engine.worker.connection import Connection
from starchat_lsp.engine.worker.process import WorkerProcess
from starchat_lsp.engine.worker.protocol import Message
from starchat_lsp.engine.worker.remote import RemoteEngine
from starchat_lsp.errors import EngineError

log = logging.getLogger(__name__)

BACKEND_LABELS = {"llamacpp": "llama.cpp", "transformers": "transformers"}


class WorkerEngine(RemoteEngine):
    def __init__(
        self,
        settings: EngineSettings,
        *,
        name: str,
        backends: Sequence[str],
        restarts: int = 1,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        if not backends:
            raise ValueError("a worker engine needs at least one backend")
        super().__init__(name)
        self._settings = settings
        self._backends = list(backends)
        self._restarts = restarts
        self._notify = notify or (lambda _message: None)
        self._lock = threading.RLock()
        self._worker: WorkerProcess | None = None
        self._loaded: Message = {}
        self._crashes_on_backend = 0
        self._given_up: str | None = None  # the last crash, once no backend is left to try
        self._closed = False
        self.crashes: list[str] = []  # every crash's message, oldest first

    @property
    def backend(self) -> str:
        """The backend the worker runs now (it changes after a fallback)."""
        return self._backends[0]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            worker, self._worker = self._worker, None
        if worker is not None:
            worker.close()

    # -- health, for starchat/status and doctor ------------------------------------------------

    @property
    def health(self) -> dict[str, object]:
        worker = self._worker
        if self._given_up is not None:
            state = "crashed"
        elif worker is None or worker.gone.is_set():
            state = "stopped"
        else:
            state = "running"
        return {
            "backend": self.backend,
            "worker": state,
            "pid": None if worker is None else worker.pid,
            "crashes": len(self.crashes),
            "last_crash": self.crashes[-1] if self.crashes else None,
        }

    # -- the worker's lifetime -----------------------------------------------------------------

    def _ready(self, progress: ProgressCallback | None = None) -> tuple[Connection, Message]:
        """A running worker with the model loaded: started (or restarted) here when needed."""
        with self._lock:
            while True:
                if self._closed:
                    raise EngineError(f"the {self._name} engine is closed")
                if self._given_up is not None:
                    raise ModelCrashedError(self._given_up, backend=self.backend)
                worker = self._worker
                if worker is not None and not worker.gone.is_set():
                    return worker, self._loaded
                if worker is not None:
                    self._crashed(worker)  # died while idle: counts like any other crash
                    continue
                started = time.monotonic()
                worker = WorkerProcess(replace(self._settings, backend=self.backend))
                request, pending = worker.request("load")
                try:
                    loaded = self._value(worker, request, pending, progress)
                except ModelCrashedError as crash:
                    if self._given_up is not None:
                        raise
                    log.info("%s", crash)
                    continue  # restarted on this backend or the next
                except BaseException:
                    worker.close()
                    raise
                self._worker, self._loaded = worker, loaded  # type: ignore[assignment]
                self.load_time_s = time.monotonic() - started
                log.info(
                    "%s loaded with %s in %.1f s (worker %d)",
                    self._name,
                    BACKEND_LABELS.get(self.backend, self.backend),
                    self.load_time_s,
                    worker.pid,
                )
                return worker, self._loaded

    def _crashed(self, connection: Connection) -> ModelCrashedError:
        """Count the crash of a worker once; the error says what happened and what comes next."""
        assert isinstance(connection, WorkerProcess)
        worker = connection
        with self._lock:
            if isinstance(worker.reported, ModelCrashedError):
                return worker.reported
            crashed_backend = worker.backend
            what = worker.death or "stopped"
            label = BACKEND_LABELS.get(crashed_backend, crashed_backend)
            if self._worker is worker:
                self._worker = None
            self._crashes_on_backend += 1
            fallback = None
            gave_up = False
            if self._closed:
                then = "the engine is closed"
            elif self._crashes_on_backend <= self._restarts:
                then = "it restarts for the next request"
            elif len(self._backends) > 1:
                self._backends.pop(0)
                self._crashes_on_backend = 0
                fallback = self.backend
                then = (
                    f"falling back to {BACKEND_LABELS.get(fallback, fallback)}: "
                    "set model.backend to choose"
                )
            else:
                gave_up = True
                then = (
                    "run `starchat-lsp doctor`, then choose another backend (model.backend) "
                    "or a smaller model"
                )
            message = f"the model runtime {what} in {label}; {then}"
            tail = _last_error_line(worker)
            if tail:
                message += f" (its last words: {tail})"
            self.crashes.append(message)
            log.info("model worker %d: %s", worker.pid, message)  # the caller tells the user
            if fallback is not None:
                self._notify(message)
            elif gave_up:
                self._given_up = message
            retry = not self._closed and self._given_up is None
            error = ModelCrashedError(
                message, backend=crashed_backend, fallback=fallback, retry=retry
            )
            worker.reported = error
            return error


def _last_error_line(worker: WorkerProcess) -> str | None:
    """The worker's last line on stderr that reads like an error (a native abort says why)."""
    for line in reversed(worker.stderr_tail):
        lowered = line.lower()
        if any(word in lowered for word in ("error", "abort", "fatal", "assert", "segmentation")):
            return line[:300]
    return None
