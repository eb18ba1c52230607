"""Score the answers of a run folder with a judge model; append one judgment per record.

Two candidates: each prompt is judged twice, A shown first then B shown first, so that a judge's
taste for the first answer cancels out. One candidate: each answer is scored alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starchat_lsp.engine.base import ChatMessage, Engine, GenerationSettings
from starchat_lsp.eval import judge_prompt, records
from starchat_lsp.eval.prompt_sets import EvalPrompt
from starchat_lsp.eval.runner import run_candidates, run_prompts


class JudgeError(ValueError):
    """The run folder can't be judged as asked (nothing answered, another judge's scores)."""


@dataclass(frozen=True)
class Task:
    """One judge call: a prompt and the candidates in the order they are shown."""

    prompt: EvalPrompt
    order: str  # "AB", "BA" (pairwise) or "A" (single)
    shown: tuple[str, ...]  # candidate names, in the order shown
    answers: tuple[str, ...]


def plan(out: Path) -> list[Task]:
    """Every judge call the run folder needs, finished or not."""
    candidates = run_candidates(out)
    if not candidates:
        raise JudgeError(
            f"{out} is not a run folder: run `starchat-lsp eval run --out {out}` first"
        )
    if len(candidates) > 2:
        raise JudgeError(f"{out} has {len(candidates)} candidates: judging compares one or two")
    answered: dict[tuple[str, str], str] = {}
    for record in records.read_records(out / records.ANSWERS):
        answered[(str(record.get("candidate")), str(record.get("prompt_id")))] = str(
            record.get("answer", "")
        )
    tasks: list[Task] = []
    for prompt in run_prompts(out):
        texts = [answered.get((name, prompt.id)) for name in candidates]
        if any(text is None for text in texts):
            continue  # not every candidate answered it yet
        got = tuple(str(text) for text in texts)
        if len(candidates) == 1:
            tasks.append(Task(prompt, "A", (candidates[0],), got))
        else:
            a, b = candidates
            tasks.append(Task(prompt, "AB", (a, b), got))
            tasks.append(Task(prompt, "BA", (b, a), (got[1], got[0])))
    if not tasks:
        raise JudgeError(f"{out} has no answers to judge yet: run `starchat-lsp eval run` first")
    return tasks


def pending(out: Path, judge_name: str, tasks: list[Task]) -> list[Task]:
    """The calls not made yet; a folder judged by another model is refused, not mixed."""
    done = set()
    for record in records.read_records(out / records.JUDGMENTS):
        if record.get("judge") != judge_name:
            raise JudgeError(
                f"{out} already has judgments by {record.get('judge')}: judge with the same "
                f"model to resume, or move {records.JUDGMENTS} away to start over"
            )
        done.add((record.get("prompt_id"), record.get("order")))
    return [task for task in tasks if (task.prompt.id, task.order) not in done]


def messages_for(task: Task) -> list[ChatMessage]:
    if len(task.answers) == 1:
        return judge_prompt.build_single_prompt(task.prompt, task.answers[0])
    return judge_prompt.build_pairwise_prompt(task.prompt, task.answers[0], task.answers[1])


def judge_one(engine: Engine, task: Task, settings: GenerationSettings) -> dict[str, Any]:
    """Ask, read the scores; a malformed answer is asked again once, then recorded unparsed."""
    messages = messages_for(task)
    count = len(task.shown)
    raw: list[str] = []
    scores = None
    for _attempt in range(2):
        result = engine.chat(messages, settings).finish()
        raw.append(result.text)
        scores = judge_prompt.parse_scores(result.text, count)
        if scores is not None:
            break
        messages = [
            *messages,
            ChatMessage("assistant", result.text),
            ChatMessage("user", judge_prompt.reminder(count)),
        ]
    return {
        "prompt_id": task.prompt.id,
        "order": task.order,
        "shown": list(task.shown),
        "status": "parsed" if scores is not None else "unparsed",
        "scores": dict(zip(task.shown, scores, strict=True)) if scores is not None else None,
        "attempts": len(raw),
        "raw": raw,
    }


def judge_all(
    out: Path,
    judge_name: str,
    engine: Engine,
    todo: list[Task],
    settings: GenerationSettings,
    on_judged: Callable[[dict[str, Any]], None] | None = None,
) -> None:
    for task in todo:
        record = {"judge": judge_name, **judge_one(engine, task, settings)}
        records.append_record(out / records.JUDGMENTS, record)
        if on_judged is not None:
            on_judged(record)
