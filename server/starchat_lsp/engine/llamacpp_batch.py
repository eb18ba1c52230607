"""Answers to several prompts, decoded together in one llama.cpp batch per token.

On a CPU, decoding one token is bound by reading the weights from memory: four sequences in one
batch read them once and cost little more than one. The first prompt is read into sequence 0
(the owner's prefix cache, as for chat). Each answer gets a sequence of its own (1, 2, ...) that
shares the cells of the prefix its prompt has in common with sequence 0's (`llama_memory_seq_cp`
only tags them); the rest of each prompt is read once, into every sequence of its answers, in
batches (a `Branch`). Each step then decodes the last token of every live answer in one
`llama_batch`; each answer has its own sampler chain (the one `Llama.generate` builds for chat,
with its own seed), its own time limit, and ends on its own, or with the answer it `follows`.
One answer can stream its text.

The context is created with a unified KV cache and room for `MAX_SEQUENCES` sequences (see
`context_params`): without the unified cache llama.cpp splits the cells into one stream per
sequence, and chat would get a fraction of its window.

Between two steps the engine may serve interactive requests: they run on sequence 0 only (its
copy out and back, llamacpp_kv), so the answers' sequences stay where they are.
"""

from __future__ import annotations

import codecs
import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from starchat_lsp.engine.base import GenerationSettings, StopReason
from starchat_lsp.engine.stop_strings import StopStringMatcher

# Sequences the context holds: 0 for the prompt, the rest for answers decoded together. More
# answers than that go in groups, one after another, each starting from the kept prompt.
MAX_SEQUENCES = 8
# KV cells the context has beyond its window, for the answers decoded together: a checked fix's
# draft, three samples and the model's tests (about 2,700 cells with their limits on a 350-token
# prompt) did not fit a 4,096-cell cache beside the room kept for an interactive request, and the
# tests waited for a second round (2.9x the plain answer's time on a development case). Qwen2.5-
# Coder-1.5B's KV cache is 28 KB a token: 4,096 more cells are 115 MB.
ANSWER_CELLS = 4096


@contextlib.contextmanager
def context_params() -> Iterator[None]:
    """While a `Llama` is created: its context gets the unified KV cache and MAX_SEQUENCES.

    llama-cpp-python's `Llama` offers neither setting; it reads llama.cpp's defaults, which are
    patched here for the time of the constructor (as llamacpp_engine does for buffer types). One
    sequence in a unified cache runs as it did with n_seq_max 1.
    """
    import llama_cpp.llama_cpp as low_level

    defaults = low_level.llama_context_default_params

    def with_sequences() -> Any:
        params = defaults()
        params.n_seq_max = MAX_SEQUENCES
        params.kv_unified = True
        return params

    low_level.llama_context_default_params = with_sequences
    try:
        yield
    finally:
        low_level.llama_context_default_params = defaults


