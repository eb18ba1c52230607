"""9. Keystroke to suggestion: an editing session on a real file replayed through the server,
with the server's debounce and cache as configured, alone and while a long chat answer streams
on another document (issue 16, items 2 and 4)."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable
from dataclasses import replace
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from bench.harness import EXAMPLE, EXAMPLE_URI, Bench, RawLspClient
from bench.keystroke_chat import Chat, ChatRun
from bench.keystroke_replay import (
    HANG_S,
    NEXT_REACH,
    PAUSE_S,
    REST_S,
    Edit,
    Typist,
    next_lines,
    outcomes,
    places,
)
from bench.keystroke_rows import Scenario, chat_rows, latency_rows, reuse_rows, share_rows, token_s
from bench.results_model import Section
from starchat_lsp.settings import CompletionOptions

SEED = 16
WINDOW = 1536  # completion.max_context_tokens: the goal is for a ~1.5k-token window
SOURCE = Path(textwrap.__file__)  # a real file: the standard library's textwrap.py
URI = "file:///bench/textwrap.py"
# The second scenario's copy: one more line on top keeps the first scenario's suggestions out of
# the server's cache (keyed by the text before and after the cursor).
BESIDE_URI = "file:///bench/beside_chat/textwrap.py"
BESIDE_HEADER = "# the same file, typed in while a chat answer streams\n"


class RunLog:
    """The completion model runs starchat/status lists, read after each retyped line."""

    def __init__(self, client: RawLspClient) -> None:
        self.client = client
        status = self._completion()
        self.seen, self.cache_hits = status["model_runs"], status["cache_hits"]

    def _completion(self) -> dict[str, Any]:
        completion: dict[str, Any] = self.client.request("starchat/status", None)["completion"]
        return completion

    def take(self) -> tuple[list[dict[str, Any]], int, int]:
        """The runs since the last call, how many of them the list no longer held, cache hits."""
        status = self._completion()
        runs = [run for run in status["recent_runs"] if run["run"] > self.seen]
        missing = status["model_runs"] - self.seen - len(runs)
        hits = status["cache_hits"] - self.cache_hits
        self.seen, self.cache_hits = status["model_runs"], status["cache_hits"]
        return runs, missing, hits


def _backend(bench: Bench, section: Section) -> str:
    if bench.resolved.gguf_path is not None and find_spec("llama_cpp") is not None:
        return "llamacpp"
    section.notes.append("the model has no GGUF file (or no llama-cpp-python): transformers")
    return "transformers"


def _retype(
    typist: Typist,
    log: RunLog,
    scenario: Scenario,
    edit: Edit,
    seed: int,
    busy: Callable[[], bool] = lambda: False,
) -> list[dict[str, Any]]:
    keys = typist.retype(edit, seed, busy)
    typist.client.idle()  # the stopped runs have ended: status lists them
    runs, missing, hits = log.take()
    debounce_s = CompletionOptions().debounce_ms / 1000
    scenario.add(outcomes(typist.client, keys, debounce_s), runs, missing)
    scenario.cache_hits += hits
    return runs


def run(bench: Bench) -> Section:
    section = Section("keystrokes", "9. Keystroke to suggestion: an editing session replayed")
    quick = bench.options.quick
    source = SOURCE.read_text()
    max_rest = 8 if quick else 40
    edits = places(source, bench.options.edits, max_rest, SEED)
    below = next_lines(source, edits, max_rest, SEED + 1)
    # Beside a chat: a place's line retyped alone (it warms the place), then the line below it
    # while the chat answers; in a copy of the file one line longer (BESIDE_HEADER).
    pairs = [(e, n) for e, n in zip(edits, below, strict=True) if n is not None]
    beside_pairs = [
        (replace(e, line=e.line + 1), replace(n, line=n.line + 1))
        for e, n in pairs[: max(1, len(edits) // 3)]
    ]
    chat_tokens = 24 if quick else 256
    options = {
        "model": {
            "name": bench.options.model,
            "dtype": bench.options.dtype,
            "backend": _backend(bench, section),
        },
        "generation": {"max_new_tokens": chat_tokens},
        # debounce and cache as configured
        "completion": {
            "max_context_tokens": WINDOW,
            "model": bench.options.completion_model,
            "prefetch": bench.options.prefetch,
        },
        "verify": {"enabled": False},
    }
    alone, beside, near = Scenario(), Scenario(), Scenario()
    with bench.server(options) as (client, _):
        client.open(EXAMPLE_URI, EXAMPLE)  # a first model run, not measured
        end = {"line": 7, "character": len(EXAMPLE.split("\n")[7])}  # a line's end: the model
        warm_up = {
            "textDocument": {"uri": EXAMPLE_URI},
            "position": end,
            "context": {"triggerKind": 2},
        }
        client.request("textDocument/inlineCompletion", warm_up, HANG_S)
        client.idle()
        log = RunLog(client)
        typist = Typist(client, URI, source, bench.options.look)
        for number, (edit, next_line) in enumerate(zip(edits, below, strict=True)):
            _retype(typist, log, alone, edit, SEED + number)
            if next_line is not None:  # typing on a few lines below: a warm place
                _retype(typist, log, near, next_line, SEED + 100 + number)
        bench.log(f"keystrokes: {len(alone.outcomes)} keys on {len(edits)} lines")
        bench.log(f"keystrokes: {len(near.outcomes)} keys on the lines below them")
        chat = Chat(client)
        chats_alone = [chat.alone() for _ in range(1 if quick else 2)]
        other = Typist(client, BESIDE_URI, BESIDE_HEADER + source, bench.options.look)
        chats_beside: list[ChatRun] = []
        compute: list[float] = []
        for number, (edit, next_line) in enumerate(beside_pairs):
            _retype(other, log, Scenario(), edit, SEED + number)  # the place, warmed: not counted
            running = chat.start()
            runs = _retype(other, log, beside, next_line, SEED + 100 + number, running.busy)
            finished = running.finish()
            chats_beside.append(finished)
            compute.append(sum(r["total_s"] for r in runs if r["run"] <= finished.runs_done))
        bench.log(f"keystrokes: {len(beside.outcomes)} keys beside {len(beside_pairs)} chats")
    latency_rows(section, "typing", alone.outcomes, 0.0)
    share_rows(section, "typing", alone)
    reuse_rows(section, "typing", alone)
    latency_rows(section, "typing on below a place", near.outcomes, 0.0)
    share_rows(section, "typing on below a place", near)
    reuse_rows(section, "typing on below a place", near)
    token = token_s(chats_alone)
    latency_rows(section, "during a chat", [o for o in beside.outcomes if o.during], token)
    share_rows(section, "during a chat", beside)
    chat_rows(section, chats_alone, chats_beside, compute)
    reuse_rows(section, "during a chat", beside)
    section.series["keystrokes: model runs typing"] = alone.runs  # results.json: each run
    section.series["keystrokes: model runs typing on below a place"] = near.runs
    section.series["keystrokes: model runs during a chat"] = beside.runs
    section.series["keystrokes: chats"] = [
        {"alone": run in chats_alone, "wall_s": run.wall_s, **run.usage}
        for run in chats_alone + chats_beside
    ]
    _notes(section, bench, edits, len(beside_pairs), chat_tokens, token)
    continued = sum(e is not None for e in below)
    section.notes.append(
        f"typing on below a place: after each place whose next {NEXT_REACH} lines hold one "
        f"that could have been picked ({continued} of {len(edits)}), that line retyped the "
        "same way right after: the user goes on a few lines down, where the KV cache holds "
        "the window around the place (its start and end move in steps of lines). The "
        "typing rows are the places themselves, each met cold"
    )
    return section


def _notes(
    section: Section,
    bench: Bench,
    edits: list[Edit],
    beside: int,
    chat_tokens: int,
    token: float,
) -> None:
    debounce = CompletionOptions().debounce_ms
    python = ".".join(map(str, sys.version_info[:3]))
    completer = bench.options.completion_model
    paired = f" and completion.model {completer} beside it" if completer else ""
    section.notes += [
        f"{bench.resolved.name}{paired}, completion.max_context_tokens {WINDOW} (the issue's "
        f"~1.5k-token window), debounce {debounce} ms and the server's cache as configured by "
        "default",
        f"the file: textwrap.py of Python {python}; {len(edits)} seeded places (seed {SEED}) "
        "inside function bodies: the rest of the line (3 to "
        f"{max(len(e.rest) for e in edits)} characters) deleted, then typed back key by key, "
        "80-250 ms apart with a hesitation (300-800 ms) 12% and a stop (1-2.5 s) 3% of the "
        "time, 0.8-1.5 s after the deletion",
        "after each key, as VS Code: an incremental didChange, $/cancelRequest for the previous "
        "inline request still unanswered, a new textDocument/inlineCompletion (automatic). A "
        "suggestion is shown when a non-empty answer arrives before the next key; the latency "
        "runs from the key to that answer. One from the cache: answered faster than the "
        "debounce (the model's path waits the debounce first)",
        f"before each place's deletion the cursor rests there {bench.options.look[0]:g}-"
        f"{bench.options.look[1]:g} s (seeded); after "
        f"{REST_S * 1000:.0f} ms of it the replay sends starchat/prefetch for the place, as the "
        "VS Code extension does; completion.prefetch "
        + ("on: the server reads the window there meanwhile" if bench.options.prefetch else "off"),
        f"a pause: {PAUSE_S:.0f} s or more to the next key. A line's last key is none: the "
        "line is whole again and nothing is left to suggest (the replay waits for its answer)",
        "reuse: prompt tokens whose KV cache the engine kept from the run before "
        "(starchat/status's completion.recent_runs); the first run at a place follows a line "
        "elsewhere in the file",
        f"during a chat: the first {beside} of those places that have a line below them "
        "again, in a copy of the file one line longer: the place's line retyped with no chat "
        "(it warms the place; not counted), then the line below it while starchat/chat answers "
        f"a long question greedily ({chat_tokens} tokens at most), started before the line "
        "and streaming before its first key; the latencies count keys sent while it ran, "
        "against the goal plus one "
        f"token of the chat ({token * 1000:.0f} ms alone). Its time alone: the median of runs "
        "with no typing, each after another question stopped at its first chunk, as before "
        "each run beside the typing. The completion compute is the total_s of the completion "
        "runs that had finished when the chat's answer came",
    ]
