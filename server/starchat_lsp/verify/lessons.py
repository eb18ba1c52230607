"""What a failed answer taught us, in words the model can act on when it is asked again.

"No empty hands": when the first answer hands the code back unchanged, does not load, or fails
a check, the samples are asked as a follow-up to that answer with what went wrong, the way a
user would reply ("that's my code again", "this still fails: ..."), instead of the first
question once more. Pure: it only reads an assessment.
"""

from __future__ import annotations

from starchat_lsp.verify.checks import Assessment
from starchat_lsp.verify.evidence import Check

MOST_FAILED = 2  # failing checks shown; more only lengthen the prompt
DETAIL_CHARS = 300  # of a failure's detail (a traceback's last lines say most)

_SAID = {
    "the proposed code is the same as yours": (
        "Your code is the same as mine, so the bug is still there."
    ),
    "the proposed code does not parse": "Your code does not parse.",
    "no corrected code in the answer": "You did not give the corrected code.",
}


def _short(detail: str) -> str:
    detail = detail.strip()
    return detail if len(detail) <= DETAIL_CHARS else "..." + detail[-DETAIL_CHARS:]


def learned(assessment: Assessment, evidence: list[Check], reproducing: list[Check]) -> list[str]:
    """What to tell the model about its answer; empty when nothing concrete went wrong.

    `evidence` are the checks from the user's note, docstrings and tests: when the answer was
    not run (it failed a static check), they are listed as what the fix must pass.
    `reproducing` are the model's tests that fail on the user's code (the report, reproduced):
    when nothing else went wrong yet one of these fails on the answer, that is said too.
    """
    said: list[str] = []
    for problem in assessment.problems:
        if problem.startswith("the answer was cut"):
            continue  # the answer's length, not its content: asking again says nothing new
        said.append(_SAID.get(problem, f"Your answer has a problem: {problem}."))
    if said:
        listed = "\n".join(check.code for check in evidence if check.kind != "runs")
        if listed:
            said.append(f"The corrected code must pass these checks:\n{listed}")
        return said
    if assessment.loads is False and assessment.failed:
        return [f"Your code does not load:\n{_short(assessment.failed[0][1])}"]
    for check, detail in assessment.failed[:MOST_FAILED]:
        said.append(f"With your code, this check still fails:\n{check.code}\n{_short(detail)}")
    if not said:
        passed = {check.code for check in assessment.reproduced_passed}
        failing = [check for check in reproducing if check.code not in passed]
        if failing and not assessment.passed:
            said.append(f"This check fails on my code and still fails on yours:\n{failing[0].code}")
    return said