def rounds(cells: int, first: int, branches: list[tuple[int, list[int]]]) -> list[list[int]]:
    """Which answers decode together: rounds of answer numbers, in order, that fit the cache.

    `first` is sequence 0's prompt (shared); each branch is (tokens of its prompt past what it
    shares with sequence 0, the answers' token limits). Kept free is room for sequence 0's
    prompt copied back after a pause, or the interactive request that runs meanwhile (a quarter
    of the cache at least). An answer that fits no round with others runs alone.
    """
    room = cells - first - max(first, cells // 4)
    plan: list[list[int]] = [[]]
    used = 0
    started: set[int] = set()  # branches whose own tokens the current round holds
    number = 0
    for branch, (own, limits) in enumerate(branches):
        for limit in limits:
            need = limit + (0 if branch in started else own)
            full = len(plan[-1]) >= MAX_SEQUENCES - 1 or used + need > room
            if plan[-1] and full:
                plan.append([])
                used, started = 0, set()
                need = limit + own
            plan[-1].append(number)
            used += need
            started.add(branch)
            number += 1
    return [group for group in plan if group]


def sampler_chain(llama: Any, settings: GenerationSettings, seed: int | None) -> Any:
    """The sampler chain `Llama.generate` builds for the engine's chat, with its own seed.

    Greedy at temperature 0; otherwise plain temperature + top-p (top-k off, min-p 0, typical
    1, no repeat penalty), as the chat path asks `generate` for.
    """
    from llama_cpp import _internals

    chain = _internals.LlamaSampler()
    chain.add_penalties(
        n_vocab=llama.n_vocab(),
        penalty_last_n=llama.last_n_tokens_size,
        penalty_repeat=1.0,
        penalty_freq=0.0,
        penalty_present=0.0,
    )
    if settings.temperature <= 0:
        chain.add_greedy()
        return chain
    chain.add_top_k(0)
    chain.add_typical(1.0, 1)
    chain.add_top_p(settings.top_p, 1)
    chain.add_min_p(0.0, 1)
    chain.add_temp(settings.temperature)
    # Without a seed llama.cpp draws a fresh one per chain: the answers differ from each other.
    chain.add_dist(seed if seed is not None else 0xFFFFFFFF)
    return chain


@dataclass
class Answer:
    """One answer being decoded: its sequence, sampler, text and why it ended."""

    sequence: int
    limit: int  # max new tokens (within the context window)
    sampler: Any
    matcher: StopStringMatcher
    deadline: float | None = None  # on the caller's clock (pauses not counted): then TIME
    on_text: Callable[[str], None] | None = None  # gets the text as it comes
    follows: Answer | None = None  # this one ends (TIME) when that one has ended
    decoder: Any = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace"))
    text: str = ""
    tokens_out: int = 0
    last: int = -1  # the last sampled token: the next step puts it through the model
    reason: StopReason | None = None
    first_token_at: float | None = None
    finished_at: float | None = None

    def take(self, token: int, end_ids: frozenset[int], piece: Callable[[int], bytes]) -> None:
        """One sampled token, judged as the chat path judges it."""
        now = time.monotonic()
        if self.first_token_at is None:
            self.first_token_at = now
        self.tokens_out += 1
        self.last = token
        if token in end_ids:
            self.end(StopReason.EOS)
            return
        self.emit(self.matcher.feed(self.decoder.decode(piece(token))))
        if self.matcher.hit is not None:
            self.end(StopReason.STOP_STRING)
        elif self.tokens_out >= self.limit:
            self.end(StopReason.LENGTH)

    def emit(self, text: str) -> None:
        self.text += text
        if text and self.on_text is not None:
            self.on_text(text)

    def end(self, reason: StopReason) -> None:
        self.reason = reason
        self.finished_at = time.monotonic()
        self.emit(self.matcher.flush())  # nothing once a stop string ended it


@dataclass
class Branch:
    """One prompt's answers: its tokens, and how many of them are sequence 0's already."""

    tokens: list[int]
    shared: int  # its first `shared` tokens are sequence 0's: their cells are copied, not read
    answers: list[Answer]


def decode_together(
    llama: Any,
    branches: list[Branch],
    end_ids: frozenset[int],
    between_steps: Callable[[], StopReason | None],
    clock: Callable[[], float],
) -> None:
    """Decode every branch's answers, from sequence 0 as the last eval left it.

    A branch whose whole prompt is sequence 0's draws its first tokens from the logits that
    eval left; the others read the rest of their prompt first, all in batches of at most the
    context's `n_batch` tokens. `between_steps` runs before each batch (cancel, interactive
    requests); a reason from it ends every live answer, and `clock` past an answer's deadline
    ends that one. The answers' sequences are removed afterwards: sequence 0 is left holding
    its prompt, as after a chat.
    """
    import llama_cpp

    context = llama._ctx.ctx
    memory = llama_cpp.llama_get_memory(context)
    answers = [answer for branch in branches for answer in branch.answers]
    base = {id(a): len(b.tokens) for b in branches for a in b.answers}

    def piece(token: int) -> bytes:
        return bytes(llama.detokenize([token]))

    def first_tokens(branch: Branch, index: int) -> None:
        for answer in branch.answers:
            if answer.reason is not None:  # out of time while its prompt was read
                continue
            token = llama_cpp.llama_sampler_sample(answer.sampler.sampler, context, index)
            answer.take(token, end_ids, piece)

    def stopped() -> bool:
        stop = between_steps()
        live = [a for a in answers if a.reason is None]
        if stop is not None:
            for answer in live:
                answer.end(stop)
            return True
        now = clock()
        for answer in live:
            past = answer.deadline is not None and now >= answer.deadline
            if past or (answer.follows is not None and answer.follows.reason is not None):
                answer.end(StopReason.TIME)
        return False

    reading = [b for b in branches if b.shared < len(b.tokens)]
    size = max(1, int(llama.n_batch))
    widest = max(len(b.answers) for b in branches)
    batch = llama_cpp.llama_batch_init(max(size, len(answers)), 0, widest)
    try:
        for branch in branches:
            for answer in branch.answers:
                llama_cpp.llama_memory_seq_rm(memory, answer.sequence, -1, -1)
                llama_cpp.llama_memory_seq_cp(memory, 0, answer.sequence, 0, branch.shared)
        # The logits the prompt's eval left go first, before any other batch replaces them.
        for branch in branches:
            if branch not in reading:
                first_tokens(branch, -1)
        pending = [(b, j) for b in reading for j in range(b.shared, len(b.tokens))]
        for start in range(0, len(pending), size):
            if stopped():
                return
            chunk = pending[start : start + size]
            batch.n_tokens = len(chunk)
            for index, (branch, position) in enumerate(chunk):
                batch.token[index] = branch.tokens[position]
                batch.pos[index] = position
                batch.n_seq_id[index] = len(branch.answers)
                for k, answer in enumerate(branch.answers):
                    batch.seq_id[index][k] = answer.sequence
                batch.logits[index] = position == len(branch.tokens) - 1
            status = llama_cpp.llama_decode(context, batch)
            if status != 0:
                raise RuntimeError(f"llama_decode returned {status} for {len(chunk)} tokens")
            for index, (branch, position) in enumerate(chunk):
                if position == len(branch.tokens) - 1:
                    first_tokens(branch, index)
        live = [a for a in answers if a.reason is None]
        while live:
            if stopped():
                return
            live = [a for a in live if a.reason is None]
            if not live:
                return
            batch.n_tokens = len(live)
            for index, answer in enumerate(live):
                batch.token[index] = answer.last
                batch.pos[index] = base[id(answer)] + answer.tokens_out - 1
                batch.n_seq_id[index] = 1
                batch.seq_id[index][0] = answer.sequence
                batch.logits[index] = True
            status = llama_cpp.llama_decode(context, batch)
            if status != 0:
                raise RuntimeError(f"llama_decode returned {status} for {len(live)} answers")
            for index, answer in enumerate(live):
                token = llama_cpp.llama_sampler_sample(answer.sampler.sampler, context, index)
                answer.take(token, end_ids, piece)
            live = [a for a in live if a.reason is None]
    finally:
        llama_cpp.llama_batch_free(batch)
        for answer in answers:
            llama_cpp.llama_memory_seq_rm(memory, answer.sequence, -1, -1)
        llama._requires_eval = True  # the logits left are the answers', not the prompt's
