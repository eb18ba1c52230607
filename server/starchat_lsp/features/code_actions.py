"""Code actions: listing is instant and runs no model; resolving one runs it."""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

from starchat_lsp import tasks
from starchat_lsp.context.instructions import Instruction, instruction_at
from starchat_lsp.features import feedback_diagnostics
from starchat_lsp.features.assist_jobs import language_of, line_span, run_job, workspace_edit
from starchat_lsp.features.errors import json_rpc_errors

if TYPE_CHECKING:
    from starchat_lsp.server import StarchatServer

FEEDBACK_KIND = "refactor.starchat.feedback"
EXPLAIN_KIND = "refactor.starchat.explain"
WRITE_KIND = "refactor.starchat.write"
WRITE_TITLE = "Write code for this instruction with starchat"

OFFERS = (
    (tasks.TaskKind.FEEDBACK, "Ask starchat for feedback on this code", FEEDBACK_KIND),
    (tasks.TaskKind.FIX, "Fix this code with starchat", types.CodeActionKind.QuickFix),
    (tasks.TaskKind.EXPLAIN, "Explain this code with starchat", EXPLAIN_KIND),
)


def offer(
    uri: str,
    version: int | None,
    lines: tuple[int, int],
    diagnostics: list[types.Diagnostic],
    instruction: Instruction | None = None,
) -> list[types.CodeAction]:
    """The actions for a range: titles and data only, so listing costs nothing."""
    data = {"uri": uri, "version": version, "start_line": lines[0], "end_line": lines[1]}
    actions = [
        types.CodeAction(title=title, kind=kind, data={**data, "task": task.value})
        for task, title, kind in OFFERS
    ]
    if instruction is not None:
        where = {"start_line": instruction.start_line, "end_line": instruction.end_line}
        actions.insert(
            0,
            types.CodeAction(
                title=WRITE_TITLE,
                kind=WRITE_KIND,
                data={**data, **where, "task": tasks.TaskKind.WRITE.value},
            ),
        )
    for diagnostic in diagnostics:
        if diagnostic.source == feedback_diagnostics.SOURCE:
            continue
        message = diagnostic.message.strip().splitlines()[0] if diagnostic.message.strip() else ""
        actions.append(
            types.CodeAction(
                title=f"Fix with starchat: {message[:80]}",
                kind=types.CodeActionKind.QuickFix,
                diagnostics=[diagnostic],
                data={**data, "task": tasks.TaskKind.FIX.value, "note": diagnostic.message},
            )
        )
    return actions


def _kind_name(kind: str | Enum | None) -> str:
    return str(kind.value) if isinstance(kind, Enum) else kind or ""


def _wanted(action: types.CodeAction, only: Sequence[str] | None) -> bool:
    kind = _kind_name(action.kind)
    wanted = [_kind_name(k) for k in only or ()]
    return not wanted or any(kind == k or kind.startswith(f"{k}.") for k in wanted)


def _job_data(action: types.CodeAction) -> dict[str, Any]:
    data = action.data
    checks = {"uri": str, "start_line": int, "end_line": int, "task": str}
    if not isinstance(data, dict) or any(
        not isinstance(data.get(key), kind) for key, kind in checks.items()
    ):
        raise JsonRpcInvalidParams("this code action has no starchat data: list actions again")
    if data["task"] not in {task.value for task in tasks.TaskKind}:
        raise JsonRpcInvalidParams(f"unknown starchat task {data['task']!r}")
    return data


def register(server: StarchatServer) -> None:
    @server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(
            resolve_provider=True,
            code_action_kinds=[
                types.CodeActionKind.QuickFix,
                FEEDBACK_KIND,
                EXPLAIN_KIND,
                WRITE_KIND,
            ],
        ),
    )
    @json_rpc_errors
    def list_actions(
        ls: StarchatServer, params: types.CodeActionParams
    ) -> list[types.CodeAction] | None:
        uri = params.text_document.uri
        if uri not in ls.workspace.text_documents:
            return None
        document = ls.workspace.get_text_document(uri)
        if not document.source.strip():
            return None
        lines = line_span(document, params.range)
        instruction = instruction_at(
            document.source, language_of(document), params.range.start.line, params.range.end.line
        )
        diagnostics = list(params.context.diagnostics)
        actions = offer(uri, document.version, lines, diagnostics, instruction)
        return [action for action in actions if _wanted(action, params.context.only)]

    @server.feature(types.CODE_ACTION_RESOLVE)
    @json_rpc_errors
    async def resolve(ls: StarchatServer, action: types.CodeAction) -> types.CodeAction:
        data = _job_data(action)
        task = tasks.TaskKind(data["task"])
        job = await run_job(
            ls, task, data["uri"], data["start_line"], data["end_line"], data.get("note")
        )
        if task in tasks.FIXING:
            action.edit = workspace_edit(job, ls.workspace.position_codec)
            if action.edit is None:
                reasons = "; ".join(job.outcome.problems) or "the answer had no code to apply"
                ls.tell(f"starchat: no fix applied ({reasons})", types.MessageType.Info)
        if task not in (tasks.TaskKind.FIX, tasks.TaskKind.WRITE):
            ls.tell(job.outcome.answer, types.MessageType.Info)
        if task is tasks.TaskKind.FEEDBACK and ls.settings.diagnostics.enabled:
            feedback_diagnostics.publish(ls, job)
        return action
