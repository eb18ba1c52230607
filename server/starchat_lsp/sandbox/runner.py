"""Start the sandboxed child on a model's code and a prompt's tests, wait, and classify its end.

The child's folder holds the code, the tests, its limits and a one-time marker; the child runs in
its own process group (and its own empty network namespace when `unshare -rn` works), killed as a
whole at the time limit or when it ends. What the child does to itself: `child_program`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from starchat_lsp.sandbox.child_program import CHILD_PROGRAM

STATUSES = ("pass", "fail", "error", "timeout")


@dataclass(frozen=True, kw_only=True)
class Limits:
    time_s: float = 10.0  # wall clock; the CPU limit is the same
    memory_mb: int = 512  # address space
    output_kb: int = 1024  # stdout and stderr, each (files larger than this can't be written)


@dataclass(frozen=True, kw_only=True)
class CheckResult:
    status: str  # one of STATUSES
    detail: str
    duration_s: float

    def as_dict(self) -> dict[str, object]:
        return {"status": self.status, "detail": self.detail, "duration_s": self.duration_s}


@functools.cache
def network_namespace_works() -> bool:
    """Whether `unshare -rn` can give the child an empty network namespace here."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    try:
        done = subprocess.run(
            [unshare, "-rn", "true"], capture_output=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def _rlimits(limits: Limits) -> dict[str, int]:
    """The resource limits the child sets on itself first (anything it starts inherits them)."""
    return {
        "RLIMIT_AS": limits.memory_mb * 1024 * 1024,
        "RLIMIT_CPU": max(1, int(limits.time_s + 1)),
        "RLIMIT_FSIZE": limits.output_kb * 1024,
        "RLIMIT_CORE": 0,
    }


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _tail(path: Path, size: int = 4000) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    return data[-size:].decode("utf-8", errors="replace")


def run_python_tests(
    code: str, tests: str, entry_point: str | None = None, limits: Limits | None = None
) -> CheckResult:
    """Run `code` then `tests` (asserts) in a sandboxed child Python; pass/fail/error/timeout."""
    limits = limits or Limits()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="starchat-sandbox-") as folder:
        work = Path(folder)
        (work / "solution.py").write_text(code, encoding="utf-8")
        (work / "tests.py").write_text(tests, encoding="utf-8")
        (work / "entry_point.txt").write_text(entry_point or "", encoding="utf-8")
        (work / "child.py").write_text(CHILD_PROGRAM, encoding="utf-8")
        (work / "limits.json").write_text(json.dumps(_rlimits(limits)), encoding="utf-8")
        marker = f"@@RESULT-{secrets.token_hex(8)}@@"
        (work / "marker.txt").write_text(marker, encoding="utf-8")
        command = [sys.executable, "-I", "-B", "child.py"]
        if network_namespace_works():
            command = [str(shutil.which("unshare")), "-rn", *command]
        env = {"PATH": "/usr/bin:/bin", "HOME": folder, "TMPDIR": folder, "LANG": "C.UTF-8"}
        with (work / "stdout.txt").open("wb") as out, (work / "stderr.txt").open("wb") as err:
            process = subprocess.Popen(
                command,
                cwd=work,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,  # its own process group: killed as a whole
            )
            try:
                returncode = process.wait(timeout=limits.time_s)
            except subprocess.TimeoutExpired:
                _kill_group(process)
                return CheckResult(
                    status="timeout",
                    detail=f"killed after {limits.time_s:g} s",
                    duration_s=round(time.monotonic() - started, 3),
                )
            finally:
                if process.poll() is None:
                    _kill_group(process)
            # Whatever the code started in the background goes with the group.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        duration = round(time.monotonic() - started, 3)
        return _classify(returncode, _tail(work / "stderr.txt"), marker, duration)


def _classify(returncode: int, stderr: str, marker: str, duration: float) -> CheckResult:
    found = stderr.rfind(marker)
    if found >= 0 and returncode in (0, 1, 2):
        try:
            detail = str(json.loads(stderr[found + len(marker) :].strip())["detail"])
        except (ValueError, KeyError):
            detail = ""
        status = {0: "pass", 1: "fail", 2: "error"}[returncode]
        return CheckResult(status=status, detail=detail, duration_s=duration)
    if returncode in (-signal.SIGXCPU, -signal.SIGKILL) and "MemoryError" not in stderr:
        return CheckResult(
            status="timeout", detail="killed at the CPU time limit", duration_s=duration
        )
    last = stderr.strip().splitlines()[-1:] or [f"exit status {returncode}"]
    return CheckResult(
        status="error", detail=f"the sandbox stopped it: {last[0]}", duration_s=duration
    )
