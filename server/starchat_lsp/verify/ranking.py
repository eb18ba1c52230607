"""Order candidate fixes, tell duplicates apart, and say in words how sure we are of the winner."""

from __future__ import annotations

import ast
import re
import textwrap
from collections import Counter
from dataclasses import dataclass

from starchat_lsp import tasks
from starchat_lsp.verify.checks import Assessment
from starchat_lsp.verify.evidence import Check, says_what_is_right


@dataclass(kw_only=True)
class Candidate:
    """One proposed fix: the answer read as the editor reads it, and what the checks found."""

    index: int  # 0 is the draft (greedy), then the samples in the order they came
    outcome: tasks.Outcome
    assessment: Assessment
    key: str | None  # its code, normalised: equal keys are the same fix
    votes: int = 1  # how many answers proposed this same fix

    def rank(self) -> tuple[int, bool, int, int, int, int, bool, int, int]:
        """The user's checks passed, then sound, then the model's own tests that reproduce the
        report (they fail on the user's code) passed, then all the model's tests passed, then
        whether it clears what the analyzer found without adding to it, then how many answers
        agree, then the likelier answer (the greedy draft before the samples), then a smaller
        diff, then the earlier sample.

        The draft wins ties before the diff size is asked: on our eval a sampled fix with a
        smaller diff was wrong more often than the greedy answer (docs/eval/README.md).
        """
        return (
            len(self.assessment.passed),
            self.assessment.sound,
            len(self.assessment.reproduced_passed),
            self.assessment.generated_passed,
            self.assessment.lint,
            self.votes,
            self.index == 0,
            -self.assessment.changed_lines,
            -self.index,
        )


def fix_key(outcome: tasks.Outcome, language: str | None) -> str | None:
    """The fix's code normalised: Python by its syntax tree (comments and layout don't count)."""
    if outcome.fix is None:
        return None
    code = textwrap.dedent(outcome.fix)
    if language == "python":
        try:
            return ast.dump(ast.parse(code))
        except SyntaxError:
            pass
    return re.sub(r"\s+", " ", code).strip()


def choose(candidates: list[Candidate]) -> Candidate | None:
    """The best candidate that is a fix we can offer; None when none is."""
    offered = [c for c in candidates if c.outcome.applicable and c.assessment.sound]
    return max(offered, key=Candidate.rank) if offered else None


def _count(checks: list[Check]) -> str:
    """ "the example from your message and the 2 tests from tests/...": what was checked."""
    by_origin = Counter(check.origin for check in checks)
    parts = []
    for origin, count in by_origin.items():
        noun = "test" if origin == "your tests" else "example"
        counted = noun if count == 1 else f"{count} {noun}s"
        parts.append(f"the {counted} from {origin}")
    return " and ".join(parts)


def verdict(
    chosen: Candidate | None,
    evidence: list[Check],
    *,
    runnable: bool,
    why_not_run: str = "",
    reproduced: int = 0,
    generated: int = 0,
) -> str:
    """How sure we are, in one line: what was checked and what was not."""
    if chosen is None:
        return "no fix passed the checks: the answer above is not offered as an edit"
    if not runnable:
        reason = why_not_run or "checks run only for Python"
        return f"not verified ({reason}); checked that the fix parses and keeps the names"
    reproduced_by = chosen.assessment.reproduced_passed
    shown = (
        f"; reproduced the bug with `{reproduced_by[0].code}` (a test the model wrote, which "
        "fails on your code), and the fix passes it"
        if reproduced_by
        else ""
    )
    if not evidence:
        own = (
            f"; it passes {chosen.assessment.generated_passed} of {generated} tests the model "
            "wrote from the docstring and your note"
            if generated
            else ""
        )
        return (
            "not verified: no examples found (give one in your note, such as "
            "`f(2) should return 4`, or add a doctest); checked that the fix parses, keeps "
            f"the names and parameters, and loads{own}{shown}"
        )
    passed = chosen.assessment.passed
    before = f"; {reproduced} of them failed before the fix" if reproduced else ""
    if len(passed) == len(evidence):
        if not says_what_is_right(evidence):
            # "no longer gives X", "no longer crashes": better, not shown right
            return (
                f"checked: passes {_count(evidence)}, which says what is wrong, not what is "
                f"right{shown}"
            )
        return f"verified: passes {_count(evidence)}{before}"
    failing = "; ".join(check.code for check, _ in chosen.assessment.failed[:2])
    return f"partly verified: passes {len(passed)} of {len(evidence)} checks (fails: {failing})"
