"""2. A feedback request over stdio, from a client process to the final answer, against the raw
engine call on the same prompt: what the language server adds per request."""

from __future__ import annotations

import time

from bench.harness import EXAMPLE, EXAMPLE_URI, Bench
from bench.results_model import Row, Section
from bench.stats import Spread, ms, ratio
from starchat_lsp import tasks
from starchat_lsp.engine.base import GenerationResult

WHOLE_FUNCTION = {"start": {"line": 0, "character": 0}, "end": {"line": 10, "character": 0}}


def _engine_call(bench: Bench) -> tuple[float, GenerationResult]:
    """What the server does for the model, in this process: build the prompt, generate."""
    engine = bench.engine(reuse_prefix=True)  # the server's engine reuses prefixes too
    start = time.perf_counter()
    prepared = tasks.prepare(
        tasks.TaskKind.FEEDBACK,
        tasks.CodeRequest(text=EXAMPLE, path="/bench/off_by_one.py", start_line=0, end_line=9),
        engine,
        max_new_tokens=bench.options.new_tokens,
    )
    result = engine.chat(prepared.messages, bench.settings()).finish()
    return time.perf_counter() - start, result


def run(bench: Bench) -> Section:
    section = Section(
        "lsp", "2. End to end through LSP: starchat/feedback over stdio vs the engine"
    )
    walls, generations, overheads = [], [], []
    with bench.server(bench.server_options(bench.options.new_tokens)) as (client, _):
        client.open(EXAMPLE_URI, EXAMPLE)
        params = {"textDocument": {"uri": EXAMPLE_URI}, "range": WHOLE_FUNCTION}
        client.request("starchat/feedback", params, timeout=600)  # warm-up
        for _ in range(bench.options.runs):
            sent = time.monotonic()
            msg_id = client.send_request("starchat/feedback", params)
            reply = client.reply(msg_id, timeout=600)
            wall = client.reply_times[msg_id] - sent
            usage = reply["result"]["usage"]
            walls.append(wall)
            generations.append(usage["total_s"] + usage["queue_wait_s"])
            overheads.append(wall - usage["total_s"] - usage["queue_wait_s"])
    tokens = usage["tokens_out"]
    _engine_call(bench)  # warm-up, and the cache the next calls reuse, as in the server
    calls = [_engine_call(bench) for _ in range(bench.options.runs)]
    direct = [seconds for seconds, _ in calls]
    here = calls[-1][1]
    bench.log(f"LSP overhead: {len(walls)} feedback requests, {tokens} tokens each")
    wall_s, engine_in_server = Spread.of(walls), Spread.of(generations)
    overhead, engine_direct = Spread.of(overheads), Spread.of(direct)
    limit = 0.010 + 0.02 * engine_in_server.median
    section.add(
        Row(
            "overhead per request (wall minus the server's own generation time)",
            overhead.show(),
            engine_in_server.show(),
            ratio(overhead.median, engine_in_server.median),
            f"under 10 ms + 2% = {ms(limit)}",
            overhead.median <= limit,
        )
    )
    section.add(
        Row(
            "for reference: the whole request vs the same prompt and engine in this process",
            wall_s.show(),
            engine_direct.show(),
            ratio(wall_s.median, engine_direct.median),
        )
    )
    section.notes.append(
        "the overhead is the client's wall time minus the generation time the server reports in "
        "the answer's usage (total_s + queue_wait_s): prompt building, answer parsing, "
        "diagnostics and JSON-RPC are all in it. The reference row runs the same prompt builder "
        "and engine in the benchmark's own process: a different process, whose decoding speed "
        f"differs by some percent. Tokens in/out/reused: server {usage['tokens_in']}/"
        f"{tokens}/{usage['reused_tokens']}, in-process {here.tokens_in}/{here.tokens_out}/"
        f"{here.reused_tokens}"
    )
    section.series["overhead_ms"] = [o * 1000 for o in overheads]
    return section
