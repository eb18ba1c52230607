"""Evidence: the checks we read out of the user's message, the docstrings and workspace tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from starchat_lsp.verify import evidence
from starchat_lsp.verify.evidence import Check

NAMES = ["moving_average", "strip_scheme"]


@pytest.mark.parametrize(
    ("note", "code", "kind"),
    [
        (
            "moving_average([1, 2, 3, 4], 2) gives [1.5, 2.5] instead of [1.5, 2.5, 3.5]",
            "assert moving_average([1, 2, 3, 4], 2) == [1.5, 2.5, 3.5]",
            "expects",
        ),
        (
            "`moving_average([2, 4], 2)` should return [3.0].",
            "assert moving_average([2, 4], 2) == [3.0]",
            "expects",
        ),
        (
            "strip_scheme('https://example.com') works, but "
            "strip_scheme('https://photos.example.com') returns 'otos.example.com'. Why?",
            "assert strip_scheme('https://photos.example.com') != 'otos.example.com'",
            "not",
        ),
        ("moving_average([], 3) crashes with ZeroDivisionError", "moving_average([], 3)", "runs"),
        (
            "calling moving_average([1], 1) returns `[]` but should be `[1.0]`",
            "assert moving_average([1], 1) == [1.0]",
            "expects",
        ),
        (  # what it gives in one sentence, what it should give in the next
            "When I run `moving_average([2, 4], 2)` I get `[]`. It should be `[3.0]`.",
            "assert moving_average([2, 4], 2) == [3.0]",
            "expects",
        ),
        (
            "moving_average([2, 4], 1) returns [2.0], but I expected [2.0, 4.0]",
            "assert moving_average([2, 4], 1) == [2.0, 4.0]",
            "expects",
        ),
        (
            "For example moving_average([5], 1) returns [], expected [5.0]. Thanks!",
            "assert moving_average([5], 1) == [5.0]",
            "expects",
        ),
        (
            "Calling moving_average([], 2) gives me this error: ZeroDivisionError: oops",
            "moving_average([], 2)",
            "runs",
        ),
        (
            "I tried moving_average([5], 1) and got [] when I wanted [5.0]",
            "assert moving_average([5], 1) == [5.0]",
            "expects",
        ),
        (  # a generator's items, as the user saw them
            "`list(moving_average([1, 2], 1))` returns `[1.0]` instead of `[1.0, 2.0]`.",
            "assert list(moving_average([1, 2], 1)) == [1.0, 2.0]",
            "expects",
        ),
        (
            "`sorted(moving_average([3, 1], 1), key=abs)` raises `TypeError: bad operand`",
            "sorted(moving_average([3, 1], 1), key=abs)",
            "runs",
        ),
        (  # the error first, then the call; "not" inside the error message is not the user's
            "I get `TypeError: 'NoneType' object is not iterable` when I call "
            "`list(moving_average([], 2))`. Any idea?",
            "list(moving_average([], 2))",
            "runs",
        ),
        ("I get an error when calling moving_average([], 2)", "moving_average([], 2)", "runs"),
        (
            "When I call `moving_average([], 2)` I get `ZeroDivisionError: division by zero`.",
            "moving_average([], 2)",
            "runs",
        ),
    ],
)
def test_examples_in_the_users_words(note: str, code: str, kind: str) -> None:
    assert evidence.from_text(note, NAMES, "your message") == [Check(code, "your message", kind)]


@pytest.mark.parametrize(
    "note",
    [
        "it is wrong for n=1",  # no call
        "moving_average is slow",  # a name, no call
        "other_function(3) gives 4 instead of 5",  # not one of the selected functions
        "moving_average([1, 2) gives 3 instead of 4",  # the call does not parse
        "moving_average(x) gives what I typed instead of the mean",  # no literal
        "average(moving_average(x)) gives 3 instead of 4",  # an inner call: not the whole claim
        "print(moving_average([1], 1)) gives 3 instead of 4",  # print hands nothing on
        "It should raise ValueError when I call moving_average([], 0)",  # an error wanted
        "I don't get an error when I call moving_average([1], 1)",  # no error
        "There is no exception, but moving_average([1], 1) looks odd",  # the call is later
        "When I call moving_average([1], 1) I get no error, but nothing comes out",
    ],
)
def test_no_check_without_a_valid_call_and_value(note: str) -> None:
    assert evidence.from_text(note, NAMES, "your message") == []


def test_doctests_and_example_lines_in_docstrings() -> None:
    code = '''def moving_average(values, window):
    """Average of each window.

    >>> moving_average([1, 2, 3], 2)
    [1.5, 2.5]
    >>> moving_average([], 2)
    []

    moving_average([4, 4], 1) -> [4.0, 4.0]
    """
    return []
'''
    checks = evidence.from_docstrings(code, ["moving_average"])
    assert [c.code for c in checks] == [
        "assert (moving_average([1, 2, 3], 2)) == [1.5, 2.5]",
        "assert (moving_average([], 2)) == []",
        "assert moving_average([4, 4], 1) == [4.0, 4.0]",
    ]
    assert {c.source for c in checks} == {"the docstring"}


def test_docstring_checks_must_use_only_the_function_and_builtins() -> None:
    code = '''def f(x):
    """
    >>> f(helper(2))
    4
    >>> len(f([1]))
    1
    """
'''
    assert [c.code for c in evidence.from_docstrings(code, ["f"])] == ["assert (len(f([1]))) == 1"]


def test_tests_in_the_workspace_that_call_the_function(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_stats.py").write_text(
        "from stats import moving_average, other\n\n"
        "def test_it():\n"
        "    assert moving_average([1, 2], 1) == [1.0, 2.0]\n"
        "    assert other(3) == 3\n"  # not our function
        "    assert moving_average(data, 1)\n"  # uses a name we can't provide
        "    assert moving_average(\n        [2], 1\n    ) == [2.0]\n",
        encoding="utf-8",
    )
    hidden = tmp_path / ".venv" / "lib"
    hidden.mkdir(parents=True)
    (hidden / "test_x.py").write_text("assert moving_average([9], 1) == [9.0]\n")
    (tmp_path / "stats_test_data.py").write_text("assert moving_average([7], 1) == [7.0]\n")
    checks = evidence.from_workspace(tmp_path, ["moving_average"])
    assert [(c.code, c.source) for c in checks] == [
        ("assert moving_average([1, 2], 1) == [1.0, 2.0]", "tests/test_stats.py:4"),
        ("assert moving_average(\n        [2], 1\n    ) == [2.0]", "tests/test_stats.py:7"),
    ]
    assert checks[0].origin == "your tests"


def test_gather_merges_sources_without_duplicates(tmp_path: Path) -> None:
    code = '''def moving_average(values, window):
    """moving_average([1, 2], 1) should give [1.0, 2.0]."""
'''
    note = "moving_average([1, 2], 1) gives [] instead of [1.0, 2.0]"
    checks = evidence.gather(code, note, ["moving_average"], tmp_path)
    assert [(c.code, c.source) for c in checks] == [
        ("assert moving_average([1, 2], 1) == [1.0, 2.0]", "your message")
    ]
