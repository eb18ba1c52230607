"""Section 9's figures: what the replay saw, turned into the report's rows."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from bench.keystroke_chat import ChatRun
from bench.keystroke_replay import Outcome
from bench.results_model import Row, Section
from bench.stats import ms, percentile, ratio

GOAL_P50_S, GOAL_P95_S = 0.400, 1.0  # the goal: the default model on 2 CPU cores
NOISE = 0.02  # of the chat's own time: what a chat's total may differ by between two runs


@dataclass
class Scenario:
    """One scenario's keys and the completion model runs they caused (starchat/status)."""

    outcomes: list[Outcome] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    first_runs: set[int] = field(default_factory=set)  # the first run at each place
    cache_hits: int = 0  # the server's count
    missing_runs: int = 0  # runs that had left status's list before it was read
    prefetches: list[dict[str, Any]] = field(default_factory=list)  # starchat/prefetch's runs

    def add(self, outcomes: list[Outcome], runs: list[dict[str, Any]], missing: int) -> None:
        self.outcomes += outcomes
        self.prefetches += [r for r in runs if r.get("prefetch")]
        runs = [r for r in runs if not r.get("prefetch")]
        self.runs += runs
        self.missing_runs += missing
        if runs:
            self.first_runs.add(runs[0]["run"])


def latency_rows(section: Section, label: str, outcomes: list[Outcome], extra_s: float) -> None:
    """p50 / p95 / max from the key to the suggestion shown: all of them, then the model's."""
    shown = [o for o in outcomes if o.shown]
    limit50, limit95 = GOAL_P50_S + extra_s, GOAL_P95_S + extra_s
    for name, group in (
        ("", shown),
        (", the model's answers only", [o for o in shown if not o.cached]),
    ):
        values = [o.latency_s for o in group if o.latency_s is not None]
        if values:
            p50, p95 = percentile(values, 50), percentile(values, 95)
            ours = f"{ms(p50)} / {ms(p95)} / {ms(max(values))}"
            met: bool | None = p50 <= limit50 and p95 <= limit95
        else:
            ours, met = "no suggestion shown", None
        section.add(
            Row(
                f"{label}: key to suggestion shown{name}: p50 / p95 / max",
                ours,
                f"{len(values)} shown",
                None,
                f"p50 ≤ {ms(limit50)}, p95 ≤ {ms(limit95)}",
                met,
            )
        )
        section.series[f"keystrokes: {label}{name} (ms)"] = [v * 1000 for v in values]


def share_rows(section: Section, label: str, scenario: Scenario) -> None:
    outcomes = scenario.outcomes
    shown = [o for o in outcomes if o.shown]
    pauses = [o for o in outcomes if o.pause]
    section.add(
        Row(
            f"{label}: keys that got a suggestion shown; at pauses (≥ 1 s to the next key)",
            f"{len(shown)} of {len(outcomes)} ({_share(len(shown), len(outcomes))}); "
            f"{sum(o.shown for o in pauses)} of {len(pauses)} pauses",
        )
    )
    cached = sum(o.cached for o in shown)
    section.add(
        Row(
            f"{label}: suggestions from the server's cache (typing through one)",
            f"{cached} of {len(shown)} shown; the server counted {scenario.cache_hits} cache hits",
        )
    )


def reuse_rows(section: Section, label: str, scenario: Scenario) -> None:
    """Prompt tokens the KV cache reused per model run that got through its prompt (a run stopped
    before its first token says 0): typing on at a place, and the first run at a new place."""
    runs = [r for r in scenario.runs if r["time_to_first_token_s"] is not None]
    typing = [r for r in runs if r["run"] not in scenario.first_runs]
    first = [r for r in runs if r["run"] in scenario.first_runs]
    section.add(
        Row(
            f"{label}: prompt tokens reused per model run, typing on at a place (median, lowest)",
            _reuse(typing),
            f"first run at a place: {_reuse(first)}",
        )
    )
    section.add(
        Row(
            f"{label}: model run's first token, typing on at a place (median, slowest)",
            _first_token(typing),
            f"first run at a place: {_first_token(first)}",
        )
    )
    stopped = sum(r["stop_reason"] == "cancelled" for r in scenario.runs)
    early = len(scenario.runs) - len(runs)
    model_s = sum(r["total_s"] for r in scenario.runs)
    lost = f"; {scenario.missing_runs} not read" if scenario.missing_runs else ""
    prompt = statistics.median(r["tokens_in"] for r in scenario.runs) if scenario.runs else 0
    fetched = scenario.prefetches
    section.add(
        Row(
            f"{label}: prefetch runs while the cursor rested, before the first key",
            f"{len(fetched)} ({sum(r['stop_reason'] == 'cancelled' for r in fetched)} stopped "
            f"by the first key), {sum(r['total_s'] for r in fetched):.2f} s of model time; "
            f"reused: {_reuse(fetched)}",
        )
    )
    section.add(
        Row(
            f"{label}: completion model runs",
            f"{len(scenario.runs)} ({stopped} stopped by a newer key; {early} ended before "
            f"their first token), {model_s:.2f} s of model time, median prompt {prompt:.0f} "
            f"tokens{lost}",
        )
    )


