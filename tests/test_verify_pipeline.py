"""The verification pipeline's mechanics: candidates, checks in the sandbox, ranking, cancel.

Scripted answers make the ranking cases exact; the tiny model drives the real engine for
sampling and cancellation. Candidate code runs only in the sandbox's child processes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from starchat_lsp import sandbox, tasks
from starchat_lsp.engine.base import (
    CancelFlag,
    ChatMessage,
    Engine,
    GenerationSettings,
    StopReason,
)
from starchat_lsp.engine.transformers_engine import TransformersEngine
from starchat_lsp.verify import pipeline
from starchat_lsp.verify.pipeline import Stage, VerifyOptions
from test_eval_support import ScriptedEngine

CODE = '''def mean(xs):
    """The average of xs."""
    return sum(xs) / (len(xs) + 1)
'''
NOTE = "mean([2, 4]) gives 2.0 instead of 3.0"
GOOD = '''def mean(xs):
    """The average of xs."""
    return sum(xs) / len(xs)
'''
WRONG = '''def mean(xs):
    """The average of xs."""
    return sum(xs) / (len(xs) + 2)
'''


def block(code: str, prose: str = "Here is the fix.") -> str:
    return f"{prose}\n```python\n{code}```"


def request(note: str | None = NOTE, code: str = CODE) -> tasks.CodeRequest:
    last = len(code.rstrip("\n").split("\n")) - 1
    return tasks.CodeRequest(
        text=code, path="stats.py", start_line=0, end_line=last, language="python", note=note
    )


def verify(
    engine: Engine,
    req: tasks.CodeRequest,
    options: VerifyOptions | None = None,
    stages: list[Stage] | None = None,
    cancel: CancelFlag | None = None,
    settings: GenerationSettings | None = None,
) -> pipeline.Verified:
    settings = settings or GenerationSettings(max_new_tokens=200)
    prepared = tasks.prepare(tasks.TaskKind.FEEDBACK, req, engine, max_new_tokens=200)
    flag = cancel or CancelFlag()
    return pipeline.run(
        tasks.TaskKind.FEEDBACK,
        req,
        engine,
        prepared,
        settings,
        options=options or VerifyOptions(candidates=4, time_budget_s=60),
        cancel=flag,
        on_stage=(stages.append if stages is not None else lambda stage: None),
    )


def test_a_sampled_fix_that_passes_the_users_example_replaces_an_unchanged_draft() -> None:
    renamed = "def average(xs):\n    return sum(xs) / len(xs)\n"
    engine = ScriptedEngine(
        [
            block(CODE, "The bug is on line 3."),  # the draft hands the code back unchanged
            block(renamed),  # renames the function
            block(WRONG),  # changes the wrong thing
            block(GOOD, "It divided by one too many: line 3 now divides by len(xs)."),
        ]
    )
    stages: list[Stage] = []
    verified = verify(engine, request(), stages=stages)
    assert [c.code for c in verified.evidence] == ["assert mean([2, 4]) == 3.0"]
    assert verified.chosen == 3 and verified.verified
    assert verified.verdict == (
        "verified: passes the example from your message; 1 of them failed before the fix"
    )
    outcome = verified.outcome
    assert outcome.applicable and outcome.new_text == GOOD
    assert outcome.lines == [2]  # the changed line: where the diagnostics go
    # The sample's code, said to be another fix than the draft's (its reasons are the draft's)
    assert outcome.answer.startswith("Checked fix (another than the first answer's")
    assert "```python\n" + GOOD in outcome.answer
    assert len(engine.calls) == 4  # the draft and three samples, asked at once; no explanation
    problems = [c.assessment.problems for c in verified.candidates]
    assert problems[0] == ["the proposed code is the same as yours"]
    assert problems[1] == ["mean is missing from the fix"]
    assert verified.candidates[2].assessment.failed[0][0].code == "assert mean([2, 4]) == 3.0"
    assert verified.candidates[2].assessment.failed[0][1].endswith("(got 1.5)")  # what it gave
    # the samples were asked with the example as a check to pass
    assert "assert mean([2, 4]) == 3.0" in engine.calls[1][-1].content
    names = [s.name for s in stages]
    assert names[:2] == ["evidence", "sampling"] and names[-1] == "done"


def test_a_draft_that_passes_every_check_is_kept() -> None:
    # The samples were drawn with it (one batch); the answer the user read as it streamed stays.
    engine = ScriptedEngine([block(GOOD, "Line 3 divides by len + 1."), block(WRONG), block(WRONG)])
    verified = verify(engine, request(), VerifyOptions(candidates=3))
    assert len(engine.calls) == 3
    assert verified.chosen == 0 and verified.verified
    assert verified.outcome.answer.startswith("Line 3 divides")


def test_a_check_that_only_says_what_is_wrong_does_not_stop_the_search() -> None:
    note = "but mean([2, 4]) returns 2.0"  # says what is wrong, not what is right
    engine = ScriptedEngine([block(WRONG, "Line 3."), block(GOOD), "No tests."])
    verified = verify(engine, request(note=note), VerifyOptions(candidates=2, time_budget_s=60))
    assert [c.code for c in verified.evidence] == ["assert mean([2, 4]) != 2.0"]
    assert len(verified.candidates) == 2  # the draft passed it, and the sample was checked too
    assert not verified.verified
    assert verified.verdict.startswith("checked: passes the example from your message")


def test_votes_decide_between_unchecked_fixes_and_duplicates_are_merged() -> None:
    spaced = GOOD.replace("sum(xs) / len(xs)", "sum(xs)/len(xs)  # fixed")  # the same tree
    engine = ScriptedEngine(
        [
            block(WRONG, "Line 3."),
            block(GOOD),
            block(spaced),
            "I can't write tests for this.",  # asked for tests: none usable
        ]
    )
    verified = verify(engine, request(note=None), VerifyOptions(candidates=3, time_budget_s=60))
    assert verified.evidence == [] and verified.generated == []
    assert [c.votes for c in verified.candidates] == [1, 2]
    assert verified.chosen == 1
    assert verified.verdict.startswith("not verified: no examples found")
    assert not verified.verified


def test_tests_the_model_writes_order_fixes_when_the_user_gave_none() -> None:
    tests = (
        "```python\nassert mean([2, 4]) == 3.0\nassert mean([1]) == 1.0\n"
        "assert helper(1) == 2\nprint(mean([3]))\n```"  # the last two are not usable tests
    )
    engine = ScriptedEngine([block(WRONG, "Line 3."), block(GOOD), tests])
    verified = verify(engine, request(note=None), VerifyOptions(candidates=2, time_budget_s=60))
    assert [c.code for c in verified.generated] == [
        "assert mean([2, 4]) == 3.0",
        "assert mean([1]) == 1.0",
    ]
    # the tests were asked from the contract: the buggy body is not shown
    asked = engine.calls[2][-1].content
    assert '"""The average of xs."""' in asked and "len(xs) + 1" not in asked
    assert [c.assessment.generated_passed for c in verified.candidates] == [0, 2]
    assert verified.chosen == 1
    assert (
        "it passes 2 of 2 tests the model wrote from the docstring and your note"
        in verified.verdict
    )
    # Both fail on the user's code: they reproduce the bug, and the verdict shows one.
    assert [len(c.assessment.reproduced_passed) for c in verified.candidates] == [0, 2]
    assert verified.verdict.endswith(
        "reproduced the bug with `assert mean([2, 4]) == 3.0` (a test the model wrote, which "
        "fails on your code), and the fix passes it"
    )
    assert not verified.verified  # the model's own tests are no proof


def test_a_test_that_reproduces_the_bug_outweighs_one_that_the_buggy_code_passes_too() -> None:
    # The model's tests: the first passes on anything; the second (wrong) passes on the buggy
    # code and on the draft; the third fails on the buggy code: it reproduces the bug. The draft
    # and the sample pass two each; the sample passes the reproducing one, and wins.
    odd = CODE.replace("(len(xs) + 1)", "max(len(xs), 3)")
    tests = (
        "```python\nassert mean([0, 0]) == 0.0\nassert mean([3, 3]) == 2.0\n"
        "assert mean([6]) == 6.0\n```"
    )
    engine = ScriptedEngine([block(odd, "Line 3."), block(GOOD), tests])
    verified = verify(engine, request(note=None), VerifyOptions(candidates=2, time_budget_s=60))
    draft, sample = verified.candidates
    assert draft.assessment.generated_passed == sample.assessment.generated_passed == 2
    assert not draft.assessment.reproduced_passed
    assert [c.code for c in sample.assessment.reproduced_passed] == ["assert mean([6]) == 6.0"]
    assert verified.chosen == 1
    assert "reproduced the bug with `assert mean([6]) == 6.0`" in verified.verdict


def test_code_handed_back_unchanged_gets_a_second_look_that_says_so() -> None:
    # The draft and the sample both hand the code back: nothing can be offered. The model is
    # asked again, told that changing nothing does not fix it; that fix is checked.
    engine = ScriptedEngine(
        [
            block(CODE, "Line 3 looks fine to me."),
            block(CODE),
            block(GOOD, "Line 3 divides by one too many; it should divide by len(xs)."),
            block(WRONG),
        ]
    )
    stages: list[Stage] = []
    options = VerifyOptions(candidates=2, time_budget_s=60)
    verified = verify(engine, request(), options, stages=stages)
    assert len(engine.calls) == 4  # draft and sample, then the second look: greedy and a sample
    asked = engine.calls[2]
    assert engine.calls[3] == asked
    # A fresh feedback prompt, not a follow-up: shown its own answer, the model repeats it.
    assert [m.role for m in asked] == ["system", "user"]
    said = asked[-1].content
    assert "A first try did not fix the bug:\n- Changing nothing does not fix it" in said
    assert NOTE in said and "Tell me what is wrong and on which line" in said
    assert verified.second_from == 1  # the two unchanged answers were one candidate
    assert verified.chosen == 1 and verified.verified
    assert verified.outcome.new_text == GOOD
    assert verified.outcome.answer.startswith("A second look (the first answer's fix did not do")
    assert "Line 3 divides by one too many" in verified.outcome.answer
    assert "second-look" in [stage.name for stage in stages]
    assert verified.phases["second-look"] >= 0


def test_a_fix_that_fails_the_users_example_is_shown_what_it_got() -> None:
    engine = ScriptedEngine([block(WRONG, "Line 3."), block(WRONG), block(GOOD, "Line 3.")])
    options = VerifyOptions(candidates=2, time_budget_s=60)
    verified = verify(engine, request(), options)
    said = engine.calls[2][-1].content
    # what was tried (the lines the draft changed) and what it did
    assert "-    return sum(xs) / (len(xs) + 1)\n+    return sum(xs) / (len(xs) + 2)\n" in said
    assert "That change did not fix the bug:\n" in said
    assert "- It still fails `assert mean([2, 4]) == 3.0` (got 1.5).\n" in said
    assert verified.chosen == 1 and verified.verified


def test_no_second_look_when_nothing_says_the_fix_is_wrong() -> None:
    # No example from the user: the model's own tests (none here) never start a second look.
    engine = ScriptedEngine([block(WRONG, "Line 3."), block(WRONG), "No tests."])
    options = VerifyOptions(candidates=2, time_budget_s=60)
    verified = verify(engine, request(note=None), options)
    assert len(engine.calls) == 3 and verified.second_from is None
    assert verified.chosen == 0


def test_a_second_look_that_fails_too_offers_nothing_and_says_why() -> None:
    engine = ScriptedEngine([block(CODE, "Line 3.")])  # every answer hands the code back
    verified = verify(engine, request(), VerifyOptions(candidates=2, time_budget_s=60))
    assert len(engine.calls) == 4 and verified.chosen is None
    assert not verified.outcome.applicable
    assert verified.verdict.startswith("no fix passed the checks")


def test_a_fix_that_hangs_is_not_run_on_the_checks_after_the_first_that_times_out() -> None:
    hangs = GOOD.replace("    return", "    while True:\n        pass\n    return")
    note = "mean([2, 4]) gives 2.0 instead of 3.0, and mean([1]) gives 0.5 instead of 1.0"
    engine = ScriptedEngine([block(hangs, "Line 3."), block(GOOD)])
    limits = sandbox.Limits(time_s=1.0)
    options = VerifyOptions(candidates=2, time_budget_s=60, limits=limits)
    verified = verify(engine, request(note=note), options)
    assert len(verified.evidence) == 2
    failed = verified.candidates[0].assessment.failed
    assert [check.code for check, _ in failed] == [c.code for c in verified.evidence]
    assert failed[1][1] == f"not run: `{failed[0][0].code}` timed out before it"
    assert verified.chosen == 1 and verified.verified


def test_the_draft_then_the_smaller_diff_wins_among_equals() -> None:
    rewrite = "def mean(xs):\n    total = 0\n    for x in xs:\n        total += x\n" + (
        "    return total / len(xs)\n"
    )
    engine = ScriptedEngine(
        [block(rewrite, "Line 3."), block(rewrite.replace("total", "t")), block(GOOD), "No tests."]
    )
    verified = verify(engine, request(note=None), VerifyOptions(candidates=3, time_budget_s=60))
    assert [c.assessment.changed_lines for c in verified.candidates] == [4, 4, 1]
    assert verified.chosen == 0  # the greedy answer is the likelier one
    engine = ScriptedEngine([block(CODE, "Line 3."), block(rewrite), block(GOOD), "No tests."])
    verified = verify(engine, request(note=None), VerifyOptions(candidates=3, time_budget_s=60))
    assert verified.chosen == 2  # the draft changed nothing: the smaller of the two samples


def test_parameters_are_kept_unless_the_user_asks() -> None:
    extra = GOOD.replace("def mean(xs):", "def mean(xs, default=0):")
    engine = ScriptedEngine([block(extra, "Line 3.")])
    options = VerifyOptions(candidates=1)
    kept = verify(engine, request(note=None), options)
    assert kept.candidates[0].assessment.problems == ["the fix changes the parameters of mean"]
    assert kept.chosen is None and not kept.outcome.applicable
    assert kept.verdict in kept.outcome.problems
    asked = verify(engine, request(note="add a default parameter for empty lists"), options)
    assert asked.chosen == 0 and asked.outcome.applicable


def test_a_fix_that_does_not_load_loses(tmp_path: Path) -> None:
    broken = GOOD.replace("return sum(xs) / len(xs)", "return sum(xs) / len(xs)\nundefined_name")
    engine = ScriptedEngine([block(broken, "Line 3."), block(GOOD), "No tests."])
    verified = verify(engine, request(note=None), VerifyOptions(candidates=2, time_budget_s=60))
    assert verified.candidates[0].assessment.loads is False
    assert verified.chosen == 1


def test_candidate_code_runs_only_in_the_sandbox(tmp_path: Path) -> None:
    marker = tmp_path / "written"
    escapes = GOOD + f"open({str(marker)!r}, 'w').write('x')\n"  # outside its folder
    exits = GOOD + "__import__('os')._exit(3)\n"  # would end this very process if run here
    engine = ScriptedEngine([block(escapes, "Line 3."), block(exits), block(GOOD), block(GOOD)])
    verified = verify(engine, request())
    assert not marker.exists()  # refused by the sandbox, and never run in this process
    assert [c.assessment.loads for c in verified.candidates] == [False, False, True]
    assert verified.chosen == 2 and verified.verified  # and this process is here to say so


def test_not_python_gets_static_checks_only() -> None:
    js = "function mean(xs) {\n  return xs.reduce((a, b) => a + b, 0) / (xs.length + 1);\n}\n"
    fixed = js.replace("(xs.length + 1)", "xs.length")
    engine = ScriptedEngine([f"Line 2.\n```javascript\n{fixed}```"])
    req = tasks.CodeRequest(
        text=js, path="mean.js", start_line=0, end_line=2, language="javascript", note=NOTE
    )
    verified = verify(engine, req, VerifyOptions(candidates=1))
    assert verified.evidence == []
    assert verified.chosen == 0
    assert verified.verdict.startswith("not verified (checks run only for Python)")


def test_code_that_does_not_load_alone_is_not_run() -> None:
    code = "import not_a_module_here\n\n" + CODE
    engine = ScriptedEngine([block(GOOD, "Line 5.")])
    req = tasks.CodeRequest(
        text=code, path="stats.py", start_line=2, end_line=4, language="python", note=NOTE
    )
    verified = verify(engine, req, VerifyOptions(candidates=1))
    assert verified.evidence == []
    assert "your code does not load on its own" in verified.verdict
    assert "not_a_module_here" in verified.verdict


# --- the real engine on the tiny model ---------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tiny_chatml_model: Path) -> Iterator[Engine]:
    engine = TransformersEngine(str(tiny_chatml_model), dtype="float32")
    engine.load()
    yield engine
    engine.close()


def test_samples_on_the_real_engine_stay_within_budget(tiny: Engine) -> None:
    options = VerifyOptions(candidates=3, time_budget_s=60)
    settings = GenerationSettings(max_new_tokens=24)
    verified = verify(tiny, request(), options, settings=settings)
    assert verified.draft_result.tokens_out == 24  # the tiny model never ends by itself
    # Its answers have no fix: a second look asks as many again, and no more.
    assert verified.second_from == 3
    assert len(verified.candidates) == 6
    assert sum(c.votes for c in verified.candidates) == 6
    assert 6 * 24 >= verified.tokens_out >= 24  # 24 tokens at most each
    assert verified.evidence  # the note's example was found and run against each candidate


def test_cancel_stops_the_whole_pipeline(tiny: Engine) -> None:
    flag = CancelFlag()
    stages: list[Stage] = []
    options = VerifyOptions(candidates=50, time_budget_s=600)
    settings = GenerationSettings(max_new_tokens=400)
    found: list[pipeline.Verified] = []

    def run() -> None:
        found.append(verify(tiny, request(), options, stages, flag, settings))

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 120
    while not any(s.name == "sampling" for s in stages) and time.monotonic() < deadline:
        time.sleep(0.01)  # wait until the draft and the samples have been asked for
    assert any(s.name == "sampling" for s in stages)
    flag.cancel()
    worker.join(timeout=120)  # a hang guard only: it stops within a token or one sandbox run
    assert not worker.is_alive()
    verified = found[0]
    assert len(verified.candidates) < 50  # it stopped, not at the end of its 50 samples
    # the model is free: the next request is served
    result = tiny.chat([ChatMessage("user", "hi")], GenerationSettings(max_new_tokens=2)).finish()
    assert result.stop_reason is StopReason.LENGTH


def test_a_fix_starts_from_the_feedback_prompt_and_takes_the_code_after_the_reasons() -> None:
    # Asked for code only, small models hand buggy code back unchanged far more often than when
    # they first say what is wrong; a fix must be as good as the feedback on the same code.
    engine = ScriptedEngine([block(GOOD, "Line 3 divides by len(xs) + 1; it must be len(xs).")])
    req = request()
    fix = tasks.prepare(tasks.TaskKind.FIX, req, engine, max_new_tokens=200)
    feedback = tasks.prepare(tasks.TaskKind.FEEDBACK, req, engine, max_new_tokens=200)
    assert fix.messages == feedback.messages
    assert "what is wrong" in fix.messages[-1].content
    result = engine.chat(fix.messages, GenerationSettings(max_new_tokens=200)).finish()
    outcome = tasks.conclude(tasks.TaskKind.FIX, req, fix, result)
    assert outcome.new_text == GOOD and not outcome.problems
    assert outcome.lines == [2]  # 0-based: the line the reasons name, the one the fix changes
