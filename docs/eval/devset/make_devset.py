"""The development set: one injected bug in real functions nobody here wrote (issue 15).

Each case is a top-level function of the Python standard library (or of more_itertools, MIT,
as setuptools vendors it) that can run on its own: its source with the module-level imports,
constants, small exception classes and helper functions it needs, and nothing that touches
files, the network, processes, the clock or randomness. Its checks are the calls of its
doctests plus calls on seeded inputs chosen by the parameters' names and defaults, each with
the result the ORIGINAL function gives (differential testing: the reference is right by
definition). One mutation operator, chosen per case, changes one place of the function; a
mutant is kept when it fails at least one check, hangs on none, and the project's sandbox
agrees (the reference passes every check, the buggy code does not).

The user's note is made from the first failing check, the way people write bug reports: half
in prose only (what goes wrong and roughly when, no code), a quarter with a wrong-output
example, a quarter with the error message. Nothing here looks at a model's answer.

Usage (from the repository root; about two minutes on two cores):
    .venv/bin/python docs/eval/devset/make_devset.py --seed 15 --count 240

Writes docs/eval/devset/prompts.jsonl and docs/eval/devset/summary.md. The same seed and count
on the same Python version give the same bytes.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import copy
import difflib
import doctest
import itertools
import json
import random
import re
import subprocess
import sys
import sysconfig
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

# --------------------------------------------------------------------------------------------
# Sources

STDLIB = Path(sysconfig.get_paths()["stdlib"])
PURELIB = Path(sysconfig.get_paths()["purelib"])
MORE_ITERTOOLS = PURELIB / "setuptools" / "_vendor" / "more_itertools"

# Modules read for candidates (a module's own imports don't matter: only what a function uses
# is carried over, and that is checked name by name).
STDLIB_MODULES = (
    "_pydecimal", "base64", "bisect", "calendar", "cgi", "colorsys", "datetime", "difflib",
    "email/_parseaddr", "email/message", "email/quoprimime", "email/utils", "encodings/idna",
    "encodings/punycode", "fnmatch", "fractions", "ftplib", "functools", "genericpath", "getopt",
    "glob", "heapq", "html/__init__", "http/cookiejar", "http/cookies", "http/server", "imaplib",
    "inspect", "ipaddress", "json/encoder", "ntpath", "operator", "platform", "posixpath",
    "pprint", "pydoc", "quopri", "reprlib", "shlex", "smtplib", "statistics", "string",
    "tarfile", "textwrap", "tokenize", "tomllib/_parser", "tomllib/_re", "unittest/util",
    "urllib/parse", "urllib/request", "wsgiref/util", "xml/sax/saxutils",
)  # fmt: skip

LOADABLE = frozenset(sys.stdlib_module_names)
# Modules whose use would make a function touch the machine, the clock or chance.
DENIED_MODULES = frozenset({
    "asyncio", "atexit", "ctypes", "faulthandler", "gc", "getpass", "glob", "grp", "importlib",
    "io", "locale", "logging", "mmap", "multiprocessing", "pathlib", "pkgutil", "platform", "pwd",
    "random", "resource", "sched", "secrets", "select", "selectors", "shutil", "signal", "site",
    "socket", "ssl", "subprocess", "sysconfig", "tempfile", "threading", "time", "tracemalloc",
    "urllib.request", "uuid", "warnings", "webbrowser", "inspect", "linecache", "traceback",
})  # fmt: skip
# Attributes allowed where a module is allowed only in part.
PARTLY_ALLOWED = {
    "os": {"fspath", "fsencode", "fsdecode", "sep", "altsep", "extsep", "pathsep", "curdir",
           "pardir", "linesep", "PathLike", "path", "name"},
    "sys": {"maxsize", "maxunicode", "byteorder", "float_info", "hash_info", "int_info"},
}  # fmt: skip
DENIED_ATTRIBUTES = frozenset({
    "now", "today", "utcnow", "fromtimestamp", "utcfromtimestamp", "time", "sleep", "urandom",
    "getenv", "environ", "getcwd", "getcwdb", "open", "system", "popen", "stat", "lstat",
    "listdir", "scandir", "walk", "exists", "isdir", "isfile", "islink", "realpath", "abspath",
    "expanduser", "expandvars", "getmtime", "getsize", "ismount", "samefile", "localtime",
    "gmtime", "mktime", "strftime", "ctime",
})  # fmt: skip
DENIED_BUILTINS = frozenset({
    "open", "input", "print", "exec", "eval", "compile", "__import__", "globals", "locals", "vars",
    "breakpoint", "exit", "quit", "help", "id", "hash", "memoryview", "__build_class__",
})  # fmt: skip
BUILTIN_NAMES = frozenset(dir(builtins))

MAX_HELPERS = 4
MAX_CODE_LINES = 80
MIN_FUNCTION_LINES = 3
MAX_CHECKS = 10
MAX_SHOWN = 110  # a call or value longer than this is not put in a note


@dataclass(frozen=True)
class Source:
    label: str  # "textwrap", "more_itertools.more"
    path: Path
    origin: str  # where it comes from and its licence, for the summary


def sources() -> list[Source]:
    version = ".".join(map(str, sys.version_info[:3]))
    found = [
        Source(
            name.removesuffix("/__init__").replace("/", "."),
            STDLIB / f"{name}.py",
            f"Python {version} standard library (PSF licence)",
        )
        for name in STDLIB_MODULES
    ]
    dist = sorted(MORE_ITERTOOLS.parent.glob("more_itertools-*.dist-info"))
    more = dist[-1].name.removesuffix(".dist-info").split("-")[-1] if dist else "?"
    for name in ("more", "recipes"):
        found.append(
            Source(
                f"more_itertools.{name}",
                MORE_ITERTOOLS / f"{name}.py",
                f"more_itertools {more} (MIT licence), vendored by setuptools",
            )
        )
    return [s for s in found if s.path.is_file()]


# --------------------------------------------------------------------------------------------
# Extraction: a function and what it needs from its module


def _names(node: ast.AST, *, skip_self: bool = True) -> tuple[list[str], set[str], bool]:
    """The names `node` reads (in order), the names it binds, and whether it uses global."""
    loaded: list[str] = []
    bound: set[str] = set()
    scoped = False
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            (loaded.append if isinstance(sub.ctx, ast.Load) else bound.add)(sub.id)
        elif isinstance(sub, ast.arg):
            bound.add(sub.arg)
        elif isinstance(sub, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if sub is not node or not skip_self:
                bound.add(sub.name)
        elif isinstance(sub, ast.Import | ast.ImportFrom):
            bound.update((a.asname or a.name).split(".")[0] for a in sub.names)
        elif isinstance(sub, ast.ExceptHandler | ast.MatchAs | ast.MatchStar) and sub.name:
            bound.add(sub.name)
        elif isinstance(sub, ast.Global | ast.Nonlocal):
            scoped = True
    return loaded, bound, scoped


def free_names(node: ast.AST) -> list[str]:
    loaded, bound, _ = _names(node)
    return list(dict.fromkeys(n for n in loaded if n not in bound))


@dataclass
class Module:
    source: Source
    tree: ast.Module
    imports: dict[str, tuple[ast.stmt, str]] = field(default_factory=dict)  # name -> (stmt, mod)
    assigns: dict[str, ast.stmt] = field(default_factory=dict)
    functions: dict[str, ast.FunctionDef] = field(default_factory=dict)
    classes: dict[str, ast.ClassDef] = field(default_factory=dict)
    unsure: set[str] = field(default_factory=set)  # bound outside a plain statement
    changed: set[str] = field(default_factory=set)  # maybe changed in place after its definition
    order: dict[int, int] = field(default_factory=dict)  # id(stmt) -> position in the module


def _is_main_guard(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.If) and "__name__" in ast.unparse(stmt.test)


def read_module(source: Source) -> Module:
    tree = ast.parse(source.path.read_text(encoding="utf-8"))
    module = Module(source, tree)
    for position, stmt in enumerate(tree.body):
        module.order[id(stmt)] = position
        if isinstance(stmt, ast.Import):
            for alias in stmt.names:
                single = ast.Import(names=[alias])
                bound = alias.asname or alias.name.split(".")[0]
                target = alias.name if alias.asname else alias.name.split(".")[0]
                module.imports[bound] = (single, target)
                module.order[id(single)] = position
        elif isinstance(stmt, ast.ImportFrom):
            origin = stmt.module or ""
            if stmt.level:  # relative: the sibling module, which is not carried
                origin = "." * stmt.level + origin
            for alias in stmt.names:
                if alias.name == "*":
                    continue
                single = ast.ImportFrom(module=stmt.module, names=[alias], level=stmt.level)
                module.imports[alias.asname or alias.name] = (single, origin)
                module.order[id(single)] = position
        elif isinstance(stmt, ast.FunctionDef):
            module.functions[stmt.name] = stmt
        elif isinstance(stmt, ast.ClassDef):
            module.classes[stmt.name] = stmt
        elif (
            isinstance(stmt, ast.Assign)
            and len(stmt.targets) == 1
            and isinstance(stmt.targets[0], ast.Name)
        ) or (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
            target = stmt.targets[0] if isinstance(stmt, ast.Assign) else stmt.target
            assert isinstance(target, ast.Name)
            if target.id in module.assigns:
                module.unsure.add(target.id)
            module.assigns[target.id] = stmt
        elif not _is_main_guard(stmt) and not isinstance(stmt, ast.AsyncFunctionDef):
            # if/try/for/with/augmented assignments and calls at module level: what they bind
            # or change is conditional or changed after its definition; not carried. (What
            # they delete is not: datetime deletes its Python helpers when its C module loads.)
            bound, changed = _changed(stmt)
            module.unsure.update(bound)
            module.changed.update(changed)
    return module


def _changed(stmt: ast.stmt) -> tuple[set[str], set[str]]:
    """The names a module-level statement binds, and those it may change in place
    (`x[k] = v`, `x.append(v)`; for an imported module that is only a call)."""
    bound, changed = set(), set()
    for node in ast.walk(stmt):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.Attribute | ast.Subscript) and not isinstance(node.ctx, ast.Load):
            if isinstance(node.value, ast.Name):
                changed.add(node.value.id)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
        ):
            changed.add(node.func.value.id)
    return bound, changed


def _small_exception(node: ast.ClassDef) -> bool:
    body = [s for s in node.body if not _docstring_stmt(s)]
    bases_ok = all(isinstance(b, ast.Name) for b in node.bases) and not node.keywords
    return bases_ok and not node.decorator_list and all(isinstance(s, ast.Pass) for s in body)


def _docstring_stmt(stmt: ast.stmt) -> bool:
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Constant)
        and isinstance(stmt.value.value, str)
    )


def _module_allowed(name: str) -> bool:
    top = name.split(".")[0]
    return (
        not name.startswith(".")
        and top in LOADABLE
        and name not in DENIED_MODULES
        and top not in DENIED_MODULES
    )


def _attribute_problem(code: list[ast.stmt], modules: dict[str, str]) -> str | None:
    """A use of a module attribute that touches the machine, or None."""
    for stmt in code:
        for node in ast.walk(stmt):
            if isinstance(node, ast.Attribute) and node.attr in DENIED_ATTRIBUTES:
                return f"uses .{node.attr}"
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                module = modules.get(node.value.id)
                allowed = PARTLY_ALLOWED.get(module or "")
                if allowed is not None and node.attr not in allowed:
                    return f"uses {module}.{node.attr}"
            if isinstance(node, ast.Name) and node.id in DENIED_BUILTINS:
                return f"uses {node.id}()"
            if isinstance(node, ast.Import | ast.ImportFrom) and node is not stmt:
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                else:
                    names = ["." * node.level + (node.module or "")]
                if not all(_module_allowed(n) for n in names):
                    return "imports a module it may not use"
    return None


@dataclass
class Candidate:
    module: Module
    function: ast.FunctionDef
    needs: list[ast.stmt]  # imports, constants, classes and helpers, in module order
    imports: list[ast.stmt]

    @property
    def name(self) -> str:
        return self.function.name

    @property
    def where(self) -> str:
        return f"{self.module.source.label}.{self.name}"


class Rejected(Exception):
    """Why a function or a mutant is not used (the message is counted in the summary)."""


def extract(module: Module, function: ast.FunctionDef) -> Candidate:
    if function.name.startswith("__") or function.name.startswith("test"):
        raise Rejected("a dunder or test function")
    if not (function.args.args or function.args.posonlyargs or function.args.vararg):
        raise Rejected("takes no positional arguments")
    if any(isinstance(n, ast.Yield | ast.YieldFrom) for n in ast.walk(function)) and any(
        isinstance(n, ast.Return) and n.value is not None for n in ast.walk(function)
    ):
        raise Rejected("a generator that also returns a value")
    if _names(function)[2]:
        raise Rejected("uses global or nonlocal")
    needs: dict[int, ast.stmt] = {}
    imports: dict[int, ast.stmt] = {}
    modules: dict[str, str] = {}
    helpers = 0
    todo = free_names(function)
    seen = {function.name}
    while todo:
        name = todo.pop(0)
        if name in seen:
            continue
        seen.add(name)
        plain_import = name in module.imports and isinstance(module.imports[name][0], ast.Import)
        if name in module.unsure or (name in module.changed and not plain_import):
            raise Rejected("needs a module-level name that is set conditionally or changed later")
        if name in module.functions:
            helper = module.functions[name]
            if _names(helper)[2]:
                raise Rejected("needs a helper that uses global or nonlocal")
            helpers += 1
            needs[module.order[id(helper)]] = helper
            todo += free_names(helper)
        elif name in module.assigns:
            stmt = module.assigns[name]
            needs[module.order[id(stmt)]] = stmt
            todo += free_names(stmt)
        elif name in module.imports:
            stmt, origin = module.imports[name]
            if not _module_allowed(origin):
                what = "a sibling module" if origin.startswith(".") else origin.split(".")[0]
                raise Rejected(f"needs a module it may not use ({what})")
            imports[id(stmt)] = stmt
            modules[name] = origin if isinstance(stmt, ast.Import) else f"{origin}.{name}"
        elif name in module.classes:
            if not _small_exception(module.classes[name]):
                raise Rejected("needs a class of its module")
            cls = module.classes[name]
            needs[module.order[id(cls)]] = cls
            todo += free_names(cls)
        elif name in BUILTIN_NAMES:
            continue
        else:
            raise Rejected("needs a name it can't carry (star import or undefined)")
    if helpers > MAX_HELPERS:
        raise Rejected("needs too many helper functions")
    code = [*imports.values(), *(needs[k] for k in sorted(needs)), function]
    problem = _attribute_problem(code, modules)
    if problem:
        raise Rejected("touches files, processes, the clock or chance")
    ordered_imports = sorted(imports.values(), key=lambda s: module.order[id(s)])
    candidate = Candidate(module, function, [needs[k] for k in sorted(needs)], ordered_imports)
    lines = len(render(candidate, function).splitlines())
    if lines > MAX_CODE_LINES:
        raise Rejected("too long with what it needs")
    body = [s for s in function.body if not _docstring_stmt(s)]
    if sum(len(ast.unparse(s).splitlines()) for s in body) < MIN_FUNCTION_LINES:
        raise Rejected("too short (under three lines)")
    return candidate


def _without_examples(node: ast.AST) -> ast.AST:
    """A copy whose docstrings lose their `>>>` examples (they would show expected results)."""
    node = copy.deepcopy(node)
    for sub in ast.walk(node):
        body = getattr(sub, "body", None)
        if not isinstance(sub, ast.FunctionDef | ast.ClassDef) or not body:
            continue
        if not _docstring_stmt(body[0]):
            continue
        doc = body[0].value.value  # type: ignore[attr-defined]
        if ">>>" not in doc:
            continue
        kept = [p for p in doctest.DocTestParser().parse(doc) if isinstance(p, str)]
        text = re.sub(r"\n[ \t]*\n([ \t]*\n)+", "\n\n", "".join(kept)).rstrip()
        text = re.sub(r"\n[^\n]*(example|Example|Examples|usage|Usage)[^\n]*:+\s*$", "", text)
        text = text.rstrip()
        if text.strip():
            body[0].value.value = text + "\n    " if "\n" in text else text  # type: ignore[attr-defined]
        else:
            del body[0]
            if not body:
                body.append(ast.Pass())
    return node


def render(candidate: Candidate, function: ast.FunctionDef) -> str:
    """The code of a case: imports, what the function needs, then the function."""
    parts = []
    if candidate.imports:
        parts.append("\n".join(ast.unparse(s) for s in candidate.imports))
    for stmt in [*candidate.needs, function]:
        parts.append(ast.unparse(_without_examples(stmt)))
    return "\n\n\n".join(parts) + "\n"


# --------------------------------------------------------------------------------------------
# Inputs

POOLS: dict[str, list[str]] = {
    "int": ["0", "1", "2", "3", "5", "7", "10", "12", "-1", "-4", "31", "100", "255"],
    "index": ["0", "1", "2", "3", "4", "5", "10", "-1"],
    "year": ["1", "1900", "2000", "2023", "2024", "9999"],
    "month": ["1", "2", "6", "12"],
    "day": ["1", "15", "28", "29", "31"],
    "float": ["0.0", "0.5", "1.5", "2.25", "-3.75", "10.0", "0.1"],
    "str": ["''", "'a'", "'abc'", "'hello world'", "'  padded  '", "'Hello, World!'",
            "'a,b,,c'", "'line one\\nline two\\n'", "'\\tindented\\n    text'",
            "'/usr/local/../lib/python3.txt'", "'C:\\\\Users\\\\me\\\\notes.txt'", "'x=1; y=\"2\"'",
            "'caf%C3%A9 au lait'", "'foo.bar.baz'", "'MixedCase Words'", "'naïve café'",
            "'a  b   c'", "'<b>&amp;</b>'", "'key: value'", "'12345'"],
    "bytes": ["b''", "b'abc'", "b'hello world'", "b'\\x00\\xffA='", "b'line\\r\\nnext'"],
    "list_int": ["[]", "[1]", "[3, 1, 2]", "[1, 2, 3, 4, 5]", "[5, 4, 4, 1]", "[0, -2, 7, 3, 3]",
                 "[1, 2, 2, 3, 3, 3]", "[10, 20, 30]"],
    "list_str": ["[]", "['a']", "['a', 'b', 'c']", "['banana', 'apple', 'cherry']",
                 "['x', 'y', 'x']", "['one two', 'three']"],
    "list_float": ["[1.5, 2.5, 4.0]", "[0.5]", "[2.0, -1.0, 3.5, 3.5]"],
    "tuple_int": ["()", "(1, 2)", "(3, 1, 2)", "(0, 0, 7)"],
    "pairs": ["[]", "[(1, 'a'), (2, 'b')]", "[('a', 1), ('b', 2), ('a', 3)]", "[(2, 1), (1, 2)]"],
    "nested": ["[[1, 2], [3], []]", "[[1], [2, 3], [4, 5, 6]]", "[['a', 'b'], ['c']]"],
    "dict": ["{}", "{'a': 1, 'b': 2}", "{'x': [1, 2], 'y': 'z'}", "{'HTTP_HOST': 'example.com'}"],
    "set": ["set()", "{1, 2, 3}", "{'a', 'b'}"],
    "bool": ["True", "False"],
    "none": ["None"],
    "func1": ["len", "abs", "str", "(lambda x: x * 2)", "(lambda x: x % 2 == 0)", "bool"],
    "func2": ["(lambda a, b: a + b)", "max", "(lambda a, b: a * b)"],
    "iter": ["iter([1, 2, 3])", "range(5)", "iter('abc')", "range(1, 10, 3)"],
}  # fmt: skip
FALLBACK = ["int", "str", "list_int", "float", "list_str", "bytes", "tuple_int", "iter", "dict",
            "bool", "func1", "pairs", "nested", "list_float", "set", "func2", "none"]  # fmt: skip
HINTS: list[tuple[str, list[str]]] = [
    (r"^(pred|predicate|func|function|key|fn|callback|f|transform|keyfunc)$", ["func1", "none"]),
    (r"^(binary_func|op|operator|combine)$", ["func2"]),
    (r"year", ["year"]),
    (r"month", ["month"]),
    (r"day", ["day"]),
    (
        r"(^i$|^j$|^k$|^n$|^m$|pos|start|stop|^end$|step|index|^lo$|^hi$|count|size|width|len|"
        r"level|depth|times|places|digits|indent|tabsize|col|limit|^max|^min|precision|^r$)",
        ["index"],
    ),
    (r"(hour|minute|second|num|base|^x$|^y$|^number$|^ordinal$|^e$|^p$)", ["int", "float"]),
    (
        r"(text|string|^s$|line|name|word|path|url|prefix|suffix|sep|char|pattern|^pat$|fmt|format|"
        r"delim|addr|host|query|header|^str|src|source|value|^v$|^c$|^ch$|spec|^ip$|domain|cookie|"
        r"^a$|^b$|^t$)",
        ["str", "bytes"],
    ),
    (
        r"(items|seq|iterable|values|^lst$|list|elements|args|arr|^data$|population|^xs$|heap|^it$|"
        r"iterator|^l$)",
        ["list_int", "list_str", "iter", "tuple_int", "pairs", "nested"],
    ),
    (r"(flag|strict|reverse|keepends|^ignore|allow|^is_|^use_|quiet|verbose|unique)", ["bool"]),
    (r"(environ|mapping|^d$|dict|headers|attrs|params)", ["dict", "pairs"]),
]


def _literal(src: str) -> Any:
    try:
        return ast.literal_eval(src)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return NotImplemented


def kind_of(src: str) -> str | None:
    value = _literal(src)
    if value is NotImplemented:
        return "func1" if src.startswith(("lambda", "(lambda")) else None
    for kind, test in (
        ("bool", lambda v: isinstance(v, bool)),
        ("int", lambda v: isinstance(v, int)),
        ("float", lambda v: isinstance(v, float)),
        ("str", lambda v: isinstance(v, str)),
        ("bytes", lambda v: isinstance(v, bytes)),
        ("none", lambda v: v is None),
        ("dict", lambda v: isinstance(v, dict)),
        ("set", lambda v: isinstance(v, set)),
        ("tuple_int", lambda v: isinstance(v, tuple)),
        ("pairs", lambda v: isinstance(v, list) and v and isinstance(v[0], tuple)),
        ("nested", lambda v: isinstance(v, list) and v and isinstance(v[0], list)),
        ("list_str", lambda v: isinstance(v, list) and v and isinstance(v[0], str)),
        ("list_float", lambda v: isinstance(v, list) and v and isinstance(v[0], float)),
        ("list_int", lambda v: isinstance(v, list)),
    ):
        if test(value):
            return kind
    return None


@dataclass
class Param:
    name: str
    kinds: list[str]
    default: str | None  # its default's source; None when it must be given
    keyword: bool = False  # keyword-only


def parameters(function: ast.FunctionDef, seen: dict[int, list[str]]) -> list[Param]:
    args = function.args
    positional = [*args.posonlyargs, *args.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults))
    defaults += list(args.defaults)
    found = []
    for index, (arg, default) in enumerate(zip(positional, defaults, strict=True)):
        found.append(_param(arg.arg, default, seen.get(index, [])))
    if args.vararg:
        for _ in range(2):
            found.append(_param(args.vararg.arg, ast.Constant(None), []))
    for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        if default is None:
            found.append(_param(arg.arg, None, [], keyword=True))
    return found


def _param(name: str, default: ast.expr | None, seen: list[str], keyword: bool = False) -> Param:
    kinds = list(seen)
    default_src = None if default is None else ast.unparse(default)
    if default_src is not None:
        kind = kind_of(default_src)
        if kind and kind != "none":
            kinds.append(kind)
    for pattern, hinted in HINTS:
        if re.search(pattern, name):
            kinds += hinted
            break
    kinds += FALLBACK
    return Param(name, list(dict.fromkeys(kinds)), default_src, keyword)


@dataclass(frozen=True)
class Call:
    args: tuple[tuple[str, str], ...]  # (parameter name, source), positional
    keywords: tuple[tuple[str, str], ...] = ()

    def source(self, entry: str, bound: dict[str, str] | None = None) -> str:
        bound = bound or {}
        args = [bound.get(f"{n}#{i}", s) for i, (n, s) in enumerate(self.args)]
        args += [f"{k}={bound.get(f'{k}#kw', s)}" for k, s in self.keywords]
        return f"{entry}({', '.join(args)})"


def doctest_calls(candidate: Candidate) -> list[Call]:
    """The calls of the function in its docstring's examples, with literal-ish arguments."""
    doc = ast.get_docstring(candidate.function, clean=True) or ""
    if ">>>" not in doc:
        return []
    names = [p.arg for p in (*candidate.function.args.posonlyargs, *candidate.function.args.args)]
    found = []
    env: dict[str, str] = {}
    try:
        examples = doctest.DocTestParser().get_examples(doc)
    except ValueError:
        return []
    for example in examples:
        try:
            tree = ast.parse(example.source)
        except SyntaxError:
            continue
        if len(tree.body) != 1:
            continue
        stmt = tree.body[0]
        if (
            isinstance(stmt, ast.Assign)
            and len(stmt.targets) == 1
            and isinstance(stmt.targets[0], ast.Name)
        ):
            value = _substitute(stmt.value, env)
            if value is not None:
                env[stmt.targets[0].id] = value
            continue
        if not isinstance(stmt, ast.Expr):
            continue
        for node in ast.walk(stmt.value):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == candidate.name
            ):
                continue
            args = [_substitute(a, env) for a in node.args]
            keywords = [(k.arg, _substitute(k.value, env)) for k in node.keywords]
            if any(a is None for a in args) or any(k is None or v is None for k, v in keywords):
                continue
            if len(args) > len(names) and not candidate.function.args.vararg:
                continue
            labels = [names[i] if i < len(names) else "args" for i in range(len(args))]
            found.append(
                Call(
                    tuple(zip(labels, args, strict=True)),  # type: ignore[arg-type]
                    tuple(keywords),  # type: ignore[arg-type]
                )
            )
    return found


