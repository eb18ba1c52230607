"""The terminal commands as a user runs them: a real process, the tiny model, real files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

BUGGY = '''def total(values):
    """Add up the values."""
    result = 0
    for index in range(len(values) - 1):
        result += values[index]
    return result
'''


def run_cli(
    *args: str, cache: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    if cache is not None:
        env["STARCHAT_LSP_CACHE"] = str(cache)
    return subprocess.run(
        [sys.executable, "-m", "starchat_lsp", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def buggy_file(tmp_path: Path) -> Path:
    path = tmp_path / "total.py"
    path.write_text(BUGGY)
    return path


def assert_one_line_error(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("starchat-lsp: error: ")
    for text in expected:
        assert text in lines[0]
    assert result.stdout == ""


def test_missing_file(tmp_path: Path) -> None:
    assert_one_line_error(run_cli("feedback", str(tmp_path / "nope.py")), "no such file")


def test_range_outside_the_file(buggy_file: Path) -> None:
    result = run_cli("fix", f"{buggy_file}:5-40")
    assert_one_line_error(result, "outside", "6 lines")


def test_reversed_range(buggy_file: Path) -> None:
    assert_one_line_error(run_cli("explain", f"{buggy_file}:5-2"), "bad line range")


def test_binary_file(tmp_path: Path) -> None:
    binary = tmp_path / "blob.py"
    binary.write_bytes(b"\x7fELF\x00\x01\x02binary")
    assert_one_line_error(run_cli("feedback", str(binary)), "binary file")


def test_empty_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.py"
    empty.write_text("\n\n")
    assert_one_line_error(run_cli("feedback", str(empty)), "empty")


def test_unknown_model(buggy_file: Path) -> None:
    result = run_cli("feedback", str(buggy_file), "--model", "no-such-model")
    assert_one_line_error(result, "unknown model", "smollm2-135m")


def test_model_not_pulled_says_how_to_pull(buggy_file: Path, tmp_path: Path) -> None:
    result = run_cli("feedback", str(buggy_file), cache=tmp_path / "empty-cache")
    assert_one_line_error(result, "starchat-lsp models pull qwen2.5-coder-1.5b")  # the default


def test_feedback_json_on_the_tiny_model(buggy_file: Path, tiny_chatml_model: Path) -> None:
    result = run_cli(
        "feedback",
        f"{buggy_file}:4",
        "--model",
        str(tiny_chatml_model),
        "--max-new-tokens",
        "12",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    # Line 4 is inside `total`: the command works on the whole function.
    assert (answer["start_line"], answer["end_line"]) == (1, 6)
    assert answer["metrics"]["tokens_out"] == 12
    assert answer["metrics"]["stop_reason"] == "length"
    assert answer["complete"] is False
    assert answer["answer"]
    assert answer["applied"] is False
    assert answer["verification"]["verdict"]  # feedback checks its fix unless told not to
    assert answer["verification"]["draft_answer"]


def test_no_verify_gives_the_plain_answer_only(buggy_file: Path, tiny_chatml_model: Path) -> None:
    args = ["--model", str(tiny_chatml_model), "--max-new-tokens", "12", "--json"]
    result = run_cli("fix", str(buggy_file), *args, "--no-verify")
    assert result.returncode == 0, result.stderr
    assert "verification" not in json.loads(result.stdout)


def test_tests_in_the_project_become_checks(tmp_path: Path, tiny_chatml_model: Path) -> None:
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "tests").mkdir()
    (project / "pyproject.toml").write_text("[project]\nname = 'p'\n")
    source = project / "src" / "total.py"
    source.write_text(BUGGY)
    (project / "tests" / "test_total.py").write_text(
        "from total import total\n\n\ndef test_total():\n    assert total([1, 2, 3]) == 6\n"
    )
    args = ["--model", str(tiny_chatml_model), "--max-new-tokens", "12", "--candidates", "1"]
    result = run_cli("fix", str(source), *args, "--json")
    assert result.returncode == 0, result.stderr
    evidence = json.loads(result.stdout)["verification"]["evidence"]
    assert evidence == [
        {
            "code": "assert total([1, 2, 3]) == 6",
            "source": "tests/test_total.py:5",
            "kind": "expects",
        }
    ]


def test_the_checks_found_are_listed(buggy_file: Path, tiny_chatml_model: Path) -> None:
    note = "total([1, 2, 3]) gives 3 instead of 6"
    args = ["--model", str(tiny_chatml_model), "--max-new-tokens", "12", "--candidates", "2"]
    result = run_cli("feedback", str(buggy_file), *args, "--note", note)
    assert result.returncode == 0, result.stderr
    assert "check (your message): assert total([1, 2, 3]) == 6" in result.stderr
    assert "tried in" in result.stderr  # the verdict's line


def test_apply_never_writes_a_cut_or_missing_fix(buggy_file: Path, tiny_chatml_model: Path) -> None:
    result = run_cli(
        "fix",
        str(buggy_file),
        "--model",
        str(tiny_chatml_model),
        "--max-new-tokens",
        "8",
        "--apply",
    )
    assert result.returncode == 1
    assert "not applied" in result.stderr
    assert buggy_file.read_text() == BUGGY
    assert not buggy_file.with_name("total.py.orig").exists()


def test_ask_prints_to_stdout(tiny_chatml_model: Path) -> None:
    result = run_cli(
        "ask",
        "write a function that adds two numbers",
        "--model",
        str(tiny_chatml_model),
        "--max-new-tokens",
        "6",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


def test_ctrl_c_stops_generation_at_once(buggy_file: Path, tiny_chatml_model: Path) -> None:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "starchat_lsp",
            "explain",
            str(buggy_file),
            "--model",
            str(tiny_chatml_model),
            "--max-new-tokens",
            "1000000",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert process.stdout is not None
    process.stdout.read(1)  # the answer has started streaming
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=300)
    # What must happen, not how fast (bench/ times cancels): it stops before the answer is
    # complete (a whole answer ends with the stats line), says so, and exits 130.
    said = stderr.decode()
    assert process.returncode == 130, said
    assert "stopped" in said and "tokens in" not in said, said
    assert "Traceback" not in said
