"""`eval complete`: fill holes cut from real code the way the editor would, and score each answer.

Each hole goes through the editor's own functions (`completion.scope_at`, then
`completion.complete`: context fitting, the FIM or chat prompt, cleaning and trimming; an
unfinished run offers nothing, as in the editor), never a copy of them; the document's path
is the file's own, as an editor that opened it would give it.

The run folder holds run.json (the holes' source, seed and count, the modes run, the machine),
holes.jsonl (the holes, cut once) and completions.jsonl (one record per mode and hole, appended
as each is done). Running again with the same folder and options skips what is done, so an
interrupted run resumes; new models or modes add to it.
"""

from __future__ import annotations

import os
import platform
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starchat_lsp import completion, sandbox
from starchat_lsp.context.completion_scope import Scope
from starchat_lsp.engine.base import CancelFlag, Engine
from starchat_lsp.eval import holes, records
from starchat_lsp.eval.complete_scores import edit_similarity, exact_match, parses

KIND = "completion"  # run.json's "kind": what `eval report` looks for
HOLES = "holes.jsonl"
COMPLETIONS = "completions.jsonl"
# fim: the product's prompt (prefix, suffix, middle); fim-line: the cursor line's start after
# the middle token, measured worse (docs/eval/README.md); fim-spm: suffix, prefix, middle (the
# text after the cursor is kept in the KV cache while typing); chat: a chat prompt with a
# cursor marker.
PROMPTS = ("fim", "fim-line", "fim-spm", "chat")
FIM_PROMPTS = ("fim", "fim-line", "fim-spm")
# A prompt with this suffix (`fim+files`) also gets the definitions from other files of the
# source folder that the hole's scope uses (completion.other_files; the folder is the workspace).
WITH_FILES = "+files"
# A mode with this suffix (`fim+typed`) asks each hole right after the same request one key
# earlier (the hole's last character before the cursor not yet typed), as while typing: the KV
# cache then holds that prompt, and the engine keeps what it can of it (llamacpp_shift).
TYPED = "+typed"
# A mode with this suffix (`fim+moved`) asks each hole right after a request at another place of
# the same file (MOVED_LINES away, at that line's end), as when the cursor goes there: the KV
# cache then holds that place's window, and the engine keeps the runs the two share
# (llamacpp_reuse).
MOVED = "+moved"
MOVED_LINES = (8, 64)
MODES = tuple(p + s for p in PROMPTS for s in ("", WITH_FILES, TYPED, WITH_FILES + TYPED, MOVED))
NOTHING = {"status": "fail", "detail": "nothing suggested", "duration_s": 0.0}

# Runs in the sandbox after the file with the completion: the function's docstring examples,
# with the module's globals. An example that imports the module, or names it (`textwrap.x`),
# gets this copy of it.
DOCTEST_PROGRAM = """
import doctest as _doctest, sys as _sys, types as _types
_copy = _types.ModuleType({module!r})
_copy.__dict__.update(globals())
_sys.modules[{module!r}] = _copy
_globs = {{{short!r}: _copy, **globals()}}
_test = _doctest.DocTestParser().get_doctest({docstring!r}, _globs, {name!r}, "", 0)
_found = _doctest.DocTestRunner(verbose=False).run(_test, out=lambda text: None)
assert _found.failed == 0
"""


class RunFolderError(ValueError):
    """The folder holds another run, or its source files changed since the holes were cut."""


@dataclass(frozen=True, kw_only=True)
class HoleSettings:
    """What decides the holes and how they are asked; a run folder holds one of these."""

    source: Path
    kinds: tuple[str, ...]
    count: int  # holes per kind
    seed: int
    max_new_tokens: int  # completion.max_new_tokens (a line gets at most 48)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": str(self.source),
            "python": platform.python_version(),
            "kinds": list(self.kinds),
            "count": self.count,
            "seed": self.seed,
            "max_new_tokens": self.max_new_tokens,
        }


