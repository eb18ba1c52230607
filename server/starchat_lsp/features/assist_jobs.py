"""Run a feedback / fix / explain job for a document range and turn it into LSP answers.

Shared by the code actions and the starchat/* requests so that both give the same results.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lsprotocol import types

from starchat_lsp import edits, tasks
from starchat_lsp.context import syntax
from starchat_lsp.engine.base import (
    CancelFlag,
    ChatMessage,
    Engine,
    GenerationResult,
    GenerationSettings,
)
from starchat_lsp.features.errors import ContentModifiedError, DocumentNotOpenError

if TYPE_CHECKING:
    from pygls.workspace import TextDocument
    from pygls.workspace.position_codec import PositionCodec

    from starchat_lsp.server import StarchatServer

SOURCE = "starchat"


@dataclass(frozen=True)
class JobResult:
    uri: str
    version: int | None
    request: tasks.CodeRequest
    outcome: tasks.Outcome
    result: GenerationResult
    notes: tuple[str, ...]


def open_document(server: StarchatServer, uri: str) -> TextDocument:
    if uri not in server.workspace.text_documents:
        raise DocumentNotOpenError(uri)
    return server.workspace.get_text_document(uri)


def line_span(document: TextDocument, selection: types.Range) -> tuple[int, int]:
    """0-based inclusive lines of a selection; an empty one means the function around it."""
    last = max(len(document.lines) - 1, 0)
    end = selection.end.line
    if end > selection.start.line and selection.end.character == 0:
        end -= 1  # a selection of whole lines ends at column 0 of the next one
    start = min(max(selection.start.line, 0), last)
    end = min(max(end, start), last)
    if selection.start == selection.end:
        return tasks.lines_for(document.source, language_of(document), start)
    return start, end


def language_of(document: TextDocument) -> str | None:
    return syntax.language_for_path(document.path) if document.path else None


def generation_settings(server: StarchatServer) -> GenerationSettings:
    options = server.settings.generation
    return GenerationSettings(
        max_new_tokens=options.max_new_tokens, temperature=options.temperature
    )


def stream_answer(
    engine: Engine,
    messages: list[ChatMessage],
    settings: GenerationSettings,
    flag: CancelFlag,
    on_text: Callable[[str], None] | None,
    loop: asyncio.AbstractEventLoop,
) -> GenerationResult:
    """On the worker thread: run the model, handing each chunk to the event loop as it comes."""
    stream = engine.chat(messages, settings, cancel=flag)

    def send(chunk: str) -> None:  # on the event loop: a cancelled request streams no more
        if on_text is not None and not flag.cancelled:
            on_text(chunk)

    for chunk in stream:
        if not flag.cancelled:
            loop.call_soon_threadsafe(send, chunk)
    return stream.result


async def run_job(
    server: StarchatServer,
    kind: tasks.TaskKind,
    uri: str,
    start_line: int,
    end_line: int,
    note: str | None = None,
    on_text: Callable[[str], None] | None = None,
) -> JobResult:
    """Run the model on the range; raises ContentModified when the document changed meanwhile."""
    document = open_document(server, uri)
    version = document.version
    request = tasks.CodeRequest(
        text=document.source,
        path=document.path,
        start_line=start_line,
        end_line=end_line,
        language=language_of(document),
        note=note,
    )
    settings = generation_settings(server)
    system_prompt = server.settings.generation.system_prompt or None
    loop = asyncio.get_running_loop()

    def work(engine: Engine, flag: CancelFlag) -> tuple[tasks.Prepared, GenerationResult]:
        # Tokenizing and parsing a large file also stays off the event loop.
        prepared = tasks.prepare(
            kind,
            request,
            engine,
            max_new_tokens=settings.max_new_tokens,
            system_prompt=system_prompt,
        )
        result = stream_answer(engine, prepared.messages, settings, flag, on_text, loop)
        return prepared, result

    prepared, result = await server.host.run(work)
    if open_document(server, uri).version != version:
        raise ContentModifiedError()
    outcome = tasks.conclude(kind, request, prepared, result)
    return JobResult(uri, version, request, outcome, result, prepared.notes)


def workspace_edit(job: JobResult, codec: PositionCodec) -> types.WorkspaceEdit | None:
    """The fix as a versioned edit of only the changed lines; None when it must not be applied.

    Columns are in the units negotiated with the client (`codec`): UTF-16 unless it chose another.
    """
    outcome = job.outcome
    if not outcome.applicable or outcome.new_text is None:
        return None
    old = job.request.text
    old_lines = old.splitlines(keepends=True)
    newline = edits.newline_of(old)
    text_edits = []
    for change in edits.line_edits(old, outcome.new_text):
        new_text = "".join(line + newline for line in change.new_lines)
        start = types.Position(line=change.start_line, character=0)
        end = types.Position(line=change.end_line, character=0)
        if change.end_line >= len(old_lines) and old_lines and not old.endswith(("\n", "\r")):
            # The last line has no newline: the edit ends at its end and adds none there.
            end_of_text = types.Position(
                line=len(old_lines) - 1, character=codec.client_num_units(old_lines[-1])
            )
            if change.start_line >= len(old_lines):  # appending after the last line
                start, new_text = end_of_text, newline + new_text
            end = end_of_text
            new_text = new_text.removesuffix(newline)
        text_edits.append(
            types.TextEdit(
                range=types.Range(start=start, end=end),
                new_text=new_text,
            )
        )
    return types.WorkspaceEdit(
        document_changes=[
            types.TextDocumentEdit(
                text_document=types.OptionalVersionedTextDocumentIdentifier(
                    uri=job.uri, version=job.version
                ),
                edits=list(text_edits),
            )
        ]
    )
