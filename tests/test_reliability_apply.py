"""`starchat-lsp fix FILE --apply` loses nothing: the real command on a scripted model whose
answer is a good fix, killed (SIGKILL) at each step of the write, leaves the old file whole.

The kill comes from inside the command's own process: a launcher patches one os function to
SIGKILL the process when the write reaches it, then runs the CLI as `python -m starchat_lsp`
would. (A fix for a document that changed while the model worked is refused with
ContentModified: tests/test_server.py::test_document_changed_while_fixing_gives_content_modified.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tiny_model import build_scripted_model

BUGGY = '''def total(values):
    """Add up the values."""
    result = 0
    for index in range(len(values) - 1):
        result += values[index]
    return result
'''
FIXED = BUGGY.replace("range(len(values) - 1)", "range(len(values))")
ANSWER = f"The loop stops one short.\n\n```python\n{FIXED}```\n"

# Runs the CLI with `os.<name>` replaced by a SIGKILL of this very process (argv[1] names it).
LAUNCHER = """
import os, signal, sys
name = sys.argv.pop(1)
if name != "none":
    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)
    setattr(os, name, die)
from starchat_lsp.cli import main
raise SystemExit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def fixing_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_scripted_model(tmp_path_factory.mktemp("scripted-fix"), ANSWER)


def apply_fix(path: Path, model: Path, kill_at: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", LAUNCHER, kill_at, "fix", str(path), "--apply"]
    command += ["--model", str(model), "--dtype", "float32", "--max-new-tokens", "16"]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=dict(os.environ, HF_HUB_OFFLINE="1"),
        timeout=120,
        check=False,
    )


def test_apply_without_a_kill_writes_the_fix_and_keeps_a_backup(
    tmp_path: Path, fixing_model: Path
) -> None:
    target = tmp_path / "total.py"
    target.write_text(BUGGY)
    target.chmod(0o640)
    result = apply_fix(target, fixing_model, "none")
    assert result.returncode == 0, result.stderr
    assert target.read_text() == FIXED
    assert (target.stat().st_mode & 0o777) == 0o640  # the file keeps its permissions
    assert target.with_name("total.py.orig").read_text() == BUGGY
    assert sorted(p.name for p in tmp_path.iterdir()) == ["total.py", "total.py.orig"]


# fdopen: the temporary file is made, nothing written yet; fsync: written, not yet on disk;
# chmod: on disk, about to take the place of the file; replace: the very moment of the swap.
@pytest.mark.parametrize("kill_at", ["fdopen", "fsync", "chmod", "replace"])
def test_a_kill_during_the_write_leaves_the_old_file_whole(
    tmp_path: Path, fixing_model: Path, kill_at: str
) -> None:
    target = tmp_path / "total.py"
    target.write_text(BUGGY)
    result = apply_fix(target, fixing_model, kill_at)
    assert result.returncode == -signal.SIGKILL, (result.returncode, result.stderr)
    assert target.read_text() == BUGGY  # the old file, byte for byte
    left = sorted(p.name for p in tmp_path.iterdir() if p.name != "total.py")
    # The kill came at the write, not before: the backup is made and the temporary file too
    # (beside the file, named .total.py.*.tmp: a kill gives no chance to remove it).
    assert len(left) == 2 and left[0].startswith(".total.py.") and left[0].endswith(".tmp"), left
    assert left[1] == "total.py.orig" and (tmp_path / left[1]).read_text() == BUGGY
    print(f"\nkilled at os.{kill_at}: old file intact; left beside it: {left}")


def test_the_next_apply_removes_what_a_killed_one_left(tmp_path: Path, fixing_model: Path) -> None:
    target = tmp_path / "total.py"
    target.write_text(BUGGY)
    assert apply_fix(target, fixing_model, "replace").returncode == -signal.SIGKILL
    (stale,) = tmp_path.glob(".total.py.*.tmp")
    hour_ago = time.time() - 3600
    os.utime(stale, (hour_ago, hour_ago))
    running = tmp_path / ".total.py.abcdefgh.tmp"  # as if another write were under way now
    running.write_text("")
    result = apply_fix(target, fixing_model, "none")
    assert result.returncode == 0, result.stderr
    assert target.read_text() == FIXED
    assert not stale.exists()
    assert running.exists()  # a fresh one may be another write's: left alone
