"""Instructions in code: finding them, and turning the model's code into the lines to insert."""

from __future__ import annotations

import pytest

from starchat_lsp import edits, tasks
from starchat_lsp.context.instructions import asks_for_code, code_to_insert, instruction_at
from starchat_lsp.engine.base import GenerationResult, StopReason

SOURCE = '''import os

# return the largest even number in xs

def mean(xs):
    """Return the mean of xs."""
    pass

x = 1  # make it a lot faster
# type: ignore the rest of it
'''


@pytest.mark.parametrize(
    ("text", "asks"),
    [
        ("return the largest even number in xs", True),
        ("TODO: parse the header and return its fields", True),
        ("type: ignore the rest of it", False),
        ("noqa: E501 long line here", False),
        ("x = f(a); g(b)", False),  # commented-out code
        ("sort it", False),  # too short to be an instruction
    ],
)
def test_which_comments_ask_for_code(text: str, asks: bool) -> None:
    assert asks_for_code(text) is asks


def test_a_comment_instruction_inserts_below_itself() -> None:
    found = instruction_at(SOURCE, "python", 2, 2)
    assert found is not None and not found.docstring
    assert found.text == "return the largest even number in xs"
    assert found.replace == (3, 2) and found.indent == ""  # nothing replaced, goes on line 3


def test_an_empty_function_with_a_docstring_gets_its_body_in_place_of_pass() -> None:
    for line in (4, 5, 6):  # the def line, the docstring, the `pass`
        found = instruction_at(SOURCE, "python", line, line)
        assert found is not None and found.docstring
        assert found.replace == (6, 6) and found.indent == "    "


def test_no_instruction_on_code_trailing_comments_or_directives() -> None:
    assert instruction_at(SOURCE, "python", 0, 0) is None
    assert instruction_at(SOURCE, "python", 8, 8) is None  # a comment about its own line
    assert instruction_at(SOURCE, "python", 9, 9) is None
    assert instruction_at(SOURCE, None, 2, 2) is None


def test_javascript_line_comments_are_instructions_too() -> None:
    text = "const a = 1;\n  // build a map from ids to users\n  // and return it\nfoo();\n"
    found = instruction_at(text, "javascript", 2, 2)
    assert found is not None and found.start_line == 1 and found.end_line == 2
    assert found.text == "build a map from ids to users\nand return it"
    assert found.replace == (3, 2) and found.indent == "  "


def test_code_to_insert_drops_what_repeats_the_function_and_reindents() -> None:
    found = instruction_at(SOURCE, "python", 5, 5)
    assert found is not None
    code = 'def mean(xs):\n    """Return the mean\n    of xs."""\n    return sum(xs) / len(xs)\n'
    assert code_to_insert(code, found, SOURCE) == "    return sum(xs) / len(xs)"


def test_code_to_insert_keeps_a_new_function_below_a_comment() -> None:
    found = instruction_at(SOURCE, "python", 2, 2)
    assert found is not None
    code = "# return the largest even number in xs\ndef largest(xs):\n    return max(xs)\n"
    assert code_to_insert(code, found, SOURCE) == "def largest(xs):\n    return max(xs)"


def test_insert_lines_inserts_or_replaces_and_keeps_line_endings() -> None:
    assert edits.insert_lines("a\nb\n", (1, 0), "x\ny") == "a\nx\ny\nb\n"
    assert edits.insert_lines("a\r\nb\r\n", (1, 1), "x") == "a\r\nx\r\n"
    assert edits.insert_lines("a\nb", (2, 1), "x") == "a\nb\nx"
    with pytest.raises(ValueError):
        edits.insert_lines("a\n", (3, 2), "x")


def outcome(answer: str, line: int, stop: StopReason = StopReason.EOS) -> tasks.Outcome:
    request = tasks.CodeRequest(
        text=SOURCE, path="m.py", start_line=line, end_line=line, language="python"
    )
    found = instruction_at(SOURCE, "python", line, line)
    assert found is not None
    prepared = tasks.Prepared(messages=[], context=_context(), instruction=found)
    result = GenerationResult(
        text=answer,
        stop_reason=stop,
        tokens_in=1,
        tokens_out=1,
        time_to_first_token_s=0.1,
        total_s=0.2,
    )
    return tasks.conclude(tasks.TaskKind.WRITE, request, prepared, result)


def _context() -> tasks.CodeContext:
    return tasks.CodeContext(code="", language="python", path="m.py", start_line=2, end_line=2)


def test_conclude_write_gives_the_document_with_the_code_in_place() -> None:
    done = outcome("Here:\n```python\n    return sum(xs) / len(xs)\n```\n", 5)
    assert done.applicable and done.new_text is not None
    assert "    return sum(xs) / len(xs)\n\nx = 1" in done.new_text
    assert "pass" not in done.new_text
    added = [line for line in done.diff.splitlines() if line[:1] == "+" and line[:3] != "+++"]
    assert added == ["+    return sum(xs) / len(xs)"]


def test_conclude_write_refuses_code_that_does_not_parse_or_was_cut() -> None:
    broken = outcome("```python\nreturn (sum(xs)\n```", 5)
    assert not broken.applicable and "does not parse" in " ".join(broken.problems)
    cut = outcome("```python\nreturn sum(xs)", 5, StopReason.LENGTH)
    assert not cut.applicable and "cut" in " ".join(cut.problems)
    nothing = outcome("I can't help with that.", 2)
    assert nothing.new_text is None and not nothing.applicable
