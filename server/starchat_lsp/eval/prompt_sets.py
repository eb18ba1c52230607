"""Prompt sets: JSONL files, one prompt a line, read and checked before any model runs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

PROMPT_TYPES = ("instruction", "bug_feedback")
SHIPPED_SET = "starchat_eval.jsonl"


class PromptSetError(ValueError):
    """A prompt file that can't be used; the message names the file and line."""


@dataclass(frozen=True, kw_only=True)
class EvalPrompt:
    id: str
    type: str  # "instruction" or "bug_feedback"
    language: str
    prompt: str  # the instruction, or what the user says about their buggy code
    code: str | None = None  # the buggy code (bug_feedback)
    entry_point: str | None = None
    tests: str | None = None  # Python asserts run against the answer's code
    reference: str | None = None  # a correct solution or fix (to check the tests themselves)
    category: str | None = None
    difficulty: str | None = None  # "easy", "medium", "hard"
    bug_lines: tuple[int, ...] = ()  # bug feedback: the 1-based lines of `code` the bug is on
    note_kind: str | None = None  # bug feedback: how the note reports it: prose, example, error

    @property
    def runnable(self) -> bool:
        """Whether the answer's code can be checked by running `tests`."""
        return self.language == "python" and bool(self.tests)

    def as_dict(self) -> dict[str, Any]:
        data = {
            "id": self.id,
            "type": self.type,
            "language": self.language,
            "prompt": self.prompt,
            "code": self.code,
            "entry_point": self.entry_point,
            "tests": self.tests,
            "category": self.category,
            "difficulty": self.difficulty,
            "bug_lines": list(self.bug_lines) or None,
            "note_kind": self.note_kind,
        }
        if self.reference is not None:
            key = "reference_fix" if self.type == "bug_feedback" else "reference_solution"
            data[key] = self.reference
        return {key: value for key, value in data.items() if value is not None}


def shipped_prompts_path() -> Path:
    """Our own prompt set, installed with the package."""
    return Path(str(resources.files("starchat_lsp.eval") / "prompts" / SHIPPED_SET))


def _text(data: dict[str, Any], key: str, where: str, *, required: bool = False) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            raise PromptSetError(f"{where}: missing {key!r}")
        return None
    if not isinstance(value, str):
        raise PromptSetError(f"{where}: {key!r} must be a string")
    if required and not value.strip():
        raise PromptSetError(f"{where}: {key!r} is empty")
    return value


def parse_prompt(data: Any, where: str) -> EvalPrompt:
    """One prompt from its JSON object; `where` ("file.jsonl:3") goes into every error."""
    if not isinstance(data, dict):
        raise PromptSetError(f"{where}: each line must be a JSON object")
    kind = _text(data, "type", where)
    if kind is None:  # the shared sample files have no type: a buggy `code` says which it is
        kind = "bug_feedback" if data.get("code") else "instruction"
    if kind not in PROMPT_TYPES:
        raise PromptSetError(f"{where}: type must be one of {', '.join(PROMPT_TYPES)}")
    prompt = EvalPrompt(
        id=str(_text(data, "id", where, required=True)),
        type=kind,
        language=str(_text(data, "language", where, required=True)).lower(),
        prompt=str(_text(data, "prompt", where, required=True)),
        code=_text(data, "code", where),
        entry_point=_text(data, "entry_point", where),
        tests=_text(data, "tests", where),
        reference=_text(data, "reference_fix", where) or _text(data, "reference_solution", where),
        category=_text(data, "category", where),
        difficulty=_text(data, "difficulty", where),
        bug_lines=_bug_lines(data, where),
        note_kind=_text(data, "note_kind", where),
    )
    if kind == "bug_feedback" and not (prompt.code and prompt.code.strip()):
        raise PromptSetError(f"{where}: a bug_feedback prompt needs the buggy 'code'")
    if prompt.language == "python" and prompt.entry_point and not prompt.tests:
        raise PromptSetError(f"{where}: a Python prompt with an entry_point needs 'tests'")
    return prompt


def _bug_lines(data: dict[str, Any], where: str) -> tuple[int, ...]:
    value = data.get("bug_lines")
    if value is None:
        return ()
    if not isinstance(value, list) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in value
    ):
        raise PromptSetError(f"{where}: 'bug_lines' must be a list of line numbers from 1")
    return tuple(value)


def load_prompts(path: Path, kind: str | None = None, limit: int | None = None) -> list[EvalPrompt]:
    """The prompts of a JSONL file, optionally only one type and only the first `limit`."""
    if not path.is_file():
        raise PromptSetError(f"no such prompt file: {path}")
    prompts: list[EvalPrompt] = []
    seen: set[str] = set()
    with path.open(encoding="utf-8") as file:
        for number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                data = json.loads(line)
            except json.JSONDecodeError as error:
                raise PromptSetError(f"{where}: not JSON ({error.msg})") from None
            prompt = parse_prompt(data, where)
            if prompt.id in seen:
                raise PromptSetError(f"{where}: the id {prompt.id!r} is used twice")
            seen.add(prompt.id)
            prompts.append(prompt)
    if not prompts:
        raise PromptSetError(f"{path} has no prompts")
    chosen = [p for p in prompts if kind is None or p.type == kind]
    if not chosen:
        raise PromptSetError(f"{path} has no {kind} prompts")
    return chosen[:limit] if limit is not None else chosen
