"""A scripted engine for the eval tests (no model: answers come from a list or a function)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence

from starchat_lsp.engine.base import (
    Ask,
    CancelFlag,
    ChatMessage,
    CompletionPrompt,
    GenerationResult,
    GenerationSettings,
    StopReason,
    TextStream,
    sample_in_turn,
    together_in_turn,
)


class ScriptedEngine:
    """Answers each chat with the next reply (or `reply(messages)`), and remembers the calls."""

    def __init__(
        self, replies: list[str] | Callable[[list[ChatMessage]], str], name: str = "scripted"
    ) -> None:
        self._replies = replies
        self._name = name
        self.calls: list[list[ChatMessage]] = []
        self.closed = False
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._name

    @property
    def context_window(self) -> int:
        return 4096

    @property
    def fill_in_middle(self) -> bool:
        return False

    def load(self, progress: object = None) -> None:
        return None

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def _next(self, messages: list[ChatMessage]) -> str:
        with self._lock:
            self.calls.append(messages)
            if callable(self._replies):
                return self._replies(messages)
            return self._replies[(len(self.calls) - 1) % len(self._replies)]

    def chat(
        self,
        messages: list[ChatMessage],
        settings: GenerationSettings,
        cancel: CancelFlag | None = None,
    ) -> TextStream:
        text = self._next(messages)
        box: list[GenerationResult] = []

        def chunks() -> Iterator[str]:
            yield text
            box.append(
                GenerationResult(
                    text=text,
                    stop_reason=StopReason.EOS,
                    tokens_in=10,
                    tokens_out=5,
                    time_to_first_token_s=0.5,
                    total_s=1.5,
                )
            )

        return TextStream(chunks(), cancel or CancelFlag(), box)

    def sample(
        self,
        messages: list[ChatMessage],
        settings: GenerationSettings,
        n: int,
        cancel: CancelFlag | None = None,
    ) -> list[GenerationResult]:
        return sample_in_turn(self, messages, settings, n, cancel)

    def together(
        self,
        asks: Sequence[Ask],
        cancel: CancelFlag | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> list[list[GenerationResult]]:
        return together_in_turn(self, asks, cancel, on_text)

    def complete(
        self,
        prompt: CompletionPrompt,
        settings: GenerationSettings,
        cancel: CancelFlag | None = None,
    ) -> TextStream:
        raise NotImplementedError

    def close(self) -> None:
        self.closed = True


def test_scripted_engine_replies_in_turn() -> None:
    engine = ScriptedEngine(["one", "two"])
    settings = GenerationSettings()
    texts = [engine.chat([ChatMessage("user", "hi")], settings).finish().text for _ in range(3)]
    assert texts == ["one", "two", "one"]
    assert engine.chat([], settings).finish().tokens_per_s == 4.0  # 4 tokens in 1 s after the first


def test_sample_in_turn_asks_chat_once_per_answer_with_its_seed() -> None:
    seeds: list[int | None] = []
    engine = ScriptedEngine(["one", "two", "three"])
    chat = engine.chat

    def recording_chat(
        messages: list[ChatMessage],
        settings: GenerationSettings,
        cancel: CancelFlag | None = None,
    ) -> TextStream:
        seeds.append(settings.seed)
        return chat(messages, settings, cancel)

    engine.chat = recording_chat  # type: ignore[method-assign]
    results = engine.sample([ChatMessage("user", "hi")], GenerationSettings(seed=5), 3)
    assert [r.text for r in results] == ["one", "two", "three"] and seeds == [5, 6, 7]
    flag = CancelFlag()
    flag.cancel()
    cancelled = engine.sample([], GenerationSettings(), 2, flag)
    assert [r.stop_reason for r in cancelled] == [StopReason.CANCELLED] * 2
