"""Model output is text: nothing in the server or the CLI can run it. Checked on the source: no
exec/eval/compile of strings, no shell, no pickle, and processes are started only by the model
pulling code (pip, the hub download, the GGUF converter) and the model's own worker and shared
host, with fixed commands. Only the sandbox runs model-written code (candidate fixes and the eval
harness's answers), in a limited child process (tests/test_sandbox.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import starchat_lsp

PACKAGE = Path(starchat_lsp.__file__).parent
SANDBOXED = ("sandbox/",)  # runs model-written code on purpose, in a limited child
STARTS_PROCESSES = {
    "models/hub.py",
    "models/fetch.py",
    "models/convert.py",
    "engine/worker/process.py",  # the model worker: our own module, settings as JSON
    "engine/worker/shared.py",  # the shared model host: our own module, settings as JSON
}
# Reads code without running it: ruff's binary, the code on its stdin.
ANALYZERS = {"verify/analyzer.py"}
RUNS_TEXT = {"exec", "eval", "compile", "__import__"}
UNSAFE_MODULES = {"pickle", "marshal", "shelve", "dill", "cloudpickle"}
PROCESS_CALLS = {"system", "popen", "startfile"} | {
    f"exec{s}" for s in ("l", "le", "lp", "v", "ve", "vp")
}


def modules() -> list[tuple[str, ast.Module]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = path.relative_to(PACKAGE).as_posix()
        if not name.startswith(SANDBOXED):
            found.append((name, ast.parse(path.read_text(), filename=name)))
    return found


def test_no_module_outside_the_sandbox_can_run_text() -> None:
    problems = []
    for name, tree in modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                func = node.func
                if isinstance(func, ast.Name) and func.id in RUNS_TEXT:
                    problems.append(f"{name}:{node.lineno} calls {func.id}()")
                if (
                    isinstance(func, ast.Attribute)
                    and isinstance(func.value, ast.Name)
                    and func.value.id == "os"
                    and (func.attr in PROCESS_CALLS or func.attr.startswith("spawn"))
                ):
                    problems.append(f"{name}:{node.lineno} calls os.{func.attr}()")
                for keyword in node.keywords:
                    if keyword.arg == "shell" and not (
                        isinstance(keyword.value, ast.Constant) and keyword.value.value is False
                    ):
                        problems.append(f"{name}:{node.lineno} passes shell=")
            imported = []
            if isinstance(node, ast.Import):
                imported = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported = [node.module.split(".")[0]]
            for module in imported:
                if module in UNSAFE_MODULES:
                    problems.append(f"{name}:{node.lineno} imports {module}")
                if module == "subprocess" and name not in STARTS_PROCESSES | ANALYZERS:
                    problems.append(f"{name}:{node.lineno} imports subprocess")
    assert not problems, problems


def test_the_process_starters_run_python_modules_never_model_text() -> None:
    """Each subprocess call starts sys.executable (pip, the hub download, the converter)."""
    for name, tree in modules():
        if name not in STARTS_PROCESSES:
            continue
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "subprocess"
            ):
                command = node.args[0] if node.args else None
                assert command is not None, f"{name}:{node.lineno}"
                source = ast.unparse(command)
                if isinstance(command, ast.Name):  # a variable: find what it was set to
                    assigned = [
                        ast.unparse(n.value)
                        for n in ast.walk(tree)
                        if isinstance(n, ast.Assign)
                        and any(isinstance(t, ast.Name) and t.id == command.id for t in n.targets)
                    ]
                    source = " ".join(assigned)
                assert "sys.executable" in source, f"{name}:{node.lineno}: {source}"


def test_the_analyzer_starts_only_ruff_and_hands_it_the_code_on_stdin() -> None:
    for name, tree in modules():
        if name not in ANALYZERS:
            continue
        calls = [
            node
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "subprocess"
        ]
        assert calls, name
        for call in calls:
            assert call.func.attr == "run"  # type: ignore[attr-defined]
            assert "shell" not in {k.arg for k in call.keywords}, f"{name}:{call.lineno}"
            (command,) = [
                n.value
                for n in ast.walk(tree)
                if isinstance(n, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "command" for t in n.targets)
            ]
            assert isinstance(command, ast.List) and isinstance(command.elts[0], ast.Name)
            assert command.elts[0].id == "ruff" and "check" in ast.unparse(command)
            assert ast.unparse(command.elts[-1]) == "'-'"  # the code comes on stdin
