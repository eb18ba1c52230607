"""What tree-sitter tells us about a document: definitions, statements, imports, syntax errors.

Every function takes the whole document text and 0-based line numbers. Tree-sitter columns are
UTF-8 bytes, so nodes become lines through their rows and text through byte offsets, never both.
A language without a grammar (sql) or an unknown one gives the neutral answer: no definition, the
selection unchanged, no imports, no errors.
"""

from __future__ import annotations

import importlib
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import cache

import tree_sitter

from starchat_lsp.context import languages


@dataclass(frozen=True)
class CodeSpan:
    """A definition's lines (0-based, end inclusive), its kind and its name when it has one."""

    start_line: int
    end_line: int
    kind: str
    name: str | None


def language_for_path(path: str) -> str | None:
    """The language id for a file name, by extension; None when we don't know it."""
    name = path.rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
    if "." not in name:
        return None
    return languages.EXTENSIONS.get(name.rsplit(".", 1)[1].lower())


@cache
def _language(language: str) -> tree_sitter.Language | None:
    grammar = languages.GRAMMARS.get(language)
    if grammar is None:
        return None
    module, function = grammar
    return tree_sitter.Language(getattr(importlib.import_module(module), function)())


_local = threading.local()


def _parser(language: str) -> tree_sitter.Parser | None:
    # A Parser is not safe to share between threads; handlers run on worker threads.
    parsers: dict[str, tree_sitter.Parser] = _local.__dict__.setdefault("parsers", {})
    if language not in parsers:
        lang = _language(language)
        if lang is None:
            return None
        parsers[language] = tree_sitter.Parser(lang)
    return parsers[language]


class _Counts:
    full_parses = 0  # how often a text was parsed from scratch (the cache and reuse avoid it)


counts = _Counts()


def parse(
    text: str, language: str, old_tree: tree_sitter.Tree | None = None
) -> tree_sitter.Tree | None:
    """A syntax tree for `text`; None when the language has no grammar.

    With `old_tree` (already edited to match `text`), tree-sitter re-parses only what changed.
    """
    parser = _parser(language)
    if parser is None:
        return None
    if old_tree is None:
        counts.full_parses += 1
        return parser.parse(text.encode("utf-8"))
    return parser.parse(text.encode("utf-8"), old_tree)


_TREES: OrderedDict[tuple[str, str], tree_sitter.Tree | None] = OrderedDict()
_TREES_LOCK = threading.Lock()
_TREES_KEPT = 8


def _tree(text: str, language: str) -> tree_sitter.Tree | None:
    # One request asks several questions about the same text: parse it once. The open
    # documents' trees are put here by `adopt` as they change. Nobody may edit these trees.
    key = (text, language)
    with _TREES_LOCK:
        if key in _TREES:
            _TREES.move_to_end(key)
            return _TREES[key]
    tree = parse(text, language)
    adopt(text, language, tree)
    return tree


def tree(text: str, language: str) -> tree_sitter.Tree | None:
    """The (cached) syntax tree of `text`; None when the language has no grammar. Read only."""
    return _tree(text, language)


def adopt(text: str, language: str, tree: tree_sitter.Tree | None) -> None:
    """Make `tree` the one every function here uses for `text`."""
    with _TREES_LOCK:
        _TREES[(text, language)] = tree
        _TREES.move_to_end((text, language))
        while len(_TREES) > _TREES_KEPT:
            _TREES.popitem(last=False)


def _last_row(node: tree_sitter.Node) -> int:
    """The last line a node covers: a node ending at column 0 ends with the line before."""
    row, column = node.end_point
    return row - 1 if column == 0 and row > node.start_point[0] else row


def node_text(node: tree_sitter.Node | None) -> str:
    """A node's source text; "" for none."""
    return "" if node is None or node.text is None else node.text.decode("utf-8", "replace")


