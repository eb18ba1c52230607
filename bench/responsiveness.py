"""3. While a long answer is generated, how fast the server answers the editor's other requests:
code-action listing, and a completion request on another document."""

from __future__ import annotations

import time
from typing import Any

from bench.harness import EXAMPLE, EXAMPLE_URI, Bench
from bench.results_model import Row, Section
from bench.stats import Spread, ms, percentile

OTHER_URI = "file:///bench/stack.py"
OTHER = """class Stack:
    # items are kept oldest first
    def __init__(self):
        self.items = []

    def pop(self):
        return self.items.pop(0)
"""
STORY = [{"role": "user", "content": "Tell me a very long story about a compiler, in detail."}]
LIMIT_S = 0.050
PAUSE_S = 0.01  # between requests, as between keystrokes of a fast typist


class Generation:
    """A long starchat/chat kept running: when one answer ends, the next starts."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.count = 0
        self.msg_id = -1
        self.restart()

    def restart(self) -> None:
        self.count += 1
        token = f"story-{self.count}"
        self.msg_id = self.client.send_request(
            "starchat/chat", {"messages": STORY, "partialResultToken": token}
        )
        self.client.wait_until(
            lambda: self.client.chunks(token) >= 2 or self.msg_id in self.client.replies,
            600,
            "the answer to stream",
        )

    def running(self) -> bool:
        return self.msg_id not in self.client.replies


def _requests() -> list[tuple[str, str, dict[str, Any]]]:
    action = {
        "textDocument": {"uri": OTHER_URI},
        "range": {"start": {"line": 5, "character": 0}, "end": {"line": 7, "character": 0}},
        "context": {"diagnostics": []},
    }
    # In the comment: tree-sitter decides there is nothing to complete, before any model runs.
    inline = {
        "textDocument": {"uri": OTHER_URI},
        "position": {"line": 1, "character": 10},
        "context": {"triggerKind": 2},
    }
    return [
        ("code-action listing", "textDocument/codeAction", action),
        ("completion on another document", "textDocument/inlineCompletion", inline),
    ]


def run(bench: Bench) -> Section:
    section = Section("responsive", "3. Responsiveness while a long answer is generated")
    latencies: dict[str, list[float]] = {name: [] for name, _, _ in _requests()}
    options = bench.server_options(max_new_tokens=100_000)
    with bench.server(options) as (client, _):
        client.open(EXAMPLE_URI, EXAMPLE)
        client.open(OTHER_URI, OTHER)
        generation = Generation(client)
        while min(len(v) for v in latencies.values()) < bench.options.samples:
            for name, method, params in _requests():
                if not generation.running():
                    generation.restart()
                sent = time.monotonic()
                msg_id = client.send_request(method, params)
                reply = client.reply(msg_id)
                assert "error" not in reply, reply
                if generation.running():  # only samples taken during a generation count
                    latencies[name].append(client.reply_times[msg_id] - sent)
                time.sleep(PAUSE_S)
        client.send(
            {"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": generation.msg_id}}
        )
        client.reply(generation.msg_id)
    bench.log(f"responsiveness: {bench.options.samples} samples each, {generation.count} answers")
    for name, values in latencies.items():
        spread = Spread.of(values)
        p99 = percentile(values, 99)
        section.add(
            Row(
                f"{name}: p50 / p99 / max",
                f"{ms(percentile(values, 50))} / {ms(p99)} / {ms(spread.high)}",
                "",
                None,
                f"p99 under {ms(LIMIT_S)}",
                p99 < LIMIT_S,
            )
        )
        section.series[name] = [v * 1000 for v in values]
    section.notes.append(
        f"{bench.options.samples} requests of each kind, sent {ms(PAUSE_S)} apart while a chat "
        "answer streams; latency from the client's send to the reply's arrival. The completion "
        "is in a comment, where tree-sitter answers without the model; a completion that needs "
        "the model waits for the one model worker (the running answer)."
    )
    return section
