"""The runs a completion at a new place keeps from the last place's KV cache (pure parts)."""

from __future__ import annotations

import random

from starchat_lsp.engine.llamacpp_reuse import (
    FRESH_AFTER,
    FRESH_BEFORE,
    GRAM,
    MIN_KEPT,
    Run,
    move_order,
    near_cursor,
    plan,
)
from starchat_lsp.engine.llamacpp_shift import READ_AGAIN


def _text(rng: random.Random, count: int) -> list[int]:
    return [rng.randrange(1000, 50000) for _ in range(count)]


def test_a_window_cut_elsewhere_keeps_the_runs_it_shares() -> None:
    rng = random.Random(1)
    head, dropped, kept, old_cursor, new_text, tail = (
        _text(rng, n) for n in (3, 40, 300, 20, 60, 200)
    )
    fim_suffix, fim_middle = [7], [8]
    cached = head + dropped + kept + fim_suffix + old_cursor + fim_middle + _text(rng, 5)
    # The window starts 40 tokens later; the old text after the cursor now comes before it.
    tokens = head + kept + old_cursor + fim_suffix + new_text + tail + fim_middle
    runs = plan(cached, tokens, 3)
    assert len(runs) == 1  # `kept` (the old cursor's text is too short to move: it is read)
    (run,) = runs
    assert run.start == 3 + 40 + READ_AGAIN and run.to == 3 + READ_AGAIN
    assert run.count == 300 - READ_AGAIN
    assert cached[run.start : run.start + run.count] == tokens[run.to : run.to + run.count]
    assert run.shift == -40


def test_runs_keep_their_order_and_never_take_the_last_token() -> None:
    rng = random.Random(2)
    a, b, c = _text(rng, 100), _text(rng, 80), _text(rng, 120)
    cached = [1, *a, 5, 6, *b, *c]
    tokens = [1, *a, 9, 9, 9, *b, 4, *c]
    runs = plan(cached, tokens, 1 + len(a))  # `a` is the prefix both share
    for run in runs:
        assert run.count >= MIN_KEPT
        assert cached[run.start : run.start + run.count] == tokens[run.to : run.to + run.count]
        assert run.to + run.count <= len(tokens) - 1
    assert [r.start for r in runs] == sorted(r.start for r in runs)
    assert [r.to for r in runs] == sorted(r.to for r in runs)
    # b moves one on, c two on; the prompt's last token (c's) is read again
    assert [r.shift for r in runs] == [1, 2]
    assert runs[-1].to + runs[-1].count == len(tokens) - 1


def test_no_run_crosses_a_position_the_cache_does_not_hold() -> None:
    rng = random.Random(3)
    a = _text(rng, 200)
    cached: list[int | None] = [1, *a[:100], None, *a[100:]]
    runs = plan(cached, [1, 2, *a, 3], 1)
    assert all(None not in cached[r.start : r.start + r.count] for r in runs)
    # the run after the hole is held: no cell before it, its seam is read already
    assert [r.count for r in runs] == [100 - READ_AGAIN, 100]


def test_short_runs_are_read() -> None:
    rng = random.Random(4)
    a = _text(rng, MIN_KEPT + READ_AGAIN - 1)
    assert plan([1, 0, *a], [1, *a, 2], 1) == []
    a = _text(rng, max(MIN_KEPT + READ_AGAIN, GRAM))
    assert len(plan([1, 0, *a], [1, *a, 2], 1)) == 1


def test_moves_in_this_order_never_land_on_a_run_not_moved_yet() -> None:
    """Cells as a map position -> (run, index): each move must find exactly its own run's cells
    at its source and leave every cell where `plan` wants it."""
    rng = random.Random(5)
    for _ in range(300):
        runs, start, to = [], 0, 0
        for _ in range(rng.randint(1, 5)):
            start += rng.randint(0, 60)
            to += rng.randint(0, 60)
            count = rng.randint(1, 50)
            runs.append(Run(start, to, count))
            start, to = start + count, to + count
        cells = {r.start + i: (n, i) for n, r in enumerate(runs) for i in range(r.count)}
        for run in move_order(runs):
            n = runs.index(run)
            moving = {p: cells.pop(p) for p in range(run.start, run.start + run.count)}
            assert all(owner == n for owner, _ in moving.values())
            for p, cell in moving.items():
                assert p + run.shift not in cells
                cells[p + run.shift] = cell
        assert cells == {r.to + i: (n, i) for n, r in enumerate(runs) for i in range(r.count)}


def test_the_text_nearest_the_cursor_is_read() -> None:
    rng = random.Random(6)
    a = _text(rng, 400)
    marker = 7
    tokens = [1, 2, *a[:200], marker, *a[200:], 8]
    cached = [1, 3, *a[:200], marker, *a[200:]]
    fresh = near_cursor(tokens, marker)
    assert fresh == (202 - FRESH_BEFORE, 202 + FRESH_AFTER)
    runs = plan(cached, tokens, 1, fresh)
    assert len(runs) == 2
    for run in runs:
        assert run.to + run.count <= fresh[0] or run.to >= fresh[1]
    assert near_cursor(tokens, 9) == (0, 0) and near_cursor(tokens, None) == (0, 0)
