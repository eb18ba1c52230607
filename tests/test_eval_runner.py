"""Runs answer as the editor asks, record as they go, and resume without redoing work."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from starchat_lsp.engine.base import ChatMessage
from starchat_lsp.eval import records, runner
from starchat_lsp.eval.prompt_sets import EvalPrompt
from test_eval_support import ScriptedEngine

BUGGY = "def double(x):\n    return x + x + 1"
FIXED_ANSWER = "Line 2 adds one too many.\n\n```python\ndef double(x):\n    return x + x\n```\n"
PROMPTS = [
    EvalPrompt(
        id=f"p{i}",
        type="instruction",
        language="python",
        prompt=f"Write double(x), number {i}.",
        entry_point="double",
        tests="assert double(2) == 4",
    )
    for i in range(5)
]
BUG = EvalPrompt(
    id="bug",
    type="bug_feedback",
    language="python",
    prompt="I wrote this and double(2) gives 5.",
    code=BUGGY,
    entry_point="double",
    tests="assert double(2) == 4",
)
SETTINGS = runner.RunSettings(max_new_tokens=64)


class Interrupted(Exception):
    pass


def test_a_bug_feedback_prompt_is_asked_like_the_editor_asks(tmp_path: Path) -> None:
    engine = ScriptedEngine([FIXED_ANSWER])
    runner.prepare_folder(tmp_path, ["m"], [BUG], SETTINGS)
    runner.answer_all(tmp_path, "m", engine, [BUG], SETTINGS)
    user = engine.calls[0][-1].content
    assert user.startswith("I wrote this Python code and it has a bug")
    assert "double(2) gives 5" in user
    assert "2 |     return x + x + 1" in user  # the feedback prompt's numbered lines
    record = records.read_records(tmp_path / records.ANSWERS)[0]
    assert record["code"] == "def double(x):\n    return x + x"
    assert record["check"]["status"] == "pass"
    assert record["metrics"]["tokens_per_s"] == 4.0


def test_code_ending_with_a_newline_is_fixed_whole(tmp_path: Path) -> None:
    prompt = dataclasses.replace(BUG, code=BUGGY + "\n")  # as files end
    runner.prepare_folder(tmp_path, ["m"], [prompt], SETTINGS)
    runner.answer_all(tmp_path, "m", ScriptedEngine([FIXED_ANSWER]), [prompt], SETTINGS)
    record = records.read_records(tmp_path / records.ANSWERS)[0]
    assert record["code"] == "def double(x):\n    return x + x\n"
    assert record["check"]["status"] == "pass"


def test_an_instruction_is_asked_with_the_instruction_prompt(tmp_path: Path) -> None:
    answer = "Here:\n```python\ndef double(x):\n    return 3 * x\n```\n```bash\npython a.py\n```"
    engine = ScriptedEngine([answer])
    runner.prepare_folder(tmp_path, ["m"], PROMPTS[:1], SETTINGS)
    runner.answer_all(tmp_path, "m", engine, PROMPTS[:1], SETTINGS)
    assert engine.calls[0][-1].content.endswith(
        "Reply with the Python code in one ```python block."
    )
    record = records.read_records(tmp_path / records.ANSWERS)[0]
    assert record["code"] == "def double(x):\n    return 3 * x"
    assert record["check"]["status"] == "fail"


def test_an_answer_without_code_is_an_error_and_untested_prompts_have_no_check(
    tmp_path: Path,
) -> None:
    sql = EvalPrompt(id="q", type="instruction", language="sql", prompt="Count the rows.")
    engine = ScriptedEngine(["I can't help with that."])
    runner.prepare_folder(tmp_path, ["m"], [PROMPTS[0], sql], SETTINGS)
    runner.answer_all(tmp_path, "m", engine, [PROMPTS[0], sql], SETTINGS)
    first, second = records.read_records(tmp_path / records.ANSWERS)
    assert first["check"] == {
        "status": "error",
        "detail": "no code in the answer",
        "duration_s": 0.0,
    }
    assert second["check"] is None


def test_an_interrupted_run_resumes_without_redoing_answers(tmp_path: Path) -> None:
    answer = "```python\ndef double(x):\n    return 2 * x\n```"
    runner.prepare_folder(tmp_path, ["m"], PROMPTS, SETTINGS)

    def stop_after_two(answered: runner.Answered) -> None:
        if answered.prompt.id == "p1":
            raise Interrupted

    first = ScriptedEngine([answer])
    with pytest.raises(Interrupted):
        runner.answer_all(tmp_path, "m", first, PROMPTS, SETTINGS, stop_after_two)
    # A run killed while writing leaves half a line: it is not an answer.
    with (tmp_path / records.ANSWERS).open("a") as file:
        file.write('{"candidate": "m", "prompt_id": "p2", "ans')
    todo = runner.pending(tmp_path, "m", PROMPTS)
    assert [p.id for p in todo] == ["p2", "p3", "p4"]

    second = ScriptedEngine([answer])
    runner.prepare_folder(tmp_path, ["m"], PROMPTS, SETTINGS)
    runner.answer_all(tmp_path, "m", second, todo, SETTINGS)
    assert len(second.calls) == 3
    answered = [r["prompt_id"] for r in records.read_records(tmp_path / records.ANSWERS)]
    assert answered == ["p0", "p1", "p2", "p3", "p4"]
    assert runner.pending(tmp_path, "m", PROMPTS) == []


def test_a_second_candidate_is_added_to_the_folder(tmp_path: Path) -> None:
    runner.prepare_folder(tmp_path, ["a"], PROMPTS[:2], SETTINGS)
    runner.prepare_folder(tmp_path, ["b", "a"], PROMPTS[:3], SETTINGS)
    assert runner.run_candidates(tmp_path) == ["a", "b"]
    assert [p.id for p in runner.run_prompts(tmp_path)] == ["p0", "p1", "p2"]
    assert runner.run_prompts(tmp_path)[0] == PROMPTS[0]


def test_resuming_with_other_settings_is_refused(tmp_path: Path) -> None:
    runner.prepare_folder(tmp_path, ["m"], PROMPTS, SETTINGS)
    with pytest.raises(runner.RunFolderError, match="other settings"):
        runner.prepare_folder(tmp_path, ["m"], PROMPTS, runner.RunSettings(max_new_tokens=99))


def test_records_are_whole_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    records.append_record(path, {"a": 1})
    path.write_text(path.read_text() + '{"cut')  # a crash mid-line
    records.append_record(path, {"b": "é\n"})
    assert records.read_records(path) == [{"a": 1}, {"b": "é\n"}]
    assert [json.loads(line) for line in path.read_text().splitlines() if "cut" not in line]


def test_messages_are_chat_messages() -> None:
    engine = ScriptedEngine(lambda messages: messages[-1].content)
    answer = runner.answer_prompt(engine, PROMPTS[0], SETTINGS)
    assert isinstance(engine.calls[0][0], ChatMessage)
    assert "Write double(x), number 0." in answer.result.text


def test_the_plain_baseline_gets_no_analyzer_hints_and_the_checked_fix_asks_its_own_draft() -> None:
    code = "def add(item, items=[]):\n    items.append(item)\n    return items"
    bug = EvalPrompt(
        id="defaults",
        type="bug_feedback",
        language="python",
        prompt="add(1) twice gives [1, 1].",
        code=code,
        entry_point="add",
        tests="assert add(1) == [1]\nassert add(1) == [1]",
    )
    answer = "The default list is shared.\n```python\n" + code + "\n```\n"
    plain_engine = ScriptedEngine([answer])
    runner.answer_prompt(plain_engine, bug, SETTINGS)
    assert "linter" not in plain_engine.calls[0][-1].content
    checked_engine = ScriptedEngine(lambda messages: answer)
    runner.answer_prompt(checked_engine, bug, SETTINGS, verify=True)
    # The product's draft has the analyzer's hints.
    assert "B006" in checked_engine.calls[0][-1].content
