"""Interactive requests on an engine with one worker thread.

A completion at the cursor is waited on keystroke by keystroke; a chat answer or a checked fix is
read as it streams. So an interactive request (GenerationSettings.interactive) goes ahead of the
requests that wait for the worker, and the one running pauses for it between two of its tokens:
the engine calls `run_waiting()` there, on the worker thread, and then goes on where it was.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from starchat_lsp.errors import EngineError


class InteractiveQueue:
    def __init__(self, worker: ThreadPoolExecutor) -> None:
        self._worker = worker
        self._waiting: collections.deque[tuple[Callable[[], None], Future[None]]] = (
            collections.deque()
        )
        self._lock = threading.Lock()

    @property
    def waiting(self) -> bool:
        return bool(self._waiting)

    def submit(self, work: Callable[[], None]) -> Future[None]:
        """Run `work` on the worker as soon as it is free or the running request pauses."""
        future: Future[None] = Future()
        with self._lock:
            self._waiting.append((work, future))
        try:
            self._worker.submit(self.run_waiting)  # for a worker with nothing to pause
        except RuntimeError as error:  # the worker has shut down: the engine is closed
            self.cancel_waiting()
            raise EngineError("the engine is closed") from error
        return future

    def run_waiting(self) -> int:
        """On the worker thread: the interactive requests that wait, in order; how many ran."""
        ran = 0
        while (waiting := self._next()) is not None:
            work, future = waiting
            if not future.set_running_or_notify_cancel():
                continue
            ran += 1
            try:
                work()
            except BaseException as error:
                future.set_exception(error)
            else:
                future.set_result(None)
        return ran

    def cancel_waiting(self) -> None:
        """Those not started end as cancelled (their readers are woken by the engine)."""
        while (waiting := self._next()) is not None:
            waiting[1].cancel()

    def _next(self) -> tuple[Callable[[], None], Future[None]] | None:
        with self._lock:
            return self._waiting.popleft() if self._waiting else None
