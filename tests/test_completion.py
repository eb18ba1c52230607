"""Completion without a server: where to complete, how the answer is cleaned, the cache."""

from __future__ import annotations

import pytest

from starchat_lsp import completion
from starchat_lsp.context import syntax
from starchat_lsp.context.completion_cleaning import clean_completion
from starchat_lsp.context.completion_scope import Scope, completion_scope
from starchat_lsp.engine.base import CancelFlag, CompletionPrompt, GenerationSettings, TextStream
from test_eval_support import ScriptedEngine


def at(marked: str) -> tuple[str, int]:
    """Text with `|` marking the cursor -> (text, offset)."""
    offset = marked.index("|")
    return marked.replace("|", "", 1), offset


@pytest.mark.parametrize(
    ("marked", "language", "scope"),
    [
        ("def f(x):|\n", "python", Scope.BLOCK),
        ("def f(x):\n    |\n", "python", Scope.BLOCK),
        ("|", "python", Scope.BLOCK),
        ("total = |\n", "python", Scope.LINE),
        ("x = foo(|)\n", "python", Scope.LINE),
        ("s = 'ab|'\n", "python", Scope.LINE),
        ("x = fo|o\n", "python", Scope.NONE),  # inside a word
        ("x = foo(a|)\n", "python", Scope.NONE),  # mid-expression
        ("print(x)|  # note\n", "python", Scope.NONE),  # code follows
        ("# compute the mean|\n", "python", Scope.NONE),  # in a comment
        ("function f() {|}\n", "javascript", Scope.BLOCK),  # an empty body
        ("const x = [1, |];\n", "javascript", Scope.LINE),
        ("// a comment|\n", "javascript", Scope.NONE),
        ("héllo 😀 = |\n", "python", Scope.LINE),
        ("notes|\n", None, Scope.LINE),  # no grammar: text decides
        ("\n|\n", None, Scope.BLOCK),
    ],
)
def test_scope_is_decided_by_the_text_and_syntax_around_the_cursor(
    marked: str, language: str | None, scope: Scope
) -> None:
    text, offset = at(marked)
    assert completion_scope(text, offset, language) is scope


def test_syntax_nodes_are_found_by_utf8_bytes_after_non_ascii_text() -> None:
    # 'é' is 2 bytes, '😀' is 4 (and 2 UTF-16 units): a byte/char mix-up lands in the comment
    text = "s = 'é😀' # c\n"
    inside_string = text.index("😀") + 1
    assert syntax.node_types_at(text, "python", inside_string)[0] == "string_content"
    assert "comment" in syntax.node_types_at(text, "python", len(text) - 1)


def clean(raw: str, marked: str, language: str | None = "python") -> str:
    text, offset = at(marked)
    return clean_completion(raw, text, offset, completion_scope(text, offset, language), language)


def test_a_block_keeps_the_body_and_stops_at_the_next_definition() -> None:
    raw = "\n    return sum(xs) / len(xs)\n\ndef other():\n    pass\n"
    assert clean(raw, "def mean(xs):|\n") == "\n    return sum(xs) / len(xs)"


def test_a_block_stops_where_the_code_leaves_the_cursors_indentation() -> None:
    raw = "y = x * 2\n    return y\nprint(f(1))\n"
    assert clean(raw, "def f(x):\n    |\n") == "y = x * 2\n    return y"


def test_fences_and_special_tokens_go_and_the_restated_header_too() -> None:
    raw = "```python\ndef f(x):\n    return x * 2\n```<|im_end|>"
    assert clean(raw, "def f(x):\n    |\n") == "return x * 2"
    assert clean("x + 1<|endoftext|>", "y = |\n") == "x + 1"


def test_a_line_stops_before_the_text_after_the_cursor() -> None:
    assert clean("1, 2)\ny = 3", "x = foo(|)\n") == "1, 2"
    assert clean("total(xs)\n", "result = |\n") == "total(xs)"


