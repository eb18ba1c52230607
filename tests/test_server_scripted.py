"""Feedback and fix through the real server on scripted models, so answers and edits are exact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types

from lsp_client import StarchatTestClient, eventually
from test_server import BUGGY, CONFIG, URI, list_actions, open_buggy, request, start, whole
from tiny_model import build_scripted_model

FIXED_FUNCTION = '''def total(values):
    """Add up the values."""
    result = 0
    for index in range(len(values)):
        result += values[index]
    return result'''
FEEDBACK = (
    "Line 7 stops one short: `range(len(values) - 1)` skips the last value. "
    f"Use `range(len(values))`.\n\n```python\n{FIXED_FUNCTION}\n```\n"
)
BROKEN = "```python\ndef total(values):\n    return (sum(values)\n```\n"


@pytest.fixture(scope="module")
def feedback_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_scripted_model(tmp_path_factory.mktemp("scripted-feedback"), FEEDBACK)


@pytest.fixture(scope="module")
def broken_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_scripted_model(tmp_path_factory.mktemp("scripted-broken"), BROKEN)


def model_options(model: Path) -> dict[str, Any]:
    return {"model": {"name": str(model), "dtype": "float32"}}


@pytest_lsp.fixture(config=CONFIG)
async def reviewer(lsp_client: StarchatTestClient, feedback_model: Path) -> Any:
    await start(lsp_client, model_options(feedback_model))
    open_buggy(lsp_client)
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=CONFIG)
async def breaker(lsp_client: StarchatTestClient, broken_model: Path) -> Any:
    await start(lsp_client, model_options(broken_model))
    open_buggy(lsp_client)
    yield
    await lsp_client.shutdown_session()


async def diagnostics_become(client: StarchatTestClient, count: int) -> list[types.Diagnostic]:
    def published() -> bool:
        found = client.diagnostics.get(URI)
        return found is not None and len(found) == count

    await eventually(published, f"{count} diagnostics published")
    return client.diagnostics[URI]


async def test_feedback_gives_the_answer_diagnostics_on_the_named_line_and_a_fix(
    reviewer: StarchatTestClient,
) -> None:
    actions = await list_actions(reviewer, only=["refactor.starchat.feedback"])
    assert actions is not None and len(actions) == 1
    resolved = await reviewer.code_action_resolve_async(actions[0])  # type: ignore[arg-type]
    # The fix: one versioned edit of the one changed line.
    assert resolved.edit is not None and resolved.edit.document_changes
    change = resolved.edit.document_changes[0]
    assert isinstance(change, types.TextDocumentEdit) and change.text_document.version == 1
    [edit] = change.edits
    assert isinstance(edit, types.TextEdit)
    assert (edit.range.start.line, edit.range.end.line) == (6, 7)
    assert edit.new_text == "    for index in range(len(values)):\n"
    # The feedback text reaches the user; a diagnostic marks the line it names.
    assert any(m.message == FEEDBACK for m in reviewer.messages)
    [diagnostic] = await diagnostics_become(reviewer, 1)
    assert diagnostic.range.start.line == 6 and diagnostic.source == "starchat"
    assert diagnostic.severity == types.DiagnosticSeverity.Information
    assert diagnostic.message.startswith("Line 7 stops one short")
    # Editing that line clears it.
    reviewer.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=URI, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=edit.range, text="    for index in range(len(values)):\n"
                )
            ],
        )
    )
    assert not await diagnostics_become(reviewer, 0)


async def test_the_feedback_request_names_lines_and_returns_the_same_fix(
    reviewer: StarchatTestClient,
) -> None:
    params = {"textDocument": {"uri": URI}, "range": whole(3, 9)}
    result = await request(reviewer, "starchat/feedback", params, "fb-1")
    assert result.text == FEEDBACK and result.complete and result.lines == [6]
    assert result.fix.parses and not result.fix.problems
    assert result.fix.code == FIXED_FUNCTION
    assert "-    for index in range(len(values) - 1):" in result.fix.diff
    assert result.usage.stop_reason == "eos"
    assert BUGGY.count("\n") == 9


async def test_a_fix_that_does_not_parse_is_flagged_and_not_offered_as_an_edit(
    breaker: StarchatTestClient,
) -> None:
    actions = await list_actions(breaker, only=["quickfix"])
    assert actions is not None
    resolved = await breaker.code_action_resolve_async(actions[0])  # type: ignore[arg-type]
    assert resolved.edit is None
    assert any("does not parse" in m.message for m in breaker.messages)
    params = {"textDocument": {"uri": URI}, "range": whole(3, 9)}
    result = await request(breaker, "starchat/fix", params, "fix-broken")
    assert result.fix.parses is False and result.fix.edit is None
    assert "the proposed code does not parse" in result.fix.problems


MUTABLE_DEFAULT = "def add(item, items=[]):\n    items.append(item)\n    return items\n"


async def test_feedback_marks_what_the_analyzer_found_on_the_lines_next_to_the_answers_own(
    reviewer: StarchatTestClient,
) -> None:
    uri = "file:///work/defaults.py"
    open_buggy(reviewer, MUTABLE_DEFAULT, uri)
    actions = await list_actions(reviewer, 1, uri=uri, only=["refactor.starchat.feedback"])
    assert actions is not None and len(actions) == 1
    await reviewer.code_action_resolve_async(actions[0])  # type: ignore[arg-type]

    def published() -> bool:
        return any("B006" in d.message for d in reviewer.diagnostics.get(uri, []))

    await eventually(published, "the analyzer's finding published")
    [found] = [d for d in reviewer.diagnostics[uri] if "B006" in d.message]
    assert found.range.start.line == 0 and found.source == "starchat"
    assert found.message == "Do not use mutable data structures for argument defaults (B006, ruff)"
