"""4. Cancellation: from cancel to the model being free, that is, to the next request starting.

In the engine: the next request's queue wait after `cancel()`. Through LSP: the time from
`$/cancelRequest` to the first `starchat/status` answer that counts no model run (`running` is 0
once the cancelled run has stopped), polled every 5 ms."""

from __future__ import annotations

import time
from collections.abc import Callable

from bench.harness import Bench, RawLspClient, explain_messages
from bench.results_model import Row, Section
from bench.stats import Spread, ms
from starchat_lsp.engine.base import ChatMessage

NEXT = [ChatMessage("user", "Name three sorting algorithms.")]
CHUNKS_BEFORE_CANCEL = 5
POLL_S = 0.005


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


def _streaming_or_done(client: RawLspClient, msg_id: int, token: str) -> Callable[[], bool]:
    return lambda: client.chunks(token) >= CHUNKS_BEFORE_CANCEL or msg_id in client.replies


def _lsp_level(bench: Bench) -> tuple[Spread, Spread]:
    """(`$/cancelRequest` to the error reply, to `starchat/status` saying the model is free)."""
    long_chat = [{"role": "user", "content": explain_messages()[0].content}]
    replies, frees = [], []
    with bench.server(bench.server_options(max_new_tokens=100_000)) as (client, _):
        for round_ in range(bench.options.cancels + 1):
            token = f"long-{round_}"
            msg_id = client.send_request(
                "starchat/chat", {"messages": long_chat, "partialResultToken": token}
            )
            streaming = _streaming_or_done(client, msg_id, token)
            client.wait_until(streaming, 600, "the answer to stream")
            if msg_id in client.replies:
                continue  # the answer ended by itself: nothing to cancel
            cancelled_at = time.monotonic()
            client.send({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": msg_id}})
            while True:  # a poll every few ms: polling flat out would slow the model's last step
                status_id = client.send_request("starchat/status", None)
                if client.reply(status_id)["result"]["running"] == 0:
                    break
                time.sleep(POLL_S)
            free_at = client.reply_times[status_id]
            client.reply(msg_id, timeout=600)
            if round_ == 0:
                continue  # warm-up
            replies.append(client.reply_times[msg_id] - cancelled_at)
            frees.append(free_at - cancelled_at)
    return Spread.of(replies), Spread.of(frees)


def run(bench: Bench) -> Section:
    section = Section(
        "cancel", "4. Cancellation: from cancel to the model free for the next request"
    )
    engine_free, token_s = _engine_level(bench)
    reply, lsp_free = _lsp_level(bench)
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
            "LSP: $/cancelRequest to starchat/status saying the model is free",
            lsp_free.show(),
            f"one token: {ms(token_s)}",
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
