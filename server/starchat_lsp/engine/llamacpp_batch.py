"""Several sampled answers to one prompt, decoded together in one llama.cpp batch per token.

On a CPU, decoding one token is bound by reading the weights from memory: four sequences in one
batch read them once and cost little more than one. The prompt is read once, into sequence 0 (the
owner's prefix cache, as for chat); each answer gets a sequence of its own (1, 2, ...) that shares
the prompt's KV cells (`llama_memory_seq_cp` only tags them) and adds its own tokens. Each step
decodes the last token of every live answer in one `llama_batch`; each answer has its own sampler
chain (the one `Llama.generate` builds for chat, with its own seed) and ends on its own.

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


def group_size(cells: int, prompt: int, limit: int, n: int) -> int:
    """How many answers of up to `limit` tokens to decode together in a KV cache of `cells`.

    The prompt's cells are shared; what is kept free is room for sequence 0's prompt copied back
    after a pause, or the interactive request that runs meanwhile (a quarter of the cache at
    least). Never fewer than one: a long answer still runs, alone.
    """
    room = cells - prompt - max(prompt, cells // 4)
    return max(1, min(n, MAX_SEQUENCES - 1, room // max(1, limit)))


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

    def end(self, reason: StopReason) -> None:
        self.reason = reason
        self.finished_at = time.monotonic()
        self.emit(self.matcher.flush())  # nothing once a stop string ended it


def decode_together(
    llama: Any,
    answers: list[Answer],
    prompt_tokens: int,
    end_ids: frozenset[int],
    between_steps: Callable[[], StopReason | None],
) -> None:
    """Decode `answers` from the prompt in sequence 0, whose logits the last eval left.

    `between_steps` runs before each step (cancel, time limit, interactive requests); a reason
    from it ends every live answer. The answers' sequences are removed afterwards: sequence 0 is
    left holding the prompt, as after a chat.
    """
    import llama_cpp

    context = llama._ctx.ctx
    memory = llama_cpp.llama_get_memory(context)

    def piece(token: int) -> bytes:
        return bytes(llama.detokenize([token]))

    batch = llama_cpp.llama_batch_init(len(answers), 0, 1)
    try:
        for answer in answers:
            llama_cpp.llama_memory_seq_rm(memory, answer.sequence, -1, -1)
            llama_cpp.llama_memory_seq_cp(memory, 0, answer.sequence, -1, -1)
        # The first token of each comes from the prompt's last logits, before anything else runs.
        for answer in answers:
            answer.take(
                llama_cpp.llama_sampler_sample(answer.sampler.sampler, context, -1), end_ids, piece
            )
        live = [a for a in answers if a.reason is None]
        while live:
            stop = between_steps()
            if stop is not None:
                for answer in live:
                    answer.end(stop)
                return
            batch.n_tokens = len(live)
            for index, answer in enumerate(live):
                batch.token[index] = answer.last
                batch.pos[index] = prompt_tokens + answer.tokens_out - 1
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
