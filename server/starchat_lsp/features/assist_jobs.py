"""Run a feedback / fix / explain job for a document range and turn it into LSP answers.

Shared by the code actions and the starchat/* requests so that both give the same results.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lsprotocol import types
from pygls.uris import to_fs_path

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
from starchat_lsp.verify import analyzer, pipeline

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
    verified: pipeline.Verified | None = None  # feedback and fixes, unless verify is off
    findings: tuple[analyzer.Finding, ...] = ()  # the analyzer's, on the lines worked on


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
    send = to_loop(on_text, flag, loop)
    for chunk in stream:
        send(chunk)
    return stream.result


def to_loop(
    on_text: Callable[[str], None] | None, flag: CancelFlag, loop: asyncio.AbstractEventLoop
) -> Callable[[str], None]:
    """A callback for the model's thread that hands each chunk to `on_text` on the event loop;
    a cancelled request streams no more."""

    def deliver(chunk: str) -> None:  # on the event loop
        if on_text is not None and not flag.cancelled:
            on_text(chunk)

    def send(chunk: str) -> None:  # on the model's thread
        if not flag.cancelled:
            loop.call_soon_threadsafe(deliver, chunk)

    return send


async def run_job(
    server: StarchatServer,
    kind: tasks.TaskKind,
    uri: str,
    start_line: int,
    end_line: int,
    note: str | None = None,
    on_text: Callable[[str], None] | None = None,
    on_stage: Callable[[pipeline.Stage], None] | None = None,
) -> JobResult:
    """Run the model on the range; raises ContentModified when the document changed meanwhile.

    Feedback and fixes go through verification (verify.pipeline) when it is on: `on_text` gets
    the draft as it streams, `on_stage` each step after it, and the result the checked fix.
    """
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
    verify = verify_options(server, document.path) if kind in tasks.VERIFIED else None
    loop = asyncio.get_running_loop()
    flags: list[CancelFlag] = []

    def staged(step: pipeline.Stage) -> None:  # on the event loop
        if _changed(server, uri, version):
            for flag in flags:
                flag.cancel()  # its answer would be refused: stop checking fixes for old text
        elif on_stage is not None:
            on_stage(step)

    def stage(step: pipeline.Stage) -> None:
        loop.call_soon_threadsafe(staged, step)

    def work(
        engine: Engine, flag: CancelFlag
    ) -> tuple[tasks.Prepared, GenerationResult, pipeline.Verified | None]:
        flags.append(flag)
        # Tokenizing and parsing a large file also stays off the event loop.
        prepared = tasks.prepare(
            kind,
            request,
            engine,
            max_new_tokens=settings.max_new_tokens,
            system_prompt=system_prompt,
        )
        if verify is None:
            result = stream_answer(engine, prepared.messages, settings, flag, on_text, loop)
            return prepared, result, None
        verified = pipeline.run(
            kind,
            request,
            engine,
            prepared,
            settings,
            on_text=to_loop(on_text, flag, loop),
            options=verify,
            cancel=flag,
            on_stage=stage,
            system_prompt=system_prompt,
        )
        return prepared, verified.draft_result, verified

    prepared, result, verified = await server.host.run(work)
    if open_document(server, uri).version != version:
        raise ContentModifiedError()
    if verified is not None:
        outcome = verified.outcome
    else:
        outcome = tasks.conclude(kind, request, prepared, result)
    return JobResult(
        uri, version, request, outcome, result, prepared.notes, verified, prepared.findings
    )


def _changed(server: StarchatServer, uri: str, version: int | None) -> bool:
    """Whether the document was edited (or closed) since the job read it."""
    documents = server.workspace.text_documents
    return uri not in documents or documents[uri].version != version


def verify_options(server: StarchatServer, path: str | None) -> pipeline.VerifyOptions | None:
    """The pipeline's options from the settings; None when verification is off."""
    options = server.settings.verify
    if not options.enabled:
        return None
    return pipeline.VerifyOptions(
        candidates=options.candidates,
        time_budget_s=options.time_budget_s or None,
        workspace=workspace_folder(server, path),
    )


def workspace_folder(server: StarchatServer, path: str | None) -> Path | None:
    """The workspace folder the document is in: where its tests and the files it imports are."""
    if path is None:
        return None
    document = Path(path)
    folders = [Path(p) for f in server.workspace.folders.values() if (p := to_fs_path(f.uri))]
    if server.workspace.root_path:
        folders.append(Path(server.workspace.root_path))
    inside = [f for f in folders if document.is_relative_to(f)]
    return max(inside, key=lambda f: len(f.parts)) if inside else None


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