@dataclass(frozen=True, kw_only=True)
class Mode:
    """One way of completing: a model, its prompt (fim or chat), its context budget, and
    whether the prompt also has the definitions from other files that the code uses."""

    model: str
    prompt: str  # one of PROMPTS
    context_tokens: int  # completion.max_context_tokens
    other_files: bool = False  # completion.other_files, the source folder as the workspace
    typed: bool = False  # asked right after the request one key earlier (TYPED)
    moved: bool = False  # asked right after a request at another place (MOVED)

    @classmethod
    def parse(cls, model: str, mode: str, context_tokens: int) -> Mode:
        """A mode from its name in `--modes`: a prompt, `+files` for the other files, `+typed`
        for a key typed after the request before, `+moved` for a request at another place."""
        unmoved = mode.removesuffix(MOVED)
        typed = unmoved.removesuffix(TYPED)
        prompt = typed.removesuffix(WITH_FILES)
        return cls(
            model=model,
            prompt=prompt,
            context_tokens=context_tokens,
            other_files=prompt != typed,
            typed=typed != unmoved,
            moved=unmoved != mode,
        )

    @property
    def label(self) -> str:
        files = WITH_FILES if self.other_files else ""
        typed = TYPED if self.typed else ""
        moved = MOVED if self.moved else ""
        return f"{self.model} {self.prompt}{files}{typed}{moved} {self.context_tokens}"


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            names = [line.partition(":")[2].strip() for line in info if "model name" in line]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count()}


def doctest_program(hole: holes.Hole) -> str:
    module = hole.module or "solution"
    return DOCTEST_PROGRAM.format(
        module=module,
        short=module.rpartition(".")[2],
        docstring=hole.docstring,
        name=hole.function or "function",
    )


def run_doctest(hole: holes.Hole, filled: str, limits: sandbox.Limits) -> dict[str, Any]:
    """The hole's function's docstring examples, run on the file with the completion in it."""
    return sandbox.run_python_tests(filled, doctest_program(hole), None, limits).as_dict()


def doctest_runs(hole: holes.Hole, original: str, limits: sandbox.Limits) -> bool:
    """Whether the examples tell a body from none: the original passes, a lone `pass` fails."""
    if not hole.docstring or not hole.module:
        return False
    if run_doctest(hole, original, limits)["status"] != "pass":
        return False  # the module does not load alone, or its examples need more
    return run_doctest(hole, hole.filled(original, "pass"), limits)["status"] != "pass"


def _cut(settings: HoleSettings, limits: sandbox.Limits) -> Iterator[dict[str, Any]]:
    for kind in settings.kinds:
        taken = 0
        for hole in holes.draw(settings.source, kind, settings.seed):
            if taken == settings.count:
                break
            record = hole.as_dict()
            if hole.docstring:
                original = holes.read_source(settings.source, hole.path) or ""
                record["doctest_runs"] = doctest_runs(hole, original, limits)
                if kind == "doctest" and not record["doctest_runs"]:
                    continue
            taken += 1
            yield record


def prepare(out: Path, settings: HoleSettings, limits: sandbox.Limits) -> list[dict[str, Any]]:
    """Create or reopen the run folder and cut its holes once; refuse another run's folder."""
    out.mkdir(parents=True, exist_ok=True)
    manifest = records.read_json(out / records.RUN)
    if manifest is not None and (
        manifest.get("kind") != KIND or manifest.get("holes") != settings.as_dict()
    ):
        raise RunFolderError(
            f"{out} holds another run ({manifest.get('holes') or manifest.get('kind')}): "
            "use the same options to resume it, or another --out folder"
        )
    cut = records.read_records(out / HOLES)
    if not cut:
        partial = out / (HOLES + ".partial")  # a killed cut starts over
        partial.unlink(missing_ok=True)
        for record in _cut(settings, limits):
            records.append_record(partial, record)
            cut.append(record)
        if not cut:
            raise RunFolderError(f"no holes found in {settings.source}: no .py files to cut from")
        os.replace(partial, out / HOLES)
    records.write_json(
        out / records.RUN,
        {
            "kind": KIND,
            "holes": settings.as_dict(),
            "modes": (manifest or {}).get("modes", []),
            "not_applicable": (manifest or {}).get("not_applicable", {}),
            "machine": machine(),
            "commands": (manifest or {}).get("commands", []),
        },
    )
    return cut


def note_run(out: Path, *, command: str | None = None, mode: str | None = None) -> None:
    """Remember a command line, or a mode, in run.json (the report lists them)."""
    manifest = records.read_json(out / records.RUN) or {}
    if command is not None and command not in manifest.setdefault("commands", []):
        manifest["commands"].append(command)
    if mode is not None and mode not in manifest.setdefault("modes", []):
        manifest["modes"].append(mode)
    records.write_json(out / records.RUN, manifest)


