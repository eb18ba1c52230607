"""Scores of one completion against the hole it fills, and their summary per mode and kind.

- exact: the completion is the hole, both with trailing whitespace stripped from every line;
- edit similarity: 1 - Levenshtein distance / the longer length (characters, same stripping);
  1.0 for the same text, 0.0 for nothing suggested;
- parses: the file with the completion in the hole has no tree-sitter error (the holes are cut
  from files that have none); asked of suggestions only, not of an empty one;
- empty: we chose to say nothing (the scope said no, the run failed, or cleaning left nothing).
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from starchat_lsp.context import syntax


def normalized(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.rstrip().split("\n"))


def exact_match(completion: str, expected: str) -> bool:
    return normalized(completion) == normalized(expected)


def levenshtein(a: str, b: str) -> int:
    """Insertions, deletions and substitutions of characters that turn `a` into `b`."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, start=1):
        current = [i]
        for j, char_b in enumerate(b, start=1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b))
            )
        previous = current
    return previous[-1]


def edit_similarity(completion: str, expected: str) -> float:
    a, b = normalized(completion), normalized(expected)
    longest = max(len(a), len(b))
    return 1.0 if not longest else 1.0 - levenshtein(a, b) / longest


def parses(text: str, language: str | None) -> bool:
    return not language or syntax.error_count(text, language) == 0


@dataclass(kw_only=True)
class Group:
    """The completions of one mode for one kind of hole."""

    holes: int = 0
    exact: int = 0
    similarity: list[float] = field(default_factory=list)
    suggested: int = 0
    parsed: int = 0
    empty: int = 0
    first_token_s: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    doctests: Counter[str] = field(default_factory=Counter)

    def add(self, record: dict[str, Any]) -> None:
        self.holes += 1
        self.exact += bool(record.get("exact"))
        self.similarity.append(float(record.get("similarity") or 0.0))
        if record.get("empty"):
            self.empty += 1
        else:
            self.suggested += 1
            self.parsed += bool(record.get("parses"))
        if record.get("first_token_s") is not None:
            self.first_token_s.append(float(record["first_token_s"]))
        if record.get("scope") != "none":  # no model run: no latency to speak of
            self.seconds.append(float(record.get("seconds") or 0.0))
        doctest = record.get("doctest")
        if isinstance(doctest, dict):
            self.doctests[str(doctest.get("status"))] += 1

    @property
    def mean_similarity(self) -> float | None:
        return statistics.fmean(self.similarity) if self.similarity else None


def summarize(completions: list[dict[str, Any]]) -> dict[str, dict[str, Group]]:
    """Per mode label, per kind (and "all"): the groups, in the order the records came."""
    found: dict[str, dict[str, Group]] = {}
    for record in completions:
        groups = found.setdefault(str(record.get("mode")), {})
        for kind in (str(record.get("kind")), "all"):
            groups.setdefault(kind, Group()).add(record)
    return found


def percentile(values: list[float], share: float) -> float | None:
    """The value below which `share` of the values lie (nearest rank); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, math.ceil(share * len(ordered)))) - 1]