def test_the_line_being_completed_is_not_repeated() -> None:
    assert clean("result = total(xs)", "result = |\n") == "total(xs)"


def test_a_block_does_not_repeat_the_code_after_the_cursor() -> None:
    raw = "y += x\n    return y\n"
    assert clean(raw, "def f(x):\n    y = 1\n    |\n    return y\n") == "y += x"


def test_a_block_that_breaks_the_syntax_is_trimmed_or_dropped() -> None:
    assert clean("return x * 2 +\n", "def f(x):\n    |\n") == ""
    raw = "y = x * 2\n    return (y\n"
    assert clean(raw, "def f(x):\n    |\n") == "y = x * 2"


def test_javascript_empty_body_gets_its_statements_not_a_second_brace() -> None:
    assert clean("\n  return 1;\n}\n", "function f() {|}\n", "javascript") == "\n  return 1;"


def test_nothing_survives_in_a_none_scope() -> None:
    text, offset = at("x = fo|o\n")
    assert clean_completion("bar", text, offset, Scope.NONE, "python") == ""


def count_words(text: str) -> int:
    return len(text.split())


def test_context_keeps_whole_lines_nearest_the_cursor_within_the_budget() -> None:
    prefix = "".join(f"line{i} a b\n" for i in range(100)) + "cur"
    suffix = "sor\n" + "".join(f"after{i} c\n" for i in range(100))
    before, after = completion._fit(prefix, suffix, count_words, 40)
    assert before.endswith("line99 a b\ncur") and after.startswith("sor\nafter0 c")
    assert count_words(before) + count_words(after) <= 40
    assert before.split("\n")[0].startswith("line") and after.split("\n")[-1].startswith("after")
    assert count_words(before) > count_words(after)  # more room before the cursor than after


def test_the_window_keeps_its_first_line_while_the_cursor_line_grows() -> None:
    lines = "".join(f"line{i} a b c\n" for i in range(300))
    suffix = "\n" + "".join(f"after{i} c\n" for i in range(300))
    firsts = set()
    for typed in ("x", "x y", "x y z", "x y z w", "x y z w v"):
        before, after = completion._fit(lines + typed, suffix, count_words, 400)
        assert before.endswith("line299 a b c\n" + typed)
        assert count_words(before) + count_words(after) <= 400
        first = int(before.split(" ")[0].removeprefix("line"))
        assert first % completion.WINDOW_STEP == 0
        firsts.add(first)
    # The beginning of the prompt stays (its KV cache is reused), but for a step at most when
    # the shrinking room crosses one: five keystrokes cost about one line of room.
    assert len(firsts) <= 2 and max(firsts) - min(firsts) <= completion.WINDOW_STEP
    # The text after the cursor stays whole while the cursor's line grows (its KV cache moves).
    afters = {completion._fit(lines + t, suffix, count_words, 400)[1] for t in ("x", "x y z w v")}
    assert len(afters) == 1


def test_the_window_keeps_its_end_while_the_cursor_moves_down_or_a_line_is_added() -> None:
    text = "".join(f"line{i} a b c\n" for i in range(300))
    ends = set()
    for cursor in range(150, 158):  # the cursor at the start of each of 8 lines in turn
        offset = len("".join(f"line{i} a b c\n" for i in range(cursor)))
        before, after = completion._fit(text[:offset], text[offset:], count_words, 400)
        assert count_words(before) + count_words(after) <= 400
        assert count_words(after) <= 200  # at most half the budget
        left_out = text[offset:].count("\n") - after.count("\n")
        assert left_out % completion.WINDOW_STEP == 0  # a step from the file's end
        ends.add(after.rsplit("\n", 1)[-1])
    # One step crossed at most in 8 lines (the quarter of the budget after the cursor ends on
    # one line or the next).
    assert len(ends) <= 2
    # Enter at a line's end: the same text after the cursor, one line further down.
    offset = len("".join(f"line{i} a b c\n" for i in range(150))) - 1
    typed = text[:offset] + "\n" + text[offset:]
    assert (
        completion._fit(text[:offset], text[offset:], count_words, 400)[1]
        == completion._fit(typed[: offset + 1], typed[offset + 1 :], count_words, 400)[1]
    )


