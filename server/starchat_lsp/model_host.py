"""The server's hold on the model: load in the background, swap on a setting change, and run
generations off the event loop with real cancellation. asyncio only; nothing here knows LSP.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Protocol, TypeVar

from starchat_lsp.engine.base import CancelFlag, Engine
from starchat_lsp.engine.factory import EngineSettings, open_engine
from starchat_lsp.errors import EngineError

log = logging.getLogger(__name__)

T = TypeVar("T")


class ModelUnavailableError(EngineError):
    """The model failed to load; the message says why and what to do."""


class LoadListener(Protocol):
    """Told about a load as it happens (the server turns this into $/progress)."""

    def begin(self, title: str) -> None: ...
    def report(self, message: str) -> None: ...
    def end(self, message: str, error: bool) -> None: ...


def open_in_worker(settings: EngineSettings, notify: Callable[[str], None]) -> Engine:
    """The server's engines: a local model in the machine's shared host (one model for every
    server and CLI asking for it), whose worker restarts once, then falls back (auto backend);
    `notify` tells the user of a fallback."""
    return open_engine(settings, notify=notify, restarts=1)


class ModelHost:
    def __init__(
        self,
        create: Callable[[EngineSettings, Callable[[str], None]], Engine] = open_in_worker,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        self._create = create
        self._notify = notify or (lambda _message: None)
        self._settings: EngineSettings | None = None
        self._engine: Engine | None = None
        self._loading: asyncio.Task[Engine] | None = None
        self.runs = 0  # generations started: how often the model was asked for anything
        self._active = 0  # runs whose work has not returned yet (a cancelled one until it stops)
        self._active_lock = threading.Lock()
        self._yielding: set[CancelFlag] = set()  # runs that any later run stops (event loop's)

    @property
    def settings(self) -> EngineSettings | None:
        return self._settings

    @property
    def state(self) -> str:
        """ "ready", "loading", "failed" (the load raised) or "unconfigured"."""
        if self._engine is not None:
            return "ready"
        task = self._loading
        if task is None:
            return "unconfigured"
        if task.done() and not task.cancelled() and task.exception() is not None:
            return "failed"
        return "loading"

    def configure(self, settings: EngineSettings, listener: LoadListener) -> bool:
        """Start loading the model `settings` names unless it is the one already there."""
        if settings == self._settings:
            return False
        self._settings = settings
        previous, self._engine = self._engine, None
        self._loading = asyncio.get_running_loop().create_task(
            self._load(settings, listener, previous)
        )
        return True

    async def _load(
        self, settings: EngineSettings, listener: LoadListener, previous: Engine | None
    ) -> Engine:
        loop = asyncio.get_running_loop()
        listener.begin(f"Loading {settings.model}")

        def report(message: str) -> None:  # called on the loading thread
            loop.call_soon_threadsafe(listener.report, message)

        def notify(message: str) -> None:  # called on whichever thread saw the crash
            loop.call_soon_threadsafe(self._notify, message)

        def build() -> Engine:
            if previous is not None:
                previous.close()
            engine = self._create(settings, notify)
            engine.load(report)
            return engine

        try:
            engine = await asyncio.to_thread(build)
        except EngineError as error:
            log.error("model %s failed to load: %s", settings.model, error)
            listener.end(f"{settings.model} failed to load: {error}", error=True)
            raise ModelUnavailableError(str(error)) from error
        except Exception as error:  # a bug or an exotic failure: still one message, logged whole
            log.exception("model %s failed to load", settings.model)
            listener.end(f"{settings.model} failed to load: {error}", error=True)
            raise ModelUnavailableError(
                f"{settings.model} failed to load ({type(error).__name__}: {error}); "
                "see the server log"
            ) from error
        if self._settings == settings:
            self._engine = engine
        listener.end(f"{settings.model} is ready", error=False)
        return engine

    async def engine(self) -> Engine:
        """The loaded engine, waiting for a load in progress; raises ModelUnavailableError."""
        while True:
            if self._engine is not None:
                return self._engine
            task = self._loading
            if task is None:
                raise ModelUnavailableError("no model is configured yet")
            try:
                # shield: one cancelled request must not cancel the load everyone waits for
                engine = await asyncio.shield(task)
            except ModelUnavailableError:
                if task is self._loading:
                    raise
                continue  # the settings changed meanwhile: wait for the new model
            if task is self._loading:
                return engine

    async def run(
        self,
        work: Callable[[Engine, CancelFlag], T],
        flag: CancelFlag | None = None,
        *,
        yields: bool = False,
    ) -> T:
        """Run `work` on a thread with the engine; a cancelled caller stops it within a token.

        Setting `flag` (for example when a newer request supersedes this one) stops it too.
        A run that `yields` (work nobody waits for) is stopped by any run started after it.
        """
        engine = await self.engine()
        flag = flag or CancelFlag()
        for earlier in self._yielding:
            earlier.cancel()
        if yields:
            self._yielding.add(flag)
        self.runs += 1
        with self._active_lock:
            self._active += 1
        # Taken once: by the thread when it starts, or by the canceller if it never will.
        start = threading.Lock()
        try:
            return await asyncio.to_thread(self._tracked, work, engine, flag, start)
        except asyncio.CancelledError:
            flag.cancel()
            # Cancelled while it waited for a thread (all busy), the work never runs: it is
            # over now, or it would count as running for good.
            if start.acquire(blocking=False):
                self._done()
            raise
        finally:
            self._yielding.discard(flag)

    @property
    def active(self) -> int:
        """Runs still using the model: a cancelled request counts until its model run stops."""
        with self._active_lock:
            return self._active

    def _tracked(
        self,
        work: Callable[[Engine, CancelFlag], T],
        engine: Engine,
        flag: CancelFlag,
        start: threading.Lock,
    ) -> T:
        if not start.acquire(blocking=False):  # cancelled before it started: nobody waits
            raise asyncio.CancelledError
        try:
            return work(engine, flag)
        finally:
            self._done()

    def _done(self) -> None:
        with self._active_lock:
            self._active -= 1

    @property
    def health(self) -> dict[str, object] | None:
        """The model worker's health (backend, crashes) where the engine has one."""
        health = getattr(self._engine, "health", None)
        return dict(health) if isinstance(health, dict) else None

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
