"""The one engine interface every backend implements, and the data it speaks.

Nothing here knows about LSP or about a particular backend: the language server, the CLI and the
eval harness all drive a model through `Engine.chat` / `Engine.complete` and read a `TextStream`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Literal, Protocol

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str


@dataclass(frozen=True, kw_only=True)
class CompletionPrompt:
    """A raw completion prompt; with a `suffix` the backend uses fill-in-the-middle if it can."""

    prefix: str
    suffix: str | None = None


@dataclass(frozen=True, kw_only=True)
class GenerationSettings:
    max_new_tokens: int = 512
    temperature: float = 0.0  # 0 means greedy: the same answer every time
    top_p: float = 1.0
    stop: tuple[str, ...] = ()  # generation ends before the first of these strings
    time_limit_s: float | None = None  # wall-clock limit for the generation itself
    seed: int | None = None
    # Someone waits on it keystroke by keystroke (a completion at the cursor): a local engine
    # runs it ahead of waiting requests and between two tokens of a running one.
    interactive: bool = False


class StopReason(str, Enum):
    EOS = "eos"
    STOP_STRING = "stop_string"
    LENGTH = "length"
    TIME = "time"
    CANCELLED = "cancelled"
    ERROR = "error"


@dataclass(kw_only=True)
class GenerationResult:
    text: str
    stop_reason: StopReason
    tokens_in: int
    tokens_out: int
    time_to_first_token_s: float | None  # None when no token came
    total_s: float
    queue_wait_s: float = 0.0  # time spent waiting for the model worker before starting
    reused_tokens: int = 0  # prompt tokens whose KV cache an earlier request left (not recomputed)
    error: str | None = None

    @property
    def tokens_per_s(self) -> float:
        """Decoding speed after the first token (the prompt's cost is in time_to_first_token_s)."""
        if self.time_to_first_token_s is None or self.tokens_out < 2:
            return 0.0
        decode_s = self.total_s - self.time_to_first_token_s
        return (self.tokens_out - 1) / decode_s if decode_s > 0 else 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "stop_reason": self.stop_reason.value,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "time_to_first_token_s": self.time_to_first_token_s,
            "tokens_per_s": round(self.tokens_per_s, 2),
            "total_s": round(self.total_s, 3),
            "queue_wait_s": round(self.queue_wait_s, 3),
            "reused_tokens": self.reused_tokens,
            "error": self.error,
        }


class CancelFlag:
    """Set from any thread; the backend checks it between tokens and stops within one."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []

    def cancel(self) -> None:
        with self._lock:
            if self._event.is_set():
                return
            self._event.set()
            listeners, self._listeners = self._listeners, []
        for listener in listeners:
            listener()

    def on_cancel(self, listener: Callable[[], None]) -> None:
        """Call `listener` once when the flag is set (at once if it is set already).

        For work that cannot poll the flag between tokens: a model in another process is told
        over its pipe the moment the flag is set.
        """
        with self._lock:
            if not self._event.is_set():
                self._listeners.append(listener)
                return
        listener()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


@dataclass
class TextStream:
    """Text chunks as the model produces them; `result` is set once iteration ends.

    Iterating is the only way to drive it: a backend yields chunks from its own worker, and the
    consumer (CLI printing, LSP progress) reads them on its own thread.
    """

    chunks: Iterator[str]
    cancel_flag: CancelFlag
    _result_box: list[GenerationResult] = field(default_factory=list)
    # Tokens generated so far, read live from any thread (progress reports, cancel tests).
    tokens_out_now: Callable[[], int] = lambda: 0

    def __iter__(self) -> Iterator[str]:
        return self.chunks

    def cancel(self) -> None:
        self.cancel_flag.cancel()

    @property
    def result(self) -> GenerationResult:
        if not self._result_box:
            raise RuntimeError("the stream has not finished yet: iterate it to the end first")
        return self._result_box[0]

    def finish(self) -> GenerationResult:
        """Consume what is left and return the result."""
        for _ in self.chunks:
            pass
        return self.result


ProgressCallback = Callable[[str], None]


class Engine(Protocol):
    """What every backend (transformers, llama.cpp, HTTP) offers."""

    @property
    def name(self) -> str: ...

    @property
    def context_window(self) -> int:
        """Tokens the model can attend to: prompt plus answer."""
        ...

    def load(self, progress: ProgressCallback | None = None) -> None:
        """Load the model once; later calls return at once. Raises ModelLoadError."""
        ...

    @property
    def fill_in_middle(self) -> bool:
        """Whether `complete` with a suffix fills in the middle (the model has FIM tokens)."""
        ...

    def count_tokens(self, text: str) -> int: ...

    def chat(
        self,
        messages: list[ChatMessage],
        settings: GenerationSettings,
        cancel: CancelFlag | None = None,
    ) -> TextStream: ...

    def complete(
        self,
        prompt: CompletionPrompt,
        settings: GenerationSettings,
        cancel: CancelFlag | None = None,
    ) -> TextStream: ...

    def close(self) -> None: ...
