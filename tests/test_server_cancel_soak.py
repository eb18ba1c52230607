"""Cancelling 100 generations in a row leaves the server healthy, its model free and its memory
flat. The real server process over stdio, on the tiny model."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from raw_lsp import (
    RawLspClient,
    log_tail,
    rss_with_model,
    start_stdio_server,
    stop,
    tiny_options,
    whole_lines,
)

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads the server's memory from /proc"
)

URI = "file:///work/total.py"
TEXT = '''import math


def total(values):
    """Add up the values."""
    result = 0
    for index in range(len(values) - 1):
        result += values[index]
    return result
''' + "".join(
    # more code: a long prompt (~1,900 tokens), so that what a request holds is large
    f'''

def helper_{n}(values, offset={n}):
    """Shift every value by {n} and keep the even ones."""
    shifted = [value + offset for value in values]
    return [value for value in shifted if value % 2 == 0]
'''
    for n in range(10)
)
WHOLE_FILE = whole_lines(0, TEXT.count("\n"))
CANCELS = 100
WARM_UP = 10
REQUEST_CANCELLED = -32800
MB = 1024 * 1024
# Resident memory may grow this much between the 10th and the 100th cancel. Noise first: after
# the warm-up (torch's thread pools and allocator caches, a malloc arena per worker thread, the
# tokenizer's caches) it grew 0.5 to 1.5 MB over the 90 requests in every run here. A leak keeps
# something per request: the model's state for the prompt (its key-value cache: 2 layers x (k, v)
# x 32 floats = 512 bytes a token, ~0.95 MB for this ~1,900-token prompt), a generation thread
# that never ends with all it holds, or the request's streamer, prompt and chunks. A leak
# injected for a check (bytes kept on each engine.chat call) grew it 13 MB at 150 KB a request,
# 18 MB at 200 KB and 86 MB at 1 MB. Since the engine keeps the last request's key-value cache
# for reuse (one, cropped or replaced each time), the allocator's high-water mark moves with the
# sizes the cancels happen to leave: once 13 MB in a clean-clone CI run on a busy machine, with
# no leak (0.5-0.7 MB in the runs around it). 30 MB still fails a leak of a request's key-value
# cache (~1 MB a request, ~90 MB here) or of about 350 KB a request or more.
MAX_GROWTH = 30 * MB


@dataclass
class Server:
    pid: int
    client: RawLspClient
    stderr_path: Path
    model: Path


@pytest.fixture
def server(tmp_path: Path, tiny_chatml_model: Path) -> Iterator[Server]:
    """A server whose answers run until the model's context is full (seconds): cancel them."""
    stderr_path = tmp_path / "server.stderr"
    proc, client = start_stdio_server(stderr_path)
    try:
        client.initialize(tiny_options(tiny_chatml_model, max_new_tokens=100_000))
        client.open(URI, TEXT)
        yield Server(proc.pid, client, stderr_path, tiny_chatml_model)
        client.shutdown_and_exit()
        assert proc.wait(timeout=10) == 0, log_tail(stderr_path)
    finally:
        stop(proc)


def cancel_one(client: RawLspClient, method: str, token: str) -> float:
    """Start a streamed request, cancel it after its first chunk; seconds to the -32800 reply."""
    params: dict[str, object] = {"partialResultToken": token}
    if method == "starchat/chat":
        params["messages"] = [{"role": "user", "content": "What does `total` do?"}]
    else:
        params.update(textDocument={"uri": URI}, range=WHOLE_FILE)
    msg_id = client.send_request(method, params)
    client.wait_for_chunks(token)
    client.notify("$/cancelRequest", {"id": msg_id})
    cancelled_at = time.monotonic()
    reply = client.reply(msg_id)
    assert "result" not in reply, reply
    assert reply["error"]["code"] == REQUEST_CANCELLED, reply
    return client.reply_times[msg_id] - cancelled_at


def test_a_hundred_cancels_leave_the_server_healthy_and_its_memory_flat(server: Server) -> None:
    client = server.client
    started = time.monotonic()
    # explain and chat take different paths to the model (a code task and a conversation)
    methods = ["starchat/explain", "starchat/chat"]
    reply_delays = []
    rss_after_warm_up = 0
    for index in range(CANCELS):
        try:
            reply_delays.append(cancel_one(client, methods[index % 2], f"c{index}"))
        except (TimeoutError, AssertionError) as error:
            raise AssertionError(
                f"cancel {index + 1}: {error}{log_tail(server.stderr_path)}"
            ) from None
        if index + 1 == WARM_UP:
            rss_after_warm_up = rss_with_model(server.pid, client)
    rss_at_end = rss_with_model(server.pid, client)
    soak_s = time.monotonic() - started

    # Healthy and free: no model run is left (a cancelled generation still going would count),
    # and a normal request right after gets a whole answer. How soon the model is free after a
    # cancel, and how soon the cancel is answered, is bench/cancellation.py's to time.
    client.idle()
    # (the same model, shorter answers: the settings change loads nothing)
    settings = tiny_options(server.model, max_new_tokens=16)["initializationOptions"]
    client.notify("workspace/didChangeConfiguration", {"settings": settings})
    answer = client.request(
        "starchat/explain",
        {"textDocument": {"uri": URI}, "range": WHOLE_FILE, "partialResultToken": "after"},
    )
    usage = answer["usage"]
    assert usage["stop_reason"] == "length" and usage["tokens_out"] == 16, usage
    # Every cancelled generation stopped: none of them streams any more.
    counts = client.chunk_counts()
    time.sleep(0.3)
    assert client.chunk_counts() == counts

    growth = rss_at_end - rss_after_warm_up
    reply_delays.sort()
    print(
        f"\n{CANCELS} cancels in {soak_s:.1f} s; RSS after {WARM_UP}: "
        f"{rss_after_warm_up / MB:.1f} MB, after {CANCELS}: {rss_at_end / MB:.1f} MB "
        f"(growth {growth / MB:+.1f} MB); cancel -> reply p50 "
        f"{reply_delays[len(reply_delays) // 2] * 1000:.1f} ms, max "
        f"{reply_delays[-1] * 1000:.1f} ms; next request: {usage}"
    )
    assert growth < MAX_GROWTH, f"RSS grew {growth / MB:.1f} MB over {CANCELS - WARM_UP} cancels"
