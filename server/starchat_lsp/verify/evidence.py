"""What the user already told us the code must do, as executable Python checks.

Three sources, each turned into `assert` statements that name one of the selected functions:
- the user's message: "f([1, 2, 3, 4], 2) gives [1.5, 2.5] instead of [1.5, 2.5, 3.5]",
  "f(3) should return 6", "but f('x') returns 'y'" (the result is wrong), "f(0) crashes";
- the docstring: doctests (`>>> f(2)` then `4`) and lines such as `f(2) -> 4`;
- the workspace's tests (test_*.py, *_test.py): `assert` statements that call the function and use
  nothing but builtins, found with tree-sitter.
A check is kept only when it parses and names the function. Nothing here runs code.
"""

from __future__ import annotations

import ast
import builtins
import doctest
import os
import re
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from starchat_lsp.context import syntax

MAX_CHECKS = 8
_MAX_TEST_FILES = 200
_MAX_FOLDERS = 2000
_MAX_TEST_FILE_BYTES = 1_000_000
_SKIPPED_FOLDERS = {".git", ".venv", "venv", "node_modules", "__pycache__", ".tox", "build", "dist"}
_BUILTINS = set(dir(builtins))

# What follows a call in prose. "gives X instead of Y": Y is what it should give.
_ACTUAL = r"(?:gives|returns|outputs|prints|yields|produces|is|==|->|=>|=|(?:I |we )?(?:get|got))"
# ... and what it should give, in the same sentence or the next one ("I get 5. It should be 4").
_EXPECTED = r"(?:instead of|rather than|(?:but |and |when )?(?:it |that |the (?:result|answer|output) )?should (?:be|give|return|have been)|(?:but |while |when )?I (?:expected|expect|wanted|want|would expect|'d expect)|(?:but )?expected)"  # noqa: E501
_SHOULD = r"(?:should (?:return|give|be|equal|output)|must (?:return|give|be)|is expected to (?:return|be)|expected|==|->|=>)"  # noqa: E501
_CRASH = r"(?:crashes|raises|throws|fails|errors|blows up|hangs|gives (?:me )?(?:this |an |the )?(?:error|exception))"  # noqa: E501
# Builtins that hand on what the call gave (`list(f(x))` is f's items): the claim is theirs.
_CONSUMERS = {
    "list", "tuple", "set", "frozenset", "dict", "sorted", "next", "sum", "len", "min", "max",
    "any", "all", "str", "repr", "bool", "int", "float",
}  # fmt: skip
# "I get `TypeError: ...` when I call f(x)": an error, then the call, in one sentence...
_ERROR_WORD = re.compile(
    r"\b(?:[A-Z]\w*(?:Error|Exception)|errors?|exceptions?|traceback|crash(?:es)?)\b",
    re.IGNORECASE,
)
_THEN_CALL = re.compile(
    r"\b(?:when|whenever|if|after|on|for|from|calling|call|run|running)\b[^.?!]*$",
    re.IGNORECASE,
)
# ... unless, before the error, the user says they want one or there is none (what the error
# message says after it, "is not iterable", is not theirs).
_NO_ERROR = re.compile(
    r"\b(?:should|must|expect\w*|want\w*|supposed|not|never|no)\b|n't", re.IGNORECASE
)
# "When I call f(x) I get `TypeError: ...`": the call, then the error.
_GOT_ERROR = re.compile(
    r"[\s,]*(?:I|we) (?:get|got|see|saw|am getting|keep getting) (?:an? |this |the )?[`'\"]?"
    r"(?:[A-Z]\w*(?:Error|Exception)|errors?|exceptions?|traceback)\b",
    re.IGNORECASE,
)
_CONTRAST = re.compile(r"\b(?:but|yet|however|instead)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Check:
    """One executable check: Python that raises when the code is wrong."""

    code: str  # e.g. "assert mean([1, 2]) == 1.5"
    source: str  # "your message", "the docstring", "tests/test_stats.py:12"
    kind: str  # "expects", "not", "runs" (must not raise)

    @property
    def origin(self) -> str:
        """Where it came from, for grouping: the message, the docstring or the tests."""
        if self.source in ("your message", "the docstring"):
            return self.source
        return "your tests"


def says_what_is_right(checks: list[Check]) -> bool:
    """Whether one of the checks gives the right result ("f(2) == 4"), not only what is wrong
    ("f(2) != 5") or that it must run: only such checks can verify a fix or end the search."""
    return any(check.kind == "expects" for check in checks)


def function_names(code: str) -> list[str]:
    """The functions (and classes) defined in the selected Python code, outermost first."""
    return [d.name for d in syntax.definitions(code, "python") if d.name]


def gather(
    code: str, note: str | None, names: list[str], workspace: Path | None = None
) -> list[Check]:
    """Every valid check from the message, the docstrings and the workspace tests, deduplicated."""
    found: list[Check] = []
    if note:
        found += from_text(note, names, "your message")
    found += from_docstrings(code, names)
    if workspace is not None:
        found += from_workspace(workspace, names)
    unique: dict[str, Check] = {}
    for check in found:
        unique.setdefault(check.code, check)
    return list(unique.values())[:MAX_CHECKS]


# --- prose -------------------------------------------------------------------------------


def _calls(text: str, names: list[str]) -> Iterator[tuple[str, int, int]]:
    """(call source, start, end) for each `name(...)` in the text that parses as that call."""
    for name in names:
        for match in re.finditer(rf"(?<![\w.]){re.escape(name)}\(", text):
            end = _closing_paren(text, match.end() - 1)
            if end is None:
                continue
            source, start = text[match.start() : end], match.start()
            if not _is_call_of(source, names):
                continue
            # `list(f(x))`: a generator's or an iterator's result is what the user saw
            while (outer := _consumer_around(text, start, end)) is not None:
                source, start, end = outer
            yield source, start, end


def _consumer_around(text: str, start: int, end: int) -> tuple[str, int, int] | None:
    """`list(...)`, `sorted(..., key=len)` and the like around text[start:end], if any."""
    before = re.search(r"(?<![\w.])([A-Za-z_]\w*)\($", text[max(0, start - 20) : start])
    if before is None or before.group(1) not in _CONSUMERS:
        return None
    opening = start - 1
    closing = _closing_paren(text, opening)
    if closing is None or closing < end:
        return None
    outer = opening - len(before.group(1))
    source = text[outer:closing]
    try:
        call = ast.parse(source, mode="eval").body
    except SyntaxError:
        return None
    inner = ast.unparse(ast.parse(text[start:end], mode="eval").body)
    wraps = isinstance(call, ast.Call) and bool(call.args) and ast.unparse(call.args[0]) == inner
    return (source, outer, closing) if wraps else None


def _closing_paren(text: str, opening: int) -> int | None:
    depth, quote = 0, ""
    for index in range(opening, min(len(text), opening + 500)):
        char = text[index]
        if quote:
            if char == quote and text[index - 1] != "\\":
                quote = ""
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth == 0:
                return index + 1
    return None


def _is_call_of(source: str, names: list[str]) -> bool:
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError:
        return False
    call = tree.body
    return isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id in names


def _literal_at(text: str) -> tuple[str, int] | None:
    """The longest Python literal at the start of `text` (backticks and quotes of prose aside)."""
    stripped = text.lstrip()
    lead = len(text) - len(stripped)
    if stripped.startswith("`"):
        closing = stripped.find("`", 1)
        if closing > 1 and _literal(stripped[1:closing]):
            return stripped[1:closing], lead + closing + 1
        return None
    window = stripped[:300]
    for end in range(len(window), 0, -1):
        candidate = window[:end].rstrip()
        if end < len(window) and window[end - 1].isalnum() and window[end].isalnum():
            continue  # don't cut a word or a number in two
        if candidate and candidate[-1] not in ".,;:" and _literal(candidate):
            return candidate, lead + end
    return None


def _literal(source: str) -> bool:
    try:
        ast.literal_eval(source)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False
    return True


def from_text(text: str, names: list[str], source: str) -> list[Check]:
    """Checks from prose or a docstring's example lines; see the module's docstring."""
    checks: list[Check] = []
    for call, start, end in _calls(text, names):
        after = text[end:].lstrip("`'\" ")
        sentence_start = max(text.rfind(".", 0, start), text.rfind("\n", 0, start), 0)
        contrasted = bool(_CONTRAST.search(text[sentence_start:start]))
        check = _check_after(call, after, contrasted, source)
        if check is None and _error_before(text, start):
            check = Check(call, source, "runs")
        if check is not None:
            checks.append(check)
    return checks


def _error_before(text: str, start: int) -> bool:
    """The call's line says, before it, that an error comes of it."""
    line = text[text.rfind("\n", 0, start) + 1 : start]
    error = _ERROR_WORD.search(line)
    if error is None or _NO_ERROR.search(line[: error.start()]):
        return False
    return bool(_THEN_CALL.search(line[error.end() :]))


def _check_after(call: str, after: str, contrasted: bool, source: str) -> Check | None:
    actual = re.match(
        rf"\s*(?:and |but )?(?:still |also |just |only )?{_ACTUAL}\s+", after, re.IGNORECASE
    )
    if actual:
        wrong = _literal_at(after[actual.end() :])
        if wrong is not None:
            rest = after[actual.end() + wrong[1] :]
            expected = re.match(rf"[\s,.;!`'\"]*{_EXPECTED}\s+", rest, re.IGNORECASE)
            if expected:
                right = _literal_at(rest[expected.end() :])
                if right is not None:
                    return Check(f"assert {call} == {right[0]}", source, "expects")
            if contrasted or re.match(r"[\s,]*(?:which is wrong|wrongly|by mistake)", rest):
                return Check(f"assert {call} != {wrong[0]}", source, "not")
            if source != "your message" and not contrasted:
                # In a docstring, "f(2) -> 4" says what it should give.
                return Check(f"assert {call} == {wrong[0]}", source, "expects")
    should = re.match(rf"\s*(?:it |that )?{_SHOULD}\s+", after, re.IGNORECASE)
    if should:
        right = _literal_at(after[should.end() :])
        if right is not None:
            return Check(f"assert {call} == {right[0]}", source, "expects")
    if re.match(rf"\s*(?:it )?{_CRASH}\b", after, re.IGNORECASE) or _GOT_ERROR.match(after):
        return Check(call, source, "runs")
    return None


# --- docstrings ---------------------------------------------------------------------------


def _functions(code: str) -> list[ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef]:
    try:
        tree = ast.parse(textwrap.dedent(code))
    except SyntaxError:
        return []
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return [node for node in ast.walk(tree) if isinstance(node, kinds)]


def from_docstrings(code: str, names: list[str]) -> list[Check]:
    """Doctests and `f(x) -> y` lines in the docstrings of the selected code."""
    checks: list[Check] = []
    for node in _functions(code):
        docstring = ast.get_docstring(node)
        if not docstring:
            continue
        for example in doctest.DocTestParser().get_examples(docstring):
            source, want = example.source.strip(), example.want.strip()
            if "\n" in source or not any(
                isinstance(n, ast.Name) and n.id in names for n in _names(source)
            ):
                continue
            if not want:
                checks.append(Check(source, "the docstring", "runs"))
            elif _literal(want):
                checks.append(Check(f"assert ({source}) == {want}", "the docstring", "expects"))
            else:
                checks.append(
                    Check(f"assert repr({source}) == {want!r}", "the docstring", "expects")
                )
        plain = "\n".join(
            line for line in docstring.splitlines() if not line.lstrip().startswith(">>>")
        )
        checks += from_text(plain, names, "the docstring")
    return [check for check in checks if valid_check(check.code, names)]


def _names(source: str) -> list[ast.AST]:
    try:
        return list(ast.walk(ast.parse(source)))
    except SyntaxError:
        return []


def valid_check(code: str, names: list[str]) -> bool:
    """It parses, it calls one of the functions, and it uses nothing else but builtins."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return False
    loaded = {
        n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
    }
    calls = {
        n.func.id
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
    }
    return bool(calls & set(names)) and loaded <= set(names) | _BUILTINS


# --- workspace tests ------------------------------------------------------------------------


def _test_files(workspace: Path) -> Iterator[Path]:
    """Test files under the workspace, skipping hidden, virtual-env and build folders; bounded."""
    seen = 0
    for visited, (folder, subfolders, files) in enumerate(os.walk(workspace)):
        if visited >= _MAX_FOLDERS:
            return
        subfolders[:] = sorted(
            d for d in subfolders if d not in _SKIPPED_FOLDERS and not d.startswith(".")
        )
        for name in sorted(files):
            if name.endswith(".py") and (name.startswith("test_") or name.endswith("_test.py")):
                seen += 1
                if seen > _MAX_TEST_FILES:
                    return
                yield Path(folder) / name


def from_workspace(workspace: Path, names: list[str]) -> list[Check]:
    """`assert` statements in the workspace's test files that call one of the functions."""
    checks: list[Check] = []
    for path in _test_files(workspace):
        try:
            if path.stat().st_size > _MAX_TEST_FILE_BYTES:
                continue
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if not any(f"{name}(" in text for name in names):
            continue
        for line, statement in _asserts(text):
            code = textwrap.dedent(statement)
            if valid_check(code, names):
                where = f"{_relative(path, workspace)}:{line + 1}"
                checks.append(Check(code, where, "expects"))
    return checks


def _asserts(text: str) -> Iterator[tuple[int, str]]:
    """(0-based line, source) of each `assert` statement in Python text, by tree-sitter."""
    tree = syntax.parse(text, "python")
    if tree is None:
        return
    pending = [tree.root_node]
    while pending:
        node = pending.pop()
        if node.type == "assert_statement" and node.text is not None:
            yield node.start_point[0], node.text.decode("utf-8", "replace")
        else:
            pending.extend(reversed(node.children))


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