SAFE_CALLS = frozenset({"range", "iter", "list", "tuple", "set", "dict", "str", "int", "float",
                        "abs", "len", "sorted", "reversed", "bool", "frozenset", "bytes",
                        "max", "min", "sum", "zip", "map", "filter", "enumerate", "chr", "ord",
                        "pow", "divmod", "repr", "lambda"})  # fmt: skip


def _substitute(node: ast.expr, env: dict[str, str]) -> str | None:
    """The source of a doctest argument made only of literals, lambdas and safe builtins."""
    node = copy.deepcopy(node)
    params: set[str] = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Lambda):
            params.update(a.arg for a in sub.args.args)
        if isinstance(sub, ast.comprehension):
            params.update(n.id for n in ast.walk(sub.target) if isinstance(n, ast.Name))

    class Replace(ast.NodeTransformer):
        def visit_Name(self, name: ast.Name) -> ast.expr:
            if name.id in env:
                return ast.parse(env[name.id], mode="eval").body
            return name

    node = Replace().visit(node)
    allowed = (
        ast.Constant, ast.List, ast.Tuple, ast.Dict, ast.Set, ast.UnaryOp, ast.BinOp, ast.Lambda,
        ast.arguments, ast.arg, ast.Load, ast.Name, ast.Call, ast.operator, ast.unaryop,
        ast.Compare, ast.cmpop, ast.BoolOp, ast.boolop, ast.GeneratorExp, ast.ListComp,
        ast.comprehension, ast.Store, ast.Subscript, ast.Slice, ast.IfExp, ast.Attribute,
        ast.keyword,
    )  # fmt: skip
    for sub in ast.walk(node):
        if not isinstance(sub, allowed):
            return None
        if isinstance(sub, ast.Name) and sub.id not in SAFE_CALLS | params:
            return None
        if isinstance(sub, ast.Attribute) and not (
            isinstance(sub.value, ast.Name) and sub.value.id in ("str", "int", "operator")
        ):
            return None
    text = ast.unparse(node)
    return text if len(text) <= 80 else None


