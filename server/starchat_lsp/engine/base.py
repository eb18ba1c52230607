"""The one engine interface every backend implements, and the data it speaks.

Nothing here knows about LSP or about a particular backend: the language server, the CLI and the
eval harness all drive a model through `Engine.chat` / `Engine.complete` and read a `TextStream`;
`Engine.sample` asks for several answers to one prompt at once (candidate fixes), and
`Engine.together` for the answers to several prompts at once (a streamed draft, candidate fixes
and tests, in one batch where the backend can).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Literal, Protocol

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str


@dataclass(frozen=True, kw_only=True)
class OtherFiles:
    """Code from other files of the workspace, put ahead of the document in a completion prompt.

    With the model's repo-level tokens (Qwen2.5-Coder's `<|repo_name|>`, `<|file_sep|>`) in its
    own format, as llama.cpp server's infill gives its `input_extra`: the repository's name, each
    file's path and text, then the document's path, all before the fill-in-the-middle prefix.
    Without them, at the prefix's start, each file under a comment line `# from path:`.
    """

    repo: str  # the workspace folder's name
    path: str  # the document's path in it
    files: tuple[tuple[str, str], ...]  # (path, text) of each other file
    comment: str = "#"  # the document language's line comment; "" when it has none


@dataclass(frozen=True, kw_only=True)
class CompletionPrompt:
    """A raw completion prompt; with a `suffix` the backend uses fill-in-the-middle if it can.

    `middle` is text the answer already starts with, placed after the fill-in-the-middle token
    (llama.cpp server's infill puts the cursor line's start there, as its `prompt`): typing on a
    line then changes only the prompt's last tokens, and the model reuses the KV cache of the
    rest. Without fill-in-the-middle it is simply the prompt's end.
    """

    prefix: str
    suffix: str | None = None
    middle: str = ""
    other_files: OtherFiles | None = None  # ahead of the prefix (OtherFiles says how)
    # Suffix, then prefix (SPM order): typing at the cursor changes only the prompt's last
    # tokens, so the KV cache of the text after the cursor is kept from key to key.
    suffix_first: bool = False


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


@dataclass(frozen=True)
class Ask:
    """One prompt of an `Engine.together` call, and how many answers it wants."""

    messages: list[ChatMessage]
    settings: GenerationSettings
    n: int = 1
    # Worth only the time ask 0's first answer takes (e.g. tests that help judge it): where the
    # answers decode side by side, these end (TIME) when that one ends. Engines that answer in
    # turn run them in full, after it.
    until_first_ends: bool = False


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

    def sample(
        self,
        messages: list[ChatMessage],
        settings: GenerationSettings,
        n: int,
        cancel: CancelFlag | None = None,
    ) -> list[GenerationResult]:
        """`n` answers to one chat prompt, in order, decoded together where the backend can.

        Answer i is drawn at `settings.temperature`/`top_p` with the seed `settings.seed + i`
        (when a seed is set) and ends on its own: end of turn, a stop string, max_new_tokens.
        `time_limit_s` is for the whole call, and `cancel` stops every answer; each result has
        its own text, stop_reason and tokens_out, and tokens_in / reused_tokens as `chat`'s.
        Not streamed. Raises EngineError where `chat`'s stream would.
        """
        ...

    def together(
        self,
        asks: Sequence[Ask],
        cancel: CancelFlag | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> list[list[GenerationResult]]:
        """The answers to several prompts: `n` for each ask, in order, decoded together where
        the backend can (one llama.cpp batch, the prompts' shared prefix read once).

        Each ask's answers are drawn as `sample` draws them (seed + i), and each ask's
        `time_limit_s` counts from the call's start (`until_first_ends` may end them sooner).
        Answer 0 of ask 0 streams: `on_text` gets
        its text as it comes, on the model's thread or the reader's (keep it short). `cancel` stops
        every answer. Raises EngineError where `chat`'s stream would.
        """
        ...

    def close(self) -> None: ...


def together_in_turn(
    engine: Engine,
    asks: Sequence[Ask],
    cancel: CancelFlag | None = None,
    on_text: Callable[[str], None] | None = None,
) -> list[list[GenerationResult]]:
    """`Engine.together` one ask after another: for engines that cannot decode them together.

    Ask 0's first answer streams through `chat`; the rest of ask 0 and each other ask go
    through `sample`. A time limit counts from the call's start, as `together`'s does: an ask
    whose time is spent (or every ask, on cancel) ends at once with no text.
    """
    flag = cancel or CancelFlag()
    started = time.monotonic()
    answers: list[list[GenerationResult]] = []
    for number, ask in enumerate(asks):
        left = None
        if ask.settings.time_limit_s is not None:
            left = ask.settings.time_limit_s - (time.monotonic() - started)
        if ask.n < 1:
            answers.append([])
            continue
        if flag.cancelled or (left is not None and left <= 0):
            reason = StopReason.CANCELLED if flag.cancelled else StopReason.TIME
            answers.append([_not_started(reason, []) for _ in range(ask.n)])
            continue
        settings = replace(ask.settings, time_limit_s=left)
        results: list[GenerationResult] = []
        if number == 0:
            stream = engine.chat(ask.messages, settings, flag)
            for chunk in stream:
                if on_text is not None:
                    on_text(chunk)
            results.append(stream.result)
            if ask.n > 1:
                rest = replace(
                    settings,
                    seed=None if settings.seed is None else settings.seed + 1,
                    time_limit_s=(
                        None
                        if ask.settings.time_limit_s is None
                        else ask.settings.time_limit_s - (time.monotonic() - started)
                    ),
                )
                results += engine.sample(ask.messages, rest, ask.n - 1, flag)
        else:
            results = engine.sample(ask.messages, settings, ask.n, flag)
        answers.append(results)
    return answers


def sample_in_turn(
    engine: Engine,
    messages: list[ChatMessage],
    settings: GenerationSettings,
    n: int,
    cancel: CancelFlag | None = None,
) -> list[GenerationResult]:
    """`Engine.sample` one answer after another through `chat`: for engines that cannot batch.

    The time limit is the whole call's: each answer gets what is left; once it is spent (or on
    cancel) the answers not started end at once with no text.
    """
    flag = cancel or CancelFlag()
    started = time.monotonic()
    results: list[GenerationResult] = []
    for index in range(n):
        seed = None if settings.seed is None else settings.seed + index
        left = None
        if settings.time_limit_s is not None:
            left = settings.time_limit_s - (time.monotonic() - started)
        if flag.cancelled or (left is not None and left <= 0):
            reason = StopReason.CANCELLED if flag.cancelled else StopReason.TIME
            results.append(_not_started(reason, results))
            continue
        one = replace(settings, seed=seed, time_limit_s=left)
        results.append(engine.chat(messages, one, flag).finish())
    return results


def _not_started(reason: StopReason, before: list[GenerationResult]) -> GenerationResult:
    tokens_in = before[0].tokens_in if before else 0
    return GenerationResult(
        text="",
        stop_reason=reason,
        tokens_in=tokens_in,
        tokens_out=0,
        time_to_first_token_s=None,
        total_s=0.0,
    )
