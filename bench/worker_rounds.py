"""Section 8's rounds: every engine takes its turn, the first rotating; on a shared machine the
rounds that other processes disturbed are run again (up to a limit) and left out when there are
enough quiet ones."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.worker_engines import Opened
from bench.worker_probe import Figures
from starchat_lsp.engine.base import Engine

# A run is quiet when other processes took less than this share of the cores meanwhile: on 2
# cores one busy process elsewhere slows llama.cpp's 2 threads many times over (they wait for
# each other at every step), which says nothing about the engines compared here.
QUIET = 0.10

Collect = Callable[[Figures], list[Any]]


def turns(opened: Opened, round_: int) -> list[tuple[Engine, Figures]]:
    """Every engine with its figures, the first of them rotating with the round."""
    order = list(opened.values())
    shift = round_ % len(order)
    return order[shift:] + order[:shift]


def _quiet(item: Any) -> bool:
    return item.others is None or item.others < QUIET


def run(
    opened: Opened, wanted: int, limit: int, step: Callable[[Engine, int], Any], collect: Collect
) -> None:
    """Rounds of `step` on every engine, each result (None: none) added to `collect(figures)`,
    until every engine has `wanted` quiet results or `limit` rounds have run."""
    for round_ in range(1, limit + 1):
        for engine, figures in turns(opened, round_):
            item = step(engine, round_)
            if item is not None:
                collect(figures).append(item)
        if all(sum(map(_quiet, collect(f))) >= wanted for _, f in opened.values()):
            return


def keep_quiet(opened: Opened, wanted: int, collect: Collect, what: str) -> str:
    """Keep only the quiet results when every engine has enough of them; says what was kept."""
    lists = [collect(figures) for _, figures in opened.values()]
    quiet = [[item for item in items if _quiet(item)] for items in lists]
    total = sum(map(len, lists))
    if all(len(items) >= min(wanted, 2) for items in quiet):
        for items, kept in zip(lists, quiet, strict=True):
            items[:] = kept
        return f"{what}: {sum(map(len, quiet))} of {total} quiet, counted"
    shares = sorted(item.others for items in lists for item in items if item.others is not None)
    busy = f", other processes took {shares[len(shares) // 2]:.0%} of the cores" if shares else ""
    return f"{what}: too few quiet ({sum(map(len, quiet))} of {total}), all counted{busy}"
