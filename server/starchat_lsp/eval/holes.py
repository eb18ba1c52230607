"""Holes cut from real Python source for the completion benchmark: pure and seeded.

Four kinds, each a place where a user would pause and wait for a suggestion:
- `line`: a whole one-line statement, the cursor after its indentation;
- `rest`: the rest of such a line, the cursor at the start of one of its tokens (not the first);
- `body`: a function's body after its signature and docstring, the cursor where the first
  statement starts; 2 to MAX_BODY_LINES lines;
- `doctest`: a `body` from the functions whose docstring has examples (`>>>`), which the eval
  can run in the sandbox; drawn apart, so that the random `body` sample stays unbiased.

The text after the hole stays (the editor sees it too). Trivial holes are skipped: blank lines,
a lone `pass` or `...`, comments only, docstrings. The same files (by their relative paths and
bytes), seed and count give the same holes: each kind has its own seeded generator, which
orders the files and picks one hole in each file that has a candidate, so the kinds are drawn
independently and no file gives two holes of a kind.
"""

from __future__ import annotations

import ast
import hashlib
import itertools
import random
import sysconfig
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import tree_sitter

from starchat_lsp.context import syntax

KINDS = ("line", "rest", "body", "doctest")
MIN_CHARS, MAX_CHARS = 1_000, 100_000  # files smaller or larger are skipped
MAX_BODY_LINES = 15  # a longer body is more than a completion (128 new tokens) can hold
MIN_LINE_CHARS = 6  # `x = 1` is too little to measure anything
# Folders never read: tests, GUI code, generated codec tables, vendored copies, environments.
SKIPPED_FOLDERS = frozenset(
    {"test", "tests", "idlelib", "tkinter", "turtledemo", "encodings", "site-packages",
     "dist-packages", "_vendor", "vendor", "__pycache__", "node_modules", "build", "dist"}
)  # fmt: skip
SIMPLE_STATEMENTS = frozenset(
    {"expression_statement", "return_statement", "raise_statement", "assert_statement",
     "delete_statement", "import_statement", "import_from_statement", "global_statement",
     "nonlocal_statement", "type_alias_statement"}
)  # fmt: skip
TRIVIAL = frozenset({"pass", "...", "break", "continue", "return"})


def stdlib_root() -> Path:
    """Python's own standard library: on every machine that runs starchat-lsp."""
    return Path(sysconfig.get_paths()["stdlib"])


@dataclass(frozen=True, kw_only=True)
class Hole:
    id: str  # "line-03": kind and position in the kind's draw
    kind: str
    path: str  # relative to the source folder, with "/"
    start: int  # the hole in the original file: character offsets, end exclusive
    end: int
    line: int  # 0-based line of the cursor
    expected: str  # the text cut out
    sha256: str  # of the original file, to notice that it changed
    function: str | None = None  # body and doctest: the qualified name
    module: str | None = None  # body and doctest: the dotted module name
    docstring: str | None = None  # doctest (and a body that has examples): the docstring

    def document(self, original: str) -> tuple[str, int]:
        """The file as the editor holds it at the pause: the hole cut out, and the cursor."""
        return original[: self.start] + original[self.end :], self.start

    def filled(self, original: str, completion: str) -> str:
        """The file with a completion in the hole."""
        return original[: self.start] + completion + original[self.end :]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def hole_from_dict(data: dict[str, Any]) -> Hole:
    names = Hole.__dataclass_fields__
    return Hole(**{key: value for key, value in data.items() if key in names})


def source_files(root: Path) -> list[str]:
    """The .py files to cut from, relative to `root`, sorted; by size and folder only."""
    found = []
    for path in root.rglob("*.py"):
        parts = path.relative_to(root).parts
        if any(part in SKIPPED_FOLDERS or part.startswith(".") for part in parts[:-1]):
            continue
        try:
            size = path.stat().st_size
        except OSError:
            continue
        if MIN_CHARS <= size <= MAX_CHARS and path.is_file():
            found.append("/".join(parts))
    return sorted(found)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_source(root: Path, relative: str) -> str | None:
    try:
        return (root / relative).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


class _Offsets:
    """Tree-sitter's UTF-8 byte offsets as character offsets of the text."""

    def __init__(self, text: str) -> None:
        self._data = text.encode("utf-8")
        self._ascii = len(self._data) == len(text)

    def __call__(self, byte: int) -> int:
        return byte if self._ascii else len(self._data[:byte].decode("utf-8", "replace"))


@dataclass(frozen=True)
class _Candidate:
    start: int
    end: int
    function: str | None = None
    docstring: str | None = None


def _docstring_node(block: tree_sitter.Node) -> tree_sitter.Node | None:
    first = next((c for c in block.named_children if c.type != "comment"), None)
    if first is None or first.type != "expression_statement" or first.named_child_count != 1:
        return None
    return first if first.named_children[0].type == "string" else None


def _docstring_value(node: tree_sitter.Node) -> str | None:
    try:
        value = ast.literal_eval((node.text or b"").decode("utf-8"))
    except (ValueError, SyntaxError):
        return None
    return value if isinstance(value, str) else None


