"""Put back what a Python fix dropped but still uses: the selection's imports, helpers, constants.

Asked to fix a selection that holds imports or helper functions as well as the function with the
bug, models often answer with the function alone; replacing the selection with that would delete
the imports and helpers the fixed function still calls (a NameError the user did not have). What
the fix still uses and does not define itself is kept, in the selection's order, ahead of it; what
it no longer uses stays out, as the model meant. Pure.
"""

from __future__ import annotations

import ast

_BINDING = (
    ast.Import,
    ast.ImportFrom,
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.Assign,
    ast.AnnAssign,
)


def _bound(statement: ast.stmt) -> set[str]:
    """The top-level names a statement binds."""
    if isinstance(statement, ast.Import | ast.ImportFrom):
        return {(alias.asname or alias.name).split(".")[0] for alias in statement.names}
    if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return {statement.name}
    if isinstance(statement, ast.Assign):
        targets = statement.targets
    else:
        assert isinstance(statement, ast.AnnAssign)
        targets = [statement.target]
    names = (node for target in targets for node in ast.walk(target))
    return {node.id for node in names if isinstance(node, ast.Name)}


def _used(node: ast.AST) -> set[str]:
    return {name.id for name in ast.walk(node) if isinstance(name, ast.Name)}


def _source(text: str, statement: ast.stmt) -> str:
    decorators = getattr(statement, "decorator_list", [])
    first = min([statement.lineno, *(d.lineno for d in decorators)])
    assert statement.end_lineno is not None
    return "\n".join(text.split("\n")[first - 1 : statement.end_lineno])


def restore(selection: str, fix: str) -> str:
    """`fix` with the selection's top-level imports, definitions and assignments that it uses (or
    that what is put back uses) and does not bind itself put back ahead of it; else `fix`."""
    if selection[:1].isspace() or fix[:1].isspace():
        return fix  # inside a class or a function: the selection's top level is not the module's
    try:
        original, fixed = ast.parse(selection), ast.parse(fix)
    except SyntaxError:
        return fix
    defined = set().union(*(_bound(s) for s in fixed.body if isinstance(s, _BINDING)))
    wanted = _used(fixed) - defined
    candidates = [s for s in original.body if isinstance(s, _BINDING) and not _bound(s) & defined]
    kept: list[ast.stmt] = []
    changed = True
    while changed:  # what is put back may need more of the selection
        changed = False
        for statement in candidates:
            if statement not in kept and _bound(statement) & wanted:
                kept.append(statement)
                wanted |= _used(statement)
                changed = True
    if not kept:
        return fix
    kept.sort(key=lambda statement: statement.lineno)
    imports = [_source(selection, s) for s in kept if isinstance(s, ast.Import | ast.ImportFrom)]
    others = [_source(selection, s) for s in kept if not isinstance(s, ast.Import | ast.ImportFrom)]
    blocks = (["\n".join(imports)] if imports else []) + others
    return "\n\n\n".join([*blocks, fix])
