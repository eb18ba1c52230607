"""What a benchmark section hands to the report: table rows, notes, and data for the chart."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Row:
    measure: str
    ours: str
    baseline: str = ""
    ratio: float | None = None  # ours / baseline
    target: str = ""
    met: bool | None = None  # None: no target, or not measurable here


@dataclass
class Section:
    key: str
    title: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    series: dict[str, Any] = field(default_factory=dict)  # for the chart

    def add(self, row: Row) -> None:
        self.rows.append(row)
