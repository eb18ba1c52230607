"""The numbers of a report, computed from a run folder's records: pure functions, no files.

Definitions (the report states them too):
- a candidate's score on a prompt is the mean of its parsed scores there (one per judge order);
- A wins a prompt when its score there is higher than B's, ties when equal;
- the two orders agree on a prompt when both name the same winner (or both a tie);
- a test pass rate counts answers to prompts with tests; no code in the answer counts as an error.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from starchat_lsp.sandbox import STATUSES


@dataclass(kw_only=True)
class Tally:
    """How often something happened out of how many times it could."""

    count: int = 0
    total: int = 0

    @property
    def rate(self) -> float | None:
        return self.count / self.total if self.total else None


@dataclass(kw_only=True)
class CandidateSummary:
    name: str
    answers: int = 0
    scores: list[float] = field(default_factory=list)  # every parsed score it got
    scores_by_category: dict[str, list[float]] = field(default_factory=dict)
    tests: Counter[str] = field(default_factory=Counter)  # status -> answers
    tests_by_category: dict[str, Counter[str]] = field(default_factory=dict)
    tokens_per_s: list[float] = field(default_factory=list)
    time_to_first_token_s: list[float] = field(default_factory=list)
    cut: int = 0  # answers stopped by the token or time limit, not by the model
    seconds: list[float] = field(default_factory=list)  # per answer, verification included
    named_line: Tally = field(default_factory=Tally)  # bug feedback: pointed at a buggy line
    named_line_by_category: dict[str, Tally] = field(default_factory=dict)

    @property
    def mean_score(self) -> float | None:
        return statistics.fmean(self.scores) if self.scores else None

    @property
    def tested(self) -> int:
        return sum(self.tests.values())

    @property
    def pass_rate(self) -> float | None:
        return self.tests["pass"] / self.tested if self.tested else None


@dataclass(kw_only=True)
class PairSummary:
    a: str
    b: str
    wins: int = 0
    ties: int = 0
    losses: int = 0
    agreement: Tally = field(default_factory=Tally)  # prompts judged in both orders
    first_shown: Counter[str] = field(default_factory=Counter)  # "higher", "equal", "lower"

    @property
    def judged(self) -> int:
        return self.wins + self.ties + self.losses

    def rate(self, count: int) -> float | None:
        return count / self.judged if self.judged else None


@dataclass(kw_only=True)
class Summary:
    candidates: list[CandidateSummary]
    pair: PairSummary | None
    judge: str | None
    judgments: int
    unparsed: int
    prompts: int
    verification: list[VerificationSummary] = field(default_factory=list)


@dataclass(kw_only=True)
class VerificationSummary:
    """A `+verify` candidate against the plain candidate of the same model in the same run."""

    name: str
    plain: str
    time_ratios: list[float] = field(default_factory=list)  # per prompt: its seconds / plain's
    seconds: float = 0.0  # all its answers
    plain_seconds: float = 0.0
    verdicts: Counter[str] = field(default_factory=Counter)  # "verified", "not verified", ...
    chose_the_draft: int = 0  # answers whose fix is the plain answer's
    answers: int = 0


def _verdict_kind(verdict: str) -> str:
    for kind in ("verified", "partly verified", "checked", "not verified", "no fix passed"):
        if verdict.startswith(kind):
            return kind
    return verdict.split(":")[0]


def verification_summaries(
    candidates: list[str], answers: list[dict[str, Any]]
) -> list[VerificationSummary]:
    """How verification changed time and what it said, for each `X+verify` run next to `X`."""
    found = []
    for name in candidates:
        plain_name = name.removesuffix("+verify")
        if plain_name == name or plain_name not in candidates:
            continue
        summary = VerificationSummary(name=name, plain=plain_name)
        plain = {r.get("prompt_id"): r for r in answers if r.get("candidate") == plain_name}
        for record in answers:
            verification = record.get("verification")
            if record.get("candidate") != name or not isinstance(verification, dict):
                continue
            summary.answers += 1
            summary.verdicts[_verdict_kind(str(verification.get("verdict", "")))] += 1
            summary.chose_the_draft += verification.get("chosen") == 0
            before = plain.get(record.get("prompt_id"))
            seconds = record.get("seconds")
            if before and before.get("seconds") and isinstance(seconds, (int, float)):
                summary.time_ratios.append(float(seconds) / float(before["seconds"]))
                summary.seconds += float(seconds)
                summary.plain_seconds += float(before["seconds"])
        found.append(summary)
    return found


def categories(prompt: dict[str, Any]) -> list[str]:
    """The groups a prompt counts in: its type and language, and its difficulty, category and
    kind of note where it has them."""
    groups = [f"type: {prompt.get('type')}", f"language: {prompt.get('language')}"]
    for key, label in (
        ("difficulty", "difficulty"),
        ("category", "category"),
        ("note_kind", "note"),
    ):
        if prompt.get(key):
            groups.append(f"{label}: {prompt[key]}")
    return groups


def _names_buggy_line(record: dict[str, Any], prompt: dict[str, Any]) -> bool | None:
    """Whether the answer points at (or changes) a line the bug is on; None when unknown."""
    bug_lines = prompt.get("bug_lines")
    if prompt.get("type") != "bug_feedback" or not bug_lines:
        return None
    return bool(set(record.get("lines") or []) & set(bug_lines))


def _sign(value: float) -> int:
    return (value > 0) - (value < 0)


def summarize(
    candidates: list[str],
    prompts: list[dict[str, Any]],
    answers: list[dict[str, Any]],
    judgments: list[dict[str, Any]],
) -> Summary:
    """Everything the report shows, from the records of one run folder."""
    by_id = {str(p["id"]): p for p in prompts}
    summaries = {name: CandidateSummary(name=name) for name in candidates}
    for record in answers:
        summary = summaries.get(str(record.get("candidate")))
        prompt = by_id.get(str(record.get("prompt_id")))
        if summary is None or prompt is None:
            continue
        summary.answers += 1
        metrics = record.get("metrics") or {}
        if metrics.get("tokens_per_s"):
            summary.tokens_per_s.append(float(metrics["tokens_per_s"]))
        if metrics.get("stop_reason") in ("length", "time"):
            summary.cut += 1
        if metrics.get("time_to_first_token_s") is not None:
            summary.time_to_first_token_s.append(float(metrics["time_to_first_token_s"]))
        if isinstance(record.get("seconds"), (int, float)):
            summary.seconds.append(float(record["seconds"]))
        named = _names_buggy_line(record, prompt)
        if named is not None:
            by_category = summary.named_line_by_category
            groups = [by_category.setdefault(c, Tally()) for c in categories(prompt)]
            for tally in (summary.named_line, *groups):
                tally.total += 1
                tally.count += named
        check = record.get("check")
        if check and check.get("status") in STATUSES:
            summary.tests[check["status"]] += 1
            for category in categories(prompt):
                summary.tests_by_category.setdefault(category, Counter())[check["status"]] += 1

    per_prompt: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)  # id -> order -> scores
    unparsed = 0
    judge = None
    for record in judgments:
        judge = judge or record.get("judge")
        prompt = by_id.get(str(record.get("prompt_id")))
        if prompt is None:
            continue
        scores = record.get("scores")
        if record.get("status") != "parsed" or not scores:
            unparsed += 1
            continue
        per_prompt[str(prompt["id"])][str(record.get("order"))] = scores
        for name, score in scores.items():
            if name in summaries:
                summaries[name].scores.append(float(score))
                for category in categories(prompt):
                    summaries[name].scores_by_category.setdefault(category, []).append(float(score))

    pair = None
    if len(candidates) == 2:
        pair = _pair(candidates[0], candidates[1], per_prompt, judgments)
    return Summary(
        candidates=[summaries[name] for name in candidates],
        pair=pair,
        judge=judge,
        judgments=len(judgments),
        unparsed=unparsed,
        prompts=len(prompts),
        verification=verification_summaries(candidates, answers),
    )


def _pair(
    a: str,
    b: str,
    per_prompt: dict[str, dict[str, dict[str, float]]],
    judgments: list[dict[str, Any]],
) -> PairSummary:
    pair = PairSummary(a=a, b=b)
    for orders in per_prompt.values():
        differences = {order: s[a] - s[b] for order, s in orders.items() if a in s and b in s}
        if not differences:
            continue
        mean_a = statistics.fmean(orders[o][a] for o in differences)
        mean_b = statistics.fmean(orders[o][b] for o in differences)
        verdict = _sign(mean_a - mean_b)
        if verdict > 0:
            pair.wins += 1
        elif verdict < 0:
            pair.losses += 1
        else:
            pair.ties += 1
        if "AB" in differences and "BA" in differences:
            pair.agreement.total += 1
            if _sign(differences["AB"]) == _sign(differences["BA"]):
                pair.agreement.count += 1
    for record in judgments:
        scores, shown = record.get("scores"), record.get("shown") or []
        if record.get("status") == "parsed" and scores and len(shown) == 2:
            first, second = scores[shown[0]], scores[shown[1]]
            side = {1: "higher", 0: "equal", -1: "lower"}[_sign(first - second)]
            pair.first_shown[side] += 1
    return pair