# --------------------------------------------------------------------------------------------
# Running code: one child process per batch, limited, with an audit hook

SAME = '''
def _devset_same(got, want):
    """Equal, with floats compared to 1e-9 (a fix may add in another order)."""
    import math
    if isinstance(want, float) and isinstance(got, (int, float)) and not isinstance(got, bool):
        return math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(want, (list, tuple)):
        return (isinstance(got, list if isinstance(want, list) else tuple)
                and len(got) == len(want) and all(map(_devset_same, got, want)))
    if isinstance(want, dict):
        return (isinstance(got, dict) and got.keys() == want.keys()
                and all(_devset_same(got[k], want[k]) for k in want))
    return got == want
'''

CHILD = (
    r"""
import io, itertools, json, math, os, resource, signal, sys

resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
job = json.load(sys.stdin)
_out = sys.stdout
sys.stdout = io.StringIO()
_ROOTS = tuple(sorted({os.path.realpath(p) for p in (sys.prefix, sys.base_prefix)}))
_checking = []
_WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

def _audit(event, args):
    if _checking:
        return
    if event == "open" and args and args[0] is not None and not isinstance(args[0], int):
        _checking.append(1)
        try:
            real = os.path.realpath(os.fsdecode(args[0]))
        finally:
            _checking.pop()
        mode, flags = args[1], args[2] if len(args) > 2 else 0
        writing = any(c in mode for c in "wax+") if isinstance(mode, str) else bool(
            (flags or 0) & _WRITE)
        if writing or not real.startswith(_ROOTS):
            raise PermissionError("devset: open " + real)
    elif event in ("os.listdir", "os.scandir"):
        _checking.append(1)
        try:
            real = os.path.realpath(os.fsdecode(args[0] if args and args[0] else "."))
        finally:
            _checking.pop()
        if not real.startswith(_ROOTS):  # the import system lists the library's folders
            raise PermissionError("devset: " + event + " " + real)
    elif event.startswith(("socket.", "subprocess.", "os.system", "os.exec", "os.spawn",
                           "os.posix_spawn", "os.fork", "os.remove", "os.unlink", "os.rename",
                           "os.rmdir", "os.mkdir", "shutil.", "os.chdir", "os.kill",
                           "os.putenv")):
        raise PermissionError("devset: " + event)

sys.addaudithook(_audit)

class _Timeout(BaseException):
    pass

def _alarm(*_):
    raise _Timeout()

signal.signal(signal.SIGALRM, _alarm)

class _Unshown(Exception):
    pass

def _src(v, depth=0):
    t = type(v)
    if depth > 6:
        raise _Unshown("deep")
    if v is None or t in (bool, int, str, bytes):
        return repr(v)
    if t is float:
        if math.isnan(v):
            raise _Unshown("nan")
        return repr(v) if math.isfinite(v) else ("float('inf')" if v > 0 else "-float('inf')")
    if t is bytearray:
        return repr(v)
    if isinstance(v, tuple):
        items = [_src(x, depth + 1) for x in v]
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
    if t is list:
        return "[" + ", ".join(_src(x, depth + 1) for x in v) + "]"
    if t is dict:
        return "{" + ", ".join(_src(k, depth + 1) + ": " + _src(x, depth + 1)
                               for k, x in v.items()) + "}"
    if t in (set, frozenset):
        items = sorted(_src(x, depth + 1) for x in v)
        body = "{" + ", ".join(items) + "}"
        if t is set:
            return body if items else "set()"
        return "frozenset(" + body + ")" if items else "frozenset()"
    raise _Unshown(t.__name__)

def _has_float(v):
    if isinstance(v, float):
        return True
    if isinstance(v, (list, tuple, set, frozenset)):
        return any(map(_has_float, v))
    if isinstance(v, dict):
        return any(map(_has_float, v.values()))
    return False

def _shown(v):
    try:
        text = _src(v)
    except _Unshown:
        return "<" + type(v).__name__ + " object>"
    return text if len(text) <= 400 else text[:400] + "..."

def _error(error):
    try:
        text = str(error)
    except BaseException:
        text = ""
    name = type(error).__name__
    return (name + ": " + text if text else name)[:300]

def _run(namespace, call, bind, seconds, materialize):
    env = dict(namespace)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        for name, src in bind:
            env[name] = eval(src, env)
        value = eval(call, env)
        gen = False
        if materialize and hasattr(value, "__next__") and hasattr(value, "__iter__"):
            value = list(itertools.islice(value, 201))
            gen = True
        signal.setitimer(signal.ITIMER_REAL, 0)
        return "ok", value, gen, env
    except _Timeout:
        return "timeout", None, False, env
    except MemoryError:
        signal.setitimer(signal.ITIMER_REAL, 0)
        return "memory", None, False, env
    except BaseException as error:
        signal.setitimer(signal.ITIMER_REAL, 0)
        return "raise", _error(error), False, env
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)

def _load(code):
    namespace = {"__name__": "devset"}
    exec(compile(code, "case.py", "exec"), namespace)
    return namespace
"""
    + SAME
    + r"""
results = []
if job["mode"] == "probe":
    namespace = _load(job["code"])
    for check in job["checks"]:
        status, value, gen, env = _run(namespace, check["call"], check["bind"], job["seconds"],
                                       True)
        if status != "ok":
            results.append({"status": status, "error": value if status == "raise" else None})
            continue
        try:
            if gen and len(value) > 200:
                raise _Unshown("endless")
            result = _src(value)
            post = {name: _src(env[name]) for name, _ in check["bind"]}
            results.append({"status": "ok", "result": result, "post": post, "iter": gen,
                            "float": _has_float(value)})
        except _Unshown as why:
            results.append({"status": "unshown", "error": str(why)})
else:
    for code in job["mutants"]:
        try:
            namespace = _load(code)
        except BaseException as error:
            results.append({"load": _error(error)})
            continue
        outcomes = []
        for check in job["checks"]:
            status, value, gen, env = _run(namespace, check["call"], check["bind"],
                                           job["seconds"], False)
            if status in ("timeout", "memory"):
                outcomes.append({"status": status})
                break
            if status == "raise":
                outcomes.append({"status": "raise", "error": value})
                continue
            want = eval(check["expected"], {})
            try:
                same = _devset_same(value, want) if check["close"] else value == want
            except BaseException:
                same = False
            if not same:
                outcomes.append({"status": "value", "got": _shown(value)})
                continue
            moved = [n for n, p in check["post"].items() if env[n] != eval(p, {})]
            if moved:
                outcomes.append({"status": "post", "name": moved[0],
                                 "got": _shown(env[moved[0]])})
                continue
            outcomes.append({"status": "pass"})
        results.append({"outcomes": outcomes})
_out.write(json.dumps(results))
"""
)


