"""8. The model in its own process (the private worker, and the shared host the server and CLI
attach to by default) against the same engine in-process: the same backend, model, prompts and
settings, in one run, for llama.cpp and transformers.

The engines are loaded side by side and take turns, one request at a time (never two
generations at once): the order rotates each round, so that the machine's other load falls on
all alike. Each engine is closed at the end of its backend's turn.
"""

from __future__ import annotations

import tempfile
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from bench import worker_probe as probe
from bench import worker_rounds as rounds
from bench import worker_rows
from bench.harness import Bench
from bench.results_model import Section
from bench.reuse import conversation
from bench.worker_engines import LOCAL, Opened, close_all, open_all
from starchat_lsp.engine.base import ChatMessage, Engine
from starchat_lsp.engine.factory import EngineSettings

LABELS = {"llamacpp": "llama.cpp", "transformers": "transformers"}
RETRIES = 3  # full runs: up to this many times the rounds asked for, until enough are quiet


def _backends(bench: Bench, section: Section) -> list[str]:
    """llama.cpp (the default) when the model has a GGUF file, then transformers; quick: one;
    `--worker-backends`: those of them asked for."""
    found = ["transformers"]
    if find_spec("llama_cpp") is None:
        section.notes.append("llama.cpp rows skipped: llama-cpp-python is not installed")
    elif bench.resolved.gguf_path is None:
        section.notes.append("llama.cpp rows skipped: the model has no GGUF file")
    else:
        found.insert(0, "llamacpp")
    asked = bench.options.worker_backends
    if asked:
        return [backend for backend in found if backend in asked]
    return found[:1] if bench.options.quick else found


def _follow_up(history: list[ChatMessage]) -> list[ChatMessage]:
    return [
        *history,
        ChatMessage("assistant", "It averages windows."),
        ChatMessage("user", "Is the loop bound right?"),
    ]


def _readings(figures: probe.Figures) -> list[Any]:
    return figures.readings


def _cancels(figures: probe.Figures) -> list[Any]:
    return figures.cancels


def _cancel(engine: Engine, _round: int) -> probe.Cancel | None:
    return probe.cancel_round(engine)


def _measure(bench: Bench, opened: Opened) -> tuple[int, list[str]]:
    """Every measurement, the engines taking turns; returns the conversation's token count and
    what was kept of the rounds other processes disturbed."""
    options = bench.options
    retries = 1 if options.quick else RETRIES
    for engine, _ in rounds.turns(opened, 0):  # warm-up
        probe.chat(engine, probe.timed_messages(0), options.new_tokens)

    def timed(engine: Engine, round_: int) -> probe.Reading:
        return probe.chat(engine, probe.timed_messages(round_), options.new_tokens)

    rounds.run(opened, options.runs, options.runs * retries, timed, _readings)
    rounds.run(opened, options.cancels, options.cancels * retries, _cancel, _cancels)
    kept = [
        rounds.keep_quiet(opened, options.runs, _readings, "timed runs"),
        rounds.keep_quiet(opened, options.cancels, _cancels, "cancels"),
    ]
    local: Any = opened[LOCAL][0]  # render_chat: the in-process engines have it
    history = conversation(local, 300 if options.quick else 1500)
    turn = _follow_up(history)
    for round_ in range(1 if options.quick else max(2, (options.runs + 1) // 2)):
        for engine, figures in rounds.turns(opened, round_):
            figures.follow_ups.append(probe.follow_up(engine, history, turn, 4))
    return int(local.count_tokens(local.render_chat(history))), kept


def _load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def run(bench: Bench) -> Section:
    section = Section("worker", "8. Model process (worker, shared host) vs the engine in-process")
    for backend in _backends(bench, section):
        label = LABELS[backend]
        load_before = _load_average()
        settings = EngineSettings(
            model=bench.options.model, backend=backend, dtype=bench.options.dtype
        )
        folder = Path(tempfile.mkdtemp(prefix="starchat-bench-"))
        opened = open_all(settings, folder)
        try:
            size, kept = _measure(bench, opened)
        finally:
            close_all(opened, folder)
        bench.log(f"worker: {label}")
        local = opened[LOCAL][1]
        for kind, (_, figures) in opened.items():
            if kind != LOCAL:
                worker_rows.add(section, f"{label}, {kind}", figures, local, size)
        worker_rows.cancel_note(section, f"{label}, {LOCAL}", local)
        worker_rows.runs_note(section, label, [figures for _, figures in opened.values()])
        section.notes.append(
            f"{label}: load average (1, 5, 15 min) {load_before} before, "
            f"{_load_average()} after; rounds with other processes under "
            f"{rounds.QUIET:.0%} of the cores (quiet): {'; '.join(kept)}"
        )
    section.notes += worker_rows.METHOD
    return section