def chat_rows(
    section: Section,
    alone: list[ChatRun],
    beside: list[ChatRun],
    compute_s: list[float],
) -> None:
    """The chat answer typed beside against the same answer alone: its text, its time."""
    if not beside:  # so few places that none has a line below it to type during a chat
        section.add(
            Row(
                "during a chat: the chat's answer (greedy) vs the same chat alone",
                "not measured: no place had a line below it to type on (give more --edits)",
            )
        )
        return
    reference = alone[0].text
    same = sum(run.text == reference for run in beside)
    differs = [_first_difference(run.text, reference) for run in beside if run.text != reference]
    section.add(
        Row(
            "during a chat: the chat's answer (greedy) vs the same chat alone",
            f"identical in {same} of {len(beside)}"
            + (f"; first difference at character {differs[0]}" if differs else ""),
            f"{alone[0].usage['tokens_out']} tokens",
            None,
            "identical",
            same == len(beside),
        )
    )
    alone_s = statistics.median(run.wall_s for run in alone)
    beside_s = statistics.median(run.wall_s for run in beside)
    section.add(
        Row(
            "during a chat: the chat's whole time, during the replay vs alone (median; prompt "
            "tokens reused)",
            f"{beside_s:.2f} s ({_reused(beside)})",
            f"{alone_s:.2f} s ({_reused(alone)})",
            ratio(beside_s, alone_s),
        )
    )
    extra = sum(run.wall_s - alone_s for run in beside)
    compute = sum(compute_s)
    section.add(
        Row(
            "during a chat: the chat's extra time vs the completion runs done inside it",
            f"{extra:+.2f} s",
            f"{compute:.2f} s of completion compute",
            None,
            f"at most that + {NOISE:.0%} of the chat's time",
            extra <= compute + NOISE * alone_s * len(beside),
        )
    )


def token_s(runs: list[ChatRun]) -> float:
    """One token of the chat answer alone: the median decoding time per token."""
    speeds = [run.usage["tokens_per_s"] for run in runs if run.usage["tokens_per_s"]]
    return 1 / statistics.median(speeds) if speeds else 0.0


def _reuse(runs: list[dict[str, Any]]) -> str:
    if not runs:
        return "no run"
    shares = [r["reused_tokens"] / r["tokens_in"] for r in runs]
    reused = statistics.median(r["reused_tokens"] for r in runs)
    prompt = statistics.median(r["tokens_in"] for r in runs)
    return (
        f"{statistics.median(shares):.0%} (median {reused:.0f} of {prompt:.0f} tokens; "
        f"lowest {min(shares):.0%}; {len(runs)} runs)"
    )


def _reused(runs: list[ChatRun]) -> str:
    return ", ".join(f"{r.usage['reused_tokens']} of {r.usage['tokens_in']}" for r in runs)


def _first_token(runs: list[dict[str, Any]]) -> str:
    """From the run's start (the engine taking it) to its first token: mostly the prompt's
    tokens that the KV cache did not hold going through the model."""
    times = [r["time_to_first_token_s"] for r in runs]
    if not times:
        return "no run"
    return f"{ms(statistics.median(times))} ({ms(max(times))}; {len(times)} runs)"


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.0%}" if whole else "-"


def _first_difference(text: str, reference: str) -> int:
    for index, (a, b) in enumerate(zip(text, reference, strict=False)):
        if a != b:
            return index
    return min(len(text), len(reference))
