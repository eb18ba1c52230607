"""Keep the KV cache of the text a new place shares with the last one: a completion moved.

At a new place in a file the completion window's text is mostly the same file again, in the same
order, only cut elsewhere: its start moved by a few steps of lines, and the text between the old
and the new cursor changed sides of the `<|fim_suffix|>` token. With the cached prefix alone
(the first tokens both share: the file's header comment) the whole window is read again, about
1,300 tokens: 14 s on 2 CPU cores for Qwen2.5-Coder-1.5B. Instead, the runs of the new prompt
that the cache holds, however far they moved, are kept (as llama.cpp's server does with
`--cache-reuse`): their cells go to a holding sequence and are moved there to their new
positions (`llama_memory_seq_add` re-rotates their keys), and the prompt is read from its start
with those runs given back to sequence 0 as the reading reaches them. Only the text in between
goes through the model.

Held runs survive a stopped read: a key typed at the new place stops the run, and the next one
finds the runs not yet reached in the holding sequence, at the positions they were moved to, so
a place's window is read once however many keys stop it. Anything but a completion drops them
(`Stash.drop`): their cells are room a batch of answers needs.

A moved run's cells were computed after other text than it now follows: close, not equal, to a
fresh read (`eval complete --modes fim+moved` measures what it costs). Its first READ_AGAIN
tokens are read, not moved (the seam, as llamacpp_shift does after a typed key), and the
prompt's last token is always read, so the answer starts from fresh logits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from starchat_lsp.engine.llamacpp_shift import READ_AGAIN, Run, free_sequence

# A run shorter than this (after READ_AGAIN) is read again: moving it saves too little.
MIN_KEPT = 32
GRAM = 8  # runs are found by their first GRAM tokens
# The text nearest the cursor is read, not moved (near_cursor): moved, its cells had been
# computed on the other side of `<|fim_suffix|>`, and `eval complete --modes fim+moved` lost
# 2 of 3 passing bodies (seed 0); with these sizes it kept them, for about 0.7 s more on 2 cores.
FRESH_BEFORE = 64
FRESH_AFTER = 32


def plan(
    cached: Sequence[int | None],
    tokens: Sequence[int],
    kept: int,
    fresh: tuple[int, int] = (0, 0),
) -> list[Run]:
    """The runs of `tokens` after `kept` (the shared prefix) that the cache holds, in order.

    `cached[p]` is the token whose cell sits at position p, None where none does. Greedy, left
    to right: at each token of the prompt the longest run the cache holds after the last run
    taken, if it is long enough, else the token is read. The prompt's last token is never in a
    run. Each run's first READ_AGAIN tokens are left out of it (read), where the cache holds a
    cell before it; a run that then keeps fewer than MIN_KEPT is dropped. No run covers the
    positions in `fresh` ([first, last)): the text nearest the cursor is read.
    """
    end = len(tokens) - 1
    starts: dict[tuple[int | None, ...], list[int]] = {}
    for p in range(kept, len(cached) - GRAM + 1):
        gram = tuple(cached[p : p + GRAM])
        if None not in gram:
            starts.setdefault(gram, []).append(p)
    runs: list[Run] = []
    index, floor = kept, kept
    while index + GRAM <= end:
        if fresh[0] <= index < fresh[1]:
            index = fresh[1]
            continue
        # a run ends before the first fresh position after it
        limit = min(end, fresh[0]) if index < fresh[0] else end
        best_start, best_count = -1, 0
        found = starts.get(tuple(tokens[index : index + GRAM]), ()) if index + GRAM <= limit else ()
        for start in found:
            if start < floor:
                continue
            count = GRAM
            while (
                index + count < limit
                and start + count < len(cached)
                and cached[start + count] == tokens[index + count]
            ):
                count += 1
            if count > best_count:
                best_start, best_count = start, count
        # The seam: read again, unless no cell sits before the run (its first cells came after
        # text read again then, held while a read was stopped: what goes before is read now).
        again = READ_AGAIN if best_start > 0 and cached[best_start - 1] is not None else 0
        if best_count - again >= MIN_KEPT:
            runs.append(Run(best_start + again, index + again, best_count - again))
            index, floor = index + best_count, best_start + best_count
        else:
            index += 1
    return runs


def near_cursor(tokens: Sequence[int], marker: int | None) -> tuple[int, int]:
    """The positions read fresh at a new place: FRESH_BEFORE tokens before the fill-in-the-
    middle prompt's `marker` (its `<|fim_suffix|>`: the cursor) and FRESH_AFTER from it on.
    (0, 0) where the prompt has no marker."""
    if marker is None or marker not in tokens:
        return (0, 0)
    at = tokens.index(marker)
    return (max(at - FRESH_BEFORE, 0), at + FRESH_AFTER)


@dataclass
class Stash:
    """Runs held in a sequence of their own, at their new positions, until sequence 0 takes
    them: `tokens` maps each held cell's position to its token."""

    sequence: int = -1
    tokens: dict[int, int] = field(default_factory=dict)

    def cached(self, held: list[int]) -> list[int | None]:
        """What sequence 0 holds (`held`, its tokens), then the held runs at their positions:
        for `plan`."""
        if not self.tokens:
            return list(held)
        view: list[int | None] = [*held, *([None] * (max(self.tokens) + 1 - len(held)))]
        for position, token in self.tokens.items():
            if position >= len(held):
                view[position] = token
        return view

    def drop(self, llama: Any) -> None:
        """Free the held cells (sequence 0's own stay)."""
        if self.sequence >= 0 and self.tokens:
            import llama_cpp

            memory = llama_cpp.llama_get_memory(llama._ctx.ctx)
            llama_cpp.llama_memory_seq_rm(memory, self.sequence, -1, -1)
        self.sequence, self.tokens = -1, {}

    def hold(self, llama: Any, tokens: Sequence[int], runs: list[Run], kept: int) -> bool:
        """Sequence 0 keeps `kept` tokens; the runs' cells wait at their new positions.

        False (and nothing held, sequence 0 as it was) where no sequence is free to hold them.
        """
        import llama_cpp

        memory = llama_cpp.llama_get_memory(llama._ctx.ctx)
        if self.sequence < 0:
            free = free_sequence(llama_cpp, memory, int(llama_cpp.llama_n_seq_max(llama._ctx.ctx)))
            if free is None:
                return False
            self.sequence = free
        holder, own = self.sequence, int(llama.n_tokens)
        # Tag the runs' cells that sequence 0 holds; drop the held ones no run takes.
        for run in runs:
            first, last = run.start, min(run.start + run.count, own)
            if first < last:
                llama_cpp.llama_memory_seq_cp(memory, 0, holder, first, last)
        taken = {p for run in runs for p in range(run.start, run.start + run.count)}
        for first, last in _spans(sorted(set(self.tokens) - taken)):
            llama_cpp.llama_memory_seq_rm(memory, holder, first, last)
        llama_cpp.llama_memory_seq_rm(memory, 0, kept, -1)
        for run in move_order(runs):
            llama_cpp.llama_memory_seq_add(
                memory, holder, run.start, run.start + run.count, run.shift
            )
        self.tokens = {run.to + i: tokens[run.to + i] for run in runs for i in range(run.count)}
        llama.n_tokens = kept
        return True

    def give(self, llama: Any, run: Run, tokens: Sequence[int]) -> None:
        """Sequence 0, read up to `run.to`, takes the run's held cells."""
        import llama_cpp

        memory = llama_cpp.llama_get_memory(llama._ctx.ctx)
        first, last = run.to, run.to + run.count
        llama_cpp.llama_memory_seq_cp(memory, self.sequence, 0, first, last)
        llama_cpp.llama_memory_seq_rm(memory, self.sequence, first, last)
        for position in range(first, last):
            self.tokens.pop(position, None)
        llama.input_ids[first:last] = tokens[first:last]
        llama.n_tokens = last
        llama._requires_eval = True  # the logits are not the prompt's last token's


def move_order(runs: list[Run]) -> list[Run]:
    """The order to move `runs` (as `plan` gives them) in: none lands on cells of one not
    moved yet. Sources and targets keep their order, so leftward ones go first from the left,
    then rightward ones from the right; those that stay are not moved."""
    left = [r for r in runs if r.shift < 0]
    right = [r for r in reversed(runs) if r.shift > 0]
    return left + right


def _spans(positions: list[int]) -> list[tuple[int, int]]:
    """Sorted positions as [first, last) spans of consecutive ones."""
    spans: list[tuple[int, int]] = []
    for position in positions:
        if spans and spans[-1][1] == position:
            spans[-1] = (spans[-1][0], position + 1)
        else:
            spans.append((position, position + 1))
    return spans
