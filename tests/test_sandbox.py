"""The sandbox runs model code in a limited child process: it ends loops, hogs and network use,
and keeps the code to its own folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from starchat_lsp.sandbox import Limits, network_namespace_works, run_python_tests

TESTS = "assert double(2) == 4\nassert double(-1) == -2"
QUICK = Limits(time_s=3, memory_mb=256)


def test_correct_code_passes() -> None:
    result = run_python_tests("def double(x):\n    return 2 * x\n", TESTS, "double", QUICK)
    assert result.status == "pass"


def test_wrong_code_fails_and_names_the_assert() -> None:
    result = run_python_tests("def double(x):\n    return x + 2\n", TESTS, "double", QUICK)
    assert result.status == "fail"
    assert result.detail == "failed: assert double(-1) == -2 (got 1)"  # what it gave


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("def double(x)\n    return 2 * x\n", "SyntaxError"),
        ("def twice(x):\n    return 2 * x\n", "does not define double"),
        ("raise RuntimeError('at import')\n", "RuntimeError"),
    ],
)
def test_code_that_does_not_load_is_an_error(code: str, expected: str) -> None:
    result = run_python_tests(code, TESTS, "double", QUICK)
    assert result.status == "error"
    assert expected in result.detail


def test_an_infinite_loop_is_killed_at_the_time_limit() -> None:
    code = "def double(x):\n    while True:\n        pass\n"
    result = run_python_tests(code, TESTS, "double", Limits(time_s=1.5))
    assert result.status == "timeout"  # the limit ended it (how soon: not a test's to bound)


def test_a_sleeping_child_process_group_is_killed_too() -> None:
    code = "import time\ndef double(x):\n    time.sleep(60)\n"
    result = run_python_tests(code, TESTS, "double", Limits(time_s=1))
    assert result.status == "timeout"


def test_a_memory_hog_hits_the_memory_limit() -> None:
    code = (
        "def double(x):\n"
        "    hog = []\n"
        "    while True:\n"
        "        hog.append(bytearray(50 * 1024 * 1024))\n"
    )
    result = run_python_tests(code, TESTS, "double", Limits(time_s=20, memory_mb=256))
    # The memory limit ended it, not the 20 s time limit (that would be "timeout").
    assert result.status == "error"
    assert "memory" in result.detail.lower()


def test_network_is_refused() -> None:
    code = (
        "import socket\n"
        "def double(x):\n"
        "    socket.create_connection(('127.0.0.1', 9), timeout=1)\n"
        "    return 2 * x\n"
    )
    result = run_python_tests(code, TESTS, "double", QUICK)
    assert result.status == "fail"
    assert "blocked in the sandbox" in result.detail


def test_a_raw_socket_is_refused_before_connecting() -> None:
    code = "import socket\nsocket.socket(socket.AF_INET, socket.SOCK_STREAM)\n"
    result = run_python_tests(code, TESTS, "double", QUICK)
    assert result.status == "error"
    assert "socket" in result.detail


def test_asyncio_still_works() -> None:
    code = (
        "import asyncio\n"
        "async def twice(x):\n"
        "    await asyncio.sleep(0)\n"
        "    return 2 * x\n"
        "def double(x):\n"
        "    return asyncio.run(twice(x))\n"
    )
    assert run_python_tests(code, TESTS, "double", QUICK).status == "pass"


def test_starting_processes_is_refused() -> None:
    code = "import subprocess\ndef double(x):\n    subprocess.run(['true'])\n    return 2 * x\n"
    result = run_python_tests(code, TESTS, "double", QUICK)
    assert result.status == "fail"
    assert "subprocess.Popen" in result.detail


def test_exiting_early_is_not_a_pass() -> None:
    code = "import os\nos._exit(0)\n"
    assert run_python_tests(code, TESTS, "double", QUICK).status == "error"


def test_the_code_runs_in_a_fresh_temporary_folder() -> None:
    code = (
        "import os\n"
        "def double(x):\n"
        "    assert os.path.basename(os.getcwd()).startswith('starchat-sandbox-')\n"
        "    assert os.getcwd() != " + repr(os.getcwd()) + "\n"
        "    open('scratch.txt', 'w').write('ok')\n"
        "    return 2 * x\n"
    )
    assert run_python_tests(code, TESTS, "double", QUICK).status == "pass"


@pytest.mark.skipif(not network_namespace_works(), reason="unshare -rn is not allowed here")
def test_the_child_has_no_network_interfaces_but_loopback() -> None:
    # Past the audit hook (ctypes-free check through /proc): the namespace itself is empty.
    code = (
        "def double(x):\n"
        "    names = [l.split(':')[0].strip() for l in open('/proc/net/dev').readlines()[2:]]\n"
        "    assert names == ['lo'], names\n"
        "    return 2 * x\n"
    )
    assert run_python_tests(code, TESTS, "double", QUICK).status == "pass"


def test_reading_files_outside_its_folder_is_refused(tmp_path: Path) -> None:
    # A stand-in for ~/.ssh: the child's HOME is its own folder, so the path is given whole.
    secret = tmp_path / ".ssh" / "id_ed25519"
    secret.parent.mkdir()
    secret.write_text("-----BEGIN OPENSSH PRIVATE KEY-----")
    for attempt in (
        f"open({str(secret)!r}).read()",
        f"__import__('os').listdir({str(secret.parent)!r})",
        f"__import__('pathlib').Path({str(secret)!r}).read_bytes()",
        f"__import__('io').open({str(secret)!r}, 'rb').read()",
    ):
        code = f"def double(x):\n    return 2 * x\nleak = {attempt}\n"
        result = run_python_tests(code, TESTS, "double", QUICK)
        assert result.status == "error", (attempt, result)
        assert "blocked in the sandbox" in result.detail, result.detail
        assert "PRIVATE KEY" not in result.detail


def test_writing_outside_its_folder_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "planted.py"
    code = f"def double(x):\n    return 2 * x\nopen({str(target)!r}, 'w').write('x')\n"
    result = run_python_tests(code, TESTS, "double", QUICK)
    assert result.status == "error" and "blocked in the sandbox" in result.detail
    assert not target.exists()


def test_filling_the_disk_stops_at_the_file_size_limit() -> None:
    code = (
        "def double(x):\n"
        "    with open('fill.bin', 'wb') as f:\n"
        "        for _ in range(1024):\n"
        "            f.write(b'x' * 1024 * 1024)\n"  # 1 GB, were it allowed
        "    return 2 * x\n"
    )
    result = run_python_tests(
        code, TESTS, "double", Limits(time_s=10, memory_mb=256, output_kb=512)
    )
    assert result.status == "fail"
    assert "File too large" in result.detail


def test_the_standard_library_still_imports() -> None:
    code = (
        "import asyncio, collections, dataclasses, datetime, decimal, json, re, zoneinfo\n"
        "import unicodedata, tempfile\n"
        "def double(x):\n"
        "    with tempfile.NamedTemporaryFile('w') as f:\n"  # TMPDIR is its own folder
        "        f.write(json.dumps([x]))\n"
        "    return 2 * x\n"
    )
    assert run_python_tests(code, TESTS, "double", QUICK).status == "pass"
