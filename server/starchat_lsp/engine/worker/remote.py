"""The Engine interface spoken over a Connection to the process that runs the model.

Subclasses say how to get a ready connection (`_ready`: start a worker, or attach to the shared
host) and what a channel's end means (`_crashed`). Streams, token counts and the error mapping
are the same for both.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence

from starchat_lsp.engine.base import (
    Ask,
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
        fields = {
            "settings": protocol.generation_to_wire(settings),
            "messages": protocol.messages_to_wire(messages),
            "n": n,
        }
        ending = self._call("sample", fields, cancel).wait()
        return [protocol.result_from_wire(wire) for wire in ending["results"]]

    def together(
        self,
        asks: Sequence[Ask],
        cancel: CancelFlag | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> list[list[GenerationResult]]:
        """The other side's `Engine.together`: ask 0's first answer comes as chunks, given to
        `on_text` on the caller's thread; cancel travels over the channel as for chat."""
        if not asks:
            return []
        call = self._call("together", {"asks": protocol.asks_to_wire(asks)}, cancel)
        ending = call.wait(on_text)
        return [
            [protocol.result_from_wire(wire) for wire in answers] for answers in ending["results"]
        ]

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

    def _call(self, op: str, fields: Message, cancel: CancelFlag | None) -> _Call:
        """Send a generation request; `cancel` tells the other side to stop it."""
        connection, _ = self._ready()
        flag = cancel or CancelFlag()
        request, pending = connection.request(op, **fields)
        flag.on_cancel(lambda: connection.send({"op": "cancel", "id": request}))
        return _Call(connection, request, pending, flag, self._crashed)

    def _stream(
        self,
        op: str,
        fields: Message,
        settings: GenerationSettings,
        cancel: CancelFlag | None,
    ) -> TextStream:
        submitted = time.monotonic()
        call = self._call(op, {"settings": protocol.generation_to_wire(settings), **fields}, cancel)
        result_box: list[GenerationResult] = []

        def chunks() -> Iterator[str]:
            try:
                yield from call.chunks()
            finally:
                ending = call.end()
                text = "".join(call.text)
                result_box.append(self._ending(call.connection, ending, text, submitted))
            call.raise_failure(ending)

        return TextStream(chunks(), call.flag, result_box, lambda: call.pending.tokens)

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


class _Call:
    """A generation request in flight: its chunks as they come, then its ending."""

    def __init__(
        self,
        connection: Connection,
        request: int,
        pending: Pending,
        flag: CancelFlag,
        crashed: Callable[[Connection], ModelCrashedError],
    ) -> None:
        self.connection = connection
        self._request = request
        self.pending = pending
        self.flag = flag
        self._crashed = crashed
        self.text: list[str] = []  # every chunk's text, the ones read after a stop too
        self._ending: Message | None = None  # done, error or crashed

    def chunks(self) -> Iterator[str]:
        """The chunks' text until the ending comes."""
        while self._ending is None:
            message = self.pending.inbox.get()
            if message["op"] == "chunk":
                self.text.append(message["text"])
                yield message["text"]
            elif message["op"] in _ENDINGS:
                self._ending = message

    def end(self) -> Message:
        """The ending; when the reader left before it (stopped early, Ctrl-C), the model is told
        to stop and waited for. The request is given up either way."""
        try:
            if self._ending is None:
                self.flag.cancel()
                for _ in self.chunks():
                    pass
        finally:
            self.connection.finished(self._request)
        assert self._ending is not None
        return self._ending

    def raise_failure(self, ending: Message) -> None:
        """The other side's failure, or the channel's end, raised as the caller's error."""
        if ending["op"] == "crashed":
            raise self._crashed(self.connection)
        if ending["op"] == "error":
            raise error_from(ending)

    def wait(self, on_text: Callable[[str], None] | None = None) -> Message:
        """Read to the `done`, each chunk's text to `on_text`; a failure is raised."""
        try:
            for text in self.chunks():
                if on_text is not None:
                    on_text(text)
        finally:
            ending = self.end()
        self.raise_failure(ending)
        return ending


def error_from(message: Message) -> EngineError:
    """The other side's error as the exception the caller would have seen in-process."""
    text = str(message.get("message") or message.get("type"))
    kind = str(message.get("type"))
    if message.get("load"):  # a ModelLoadError of any kind (not pulled, unknown, pull failed)
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
    if isinstance(error, ModelLoadError):
        wire["load"] = True
    if isinstance(error, ModelCrashedError):
        wire.update(backend=error.backend, fallback=error.fallback, retry=error.retry)
    return wire
