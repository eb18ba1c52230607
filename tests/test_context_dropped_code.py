"""What a Python fix drops but still uses is put back; what it no longer uses stays out."""

from __future__ import annotations

from starchat_lsp.context.dropped_code import restore

SELECTION = """import sys
from collections import deque

_LIMIT = 3


def _clip(xs):
    return list(xs)[:_LIMIT]


def smallest(xs):
    best = sys.maxsize
    for x in _clip(xs):
        if x > best:
            best = x
    return best
"""
FIX = """def smallest(xs):
    best = sys.maxsize
    for x in _clip(xs):
        if x < best:
            best = x
    return best"""


def test_the_imports_helpers_and_constants_the_fix_still_uses_come_back_ahead_of_it() -> None:
    assert restore(SELECTION, FIX) == (
        "import sys\n\n\n_LIMIT = 3\n\n\n"  # deque is not used: it stays out
        "def _clip(xs):\n    return list(xs)[:_LIMIT]\n\n\n" + FIX
    )


def test_what_the_fix_defines_itself_is_not_doubled() -> None:
    fix = "import sys\n\n\ndef _clip(xs):\n    return xs\n\n\n" + FIX
    assert restore(SELECTION, fix) == fix


def test_a_fix_that_kept_everything_or_uses_nothing_of_it_is_left_alone() -> None:
    assert restore(SELECTION, SELECTION) == SELECTION
    plain = "def smallest(xs):\n    return min(xs)"
    assert restore(SELECTION, plain) == plain


def test_code_inside_a_class_or_that_does_not_parse_is_left_alone() -> None:
    method = "    def f(self):\n        return sys.maxsize\n"
    assert restore("    import sys\n" + method, method) == method
    assert restore(SELECTION, "def smallest(xs:\n") == "def smallest(xs:\n"


def test_decorators_come_back_with_their_function() -> None:
    selection = (
        "import functools\n\n\n@functools.cache\ndef fib(n):\n    return n\n\n\n"
        "def g(n):\n    return fib(n) + 1\n"
    )
    fix = "def g(n):\n    return fib(n)"
    assert restore(selection, fix).startswith("import functools\n\n\n@functools.cache\ndef fib(n):")
