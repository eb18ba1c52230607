"""The Engine interface spoken over a Connection to the process that runs the model.

Subclasses say how to get a ready connection (`_ready`: start a worker, or attach to the shared
host) and what a channel's end means (`_crashed`). Streams, token counts and the error mapping
are the same for both.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

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
from starchat_lsp.engine.errors import ModelCrashedError
from starchat_lsp.engine.worker import protocol
from starchat_lsp.engine.worker.connection import Connection, Pending
from starchat_lsp.engine.worker.protocol import Message
from starchat_lsp.errors import EngineError, ModelLoadError

_LOAD_ERRORS = {"ModelLoadError", "ModelNotPulledError", "UnknownModelError"}
_ENDINGS = ("done", "error", "crashed")
COUNT_CACHE_SIZE = 512


class RemoteEngine:
    def __init__(self, name: str) -> None:
        self._name = name
        self._counts: dict[str, int] = {}  # token counts, from this model's tokenizer
        self.load_time_s: float | None = None

    # -- what subclasses give --------------------------------------------------------------

    def _ready(self, progress: ProgressCallback | None = None) -> tuple[Connection, Message]:
        """A connection whose model is loaded, and what the load said (window, FIM)."""
        raise NotImplementedError

    def _crashed(self, connection: Connection) -> ModelCrashedError:
        """The error for requests in flight when `connection` ended."""
        raise NotImplementedError

    # -- the Engine interface --------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def context_window(self) -> int:
        return int(self._ready()[1]["context_window"])

    @property
    def fill_in_middle(self) -> bool:
        return bool(self._ready()[1]["fill_in_middle"])

    def load(self, progress: ProgressCallback | None = None) -> None:
        self._ready(progress)

    def count_tokens(self, text: str) -> int:
        # The budget counts the same texts again and again: a round trip is saved per repeat.
        counts = self._counts
        if text in counts:
            return counts[text]
        connection, _ = self._ready()
        request, pending = connection.request("count", text=text)
        count = int(self._value(connection, request, pending))  # type: ignore[call-overload]
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
        fields = {"prompt": protocol.prompt_to_wire(prompt)}
        return self._stream("complete", fields, settings, cancel)

    def sample(
        self,
        messages: list[ChatMessage],
        settings: GenerationSettings,
        n: int,
        cancel: CancelFlag | None = None,
    ) -> list[GenerationResult]:
        """The other side's `Engine.sample`: cancel travels over the channel as for chat."""
        if n < 1:
            return []
        connection, _ = self._ready()
        flag = cancel or CancelFlag()
        request, pending = connection.request(
            "sample",
            settings=protocol.generation_to_wire(settings),
            messages=protocol.messages_to_wire(messages),
            n=n,
        )
        flag.on_cancel(lambda: connection.send({"op": "cancel", "id": request}))
        ending: Message | None = None
        try:
            while ending is None:
                message = pending.inbox.get()
                if message["op"] in _ENDINGS:
                    ending = message
        finally:
            if ending is None:  # interrupted while waiting: stop the model, wait for it
                flag.cancel()
                while (message := pending.inbox.get())["op"] not in _ENDINGS:
                    pass
            connection.finished(request)
        if ending["op"] == "crashed":
            raise self._crashed(connection)
        if ending["op"] == "error":
            raise error_from(ending)
        return [protocol.result_from_wire(wire) for wire in ending["results"]]

    # -- requests ----------------------------------------------------------------------------

    def _value(
        self,
        connection: Connection,
        request: int,
        pending: Pending,
        progress: ProgressCallback | None = None,
    ) -> object:
        """Wait for the value of a load, count or status request; its failure raised as ours."""
        try:
            while True:
                message = pending.inbox.get()
                if message["op"] == "progress":
                    if progress is not None:
                        progress(str(message["text"]))
                elif message["op"] == "value":
                    return message["value"]
                elif message["op"] == "error":
                    raise error_from(message)
                elif message["op"] == "crashed":
                    raise self._crashed(connection)
        finally:
            connection.finished(request)

    def _stream(
        self,
        op: str,
        fields: Message,
        settings: GenerationSettings,
        cancel: CancelFlag | None,
    ) -> TextStream:
        connection, _ = self._ready()
        flag = cancel or CancelFlag()
        submitted = time.monotonic()
        request, pending = connection.request(
            op, settings=protocol.generation_to_wire(settings), **fields
        )
        flag.on_cancel(lambda: connection.send({"op": "cancel", "id": request}))
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
                connection.finished(request)
                result_box.append(self._ending(connection, ending, "".join(text), submitted))
            if ending["op"] == "crashed":
                raise self._crashed(connection)
            if ending["op"] == "error":
                raise error_from(ending)

        return TextStream(chunks(), flag, result_box, lambda: pending.tokens)

    def _ending(
        self, connection: Connection, ending: Message, text: str, submitted: float
    ) -> GenerationResult:
        wire = ending.get("result")
        if isinstance(wire, dict):
            return protocol.result_from_wire(wire)
        if ending["op"] == "crashed":
            error = str(self._crashed(connection))
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


def error_from(message: Message) -> EngineError:
    """The other side's error as the exception the caller would have seen in-process."""
    text = str(message.get("message") or message.get("type"))
    kind = str(message.get("type"))
    if kind in _LOAD_ERRORS:
        return ModelLoadError(text)
    if kind == "ModelCrashedError":
        fallback = message.get("fallback")
        return ModelCrashedError(
            text,
            backend=str(message.get("backend")),
            fallback=fallback if isinstance(fallback, str) else None,
            retry=bool(message.get("retry")),
        )
    if kind == "EngineError":
        return EngineError(text)
    return EngineError(f"{text} ({kind} in the model worker)")


def error_to_wire(error: Exception) -> Message:
    """What `error_from` reads back: the type, the message and a crash's details."""
    wire: Message = {"type": type(error).__name__, "message": str(error)}
    if isinstance(error, ModelCrashedError):
        wire.update(backend=error.backend, fallback=error.fallback, retry=error.retry)
    return wire
