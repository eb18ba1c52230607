"""`eval complete`: holes cut the same for a seed, scores right on hand-made cases, the editor's own
code path for each hole, and the command end to end on a tiny model."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from lsprotocol import types
from pygls.workspace import Workspace

from starchat_lsp import sandbox
from starchat_lsp.completion import CompletionCache
from starchat_lsp.engine.base import CancelFlag, Engine
from starchat_lsp.engine.transformers_engine import TransformersEngine
from starchat_lsp.eval import complete_runner, holes
from starchat_lsp.eval.complete_scores import (
    edit_similarity,
    exact_match,
    levenshtein,
    parses,
    percentile,
    summarize,
)
from starchat_lsp.features.completion import LatestPerDocument, RecentRuns, completion_at
from starchat_lsp.settings import Settings
from test_eval_cli import run_cli

SHAPES = '''"""Shapes and their areas."""

import math

UNIT = 1.0  # the side of the unit square


def area(kind, size):
    """The area of a shape of this kind and size.

    >>> area("square", 3)
    9
    >>> area("circle", 1) > 3.14
    True
    """
    if kind == "square":
        return size * size
    return math.pi * size * size


def perimeter(kind, size):
    """The length around it."""
    if kind == "square":
        return 4 * size
    return 2 * math.pi * size


def nothing_yet():
    """Not written yet."""
    pass


class Square:
    """A square with a side."""

    def __init__(self, side):
        self.side = side
        self.name = "square"

    def scaled(self, factor):
        # a new square, not this one changed
        bigger = Square(self.side * factor)
        bigger.name = self.name + " scaled"
        return bigger

    def describe(self):
        words = [self.name, "of side", str(self.side)]
        return " ".join(words)


def total_area(shapes):
    """The sum of the areas of (kind, size) pairs."""
    total = 0.0
    for kind, size in shapes:
        total += area(kind, size)
    return total
'''
TESTS_FILE = "def test_area():\n    assert True\n" * 40  # under tests/: never cut
SMALL = "x = 1\n"  # too small to cut from


@pytest.fixture
def source(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    (root / "geometry").mkdir(parents=True)
    (root / "geometry" / "shapes.py").write_text(SHAPES)
    (root / "geometry" / "more_shapes.py").write_text(SHAPES.replace("Square", "Box"))
    (root / "tests").mkdir()
    (root / "tests" / "test_shapes.py").write_text(TESTS_FILE)
    (root / "tiny.py").write_text(SMALL)
    return root


# -- holes ------------------------------------------------------------------------------------


def test_the_same_seed_cuts_the_same_holes(source: Path) -> None:
    first = holes.cut(source, holes.KINDS, 2, seed=3)
    assert first == holes.cut(source, holes.KINDS, 2, seed=3)
    assert [h.kind for h in first] == [kind for kind in holes.KINDS for _ in range(2)]
    stdlib = holes.cut(holes.stdlib_root(), ("line", "rest", "body"), 3, seed=16)
    assert stdlib == holes.cut(holes.stdlib_root(), ("line", "rest", "body"), 3, seed=16)
    assert len(stdlib) == 9 and len({h.path for h in stdlib if h.kind == "body"}) == 3
    seeds = {
        tuple(h.as_dict().values()) for s in range(6) for h in holes.cut(source, ("rest",), 1, s)
    }
    assert len(seeds) > 1  # another seed, other holes


def test_holes_cut_what_their_kind_says(source: Path) -> None:
    assert holes.source_files(source) == ["geometry/more_shapes.py", "geometry/shapes.py"]
    for seed in range(8):
        for hole in holes.cut(source, holes.KINDS, 2, seed):
            original = (source / hole.path).read_text()
            assert original[hole.start : hole.end] == hole.expected
            assert hole.sha256 == holes.sha256(original)
            line_start = original.rfind("\n", 0, hole.start) + 1
            before = original[line_start : hole.start]
            assert hole.line == original.count("\n", 0, hole.start)
            if hole.kind == "line":
                assert not before.strip() and "\n" not in hole.expected
                assert original[hole.end : hole.end + 1] == "\n"
            elif hole.kind == "rest":
                assert before.strip() and "\n" not in hole.expected
                assert original[hole.end : hole.end + 1] == "\n"
            else:
                assert not before.strip() and hole.expected.count("\n") >= 1
                assert hole.function in {
                    "area", "perimeter", "Square.scaled", "Box.scaled", "Square.describe",
                    "Box.describe", "Square.__init__", "Box.__init__", "total_area",
                }  # fmt: skip
                assert '"""' not in hole.expected  # the docstring stays
            assert hole.expected.strip() not in {"pass", "...", ""}
            if hole.kind == "doctest":
                assert hole.function == "area" and ">>> area(" in str(hole.docstring)
                assert hole.module in {"geometry.shapes", "geometry.more_shapes"}


