"""Where the KV cache holds a prompt's end at another position (llamacpp_shift.plan): tokens as
numbers, no model. The real engine's use of it is in test_engine_llamacpp.py."""

from __future__ import annotations

from starchat_lsp.engine.llamacpp_shift import MAX_MIDDLE, MIN_MOVED, READ_AGAIN, Move, plan

PREFIX = list(range(1000, 1100))  # the text before the cursor's word
AFTER = list(range(2000, 2000 + 2 * MIN_MOVED))  # the text after the cursor, then the middle token
ANSWER = [7, 8, 9]  # what the last completion answered: in the cache after its prompt


def common(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def test_a_key_typed_moves_the_text_after_the_cursor_one_token_on() -> None:
    cached = [*PREFIX, 1, *AFTER, *ANSWER]
    tokens = [*PREFIX, 1, 2, *AFTER]
    move = plan(cached, tokens, common(cached, tokens))
    # Everything but the new token, the first ones after it and the prompt's last one stays.
    assert move == Move(
        kept=101, start=101 + READ_AGAIN, to=102 + READ_AGAIN, count=len(AFTER) - 1 - READ_AGAIN
    )
    assert move.shift == 1
    assert cached[move.start : move.start + move.count] == tokens[move.to : move.to + move.count]


def test_a_retokenized_word_is_read_again_and_a_deletion_moves_back() -> None:
    cached = [*PREFIX, 1, 2, 3, *AFTER]
    tokens = [*PREFIX, 4, *AFTER]  # "avera" + "g" became one other token
    move = plan(cached, tokens, common(cached, tokens))
    assert move == Move(
        kept=100, start=103 + READ_AGAIN, to=101 + READ_AGAIN, count=len(AFTER) - 1 - READ_AGAIN
    )
    assert move.shift == -2


def test_a_token_replaced_by_another_is_read_again_in_place() -> None:
    cached = [*PREFIX, 1, *AFTER]
    tokens = [*PREFIX, 2, *AFTER]  # "       " became "        ": one indentation token for another
    move = plan(cached, tokens, common(cached, tokens))
    assert move == Move(
        kept=100, start=101 + READ_AGAIN, to=101 + READ_AGAIN, count=len(AFTER) - 1 - READ_AGAIN
    )
    assert move.shift == 0


def test_nothing_to_move_when_the_end_is_short_new_or_far() -> None:
    short = AFTER[: MIN_MOVED - 1]
    assert plan([*PREFIX, 1, *short], [*PREFIX, 2, *short], 100) is None
    assert plan([*PREFIX, 1, *AFTER], PREFIX + [2] + [5000 + i for i in AFTER], 100) is None
    middle = list(range(3000, 3000 + MAX_MIDDLE + 1))  # a pasted block: read as usual
    assert plan(PREFIX + AFTER, PREFIX + middle + AFTER, 100) is None
    # A prompt that only grew (a chat's follow-up) keeps its prefix: nothing moves.
    assert plan(PREFIX + AFTER, PREFIX + AFTER + [1] * MIN_MOVED, len(PREFIX + AFTER)) is None