def run_child(job: dict[str, Any], hash_seed: int = 0, timeout: float = 90.0) -> list[Any] | None:
    """Run a batch in a child Python; None when it died (its limit, a crash)."""
    try:
        done = subprocess.run(
            [sys.executable, "-s", "-B", "-c", CHILD],
            input=json.dumps(job),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": str(hash_seed)},
        )
    except subprocess.TimeoutExpired:
        return None
    if done.returncode != 0 or not done.stdout:
        print(f"a child died: {done.stderr[-300:]}", file=sys.stderr)
        return None
    result: list[Any] = json.loads(done.stdout)
    return result


# --------------------------------------------------------------------------------------------
# Checks: the original's results on doctest and seeded inputs


@dataclass
class Check:
    call: Call
    source: str  # the call as the test writes it (with bound names)
    shown: str  # the call with its arguments written out (for notes)
    bind: list[tuple[str, str]]  # mutable arguments, bound to names first
    expected: str
    post: dict[str, str]  # the bound arguments after the call
    close: bool  # compare floats with a tolerance
    doctest: bool


def _is_mutable(src: str) -> bool:
    node = ast.parse(src, mode="eval").body
    if isinstance(node, ast.List | ast.Dict | ast.Set | ast.ListComp | ast.DictComp):
        return True
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("set", "bytearray", "dict", "list")
    )


def _prepared(call: Call, entry: str, doctested: bool) -> Check:
    bound: dict[str, str] = {}
    bind: list[tuple[str, str]] = []
    for index, (name, src) in enumerate(call.args):
        if _is_mutable(src):
            variable = f"{name}_arg"
            variable = variable if variable not in dict(bind) else f"{variable}{index}"
            bound[f"{name}#{index}"] = variable
            bind.append((variable, src))
    return Check(
        call, call.source(entry, bound), call.source(entry), bind, "", {}, False, doctested
    )


