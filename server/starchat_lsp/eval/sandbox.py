"""Run a model's Python code and a prompt's tests in a separate, limited process.

The child gets a fresh temporary folder, a wall-clock and CPU time limit, a memory limit, a cap on
file sizes, no network (its own empty network namespace when `unshare -rn` works, and always an
audit hook that refuses sockets and new processes), no files outside its folder but Python's own
and the system's shared data (the same hook: reading ~/.ssh or the workspace is refused, writing
anywhere else too), and its own process group so that everything it starts dies with it. Model
output never runs in the harness's own process.
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

STATUSES = ("pass", "fail", "error", "timeout")

# Runs in the child: set its own limits (no preexec_fn: forking a threaded harness and running
# Python before exec can deadlock), refuse network and process creation, load the code, test.
# Exit 0: pass; 1: a test failed (an assert, or the code raised under test); 2: the code could not
# be loaded (syntax error, it raised at import, no entry point, the memory limit).
_CHILD = r"""
import json, os, resource, sys

with open("limits.json", encoding="utf-8") as f:
    for name, value in json.load(f).items():
        resource.setrlimit(getattr(resource, name), (value, value))

with open("marker.txt", encoding="utf-8") as f:
    _MARKER = f.read().strip()
os.remove("marker.txt")  # not a file the code under test can simply read to fake a pass

_REFUSED = ("socket.", "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
            "os.fork", "os.forkpty", "pty.spawn", "ctypes.dlopen")

# Files: write only in the temporary folder; read there, in Python's own installation (imports),
# and in the system's shared data (time zones). Nothing else: not ~/.ssh, not the workspace.
_WORK = os.path.realpath(os.getcwd())
_SYSTEM = ("/usr/lib", "/usr/share", "/proc", "/dev/null", "/dev/urandom", "/dev/random",
           "/etc/localtime")
_READABLE = tuple({os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix,
                   *[p for p in sys.path if p])} | set(_SYSTEM))
_checking = []

def _inside(path, roots):
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)

def _allowed(path, writing):
    if isinstance(path, int) or _checking:
        return True
    _checking.append(1)
    try:
        path = os.fsdecode(path)
        real = os.path.realpath(os.path.join(_WORK, path))
    finally:
        _checking.pop()
    if _inside(real, (_WORK, "/dev/null")):
        return True
    return not writing and _inside(real, _READABLE)

def _writing(mode, flags):
    if isinstance(mode, str):
        return any(c in mode for c in "wax+")
    return bool((flags or 0) & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC))

_PATH_EVENTS = ("os.listdir", "os.scandir", "os.remove", "os.rename", "os.rmdir", "os.mkdir",
                "os.chmod", "os.chown", "os.symlink", "os.link", "os.truncate", "shutil.rmtree")

def _audit(event, args):
    if event == "socket.__new__" and args[1] == 1:
        return  # AF_UNIX: asyncio's event loop wakes itself through a local socket pair
    if event.startswith(_REFUSED):
        raise PermissionError(f"blocked in the eval sandbox: {event}")
    if event == "open" and args and args[0] is not None:
        writing = _writing(args[1] if len(args) > 1 else None, args[2] if len(args) > 2 else 0)
        if not _allowed(args[0], writing):
            raise PermissionError(f"blocked in the eval sandbox: open {args[0]!r}")
    elif event in _PATH_EVENTS and args and args[0] is not None:
        if not _allowed(args[0], event not in ("os.listdir", "os.scandir")):
            raise PermissionError(f"blocked in the eval sandbox: {event} {args[0]!r}")

sys.addaudithook(_audit)

def _finish(code, detail):
    sys.stdout.flush()
    sys.stderr.write("\n" + _MARKER + json.dumps({"detail": detail[-2000:]}) + "\n")
    sys.stderr.flush()
    raise SystemExit(code)

with open("solution.py", encoding="utf-8") as f:
    solution = f.read()
with open("tests.py", encoding="utf-8") as f:
    tests = f.read()
with open("entry_point.txt", encoding="utf-8") as f:
    entry_point = f.read().strip()

namespace = {"__name__": "solution"}
try:
    exec(compile(solution, "solution.py", "exec"), namespace)
except MemoryError:
    _finish(2, "MemoryError: the code went over the memory limit")
except BaseException as error:
    _finish(2, f"the code does not load: {type(error).__name__}: {error}")
if entry_point and entry_point not in namespace:
    _finish(2, f"the code does not define {entry_point}")
try:
    exec(compile(tests, "tests.py", "exec"), namespace)
except AssertionError as error:
    import traceback
    line = traceback.extract_tb(error.__traceback__)[-1]
    text = tests.splitlines()[line.lineno - 1].strip() if line.filename == "tests.py" else ""
    _finish(1, f"failed: {text or error}")
except MemoryError:
    _finish(2, "MemoryError: the code went over the memory limit")
except BaseException as error:
    _finish(1, f"raised under test: {type(error).__name__}: {error}")
_finish(0, "all tests passed")
"""


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
    with tempfile.TemporaryDirectory(prefix="starchat-eval-") as folder:
        work = Path(folder)
        (work / "solution.py").write_text(code, encoding="utf-8")
        (work / "tests.py").write_text(tests, encoding="utf-8")
        (work / "entry_point.txt").write_text(entry_point or "", encoding="utf-8")
        (work / "child.py").write_text(_CHILD, encoding="utf-8")
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