def test_a_hole_gives_the_document_the_editor_holds_and_the_filled_file() -> None:
    original = "import x\ny = 1 + 2\n"
    hole = holes.Hole(
        id="rest-01",
        kind="rest",
        path="a.py",
        start=13,
        end=18,
        line=1,
        expected="1 + 2",
        sha256="",
    )
    assert hole.document(original) == ("import x\ny = \n", 13)
    assert hole.filled(original, "3") == "import x\ny = 3\n"
    assert holes.hole_from_dict({**hole.as_dict(), "doctest_runs": True}) == hole


# -- scores -----------------------------------------------------------------------------------


def test_scores_on_hand_made_cases() -> None:
    assert exact_match("return x  \n", "return x")
    assert exact_match("if a:   \n    b", "if a:\n    b\n")
    assert not exact_match("return  x", "return x")
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein("", "abc") == 3 and levenshtein("abc", "abc") == 0
    assert edit_similarity("kitten", "sitting") == pytest.approx(1 - 3 / 7)
    assert edit_similarity("", "return x") == 0.0
    assert edit_similarity("return x ", "return x") == 1.0
    assert parses("def f():\n    return 1\n", "python")
    assert not parses("def f():\n    return (1\n", "python")
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 0.9) == 5.0
    assert percentile([1.0, 2.0], 0.5) == 1.0 and percentile([], 0.9) is None
    records = [
        {"mode": "m", "kind": "line", "exact": True, "similarity": 1.0, "empty": False,
         "parses": True, "scope": "block", "first_token_s": 0.5, "seconds": 1.0},
        {"mode": "m", "kind": "line", "exact": False, "similarity": 0.0, "empty": True,
         "parses": None, "scope": "none", "first_token_s": None, "seconds": 0.0},
        {"mode": "m", "kind": "body", "exact": False, "similarity": 0.5, "empty": False,
         "parses": False, "scope": "block", "first_token_s": 0.7, "seconds": 3.0,
         "doctest": {"status": "fail"}},
    ]  # fmt: skip
    summary = summarize(records)["m"]
    line, everything = summary["line"], summary["all"]
    assert (line.holes, line.exact, line.empty, line.suggested, line.parsed) == (2, 1, 1, 1, 1)
    assert line.mean_similarity == 0.5 and line.seconds == [1.0]  # no model run, no latency
    assert everything.holes == 3 and everything.parsed == 1 and everything.suggested == 2
    assert summary["body"].doctests == {"fail": 1}


# -- the editor's code path -------------------------------------------------------------------


