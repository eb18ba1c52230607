"""The real default model end to end: `feedback` on a file with an off-by-one bug.

`make test` pulls the model before the suite; run `make pull` first when calling pytest directly.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from starchat_lsp.models.catalogue import DEFAULT_MODEL
from starchat_lsp.models.store import ModelStore

pytestmark = pytest.mark.default_model

SAMPLE = Path(__file__).parent.parent / "examples" / "off_by_one.py"


@pytest.fixture(scope="module", autouse=True)
def default_model_is_pulled() -> None:
    if not any(s.pulled for s in ModelStore().list() if s.name == DEFAULT_MODEL):
        pytest.fail(
            f"the default model is not pulled: run `make pull` (or `starchat-lsp models "
            f"pull {DEFAULT_MODEL}`) before this test"
        )


def test_feedback_streams_an_answer_and_a_diff_that_apply_keeps_whole(tmp_path: Path) -> None:
    buggy = tmp_path / "off_by_one.py"
    shutil.copy(SAMPLE, buggy)
    original = buggy.read_text()
    result = subprocess.run(
        [sys.executable, "-m", "starchat_lsp", "feedback", str(buggy), "--json", "--apply"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=dict(os.environ, HF_HUB_OFFLINE="1"),
    )
    assert "Traceback" not in result.stderr
    answer = json.loads(result.stdout)
    assert answer["model"] == DEFAULT_MODEL
    assert len(answer["answer"].split()) >= 10, answer["answer"]
    assert answer["diff"].startswith(f"--- a/{buggy}")
    assert answer["metrics"]["tokens_out"] > 0
    assert answer["metrics"]["time_to_first_token_s"] > 0
    if answer["applied"]:
        assert result.returncode == 0
        assert buggy.read_text() != original
        assert buggy.with_name("off_by_one.py.orig").read_text() == original
    else:  # refused (cut, unparsable): then nothing at all was written
        assert result.returncode == 1 and answer["problems"]
        assert buggy.read_text() == original
        assert not buggy.with_name("off_by_one.py.orig").exists()


def test_feedback_streams_text_to_the_terminal() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "starchat_lsp", "explain", f"{SAMPLE}:7", "--max-new-tokens", "40"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=dict(os.environ, HF_HUB_OFFLINE="1"),
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.split()) >= 5
    assert f"{DEFAULT_MODEL} · loaded in" in result.stderr