def _qualified_name(node: tree_sitter.Node) -> str | None:
    names = []
    current: tree_sitter.Node | None = node
    while current is not None:
        if current.type in {"function_definition", "class_definition"}:
            name = current.child_by_field_name("name")
            if name is None or name.text is None:
                return None
            names.append(name.text.decode("utf-8"))
        current = current.parent
    return ".".join(reversed(names))


def _is_trivial(text: str) -> bool:
    lines = [line.strip() for line in text.split("\n")]
    code = [line for line in lines if line and not line.startswith("#")]
    return not code or all(line in TRIVIAL for line in code)


def _nodes(tree: tree_sitter.Tree) -> Iterator[tree_sitter.Node]:
    pending = [tree.root_node]
    while pending:
        node = pending.pop()
        yield node
        pending.extend(reversed(node.named_children))


def _candidates(text: str, tree: tree_sitter.Tree) -> dict[str, list[_Candidate]]:
    """Every place a hole of each kind could be cut, in document order."""
    at = _Offsets(text)
    found: dict[str, list[_Candidate]] = {kind: [] for kind in KINDS}
    for node in _nodes(tree):
        if node.type in SIMPLE_STATEMENTS:
            _statement(node, text, at, found)
        elif node.type == "function_definition":
            _body(node, text, at, found)
    return found


def _statement(
    node: tree_sitter.Node, text: str, at: _Offsets, found: dict[str, list[_Candidate]]
) -> None:
    parent = node.parent
    if node.end_point[0] != node.start_point[0] or parent is None:
        return
    first = node.named_children[0] if node.named_children else None
    if parent.type not in {"block", "module"} or (first is not None and first.type == "string"):
        return  # a string on its own is prose (a docstring, most often)
    start, end = at(node.start_byte), at(node.end_byte)
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    line = text[line_start : len(text) if line_end < 0 else line_end]
    statement = text[start:end]
    if line.strip() != statement or len(statement) < MIN_LINE_CHARS or statement in TRIVIAL:
        return  # the line holds something else too (`x = 1; y = 2`, a comment after it)
    found["line"].append(_Candidate(start, end))
    leaves = []
    pending = [node]
    while pending:
        current = pending.pop()
        if current.child_count == 0 or current.type == "string":
            leaves.append(current)  # a string is one token: no cut inside it
        else:
            pending.extend(reversed(current.children))
    for leaf in leaves[1:]:
        cut = at(leaf.start_byte)
        if start < cut < end:
            found["rest"].append(_Candidate(cut, end))


def _body(
    node: tree_sitter.Node, text: str, at: _Offsets, found: dict[str, list[_Candidate]]
) -> None:
    block = node.child_by_field_name("body")
    if block is None or block.start_point[0] == node.start_point[0]:
        return  # `def f(): return 1`
    statements = list(block.named_children)
    docstring = _docstring_node(block)
    if docstring is not None:
        statements = statements[statements.index(docstring) + 1 :]
    if not statements:
        return
    first, last = statements[0], statements[-1]
    if not 2 <= last.end_point[0] - first.start_point[0] + 1 <= MAX_BODY_LINES:
        return
    start, end = at(first.start_byte), at(last.end_byte)
    if _is_trivial(text[start:end]):
        return
    doc = _docstring_value(docstring.named_children[0]) if docstring is not None else None
    name = _qualified_name(node)
    candidate = _Candidate(start, end, name, doc if doc and ">>>" in doc else None)
    found["body"].append(candidate)
    if candidate.docstring and name:
        found["doctest"].append(candidate)


def _module_name(relative: str) -> str:
    return relative.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


def cut(root: Path, kinds: tuple[str, ...], count: int, seed: int) -> list[Hole]:
    """`count` holes of each kind from the .py files under `root` (fewer if it has fewer)."""
    return [hole for kind in kinds for hole in itertools.islice(draw(root, kind, seed), count)]


def draw(root: Path, kind: str, seed: int) -> Iterator[Hole]:
    """The holes of one kind in their seeded order, one per file, as far as the files go.

    Lazy: the eval takes as many as it needs (it skips doctest holes whose examples do not run
    in the sandbox, so it may take more than `count`).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown hole kind {kind!r}: use {', '.join(KINDS)}")
    chooser = random.Random(f"{seed}:{kind}")
    order = source_files(root)
    chooser.shuffle(order)
    index = 0
    for relative in order:
        text = read_source(root, relative)
        if text is None or not MIN_CHARS <= len(text) <= MAX_CHARS:
            continue
        tree = syntax.parse(text, "python")
        if tree is None or tree.root_node.has_error:
            continue  # "still parses" is measured against a file that parses
        candidates = _candidates(text, tree)[kind]
        if not candidates:
            continue
        if kind == "rest":  # each cut of a line is a candidate: choose the line first
            end = chooser.choice(sorted({c.end for c in candidates}))
            candidates = [c for c in candidates if c.end == end]
        chosen = chooser.choice(candidates)
        index += 1
        yield Hole(
            id=f"{kind}-{index:02d}",
            kind=kind,
            path=relative,
            start=chosen.start,
            end=chosen.end,
            line=text.count("\n", 0, chosen.start),
            expected=text[chosen.start : chosen.end],
            sha256=sha256(text),
            function=chosen.function,
            module=_module_name(relative) if chosen.function else None,
            docstring=chosen.docstring,
        )