def probe_calls(candidate: Candidate, params: list[Param], rng: random.Random) -> list[Call]:
    """Seeded calls: find argument kinds the function accepts, then sample values of them."""
    required = [p for p in params if p.default is None]
    optional = [p for p in params if p.default is not None and not p.keyword]
    width = {0: 1, 1: 6, 2: 4, 3: 3}.get(len(required), 2)
    combos = list(itertools.product(*[p.kinds[:width] for p in required]))[:40]
    code = render(candidate, candidate.function)
    trial: list[tuple[tuple[str, ...], Call]] = []
    for combo in combos:
        for _ in range(2):
            trial.append((combo, _sample(required, optional, combo, rng, with_optional=False)))
    results = run_child(
        {
            "mode": "probe",
            "code": code,
            "seconds": 0.3,
            "checks": [_job_check(_prepared(c, candidate.name, False)) for _, c in trial],
        }
    )
    if results is None:
        return []
    working: Counter[tuple[str, ...]] = Counter()
    for (combo, _), result in zip(trial, results, strict=True):
        if result["status"] == "ok":
            working[combo] += 1
    chosen = [combo for combo in combos if working[combo]][:3]
    calls = []
    for combo in chosen:
        for _ in range(14 if len(chosen) == 1 else 9):
            calls.append(_sample(required, optional, combo, rng, with_optional=True))
    return calls


def _sample(
    required: list[Param],
    optional: list[Param],
    combo: tuple[str, ...],
    rng: random.Random,
    *,
    with_optional: bool,
) -> Call:
    args = []
    keywords = []
    for param, kind in zip(required, combo, strict=True):
        value = rng.choice(POOLS[kind])
        if param.keyword:
            keywords.append((param.name, value))
        else:
            args.append((param.name, value))
    if with_optional:
        for param in optional[:2]:
            if rng.random() < 0.5:
                break
            args.append((param.name, rng.choice(POOLS[param.kinds[0]])))
    return Call(tuple(args), tuple(keywords))


def _job_check(check: Check) -> dict[str, Any]:
    return {
        "call": check.source,
        "bind": check.bind,
        "expected": check.expected,
        "post": check.post,
        "close": check.close,
    }


def make_checks(candidate: Candidate, rng: random.Random) -> list[Check]:
    documented = doctest_calls(candidate)
    seen: dict[int, list[str]] = {}
    for call in documented:
        for index, (_, src) in enumerate(call.args):
            kind = kind_of(src)
            if kind:
                seen.setdefault(index, []).append(kind)
    params = parameters(candidate.function, seen)
    sampled = probe_calls(candidate, params, rng)
    calls = list(dict.fromkeys([*documented, *sampled]))
    prepared = [_prepared(c, candidate.name, c in documented) for c in calls]
    prepared = [c for c in prepared if len(c.shown) <= 160]
    code = render(candidate, candidate.function)
    job = {
        "mode": "probe",
        "code": code,
        "seconds": 0.3,
        "checks": [_job_check(c) for c in prepared],
    }
    first, second = run_child(job, hash_seed=0), run_child(job, hash_seed=1)
    if first is None or second is None:
        raise Rejected("its probe died (a limit or a crash)")
    kept = []
    for check, one, two in zip(prepared, first, second, strict=True):
        if one != two or one["status"] != "ok":
            continue
        if len(one["result"]) > 200 or any(len(p) > 200 for p in one["post"].values()):
            continue
        if one["iter"]:
            check.source = f"list({check.source})"
            check.shown = f"list({check.shown})"
        check.expected = one["result"]
        check.post = one["post"]
        check.close = one["float"]
        kept.append(check)
    chosen = [c for c in kept if c.doctest][:5]
    results: set[str] = {c.expected for c in chosen}
    for check in kept:
        if len(chosen) >= MAX_CHECKS:
            break
        if not check.doctest and check.expected not in results:
            chosen.append(check)
            results.add(check.expected)
    for check in kept:
        if len(chosen) >= MAX_CHECKS:
            break
        if check not in chosen:
            chosen.append(check)
    chosen.sort(key=lambda c: kept.index(c))
    if len(chosen) < 3:
        raise Rejected("accepts too few of the probed inputs")
    if len({(c.expected, tuple(c.post.values())) for c in chosen}) < 2:
        raise Rejected("gives the same result for every input")
    return chosen


def tests_text(checks: list[Check]) -> str:
    lines = []
    if any(c.close for c in checks):
        lines += [SAME.strip(), "", ""]
    for check in checks:
        for name, src in check.bind:
            lines.append(f"{name} = {src}")
        if check.close:
            lines.append(f"assert _devset_same({check.source}, {check.expected})")
        elif check.expected == "None":
            lines.append(f"assert {check.source} is None")
        else:
            lines.append(f"assert {check.source} == {check.expected}")
        for name, src in check.post.items():
            lines.append(f"assert {name} == {src}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Mutation operators: each finds its places in the function and changes one

CATEGORIES = (
    "off-by-one",
    "comparison",
    "operator",
    "swapped-arguments",
    "dropped-return",
    "wrong-default",
    "negated-condition",
    "reused-iterator",
    "missing-copy",
    "wrong-variable",
    "break-continue",
    "early-return",
)

Site = tuple[int, str]  # (position in ast.walk order, variant)

_COMPARE_SWAP: dict[type, type] = {
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}  # fmt: skip
_OPERATOR_SWAP: dict[type, type] = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Add, ast.FloorDiv: ast.Div,
    ast.Div: ast.FloorDiv, ast.Mod: ast.FloorDiv, ast.LShift: ast.RShift, ast.RShift: ast.LShift,
    ast.BitAnd: ast.BitOr, ast.BitOr: ast.BitAnd, ast.BitXor: ast.BitOr, ast.Pow: ast.Mult,
}  # fmt: skip


def _parents(root: ast.AST) -> dict[int, ast.AST]:
    return {id(child): node for node in ast.walk(root) for child in ast.iter_child_nodes(node)}


def _stringy(node: ast.expr) -> bool:
    return isinstance(node, ast.JoinedStr) or (
        isinstance(node, ast.Constant) and isinstance(node.value, str | bytes)
    )


def _is_range(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range"
    )


def _body(function: ast.FunctionDef) -> Iterator[tuple[int, ast.AST]]:
    """The function's nodes with their walk positions, its docstring left out."""
    doc = function.body[0] if function.body and _docstring_stmt(function.body[0]) else None
    skip = {id(n) for n in ast.walk(doc)} if doc else set()
    for index, node in enumerate(ast.walk(function)):
        if id(node) not in skip:
            yield index, node


def _locals_before(function: ast.FunctionDef) -> dict[str, int]:
    """Local names and the line where each is first bound (parameters: the def line)."""
    first: dict[str, int] = {}
    for arg in ast.walk(function.args):
        if isinstance(arg, ast.arg):
            first.setdefault(arg.arg, function.lineno)
    inner = {  # names of comprehensions and lambdas live only there
        id(n)
        for scope in ast.walk(function)
        if isinstance(scope, ast.comprehension | ast.Lambda)
        for n in ast.walk(scope)
    }
    for node in ast.walk(function):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) and id(node) not in inner:
            first[node.id] = min(first.get(node.id, node.lineno), node.lineno)
    return first


def find_sites(function: ast.FunctionDef, category: str) -> list[Site]:
    parents = _parents(function)
    sites: list[Site] = []
    loads = Counter(
        n.id for n in ast.walk(function) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
    )
    bound = _locals_before(function)
    for index, node in _body(function):
        parent = parents.get(id(node))
        if category == "off-by-one":
            if isinstance(node, ast.Constant) and type(node.value) is int and parent is not None:
                if (
                    isinstance(parent, ast.Slice | ast.Compare | ast.AugAssign)
                    or (isinstance(parent, ast.Subscript) and parent.slice is node)
                    or (isinstance(parent, ast.BinOp) and isinstance(parent.op, ast.Add | ast.Sub))
                    or _is_range(parent)
                ):
                    sites += [(index, "+1"), (index, "-1")]
            elif isinstance(parent, ast.Slice) and node in (parent.lower, parent.upper):
                if isinstance(node, ast.expr):
                    sites += [(index, "+1"), (index, "-1")]
            elif _is_range(parent) and isinstance(node, ast.expr) and node is not parent.func:  # type: ignore[attr-defined]
                sites += [(index, "+1"), (index, "-1")]
        elif category == "comparison" and isinstance(node, ast.Compare):
            sites += [(index, str(i)) for i, op in enumerate(node.ops) if type(op) in _COMPARE_SWAP]
        elif category == "operator":
            if isinstance(node, ast.BinOp) and type(node.op) in _OPERATOR_SWAP:
                if not (_stringy(node.left) or _stringy(node.right)):
                    sites.append((index, ""))
            elif isinstance(node, ast.AugAssign) and type(node.op) in _OPERATOR_SWAP:
                if not _stringy(node.value):
                    sites.append((index, ""))
            elif isinstance(node, ast.BoolOp):
                sites.append((index, ""))
        elif category == "swapped-arguments" and isinstance(node, ast.Call):
            args = node.args
            for i in range(len(args) - 1):
                plain = not isinstance(args[i], ast.Starred) and not isinstance(
                    args[i + 1], ast.Starred
                )
                if plain and ast.unparse(args[i]) != ast.unparse(args[i + 1]):
                    sites.append((index, str(i)))
        elif category == "dropped-return" and isinstance(node, ast.Return):
            if node.value is not None and not (
                isinstance(node.value, ast.Constant) and node.value.value is None
            ):
                sites.append((index, ""))
        elif category == "wrong-default" and isinstance(node, ast.Constant):
            defaults = [*function.args.defaults, *function.args.kw_defaults]
            if any(node is d for d in defaults):
                if type(node.value) is int:
                    sites += [(index, "+1"), (index, "-1")]
                elif type(node.value) in (bool, str):
                    sites.append((index, ""))
        elif category == "negated-condition":
            if isinstance(node, ast.If | ast.IfExp) or (
                isinstance(node, ast.While)
                and not (isinstance(node.test, ast.Constant) and node.test.value is True)
            ):
                sites.append((index, ""))
        elif category == "reused-iterator" and isinstance(node, ast.Assign):
            value = node.value
            if (
                len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and isinstance(value, ast.Call)
                and isinstance(value.func, ast.Name)
                and value.func.id in ("list", "tuple")
                and len(value.args) == 1
                and not value.keywords
                and loads[node.targets[0].id] >= 2
            ):
                sites.append((index, ""))
        elif category == "missing-copy" and isinstance(node, ast.Call | ast.Subscript):
            if _copy_of(node) is not None:
                sites.append((index, ""))
        elif category == "wrong-variable" and isinstance(node, ast.Name):
            if (
                isinstance(node.ctx, ast.Load)
                and node.id in bound
                and not (isinstance(parent, ast.Call) and parent.func is node)
            ):
                others = sorted(
                    n for n, line in bound.items() if n != node.id and line <= node.lineno
                )
                sites += [(index, other) for other in others]
        elif category == "break-continue" and isinstance(node, ast.Break | ast.Continue):
            sites.append((index, ""))
        elif category == "early-return" and isinstance(node, ast.For | ast.While):
            following = _next_statement(parent, node)
            if isinstance(following, ast.Return):
                sites.append((index, ""))
    return sites