class Recording:
    """An engine that remembers what it was asked and with which settings."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.calls: list[tuple[str, Any, Any]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)

    def complete(self, prompt: Any, settings: Any, cancel: CancelFlag | None = None) -> Any:
        self.calls.append(("complete", prompt, settings))
        return self.engine.complete(prompt, settings, cancel)

    def chat(self, messages: Any, settings: Any, cancel: CancelFlag | None = None) -> Any:
        self.calls.append(("chat", messages, settings))
        return self.engine.chat(messages, settings, cancel)


def editor_suggestion(
    engine: Recording, path: Path, text: str, offset: int, workspace_root: Path | None = None
) -> str:
    """What the LSP glue (features/completion.py) offers at the offset, run in-process; with a
    workspace folder, with completion.other_files on."""
    settings = Settings()
    settings.completion.debounce_ms = 0
    settings.completion.max_new_tokens = 24
    settings.completion.other_files = workspace_root is not None
    workspace = Workspace(workspace_root.as_uri() if workspace_root else None)
    uri = path.as_uri()
    workspace.put_text_document(
        types.TextDocumentItem(uri=uri, language_id="python", version=1, text=text)
    )

    async def run(
        work: Callable[[Engine, CancelFlag], Any], flag: CancelFlag, *, yields: bool = False
    ) -> Any:  # ModelHost.run's signature
        return await asyncio.to_thread(work, engine, flag)  # type: ignore[arg-type]

    server = SimpleNamespace(
        settings=settings,
        workspace=workspace,
        completion_cache=CompletionCache(),
        completion_cache_hits=0,
        latest_completions=LatestPerDocument(),
        completion_runs=RecentRuns(),
        host=SimpleNamespace(run=run),
    )
    position = workspace.get_text_document(uri).client_position_at_offset(offset)
    found = asyncio.run(completion_at(server, uri, position))  # type: ignore[arg-type]
    return "" if found is None else found[1]


@pytest.mark.parametrize(("model", "prompt"), [("fim", "fim"), ("chatml", "chat")])
def test_each_hole_asks_the_engine_what_the_editor_asks(
    source: Path, model: str, prompt: str, request: pytest.FixtureRequest
) -> None:
    folder = request.getfixturevalue(f"tiny_{model}_model")
    engine = Recording(TransformersEngine(str(folder), dtype="float32"))
    mode = complete_runner.Mode(model="tiny", prompt=prompt, context_tokens=1024)
    try:
        for hole in holes.cut(source, ("line", "rest", "body"), 1, seed=0):
            original = (source / hole.path).read_text()
            document, offset = hole.document(original)
            path = source / hole.path
            editor = editor_suggestion(engine, path, document, offset)
            asked = engine.calls[:]
            record = complete_runner.complete_hole(engine, hole, original, str(path), mode, 24)
            assert [asked[0][0]] == [{"fim": "complete", "chat": "chat"}[prompt]]
            assert engine.calls[len(asked) :] == asked  # the same prompt, the same settings
            assert record["text"] == editor
            engine.calls.clear()
    finally:
        engine.engine.close()


REPORT = '''"""Reports on shapes."""

from geometry.shapes import Square, area


def describe_all(shapes):
    """One line per shape."""
    lines = []
    for kind, size in shapes:
        lines.append(f"{kind}: {area(kind, size)}")
    return "\\n".join(lines)
'''


def report_hole(text: str = REPORT) -> holes.Hole:
    """The rest of the line after REPORT's `return ` (the call to area), in `text`."""
    start = text.index("return ") + len("return ")
    end = text.index("\n", start)
    return holes.Hole(
        id="rest-01",
        kind="rest",
        path="report.py",
        start=start,
        end=end,
        line=text.count("\n", 0, start),
        expected=text[start:end],
        sha256=holes.sha256(text),
    )


def test_other_files_reach_the_prompt_as_the_editor_sends_them(
    source: Path, tiny_fim_model: Path
) -> None:
    path = source / "report.py"
    path.write_text(REPORT)
    hole = report_hole()
    mode = complete_runner.Mode.parse("tiny", "fim+files", 1024)
    assert mode.label == "tiny fim+files 1024" and mode.prompt == "fim" and mode.other_files
    engine = Recording(TransformersEngine(str(tiny_fim_model), dtype="float32"))
    try:
        document, offset = hole.document(REPORT)
        editor = editor_suggestion(engine, path, document, offset, workspace_root=source)
        asked = engine.calls[:]
        record = complete_runner.complete_hole(engine, hole, REPORT, str(path), mode, 24, source)
        assert engine.calls[len(asked) :] == asked  # the same prompt, the same settings
        files = asked[0][1].other_files
        assert files.repo == "src" and files.path == "report.py"
        [(shapes, definitions)] = files.files
        assert shapes == "geometry/shapes.py"
        assert definitions.startswith('def area(kind, size):\n    """The area of a shape')
        assert record["other_files"] is True and record["text"] == editor
    finally:
        engine.engine.close()


def test_a_typed_mode_asks_the_key_before_then_the_hole_as_the_editor_does(
    tmp_path: Path, tiny_fim_model: Path
) -> None:
    path = tmp_path / "report.py"
    path.write_text(REPORT)
    hole = report_hole()
    mode = complete_runner.Mode.parse("tiny", "fim+typed", 1024)
    assert mode.label == "tiny fim+typed 1024" and mode.typed and not mode.other_files
    engine = Recording(TransformersEngine(str(tiny_fim_model), dtype="float32"))
    try:
        document, offset = hole.document(REPORT)
        editor = editor_suggestion(engine, path, document, offset)
        asked = engine.calls[:]
        record = complete_runner.complete_hole(engine, hole, REPORT, str(path), mode, 24)
        before, at_hole = engine.calls[len(asked) :]
        assert at_hole == asked[0]  # the hole itself: the editor's prompt and settings
        # The key before: the cursor's last character ("return" + " ") not typed yet. The
        # model is asked from before a typed blank (healed), so both ask the same prompt.
        assert before[1].prefix == at_hole[1].prefix
        assert before[1].prefix.endswith("return") and before[1].suffix == at_hole[1].suffix
        assert record["typed"] is True and record["text"] == editor
    finally:
        engine.engine.close()


