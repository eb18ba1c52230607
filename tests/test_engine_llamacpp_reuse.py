"""A completion at a new place keeps the runs of cells its window shares with the last place's
(llamacpp_reuse), on the real small model: what is read, what a stopped read leaves, and that
anything else drops what was held."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator

import pytest

from starchat_lsp import completion
from starchat_lsp.context.completion_scope import Scope
from starchat_lsp.engine import CancelFlag, ChatMessage, GenerationSettings
from starchat_lsp.engine.llamacpp_engine import LlamaCppEngine
from test_engine_llamacpp import small_llama

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None,
    reason="pip install 'starchat-lsp[llamacpp]'",
)

# A file long enough that the window (512 tokens) is cut: no two lines alike.
TEXT = "".join(
    f"def step_{n}(value):\n    total = value * {n} + {n * 7 % 13}\n    return total - {n % 5}\n\n"
    for n in range(120)
)
LINES = TEXT.split("\n")


@pytest.fixture(scope="module")
def llama() -> Iterator[LlamaCppEngine]:
    yield from small_llama()


class StopsAfter(CancelFlag):
    """Cancelled from its `checks`-th look on: a read stopped at a known slice."""

    def __init__(self, checks: int) -> None:
        super().__init__()
        self.checks = checks

    @property
    def cancelled(self) -> bool:
        self.checks -= 1
        return self.checks < 0


def at(engine: LlamaCppEngine, line: int, flag: CancelFlag | None = None) -> completion.Completion:
    offset = sum(len(text) + 1 for text in LINES[:line]) + len(LINES[line]) - 3
    return completion.complete(
        engine,
        TEXT,
        offset,
        language="python",
        path="steps.py",
        scope=Scope.LINE,
        max_new_tokens=6,
        max_context_tokens=512,
        flag=flag or CancelFlag(),
    )


def _holder_cells(engine: LlamaCppEngine) -> int:
    return len(engine._stash(engine.llama).tokens)


def test_a_new_place_reads_only_what_the_last_window_did_not_hold(llama: LlamaCppEngine) -> None:
    llama.llama.reset()
    at(llama, 300)
    moved = at(llama, 330).result  # 30 lines on: the window's start moved, most of it did not
    read = moved.tokens_in - moved.reused_tokens
    assert moved.reused_tokens > moved.tokens_in // 2, (moved.tokens_in, moved.reused_tokens)
    assert read < moved.tokens_in // 2
    assert _holder_cells(llama) == 0  # all given to sequence 0
    again = at(llama, 330).result  # the cache is whole: the same prompt reads its last token
    assert again.tokens_in - again.reused_tokens == 1
    back = at(llama, 300).result  # and back up
    assert back.reused_tokens > back.tokens_in // 2


def test_a_stopped_read_leaves_the_held_runs_to_the_next_run(llama: LlamaCppEngine) -> None:
    llama.llama.reset()
    at(llama, 100)
    whole = at(llama, 140).result  # 40 lines on, read at once
    llama.llama.reset()
    at(llama, 100)
    stopped = at(llama, 140, StopsAfter(2))  # the same, stopped after a slice or two
    assert not stopped.finished
    assert _holder_cells(llama) > 0
    after = at(llama, 140).result  # the next key: the held runs are taken, not read again
    assert after.tokens_in == whole.tokens_in
    assert after.reused_tokens >= whole.reused_tokens
    assert _holder_cells(llama) == 0


def test_anything_but_a_completion_drops_the_held_runs(llama: LlamaCppEngine) -> None:
    llama.llama.reset()
    at(llama, 200)
    at(llama, 240, StopsAfter(1))
    assert _holder_cells(llama) > 0
    hello = [ChatMessage("user", "Say hi.")]
    first = llama.chat(hello, GenerationSettings(max_new_tokens=8)).finish()
    assert _holder_cells(llama) == 0
    finished = at(llama, 240)
    assert finished.finished
    # The chat's cache was not disturbed by the completion's: the same answer again.
    assert llama.chat(hello, GenerationSettings(max_new_tokens=8)).finish().text == first.text
