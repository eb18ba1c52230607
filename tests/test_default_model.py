"""The real default model end to end: `feedback` on a file with an off-by-one bug.

`make test` pulls the model before the suite; run `make pull` first when calling pytest directly.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from lsp_client import eventually
from starchat_lsp import sandbox
from starchat_lsp.models.catalogue import DEFAULT_MODEL
from starchat_lsp.models.store import ModelStore

pytestmark = pytest.mark.default_model

SAMPLE = Path(__file__).parent.parent / "examples" / "off_by_one.py"


@pytest.fixture(scope="module", autouse=True)
def default_model_is_pulled() -> None:
    if not any(s.pulled for s in ModelStore().list() if s.name == DEFAULT_MODEL):
        pytest.fail(
            f"the default model is not pulled: run `make pull` (or `starchat-lsp models "
            f"pull {DEFAULT_MODEL}`) before this test"
        )


def test_feedback_streams_an_answer_and_a_diff_that_apply_keeps_whole(tmp_path: Path) -> None:
    buggy = tmp_path / "off_by_one.py"
    shutil.copy(SAMPLE, buggy)
    original = buggy.read_text()
    result = subprocess.run(
        [sys.executable, "-m", "starchat_lsp", "feedback", str(buggy), "--json", "--apply"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=dict(os.environ, HF_HUB_OFFLINE="1"),
    )
    assert "Traceback" not in result.stderr
    answer = json.loads(result.stdout)
    assert answer["model"] == DEFAULT_MODEL
    assert len(answer["answer"].split()) >= 10, answer["answer"]
    assert answer["diff"].startswith(f"--- a/{buggy}")
    assert answer["metrics"]["tokens_out"] > 0
    assert answer["metrics"]["time_to_first_token_s"] > 0
    # Verified: the docstring's example became a check, run on each candidate fix.
    verification = answer["verification"]
    assert verification["evidence"] == [
        {
            "code": "assert moving_average([1, 2, 3, 4], 2) == [1.5, 2.5, 3.5]",
            "source": "the docstring",
            "kind": "expects",
        }
    ]
    assert 1 <= len(verification["candidates"]) <= 4
    if verification["verified"]:  # then the applied file really gives the docstring's result
        chosen = verification["candidates"][verification["chosen"]]
        assert chosen["passed"] == [verification["evidence"][0]["code"]]
        assert verification["verdict"].startswith("verified: passes the example from the docstring")
    if answer["applied"]:
        assert result.returncode == 0
        assert buggy.read_text() != original
        if verification["verified"]:  # model output runs only in the sandbox, here too
            check = verification["evidence"][0]["code"]
            ran = sandbox.run_python_tests(buggy.read_text(), check, "moving_average")
            assert ran.status == "pass", ran.detail
        assert buggy.with_name("off_by_one.py.orig").read_text() == original
    else:  # refused (cut, unparsable): then nothing at all was written
        assert result.returncode == 1 and answer["problems"]
        assert buggy.read_text() == original
        assert not buggy.with_name("off_by_one.py.orig").exists()


def test_feedback_streams_text_to_the_terminal() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "starchat_lsp", "explain", f"{SAMPLE}:7", "--max-new-tokens", "40"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=dict(os.environ, HF_HUB_OFFLINE="1"),
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.split()) >= 5
    assert f"{DEFAULT_MODEL} · loaded in" in result.stderr


def apply_text_edits(text: str, text_edits: list[Any]) -> str:
    """Apply LSP TextEdits, last first (ASCII text: UTF-16 columns are characters)."""
    lines = text.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))

    def offset(position: Any) -> int:
        return offsets[min(position.line, len(lines))] + position.character

    for edit in sorted(
        text_edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True
    ):
        text = text[: offset(edit.range.start)] + edit.new_text + text[offset(edit.range.end) :]
    return text


@pytest_lsp.fixture(
    config=ClientServerConfig(server_command=[sys.executable, "-m", "starchat_lsp", "serve"])
)
async def server(lsp_client: LanguageClient) -> Any:
    await lsp_client.initialize_session(
        types.InitializeParams(capabilities=client_capabilities("neovim"))
    )
    yield
    await lsp_client.shutdown_session()


async def test_feedback_action_through_the_server(server: LanguageClient) -> None:
    uri = "file:///work/off_by_one.py"
    original = SAMPLE.read_text()
    server.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id="python", version=1, text=original
            )
        )
    )
    actions = await server.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=types.Range(
                start=types.Position(line=6, character=8), end=types.Position(line=6, character=8)
            ),
            context=types.CodeActionContext(diagnostics=[], only=["refactor.starchat.feedback"]),
        )
    )
    assert actions is not None and len(actions) == 1
    resolved = await server.code_action_resolve_async(actions[0])  # type: ignore[arg-type]
    shown = [m.message for m in server.messages]
    assert any(len(m.split()) >= 10 for m in shown), shown  # the feedback itself
    if resolved.edit is None:  # refused: the user is told why, nothing is edited
        assert any("no fix applied" in m for m in shown), shown
        return
    change = resolved.edit.document_changes[0]  # type: ignore[index]
    assert change.text_document.version == 1
    fixed = apply_text_edits(original, list(change.edits))
    assert fixed != original
    ast.parse(fixed)  # an applied fix always parses
    await eventually(lambda: server.diagnostics.get(uri), "starchat's diagnostics")
    diagnostics = server.diagnostics[uri]
    assert diagnostics and all(d.source == "starchat" for d in diagnostics)
    assert all(0 <= d.range.start.line < len(original.splitlines()) for d in diagnostics)