def _copy_of(node: ast.AST) -> ast.expr | None:
    """What `node` copies when it is a plain copy (x.copy(), list(x), x[:], copy.copy(x))."""
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Slice):
        s = node.slice
        if s.lower is None and s.upper is None and s.step is None:
            return node.value
    if not isinstance(node, ast.Call) or node.keywords:
        return None
    func = node.func
    if isinstance(func, ast.Attribute) and func.attr == "copy" and not node.args:
        return func.value
    if len(node.args) != 1 or not isinstance(node.args[0], ast.Name):
        return None
    if isinstance(func, ast.Name) and func.id in ("list", "dict"):
        return node.args[0]
    if isinstance(func, ast.Attribute) and func.attr in ("copy", "deepcopy"):
        return node.args[0]
    return None


def _statement_lists(parent: ast.AST | None) -> Iterator[list[ast.stmt]]:
    if parent is None:
        return
    for name in ("body", "orelse", "finalbody"):
        value = getattr(parent, name, None)
        if isinstance(value, list):
            yield value


def _next_statement(parent: ast.AST | None, node: ast.AST) -> ast.stmt | None:
    for body in _statement_lists(parent):
        for i, stmt in enumerate(body):
            if stmt is node and i + 1 < len(body):
                return body[i + 1]
    return None


def _replace(parent: ast.AST, old: ast.AST, new: ast.AST) -> None:
    for name, value in ast.iter_fields(parent):
        if value is old:
            setattr(parent, name, new)
            return
        if isinstance(value, list):
            for i, item in enumerate(value):
                if item is old:
                    value[i] = new
                    return
    raise ValueError("node not found in its parent")


def mutate(function: ast.FunctionDef, category: str, site: Site) -> ast.FunctionDef:
    mutant = copy.deepcopy(function)
    index, variant = site
    node = list(ast.walk(mutant))[index]
    parent = _parents(mutant)[id(node)]
    one = ast.Constant(1)
    if category in ("off-by-one", "wrong-default") and isinstance(node, ast.Constant):
        if type(node.value) is bool:
            node.value = not node.value
        elif type(node.value) is str:
            node.value = "" if node.value else " "
        else:
            node.value += 1 if variant == "+1" else -1
    elif category == "off-by-one":
        op = ast.Add() if variant == "+1" else ast.Sub()
        _replace(parent, node, ast.BinOp(left=node, op=op, right=one))  # type: ignore[arg-type]
    elif category == "comparison":
        assert isinstance(node, ast.Compare)
        i = int(variant)
        node.ops[i] = _COMPARE_SWAP[type(node.ops[i])]()
    elif category == "operator":
        if isinstance(node, ast.BoolOp):
            node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        else:
            assert isinstance(node, ast.BinOp | ast.AugAssign)
            node.op = _OPERATOR_SWAP[type(node.op)]()
    elif category == "swapped-arguments":
        assert isinstance(node, ast.Call)
        i = int(variant)
        node.args[i], node.args[i + 1] = node.args[i + 1], node.args[i]
    elif category == "dropped-return":
        assert isinstance(node, ast.Return) and node.value is not None
        _replace(parent, node, ast.Expr(value=node.value))
    elif category == "negated-condition":
        assert isinstance(node, ast.If | ast.IfExp | ast.While)
        test = node.test
        if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
            node.test = test.operand
        else:
            node.test = ast.UnaryOp(op=ast.Not(), operand=test)
    elif category == "reused-iterator":
        assert isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
        node.value.func = ast.Name(id="iter", ctx=ast.Load())
    elif category == "missing-copy":
        copied = _copy_of(node)
        assert copied is not None
        _replace(parent, node, copied)
    elif category == "wrong-variable":
        assert isinstance(node, ast.Name)
        node.id = variant
    elif category == "break-continue":
        _replace(parent, node, ast.Continue() if isinstance(node, ast.Break) else ast.Break())
    elif category == "early-return":
        assert isinstance(node, ast.For | ast.While)
        for body in _statement_lists(parent):
            if node in body:
                position = body.index(node)
                node.body.append(body.pop(position + 1))
                break
    return ast.fix_missing_locations(mutant)


@dataclass
class Mutant:
    candidate: Candidate
    category: str
    code: str
    reference: str
    bug_lines: list[int]
    outcomes: list[dict[str, Any]]
    checks: list[Check]

    @property
    def failures(self) -> list[tuple[Check, dict[str, Any]]]:
        pairs = zip(self.checks, self.outcomes, strict=False)
        return [(c, o) for c, o in pairs if o["status"] != "pass"]

    def first(self, *statuses: str) -> tuple[Check, dict[str, Any]] | None:
        for check, outcome in self.failures:
            shown = str(outcome.get("got", ""))
            if outcome["status"] not in statuses or len(check.shown) > MAX_SHOWN:
                continue
            if not shown.startswith("<"):  # a value a user would see written out
                return check, outcome
        return None


def changed_lines(before: str, after: str) -> list[int]:
    """The 1-based lines of `after` that the change wrote."""
    lines: list[int] = []
    matcher = difflib.SequenceMatcher(a=before.splitlines(), b=after.splitlines(), autojunk=False)
    for tag, _, _, j1, j2 in matcher.get_opcodes():
        if tag in ("replace", "insert"):
            lines += range(j1 + 1, j2 + 1)
    return lines


def make_mutants(
    candidate: Candidate, checks: list[Check], rng: random.Random, dropped: Counter[str]
) -> list[Mutant]:
    reference = render(candidate, candidate.function)
    planned = []
    for category in CATEGORIES:
        sites = find_sites(candidate.function, category)
        for site in rng.sample(sites, min(2, len(sites))):
            code = render(candidate, mutate(candidate.function, category, site))
            if code == reference:
                dropped["no change in the code"] += 1
                continue
            planned.append((category, code))
    if not planned:
        return []
    results = run_child(
        {
            "mode": "mutants",
            "mutants": [code for _, code in planned],
            "checks": [_job_check(c) for c in checks],
            "seconds": 1.0,
        },
        timeout=120.0,
    )
    if results is None:
        dropped["its batch died (a limit or a crash)"] += len(planned)
        return []
    found = []
    seen_codes: set[str] = set()
    for (category, code), result in zip(planned, results, strict=True):
        if code in seen_codes:
            dropped["the same mutant twice"] += 1
            continue
        seen_codes.add(code)
        if "load" in result:
            dropped["does not load"] += 1
            continue
        outcomes = result["outcomes"]
        if any(o["status"] in ("timeout", "memory") for o in outcomes):
            dropped["hangs or runs out of memory"] += 1
            continue
        if all(o["status"] == "pass" for o in outcomes):
            dropped["equivalent: passes every check"] += 1
            continue
        lines = changed_lines(reference, code)
        found.append(Mutant(candidate, category, code, reference, lines, outcomes, checks))
    return found


# --------------------------------------------------------------------------------------------
# Notes: what a user would write


def _kind_word(value: Any) -> str:
    if isinstance(value, str):
        return "string"
    if isinstance(value, bytes):
        return "bytes"
    if isinstance(value, tuple):
        return "tuple"
    if isinstance(value, dict):
        return "dict"
    if isinstance(value, set | frozenset):
        return "set"
    return "list"


