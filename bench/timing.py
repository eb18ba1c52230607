"""Reading a stream of text against the clock: when the first piece came, and the last."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from starchat_lsp.engine.base import GenerationResult, TextStream


def first_and_end(chunks: Iterable[Any], started: float) -> tuple[float, float, int]:
    """(first chunk, end) in seconds after `started` (a perf_counter), and the chunk count."""
    first, count = None, 0
    for _ in chunks:
        count += 1
        if first is None:
            first = time.perf_counter()
    end = time.perf_counter()
    assert first is not None, "no text came"
    return first - started, end - started, count


def timed(stream: TextStream, started: float) -> tuple[float, float, GenerationResult]:
    """(first chunk after `started`, tokens/s after it, result) of a stream read to the end."""
    first, end, _ = first_and_end(stream, started)
    result = stream.result
    return first, (result.tokens_out - 1) / max(1e-9, end - first), result
