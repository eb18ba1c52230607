"""Answer every prompt with every candidate, test the code, and append each record as it comes.

The run folder holds run.json (candidates and settings), prompts.jsonl (the prompts asked) and
answers.jsonl (one record per candidate and prompt). Running again on the same folder skips the
pairs already answered, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starchat_lsp import tasks
from starchat_lsp.context import prompts
from starchat_lsp.engine.base import Engine, GenerationResult, GenerationSettings
from starchat_lsp.eval import records, sandbox
from starchat_lsp.eval.answer_code import written_code
from starchat_lsp.eval.prompt_sets import EvalPrompt, parse_prompt

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
        end_line=max(0, len(code.split("\n")) - 1),
        language=prompt.language,
        note=prompt.prompt,
    )


def answer_prompt(
    engine: Engine, prompt: EvalPrompt, settings: RunSettings
) -> tuple[GenerationResult, str | None, list[str]]:
    """Ask as the editor asks; return the generation, the code to test and why a fix is unusable."""
    generation = GenerationSettings(
        max_new_tokens=settings.max_new_tokens,
        temperature=settings.temperature,
        time_limit_s=settings.answer_time_limit_s,
        seed=0,
    )
    if prompt.type == "bug_feedback":
        request = _request(prompt)
        prepared = tasks.prepare(
            tasks.TaskKind.FEEDBACK, request, engine, max_new_tokens=settings.max_new_tokens
        )
        result = engine.chat(prepared.messages, generation).finish()
        outcome = tasks.conclude(tasks.TaskKind.FEEDBACK, request, prepared, result)
        return result, outcome.new_text, outcome.problems
    messages = prompts.build_instruction_prompt(prompt.prompt, prompt.language)
    result = engine.chat(messages, generation).finish()
    return result, written_code(result.text, prompt.language), []


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
    for prompt in todo:
        result, code, problems = answer_prompt(engine, prompt, settings)
        record = {
            "candidate": candidate,
            "model": engine.name,
            "prompt_id": prompt.id,
            "type": prompt.type,
            "language": prompt.language,
            "answer": result.text,
            "code": code,
            "fix_problems": problems,
            "check": check_code(prompt, code, settings.limits),
            "metrics": result.as_dict(),
        }
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