def _traits(check: Check, function: ast.FunctionDef) -> list[str]:
    """What stands out in a call's arguments, in words ("the list is empty")."""
    traits = []
    for name, src in check.call.args:
        value = _literal(src)
        if value is NotImplemented:
            continue
        if isinstance(value, bool):
            traits.append(f"with {name} {'turned on' if value else 'turned off'}")
        elif isinstance(value, int | float):
            if value == 0:
                traits.append(f"when {name} is 0")
            elif value < 0:
                traits.append(f"when {name} is negative")
            elif isinstance(value, float):
                traits.append(f"when {name} is a fraction")
            elif value >= 100:
                traits.append(f"for large values of {name}")
        elif isinstance(value, str | bytes | list | tuple | dict | set):
            word = _kind_word(value)
            text = value.decode("latin-1") if isinstance(value, bytes) else value
            if not value:
                traits.append(f"when the {word} is empty")
            elif isinstance(text, str):
                if "\n" in text:
                    traits.append("when the text has several lines")
                if text[:1].isspace():
                    traits.append("when the text starts with whitespace")
                if text[-1:].isspace():
                    traits.append("when there is trailing whitespace")
                if len(text) == 1:
                    traits.append("for a single character")
                if not text.isascii():
                    traits.append("for text with accented letters")
                if "/" in text or "\\" in text:
                    traits.append("for a path")
            elif len(value) == 1:
                traits.append(f"when the {word} has only one item")
            elif isinstance(value, list | tuple) and len(set(map(repr, value))) < len(value):
                traits.append(f"when the {word} has repeated values")
    positional = len(function.args.posonlyargs) + len(function.args.args)
    if function.args.defaults and len(check.call.args) < positional:
        traits.append("with the default arguments")
    return traits


VARIANTS = {
    "when the list is empty": ["when the list is empty", "for an empty list"],
    "when the string is empty": ["when the string is empty", "for an empty string"],
    "with the default arguments": ["with the default arguments", "when I leave the defaults"],
}
VAGUE = ["for some inputs", "in some cases", "for certain inputs", "sometimes"]


def condition(mutant: Mutant, check: Check, rng: random.Random) -> str:
    """When it goes wrong, in words: a trait of the failing call no passing call has."""
    function = mutant.candidate.function
    passing = {
        t
        for c, o in zip(mutant.checks, mutant.outcomes, strict=False)
        if o["status"] == "pass"
        for t in _traits(c, function)
    }
    if len(mutant.failures) == len(mutant.checks):
        return rng.choice(["whatever I pass", "every time I call it", "for every input I try"])
    telling = [t for t in _traits(check, function) if t not in passing]
    if not telling or rng.random() < 0.2:
        return rng.choice(VAGUE)
    chosen = rng.choice(telling)
    return rng.choice(VARIANTS.get(chosen, [chosen]))


def symptom(check: Check, outcome: dict[str, Any], rng: random.Random) -> str:
    """What goes wrong, as a verb phrase, without the expected value."""
    status = outcome["status"]
    if status == "raise":
        return rng.choice(
            [
                "crashes with an exception",
                "throws an error instead of returning",
                "blows up with an error",
            ]
        )
    if status == "post":
        return rng.choice(
            [
                "changes the argument I pass in",
                "modifies my input, which it shouldn't",
                "messes up the data I pass to it",
            ]
        )
    want, got = _literal(check.expected), _literal(outcome["got"])
    if got is None and want is not None:
        return rng.choice(["returns None instead of a result", "gives me None back"])
    numbers = isinstance(want, int | float) and isinstance(got, int | float)
    if got is NotImplemented or (type(got) is not type(want) and not numbers):
        shown = "strange" if got is NotImplemented else type(got).__name__
        return f"returns a {shown} value where I expected a {type(want).__name__}"
    if isinstance(want, bool):
        return rng.choice(["gives the opposite answer", "says the opposite of what it should"])
    if isinstance(want, int | float) and isinstance(got, int | float):
        if want and got and (want > 0) != (got > 0):
            return "gets the sign wrong"
        return rng.choice(
            ["returns a number that is too large", "gives too high a result"]
            if got > want
            else ["returns a number that is too small", "gives too low a result"]
        )
    if isinstance(want, str | bytes) and isinstance(got, str | bytes):
        if len(got) < len(want):
            return rng.choice(["cuts off part of the text", "returns a string that is too short"])
        if len(got) > len(want):
            return rng.choice(["adds extra characters", "returns a string that is too long"])
        if got.lower() == want.lower():  # type: ignore[union-attr]
            return "gets the upper/lower case wrong"
        return rng.choice(["returns the wrong text", "gives a garbled string"])
    if isinstance(want, list | tuple | set | frozenset) and isinstance(got, list | tuple | set):
        if len(got) < len(want):
            return rng.choice(["returns too few items", "leaves out some items"])
        if len(got) > len(want):
            return rng.choice(["returns too many items", "gives me extra items"])
        if sorted(map(repr, got)) == sorted(map(repr, want)):
            return "puts the items in the wrong order"
        return rng.choice(["gets some of the items wrong", "returns the wrong items"])
    if isinstance(want, dict) and isinstance(got, dict):
        if len(got) < len(want):
            return "leaves out some keys"
        if len(got) > len(want):
            return "adds keys that shouldn't be there"
        return "gets some of the values wrong"
    return rng.choice(["returns the wrong result", "gives a wrong answer"])


CLOSERS = ["", "", " Can you help?", " Any idea what's wrong?", " Could you fix it?", " Thanks!"]


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def prose_note(mutant: Mutant, rng: random.Random) -> str:
    check, outcome = mutant.failures[0]
    fn = f"`{mutant.candidate.name}`"
    when = condition(mutant, check, rng)
    what = symptom(check, outcome, rng)
    template = rng.choice(
        [
            "{fn} {what} {when}.",
            "{When}, {fn} {what}.",
            "Something is off with {fn}: {when}, it {what}.",
            "I'm using {fn} and it {what} {when}.",
            "Could you check {fn}? {When}, it {what}.",
            "I think {fn} has a bug. {When}, it {what}.",
        ]
    )
    text = template.format(fn=fn, what=what, when=when, When=_sentence(when))
    return _sentence(text) + rng.choice(CLOSERS)


def example_note(mutant: Mutant, rng: random.Random) -> str | None:
    found = mutant.first("value", "post")
    if found is None:
        return None
    check, outcome = found
    got, fn = outcome["got"], f"`{mutant.candidate.name}`"
    if outcome["status"] == "post":
        name = outcome["name"]
        before = dict(check.bind)[name]
        want = check.post[name]
        if len(got) > MAX_SHOWN or len(want) > MAX_SHOWN:
            return None
        changed = "the argument changes" if before == want else "the argument ends up wrong"
        text = (
            f"After `{check.shown}`, {changed}: it is `{got}` afterwards, but I expected `{want}`."
        )
        return text + rng.choice(CLOSERS)
    want = check.expected
    if len(got) > MAX_SHOWN or len(want) > MAX_SHOWN:
        return None
    template = rng.choice(
        [
            "`{call}` gives `{got}` but I expected `{want}`.",
            "{fn} looks wrong: `{call}` returns `{got}` instead of `{want}`.",
            "When I run `{call}` I get `{got}`. It should be `{want}`.",
            "{fn} gives the wrong result. For example `{call}` returns `{got}`, expected `{want}`.",
        ]
    )
    return _sentence(template.format(call=check.shown, got=got, want=want, fn=fn)) + rng.choice(
        CLOSERS
    )


def error_note(mutant: Mutant, rng: random.Random) -> str | None:
    found = mutant.first("raise")
    if found is None:
        return None
    check, outcome = found
    error, fn = outcome["error"], f"`{mutant.candidate.name}`"
    template = rng.choice(
        [
            "`{call}` raises `{error}`.",
            "I get `{error}` when I call `{call}`.",
            "{fn} crashes. Calling `{call}` fails with:\n\n```\n{error}\n```\n",
            "Calling `{call}` gives me this error: {error}",
        ]
    )
    text = _sentence(template.format(call=check.shown, error=error, fn=fn))
    closer = rng.choice(CLOSERS)
    return (text + closer.strip()).rstrip() if text.endswith("\n") else text + closer


def difficulty(mutant: Mutant, kind: str) -> tuple[str, int]:
    """easy / medium / hard from the code's size, how often it fails and what the note shows."""
    lines = len(ast.unparse(mutant.candidate.function).splitlines())
    score = 0 if lines <= 10 else 1 if lines <= 25 else 2
    score += 1 if mutant.candidate.needs else 0
    failed = len(mutant.failures) / len(mutant.checks)
    score += 0 if failed >= 0.5 else 1 if failed >= 0.2 else 2
    score += 1 if kind == "prose" else 0
    return ("easy" if score <= 1 else "medium" if score <= 3 else "hard"), score


# --------------------------------------------------------------------------------------------
# The set


@dataclass
class Funnel:
    modules: int = 0
    functions: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    candidates: int = 0
    mutants: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    killed: int = 0
    sandbox: Counter[str] = field(default_factory=Counter)
    killed_by_category: Counter[str] = field(default_factory=Counter)


def collect(seed: int, labels: set[str] | None, funnel: Funnel) -> list[Mutant]:
    found: list[Mutant] = []
    for source in sources():
        if labels is not None and source.label not in labels:
            continue
        funnel.modules += 1
        module = read_module(source)
        for name in sorted(module.functions):
            funnel.functions += 1
            rng = random.Random(f"{seed}:{source.label}:{name}")
            try:
                candidate = extract(module, module.functions[name])
                checks = make_checks(candidate, rng)
            except Rejected as why:
                funnel.rejected[str(why)] += 1
                continue
            funnel.candidates += 1
            before = sum(funnel.dropped.values())
            mutants = make_mutants(candidate, checks, rng, funnel.dropped)
            funnel.mutants += len(mutants) + sum(funnel.dropped.values()) - before
            funnel.killed += len(mutants)
            for mutant in mutants:
                funnel.killed_by_category[mutant.category] += 1
            found += mutants
            print(
                f"{candidate.where}: {len(checks)} checks, {len(mutants)} mutants", file=sys.stderr
            )
    return found


