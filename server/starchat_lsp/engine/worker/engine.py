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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace

from starchat_lsp.engine.base import (
    CancelFlag,
    ChatMessage,
    CompletionPrompt,
    GenerationResult,
    GenerationSettings,
    ProgressCallback,
    StopReason,
    TextStream,
)
from starchat_lsp.engine.errors import EngineError, ModelCrashedError, ModelLoadError
from starchat_lsp.engine.factory import EngineSettings
from starchat_lsp.engine.worker import protocol
from starchat_lsp.engine.worker.process import Pending, WorkerProcess
from starchat_lsp.engine.worker.protocol import Message

log = logging.getLogger(__name__)

BACKEND_LABELS = {"llamacpp": "llama.cpp", "transformers": "transformers"}
_LOAD_ERRORS = {"ModelLoadError", "ModelNotPulledError", "UnknownModelError"}
_ENDINGS = ("done", "error", "crashed")
COUNT_CACHE_SIZE = 512


class WorkerEngine:
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
        self._settings = settings
        self._name = name
        self._backends = list(backends)
        self._restarts = restarts
        self._notify = notify or (lambda _message: None)
        self._lock = threading.RLock()
        self._worker: WorkerProcess | None = None
        self._loaded: dict[str, object] = {}
        self._counts: dict[str, int] = {}  # token counts, from this model's tokenizer
        self._crashes_on_backend = 0
        self._given_up: str | None = None  # the last crash, once no backend is left to try
        self._closed = False
        self.crashes: list[str] = []  # every crash's message, oldest first
        self.load_time_s: float | None = None

    # -- what the Engine interface asks ------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def backend(self) -> str:
        """The backend the worker runs now (it changes after a fallback)."""
        return self._backends[0]

    @property
    def context_window(self) -> int:
        return int(self._ready()[1]["context_window"])  # type: ignore[call-overload]

    @property
    def fill_in_middle(self) -> bool:
        return bool(self._ready()[1]["fill_in_middle"])

    def load(self, progress: ProgressCallback | None = None) -> None:
        self._ready(progress)

    def count_tokens(self, text: str) -> int:
        # The budget counts the same texts again and again: a round trip is saved per repeat.
        worker, _ = self._ready()
        counts = self._counts
        if text in counts:
            return counts[text]
        request, pending = worker.request("count", text=text)
        count = int(self._value(worker, request, pending))  # type: ignore[call-overload]
        if len(counts) >= COUNT_CACHE_SIZE:
            counts.clear()
        counts[text] = count
        return count

    def chat(
        self,
        messages: list[ChatMessage],
        settings: GenerationSettings,
        cancel: CancelFlag | None = None,
    ) -> TextStream:
        fields = {"messages": protocol.messages_to_wire(messages)}
        return self._stream("chat", fields, settings, cancel)

    def complete(
        self,
        prompt: CompletionPrompt,
        settings: GenerationSettings,
        cancel: CancelFlag | None = None,
    ) -> TextStream:
        return self._stream(
            "complete", {"prompt": protocol.prompt_to_wire(prompt)}, settings, cancel
        )

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

    def _ready(
        self, progress: ProgressCallback | None = None
    ) -> tuple[WorkerProcess, dict[str, object]]:
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

    def _crashed(self, worker: WorkerProcess) -> ModelCrashedError:
        """Count the crash of `worker` once; the error says what happened and what comes next."""
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
            elif "doctor" in then:
                self._given_up = message
            error = ModelCrashedError(message, backend=crashed_backend, fallback=fallback)
            worker.reported = error
            return error

    def _value(
        self,
        worker: WorkerProcess,
        request: int,
        pending: Pending,
        progress: ProgressCallback | None = None,
    ) -> object:
        """Wait for the value of a load or count request; its failure raised as ours."""
        try:
            while True:
                message = pending.inbox.get()
                if message["op"] == "progress":
                    if progress is not None:
                        progress(str(message["text"]))
                elif message["op"] == "value":
                    return message["value"]
                elif message["op"] == "error":
                    raise _error_from(message)
                elif message["op"] == "crashed":
                    raise self._crashed(worker)
        finally:
            worker.finished(request)

    # -- streams -------------------------------------------------------------------------------

    def _stream(
        self,
        op: str,
        fields: Message,
        settings: GenerationSettings,
        cancel: CancelFlag | None,
    ) -> TextStream:
        worker, _ = self._ready()
        flag = cancel or CancelFlag()
        submitted = time.monotonic()
        request, pending = worker.request(
            op, settings=protocol.generation_to_wire(settings), **fields
        )
        flag.on_cancel(lambda: worker.send({"op": "cancel", "id": request}))
        result_box: list[GenerationResult] = []

        def chunks() -> Iterator[str]:
            text: list[str] = []
            ending: Message | None = None
            try:
                while ending is None:
                    message = pending.inbox.get()
                    if message["op"] == "chunk":
                        text.append(message["text"])
                        yield message["text"]
                    elif message["op"] in _ENDINGS:
                        ending = message
            finally:
                if ending is None:  # the reader stopped early: stop the model, wait for it
                    flag.cancel()
                    while (message := pending.inbox.get())["op"] not in _ENDINGS:
                        if message["op"] == "chunk":
                            text.append(message["text"])
                    ending = message
                worker.finished(request)
                result_box.append(self._ending(worker, ending, "".join(text), submitted))
            if ending["op"] == "crashed":
                raise self._crashed(worker)
            if ending["op"] == "error":
                raise _error_from(ending)

        return TextStream(chunks(), flag, result_box, lambda: pending.tokens)

    def _ending(
        self, worker: WorkerProcess, ending: Message, text: str, submitted: float
    ) -> GenerationResult:
        wire = ending.get("result")
        if isinstance(wire, dict):
            return protocol.result_from_wire(wire)
        if ending["op"] == "crashed":
            error = str(self._crashed(worker))
        else:
            error = f"{ending.get('type')}: {ending.get('message')}"
        return GenerationResult(
            text=text,
            stop_reason=StopReason.ERROR,
            tokens_in=0,
            tokens_out=0,
            time_to_first_token_s=None,
            total_s=time.monotonic() - submitted,
            error=error,
        )


def _error_from(message: Message) -> EngineError:
    """The worker's error as the exception the caller would have seen in-process."""
    text = str(message.get("message") or message.get("type"))
    kind = str(message.get("type"))
    if kind in _LOAD_ERRORS:
        return ModelLoadError(text)
    if kind == "EngineError":
        return EngineError(text)
    return EngineError(f"{text} ({kind} in the model worker)")


def _last_error_line(worker: WorkerProcess) -> str | None:
    """The worker's last line on stderr that reads like an error (a native abort says why)."""
    for line in reversed(worker.stderr_tail):
        lowered = line.lower()
        if any(word in lowered for word in ("error", "abort", "fatal", "assert", "segmentation")):
            return line[:300]
    return None
