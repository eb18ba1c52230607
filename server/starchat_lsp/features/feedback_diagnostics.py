"""Diagnostics on the lines a feedback answer points at; they go when those lines change."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lsprotocol import types

from starchat_lsp.context import answers

if TYPE_CHECKING:
    from pygls.workspace.position_codec import PositionCodec

    from starchat_lsp.features.assist_jobs import JobResult
    from starchat_lsp.server import StarchatServer

SOURCE = "starchat"


def summary(answer: str, limit: int = 300) -> str:
    """The first sentence of prose in the answer (code blocks skipped), for a diagnostic."""
    prose = answer
    for block in reversed(answers.code_blocks(answer)):
        prose = prose[: block.start] + prose[block.end :]
    text = " ".join(prose.split())
    end = text.find(". ")
    first = text if end < 0 else text[: end + 1]
    return (first[: limit - 1] + "…") if len(first) > limit else first or "starchat feedback"


def build(job: JobResult, codec: PositionCodec) -> list[types.Diagnostic]:
    """Diagnostics on the lines the answer names, and on what the analyzer found there that the
    model was told of; columns in the client's negotiated units."""
    lines = job.request.text.splitlines()

    def on(first: int, last: int, message: str) -> types.Diagnostic:
        return types.Diagnostic(
            range=types.Range(
                start=types.Position(line=first, character=0),
                end=types.Position(line=last, character=codec.client_num_units(lines[last])),
            ),
            message=message,
            severity=types.DiagnosticSeverity.Information,
            source=SOURCE,
        )

    message = summary(job.outcome.answer)
    named = [on(line, line, message) for line in job.outcome.lines if 0 <= line < len(lines)]
    found = [
        on(f.line, min(f.end_line, len(lines) - 1), f"{f.message} ({f.code}, ruff)")
        for f in job.findings
        if 0 <= f.line < len(lines)
    ]
    return named + found


def publish(server: StarchatServer, job: JobResult) -> None:
    diagnostics = build(job, server.workspace.position_codec)
    server.feedback_diagnostics[job.uri] = diagnostics
    server.text_document_publish_diagnostics(
        types.PublishDiagnosticsParams(uri=job.uri, version=job.version, diagnostics=diagnostics)
    )


def after_change(
    diagnostics: list[types.Diagnostic],
    changes: list[types.TextDocumentContentChangeEvent],
) -> list[types.Diagnostic]:
    """Drop diagnostics on changed lines, move the ones below a change by its line delta."""
    kept = list(diagnostics)
    for change in changes:
        if not isinstance(change, types.TextDocumentContentChangePartial):
            return []  # the whole text was replaced
        first, last = change.range.start.line, change.range.end.line
        delta = change.text.count("\n") - (last - first)
        moved = []
        for diagnostic in kept:
            line = diagnostic.range.start.line
            if first <= line <= last:
                continue
            if line > last and delta:
                diagnostic = types.Diagnostic(
                    range=types.Range(
                        start=types.Position(line=line + delta, character=0),
                        end=types.Position(
                            line=line + delta, character=diagnostic.range.end.character
                        ),
                    ),
                    message=diagnostic.message,
                    severity=diagnostic.severity,
                    source=diagnostic.source,
                )
            moved.append(diagnostic)
        kept = moved
    return kept


def on_change(server: StarchatServer, params: types.DidChangeTextDocumentParams) -> None:
    uri = params.text_document.uri
    before = server.feedback_diagnostics.get(uri)
    if not before:
        return
    after = after_change(before, list(params.content_changes))
    if len(after) != len(before) or after != before:
        server.feedback_diagnostics[uri] = after
        server.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=uri, diagnostics=after)
        )


def on_close(server: StarchatServer, uri: str) -> None:
    if server.feedback_diagnostics.pop(uri, None):
        server.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=uri, diagnostics=[])
        )
