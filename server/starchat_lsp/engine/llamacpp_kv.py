"""Two KV caches in one llama.cpp context: the interactive one (completions at the cursor) and
the one of everything else (chat, feedback, fixes), each kept while the other runs.

The owner's tokens are sequence 0 (others hold the answers of a batch being decoded, untouched
here: llamacpp_batch). When the owner changes, the leaving owner's sequence (its KV
cells and the tokens they hold) is copied out and the arriving owner's copy, if any, put back:
about 20 ms out and 7 ms in for 1,400 tokens of Qwen2.5-Coder-1.5B (40 MB). So a completion
between a chat answer and its follow-up leaves both their prefixes to reuse, and a completion can
run between two tokens of a long answer, which then goes on from exactly where it was.
"""

from __future__ import annotations

import ctypes
import logging
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

INTERACTIVE = "interactive"
BACKGROUND = "background"


@dataclass
class _Copy:
    tokens: list[int] = field(default_factory=list)
    buffer: Any = None  # a ctypes byte array, kept and reused while it is big enough
    size: int = 0  # bytes of `buffer` in use


class KvOwners:
    """Which owner's sequence the context holds, and the other owner's copy."""

    def __init__(self) -> None:
        self.owner = BACKGROUND
        self._copies: dict[str, _Copy] = {}

    def use(self, llama: Any, owner: str) -> None:
        """Make `owner`'s sequence the context's; the one there now is copied out first."""
        if owner == self.owner:
            return
        import llama_cpp

        leaving = self._copies.setdefault(self.owner, _Copy())
        _copy_out(llama_cpp, llama, leaving)
        arriving = self._copies.get(owner)
        if arriving is None or not arriving.tokens or not _copy_in(llama_cpp, llama, arriving):
            llama.reset()
        self.owner = owner


def _copy_out(llama_cpp: Any, llama: Any, copy: _Copy) -> None:
    count = int(llama.n_tokens)
    copy.tokens = [int(t) for t in llama.input_ids[:count]]
    if count == 0:
        copy.size = 0
        return
    context = llama._ctx.ctx
    needed = int(llama_cpp.llama_state_seq_get_size(context, 0))
    if copy.buffer is None or len(copy.buffer) < needed:
        copy.buffer = (ctypes.c_uint8 * needed)()
    copy.size = int(llama_cpp.llama_state_seq_get_data(context, copy.buffer, needed, 0))
    if copy.size == 0:
        copy.tokens = []  # nothing came out: the owner starts afresh when it is back


def _copy_in(llama_cpp: Any, llama: Any, copy: _Copy) -> bool:
    context = llama._ctx.ctx
    memory = llama_cpp.llama_get_memory(context)
    # Sequence 0 only: the answers a batch decodes (llamacpp_batch) wait in the others.
    llama_cpp.llama_memory_seq_rm(memory, 0, -1, -1)
    if int(llama_cpp.llama_state_seq_set_data(context, copy.buffer, copy.size, 0)) == 0:
        log.warning("llama.cpp refused a KV cache copy back: the prompt is computed again")
        llama_cpp.llama_memory_seq_rm(memory, 0, -1, -1)
        return False
    count = len(copy.tokens)
    llama.input_ids[:count] = copy.tokens
    llama.n_tokens = count
    llama._requires_eval = True  # the logits are not this sequence's
    return True
