"""Code from other files of the workspace that the code at the cursor uses, for its completion.

The names that the cursor's scope (its function or method, else its class, else the lines around
it) uses and an import binds (`import pkg.mod`, `from pkg.mod import name`, `from . import mod`)
are found with tree-sitter; their modules are resolved to files under the workspace root
(`pkg/mod.py`, `pkg/__init__.py`, looked for from the root, its `src/` and the folder holding the
document's top package), and their definitions taken in short form (`outlines`). They come
grouped by file in the order of first use, within a token budget: the same text while the cursor
stays in a function, so that the model reuses the KV cache of this part of the prompt between
keystrokes. Only Python so far; recently edited snippets are not gathered (yet).

Pure: no LSP, no model; files are read only under the workspace root.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import tree_sitter

from starchat_lsp.context import outlines, syntax
from starchat_lsp.context.outlines import Import
from starchat_lsp.context.syntax import node_text

SHARE = 4  # the other files get at most this part of completion.max_context_tokens
NEARBY_LINES = 12  # outside any definition, the names used this many lines around the cursor
REEXPORTS = 3  # `from .impl import name` in a package's __init__: followed this many times
SCOPES = ("function_definition", "class_definition")
_BINDING_FIELDS = {
    "assignment": "left",
    "augmented_assignment": "left",
    "for_statement": "left",
    "for_in_clause": "left",
    "named_expression": "name",
}


@dataclass(frozen=True)
class OtherFile:
    """Definitions from one file, as the prompt shows them ahead of the document."""

    path: str  # relative to the workspace root, with `/`
    text: str  # the definitions, in the order the cursor's scope first uses them


def budget(max_context_tokens: int) -> int:
    """The tokens the other files may take of the completion's context budget."""
    return max_context_tokens // SHARE


def gather(
    text: str,
    path: str,
    root: Path,
    offset: int,
    count_tokens: Callable[[str], int],
    max_tokens: int,
) -> tuple[OtherFile, ...]:
    """The definitions from other files that the scope around `offset` uses, in first-use order.

    `path` is the document's file, `root` the workspace folder: only files under it are read.
    A definition that does not fit in what is left of `max_tokens` is left out.
    """
    if syntax.language_for_path(path) != "python" or max_tokens <= 0:
        return ()
    tree = syntax.tree(text, "python")
    if tree is None:
        return ()
    line = text.count("\n", 0, offset)
    span = syntax.enclosing_definition(text, "python", line)
    first, last = (
        (span.start_line, span.end_line)
        if span is not None
        else (max(line - NEARBY_LINES, 0), line + NEARBY_LINES)
    )
    bindings, local = _names(tree.root_node, first, last)
    for name in local:
        bindings.pop(name, None)  # defined here: the import is not what it means
    resolver = _Resolver(root, Path(path))
    targets = (
        found
        for name, chain in _uses(tree.root_node, first, last, bindings)
        if (found := resolver.definition(bindings[name], chain, resolver.document.parent))
    )
    return _fit(targets, resolver, count_tokens, max_tokens)


def _fit(
    targets: Iterator[tuple[Path, str]],
    resolver: _Resolver,
    count_tokens: Callable[[str], int],
    max_tokens: int,
) -> tuple[OtherFile, ...]:
    chunks: dict[Path, list[str]] = {}
    seen: set[tuple[Path, str]] = set()
    used = 0
    for file, short in targets:
        if (file, short) in seen:
            continue
        seen.add((file, short))
        cost = count_tokens(short) + 2
        if file not in chunks:
            cost += count_tokens(resolver.relative(file)) + 2  # its heading
        if used + cost > max_tokens:
            continue
        used += cost
        chunks.setdefault(file, []).append(short)
    return tuple(
        OtherFile(resolver.relative(file), "\n\n".join(shorts)) for file, shorts in chunks.items()
    )


def _overlaps(node: tree_sitter.Node, first: int, last: int) -> bool:
    return node.start_point[0] <= last and node.end_point[0] >= first


def _names(root: tree_sitter.Node, first: int, last: int) -> tuple[dict[str, Import], set[str]]:
    """What the imports that reach the scope bind, and the names defined here instead.

    Imports count at the top level (under `if` and `try` too) and inside the definitions that
    hold the scope; local names are the file's top-level definitions and the scope's own
    parameters and assignments.
    """
    bindings: dict[str, Import] = {}
    local: set[str] = set()
    pending = [root]
    while pending:
        node = pending.pop()
        for child in reversed(node.named_children):
            if child.type in ("import_statement", "import_from_statement"):
                bindings.update(outlines.bound_imports(child))
            elif child.type in SCOPES or child.type == "decorated_definition":
                inner = child.child_by_field_name("definition") or child
                if node is root:
                    local.add(node_text(inner.child_by_field_name("name")))
                if _overlaps(child, first, last):
                    pending.append(child)
            elif node is root and child.type == "expression_statement":
                local.update(outlines.assigned_names(child))
                pending.append(child)
            else:
                pending.append(child)
            if first <= child.start_point[0] <= last:
                field = _BINDING_FIELDS.get(child.type)
                if field:
                    local.update(_pattern_names(child.child_by_field_name(field)))
                elif child.type == "as_pattern_target" or child.type == "parameters":
                    local.update(_pattern_names(child))
    return bindings, local


