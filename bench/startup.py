"""6. Start-up: `initialize` answered (the model loads after it), and the model ready."""

from __future__ import annotations

import subprocess
import sys
import time

from bench.harness import Bench
from bench.results_model import Row, Section
from bench.stats import Spread, ms, ratio

INITIALIZE_LIMIT_S = 0.300
SETTLE_S = 3.0  # long enough for the process's imports, on this machine


def _bare_imports_s() -> float:
    """A Python process that only imports the LSP libraries every pygls server needs."""
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", "import lsprotocol.types, pygls.lsp.server"], check=True)
    return time.monotonic() - started


def run(bench: Bench) -> Section:
    section = Section("startup", "6. Start-up")
    answer, cold, ready, bare = [], [], [], []
    for _ in range(max(1, bench.options.runs // 2)):
        with bench.server(bench.server_options(16), settle_s=SETTLE_S) as (_, measured):
            answer.append(measured["initialize_s"])
            ready.append(measured["ready_s"])
        with bench.server(bench.server_options(16)) as (_, measured):
            cold.append(measured["spawn_s"])
            ready.append(measured["ready_s"])
        bare.append(_bare_imports_s())
    bench.log(f"start-up: {len(ready)} server starts")
    answer_s, cold_s, bare_s = Spread.of(answer), Spread.of(cold), Spread.of(bare)
    section.add(
        Row(
            "initialize: request to answer (server process already up)",
            answer_s.show(),
            "",
            None,
            f"under {ms(INITIALIZE_LIMIT_S)}",
            answer_s.median < INITIALIZE_LIMIT_S,
        )
    )
    section.add(
        Row(
            "process start to the initialize answer, vs a Python that only imports pygls",
            cold_s.show(),
            bare_s.show(),
            ratio(cold_s.median, bare_s.median),
            f"under {ms(INITIALIZE_LIMIT_S)}",
            cold_s.median < INITIALIZE_LIMIT_S,
        )
    )
    ready_s = Spread.of(ready)
    section.add(Row(f"initialized to {bench.resolved.name} ready (progress end)", ready_s.show()))
    section.notes.append(
        "an editor starts the server and sends initialize at once: its wait is the second row; "
        "most of it is importing lsprotocol and pygls, which every pygls server pays"
    )
    section.series["ready_s"] = ready_s.median
    return section