@pytest.mark.parametrize(
    ("prefix", "blank"),
    [
        ("def f(x):\n    return ", " "),
        ("x = foo(a,\t", "\t"),
        ("total =  ", "  "),
        ("def f(x):\n    ", ""),  # indentation: the line has nothing else yet
        ("x = 1", ""),
        ("", ""),
    ],
)
def test_blanks_typed_after_text_are_healed(prefix: str, blank: str) -> None:
    assert completion._blank_at_cursor(prefix) == blank


class Filling(ScriptedEngine):
    """Fills in the middle with the next reply, and keeps the prompts."""

    prompts: list[CompletionPrompt]

    @property
    def fill_in_middle(self) -> bool:
        return True

    def complete(
        self,
        prompt: CompletionPrompt,
        settings: GenerationSettings,
        cancel: CancelFlag | None = None,
    ) -> TextStream:
        self.prompts = [*getattr(self, "prompts", []), prompt]
        return self.chat([], settings, cancel)


@pytest.mark.parametrize(
    ("line", "answer", "inserted"),
    [
        ("    return |", " len(xs)", "len(xs)"),
        ("    return |", "(xs)", "(xs)"),
        ("    return  |", " len(xs)", "len(xs)"),  # two typed, one written
    ],
)
def test_the_model_is_asked_from_before_a_typed_blank(
    line: str, answer: str, inserted: str
) -> None:
    engine = Filling([answer])
    text, offset = at(f"def size(xs):\n{line}\n")
    found = completion.complete(
        engine,
        text,
        offset,
        language="python",
        path="size.py",
        scope=Scope.LINE,
        max_new_tokens=16,
        max_context_tokens=256,
        flag=CancelFlag(),
    )
    assert engine.prompts[0].prefix.endswith("    return")
    # The blank the model wrote again is the user's: taken off; an answer without one is kept.
    assert found.text == inserted


def test_the_nearest_comment_above_is_the_instruction() -> None:
    text = "# unrelated\n\n\n\n\n\n\n\n\n\n\n\n# return the largest even number\ndef f(xs):\n    \n"
    assert completion.nearest_instruction(text, "python", 14) == ("return the largest even number")
    assert completion.nearest_instruction("x = 1\n\n", "python", 1) is None


def test_cache_answers_the_same_place_and_typing_through_an_answer() -> None:
    cache = completion.CompletionCache(size=2)
    cache.put("m", "x = ", "\n", "foo(1)")
    assert cache.get("m", "x = ", "\n") == "foo(1)"
    assert cache.get("m", "x = fo", "\n") == "o(1)"  # typed the first letters of the answer
    assert cache.get("m", "x = fa", "\n") is None  # typed something else
    assert cache.get("m", "x = foo(1)", "\n") is None  # accepted whole: ask afresh
    assert cache.get("other", "x = ", "\n") is None  # another model
    assert cache.get("m", "x = ", "\n# more") is None  # the text after the cursor changed
    cache.put("m", "a", "", "1")
    cache.put("m", "b", "", "2")  # the oldest entry goes
    assert cache.get("m", "x = ", "\n") is None


def test_a_fence_that_closes_code_mid_line_ends_the_completion() -> None:
    assert clean("x + 1```\nThis adds one.", "y = |\n") == "x + 1"


def test_a_classic_item_is_a_snippet_that_inserts_the_text_exactly() -> None:
    from starchat_lsp.features.completion import _snippet

    assert _snippet("cost = f'${x}' \\ 2") == "cost = f'\\${x\\}' \\\\ 2"
