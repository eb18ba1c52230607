"""Our shipped prompt set is well formed, and its tests judge code correctly: they pass on the
reference solution, fail on the buggy code, and fail on a stub."""

from __future__ import annotations

import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from starchat_lsp.eval.prompt_sets import (
    EvalPrompt,
    PromptSetError,
    load_prompts,
    shipped_prompts_path,
)
from starchat_lsp.sandbox import Limits, run_python_tests

ROOT = Path(__file__).parent.parent
SHIPPED = load_prompts(shipped_prompts_path())
RUNNABLE = [p for p in SHIPPED if p.runnable]
QUICK = Limits(time_s=5, memory_mb=512)


def test_the_set_has_the_mix_the_issue_asks_for() -> None:
    kinds = Counter(p.type for p in SHIPPED)
    assert len(SHIPPED) >= 80
    assert kinds["bug_feedback"] * 4 == len(SHIPPED)  # one quarter bug feedback
    languages = Counter(p.language for p in SHIPPED)
    assert languages["python"] > len(SHIPPED) / 2
    assert {"cpp", "javascript", "html", "sql"} <= set(languages)


def test_every_python_prompt_with_an_entry_point_has_tests_and_a_reference() -> None:
    for prompt in SHIPPED:
        if prompt.language == "python" and prompt.entry_point:
            assert prompt.tests and "assert" in prompt.tests, prompt.id
            assert prompt.reference, prompt.id
    assert len(RUNNABLE) >= 60


def test_bug_feedback_prompts_speak_as_the_author() -> None:
    for prompt in SHIPPED:
        if prompt.type == "bug_feedback":
            assert prompt.code
            assert any(word in f" {prompt.prompt} " for word in (" I ", " my ", " I'm ")), prompt.id


def _check(prompt: EvalPrompt) -> list[str]:
    assert prompt.tests is not None and prompt.reference is not None
    problems = []
    result = run_python_tests(prompt.reference, prompt.tests, prompt.entry_point, QUICK)
    if result.status != "pass":
        problems.append(f"{prompt.id}: the reference does not pass: {result.detail}")
    if prompt.type == "bug_feedback":
        assert prompt.code is not None
        buggy = run_python_tests(prompt.code, prompt.tests, prompt.entry_point, Limits(time_s=2))
        if buggy.status == "pass":
            problems.append(f"{prompt.id}: the buggy code passes the tests")
    stub = f"def {prompt.entry_point}(*args, **kwargs):\n    return None\n"
    if prompt.entry_point and prompt.entry_point[0].isupper():
        stub = (
            f"class {prompt.entry_point}:\n    def __init__(self, *args, **kwargs):\n        pass\n"
        )
    if run_python_tests(stub, prompt.tests, prompt.entry_point, QUICK).status == "pass":
        problems.append(f"{prompt.id}: a do-nothing stub passes the tests")
    return problems


def test_the_tests_pass_on_references_and_fail_on_bugs_and_stubs() -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        problems = [p for found in pool.map(_check, RUNNABLE) for p in found]
    assert problems == []


def test_the_prompts_ship_in_the_package() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"starchat_lsp.eval" = ["prompts/*.jsonl"]' in pyproject
    assert shipped_prompts_path().parent.name == "prompts"


def _write(tmp_path: Path, *lines: object) -> Path:
    path = tmp_path / "set.jsonl"
    path.write_text(
        "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines), encoding="utf-8"
    )
    return path


GOOD = {"id": "a", "type": "instruction", "language": "python", "prompt": "Write f."}


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([GOOD, "{not json"], "set.jsonl:2: not JSON"),
        ([{**GOOD, "prompt": ""}], "'prompt' is empty"),
        ([{k: v for k, v in GOOD.items() if k != "id"}], "missing 'id'"),
        ([GOOD, GOOD], "the id 'a' is used twice"),
        ([{**GOOD, "type": "essay"}], "type must be one of"),
        ([{**GOOD, "type": "bug_feedback"}], "needs the buggy 'code'"),
        ([{**GOOD, "entry_point": "f"}], "needs 'tests'"),
        ([[1, 2]], "must be a JSON object"),
        ([""], "has no prompts"),
    ],
)
def test_bad_prompt_files_are_refused_with_the_line(
    tmp_path: Path, lines: list[object], message: str
) -> None:
    with pytest.raises(PromptSetError, match=message.replace("(", r"\(")):
        load_prompts(_write(tmp_path, *lines))


def test_type_and_limit_choose_prompts(tmp_path: Path) -> None:
    bug = {**GOOD, "id": "b", "type": "bug_feedback", "code": "x = 1"}
    path = _write(tmp_path, GOOD, bug, {**GOOD, "id": "c"})
    assert [p.id for p in load_prompts(path, "instruction")] == ["a", "c"]
    assert [p.id for p in load_prompts(path, limit=1)] == ["a"]
    with pytest.raises(PromptSetError, match="no bug_feedback prompts"):
        load_prompts(_write(tmp_path, GOOD), "bug_feedback")


def test_the_note_kind_is_kept_and_optional(tmp_path: Path) -> None:
    bug = {**GOOD, "type": "bug_feedback", "code": "x = 1", "note_kind": "prose", "extra": 1}
    loaded = load_prompts(_write(tmp_path, bug, {**bug, "id": "b", "note_kind": None}))
    assert [p.note_kind for p in loaded] == ["prose", None]
    assert loaded[0].as_dict()["note_kind"] == "prose"  # carried into a run folder
    assert "note_kind" not in loaded[1].as_dict()  # fields the line doesn't have stay out


def test_the_shared_sample_format_loads_without_a_type(tmp_path: Path) -> None:
    sample = {"id": "s", "language": "python", "prompt": "Review it.", "code": "x = 1"}
    assert load_prompts(_write(tmp_path, sample))[0].type == "bug_feedback"
