"""starchat/feedback, starchat/fix, starchat/explain and starchat/chat: streamed, cancellable.

Text streams as `$/progress` notifications on the request's `partialResultToken` (value:
`{"text": chunk}`); the result carries the whole answer and usage figures. See docs/protocol.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

from starchat_lsp import tasks
from starchat_lsp.context import prompts
from starchat_lsp.context.budget import gather_context, prompt_token_budget
from starchat_lsp.engine.base import (
    CancelFlag,
    ChatMessage,
    Engine,
    GenerationResult,
)
from starchat_lsp.features import feedback_diagnostics
from starchat_lsp.features.assist_jobs import (
    JobResult,
    generation_settings,
    language_of,
    line_span,
    open_document,
    run_job,
    stream_answer,
    workspace_edit,
)
from starchat_lsp.features.errors import json_rpc_errors
from starchat_lsp.verify import pipeline

if TYPE_CHECKING:
    from starchat_lsp.server import StarchatServer

ROLES = ("user", "assistant", "system")
PROGRESS = "starchat/progress"  # verification steps after the draft


def plain(value: Any) -> Any:
    """pygls hands custom requests' params over as namedtuples: make them JSON-shaped again."""
    if hasattr(value, "_asdict"):
        return {key: plain(item) for key, item in value._asdict().items()}
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


def _field(params: Any, name: str, kind: type | tuple[type, ...], optional: bool = False) -> Any:
    value = params.get(name) if isinstance(params, dict) else None
    if value is None and optional:
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise JsonRpcInvalidParams(f"params.{name} is missing or has the wrong type")
    return value


def position(raw: Any) -> types.Position:
    """An LSP position from its JSON: KeyError, TypeError or ValueError (outside 0..2**31-1)
    when it is none."""
    found = types.Position(line=raw["line"], character=raw["character"])
    if not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0
        for v in (found.line, found.character)
    ):
        raise TypeError
    return found


def _range(params: dict[str, Any]) -> types.Range:
    raw = _field(params, "range", dict)
    try:
        start, end = (position(raw[point]) for point in ("start", "end"))
    except (KeyError, TypeError, ValueError) as error:
        raise JsonRpcInvalidParams("params.range must be {start, end} positions") from error
    if (end.line, end.character) < (start.line, start.character):
        raise JsonRpcInvalidParams("params.range ends before it starts")
    return types.Range(start=start, end=end)


def document_uri(params: dict[str, Any]) -> str:
    document = _field(params, "textDocument", dict)
    return str(_field(document, "uri", str))


def _partial_token(params: Any) -> str | int | None:
    """The request's partialResultToken, when it has a usable one."""
    token = params.get("partialResultToken") if isinstance(params, dict) else None
    return token if isinstance(token, (str, int)) and not isinstance(token, bool) else None


def _streamer(server: StarchatServer, params: Any) -> Callable[[str], None] | None:
    token = _partial_token(params)
    if token is None:
        return None
    return lambda text: server.protocol.notify(
        types.PROGRESS, types.ProgressParams(token=token, value={"text": text})
    )


def _stages(
    server: StarchatServer, params: dict[str, Any], uri: str
) -> Callable[[pipeline.Stage], None]:
    """Verification steps as `starchat/progress` notifications (see docs/protocol.md)."""
    token = _partial_token(params)
    return lambda stage: server.protocol.notify(
        PROGRESS,
        {"token": token, "uri": uri, "stage": stage.name, "message": stage.message},
    )


def _verification(job: JobResult) -> dict[str, Any] | None:
    verified = job.verified
    if verified is None:
        return None
    return {
        "verdict": verified.verdict,
        "verified": verified.verified,
        "draft": verified.draft.answer,
        "evidence": [{"code": c.code, "source": c.source} for c in verified.evidence],
        "candidates": len(verified.candidates),
        "chosen": verified.chosen,
        "seconds": verified.seconds,
        "tokensOut": verified.tokens_out,
    }


