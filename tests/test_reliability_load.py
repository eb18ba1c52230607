"""50 requests at once from two documents on the tiny model, four times over: every one answered,
the model free for the next request, and the server's memory, threads and open files no more
than after the first time.
The real server process over stdio. (100 cancels in a row: tests/test_server_cancel_soak.py.)"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest

from raw_lsp import log_tail, rss_with_model, start_stdio_server, stop, tiny_options, whole_lines

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads the server's state from /proc"
)

CONCURRENT = 50
LOADS = 4  # the first warms up; a thread, file or memory leak grows over the three after it
MAX_NEW_TOKENS = 8
MAX_RSS_GROWTH = 0.10  # of the resident memory before the run
MB = 2**20
DOCUMENTS = {
    "file:///load/total.py": '''def total(values):
    """Add up the values."""
    result = 0
    for index in range(len(values) - 1):
        result += values[index]
    return result
''',
    "file:///load/stack.py": """class Stack:
    def __init__(self):
        self.items = []

    def push(self, item):
        self.items.append(item)

    def pop(self):
        return self.items.pop(0)
""",
}


def threads_and_files(pid: int) -> tuple[int, int]:
    return (
        len(list(Path(f"/proc/{pid}/task").iterdir())),
        len(list(Path(f"/proc/{pid}/fd").iterdir())),
    )


def request_params(index: int) -> tuple[str, dict[str, Any]]:
    """The index-th request: explain, fix, feedback, chat and completion, on both documents."""
    uri = list(DOCUMENTS)[index % 2]
    lines = DOCUMENTS[uri].count("\n")
    method = ["starchat/explain", "starchat/fix", "starchat/feedback", "starchat/chat"][
        (index // 2) % 4
    ]
    if index % 10 == 9:
        position = {"line": lines - 1, "character": 8}
        return "textDocument/completion", {"textDocument": {"uri": uri}, "position": position}
    if method == "starchat/chat":
        return method, {"messages": [{"role": "user", "content": f"Explain {uri} #{index}"}]}
    return method, {
        "textDocument": {"uri": uri},
        "range": whole_lines(0, lines),
        "partialResultToken": f"load-{index}",
    }


def test_fifty_concurrent_requests_are_all_answered_and_leave_nothing_behind(
    tmp_path: Path, tiny_chatml_model: Path
) -> None:
    stderr_path = tmp_path / "server.stderr"
    proc, client = start_stdio_server(stderr_path)
    try:
        options = tiny_options(tiny_chatml_model, max_new_tokens=MAX_NEW_TOKENS)
        options["initializationOptions"]["completion"] = {"debounce_ms": 0, "max_new_tokens": 4}
        # One generation per request, as this load has always measured: with checked fixes a
        # feedback or fix runs several, in a pattern that grows the bounded thread pools by a
        # different amount each run. Verification frees what it uses (running == 0 after a
        # cancel: tests/test_server_verify.py).
        options["initializationOptions"]["verify"] = {"enabled": False}
        client.initialize(options)
        for uri, text in DOCUMENTS.items():
            client.open(uri, text)

        def run_all(count: int) -> list[dict[str, Any]]:
            ids = [client.send_request(*request_params(index)) for index in range(count)]
            return [client.reply(msg_id, timeout=120) for msg_id in ids]

        # Warm-up with the same load: the model loaded, and asyncio's pool for model runs grown
        # to its size (min(32, cores + 4): fewer than this load's generations, all waiting on the
        # one model at once); it keeps its threads. pygls' pool, which only reads stdin, has one
        # thread from the start. A leak is what grows on the loads after the first.
        run_all(CONCURRENT)
        rss_before = rss_with_model(proc.pid, client)
        threads_before, files_before = threads_and_files(proc.pid)

        started = time.monotonic()
        for load in range(2, LOADS + 1):
            replies = run_all(CONCURRENT)
            errors = [reply for reply in replies if "error" in reply]
            assert not errors, f"load {load}: {errors[:3]}{log_tail(stderr_path)}"
            answered = [reply["result"] for reply in replies]
            generated = [r for r in answered if isinstance(r, dict) and "usage" in r]
            assert all(r["usage"]["tokens_out"] == MAX_NEW_TOKENS for r in generated), generated
            client.idle()  # each reply came once its run returned; superseded ones stop too
            threads, files = threads_and_files(proc.pid)
            assert threads <= threads_before, (load, threads_before, threads)
            assert files <= files_before, (load, files_before, files)
        loads_s = time.monotonic() - started

        # The model is free: the next request gets a whole answer.
        after = client.request(*request_params(0))
        assert after["usage"]["tokens_out"] == MAX_NEW_TOKENS, after["usage"]
        rss_after = rss_with_model(proc.pid, client)
        status = client.idle()
        threads_after, files_after = threads_and_files(proc.pid)
        print(
            f"\n{LOADS - 1} x {CONCURRENT} concurrent requests ({len(generated)} generations "
            f"each) after a warm-up answered in {loads_s:.1f} s; RSS {rss_before / MB:.1f} -> "
            f"{rss_after / MB:.1f} MB ({(rss_after - rss_before) / rss_before:+.1%}); threads "
            f"{threads_before} -> {threads_after}; open files {files_before} -> {files_after}; "
            f"status {status}"
        )
        assert rss_after <= rss_before * (1 + MAX_RSS_GROWTH)
        assert threads_after <= threads_before, (threads_before, threads_after)
        assert files_after <= files_before, (files_before, files_after)
        client.shutdown_and_exit()
        assert proc.wait(timeout=10) == 0, log_tail(stderr_path)
    finally:
        stop(proc)