def _pattern_names(node: tree_sitter.Node | None) -> set[str]:
    """The names a target or parameter list binds (not the attributes or subscripts it sets)."""
    if node is None:
        return set()
    if node.type == "identifier":
        return {node_text(node)}
    if node.type in ("attribute", "subscript"):
        return set()
    names: set[str] = set()
    for child in node.named_children:
        if node.type in ("default_parameter", "typed_default_parameter") and child != (
            node.child_by_field_name("name")
        ):
            continue  # the default value and the type are not bound
        if node.type == "typed_parameter" and child.type == "type":
            continue
        names |= _pattern_names(child)
    return names


def _uses(
    root: tree_sitter.Node, first: int, last: int, bindings: dict[str, Import]
) -> Iterator[tuple[str, tuple[str, ...]]]:
    """Each imported name the scope's lines use, with the attributes read off it (`a.b.c`)."""
    pending = [root]
    while pending:
        node = pending.pop()
        if node.type in ("import_statement", "import_from_statement"):
            continue
        if node.type == "identifier" and first <= node.start_point[0] <= last:
            name = node_text(node)
            if name in bindings and not _is_label(node):
                yield name, _chain(node)
            continue
        pending.extend(c for c in reversed(node.named_children) if _overlaps(c, first, last))


def _is_label(node: tree_sitter.Node) -> bool:
    """`x.name` and `f(name=...)`: a name that is no variable."""
    parent = node.parent
    if parent is None:
        return False
    if parent.type == "attribute":
        return parent.child_by_field_name("attribute") == node
    return parent.type == "keyword_argument" and parent.child_by_field_name("name") == node


def _chain(node: tree_sitter.Node) -> tuple[str, ...]:
    chain: list[str] = []
    while node.parent is not None and node.parent.type == "attribute":
        if node.parent.child_by_field_name("object") != node:
            break
        chain.append(node_text(node.parent.child_by_field_name("attribute")))
        node = node.parent
    return tuple(chain)


class _Resolver:
    """Modules to files under the workspace root, and imported names to their definitions."""

    def __init__(self, root: Path, document: Path) -> None:
        self.root = root.resolve()
        self.document = document.resolve()
        top = self.document.parent
        while (top / "__init__.py").is_file() and top.parent.is_relative_to(self.root):
            top = top.parent
        found_in = (self.root, self.root / "src", *[top][: top.is_relative_to(self.root)])
        self._search = list(dict.fromkeys(found_in))
        self._files: dict[tuple[str, int, Path], Path | None] = {}

    def relative(self, file: Path) -> str:
        return file.relative_to(self.root).as_posix()

    def module_file(self, module: str, level: int, base: Path) -> Path | None:
        """The file of a module (`level` leading dots count from the folder `base`)."""
        key = (module, level, base)
        if key not in self._files:
            self._files[key] = self._find(module, level, base)
        return self._files[key]

    def _find(self, module: str, level: int, base: Path) -> Path | None:
        parts = [p for p in module.split(".") if p]
        if level > len(base.parents) + 1:
            return None
        up = [base.parents[level - 2] if level > 1 else base]  # `..` is the folder above
        for folder in up if level else self._search:
            candidates = [folder.joinpath(*parts, "__init__.py")]
            if parts:
                candidates.insert(0, folder.joinpath(*parts[:-1], parts[-1] + ".py"))
            for candidate in candidates:
                if candidate.is_file():
                    found = candidate.resolve()
                    if found.is_relative_to(self.root) and found != self.document:
                        return found
        return None

    def definition(
        self, bound: Import, chain: tuple[str, ...], base: Path, depth: int = 0
    ) -> tuple[Path, str] | None:
        """The file that defines what the name (and the attributes read off it) means, and that
        definition's short form; None when it is no definition in a file under the root."""
        module, level, name = bound.module, bound.level, bound.name
        if name is not None and self.module_file(_join(module, name), level, base) is not None:
            module, name = _join(module, name), None  # `from pkg import submodule`
        if name is None:  # a module: the first attributes may name submodules
            for cut in range(len(chain) - 1, -1, -1):
                file = self.module_file(_join(module, *chain[:cut]), level, base)
                if file is not None:
                    return self._defined(file, chain[cut], depth)
            return None
        file = self.module_file(module, level, base)
        return None if file is None else self._defined(file, name, depth)

    def _defined(self, file: Path, name: str, depth: int) -> tuple[Path, str] | None:
        outline = outlines.outline(file)
        if outline is None:
            return None
        short = outline.short_form(name)
        if short is not None:
            return file, short
        again = outline.imports.get(name)
        if again is None or depth >= REEXPORTS:
            return None
        return self.definition(again, (), file.parent, depth + 1)


def _join(*parts: str) -> str:
    return ".".join(p for p in parts if p)
