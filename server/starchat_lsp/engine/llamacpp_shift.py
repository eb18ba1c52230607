"""Keep the KV cache of a prompt's end when its middle changed: typing at the cursor.

A fill-in-the-middle prompt is `<|fim_prefix|>` text before the cursor `<|fim_suffix|>` text
after it `<|fim_middle|>`. A keystroke changes the end of the text before the cursor, so
everything after that point differs from the cached prompt by its position only: the text after
the cursor (a quarter of the window, about 380 tokens: 4 s on 2 CPU cores for
Qwen2.5-Coder-1.5B) would be read again at every key. Instead its cells are moved to their new
positions (`llama_memory_seq_add`: llama.cpp re-rotates their keys, as its server's
`--cache-reuse` does), and only the changed middle is read.

The moved cells were computed after the old middle, not the new one: they are close, not equal,
to what a fresh read gives (`eval complete --modes fim+typed` measures what it costs). The new
middle's tokens sit before them and never attend to them, as in a fresh read; the prompt's last
token is always read again, so the answer starts from fresh logits that see everything.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

# Fewer cached tokens than this at the end are not worth moving: they are read again.
MIN_MOVED = 32
# A middle longer than this is read the usual way (in slices that cancel can stop).
MAX_MIDDLE = 64
# The first tokens after the changed middle are read again, not moved: moved, their cells (the
# `<|fim_suffix|>` token's first) still say what the old middle was, and the model then wrote
# the key typed last once more (`].clone()` after `[`) or a space more of indentation:
# `eval complete --modes fim+typed` lost 2 of 11 exact matches. With 4 read again it matched
# the cold cache's answers on those holes, for about 0.06 s more on 2 CPU cores.
READ_AGAIN = 4


@dataclass(frozen=True)
class Run:
    """cached[start:start+count] is tokens[to:to+count]: its cells move by `to - start`."""

    start: int
    to: int
    count: int

    @property
    def shift(self) -> int:
        return self.to - self.start


@dataclass(frozen=True, kw_only=True)
class Move(Run):
    """Keep `kept` tokens in place; read tokens[kept:to]; move cached[start:start+count] to `to`
    (by 0 where the middle read has as many tokens as the one it replaces)."""

    kept: int


def plan(cached: Sequence[int], tokens: Sequence[int], kept: int) -> Move | None:
    """Where the cache holds the prompt's end (its last token aside) at another position.

    `kept` is the prefix the two share. The run moved is the longest one that ends the prompt
    before its last token and is found in the cache after `kept` (the cache may hold an answer
    after the old prompt); its first READ_AGAIN tokens are read with the middle. None when no
    such run of MIN_MOVED tokens or more exists, or the middle between is longer than
    MAX_MIDDLE.
    """
    end = len(tokens) - 1  # the last token is read again: its logits start the answer
    if end - kept < MIN_MOVED:
        return None
    last = tokens[end - 1]
    best: Move | None = None
    for stop in range(len(cached), kept, -1):  # cached[stop - 1] would match tokens[end - 1]
        if cached[stop - 1] != last:
            continue
        count = 0
        room = min(stop - kept, end - kept)
        while count < room and cached[stop - 1 - count] == tokens[end - 1 - count]:
            count += 1
        if best is None or count > best.count:
            best = Move(kept=kept, start=stop - count, to=end - count, count=count)
    if best is None or best.count < MIN_MOVED or best.to - kept > MAX_MIDDLE:
        return None
    again = READ_AGAIN  # read with the middle
    return Move(kept=kept, start=best.start + again, to=best.to + again, count=best.count - again)


def can_shift(llama: Any) -> bool:
    """Whether the context's cache can move cells (not a recurrent model's, say)."""
    import llama_cpp

    check = getattr(llama_cpp, "llama_memory_can_shift", None)
    context = getattr(getattr(llama, "_ctx", None), "ctx", None)
    if check is None or context is None:
        return False
    return bool(check(llama_cpp.llama_get_memory(context)))


def apply(llama: Any, tokens: Sequence[int], move: Move) -> bool:
    """Sequence 0 ends up holding tokens[:move.to + move.count]: the cells moved, the middle read.
    False when no sequence is free to read the middle in (nothing changed), or llama.cpp
    refused it (sequence 0 then holds the kept prefix only).

    llama.cpp takes a sequence's new tokens only right after its last position, and the middle
    goes before the moved cells: it is read in a free sequence that holds the kept prefix (its
    cells shared, not copied), then given to sequence 0. Only sequence 0 and that one are
    touched (an interactive request's own cells: the answers a batch decodes wait in others).
    `llama.n_tokens` and `input_ids` follow, as after `Llama.eval`.
    """
    import llama_cpp

    context = llama._ctx.ctx
    memory = llama_cpp.llama_get_memory(context)
    middle = list(tokens[move.kept : move.to])
    scratch = free_sequence(llama_cpp, memory, int(llama_cpp.llama_n_seq_max(context)))
    if middle and scratch is None:
        return False
    moved_end = move.start + move.count
    llama_cpp.llama_memory_seq_rm(memory, 0, moved_end, -1)
    llama_cpp.llama_memory_seq_rm(memory, 0, move.kept, move.start)
    llama_cpp.llama_memory_seq_add(memory, 0, move.start, moved_end, move.shift)
    if middle and scratch is not None:
        llama_cpp.llama_memory_seq_cp(memory, 0, scratch, 0, move.kept)
        batch = llama_cpp.llama_batch_init(len(middle), 0, 1)
        try:
            batch.n_tokens = len(middle)
            for index, token in enumerate(middle):
                batch.token[index] = token
                batch.pos[index] = move.kept + index
                batch.n_seq_id[index] = 1
                batch.seq_id[index][0] = scratch
                batch.logits[index] = index == len(middle) - 1  # unused; never none
            status = llama_cpp.llama_decode(context, batch)
            if status == 0:
                llama_cpp.llama_memory_seq_cp(memory, scratch, 0, move.kept, move.to)
        finally:
            llama_cpp.llama_batch_free(batch)
            llama_cpp.llama_memory_seq_rm(memory, scratch, -1, -1)
        if status != 0:  # the prompt is read the usual way, from the kept prefix
            log.warning("llama_decode returned %s for a moved prompt's middle", status)
            llama_cpp.llama_memory_seq_rm(memory, 0, move.kept, -1)
            llama.n_tokens = move.kept
            return False
    held = move.to + move.count
    llama.input_ids[:held] = tokens[:held]
    llama.n_tokens = held
    llama._requires_eval = True  # the logits are not the prompt's last token's
    return True


def free_sequence(llama_cpp: Any, memory: Any, count: int) -> int | None:
    """The highest sequence with no cells (never 0), or None."""
    for sequence in range(count - 1, 0, -1):
        if int(llama_cpp.llama_memory_seq_pos_max(memory, sequence)) < 0:
            return sequence
    return None
