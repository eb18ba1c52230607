"""The program the sandboxed child runs (written to its folder as child.py, run with `python -I`).

It sets its own limits first (no preexec_fn: forking a threaded parent and running Python before
exec can deadlock), refuses network, process creation and files outside its folder with an audit
hook, loads the code, runs the tests, and reports on stderr after a random marker (its file is
removed before the code loads).
Exit 0: pass; 1: a test failed (an assert, or the code raised under test); 2: the code could not
be loaded (syntax error, it raised at import, no entry point, the memory limit).
"""

CHILD_PROGRAM = r"""
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
        raise PermissionError(f"blocked in the sandbox: {event}")
    if event == "open" and args and args[0] is not None:
        writing = _writing(args[1] if len(args) > 1 else None, args[2] if len(args) > 2 else 0)
        if not _allowed(args[0], writing):
            raise PermissionError(f"blocked in the sandbox: open {args[0]!r}")
    elif event in _PATH_EVENTS and args and args[0] is not None:
        if not _allowed(args[0], event not in ("os.listdir", "os.scandir")):
            raise PermissionError(f"blocked in the sandbox: {event} {args[0]!r}")

sys.addaudithook(_audit)

def _finish(code, detail):
    sys.stdout.flush()
    sys.stderr.write("\n" + _MARKER + json.dumps({"detail": detail[-2000:]}) + "\n")
    sys.stderr.flush()
    raise SystemExit(code)

def _got(text):
    # " (got X)" for a failed `assert CALL == VALUE`: what the left side gave (it ran once)
    import ast
    try:
        node = ast.parse(text).body[0]
        if isinstance(node, ast.Assert) and isinstance(node.test, ast.Compare):
            left = compile(ast.Expression(node.test.left), "tests.py", "eval")
            return f" (got {eval(left, namespace)!r:.200})"
    except BaseException:  # the check already failed: whatever happens now only loses the value
        pass
    return ""

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
    _finish(1, f"failed: {text or error}{_got(text)}")
except MemoryError:
    _finish(2, "MemoryError: the code went over the memory limit")
except BaseException as error:
    _finish(1, f"raised under test: {type(error).__name__}: {error}")
_finish(0, "all tests passed")
"""
