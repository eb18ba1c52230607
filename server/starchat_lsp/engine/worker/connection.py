"""One channel to a process that runs the model: send requests, route what comes back.

A reader thread hands each message to the request it names (`Pending.inbox`); a message without
a request (`notice`) goes to `on_notice`. When the channel ends, every request in flight gets a
"crashed" message and `death` says what happened (`_describe_end`, given by the owner: a worker
process knows its exit status, a socket only that it closed).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

from starchat_lsp.engine.worker import protocol
from starchat_lsp.engine.worker.protocol import Message

log = logging.getLogger(__name__)


@dataclass
class Pending:
    """A request in flight: its messages arrive on `inbox`; `tokens` is the latest count."""

    inbox: queue.Queue[Message] = field(default_factory=queue.Queue)
    tokens: int = 0


class Connection:
    def __init__(
        self,
        reader: IO[bytes],
        writer: protocol.Writer,
        *,
        name: str,
        on_notice: Callable[[str], None] | None = None,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._on_notice = on_notice or (lambda _text: None)
        self._ids = itertools.count(1)
        self._pending: dict[int, Pending] = {}
        self._lock = threading.Lock()
        self.last_heard = time.monotonic()
        self.death: str | None = None  # what happened, once the channel has ended
        self.reported: Exception | None = None  # the error its end was told as (once)
        self.gone = threading.Event()
        threading.Thread(target=self._read_messages, name=f"starchat-{name}", daemon=True).start()

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
        # The other side may be gone: the reader then tells every request so.
        with contextlib.suppress(OSError):
            self._writer.send(message)

    @property
    def busy(self) -> int:
        with self._lock:
            return len(self._pending)

    def _describe_end(self) -> str:
        return "ended unexpectedly"

    def _ended(self) -> None:
        """Called on the reader thread once the channel has ended (before requests are told)."""

    def _read_messages(self) -> None:
        try:
            while (message := protocol.read(self._reader)) is not None:
                self.last_heard = time.monotonic()
                request = message.get("id")
                if message["op"] == "notice":
                    self._on_notice(str(message.get("text", "")))
                    continue
                with self._lock:
                    pending = self._pending.get(request) if isinstance(request, int) else None
                if pending is None:
                    continue  # a pong, or the answer to a request given up on
                if message["op"] == "chunk":
                    pending.tokens = int(message.get("n", pending.tokens))
                pending.inbox.put(message)
        except (OSError, ValueError) as error:
            log.error("model channel: unreadable message (%s)", error)
        with contextlib.suppress(OSError):
            self._reader.close()
        self._ended()
        self.death = self._describe_end()
        with self._lock:
            self.gone.set()
            pending_now = list(self._pending.values())
            self._pending.clear()
        for pending in pending_now:
            pending.inbox.put({"op": "crashed"})
