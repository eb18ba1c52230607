"""The figures every benchmark reports: a median with its spread, percentiles, ratios."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Spread:
    """The median of several runs, with the fastest and the slowest."""

    median: float
    low: float
    high: float
    count: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        if not values:
            raise ValueError("no measurements")
        return cls(statistics.median(values), min(values), max(values), len(values))

    def show(self, unit: str = "s") -> str:
        """`1.23 s (1.10-1.40)`, with ms for small times."""
        return f"{_number(self.median, unit)} ({_number(self.low, unit, False)}-" + (
            f"{_number(self.high, unit, False)})"
        )


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0-100): a value that was measured, not interpolated."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def ratio(ours: float, baseline: float) -> float:
    return ours / baseline if baseline else math.inf


def _number(value: float, unit: str, with_unit: bool = True) -> str:
    if unit == "s" and abs(value) < 1:
        text, unit = f"{value * 1000:.1f}", "ms"
    elif unit == "MB" or abs(value) >= 100:
        text = f"{value:.0f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}" if with_unit else text


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"
