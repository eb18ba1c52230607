"""The benchmark's quick mode on the tiny model: every section runs through the real server and
engine and lands in the report. Timings are never asserted here (bench/ reports them)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SECTIONS = [
    "engine",
    "lsp",
    "responsive",
    "cancel",
    "reuse",
    "startup",
    "scale",
    "worker",
    "keystrokes",
]


def test_quick_bench_runs_every_section_and_writes_the_report(
    tmp_path: Path, tiny_chatml_model: Path
) -> None:
    out = tmp_path / "results"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            "--model",
            str(tiny_chatml_model),
            "--dtype",
            "float32",
            "--out",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    results = json.loads((out / "results.json").read_text())
    assert [s["key"] for s in results["sections"]] == SECTIONS
    for section in results["sections"]:
        assert section["rows"], section["key"]
        assert all(row["ours"] for row in section["rows"]), section
    report = (out / "report.md").read_text()
    for title in (
        "Engine overhead",
        "End to end through LSP",
        "Responsiveness",
        "Cancellation",
        "Reuse",
        "Start-up",
        "Scale",
        "Model process (worker, shared host) vs the engine in-process",
        "Keystroke to suggestion",
    ):
        assert title in report
    assert report == done.stdout
    assert (out / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The tiny model has no GGUF file: the llama.cpp rows say why they are missing.
    by_key = {section["key"]: section for section in results["sections"]}
    for key in ("scale", "worker"):
        assert any("llama.cpp rows skipped" in note for note in by_key[key]["notes"]), key
    # The worker section ran transformers in-process, in a worker and in a shared host.
    measures = {row["measure"] for row in by_key["worker"]["rows"]}
    for kind in ("worker", "shared host"):
        assert f"transformers, {kind}: first token" in measures, measures
    # The keystroke replay: latency, suggestions shown, KV reuse per run, and the chat beside it.
    measures = {row["measure"] for row in by_key["keystrokes"]["rows"]}
    for scenario in ("typing", "typing on below a place", "during a chat"):
        for measure in (
            "key to suggestion shown: p50 / p95 / max",
            "keys that got a suggestion shown; at pauses (≥ 1 s to the next key)",
            "prompt tokens reused per model run, typing on at a place (median, lowest)",
        ):
            assert f"{scenario}: {measure}" in measures, measures
    assert "during a chat: the chat's answer (greedy) vs the same chat alone" in measures
    # Where the cursor rested before a place's first key, the server read the place.
    rows = {row["measure"]: row for row in by_key["keystrokes"]["rows"]}
    fetched = rows["typing: prefetch runs while the cursor rested, before the first key"]
    assert int(fetched["ours"].split()[0]) > 0, fetched
    assert "during a chat: the chat's extra time vs the completion runs done inside it" in measures


def test_the_chat_rows_say_when_no_line_was_typed_beside_a_chat(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.syspath_prepend(str(REPO))  # bench/ is run from the repository, not installed
    from bench.keystroke_chat import ChatRun
    from bench.keystroke_rows import chat_rows
    from bench.results_model import Section

    section = Section("keystrokes", "9")
    alone = ChatRun("an answer", 2.0, {"tokens_out": 3, "tokens_per_s": 10.0}, 0)
    chat_rows(section, [alone], [], [])  # --edits so few that no place has a line below it
    assert [row.ours for row in section.rows] == [
        "not measured: no place had a line below it to type on (give more --edits)"
    ]
