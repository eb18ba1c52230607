import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from starchat_lsp.context.budget import (
    ContextTooSmallError,
    TokenCounter,
    gather_context,
    prompt_token_budget,
    prompt_tokens,
)
from starchat_lsp.context.prompts import CodeContext

IMPORTS = (
    "import os",
    "import re",
    "from collections import Counter, OrderedDict, defaultdict, deque, namedtuple",
    "from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence",
)
DOCUMENT = (
    "\n".join(IMPORTS)
    + "\n\n\ndef scan(root):\n    '''Walk root.'''\n"
    + "".join(f"    step{i} = os.path.join(root, '{i}')\n" for i in range(40))
    + "    return step0\n"
)
# lines: 0-3 imports, 6 `def scan`, 7 docstring, 8..47 steps, 48 return


def words(text: str) -> int:
    return len(text.split())


def quarter_chars(text: str) -> int:
    return len(text) // 4


def gather(
    start: int, end: int, budget: int = 100_000, count_tokens: TokenCounter = words
) -> CodeContext:
    return gather_context(
        DOCUMENT,
        path="scan.py",
        language=None,
        start_line=start,
        end_line=end,
        count_tokens=count_tokens,
        max_prompt_tokens=budget,
    )


def test_prompt_token_budget() -> None:
    assert prompt_token_budget(2048, 512) == 2048 - 512 - 64
    assert prompt_token_budget(2048, 512, reserve=0) == 1536
    assert prompt_token_budget(256, 512) == 0


def test_gather_context_takes_selection_enclosing_definition_and_imports() -> None:
    ctx = gather(8, 9)
    assert ctx.language == "python"  # from the path
    assert ctx.code == "    step0 = os.path.join(root, '0')\n    step1 = os.path.join(root, '1')"
    assert (ctx.start_line, ctx.end_line) == (8, 9)
    assert ctx.enclosing is not None and ctx.enclosing.startswith("def scan(root):")
    assert ctx.enclosing.endswith("return step0")
    assert ctx.enclosing_start_line == 6
    assert ctx.imports == IMPORTS
    assert ctx.notes == ()


def test_a_whole_definition_has_no_enclosing_one() -> None:
    ctx = gather(6, 48)
    assert ctx.enclosing is None and ctx.enclosing_start_line is None


def test_imports_inside_the_selection_are_not_repeated() -> None:
    assert gather(0, 7).imports == ()


def test_lines_are_clamped_and_crlf_is_dropped() -> None:
    ctx = gather_context(
        "a = 1\r\nb = 2\r\n",
        path=None,
        language="python",
        start_line=-3,
        end_line=99,
        count_tokens=words,
        max_prompt_tokens=1000,
    )
    assert ctx.code == "a = 1\nb = 2\n"
    assert (ctx.start_line, ctx.end_line) == (0, 2)


def test_fitting_drops_imports_then_the_enclosing_definition_then_cuts_the_selection() -> None:
    full = gather(8, 47)
    size = prompt_tokens(full, words)

    no_imports = gather(8, 47, budget=size - 1)
    assert no_imports.imports == () and no_imports.enclosing is not None
    assert no_imports.notes == ("the file's imports were left out to fit the model's context",)

    no_enclosing = gather(8, 47, budget=prompt_tokens(no_imports, words) - 1)
    assert no_enclosing.enclosing is None and no_enclosing.code == full.code
    assert no_enclosing.notes[1] == (
        "the enclosing function `scan` was left out to fit the model's context"
    )

    cut = gather(8, 47, budget=prompt_tokens(no_enclosing, words) - 20)
    kept = cut.code.count("\n") + 1
    assert 0 < kept < 40 and full.code.startswith(cut.code)
    assert cut.end_line == 8 + kept - 1
    assert cut.notes[2] == (
        f"the selection was cut to its first {kept} of 40 lines to fit the model's context"
    )
    assert prompt_tokens(cut, words) <= prompt_tokens(no_enclosing, words) - 20


def test_a_single_long_line_is_cut_by_characters() -> None:
    text = "x = [" + ", ".join(str(i) for i in range(2000)) + "]\n"
    ctx = gather_context(
        text,
        path=None,
        language="python",
        start_line=0,
        end_line=0,
        count_tokens=quarter_chars,
        max_prompt_tokens=400,
    )
    assert text.startswith(ctx.code) and 0 < len(ctx.code) < len(text)
    assert "characters of its first line" in ctx.notes[-1]
    assert prompt_tokens(ctx, quarter_chars) <= 400


def test_a_budget_too_small_for_the_prompt_itself_raises() -> None:
    with pytest.raises(ContextTooSmallError, match="larger context"):
        gather(8, 9, budget=5)


@settings(max_examples=60, deadline=None)
@given(
    start=st.integers(0, 49),
    length=st.integers(0, 49),
    budget=st.integers(0, 900),
    counter=st.sampled_from([words, quarter_chars]),
)
def test_the_budget_is_never_exceeded_and_cuts_are_never_silent(
    start: int, length: int, budget: int, counter: TokenCounter
) -> None:
    full = gather(start, start + length, count_tokens=counter)
    try:
        ctx = gather(start, start + length, budget=budget, count_tokens=counter)
    except ContextTooSmallError:
        return
    assert prompt_tokens(ctx, counter) <= budget
    lost = (ctx.imports, ctx.enclosing, ctx.code) != (full.imports, full.enclosing, full.code)
    assert bool(ctx.notes) == lost
