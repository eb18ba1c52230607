"""A pulled GGUF gets its transformers copy on the transformers backend's first use, not at pull.

Real parts throughout: the pulled smollm2-135m GGUF copied into a cache of the test's own, the
real converter, the shared host and its worker, the CLI as a user runs it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from starchat_lsp.engine.factory import EngineSettings, open_engine
from starchat_lsp.models.catalogue import SMALL_MODEL
from starchat_lsp.models.store import CACHE_ENV, ModelStore

pytestmark = pytest.mark.default_model  # the pulled small model's GGUF

SAMPLE = Path(__file__).parent.parent / "examples" / "off_by_one.py"


@pytest.fixture(scope="module")
def small_gguf() -> Path:
    resolved = ModelStore().resolve(SMALL_MODEL)
    if resolved.gguf_path is None:
        pytest.fail(f"{SMALL_MODEL} is not pulled: `make pull` pulls it before the suite")
    return resolved.gguf_path


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))  # for this process and its children
    return tmp_path / "cache"


def starchat(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", COLUMNS="200")
    command = [sys.executable, "-m", "starchat_lsp", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)


def pull_a_copy(small_gguf: Path, tmp_path: Path) -> Path:
    """`models pull FILE.gguf` of the small model under the name `small`; its store folder."""
    source = tmp_path / "small.gguf"
    source.write_bytes(small_gguf.read_bytes())
    pulled = starchat("models", "pull", str(source))
    assert pulled.returncode == 0, pulled.stderr
    return ModelStore().path("small")


def listed(name: str) -> list[str]:
    """The `models list` row of `name`, split into its columns."""
    result = starchat("models", "list")
    assert result.returncode == 0, result.stderr
    [row] = [line.split() for line in result.stdout.splitlines() if line.split()[:1] == [name]]
    return row


def test_pull_fetches_the_gguf_and_transformers_converts_it_once_on_first_use(
    small_gguf: Path, cache: Path, tmp_path: Path
) -> None:
    folder = pull_a_copy(small_gguf, tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "model.gguf"]
    assert listed("small")[:6] == ["small", "yes", "98.4", "MB", "not", "converted"]

    # The first transformers use converts, telling its progress the way a load does: through the
    # shared host and its worker, as the language server and the terminal commands see it.
    said: list[str] = []
    engine = open_engine(EngineSettings(model="small", backend="transformers", dtype="float32"))
    try:
        engine.load(said.append)
    finally:
        engine.close()
    converting = [text for text in said if text.startswith("converting the GGUF")]
    assert converting[0] == "converting the GGUF to transformers, once (minutes for a large model)"
    assert converting[-1].endswith("272/272 tensors"), said
    assert said[-2:] == ["loading tokenizer", "loading weights (float32 on cpu)"]
    assert (folder / "hf" / "config.json").is_file()
    assert sorted(p.name for p in folder.iterdir()) == ["hf", "manifest.json", "model.gguf"]
    converted_at = json.loads((folder / "manifest.json").read_text())["converted_at"]

    # A later use answers from the converted copy, converting nothing again.
    answered = starchat(
        "feedback", str(SAMPLE), "--model", "small", "--backend", "transformers",
        "--no-verify", "--max-new-tokens", "8", "--json",
    )  # fmt: skip
    assert answered.returncode == 0, answered.stderr
    assert json.loads(answered.stdout)["metrics"]["tokens_out"] == 8
    assert json.loads((folder / "manifest.json").read_text())["converted_at"] == converted_at

    row = listed("small")
    assert row[1:3] == ["yes", "98.4"] and row[4] != "not", row  # a size in TRANSFORMERS
    hf_size = sum(p.stat().st_size for p in (folder / "hf").rglob("*") if p.is_file())
    assert f"{hf_size / 1e6:.1f}" == row[4], row

    removed = starchat("models", "remove", "small", "--keep-gguf")
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout.startswith("removed the transformers copy of small (")
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "model.gguf"]
    assert listed("small")[4:6] == ["not", "converted"]


def test_a_conversion_killed_midway_leaves_no_half_folder(
    small_gguf: Path, cache: Path, tmp_path: Path
) -> None:
    folder = pull_a_copy(small_gguf, tmp_path)
    partial = folder / "hf.partial"
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    command = [sys.executable, "-m", "starchat_lsp", "models", "pull", "small"]
    pulling = subprocess.Popen([*command, "--backend", "transformers"], env=env)
    try:
        # The converter writes its folder last: killed once that has begun, the folder is half.
        deadline = time.monotonic() + 240
        while not (partial / "config.json").is_file():
            assert pulling.poll() is None, "the conversion ended before it could be killed"
            assert time.monotonic() < deadline, "the conversion never began writing"
            time.sleep(0.005)
        converters = _processes_naming(partial)
        assert converters, "no converter process found"
        pulling.send_signal(signal.SIGKILL)  # no handler of ours runs: the converter cleans up
        pulling.wait(10)
        deadline = time.monotonic() + 30
        while _processes_naming(partial) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        if pulling.poll() is None:
            pulling.kill()
            pulling.wait()
    assert not _processes_naming(partial), "the converter outlived its parent"
    left = sorted(p.name for p in folder.iterdir())
    assert left == ["convert.log", "manifest.json", "model.gguf"]
    assert json.loads((folder / "manifest.json").read_text())["converter"] is None
    assert listed("small")[4:6] == ["not", "converted"]
    # Its log is the one leftover; `remove --keep-gguf` clears it with the rest.
    assert starchat("models", "remove", "small", "--keep-gguf").returncode == 0
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "model.gguf"]


def _processes_naming(path: Path) -> list[int]:
    """The processes whose command line holds `path` (the converter names its output folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                arguments = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if str(path).encode() in arguments:
                found.append(int(entry.name))
    return found
