"""Tests the model writes from the function's contract, to rank fixes when the user gave none.

The model sees what the code is meant to do (the signature, the docstring, the user's message),
not the buggy body, and writes `assert` statements with literal arguments and results (as
CodeT does). They are weaker than the user's own examples, so they only order candidates that the
user's checks cannot tell apart, and the verdict says whose tests they are. Nothing here runs code.
"""

from __future__ import annotations

import ast
import textwrap

from starchat_lsp.context import answers, prompts
from starchat_lsp.engine.base import ChatMessage
from starchat_lsp.verify.evidence import Check, function_names, valid_check

SOURCE = "tests the model wrote"
MAX_TESTS = 6


def contract(code: str, names: list[str]) -> str | None:
    """The selected functions without their bodies: signature and docstring; None if none."""
    try:
        tree = ast.parse(textwrap.dedent(code))
    except SyntaxError:
        return None
    parts = []
    for node in tree.body:
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or node.name not in names:
            continue
        docstring = ast.get_docstring(node)
        head = ast.unparse(node).split("\n", 1)[0]  # "def f(a, b=1):" with decorators dropped
        body = f'    """{docstring}"""\n    ...' if docstring else "    ..."
        parts.append(f"{head}\n{body}")
    return "\n\n".join(parts) or None


def parse(answer: str, names: list[str], *, cut: bool = False) -> list[Check]:
    """The valid, distinct asserts of the answer's code blocks (at most MAX_TESTS).

    `cut`: the answer was stopped midway, and its last line may be half an assert that still
    parses (`== 35.0` cut to `== 3`): it is dropped.
    """
    if cut:
        answer = answer[: answer.rfind("\n") + 1]
    found: dict[str, Check] = {}
    for block in answers.code_blocks(answer) or []:
        tree = _whole_statements(textwrap.dedent(block.code))
        if tree is None:
            continue
        for statement in tree.body:
            if not isinstance(statement, ast.Assert):
                continue
            code = ast.unparse(statement)
            if valid_check(code, names):
                found.setdefault(code, Check(code, SOURCE, "generated"))
    return list(found.values())[:MAX_TESTS]


def _whole_statements(code: str) -> ast.Module | None:
    """The code's statements; a cut answer's block loses its last lines (an assert over several
    lines) until the rest parses. None if nothing does."""
    lines = code.split("\n")
    for end in range(len(lines), max(0, len(lines) - 3), -1):
        try:
            return ast.parse("\n".join(lines[:end]))
        except SyntaxError:
            continue
    return None


def request(
    code: str, note: str | None, system_prompt: str | None = None
) -> tuple[list[ChatMessage], list[str]] | None:
    """What to ask the model (greedy) for tests of the selected functions, and their names;
    None when the code has no function to test. `parse` reads the answer."""
    names = function_names(code)
    spec = contract(code, names)
    if spec is None:
        return None
    messages = prompts.build_test_writing_prompt(spec, note, names[0], MAX_TESTS - 2, system_prompt)
    return messages, names