def sandbox_agrees(mutant: Mutant, tests: str) -> str | None:
    """Why the project's sandbox disagrees with the probe, or None when it agrees."""
    from starchat_lsp import sandbox

    limits = sandbox.Limits(time_s=10.0, memory_mb=512)
    entry = mutant.candidate.name
    right = sandbox.run_python_tests(mutant.reference, tests, entry, limits)
    if right.status != "pass":
        print(f"{mutant.candidate.where}: {right.detail}", file=sys.stderr)
        return f"the reference does not pass in the sandbox ({right.status})"
    wrong = sandbox.run_python_tests(mutant.code, tests, entry, limits)
    if wrong.status not in ("fail", "error"):
        return f"the buggy code does not fail in the sandbox ({wrong.status})"
    return None


def select(
    mutants: list[Mutant], count: int, seed: int, funnel: Funnel
) -> list[tuple[Mutant, str]]:
    """Round-robin over the operators, at most two cases per function and one per operator and
    function, at most an eighth of the set from one module; each note kind to its share."""
    rng = random.Random(f"{seed}:select")
    pools = {c: [m for m in mutants if m.category == c] for c in CATEGORIES}
    for pool in pools.values():
        rng.shuffle(pool)
    quota = {"error": count // 4, "example": count // 4}
    quota["prose"] = count - quota["error"] - quota["example"]
    share = {k: max(1, v) for k, v in quota.items()}
    per_function: Counter[str] = Counter()
    per_module: Counter[str] = Counter()
    used: set[tuple[str, str]] = set()
    chosen: list[tuple[Mutant, str]] = []
    module_cap = max(4, count // 8)
    while len(chosen) < count and any(pools.values()):
        for category in CATEGORIES:
            if len(chosen) >= count:
                break
            pool = pools[category]
            # the note kind this pick serves: the one furthest from its share, if it can
            while pool:
                mutant = pool.pop(0)
                where = mutant.candidate.where
                if (
                    per_function[where] >= 2
                    or (where, category) in used
                    or per_module[mutant.candidate.module.source.label] >= module_cap
                ):
                    continue
                kinds = [k for k in ("error", "example", "prose") if quota[k] > 0]
                kinds = [k for k in kinds if k == "prose" or _can(mutant, k)]
                if not kinds:
                    continue
                kinds.sort(key=lambda k: -quota[k] / share[k])  # furthest from its share first
                kind = kinds[0]
                tests = tests_text(mutant.checks)
                why = sandbox_agrees(mutant, tests)
                if why:
                    funnel.sandbox[why] += 1
                    continue
                quota[kind] -= 1
                per_function[where] += 1
                per_module[mutant.candidate.module.source.label] += 1
                used.add((where, category))
                chosen.append((mutant, kind))
                break
    return chosen


def _can(mutant: Mutant, kind: str) -> bool:
    if kind == "error":
        return mutant.first("raise") is not None
    return example_note(mutant, random.Random(0)) is not None


def case(number: int, mutant: Mutant, kind: str, seed: int) -> dict[str, Any]:
    rng = random.Random(f"{seed}:note:{number}")
    makers: dict[str, Callable[[Mutant, random.Random], str | None]] = {
        "prose": prose_note,
        "example": example_note,
        "error": error_note,
    }
    note = makers[kind](mutant, rng)
    assert note is not None
    level, score = difficulty(mutant, kind)
    return {
        "id": f"dev-{number:03d}",
        "type": "bug_feedback",
        "language": "python",
        "category": mutant.category,
        "difficulty": level,
        "difficulty_score": score,
        "note_kind": kind,
        "source": mutant.candidate.where,
        "prompt": note,
        "code": mutant.code,
        "entry_point": mutant.candidate.name,
        "tests": tests_text(mutant.checks),
        "reference_fix": mutant.reference,
        "bug_lines": mutant.bug_lines,
        "checks_failed": len(mutant.failures),
        "checks": len(mutant.checks),
    }


def summary(cases: list[dict[str, Any]], funnel: Funnel, seed: int, count: int) -> str:
    def table(title: str, key: str, order: list[str] | None = None) -> list[str]:
        counts = Counter(str(c[key]) for c in cases)
        rows = order or sorted(counts, key=lambda k: (-counts[k], k))
        return [f"| {title} | cases |", "|---|---|", *(f"| {k} | {counts[k]} |" for k in rows), ""]

    by_source = Counter(str(c["source"]).rsplit(".", 1)[0] for c in cases)
    origins = {s.label: s.origin for s in sources()}
    lines = [
        "# The development set: summary",
        "",
        f"Made by `make_devset.py --seed {seed} --count {count}` with Python "
        f"{'.'.join(map(str, sys.version_info[:3]))}: {len(cases)} cases, each one function "
        "with one injected bug, the checks its original passes, and a user's note. Every "
        "reference passed and every buggy code failed its tests in the project's sandbox.",
        "",
        *table(
            "operator (`category`)",
            "category",
            [c for c in CATEGORIES if any(x["category"] == c for x in cases)],
        ),
        *table("note kind (`note_kind`)", "note_kind", ["prose", "example", "error"]),
        *table("difficulty", "difficulty", ["easy", "medium", "hard"]),
        "How a case is made: the function's code is its source (`ast.unparse`, so without "
        "comments, and without the `>>>` examples of its docstrings, which would show expected "
        "results) after the imports, constants, small exception classes and helpers of its "
        "module it uses. Its checks (`tests`, at most 10) are the calls of its doctests, then "
        "calls on seeded inputs: argument kinds tried in the order the parameter's name, "
        "default and doctests suggest (a `width` gets small ints, a `text` strings, a `pred` a "
        "function), values drawn from fixed pools, kept when the original returns the same "
        "representable result under two hash seeds within 0.3 s; a list, dict or set argument "
        "is also checked after the call. The mutant runs every check with a 1 s limit. The "
        "note is made from the first failing check: `prose` says what goes wrong (too few "
        "items, None instead of a result, crashes, changes the argument) and, where the "
        "failing call has a trait no passing call has (an empty list, a negative n, several "
        "lines of text), when; otherwise 'for some inputs' or, when every check fails, "
        "'whatever I pass'. `example` shows the call, what it gives and what was expected; "
        "`error` the call and the exception's last line. Each pick serves the kind furthest "
        "from its share (1/2, 1/4, 1/4) that the mutant can give (an error note needs a check "
        "that raises).",
        "",
        "Difficulty is mechanical, never from a model's answer: a score adds 0/1/2 for the "
        "function's length (up to 10 lines, up to 25, more), 1 when it needs helpers or "
        "constants from its module, 0/1/2 for the share of its checks the bug fails (half or "
        "more, a fifth or more, less), and 1 for a prose-only note (the failing input is not "
        "shown); 0-1 is easy, 2-3 medium, 4 and more hard.",
        "",
        "| source module | cases | origin |",
        "|---|---|---|",
        *(
            f"| {m} | {n} | {origins.get(m, '')} |"
            for m, n in sorted(by_source.items(), key=lambda i: (-i[1], i[0]))
        ),
        "",
        "## What was dropped, and why",
        "",
        f"{funnel.modules} modules, {funnel.functions} top-level functions read; "
        f"{funnel.candidates} could run on their own with at least three checks.",
        "",
        "| function rejected because it | functions |",
        "|---|---|",
        *(f"| {why} | {n} |" for why, n in funnel.rejected.most_common()),
        "",
        f"{funnel.mutants} mutants made (up to two places per operator and function); "
        f"{funnel.killed} fail at least one check and hang on none.",
        "",
        "| mutant dropped because it | mutants |",
        "|---|---|",
        *(f"| {why} | {n} |" for why, n in funnel.dropped.most_common()),
        *(f"| {why} | {n} |" for why, n in funnel.sandbox.most_common()),
        "",
        "| operator | usable mutants | chosen |",
        "|---|---|---|",
        *(
            f"| {c} | {funnel.killed_by_category[c]} | {sum(x['category'] == c for x in cases)} |"
            for c in CATEGORIES
        ),
        "",
        "Not in the set: `removed-await` (no async function qualifies: each needs an event "
        "loop, which the extraction does not carry).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--count", type=int, default=240)
    parser.add_argument("--out", type=Path, default=HERE / "prompts.jsonl")
    parser.add_argument("--summary", type=Path, default=HERE / "summary.md")
    parser.add_argument(
        "--modules", default=None, help="only these source modules (comma-separated labels)"
    )
    args = parser.parse_args(argv)
    labels = set(args.modules.split(",")) if args.modules else None
    funnel = Funnel()
    mutants = collect(args.seed, labels, funnel)
    chosen = select(mutants, args.count, args.seed, funnel)
    cases = [case(i, m, k, args.seed) for i, (m, k) in enumerate(chosen, start=1)]
    args.out.write_text(
        "".join(json.dumps(c, ensure_ascii=False) + "\n" for c in cases), encoding="utf-8"
    )
    args.summary.write_text(summary(cases, funnel, args.seed, args.count), encoding="utf-8")
    print(f"{len(cases)} cases in {args.out}", file=sys.stderr)
    return 0 if len(cases) >= args.count else 1


if __name__ == "__main__":
    sys.exit(main())