def _definition_name(node: tree_sitter.Node) -> str | None:
    name = node.child_by_field_name("name")
    if name is not None:
        return node_text(name)
    if node.type == "impl_item":
        return node_text(node.child_by_field_name("type")) or None
    if node.type == "type_declaration":  # go: type S struct {...}
        spec = next((c for c in node.named_children if c.type == "type_spec"), None)
        return node_text(spec.child_by_field_name("name")) if spec else None
    declarator = node.child_by_field_name("declarator")  # c/cpp: int *f(int a)
    while declarator is not None and declarator.child_by_field_name("declarator") is not None:
        declarator = declarator.child_by_field_name("declarator")
    if declarator is not None:
        return node_text(declarator)
    parent = node.parent  # js: const f = () => ...
    if parent is not None and parent.type == "variable_declarator":
        return node_text(parent.child_by_field_name("name")) or None
    return None


def _outermost(node: tree_sitter.Node) -> tree_sitter.Node:
    while node.parent is not None and node.parent.type in languages.WRAPPERS:
        node = node.parent
    return node


@cache
def _definition_query(language: str) -> tree_sitter.Query | None:
    lang, table = _language(language), languages.DEFINITIONS.get(language)
    if lang is None or table is None:
        return None
    # A query runs in C: ten times faster than walking a big file's nodes from Python.
    return tree_sitter.Query(lang, "[" + " ".join(f"({t})" for t in table) + "] @definition")


def _definition_nodes(text: str, language: str) -> list[tree_sitter.Node]:
    query, tree = _definition_query(language), _tree(text, language)
    if query is None or tree is None:
        return []
    nodes = tree_sitter.QueryCursor(query).captures(tree.root_node).get("definition", [])
    return sorted(nodes, key=lambda n: n.start_byte)


def _span(node: tree_sitter.Node, table: dict[str, str]) -> CodeSpan | None:
    kind = table[node.type]
    if node.type.endswith("_specifier") and node.child_by_field_name("body") is None:
        return None  # `struct S *p;` names a type, it doesn't define one
    if kind == "function" and _inside_type(node, table):
        kind = "method"
    outer = _outermost(node)
    return CodeSpan(outer.start_point[0], _last_row(outer), kind, _definition_name(node))


def definitions(text: str, language: str) -> list[CodeSpan]:
    """Every definition in the document (functions, methods, classes and the like), in order."""
    table = languages.DEFINITIONS.get(language, {})
    spans = (_span(node, table) for node in _definition_nodes(text, language))
    return [span for span in spans if span is not None]


def _inside_type(node: tree_sitter.Node, table: dict[str, str]) -> bool:
    parent = node.parent
    while parent is not None:
        kind = table.get(parent.type)
        if kind is not None:
            return kind not in languages.FUNCTION_KINDS
        parent = parent.parent
    return False


def definition_around(
    text: str, language: str, start_line: int, end_line: int, *, strictly: bool = False
) -> CodeSpan | None:
    """The innermost function or method covering the lines, else the innermost type; or None.

    With `strictly`, a definition must cover more than exactly these lines.
    """
    table = languages.DEFINITIONS.get(language, {})
    around = []
    for node in _definition_nodes(text, language):
        outer = _outermost(node)  # cheap row test first: a big file has thousands of definitions
        first, last = outer.start_point[0], _last_row(outer)
        covers = first <= start_line and end_line <= last
        if covers and not (strictly and (first, last) == (start_line, end_line)):
            span = _span(node, table)
            if span is not None:
                around.append(span)
    functions = [d for d in around if d.kind in languages.FUNCTION_KINDS]
    candidates = functions or around
    if not candidates:
        return None
    return min(candidates, key=lambda d: (d.end_line - d.start_line, -d.start_line))


def enclosing_definition(text: str, language: str, line: int) -> CodeSpan | None:
    """The innermost function or method containing the line (decorators included), else class."""
    return definition_around(text, language, line, line)


