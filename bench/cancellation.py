"""4. Cancellation: from cancel to the model being free, that is, to the next request starting.

In the engine: the next request's queue wait after `cancel()`. Through LSP: the time from
`$/cancelRequest` to the next request's first chunk, minus that request's first-chunk time when
the model is idle (measured the same way, in the same run)."""

from __future__ import annotations

import time
from typing import Any

from bench.harness import Bench, explain_messages
from bench.results_model import Row, Section
from bench.stats import Spread, ms
from starchat_lsp.engine.base import ChatMessage

NEXT = [ChatMessage("user", "Name three sorting algorithms.")]
CHUNKS_BEFORE_CANCEL = 5


def _engine_level(bench: Bench) -> tuple[Spread, float]:
    engine = bench.engine(reuse_prefix=False)
    waits, token_times = [], []
    for _ in range(bench.options.cancels):
        stream = engine.chat(explain_messages(), bench.settings(100_000))
        for count, _ in enumerate(stream, start=1):
            if count == CHUNKS_BEFORE_CANCEL:
                break
        stream.cancel()
        following = engine.chat(NEXT, bench.settings(2))
        long_result = stream.finish()
        waits.append(following.finish().queue_wait_s)
        token_times.append(1 / long_result.tokens_per_s)
    return Spread.of(waits), sorted(token_times)[len(token_times) // 2]


def _lsp_level(bench: Bench) -> tuple[Spread, Spread, Spread]:
    """(cancel reply time, next first chunk after cancel minus idle, idle first chunk)."""
    long_chat = [{"role": "user", "content": explain_messages()[0].content}]
    short_chat = [{"role": m.role, "content": m.content} for m in NEXT]
    replies, contested, idle = [], [], []
    with bench.server(bench.server_options(max_new_tokens=100_000)) as (client, _):
        counter = iter(range(1_000_000))

        def start(messages: list[dict[str, str]]) -> tuple[int, str, float]:
            token = f"t{next(counter)}"
            sent = time.monotonic()
            msg_id = client.send_request(
                "starchat/chat", {"messages": messages, "partialResultToken": token}
            )
            return msg_id, token, sent

        def cancel(msg_id: int) -> float:
            sent = time.monotonic()
            client.send({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": msg_id}})
            return sent

        def running(msg_id: int, token: str) -> None:
            """Wait until the answer streams (or has already ended: a short answer)."""
            client.wait_until(
                lambda: client.chunks(token) >= CHUNKS_BEFORE_CANCEL or msg_id in client.replies,
                600,
                "the answer to stream",
            )

        def first_chunk(msg_id: int, token: str) -> float:
            """When the first text came (or the reply, for an answer with no text)."""
            client.wait_until(
                lambda: client.chunks(token) >= 1 or msg_id in client.replies, 600, "first text"
            )
            if client.chunks(token):
                arrived: float = client.partial[token][0][0]
                return arrived
            return client.reply_times[msg_id]

        def cancelled(msg_id: int) -> Any:
            return client.reply(msg_id, timeout=600)

        for round_ in range(bench.options.cancels + 1):
            # idle: the long answer is cancelled and gone before the next request is sent
            msg_id, token, _ = start(long_chat)
            running(msg_id, token)
            cancelled_at = cancel(msg_id)
            cancelled(msg_id)
            time.sleep(0.3)
            next_id, next_token, sent = start(short_chat)
            idle_first = first_chunk(next_id, next_token) - sent
            cancel(next_id)
            cancelled(next_id)
            # contested: the next request is sent right after the cancel
            msg_id, token, _ = start(long_chat)
            running(msg_id, token)
            cancelled_at = cancel(msg_id)
            next_id, next_token, _ = start(short_chat)
            reply_time = client.reply_times[cancelled(msg_id)["id"]] - cancelled_at
            contested_first = first_chunk(next_id, next_token) - cancelled_at
            cancel(next_id)
            cancelled(next_id)
            if round_ == 0:
                continue  # warm-up
            replies.append(reply_time)
            idle.append(idle_first)
            contested.append(contested_first - idle_first)
    return Spread.of(replies), Spread.of(contested), Spread.of(idle)


def run(bench: Bench) -> Section:
    section = Section(
        "cancel", "4. Cancellation: from cancel to the model free for the next request"
    )
    engine_free, token_s = _engine_level(bench)
    reply, lsp_free, idle = _lsp_level(bench)
    bench.log(f"cancellation: {bench.options.cancels} rounds")
    limit = token_s + 0.020
    section.add(
        Row(
            "engine: cancel() to the next request starting",
            engine_free.show(),
            f"one token: {ms(token_s)}",
            None,
            f"under one token + 20 ms = {ms(limit)}",
            engine_free.median <= limit,
        )
    )
    section.add(
        Row(
            "LSP: $/cancelRequest to the next request's first chunk, minus its idle time",
            lsp_free.show(),
            f"idle first chunk {idle.show()}",
            None,
            f"under {ms(limit)}",
            lsp_free.median <= limit,
        )
    )
    section.add(Row("LSP: $/cancelRequest to the cancelled request's error reply", reply.show()))
    section.notes.append(
        f"{bench.options.cancels} rounds, each cancelling after {CHUNKS_BEFORE_CANCEL} chunks; "
        "one token's time is the cancelled answer's own decoding speed."
    )
    return section
