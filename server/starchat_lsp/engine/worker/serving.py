"""Answer one channel's requests with an Engine: the model worker's pipe, or one client of the
shared host. The reading thread answers pings and cancels at once; loads, counts, status and
generations run on a pool, so a long prompt never keeps a cancel or a ping waiting. When the
channel ends, its generations are cancelled: nobody is left to read them.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import IO

from starchat_lsp.engine.base import CancelFlag, Engine, TextStream
from starchat_lsp.engine.worker import faults, protocol
from starchat_lsp.engine.worker.protocol import Message
from starchat_lsp.engine.worker.remote import error_to_wire
from starchat_lsp.errors import EngineError

log = logging.getLogger(__name__)


class Requests:
    def __init__(
        self,
        engine: Engine,
        writer: protocol.Writer,
        pool: ThreadPoolExecutor,
        fault: faults.Fault | None = None,
        status: Callable[[], object] | None = None,
    ) -> None:
        self._engine = engine
        self._writer = writer
        self._pool = pool
        self._fault = fault
        self._status_of = status or (lambda: getattr(engine, "health", None))
        self._flags: dict[int, CancelFlag] = {}
        self._flags_lock = threading.Lock()

    def serve(self, reader: IO[bytes]) -> None:
        """Until the channel ends or says close; then its generations are cancelled."""
        try:
            while (message := protocol.read(reader)) is not None:
                if message["op"] == "close":
                    break
                self._handle(message)
        except (OSError, ValueError) as error:
            log.info("channel ended: %s", error)
        finally:
            with self._flags_lock:
                for flag in self._flags.values():
                    flag.cancel()

    def _handle(self, message: Message) -> None:
        op = message["op"]
        request = message.get("id", 0)
        if op == "ping":
            self._send({"op": "pong", "id": request})
        elif op == "cancel":
            with self._flags_lock:
                flag = self._flags.get(request)
            if flag is not None:
                flag.cancel()
        elif op == "load":
            self._pool.submit(self._answer, request, self._load, request)
        elif op == "count":
            self._pool.submit(self._answer, request, self._engine.count_tokens, message["text"])
        elif op == "status":
            self._pool.submit(self._answer, request, self._status_of)
        elif op in ("chat", "complete", "sample", "together"):
            flag = CancelFlag()
            with self._flags_lock:
                self._flags[request] = flag
            work = self._generate if op in ("chat", "complete") else self._answers
            self._pool.submit(work, message, flag)
        else:
            self._send_error(request, EngineError(f"unknown request {op!r}"))

    def _send(self, message: Message) -> None:
        # The other side may be gone: serve() ends when its reader sees that.
        with contextlib.suppress(OSError):
            self._writer.send(message)

    def _answer(self, request: int, work: Callable[..., object], *args: object) -> None:
        try:
            value = work(*args)
        except Exception as error:
            self._send_error(request, error)
            return
        self._send({"op": "value", "id": request, "value": value})

    def _load(self, request: int) -> dict[str, object]:
        faults.maybe_fail(self._fault, "load")

        def progress(text: str) -> None:
            self._send({"op": "progress", "id": request, "text": text})

        self._engine.load(progress)
        return {
            "context_window": self._engine.context_window,
            "fill_in_middle": self._engine.fill_in_middle,
            "load_time_s": getattr(self._engine, "load_time_s", None),
        }

    def notice(self, text: str) -> None:
        """A message for the other side that answers no request (a fallback, say)."""
        self._send({"op": "notice", "text": text})

    @property
    def in_flight(self) -> int:
        """Generations of this channel still running (a cancelled one until it has stopped)."""
        with self._flags_lock:
            return len(self._flags)

    def _generate(self, message: Message, flag: CancelFlag) -> None:
        request = message["id"]
        stream: TextStream | None = None
        try:
            faults.maybe_fail(self._fault, "prompt")
            settings = protocol.generation_from_wire(message["settings"])
            if message["op"] == "chat":
                messages = protocol.messages_from_wire(message["messages"])
                stream = self._engine.chat(messages, settings, flag)
            else:
                prompt = protocol.prompt_from_wire(message["prompt"])
                stream = self._engine.complete(prompt, settings, flag)
            first = True
            for chunk in stream:
                self._send(
                    {"op": "chunk", "id": request, "text": chunk, "n": stream.tokens_out_now()}
                )
                if first:
                    faults.maybe_fail(self._fault, "generation")
                    first = False
            self._send(
                {"op": "done", "id": request, "result": protocol.result_to_wire(stream.result)}
            )
        except Exception as error:
            result = None
            if stream is not None and stream._result_box:
                result = protocol.result_to_wire(stream.result)
            self._send_error(request, error, result)
        finally:
            with self._flags_lock:
                self._flags.pop(request, None)

    def _answers(self, message: Message, flag: CancelFlag) -> None:
        """Several answers, all sent in the `done`: to one chat prompt (Engine.sample), or to
        several (Engine.together, whose first answer also streams as chunks)."""
        request = message["id"]
        try:
            faults.maybe_fail(self._fault, "prompt")
            if message["op"] == "sample":
                settings = protocol.generation_from_wire(message["settings"])
                messages = protocol.messages_from_wire(message["messages"])
                results = self._engine.sample(messages, settings, int(message["n"]), flag)
                wire: list[object] = [protocol.result_to_wire(result) for result in results]
            else:
                asks = protocol.asks_from_wire(message["asks"])
                answers = self._engine.together(asks, flag, self._chunk_sender(request))
                wire = [[protocol.result_to_wire(r) for r in answer] for answer in answers]
            self._send({"op": "done", "id": request, "results": wire})
        except Exception as error:
            self._send_error(request, error)
        finally:
            with self._flags_lock:
                self._flags.pop(request, None)

    def _chunk_sender(self, request: int) -> Callable[[str], None]:
        """An `on_text` that sends each text as a chunk of `request` (on the model's thread)."""
        first = True

        def send(text: str) -> None:
            nonlocal first
            self._send({"op": "chunk", "id": request, "text": text})
            if first:
                first = False
                faults.maybe_fail(self._fault, "generation")

        return send

    def _send_error(self, request: int, error: Exception, result: Message | None = None) -> None:
        if not isinstance(error, EngineError):
            log.error("request failed in the model process", exc_info=error)
        self._send({"op": "error", "id": request, **error_to_wire(error), "result": result})