def test_a_moved_mode_asks_at_another_place_then_the_hole_as_the_editor_does(
    tmp_path: Path, tiny_fim_model: Path
) -> None:
    text = "".join(f"value_{n} = {n}\n" for n in range(100)) + REPORT
    path = tmp_path / "report.py"
    path.write_text(text)
    hole = report_hole(text)
    mode = complete_runner.Mode.parse("tiny", "fim+moved", 1024)
    assert mode.label == "tiny fim+moved 1024" and mode.moved and not mode.typed
    engine = Recording(TransformersEngine(str(tiny_fim_model), dtype="float32"))
    try:
        document, offset = hole.document(text)
        editor = editor_suggestion(engine, path, document, offset)
        asked = engine.calls[:]
        record = complete_runner.complete_hole(engine, hole, text, str(path), mode, 24)
        elsewhere, at_hole = engine.calls[len(asked) :]
        assert at_hole == asked[0]  # the hole itself: the editor's prompt and settings
        # Another place of the same document, 8 to 64 lines away, at a line's end.
        other = complete_runner.elsewhere(document, offset, hole.id)
        lines_away = abs(document.count("\n", 0, other) - document.count("\n", 0, offset))
        assert 8 <= lines_away <= 64 and document[other] == "\n"
        assert elsewhere[1].prefix.endswith(document[other - 10 : other])
        assert record["moved"] is True and record["text"] == editor
    finally:
        engine.engine.close()


# -- doctests in the sandbox ------------------------------------------------------------------


def test_the_doctests_of_a_body_tell_a_right_body_from_a_wrong_one(source: Path) -> None:
    [hole] = holes.cut(source, ("doctest",), 1, seed=0)
    original = (source / hole.path).read_text()
    limits = sandbox.Limits(time_s=30)
    assert complete_runner.doctest_runs(hole, original, limits)
    assert complete_runner.run_doctest(hole, original, limits)["status"] == "pass"
    wrong = hole.filled(original, "return size + size")
    assert complete_runner.run_doctest(hole, wrong, limits)["status"] == "fail"
    broken = hole.filled(original, "return (size")
    assert complete_runner.run_doctest(hole, broken, limits)["status"] == "error"


# -- the command ------------------------------------------------------------------------------


def test_the_command_runs_resumes_and_reports(
    source: Path, tmp_path: Path, tiny_fim_model: Path
) -> None:
    out = tmp_path / "run"
    command = [
        "eval", "complete", "--source", str(source), "--model", str(tiny_fim_model),
        "--count", "1", "--modes", "fim,chat", "--context-tokens", "256",
        "--context-tokens", "1024", "--max-new-tokens", "16", "--out", str(out),
    ]  # fmt: skip
    done = run_cli(*command)
    assert done.returncode == 0, done.stderr
    cut = [json.loads(line) for line in (out / "holes.jsonl").read_text().splitlines()]
    assert [h["kind"] for h in cut] == ["line", "rest", "body", "doctest"]
    assert cut[3]["doctest_runs"] is True
    made = [json.loads(line) for line in (out / "completions.jsonl").read_text().splitlines()]
    assert len(made) == 4 * 4  # 4 holes, 2 prompts x 2 context sizes
    assert {r["mode"] for r in made} == {
        f"{tiny_fim_model} {p} {c}" for p in ("fim", "chat") for c in (256, 1024)
    }
    assert all(r["doctest"]["status"] in sandbox.STATUSES for r in made if r["kind"] == "doctest")
    again = run_cli(*command)
    assert again.returncode == 0 and "already filled" in again.stderr
    assert len((out / "completions.jsonl").read_text().splitlines()) == 16
    other = run_cli(*command, "--seed", "1")
    assert other.returncode != 0 and "another run" in other.stderr
    report = run_cli("eval", "report", str(out))
    assert report.returncode == 0, report.stderr
    text = (out / "report.md").read_text()
    assert "## Scores" in text and "## Doctests" in text and "## Per hole" in text
    assert f"{tiny_fim_model} chat 256" in text and "Command: `starchat-lsp eval complete" in text
    assert (out / "completion.png").stat().st_size > 0 and (out / "report.html").exists()
    wrong = run_cli("eval", "complete", "--kinds", "line,lines", "--out", str(tmp_path / "x"))
    assert wrong.returncode != 0 and "--kinds" in wrong.stderr
