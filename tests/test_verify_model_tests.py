"""Reading the tests the model writes: whole asserts only, from whole or cut answers."""

from __future__ import annotations

from starchat_lsp.verify import model_tests

NAMES = ["median"]


def codes(answer: str, *, cut: bool = False) -> list[str]:
    return [check.code for check in model_tests.parse(answer, NAMES, cut=cut)]


def test_the_asserts_of_the_block_that_call_the_function() -> None:
    answer = (
        "```python\nassert median([1, 2, 3]) == 2\nassert other(1) == 1\n"
        "assert median([1, 2]) == 1.5\nassert median([1, 2]) == 1.5\nprint(median([1]))\n```"
    )
    assert codes(answer) == ["assert median([1, 2, 3]) == 2", "assert median([1, 2]) == 1.5"]


def test_a_cut_answer_loses_its_last_line_even_when_it_parses() -> None:
    # Stopped midway (with the draft's end): "== 35.0" arrived as "== 3", which parses.
    answer = "```python\nassert median([1, 2, 3]) == 2\nassert median([10, 60]) == 3"
    assert codes(answer, cut=True) == ["assert median([1, 2, 3]) == 2"]
    assert codes(answer) == ["assert median([1, 2, 3]) == 2", "assert median([10, 60]) == 3"]


def test_a_cut_assert_over_several_lines_is_dropped_and_the_rest_kept() -> None:
    answer = "```python\nassert median([1, 2, 3]) == 2\nassert median([4, 5, 6]) == (\n    5\n"
    assert codes(answer, cut=True) == ["assert median([1, 2, 3]) == 2"]


def test_at_most_max_tests() -> None:
    lines = "\n".join(f"assert median([{i}]) == {i}" for i in range(10))
    assert len(codes(f"```python\n{lines}\n```")) == model_tests.MAX_TESTS