def expand_selection(text: str, language: str, start_line: int, end_line: int) -> tuple[int, int]:
    """Grow a line range to whole syntax nodes; it never shrinks.

    The rule: walk down from the root into the one child that contains the whole range, unless
    the range includes that child's first line (its header: `def`, `if`, a decorator) and the
    child does not merely wrap its first child (as a Python block wraps its first statement); in
    that case, or when the range overlaps several children, every overlapping child is taken whole.
    So a range inside a function body covers whole statements and stays in the body, and a range
    that includes a `def` line covers the whole definition.
    """
    start, end = min(start_line, end_line), max(start_line, end_line)
    tree = _tree(text, language)
    if tree is None:
        return start, end
    node = tree.root_node
    while True:
        overlapping = [
            c for c in node.children if c.start_point[0] <= end and _last_row(c) >= start
        ]
        if not overlapping:
            return start, end
        if len(overlapping) == 1:
            child = overlapping[0]
            first = child.children[0] if child.children else None
            wraps_first = (
                first is not None and first.is_named and first.start_byte == child.start_byte
            )
            inside = child.start_point[0] <= start and end <= _last_row(child)
            if inside and (child.start_point[0] < start or wraps_first) and child.children:
                node = child
                continue
        first_row = min(c.start_point[0] for c in overlapping)
        last_row = max(_last_row(c) for c in overlapping)
        return min(start, first_row), max(end, last_row)


def imports(text: str, language: str) -> list[str]:
    """The text of the document's import statements (`import`, `#include`, `use`), in order."""
    kinds = languages.IMPORTS.get(language)
    tree = _tree(text, language) if kinds else None
    if kinds is None or tree is None:
        return []
    found: list[str] = []
    pending = list(reversed(tree.root_node.children))
    while pending:
        node = pending.pop()
        if node.type in kinds:
            found.append(node_text(node).strip())
        elif node.type in languages.IMPORT_CONTAINERS or node.type.startswith("preproc_"):
            pending.extend(reversed(node.children))
    return found


def has_errors(text: str, language: str) -> bool:
    """True when tree-sitter finds ERROR or MISSING nodes; False when there is no grammar."""
    tree = _tree(text, language)
    return tree is not None and tree.root_node.has_error


def function_signature(text: str, language: str, name: str) -> tuple[str, list[str]] | None:
    """The name and parameter names of the first function called `name`; None if there is none.

    Python's `*args`/`**kwargs` keep their stars; bare `*` and `/` separators are left out.
    """
    table = languages.DEFINITIONS.get(language, {})
    for node in _definition_nodes(text, language):
        if table[node.type] not in languages.FUNCTION_KINDS or _definition_name(node) != name:
            continue
        params = node.child_by_field_name("parameters")
        declarator: tree_sitter.Node | None = node
        while params is None and declarator is not None:  # c/cpp: the declarator holds them
            declarator = declarator.child_by_field_name("declarator")
            params = declarator.child_by_field_name("parameters") if declarator else None
        if params is None:  # js: `x => x` has one bare parameter
            single = node.child_by_field_name("parameter")
            return name, _parameter_names(single) if single is not None else []
        return name, [n for p in params.named_children for n in _parameter_names(p)]
    return None


def _parameter_names(node: tree_sitter.Node) -> list[str]:
    if node.type in languages.IDENTIFIERS:
        return [node_text(node)]
    if node.type in {"comment", "keyword_separator", "positional_separator"}:
        return []
    if node.type == "self_parameter":
        return ["self"]
    named = node.children_by_field_name("name")
    if named:
        return [node_text(n) for n in named]
    for field in ("pattern", "declarator", "left"):
        inner = node.child_by_field_name(field)
        if inner is not None:
            return _parameter_names(inner)
    if node.type == "parameter_declaration":
        return []  # c: `int f(void)`, `void g(int)` have no parameter names
    if node.type in languages.SPLATS and node.named_children:
        return [
            languages.SPLATS[node.type] + n for n in _parameter_names(node.named_children[0])[:1]
        ]
    if node.type == "typed_parameter" and node.named_children:
        return _parameter_names(node.named_children[0])
    return [node_text(node)]  # a destructuring pattern or `...`: as written


@dataclass(frozen=True)
class Comment:
    """A comment or docstring: its lines (0-based, inclusive) and its words without markers."""

    start_line: int
    end_line: int
    text: str
    docstring: bool = False


