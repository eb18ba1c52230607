"""The report's numbers, checked against ones worked out by hand for a fixed run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from starchat_lsp.eval import records, report, runner
from starchat_lsp.eval.prompt_sets import EvalPrompt
from starchat_lsp.eval.scores import summarize, verification_summaries

PROMPTS = [
    EvalPrompt(id="p1", type="instruction", language="python", prompt="Write f.", tests="pass"),
    EvalPrompt(id="p2", type="instruction", language="sql", prompt="Count rows."),
    EvalPrompt(
        id="p3",
        type="bug_feedback",
        language="python",
        prompt="I wrote g.",
        code="g = 1",
        tests="pass",
        difficulty="easy",
        bug_lines=(1,),
        category="off-by-one",
        note_kind="prose",
    ),
]


def answer(
    name: str,
    prompt: str,
    status: str | None,
    tps: float,
    ttft: float | None,
    stop: str = "eos",
    lines: tuple[int, ...] = (),
) -> Any:
    check = {"status": status, "detail": "", "duration_s": 0.1} if status else None
    metrics = {"tokens_per_s": tps, "time_to_first_token_s": ttft, "stop_reason": stop}
    return {
        "candidate": name,
        "prompt_id": prompt,
        "answer": "…",
        "check": check,
        "metrics": metrics,
        "lines": list(lines),
        "seconds": tps / 10,
    }


ANSWERS = [
    answer("A", "p1", "pass", 10, 1.0),
    answer("A", "p2", None, 20, 2.0),
    answer("A", "p3", "fail", 30, 3.0, stop="length", lines=(1, 2)),  # cut by the token limit
    answer("B", "p1", "error", 5, 0.5),
    answer("B", "p2", None, 0, None),  # no token came: no speed, no first token
    answer("B", "p3", "pass", 15, 1.5, lines=(2,)),  # fixed, but named another line
]


def judged(prompt: str, order: str, scores: dict[str, float] | None) -> Any:
    shown = ["A", "B"] if order == "AB" else ["B", "A"]
    return {
        "judge": "J",
        "prompt_id": prompt,
        "order": order,
        "shown": shown,
        "status": "parsed" if scores else "unparsed",
        "scores": scores,
    }


JUDGMENTS = [
    judged("p1", "AB", {"A": 7, "B": 4}),
    judged("p1", "BA", {"B": 5, "A": 6}),  # A 6.5, B 4.5: A wins; both orders say A
    judged("p2", "AB", {"A": 6, "B": 6}),
    judged("p2", "BA", {"B": 7, "A": 5}),  # A 5.5, B 6.5: A loses; a tie, then B: disagree
    judged("p3", "AB", None),  # unparsed: left out
    judged("p3", "BA", {"B": 8, "A": 8}),  # a tie, judged in one order only
]


def test_summary_numbers_match_the_hand_computed_ones() -> None:
    prompts = [p.as_dict() for p in PROMPTS]
    summary = summarize(["A", "B"], prompts, ANSWERS, JUDGMENTS)
    a, b = summary.candidates
    assert a.mean_score == pytest.approx(32 / 5)  # 7 6 6 5 8
    assert b.mean_score == pytest.approx(30 / 5)  # 4 5 6 7 8
    assert a.scores_by_category["language: python"] == [7, 6, 8]
    assert b.scores_by_category["language: sql"] == [6, 7]
    assert a.scores_by_category["type: bug_feedback"] == [8]
    pair = summary.pair
    assert pair is not None
    assert (pair.wins, pair.ties, pair.losses) == (1, 1, 1)
    assert (pair.agreement.count, pair.agreement.total) == (1, 2)
    assert dict(pair.first_shown) == {"higher": 2, "lower": 1, "equal": 2}
    assert (summary.judgments, summary.unparsed, summary.judge) == (6, 1, "J")
    assert (a.tests["pass"], a.tests["fail"], a.tested, a.pass_rate) == (1, 1, 2, 0.5)
    assert (b.tests["pass"], b.tests["error"], b.pass_rate) == (1, 1, 0.5)
    assert a.tests_by_category["type: instruction"]["pass"] == 1
    assert a.tests_by_category["type: bug_feedback"]["fail"] == 1
    assert a.tests_by_category["category: off-by-one"]["fail"] == 1
    assert b.tests_by_category["note: prose"]["pass"] == 1
    assert a.tokens_per_s == [10, 20, 30]
    assert b.tokens_per_s == [5, 15]
    assert b.time_to_first_token_s == [0.5, 1.5]
    assert (a.cut, b.cut) == (1, 0)


@pytest.fixture
def run_folder(tmp_path: Path) -> Path:
    runner.prepare_folder(tmp_path, ["A", "B"], PROMPTS, runner.RunSettings())
    for record in ANSWERS:
        records.append_record(tmp_path / records.ANSWERS, record)
    for record in JUDGMENTS:
        records.append_record(tmp_path / records.JUDGMENTS, record)
    return tmp_path


def test_the_written_report_shows_those_numbers(run_folder: Path) -> None:
    written = report.write_report(run_folder)
    assert [p.name for p in written] == ["report.md", "report.html", "scores.png"]
    markdown = (run_folder / "report.md").read_text()
    for expected in [
        "| A | 6.40 | 5 | 3 |",
        "| B | 6.00 | 5 | 3 |",
        "| language: python | 7.00 (n=3) | 5.67 (n=3) |",
        "| language: sql | 5.50 (n=2) | 6.50 (n=2) |",
        "| 33.3% (1/3) | 33.3% (1/3) | 33.3% (1/3) | 3 |",
        "Win rate of A over B without ties: 50.0% (1/2)",
        "same winner or both a tie): 50.0% (1/2)",
        "scored higher in 40.0% (2/5) of judgments, lower in 20.0% (1/5)",
        "| A | all | 1 | 1 | 0 | 0 | 50.0% (1/2) | 100.0% (1/1) |",
        "| A | type: bug_feedback | 0 | 1 | 0 | 0 | 0.0% (0/1) | 100.0% (1/1) |",
        "| A | difficulty: easy | 0 | 1 | 0 | 0 | 0.0% (0/1) | 100.0% (1/1) |",
        "| B | all | 1 | 0 | 1 | 0 | 50.0% (1/2) | 0.0% (0/1) |",
        "| B | difficulty: easy | 1 | 0 | 0 | 0 | 100.0% (1/1) | 0.0% (0/1) |",
        "| B | type: instruction | 0 | 0 | 1 | 0 | 0.0% (0/1) |  |",
        "| A | category: off-by-one | 0 | 1 | 0 | 0 | 0.0% (0/1) | 100.0% (1/1) |",
        "| group | A | B |",  # the pass rates side by side
        "| all | 50.0% (1/2) | 50.0% (1/2) |",
        "| category: off-by-one | 0.0% (0/1) | 100.0% (1/1) |",
        "| note: prose | 0.0% (0/1) | 100.0% (1/1) |",
        "| type: instruction | 100.0% (1/1) | 0.0% (0/1) |",
        "| A | 20.0 | 2.00 | 2.00 | 2.0 | 33.3% (1/3) |",  # seconds: 1, 2, 3
        "| B | 10.0 | 1.00 | 1.00 | 0.5 | 0.0% (0/3) |",  # seconds: 0.5, 0, 1.5
        "unparsed (dropped, never guessed): 1",
        "| p1 | instruction | python | pass | 6.5 | error | 4.5 |",
        "![Score distribution](scores.png)",
    ]:
        assert expected in markdown, expected
    page = (run_folder / "report.html").read_text()
    assert "<td>6.40</td>" in page and '<img src="scores.png"' in page
    assert (run_folder / "scores.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_report_before_judging_has_no_chart(tmp_path: Path) -> None:
    runner.prepare_folder(tmp_path, ["A"], PROMPTS, runner.RunSettings())
    records.append_record(tmp_path / records.ANSWERS, ANSWERS[0])
    written = report.write_report(tmp_path)
    assert [p.name for p in written] == ["report.md", "report.html"]
    assert "Judge: not judged yet" in (tmp_path / "report.md").read_text()


def test_an_empty_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(report.ReportError, match="not a run folder"):
        report.write_report(tmp_path)


def test_a_verify_candidate_is_compared_with_the_plain_one_of_its_model() -> None:
    def record(name: str, prompt: str, seconds: float, verdict: str | None, chosen: int = 0) -> Any:
        found: dict[str, Any] = {"candidate": name, "prompt_id": prompt, "seconds": seconds}
        if verdict is not None:
            found["verification"] = {"verdict": verdict, "chosen": chosen}
        return found

    answers = [
        record("m", "p1", 2.0, None),
        record("m", "p2", 4.0, None),
        record("m+verify", "p1", 6.0, "verified: passes the example from your message"),
        record("m+verify", "p2", 8.0, "not verified: no examples found", chosen=2),
    ]
    (found,) = verification_summaries(["m", "m+verify"], answers)
    assert (found.name, found.plain) == ("m+verify", "m")
    assert found.time_ratios == [3.0, 2.0]
    assert (found.seconds, found.plain_seconds) == (14.0, 6.0)
    assert found.verdicts == {"verified": 1, "not verified": 1}
    assert found.chose_the_draft == 1
    assert verification_summaries(["m+verify"], answers) == []  # no plain run to compare with
    section = report._verification_section(found)
    assert "median 2.50x, min 2.00x, max 3.00x; all answers together 2.33x" in section.lines[0]
