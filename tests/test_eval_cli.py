"""`starchat-lsp eval` as a user runs it: tiny scripted models, a real process, real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tiny_model import build_scripted_model

BUGGY = (
    "def total(values):\n    result = 0\n    for i in range(len(values) - 1):\n"
    "        result += values[i]\n    return result"
)
PROMPTS = [
    {
        "id": "bug-total",
        "type": "bug_feedback",
        "language": "python",
        "prompt": "I wrote this and total([1, 2, 3]) gives 3.",
        "code": BUGGY,
        "entry_point": "total",
        "tests": "assert total([1, 2, 3]) == 6\nassert total([]) == 0",
    },
    {
        "id": "write-add",
        "type": "instruction",
        "language": "python",
        "prompt": "Write a Python function add(a, b) that returns a + b.",
        "entry_point": "add",
        "tests": "assert add(2, 3) == 5",
    },
    {"id": "write-sql", "type": "instruction", "language": "sql", "prompt": "Count the users."},
]
GOOD = (
    "Line 3 stops one short.\n\n```python\ndef total(values):\n    result = 0\n"
    "    for value in values:\n        result += value\n    return result\n\n\n"
    "def add(a, b):\n    return a + b\n```\n"
)
BAD = "```python\ndef total(values):\n    return 0\n\n\ndef add(a, b):\n    return a - b\n```\n"


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "starchat_lsp", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ, HF_HUB_OFFLINE="1"),
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {
        name: build_scripted_model(tmp_path_factory.mktemp(name), answer)
        for name, answer in {
            "good": GOOD,
            "bad": BAD,
            "judge": "7 3\nThe first answer is right.",
            "vague": "Both answers look fine to me.",
        }.items()
    }


@pytest.fixture
def prompt_file(tmp_path: Path) -> Path:
    path = tmp_path / "set.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in PROMPTS))
    return path


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_run_judge_report_on_tiny_models(
    models: dict[str, Path], prompt_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    a, b = str(models["good"]), str(models["bad"])
    run = ("eval", "run", "--model", a, "--model", b, "--prompts", str(prompt_file))
    result = run_cli(*run, "--out", str(out), "--dtype", "float32")
    assert result.returncode == 0, result.stderr
    answers = lines(out / "answers.jsonl")
    checks = {(r["candidate"], r["prompt_id"]): (r["check"] or {}).get("status") for r in answers}
    assert checks == {
        (a, "bug-total"): "pass",
        (a, "write-add"): "pass",
        (a, "write-sql"): None,
        (b, "bug-total"): "fail",
        (b, "write-add"): "fail",
        (b, "write-sql"): None,
    }

    again = run_cli(*run, "--out", str(out), "--dtype", "float32")
    assert again.returncode == 0
    assert "all 3 prompts already answered" in again.stderr
    assert len(lines(out / "answers.jsonl")) == 6

    judged = run_cli(
        "eval", "judge", "--judge", str(models["judge"]), str(out), "--dtype", "float32"
    )
    assert judged.returncode == 0, judged.stderr
    judgments = lines(out / "judgments.jsonl")
    assert [j["order"] for j in judgments] == ["AB", "BA"] * 3
    assert judgments[0]["scores"] == {a: 7, b: 3}
    assert judgments[1]["scores"] == {b: 7, a: 3}

    reported = run_cli("eval", "report", str(out))
    assert reported.returncode == 0, reported.stderr
    assert reported.stdout.split() == [
        str(out / n) for n in ("report.md", "report.html", "scores.png")
    ]
    markdown = (out / "report.md").read_text()
    assert f"| {a} | all | 2 | 0 | 0 | 0 | 100.0% (2/2) |" in markdown
    assert f"| {b} | all | 0 | 2 | 0 | 0 | 0.0% (0/2) |" in markdown
    # The judge always prefers the answer shown first: every prompt is a tie over both orders,
    # and the two orders never agree.
    assert "| 0.0% (0/3) | 100.0% (3/3) | 0.0% (0/3) | 3 |" in markdown
    assert "same winner or both a tie): 0.0% (0/3)" in markdown


def test_a_judge_that_gives_no_scores_is_recorded_unparsed(
    models: dict[str, Path], prompt_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    run = run_cli(
        "eval",
        "run",
        "--model",
        str(models["good"]),
        "--prompts",
        str(prompt_file),
        "--out",
        str(out),
        "--limit",
        "1",
        "--dtype",
        "float32",
    )
    assert run.returncode == 0, run.stderr
    judged = run_cli(
        "eval", "judge", "--judge", str(models["vague"]), str(out), "--dtype", "float32"
    )
    assert judged.returncode == 0, judged.stderr
    (judgment,) = lines(out / "judgments.jsonl")
    assert (judgment["status"], judgment["scores"], judgment["attempts"]) == ("unparsed", None, 2)
    run_cli("eval", "report", str(out))
    assert "unparsed (dropped, never guessed): 1" in (out / "report.md").read_text()


def assert_one_line_error(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith("starchat-lsp: error: ")
    assert expected in errors[0]


def test_bad_input_gives_one_clear_line(tmp_path: Path, prompt_file: Path) -> None:
    out = str(tmp_path / "out")
    missing = str(tmp_path / "nope.jsonl")
    assert_one_line_error(
        run_cli("eval", "run", "--prompts", missing, "--out", out), "no such prompt file"
    )
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"id": "x"}\n')
    assert_one_line_error(
        run_cli("eval", "run", "--prompts", str(broken), "--out", out), "broken.jsonl:1: missing"
    )
    assert_one_line_error(
        run_cli("eval", "run", "--prompts", str(prompt_file), "--out", out, "--limit", "0"),
        "--limit must be more than 0",
    )
    assert_one_line_error(
        run_cli("eval", "run", "--model", "x@gpu", "--prompts", str(prompt_file), "--out", out),
        "unknown backend 'gpu'",
    )
    assert_one_line_error(
        run_cli("eval", "judge", "--judge", "smollm2-135m", str(tmp_path / "empty")),
        "not a run folder",
    )
    assert_one_line_error(run_cli("eval", "report", str(tmp_path / "empty")), "not a run folder")