_COMMENT_MARKERS = re.compile(r"^\s*(?:#+|//+|/\*+|\*+/?|--|<!--|-->|\"\"\"|'''|\*/)\s?")


def _comment_words(raw: str) -> str:
    lines = [_COMMENT_MARKERS.sub("", line).rstrip() for line in raw.splitlines()]
    text = "\n".join(line.removesuffix("*/").removesuffix("-->").rstrip() for line in lines)
    return text.strip().strip("\"'").strip()


def node_types_at(text: str, language: str, offset: int) -> list[str]:
    """The types of the syntax nodes around a character offset, innermost first; [] if no grammar.

    The node is the one just before the offset when it ends there (the cursor sits after what
    was typed), so `# note|` is inside the comment and `foo(|)` is inside the arguments.
    """
    tree = _tree(text, language)
    if tree is None:
        return []
    byte = len(text[:offset].encode("utf-8"))  # tree-sitter speaks UTF-8 bytes
    node: tree_sitter.Node | None = tree.root_node.descendant_for_byte_range(
        max(byte - 1, 0), max(byte - 1, 0)
    )
    if node is not None and node.end_byte < byte:  # a gap (whitespace) before the cursor
        node = node.parent
    found = []
    while node is not None:
        found.append(node.type)
        node = node.parent
    return found


def comments(text: str, language: str, lines: tuple[int, int] | None = None) -> list[Comment]:
    """Comments (runs of line comments joined) and docstrings, in document order.

    With `lines` (0-based, inclusive), only those overlapping them: a big file is not walked.
    """
    tree = _tree(text, language)
    if tree is None:
        return []
    first, last = lines if lines is not None else (0, tree.root_node.end_point[0])
    found: list[Comment] = []
    pending = [tree.root_node]
    while pending:
        node = pending.pop()
        if node.start_point[0] > last or node.end_point[0] < first:
            continue
        if "comment" in node.type:
            start, end = node.start_point[0], _last_row(node)
            words = _comment_words(node_text(node))
            previous = found[-1] if found else None
            if previous and not previous.docstring and previous.end_line == start - 1:
                found[-1] = Comment(previous.start_line, end, f"{previous.text}\n{words}")
            else:
                found.append(Comment(start, end, words))
        elif _is_docstring(node):
            found.append(
                Comment(node.start_point[0], _last_row(node), _comment_words(node_text(node)), True)
            )
        else:
            pending.extend(reversed(node.children))
    return found


def _is_docstring(node: tree_sitter.Node) -> bool:
    """A Python string that is the first statement of a module, class or function body."""
    if node.type != "expression_statement" or node.named_child_count != 1:
        return False
    if node.named_children[0].type != "string":
        return False
    parent = node.parent
    if parent is None or parent.type not in {"block", "module"}:
        return False
    first = next((c for c in parent.named_children if c.type != "comment"), None)
    return first is not None and first.id == node.id


def body_is_only_docstring(text: str, language: str, line: int) -> bool:
    """True when the function around the line has nothing in its body but a docstring."""
    span = enclosing_definition(text, language, line)
    if span is None or span.kind not in languages.FUNCTION_KINDS:
        return False
    lines = text.split("\n")[span.start_line : span.end_line + 1]
    docs = [c for c in comments(text, language, (span.start_line, span.end_line)) if c.docstring]
    inside = [c for c in docs if span.start_line <= c.start_line <= span.end_line]
    if not inside:
        return False
    doc = inside[0]
    after = lines[doc.end_line - span.start_line + 1 :]
    return all(not line.strip() or line.strip() in {"pass", "..."} for line in after)


def error_count(text: str, language: str) -> int:
    """How many ERROR and MISSING nodes tree-sitter finds; 0 when there is no grammar."""
    tree = _tree(text, language)
    if tree is None or not tree.root_node.has_error:
        return 0
    count = 0
    pending = [tree.root_node]
    while pending:
        node = pending.pop()
        if node.is_error or node.is_missing:
            count += 1
        pending.extend(child for child in node.children if child.has_error or child.is_missing)
    return count
