"""Which parts of the package may import which, checked on the source: every import counts, also
one inside a function or under TYPE_CHECKING, relative ones resolved.

- The product never depends on the evaluation harness (`eval/`): only the harness and its CLI
  subcommand import it. The sandbox, which runs every user's candidate fixes, is `sandbox/`.
- The model store (`models/`) never depends on the runtime (`engine/`): the errors both raise are
  in `starchat_lsp/errors.py`.
- The logic (engine/, context/, verify/, models/, sandbox/, tasks.py, ...) never imports the LSP
  glue (server.py, features/, protocol.py, model_host.py).
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

import starchat_lsp

PACKAGE = Path(starchat_lsp.__file__).parent

GLUE = (
    "starchat_lsp.server",
    "starchat_lsp.features",
    "starchat_lsp.protocol",
    "starchat_lsp.model_host",
)
EVAL = ("starchat_lsp.eval",)
ENGINE = ("starchat_lsp.engine",)
LOGIC = (
    "engine/",
    "context/",
    "verify/",
    "models/",
    "sandbox/",
    "tasks.py",
    "edits.py",
    "completion.py",
    "errors.py",
)
EVAL_HARNESS = ("eval/", "cli/eval_command.py")


def _under(*prefixes: str) -> Callable[[str], bool]:
    return lambda path: path.startswith(prefixes)


def _outside(*prefixes: str) -> Callable[[str], bool]:
    return lambda path: not path.startswith(prefixes)


# (who: a path relative to the package, what it must never import, why)
RULES: list[tuple[Callable[[str], bool], tuple[str, ...], str]] = [
    (_outside(*EVAL_HARNESS), EVAL, "the product imports the eval harness"),
    (_under("models/"), ENGINE, "the model store imports the runtime"),
    (_under(*LOGIC), GLUE, "the logic imports the LSP glue"),
]


def module_name(path: str) -> str:
    """`verify/checks.py` -> `starchat_lsp.verify.checks`; a package's __init__ is the package."""
    parts = ["starchat_lsp", *path.removesuffix(".py").split("/")]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: str, source: str) -> list[tuple[int, str]]:
    """Every module (or module member) the source imports, with its line, as an absolute name."""
    name = module_name(path)
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source, filename=path)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*up, base] if base else up)
            # `from starchat_lsp import eval` imports starchat_lsp.eval: name each member too
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def _is_in(target: str, prefixes: tuple[str, ...]) -> bool:
    return any(target == prefix or target.startswith(prefix + ".") for prefix in prefixes)


def violations(path: str, source: str) -> list[str]:
    problems = []
    for line, target in imported(path, source):
        for applies, forbidden, why in RULES:
            if applies(path) and _is_in(target, forbidden):
                problems.append(f"{path}:{line} imports {target}: {why}")
    return problems


def test_the_package_keeps_its_layers() -> None:
    problems = []
    for file in sorted(PACKAGE.rglob("*.py")):
        path = file.relative_to(PACKAGE).as_posix()
        problems += violations(path, file.read_text(encoding="utf-8"))
    assert not problems, "\n".join(problems)


def test_each_rule_catches_its_import() -> None:
    """The check itself: each kind of import a rule forbids is found."""
    cases = {
        "verify/pipeline.py": "from starchat_lsp.eval import sandbox",
        "tasks.py": "from starchat_lsp import eval",
        "models/store.py": "def f():\n    from starchat_lsp.engine.errors import ModelLoadError",
        "models/errors.py": "import starchat_lsp.engine",
        "engine/worker/remote.py": "from ...features import errors",
        "context/__init__.py": "from .. import model_host",
        "sandbox/runner.py": "from starchat_lsp.server import StarchatServer",
        "sandbox/__init__.py": "from ..eval.runner import Settings",
    }
    for path, source in cases.items():
        assert violations(path, source), (path, source)
    allowed = {
        "eval/runner.py": "from starchat_lsp import sandbox",
        "cli/eval_command.py": "from starchat_lsp.eval import judge",
        "engine/factory.py": "from starchat_lsp.models.store import ModelStore",
        "verify/checks.py": "from starchat_lsp import sandbox",
        "cli/code_commands.py": "from starchat_lsp.engine.errors import ModelCrashedError",
        "models/store.py": "from starchat_lsp.errors import ModelLoadError",
    }
    for path, source in allowed.items():
        assert not violations(path, source), (path, source)
