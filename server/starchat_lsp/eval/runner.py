"""Answer every prompt with every candidate, test the code, and append each record as it comes.

The run folder holds run.json (candidates and settings), prompts.jsonl (the prompts asked) and
answers.jsonl (one record per candidate and prompt). Running again on the same folder skips the
pairs already answered, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starchat_lsp import sandbox, tasks
from starchat_lsp.context import prompts
from starchat_lsp.engine.base import Engine, GenerationResult, GenerationSettings
from starchat_lsp.eval import records
from starchat_lsp.eval.answer_code import written_code
from starchat_lsp.eval.candidates import verifies
from starchat_lsp.eval.prompt_sets import EvalPrompt, parse_prompt
from starchat_lsp.verify import pipeline

_EXTENSIONS = {"python": ".py", "javascript": ".js", "cpp": ".cpp", "sql": ".sql", "html": ".html"}


class RunFolderError(ValueError):
    """The run folder holds a run with other settings; resuming would mix two runs."""


@dataclass(frozen=True, kw_only=True)
class RunSettings:
    max_new_tokens: int = 512
    temperature: float = 0.0
    answer_time_limit_s: float = 180.0  # one answer's generation
    limits: sandbox.Limits = field(default_factory=sandbox.Limits)

    def as_dict(self) -> dict[str, Any]:
        return {
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "answer_time_limit_s": self.answer_time_limit_s,
            "test_time_limit_s": self.limits.time_s,
            "test_memory_mb": self.limits.memory_mb,
        }


@dataclass(frozen=True)
class Answered:
    """What the progress display hears after each answer."""

    candidate: str
    prompt: EvalPrompt
    record: dict[str, Any]


def prepare_folder(
    out: Path, candidates: list[str], chosen: list[EvalPrompt], settings: RunSettings
) -> None:
    """Create or extend the run folder; refuse to mix runs with different settings."""
    out.mkdir(parents=True, exist_ok=True)
    manifest = records.read_json(out / records.RUN)
    if manifest is not None and manifest.get("settings") != settings.as_dict():
        raise RunFolderError(
            f"{out} holds a run with other settings ({manifest.get('settings')}): "
            "use the same options to resume it, or another --out folder"
        )
    known = list(manifest.get("candidates", [])) if manifest else []
    known += [name for name in candidates if name not in known]
    records.write_json(out / records.RUN, {"candidates": known, "settings": settings.as_dict()})
    asked = {str(r.get("id")) for r in records.read_records(out / records.PROMPTS)}
    for prompt in chosen:
        if prompt.id not in asked:
            records.append_record(out / records.PROMPTS, prompt.as_dict())


def run_prompts(out: Path) -> list[EvalPrompt]:
    """The prompts a run folder was asked, in order."""
    path = out / records.PROMPTS
    return [parse_prompt(data, f"{path}") for data in records.read_records(path)]


def run_candidates(out: Path) -> list[str]:
    manifest = records.read_json(out / records.RUN) or {}
    return [str(name) for name in manifest.get("candidates", [])]


def pending(out: Path, candidate: str, chosen: list[EvalPrompt]) -> list[EvalPrompt]:
    """The prompts this candidate has not answered yet in this folder."""
    done = {
        r.get("prompt_id")
        for r in records.read_records(out / records.ANSWERS)
        if r.get("candidate") == candidate
    }
    return [prompt for prompt in chosen if prompt.id not in done]


def _request(prompt: EvalPrompt) -> tasks.CodeRequest:
    code = prompt.code or ""
    path = (prompt.entry_point or "snippet") + _EXTENSIONS.get(prompt.language, ".txt")
    return tasks.CodeRequest(
        text=code,
        path=path,
        start_line=0,
        end_line=max(0, len(code.splitlines()) - 1),  # a last newline starts no line
        language=prompt.language,
        note=prompt.prompt,
    )


@dataclass(frozen=True, kw_only=True)
class Answer:
    """One answer as the run records it."""

    text: str  # what the user reads
    result: GenerationResult  # the (first) generation
    code: str | None  # the code to test
    problems: list[str] = field(default_factory=list)  # why a fix is unusable
    lines: list[int] = field(default_factory=list)  # 1-based lines the answer points at
    seconds: float = 0.0  # the whole answer, verification included
    verification: dict[str, Any] | None = None


def answer_prompt(
    engine: Engine,
    prompt: EvalPrompt,
    settings: RunSettings,
    verify: bool = False,
) -> Answer:
    """Ask as the editor asks: plain, or through the verification pipeline (bug feedback).

    The pipeline generates its own draft, together with its samples and tests (one batch on
    llama.cpp): its time is the whole checked answer's, as the user waits for it.
    """
    generation = GenerationSettings(
        max_new_tokens=settings.max_new_tokens,
        temperature=settings.temperature,
        time_limit_s=settings.answer_time_limit_s,
        seed=0,
    )
    started = time.monotonic()
    if prompt.type == "bug_feedback":
        request = _request(prompt)
        kind = tasks.TaskKind.FEEDBACK
        # The plain baseline is the model asked as the user would: without the analyzer's hints.
        prepared = tasks.prepare(
            kind, request, engine, max_new_tokens=settings.max_new_tokens, analyze=verify
        )
        if verify:
            verified = pipeline.run(
                kind,
                request,
                engine,
                prepared,
                generation,
                options=pipeline.VerifyOptions(limits=settings.limits),
            )
            outcome, result = verified.outcome, verified.draft_result
            summary = {
                "verdict": verified.verdict,
                "draft": verified.draft.answer,
                "hints": [finding.describe() for finding in prepared.findings],
                "verified": verified.verified,
                "chosen": verified.chosen,
                "candidates": len(verified.candidates),
                "evidence": [check.code for check in verified.evidence],
                "generated_tests": [check.code for check in verified.generated],
                "tokens_out": verified.tokens_out,
                "phases_s": verified.phases,
                "second_look_from": verified.second_from,
                "tried": [  # every distinct fix, for reading how the choice was made
                    {
                        "code": c.outcome.new_text,
                        "votes": c.votes,
                        "changed_lines": c.assessment.changed_lines,
                        "problems": c.assessment.problems,
                        "loads": c.assessment.loads,
                        "passed": len(c.assessment.passed),
                        "generated_passed": c.assessment.generated_passed,
                        "lint": c.assessment.lint,
                        "reproduced_passed": len(c.assessment.reproduced_passed),
                    }
                    for c in verified.candidates
                ],
            }
        else:
            result = engine.chat(prepared.messages, generation).finish()
            outcome = tasks.conclude(kind, request, prepared, result)
            summary = None
        return Answer(
            text=outcome.answer,
            result=result,
            code=outcome.new_text,
            problems=outcome.problems,
            lines=[line + 1 for line in outcome.lines],
            seconds=round(time.monotonic() - started, 3),
            verification=summary,
        )
    messages = prompts.build_instruction_prompt(prompt.prompt, prompt.language)
    result = engine.chat(messages, generation).finish()
    return Answer(
        text=result.text,
        result=result,
        code=written_code(result.text, prompt.language),
        seconds=round(time.monotonic() - started, 3),
    )


def check_code(
    prompt: EvalPrompt, code: str | None, limits: sandbox.Limits
) -> dict[str, Any] | None:
    """Run the prompt's tests on the answer's code; None for prompts without tests."""
    if not prompt.runnable or prompt.tests is None:
        return None
    if code is None:
        return {"status": "error", "detail": "no code in the answer", "duration_s": 0.0}
    return sandbox.run_python_tests(code, prompt.tests, prompt.entry_point, limits).as_dict()


def answer_all(
    out: Path,
    candidate: str,
    engine: Engine,
    todo: list[EvalPrompt],
    settings: RunSettings,
    on_answer: Callable[[Answered], None] | None = None,
) -> None:
    """Answer, test and record each prompt in `todo`, appending each record when it is whole."""
    verify = verifies(candidate)
    for prompt in todo:
        answer = answer_prompt(engine, prompt, settings, verify)
        record = {
            "candidate": candidate,
            "model": engine.name,
            "prompt_id": prompt.id,
            "type": prompt.type,
            "language": prompt.language,
            "answer": answer.text,
            "code": answer.code,
            "fix_problems": answer.problems,
            "lines": answer.lines,
            "seconds": answer.seconds,
            "check": check_code(prompt, answer.code, settings.limits),
            "metrics": answer.result.as_dict(),
        }
        if answer.verification is not None:
            record["verification"] = answer.verification
        records.append_record(out / records.ANSWERS, record)
        if on_answer is not None:
            on_answer(Answered(candidate, prompt, record))


@contextmanager
def opened(engine: Engine) -> Iterator[Engine]:
    """Close the engine when its candidate is done: two models need not fit in memory at once."""
    try:
        yield engine
    finally:
        engine.close()
