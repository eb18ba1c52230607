"""`starchat-lsp models ...` as a user runs it: a process, one line on error, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def starchat(cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "STARCHAT_LSP_CACHE": str(cache), "COLUMNS": "200"}
    command = [sys.executable, "-m", "starchat_lsp", "models", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def assert_one_line_error(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("starchat-lsp: error: ")
    assert expected in result.stderr


def test_list_shows_the_catalogue_and_marks_the_default(cache: Path) -> None:
    result = starchat(cache, "list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("* qwen2.5-coder-1.5b") and " no " in line for line in lines)
    assert any(line.startswith("  smollm2-135m") for line in lines)


def test_path_of_a_model_not_pulled_says_how_to_pull_it(cache: Path) -> None:
    result = starchat(cache, "path", "smollm2-135m")
    assert result.stdout == ""
    assert_one_line_error(result, "run `starchat-lsp models pull smollm2-135m`")


def test_path_of_an_unknown_model_names_the_known_ones(cache: Path) -> None:
    assert_one_line_error(starchat(cache, "path", "gpt-17"), "name one of smollm2-135m")


def test_path_prints_only_the_folder_of_a_pulled_model(cache: Path, tmp_path: Path) -> None:
    source = tmp_path / "Tuned"
    source.mkdir()
    (source / "config.json").write_text("{}")
    pulled = starchat(cache, "pull", str(source))
    assert pulled.returncode == 0, pulled.stderr
    assert pulled.stdout.startswith("tuned is ready")

    result = starchat(cache, "path", "tuned")
    assert result.returncode == 0
    assert result.stdout == f"{cache / 'tuned'}\n"
    assert (cache / "tuned" / "hf" / "config.json").is_file()

    # A folder is the model itself: no GGUF, its transformers size, nothing to remove apart.
    [row] = [line for line in starchat(cache, "list").stdout.splitlines() if "tuned" in line]
    assert row.split()[:5] == ["tuned", "yes", "-", "2", "B"], row
    assert_one_line_error(starchat(cache, "remove", "tuned", "--keep-gguf"), "has no GGUF")
    assert (cache / "tuned" / "hf" / "config.json").is_file()

    assert starchat(cache, "remove", "tuned").stdout == "removed tuned\n"
    assert_one_line_error(starchat(cache, "path", "tuned"), "unknown model 'tuned'")


def test_pull_of_a_missing_file_is_one_line(cache: Path, tmp_path: Path) -> None:
    result = starchat(cache, "pull", str(tmp_path / "nope.gguf"))
    assert_one_line_error(result, "nope.gguf: no such file or folder")


def test_pull_from_the_hub_offline_says_what_to_do_instead(cache: Path) -> None:
    result = starchat(cache, "pull", "starchat-lsp-tests/no-such-model")
    assert_one_line_error(result, "Hugging Face hub")
    assert not (cache / "starchat-lsp-tests--no-such-model").exists()
