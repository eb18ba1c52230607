"""The static analyzer (ruff, bug-finding rules): what it finds, the hints the model gets, and how
a fix that clears a finding ranks. Real ruff on real code; scripted answers stand for the model."""

from __future__ import annotations

import pytest

from starchat_lsp import tasks
from starchat_lsp.engine.base import ChatMessage, GenerationSettings
from starchat_lsp.verify import analyzer, pipeline
from starchat_lsp.verify.pipeline import VerifyOptions
from test_eval_support import ScriptedEngine

BUGGY = """import datetime


def add_item(item, items=[]):
    items.append(item)
    return items


def handlers():
    out = []
    for i in range(3):
        out.append(lambda: i)
    return out


def load(path):
    try:
        f = open(path)
        return f.read()
    except Exception:
        pass


class Point:
    def __eq__(self, other):
        return True


def year(text):
    return datetime.datetime.strptime(text, "%Y")


def drop_negatives(numbers):
    for n in numbers:
        if n < 0:
            numbers.remove(n)
    return numbers
"""


def test_it_finds_bugs_of_the_kinds_held_out_reports_had_and_says_where() -> None:
    found = {(f.code, f.line + 1) for f in analyzer.analyze(BUGGY, "app.py")}
    assert {
        ("B006", 4),  # a mutable default
        ("B023", 12),  # a late-binding closure
        ("SIM115", 18),  # a file opened without `with`
        ("BLE001", 20),  # a blind except
        ("S110", 20),  # an exception swallowed by `pass`
        ("PLW1641", 24),  # __eq__ without __hash__
        ("DTZ007", 30),  # a naive datetime
        ("B909", 36),  # a list changed while a loop goes through it
    } <= found
    # ruff's preview rules come only when named: none of the others (open without encoding)
    assert not {code for code, _ in found} & {"PLW1514"}


def test_style_and_unused_imports_are_not_findings() -> None:
    code = "import os\nimport sys\n\n\ndef f( x ):\n    y=[a for a in x]\n    return y\n"
    assert analyzer.analyze(code) == []


def test_near_keeps_what_touches_the_lines_or_the_next_ones() -> None:
    found = analyzer.analyze(BUGGY, "app.py")
    assert [f.code for f in analyzer.near(found, 4, 6)] == ["B006"]  # lines 5-7, 0-based 4-6
    assert analyzer.near(found, 7, 8) == []


def test_no_ruff_means_no_findings_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(analyzer, "_ruff", lambda: None)
    assert analyzer.analyze(BUGGY) == []


def request(text: str, start: int, end: int, note: str | None = None) -> tasks.CodeRequest:
    return tasks.CodeRequest(
        text=text, path="app.py", start_line=start, end_line=end, language="python", note=note
    )


def test_the_model_is_told_what_the_analyzer_found_on_the_lines_it_reviews() -> None:
    engine = ScriptedEngine(["unused"])
    prepared = tasks.prepare(
        tasks.TaskKind.FEEDBACK, request(BUGGY, 3, 5), engine, max_new_tokens=200
    )
    question = prepared.messages[-1].content
    assert "A linter reports" in question
    assert "line 4: Do not use mutable data structures for argument defaults (B006)" in question
    assert "B023" not in question  # a finding elsewhere in the file is not this code's
    assert [f.code for f in prepared.findings] == ["B006"]
    clean = tasks.prepare(
        tasks.TaskKind.FEEDBACK, request(BUGGY, 8, 12), engine, max_new_tokens=200
    )
    assert "B006" not in clean.messages[-1].content and "B023" in clean.messages[-1].content
    explain = tasks.prepare(
        tasks.TaskKind.EXPLAIN, request(BUGGY, 3, 5), engine, max_new_tokens=200
    )
    assert "linter" not in explain.messages[-1].content and explain.findings == ()


def test_no_findings_no_hint_section() -> None:
    code = "def mean(xs):\n    return sum(xs) / (len(xs) - 1)\n"
    prepared = tasks.prepare(
        tasks.TaskKind.FIX, request(code, 0, 1), ScriptedEngine(["x"]), max_new_tokens=200
    )
    assert "linter" not in prepared.messages[-1].content and prepared.findings == ()


KEEPS = "def add_item(item, items=[]):\n    items.append(item)\n    return list(items)\n"
CLEARS = (
    "def add_item(item, items=None):\n"
    "    items = [] if items is None else items\n"
    "    items.append(item)\n"
    "    return items\n"
)


def test_a_fix_that_clears_the_finding_outranks_answers_that_agree_on_one_that_keeps_it() -> None:
    # No example says what is right, so no check decides: two answers (the draft and a sample)
    # agree on a fix that keeps the mutable default; one sample clears it.
    samples = iter([KEEPS, CLEARS, KEEPS, KEEPS])

    def reply(messages: list[ChatMessage]) -> str:
        asked = messages[-1].content
        if "Write " in asked and "assert statements" in asked:
            return "no tests"  # the model's own tests: none usable
        if "Reply with only the whole corrected code" in asked:
            return f"```python\n{next(samples, KEEPS)}```"
        return f"It returns a copy, so callers cannot change the list.\n```python\n{KEEPS}```"

    engine = ScriptedEngine(reply)
    req = request(BUGGY.split("\n\n\ndef handlers")[0] + "\n", 3, 5, note="it remembers old items")
    prepared = tasks.prepare(tasks.TaskKind.FIX, req, engine, max_new_tokens=200)
    verified = pipeline.run(
        tasks.TaskKind.FIX,
        req,
        engine,
        prepared,
        GenerationSettings(max_new_tokens=200),
        options=VerifyOptions(time_budget_s=60, candidates=3),
    )
    tried = {c.outcome.fix: c for c in verified.candidates}
    assert tried[CLEARS.rstrip("\n")].assessment.lint == 1
    assert tried[KEEPS.rstrip("\n")].assessment.lint == 0
    assert tried[KEEPS.rstrip("\n")].votes >= 2
    assert verified.chosen is not None
    assert verified.candidates[verified.chosen].outcome.fix == CLEARS.rstrip("\n")
