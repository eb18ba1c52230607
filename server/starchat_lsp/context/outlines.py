"""Short forms of a Python file's top-level definitions: what another file needs to call them.

A small definition goes whole; a bigger function as its signature and docstring (first
paragraph); a bigger class as its header, docstring, one-line fields and public method
signatures. Files are read and parsed once per (path, mtime, size); a file too big or unreadable
has no outline. Pure: no LSP, no model.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import tree_sitter

from starchat_lsp.context import syntax
from starchat_lsp.context.syntax import node_text

MAX_FILE_BYTES = 1_000_000  # bigger files are generated or data: not read
SMALL_LINES = 8  # a definition this short goes whole
DOC_LINES = 6  # a docstring's first paragraph, at most this many lines
MAX_LINES = 40  # a class's outline is cut here
FIELD_CHARS = 120  # a class field or module constant: one line of at most this much
FILES_KEPT = 64
CALLED_DUNDERS = ("__init__", "__new__", "__call__")  # the methods another file calls by name


@dataclass(frozen=True)
class Import:
    """`from module import name`, as a file binds it (level: the leading dots)."""

    module: str
    level: int
    name: str | None  # None: `import module` binds the module itself


@dataclass
class Outline:
    """A parsed file: its top-level definitions and what it imports, by bound name."""

    source: bytes
    definitions: dict[str, tree_sitter.Node]
    imports: dict[str, Import]
    _short: dict[str, str | None] = field(default_factory=dict)

    def short_form(self, name: str) -> str | None:
        """The definition of `name` as the prompt shows it; None if the file defines none."""
        if name not in self._short:
            node = self.definitions.get(name)
            self._short[name] = None if node is None else _short_form(self.source, node)
        return self._short[name]


_CACHE: OrderedDict[Path, tuple[tuple[int, int], Outline | None]] = OrderedDict()
_LOCK = threading.Lock()


def outline(path: Path) -> Outline | None:
    """The file's outline; None when it can't be read, is too big or is no Python file."""
    try:
        stat = path.stat()
    except OSError:
        return None
    stamp = (stat.st_mtime_ns, stat.st_size)
    with _LOCK:
        cached = _CACHE.get(path)
        if cached is not None and cached[0] == stamp:
            _CACHE.move_to_end(path)
            return cached[1]
    found = _read(path, stat.st_size)
    with _LOCK:
        _CACHE[path] = (stamp, found)
        _CACHE.move_to_end(path)
        while len(_CACHE) > FILES_KEPT:
            _CACHE.popitem(last=False)
    return found


def _read(path: Path, size: int) -> Outline | None:
    if size > MAX_FILE_BYTES or path.suffix not in (".py", ".pyi"):
        return None
    try:
        source = path.read_bytes()
    except OSError:
        return None
    text = source.decode("utf-8", "replace")
    tree = syntax.parse(text, "python")
    if tree is None:
        return None
    source = text.encode("utf-8")  # what tree-sitter's byte offsets count in
    definitions: dict[str, tree_sitter.Node] = {}
    imports: dict[str, Import] = {}
    for node in tree.root_node.named_children:
        inner = _definition(node)
        if inner is not None:
            name = inner.child_by_field_name("name")
            if name is not None:
                definitions[node_text(name)] = node
        elif node.type == "expression_statement":
            for assigned in assigned_names(node):
                definitions[assigned] = node
        elif node.type in ("import_statement", "import_from_statement"):
            imports.update(bound_imports(node))
    return Outline(source, definitions, imports)


def _definition(node: tree_sitter.Node) -> tree_sitter.Node | None:
    """The function or class a statement defines, decorators unwrapped; else None."""
    if node.type == "decorated_definition":
        node = node.child_by_field_name("definition") or node
    return node if node.type in ("function_definition", "class_definition") else None


def assigned_names(statement: tree_sitter.Node) -> list[str]:
    """The name a statement `NAME = ...` or `NAME: type = ...` assigns, if it is one."""
    child = statement.named_children[0] if statement.named_children else None
    if child is None or child.type != "assignment":
        return []
    left = child.child_by_field_name("left")
    return [node_text(left)] if left is not None and left.type == "identifier" else []


def bound_imports(node: tree_sitter.Node) -> dict[str, Import]:
    """The names an import statement binds, and what each is."""
    bound: dict[str, Import] = {}
    if node.type == "import_statement":
        for item in node.children_by_field_name("name"):
            if item.type == "aliased_import":
                module = node_text(item.child_by_field_name("name"))
                bound[node_text(item.child_by_field_name("alias"))] = Import(module, 0, None)
            else:  # `import a.b` binds `a`, the top package
                module = node_text(item)
                bound[module.split(".")[0]] = Import(module.split(".")[0], 0, None)
        return bound
    source = node.child_by_field_name("module_name")
    if source is None:
        return bound
    level, module = 0, node_text(source)
    if source.type == "relative_import":
        level = len(node_text(source.named_children[0])) if source.named_children else 1
        dotted = next((c for c in source.named_children if c.type == "dotted_name"), None)
        module = node_text(dotted)
    for item in node.children_by_field_name("name"):
        if item.type == "aliased_import":
            name = node_text(item.child_by_field_name("name"))
            bound[node_text(item.child_by_field_name("alias"))] = Import(module, level, name)
        else:
            bound[node_text(item)] = Import(module, level, node_text(item))
    return bound


def _line_start(source: bytes, offset: int) -> int:
    return source.rfind(b"\n", 0, offset) + 1


def _lines(source: bytes, start: int, end: int) -> str:
    """Whole lines from the one holding byte `start` to byte `end`."""
    return source[_line_start(source, start) : end].decode("utf-8", "replace").rstrip()


def _header(source: bytes, statement: tree_sitter.Node, inner: tree_sitter.Node) -> str:
    """Decorators and the `def ...:` / `class ...:` line(s)."""
    colon = next((c for c in reversed(inner.children) if c.type == ":"), None)  # not the body's
    end = colon.end_byte if colon is not None else inner.end_byte
    return _lines(source, statement.start_byte, end)


def _docstring(source: bytes, body: tree_sitter.Node | None) -> str | None:
    """The body's docstring, cut to its first paragraph and DOC_LINES lines."""
    first = body.named_children[0] if body is not None and body.named_children else None
    if first is None or first.type != "expression_statement" or first.named_child_count != 1:
        return None
    string = first.named_children[0]
    if string.type != "string":
        return None
    lines = _lines(source, first.start_byte, first.end_byte).split("\n")
    kept: list[str] = []
    for line in lines[:DOC_LINES]:
        if kept and not line.strip():
            break
        kept.append(line)
    if len(kept) == len(lines):
        return "\n".join(kept)
    raw = node_text(string).lstrip("rRuUbBfF")
    quote = raw[:3] if raw[:3] in ('"""', "'''") else raw[:1]
    indent = kept[0][: len(kept[0]) - len(kept[0].lstrip())]
    return "\n".join([*kept, indent + quote])