def elsewhere(document: str, offset: int, seed: str) -> int:
    """The end of a line MOVED_LINES (seeded) above or below the cursor's, within the file
    (in a shorter file, its farther end)."""
    rng = random.Random(seed)
    lines = document.split("\n")
    line = document.count("\n", 0, offset)
    distance, direction = rng.randint(*MOVED_LINES), rng.choice((-1, 1))
    target = line + direction * distance
    if not 0 <= target < len(lines):
        target = line - direction * distance
    if not 0 <= target < len(lines):  # a short file: its farther end
        target = 0 if line >= len(lines) // 2 else len(lines) - 1
    return sum(len(text) + 1 for text in lines[:target]) + len(lines[target])


def note_not_applicable(out: Path, mode: str, reason: str) -> None:
    manifest = records.read_json(out / records.RUN) or {}
    manifest.setdefault("not_applicable", {})[mode] = reason
    records.write_json(out / records.RUN, manifest)


def pending(out: Path, mode: Mode, cut: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The holes this mode has not filled yet in this folder."""
    done = {
        r.get("hole_id")
        for r in records.read_records(out / COMPLETIONS)
        if r.get("mode") == mode.label
    }
    return [record for record in cut if record["id"] not in done]


def complete_hole(
    engine: Engine,
    hole: holes.Hole,
    original: str,
    path: str,
    mode: Mode,
    max_new_tokens: int,
    workspace: Path | None = None,
) -> dict[str, Any]:
    """Ask for the hole as the editor asks at that cursor, and score what it would insert.

    `original` is the file's text, `path` where it is (what the editor gives as the document's),
    `workspace` the folder the other files come from when the mode has them.
    """
    document, offset = hole.document(original)
    language, scope = completion.scope_at(document, offset, path)
    text, seconds, result = "", 0.0, None

    def ask(document: str, offset: int) -> completion.Completion:
        return completion.complete(
            engine,
            document,
            offset,
            language=language,
            path=path,
            scope=scope,
            max_new_tokens=max_new_tokens,
            max_context_tokens=mode.context_tokens,
            flag=CancelFlag(),
            fill_in_middle=mode.prompt in FIM_PROMPTS,
            line_in_middle=mode.prompt == "fim-line",
            suffix_first=mode.prompt == "fim-spm",
            workspace=workspace,
            other_files=mode.other_files,
        )

    if scope is not Scope.NONE:
        if mode.typed and offset > 0:  # the key before: the cursor's last character not typed
            ask(document[: offset - 1] + document[offset:], offset - 1)
        if mode.moved:  # the cursor was at another place of the file
            ask(document, elsewhere(document, offset, hole.id))
        started = time.monotonic()
        answer = ask(document, offset)
        seconds = time.monotonic() - started
        result = answer.result
        text = answer.text if answer.finished else ""
    return {
        "mode": mode.label,
        "model": mode.model,
        "prompt": mode.prompt,
        "context_tokens": mode.context_tokens,
        "other_files": mode.other_files,
        "typed": mode.typed,
        "moved": mode.moved,
        "hole_id": hole.id,
        "kind": hole.kind,
        "scope": scope.value,
        "text": text,
        "raw": None if result is None else result.text[:2000],
        "exact": exact_match(text, hole.expected),
        "similarity": round(edit_similarity(text, hole.expected), 4),
        "empty": not text,
        "parses": parses(hole.filled(original, text), language) if text else None,
        "first_token_s": None if result is None else result.time_to_first_token_s,
        "seconds": round(seconds, 3),
        "metrics": None if result is None else result.as_dict(),
        "load_1min": round(os.getloadavg()[0], 2),
    }


def run_mode(
    out: Path,
    settings: HoleSettings,
    engine: Engine,
    mode: Mode,
    todo: list[dict[str, Any]],
    limits: sandbox.Limits,
    on_done: Callable[[dict[str, Any]], None] | None = None,
) -> None:
    """Fill, score and record each hole in `todo`, appending each record when it is whole."""
    note_run(out, mode=mode.label)
    for data in todo:
        hole = holes.hole_from_dict(data)
        original = holes.read_source(settings.source, hole.path)
        if original is None or holes.sha256(original) != hole.sha256:
            raise RunFolderError(
                f"{settings.source / hole.path} changed since its holes were cut: "
                "use another --out folder"
            )
        path = str(settings.source / hole.path)
        record = complete_hole(
            engine, hole, original, path, mode, settings.max_new_tokens, settings.source
        )
        if data.get("doctest_runs"):
            filled = hole.filled(original, record["text"])
            record["doctest"] = run_doctest(hole, filled, limits) if record["text"] else NOTHING
        records.append_record(out / COMPLETIONS, record)
        if on_done is not None:
            on_done(record)
