from hypothesis import given
from hypothesis import strategies as st

from starchat_lsp import edits


def apply(old: str, line_edits: list[edits.LineEdit]) -> list[str]:
    lines = old.splitlines()
    for edit in reversed(line_edits):
        lines[edit.start_line : edit.end_line] = list(edit.new_lines)
    return lines


def test_fix_edit_touches_only_changed_lines() -> None:
    found = edits.line_edits("a\nb\nc\n", "a\nB\nc\n")
    assert found == [edits.LineEdit(1, 2, ("B",))]


def test_replaced_lines_are_lines_of_the_old_text() -> None:
    assert edits.replaced_lines("a\nb\nc\nd\n", "a\nx\ny\nz\nd\n") == [1, 2]
    assert edits.replaced_lines("a\nb\nc\n", "a\nc\n") == [1]
    assert edits.replaced_lines("a\nc\n", "a\nb\nc\n") == [1]
    assert edits.replaced_lines("same\n", "same\n") == []


def test_replace_lines_reindents_a_method_answered_at_column_zero() -> None:
    text = "class A:\n    def f(self):\n        return 1\n\nx = 1\n"
    fixed = "def f(self):\n    return 2"
    assert edits.replace_lines(text, 1, 2, fixed) == (
        "class A:\n    def f(self):\n        return 2\n\nx = 1\n"
    )


def test_replace_lines_keeps_crlf_and_missing_final_newline() -> None:
    assert edits.replace_lines("a\r\nb\r\nc", 1, 1, "B") == "a\r\nB\r\nc"
    assert edits.replace_lines("a\r\nb\r\n", 1, 1, "B\n") == "a\r\nB\r\n"


def test_replace_lines_refuses_a_range_outside_the_text() -> None:
    try:
        edits.replace_lines("a\nb\n", 1, 5, "x")
    except ValueError as error:
        assert "outside" in str(error)
    else:
        raise AssertionError("a range outside the text must be refused")


def test_unified_diff_is_a_patch() -> None:
    diff = edits.unified_diff("a\nb\n", "a\nc\n", "f.py")
    assert diff.splitlines() == ["--- a/f.py", "+++ b/f.py", "@@ -1,2 +1,2 @@", " a", "-b", "+c"]
    assert edits.unified_diff("same\n", "same\n", "f.py") == ""


lines = st.lists(st.sampled_from(["a", "b", "c", "  d", ""]), max_size=12)


@given(lines, lines)
def test_line_edits_turn_old_into_new(old: list[str], new: list[str]) -> None:
    old_text = "".join(f"{line}\n" for line in old)
    new_text = "".join(f"{line}\n" for line in new)
    assert apply(old_text, edits.line_edits(old_text, new_text)) == new
