from lsprotocol import types

from starchat_lsp.features.feedback_diagnostics import after_change, summary


def on_line(line: int) -> types.Diagnostic:
    return types.Diagnostic(
        range=types.Range(
            start=types.Position(line=line, character=0), end=types.Position(line=line, character=9)
        ),
        message="bug",
        source="starchat",
    )


def edit(first: int, last: int, text: str) -> types.TextDocumentContentChangePartial:
    return types.TextDocumentContentChangePartial(
        range=types.Range(
            start=types.Position(line=first, character=0),
            end=types.Position(line=last, character=0),
        ),
        text=text,
    )


def lines(diagnostics: list[types.Diagnostic]) -> list[int]:
    return [d.range.start.line for d in diagnostics]


def test_a_change_on_a_diagnostic_line_clears_it() -> None:
    assert lines(after_change([on_line(2), on_line(5)], [edit(2, 2, "x = 1")])) == [5]


def test_lines_added_above_move_diagnostics_down() -> None:
    assert lines(after_change([on_line(2), on_line(5)], [edit(0, 0, "a\nb\n")])) == [4, 7]


def test_lines_removed_above_move_diagnostics_up() -> None:
    assert lines(after_change([on_line(5)], [edit(0, 2, "")])) == [3]


def test_a_change_below_leaves_them_alone() -> None:
    assert lines(after_change([on_line(1)], [edit(4, 4, "more\n")])) == [1]


def test_a_full_replacement_clears_all() -> None:
    full = types.TextDocumentContentChangeWholeDocument(text="new")
    assert after_change([on_line(1)], [full]) == []


def test_summary_is_the_first_sentence_of_prose() -> None:
    answer = "```python\nx = 1\n```\nThe loop stops one early. Use len(values) + 1.\n"
    assert summary(answer) == "The loop stops one early."