def _short_form(source: bytes, statement: tree_sitter.Node) -> str | None:
    whole = _lines(source, statement.start_byte, statement.end_byte)
    inner = _definition(statement)
    if inner is None:  # a constant: one short line, else nothing
        return whole if "\n" not in whole and len(whole) <= FIELD_CHARS else None
    if whole.count("\n") < SMALL_LINES:
        return whole
    if inner.type == "function_definition":
        return _function(source, statement, inner)
    return _class(source, statement, inner)


def _body_indent(inner: tree_sitter.Node) -> str:
    return " " * (inner.start_point[1] + 4)


def _function(source: bytes, statement: tree_sitter.Node, inner: tree_sitter.Node) -> str:
    header = _header(source, statement, inner)
    doc = _docstring(source, inner.child_by_field_name("body"))
    return f"{header}\n{doc}" if doc else f"{header}\n{_body_indent(inner)}..."


def _class(source: bytes, statement: tree_sitter.Node, inner: tree_sitter.Node) -> str:
    body = inner.child_by_field_name("body")
    doc = _docstring(source, body)
    parts = [_header(source, statement, inner), *([doc] if doc else [])]
    members = body.named_children if body is not None else []
    for member in members[1:] if doc else members:
        definition = _definition(member)
        if definition is not None:
            name = node_text(definition.child_by_field_name("name"))
            if name.startswith("_") and name not in CALLED_DUNDERS:
                continue  # private, or called by Python itself: not what another file calls
            parts.append(_header(source, member, definition) + " ...")
        elif any(not n.startswith("_") for n in assigned_names(member)):  # `x: int = 0`
            line = _lines(source, member.start_byte, member.end_byte)
            if "\n" not in line and len(line.strip()) <= FIELD_CHARS:
                parts.append(line)
    text = "\n".join(parts)
    lines = text.split("\n")
    if len(lines) > MAX_LINES:
        text = "\n".join([*lines[:MAX_LINES], _body_indent(inner) + "..."])
    return text
