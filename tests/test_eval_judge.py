"""The judge sees both orders, reads scores from the first line only, and never guesses."""

from __future__ import annotations

from pathlib import Path

import pytest

from starchat_lsp.engine.base import ChatMessage, GenerationSettings
from starchat_lsp.eval import judge, records, runner
from starchat_lsp.eval.judge_prompt import parse_scores
from starchat_lsp.eval.prompt_sets import EvalPrompt
from test_eval_support import ScriptedEngine

PROMPTS = [
    EvalPrompt(id="p1", type="instruction", language="python", prompt="Write add(a, b)."),
    EvalPrompt(
        id="p2", type="bug_feedback", language="python", prompt="I wrote this.", code="x = 1"
    ),
]
SETTINGS = GenerationSettings(max_new_tokens=64)


def folder_with_answers(path: Path, candidates: list[str]) -> Path:
    runner.prepare_folder(path, candidates, PROMPTS, runner.RunSettings())
    for name in candidates:
        for prompt in PROMPTS:
            records.append_record(
                path / records.ANSWERS,
                {"candidate": name, "prompt_id": prompt.id, "answer": f"answer of {name}"},
            )
    return path


@pytest.mark.parametrize(
    ("text", "count", "expected"),
    [
        ("7 5\nBecause...", 2, [7, 5]),
        ("**Assistant 1: 7/8, Assistant 2: 5/8**", 2, [7, 5]),
        ("\n  Scores: 6, 3\n", 2, [6, 3]),
        ("Assistant 1 scores 8 and Assistant 2 scores 2", 2, [8, 2]),
        ("6.5 4", 2, [6.5, 4]),
        ("5", 1, [5]),
        ("Score: 5 out of 8", 1, [5]),
        # never guessed: prose, wrong scale, wrong count, scores only after the first line
        ("The first answer uses 2 loops and 3 variables.", 2, None),
        ("9 3", 2, None),
        ("6/10 7/10", 2, None),
        ("7 5 3", 2, None),
        ("7 5", 1, None),
        ("Both answers are good.\n7 5", 2, None),
        ("", 2, None),
    ],
)
def test_scores_are_read_from_the_first_line(
    text: str, count: int, expected: list[float] | None
) -> None:
    assert parse_scores(text, count) == expected


def test_two_candidates_are_judged_in_both_orders(tmp_path: Path) -> None:
    out = folder_with_answers(tmp_path, ["a", "b"])
    engine = ScriptedEngine(["7 4\nThe first is better."])
    todo = judge.pending(out, "j", judge.plan(out))
    assert [(t.prompt.id, t.order) for t in todo] == [
        ("p1", "AB"),
        ("p1", "BA"),
        ("p2", "AB"),
        ("p2", "BA"),
    ]
    judge.judge_all(out, "j", engine, todo, SETTINGS)
    first, second = engine.calls[0][-1].content, engine.calls[1][-1].content
    assert first.index("answer of a") < first.index("answer of b")
    assert second.index("answer of b") < second.index("answer of a")
    assert "```python\nx = 1\n```" in engine.calls[2][-1].content  # the buggy code is shown
    saved = records.read_records(out / records.JUDGMENTS)
    assert saved[0]["scores"] == {"a": 7, "b": 4}
    assert saved[1]["scores"] == {"b": 7, "a": 4}  # the first shown got 7 both times
    assert judge.pending(out, "j", judge.plan(out)) == []


def test_one_candidate_gets_single_answer_scores(tmp_path: Path) -> None:
    out = folder_with_answers(tmp_path, ["a"])
    engine = ScriptedEngine(["6\nFine."])
    judge.judge_all(out, "j", engine, judge.plan(out), SETTINGS)
    saved = records.read_records(out / records.JUDGMENTS)
    assert [(r["order"], r["scores"]) for r in saved] == [("A", {"a": 6}), ("A", {"a": 6})]
    assert "the assistant's answer" in engine.calls[0][-1].content


def test_a_malformed_answer_is_retried_once_then_recorded_unparsed(tmp_path: Path) -> None:
    out = folder_with_answers(tmp_path, ["a"])
    engine = ScriptedEngine(["Both are nice.", "Really nice, I promise."])
    task = judge.plan(out)[0]
    record = judge.judge_one(engine, task, SETTINGS)
    assert record["status"] == "unparsed"
    assert record["scores"] is None
    assert record["attempts"] == 2
    assert record["raw"] == ["Both are nice.", "Really nice, I promise."]
    retry = engine.calls[1]
    assert retry[-2] == ChatMessage("assistant", "Both are nice.")
    assert "first line must be only" in retry[-1].content


def test_a_retry_that_answers_well_is_used(tmp_path: Path) -> None:
    out = folder_with_answers(tmp_path, ["a", "b"])
    engine = ScriptedEngine(["I think A.", "8 2\nA is right."])
    record = judge.judge_one(engine, judge.plan(out)[0], SETTINGS)
    assert (record["status"], record["scores"], record["attempts"]) == (
        "parsed",
        {"a": 8, "b": 2},
        2,
    )


def test_another_judge_is_not_mixed_in(tmp_path: Path) -> None:
    out = folder_with_answers(tmp_path, ["a"])
    tasks = judge.plan(out)
    judge.judge_all(out, "first-judge", ScriptedEngine(["5"]), tasks[:1], SETTINGS)
    assert len(judge.pending(out, "first-judge", tasks)) == 1
    with pytest.raises(judge.JudgeError, match="already has judgments by first-judge"):
        judge.pending(out, "other-judge", tasks)


def test_a_folder_without_answers_is_refused(tmp_path: Path) -> None:
    with pytest.raises(judge.JudgeError, match="not a run folder"):
        judge.plan(tmp_path)
    runner.prepare_folder(tmp_path, ["a"], PROMPTS, runner.RunSettings())
    with pytest.raises(judge.JudgeError, match="no answers to judge"):
        judge.plan(tmp_path)
