from hypothesis import given
from hypothesis import strategies as st

from starchat_lsp.engine.stop_strings import StopStringMatcher


def run(chunks: list[str], stops: tuple[str, ...]) -> tuple[str, str | None]:
    matcher = StopStringMatcher(stops)
    shown = "".join(matcher.feed(chunk) for chunk in chunks) + matcher.flush()
    return shown, matcher.hit


def test_stop_split_across_chunks_is_never_shown() -> None:
    matcher = StopStringMatcher(("</answer>",))
    assert matcher.feed("done </ans") == "done "
    assert matcher.feed("wer> more") == ""
    assert matcher.hit == "</answer>"
    assert matcher.flush() == ""


def test_held_back_text_is_released_when_it_is_not_a_stop() -> None:
    matcher = StopStringMatcher(("<|end|>",))
    assert matcher.feed("a <|") == "a "
    assert matcher.feed("x") == "<|x"


def test_earliest_stop_wins() -> None:
    assert run(["one STOP two END"], ("END", "STOP")) == ("one ", "STOP")


def test_flush_gives_back_a_trailing_partial_stop() -> None:
    assert run(["text <|en"], ("<|end|>",)) == ("text <|en", None)


@given(
    st.text(max_size=60), st.lists(st.integers(1, 10), max_size=10), st.text(min_size=1, max_size=4)
)
def test_any_chunking_equals_cutting_the_whole_text(text: str, cuts: list[int], stop: str) -> None:
    chunks, rest = [], text
    for cut in cuts:
        chunks.append(rest[:cut])
        rest = rest[cut:]
    chunks.append(rest)
    shown, hit = run(chunks, (stop,))
    index = text.find(stop)
    assert shown == (text if index < 0 else text[:index])
    assert hit == (None if index < 0 else stop)
