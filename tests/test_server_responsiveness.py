"""While the model generates an answer for one document, requests on another are answered, not
held until it ends: the generation runs off the event loop. The real server process over stdio,
on the tiny model; each latency is measured from the client's send to the reply's arrival and
printed (bench/responsiveness.py holds them to the issue's 50 ms)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from raw_lsp import RawLspClient, log_tail, start_stdio_server, stop, tiny_options, whole_lines

URI_A = "file:///work/total.py"
TEXT_A = '''def total(values):
    """Add up the values."""
    result = 0
    for index in range(len(values) - 1):
        result += values[index]
    return result
'''
URI_B = "file:///work/stack.py"
TEXT_B = """class Stack:
    def __init__(self):
        self.items = []

    def push(self, item):
        self.items.append(item)

    def pop(self):
        return self.items.pop(0)
"""
SAMPLES = 24
REQUEST_CANCELLED = -32800
# The issue asks for answers within 50 ms: bench/responsiveness.py measures that. Here, what must
# hold on any machine, however busy: every request is answered while the generation goes on
# (its text streams before and after them, and it has not ended), the latencies only printed.
PAUSE_S = 0.02  # between samples, as between an editor's requests: they span the generation


@pytest.fixture
def client(tmp_path: Path, tiny_chatml_model: Path) -> Iterator[RawLspClient]:
    """Answers run until the model's context is full: seconds of generation to measure during."""
    stderr_path = tmp_path / "server.stderr"
    proc, raw = start_stdio_server(stderr_path)
    try:
        raw.initialize(tiny_options(tiny_chatml_model, max_new_tokens=100_000))
        raw.open(URI_A, TEXT_A)
        raw.open(URI_B, TEXT_B)
        yield raw
        raw.shutdown_and_exit()
        assert proc.wait(timeout=10) == 0, log_tail(stderr_path)
    finally:
        stop(proc)


def list_actions(client: RawLspClient, line: int) -> list[Any]:
    cursor = {"line": line, "character": 8}
    actions: list[Any] = client.request(
        "textDocument/codeAction",
        {
            "textDocument": {"uri": URI_B},
            "range": {"start": cursor, "end": cursor},
            "context": {"diagnostics": []},
        },
    )
    return actions


def edit_b(client: RawLspClient, version: int) -> None:
    """Insert a comment line at the top of document B."""
    top = {"line": 0, "character": 0}
    client.notify(
        "textDocument/didChange",
        {
            "textDocument": {"uri": URI_B, "version": version},
            "contentChanges": [{"range": {"start": top, "end": top}, "text": f"# v{version}\n"}],
        },
    )


def test_requests_on_another_document_are_answered_during_a_generation(
    client: RawLspClient,
) -> None:
    list_actions(client, 5)  # the first listing loads the Python grammar: not what is measured
    idle = []  # for comparison: the same listing with the model idle
    for _ in range(SAMPLES):
        started = time.monotonic()
        list_actions(client, 5)
        idle.append(time.monotonic() - started)
    generation = client.send_request(
        "starchat/explain",
        {"textDocument": {"uri": URI_A}, "range": whole_lines(0, 6), "partialResultToken": "gen"},
    )
    client.wait_for_chunks("gen")
    chunks_at_start = client.chunks("gen")

    listing: list[float] = []  # textDocument/codeAction on B
    edit_then_listing: list[float] = []  # didChange on B, then codeAction on B: the new version
    version = 1
    for sample in range(SAMPLES):
        time.sleep(PAUSE_S)
        started = time.monotonic()
        if sample % 2:
            version += 1
            edit_b(client, version)
        # B grows a line per edit: keep the cursor in `push`, whose lines move down
        actions = list_actions(client, 5 + version - 1)
        elapsed = time.monotonic() - started
        (edit_then_listing if sample % 2 else listing).append(elapsed)
        assert [a["data"]["task"] for a in actions] == ["feedback", "fix", "explain"], actions
        assert actions[0]["data"]["version"] == version  # the edit was applied first
        assert (actions[0]["data"]["start_line"], actions[0]["data"]["end_line"]) == (
            4 + version - 1,
            5 + version - 1,
        )
    samples_done = time.monotonic()

    # The generation ran all along: it streamed during the samples, streams after them, and has
    # not answered.
    assert client.chunks("gen") > chunks_at_start, "no text was generated during the samples"
    client.wait_for_chunks("gen", client.chunks("gen") + 1)
    assert client.partial["gen"][-1][0] > samples_done
    assert generation not in client.replies, "the generation ended before the samples did"
    assert client.request("starchat/status", None)["running"] == 1
    client.notify("$/cancelRequest", {"id": generation})
    assert client.reply(generation)["error"]["code"] == REQUEST_CANCELLED
    client.idle()  # the model is free once its run has stopped (within a token): status says so

    every = sorted(listing + edit_then_listing)
    median = statistics.median(every)
    p95 = every[int(0.95 * (len(every) - 1))]
    print(
        f"\nduring a generation ({client.chunks('gen')} chunks streamed): "
        f"{len(every)} requests on another document, p50 {median * 1000:.1f} ms, "
        f"p95 {p95 * 1000:.1f} ms, max {every[-1] * 1000:.1f} ms "
        f"(codeAction p50 {statistics.median(listing) * 1000:.1f} ms, "
        f"didChange+codeAction p50 {statistics.median(edit_then_listing) * 1000:.1f} ms); "
        f"codeAction with the model idle: p50 {statistics.median(idle) * 1000:.1f} ms"
    )
