"""Check one candidate fix: static checks by tree-sitter, then the evidence in the sandbox.

Static: the fix parses, keeps every selected function's name and parameters (unless the user
asked to change them), changes at least one line, and how many lines it changes. Dynamic (Python
only): the fixed document loads, and each evidence check passes, each run in its own sandboxed
process (`starchat_lsp.sandbox`: time and memory limits, no network, a temporary folder), never
here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from starchat_lsp import edits, sandbox, tasks
from starchat_lsp.context import syntax
from starchat_lsp.verify.evidence import Check

# A user who asks for another name or other parameters gets them.
_SIGNATURE_CHANGE = re.compile(
    r"\b(?:rename|signature|parameters?|arguments?|argument list)\b", re.IGNORECASE
)


@dataclass(kw_only=True)
class Assessment:
    """What the checks found about one candidate."""

    problems: list[str] = field(default_factory=list)  # static checks it failed
    changed_lines: int = 0
    loads: bool | None = None  # None: not run (not Python, or the original does not load)
    load_error: str = ""  # the sandbox's detail when it does not load
    passed: list[Check] = field(default_factory=list)
    failed: list[tuple[Check, str]] = field(default_factory=list)  # with the sandbox's detail
    generated_passed: int = 0  # of the tests the model wrote (verify.model_tests)
    # Of those, the ones that fail on the original code (they reproduce the report) it passes.
    reproduced_passed: list[Check] = field(default_factory=list)
    lint: int = 0  # 1: it removes an analyzer finding and adds none; -1: it adds one (analyzer)

    @property
    def sound(self) -> bool:
        return not self.problems and self.loads is not False


def signatures(code: str, language: str | None) -> dict[str, list[str]]:
    """name -> parameter names, for each function defined in the code."""
    if not language:
        return {}
    found: dict[str, list[str]] = {}
    for span in syntax.definitions(code, language):
        if span.name and span.name not in found:
            signature = syntax.function_signature(code, language, span.name)
            found[span.name] = signature[1] if signature else []
    return found


def static_problems(
    outcome: tasks.Outcome, original: dict[str, list[str]], note: str | None, language: str | None
) -> list[str]:
    """Why this candidate is not a fix we can offer, before running anything."""
    if outcome.fix is None or outcome.new_text is None:
        return ["no corrected code in the answer"]
    problems = list(outcome.problems)
    if note and _SIGNATURE_CHANGE.search(note):
        return problems
    fixed = signatures(outcome.fix, language)
    for name, parameters in original.items():
        if name not in fixed:
            problems.append(f"{name} is missing from the fix")
        elif fixed[name] != parameters:
            problems.append(f"the fix changes the parameters of {name}")
    return problems


def changed_line_count(old: str, new: str) -> int:
    return sum(
        max(change.end_line - change.start_line, len(change.new_lines))
        for change in edits.line_edits(old, new)
    )


@dataclass(frozen=True)
class Harness:
    """How to run a version of the document: the whole of it, or its imports and the selection."""

    build: Callable[[str], str]  # document text -> the Python to load
    entry_point: str | None
    limits: sandbox.Limits


def find_harness(
    request: tasks.CodeRequest, imports: tuple[str, ...], names: list[str], limits: sandbox.Limits
) -> tuple[Harness | None, str]:
    """The first way of loading the original that works; None and why when none does."""
    entry = names[0] if names else None

    def selection(text: str) -> str:
        lines = text.split("\n")
        start, end = request.start_line, request.end_line + (len(lines) - _lines(request.text))
        body = "\n".join(lines[start : end + 1])
        return "\n".join([*imports, "", body]) if imports else body

    detail = ""
    for build in (lambda text: text, selection):
        harness = Harness(build, entry, limits)
        loaded, why = loads(harness, request.text)
        if loaded:
            return harness, ""
        detail = detail or why
    return None, detail


def _lines(text: str) -> int:
    return len(text.split("\n"))


def _run(harness: Harness, text: str, tests: str) -> sandbox.CheckResult:
    """This version of the document, then `tests`, in the sandbox."""
    return sandbox.run_python_tests(harness.build(text), tests, harness.entry_point, harness.limits)


def run_check(harness: Harness, text: str, check: Check) -> sandbox.CheckResult:
    return _run(harness, text, check.code)


def loads(harness: Harness, text: str) -> tuple[bool, str]:
    result = _run(harness, text, "")
    return result.status == "pass", result.detail
