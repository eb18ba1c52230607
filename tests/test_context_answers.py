from hypothesis import given
from hypothesis import strategies as st

from starchat_lsp.context.answers import (
    CodeBlock,
    code_blocks,
    pick_fix,
    referenced_lines,
    strip_line_numbers,
)
from starchat_lsp.context.prompts import number_lines

ORIGINAL = '''def count_words(text):
    """Count the words in a piece of text."""
    if not text:
        return 0
    return len(text.split(" "))'''

FIXED = '''def count_words(text):
    """Count the words in a piece of text."""
    if not text:
        return 0
    return len(text.split())'''


def test_code_blocks_with_tags_tildes_and_offsets() -> None:
    answer = "Fix:\n```python\nx = 1\n\n```\nThen run:\n~~~\n$ make\n~~~\nDone."
    blocks = code_blocks(answer)
    assert [(b.code, b.language) for b in blocks] == [("x = 1", "python"), ("$ make", None)]
    assert answer[blocks[0].start : blocks[0].end] == "```python\nx = 1\n\n```"
    assert answer[blocks[1].start : blocks[1].end] == "~~~\n$ make\n~~~"


def test_code_blocks_tolerates_a_cut_answer() -> None:
    answer = "Here:\n```js\nlet x = 1;\nlet y"
    assert code_blocks(answer) == [CodeBlock("let x = 1;\nlet y", "js", 6, len(answer))]
    # a closing fence that has only half arrived is not code
    assert code_blocks("```py\nx = 1\n``")[0].code == "x = 1"


def test_code_blocks_needs_a_matching_fence_to_close() -> None:
    answer = "````md\n```python\nx\n```\n````\n"
    assert [b.code for b in code_blocks(answer)] == ["```python\nx\n```"]
    assert code_blocks("use ```x = 1``` inline") == []


def test_code_blocks_in_a_list_item_lose_the_list_indent() -> None:
    answer = "1. Change it:\n   ```python\n   if x:\n       y()\n   ```\n"
    assert code_blocks(answer)[0].code == "if x:\n    y()"


@given(st.text())
def test_code_blocks_never_raises_and_stays_in_bounds(answer: str) -> None:
    last_end = 0
    for block in code_blocks(answer):
        assert last_end <= block.start < block.end <= len(answer)
        last_end = block.end


@given(st.text(alphabet="`~ \n\rpy=x1", max_size=60))
def test_code_blocks_on_fence_like_text(answer: str) -> None:
    for block in code_blocks(answer):
        assert answer[block.start :].lstrip(" \t")[:3] in {"```", "~~~"}


def test_pick_fix_prefers_the_fix_over_a_usage_example() -> None:
    answer = (
        f"Use `split()`:\n```python\n{FIXED}\n```\n"
        "Example:\n```python\nprint(count_words('a  b'))\n```"
    )
    assert pick_fix(answer, ORIGINAL, "python") == FIXED
    usage_first = "Try:\n```python\nprint(count_words('a  b'))\n```\n" + answer
    assert pick_fix(usage_first, ORIGINAL, "python") == FIXED


def test_pick_fix_skips_a_copy_of_the_original_and_other_languages() -> None:
    answer = (
        f"Your code:\n```python\n{ORIGINAL}\n```\nRun:\n```bash\npython -m app\n```\n"
        f"Fixed:\n```py\n{FIXED}\n```"
    )
    assert pick_fix(answer, ORIGINAL, "python") == FIXED


def test_pick_fix_counts_an_indentation_change_as_a_change() -> None:
    original = "def f(xs):\n    for x in xs:\n        return x"
    fixed = "def f(xs):\n    for x in xs:\n        pass\n    return x"
    moved = "def f(xs):\n    for x in xs:\n        pass\n        return x"
    answer = f"```python\n{moved}\n```\n```python\n{fixed}\n```"
    assert pick_fix(answer, moved, "python") == fixed
    assert pick_fix(f"```python\n{original}\n```", original) == original  # only choice


def test_pick_fix_falls_back_to_the_only_block_and_none_without_blocks() -> None:
    assert pick_fix("```\nreturn 2\n```", "return 1") == "return 2"
    assert pick_fix("The code looks fine to me.", ORIGINAL) is None


def test_pick_fix_strips_copied_line_numbers() -> None:
    answer = f"```python\n{number_lines(FIXED, 11)}\n```"
    assert pick_fix(answer, ORIGINAL, "python") == FIXED
    colons = "```python\n3: def f():\n4:     return 1\n```"
    assert pick_fix(colons, "def f():\n    return 0", "python") == "def f():\n    return 1"


def test_strip_line_numbers_leaves_real_code_alone() -> None:
    mapping = '1: "one",\n2: "two",\nx = 3'
    assert strip_line_numbers(mapping) == mapping
    skipping = "1 | a\n3 | b"
    assert strip_line_numbers(skipping) == skipping
    assert strip_line_numbers("") == ""
    later = "x = 1\n2 | y"  # only a later line looks numbered
    assert strip_line_numbers(later) == later


def test_strip_line_numbers_when_the_model_stopped_numbering() -> None:
    # smollm2-135m copies the prompt's `1 | ` onto the first line or two, then writes plain code
    copied = "1 | def f(x):\n2 |     y = x\n    return y"
    assert strip_line_numbers(copied) == "def f(x):\n    y = x\n    return y"


@given(
    st.lists(st.text(alphabet="abc (){}:|\t 0123", max_size=12), min_size=1), st.integers(0, 999)
)
def test_strip_line_numbers_undoes_number_lines(lines: list[str], first: int) -> None:
    code = "\n".join(line.rstrip() for line in lines)
    assert strip_line_numbers(number_lines(code, first)) == code


def test_referenced_lines_reads_document_line_numbers() -> None:
    answer = (
        "The bug is on line 15: it splits on single spaces. Lines 12-13 are fine, so is line 3."
    )
    # the code starts at document line 11 (0-based), shown to the model as line 12
    assert referenced_lines(answer, ORIGINAL, 11) == [11, 12, 14]
    assert referenced_lines("See line 5.", ORIGINAL, 0) == [4]


def test_referenced_lines_lists_and_ranges() -> None:
    assert referenced_lines("Look at lines 1, 3 and 5.", ORIGINAL, 0) == [0, 2, 4]
    assert referenced_lines("on line 3 and 4", ORIGINAL, 0) == [2, 3]
    assert referenced_lines("Lines 2 to 4 are wrong", ORIGINAL, 0) == [1, 2, 3]
    assert referenced_lines("lines 4\u20132", ORIGINAL, 0) == [1, 2, 3]
    assert referenced_lines("lines 1-100000", ORIGINAL, 0) == [0, 1, 2, 3, 4]


def test_referenced_lines_from_inline_code_that_names_one_line() -> None:
    answer = 'The call `return len(text.split(" "))` splits on one space; `return 0` is fine.'
    assert referenced_lines(answer, ORIGINAL, 20) == [23, 24]
    assert referenced_lines("`text` is a string", ORIGINAL, 0) == []  # matches no whole line


def test_referenced_lines_ignores_code_blocks_and_ambiguous_spans() -> None:
    code = "x = 1\nx = 1\ny = 2"
    answer = "`x = 1` appears twice.\n```python\n# line 3 changed\ny = 3\n```"
    assert referenced_lines(answer, code, 0) == []