def _code_request(kind: tasks.TaskKind) -> Callable[..., Any]:
    @json_rpc_errors
    async def handle(ls: StarchatServer, params: Any) -> dict[str, Any]:
        params = plain(params)
        uri = document_uri(params)
        selection = _range(params)
        note = _field(params, "note", str, optional=True)
        if kind is tasks.TaskKind.WRITE:  # the instruction under the cursor, not its function
            lines = (selection.start.line, selection.end.line)
        else:
            lines = line_span(open_document(ls, uri), selection)
        job = await run_job(
            ls,
            kind,
            uri,
            *lines,
            note=note,
            on_text=_streamer(ls, params),
            on_stage=_stages(ls, params, uri),
        )
        codec = ls.workspace.position_codec
        edit = workspace_edit(job, codec) if kind in tasks.FIXING else None
        if kind is tasks.TaskKind.FEEDBACK and ls.settings.diagnostics.enabled:
            feedback_diagnostics.publish(ls, job)
        outcome = job.outcome
        return {
            "text": outcome.answer,
            "complete": outcome.complete,
            "lines": outcome.lines,
            "range": {
                "start": {"line": lines[0], "character": 0},
                "end": {"line": lines[1] + 1, "character": 0},
            },
            "fix": None
            if outcome.fix is None
            else {
                "code": outcome.fix,
                "diff": outcome.diff,
                "parses": outcome.fix_parses,
                "problems": outcome.problems,
                "edit": edit,  # pygls serializes the lsprotocol object
            },
            "notes": list(job.notes),
            "usage": job.result.as_dict(),
            "verification": _verification(job),
        }

    return handle


def _conversation(params: dict[str, Any]) -> list[ChatMessage]:
    raw = _field(params, "messages", list)
    messages = []
    for item in raw:
        if not (
            isinstance(item, dict)
            and item.get("role") in ROLES
            and isinstance(item.get("content"), str)
        ):
            raise JsonRpcInvalidParams("params.messages must be [{role, content}] objects")
        messages.append(ChatMessage(item["role"], item["content"]))
    if not messages or messages[-1].role != "user":
        raise JsonRpcInvalidParams("params.messages must end with a user message")
    return messages


@json_rpc_errors
async def chat(ls: StarchatServer, params: Any) -> dict[str, Any]:
    params = plain(params)
    if not isinstance(params, dict):
        raise JsonRpcInvalidParams("params must be an object")
    conversation = _conversation(params)
    uri = document_uri(params) if isinstance(params.get("textDocument"), dict) else None
    document = open_document(ls, uri) if uri else None
    lines = line_span(document, _range(params)) if document and params.get("range") else None
    settings = generation_settings(ls)
    system_prompt = ls.settings.generation.system_prompt or None
    on_text = _streamer(ls, params)
    loop = asyncio.get_running_loop()

    def work(engine: Engine, flag: CancelFlag) -> GenerationResult:
        ctx = None
        if document is not None and lines is not None:
            # as for code tasks, the answer gets at most half the window (it stops at the end)
            answer_room = min(settings.max_new_tokens, engine.context_window // 2)
            budget = prompt_token_budget(engine.context_window, answer_room)
            used = sum(engine.count_tokens(m.content) for m in conversation)
            ctx = gather_context(
                document.source,
                path=document.path,
                language=language_of(document),
                start_line=lines[0],
                end_line=lines[1],
                count_tokens=engine.count_tokens,
                max_prompt_tokens=budget - used,
            )
        messages = prompts.build_chat_prompt(conversation, ctx, system_prompt)
        return stream_answer(engine, messages, settings, flag, on_text, loop)

    result = await ls.host.run(work)
    return {"text": result.text, "usage": result.as_dict()}


def register(server: StarchatServer) -> None:
    for kind in tasks.TaskKind:
        server.feature(f"starchat/{kind.value}")(_code_request(kind))
    server.feature("starchat/chat")(chat)
