"""textDocument/inlineCompletion and textDocument/completion: code at the cursor from the model.

Glue only: `completion` decides and cleans. Here: debounce, a newer request for the same
document stops the older one (its model run within a token; it answers nothing), and the cache.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

from starchat_lsp import completion
from starchat_lsp.context.completion_scope import Scope
from starchat_lsp.engine.base import CancelFlag, Engine, GenerationResult
from starchat_lsp.errors import EngineError
from starchat_lsp.features.assist_jobs import workspace_folder
from starchat_lsp.features.assist_requests import document_uri, plain, position
from starchat_lsp.features.errors import json_rpc_errors

if TYPE_CHECKING:
    from pygls.workspace import TextDocument

    from starchat_lsp.server import StarchatServer

log = logging.getLogger(__name__)


class LatestPerDocument:
    """One completion at a time per document: starting one stops the one before."""

    def __init__(self) -> None:
        self._flags: dict[str, CancelFlag] = {}
        self._prefetches: set[CancelFlag] = set()  # not a request: stopping one is no supersede
        self.superseded = 0

    def start(self, uri: str, *, prefetch: bool = False) -> CancelFlag:
        older = self._flags.get(uri)
        if older is not None:
            older.cancel()
            self.superseded += older not in self._prefetches
        flag = self._flags[uri] = CancelFlag()
        if prefetch:
            self._prefetches.add(flag)
        return flag

    def pending(self, uri: str) -> bool:
        """A completion for the document waits for its debounce or runs."""
        return uri in self._flags

    def is_current(self, uri: str, flag: CancelFlag) -> bool:
        return self._flags.get(uri) is flag

    def finish(self, uri: str, flag: CancelFlag) -> None:
        self._prefetches.discard(flag)
        if self._flags.get(uri) is flag:
            del self._flags[uri]


class RecentRuns:
    """The usage of the last completions' model runs (stopped ones included), for
    starchat/status: prompt tokens, how many of them the KV cache reused, the run's time."""

    def __init__(self, size: int = 64) -> None:
        self.count = 0
        self._runs: deque[dict[str, object]] = deque(maxlen=size)
        self._lock = threading.Lock()  # added to on the model's threads

    def add(self, result: GenerationResult, *, prefetch: bool = False) -> None:
        with self._lock:
            self.count += 1
            self._runs.append({"run": self.count, "prefetch": prefetch, **result.as_dict()})

    def recent(self) -> list[dict[str, object]]:
        with self._lock:
            return list(self._runs)


async def completion_at(
    server: StarchatServer, uri: str, position: types.Position
) -> tuple[TextDocument, str] | None:
    """The text to insert at the position, or None; never raises for lack of a model."""
    options = server.settings.completion
    if not options.enabled or uri not in server.workspace.text_documents:
        return None
    document = server.workspace.get_text_document(uri)
    version, text = document.version, document.source
    # LSP positions count UTF-16 units (unless negotiated): pygls converts to a str index
    offset = min(document.offset_at_position(position), len(text))
    language, scope = completion.scope_at(text, offset, document.path)
    if scope is Scope.NONE:
        return None
    # other files change the prompt: their answers are not those asked without them
    model = server.settings.model.name + (" +files" if options.other_files else "")
    prefix, suffix = text[:offset], text[offset:]
    cached = server.completion_cache.get(model, prefix, suffix)
    if cached is not None:
        server.completion_cache_hits += 1
        return (document, cached) if cached else None
    flag = server.latest_completions.start(uri)
    try:
        await asyncio.sleep(options.debounce_ms / 1000)
        if not server.latest_completions.is_current(uri, flag):
            return None  # the user typed on: a newer request asks instead
        place = _Place(document, text, offset, language, scope)
        answer = await _ask(server, place, options.max_new_tokens, flag)
        superseded = not server.latest_completions.is_current(uri, flag)
        if answer is None or superseded or not answer.finished:
            return None
        server.completion_cache.put(model, prefix, suffix, answer.text)
        if document.version != version or not answer.text:
            return None  # typed meanwhile: the text is for a place that moved
        return document, answer.text
    finally:
        server.latest_completions.finish(uri, flag)


async def prefetch_at(server: StarchatServer, uri: str, position: types.Position) -> bool:
    """Read the text around a place the cursor came to, before the user types there.

    A new place costs the model a read of its window (seconds on a CPU); done while the user
    looks, the first keys there find it in the KV cache (the engine keeps what two windows
    share). The model's answer (one token) is dropped. It never goes ahead of other work:
    nothing starts while the model is busy or a completion for the document is pending, and
    any model run asked after it (a key's completion, a chat) stops it, within a slice of its
    read; what it read stays. True when it ran.
    """
    options = server.settings.completion
    if not (options.enabled and options.prefetch) or uri not in server.workspace.text_documents:
        return False
    if server.host.active or server.latest_completions.pending(uri):
        return False
    flag = server.latest_completions.start(uri, prefetch=True)
    try:
        await asyncio.sleep(options.debounce_ms / 1000)  # the cursor comes to rest
        if not server.latest_completions.is_current(uri, flag) or server.host.active:
            return False
        document = server.workspace.get_text_document(uri)
        text = document.source
        offset = min(document.offset_at_position(position), len(text))
        language = completion.language_of(document.path)
        # the window does not depend on the scope: a line's prompt, one token
        place = _Place(document, text, offset, language, Scope.LINE)
        return await _ask(server, place, 1, flag, prefetch=True) is not None
    finally:
        server.latest_completions.finish(uri, flag)


@dataclass(frozen=True)
class _Place:
    document: TextDocument
    text: str
    offset: int
    language: str | None
    scope: Scope


async def _ask(
    server: StarchatServer,
    place: _Place,
    max_new_tokens: int,
    flag: CancelFlag,
    *,
    prefetch: bool = False,
) -> completion.Completion | None:
    """The model's completion at the place; None (logged) when the engine fails."""
    options = server.settings.completion
    path = place.document.path
    workspace = workspace_folder(server, path) if options.other_files else None

    def work(engine: Engine, flag: CancelFlag) -> completion.Completion:
        answer = completion.complete(
            engine,
            place.text,
            place.offset,
            language=place.language,
            path=path,
            scope=place.scope,
            max_new_tokens=max_new_tokens,
            max_context_tokens=options.max_context_tokens,
            flag=flag,
            system_prompt=server.settings.generation.system_prompt or None,
            workspace=workspace,
            other_files=options.other_files,
        )
        # here, not after the await: a request cancelled meanwhile still ran the model
        server.completion_runs.add(answer.result, prefetch=prefetch)
        return answer

    try:
        return await server.host.run(work, flag, yields=prefetch)
    except EngineError as error:
        # Completion asks on every pause in typing: a failure (the model did not load, the
        # team server is down) is logged, not thrown at the user at each keystroke. The
        # load failure was shown once already; feedback and chat report theirs.
        log.info("no completion: %s", error)
        return None


_WORD_BEFORE = re.compile(r"\w+$")


def _snippet(text: str) -> str:
    """`text` as a snippet that inserts exactly it: `\\`, `$` and `}` escaped."""
    return text.replace("\\", "\\\\").replace("$", "\\$").replace("}", "\\}")


def completion_item(
    document: TextDocument, position: types.Position, text: str
) -> types.CompletionItem:
    """One item that replaces the word before the cursor, so that clients' filtering keeps it."""
    offset = document.offset_at_position(position)
    before = document.source[:offset].rpartition("\n")[2]
    word = _WORD_BEFORE.search(before)
    typed = word.group(0) if word else ""
    start = document.client_position_at_offset(offset - len(typed))  # in the client's units
    first_line = (typed + text).strip().split("\n")[0]
    return types.CompletionItem(
        label=first_line[:60] + ("…" if len(first_line) > 60 else ""),
        kind=types.CompletionItemKind.Snippet,
        detail="starchat",
        documentation=types.MarkupContent(
            kind=types.MarkupKind.Markdown, value=f"```\n{typed + text}\n```"
        ),
        filter_text=typed + text,
        # A snippet with nothing to expand: clients such as Neovim insert a plain-text item only
        # up to its first space, but a snippet whole.
        insert_text_format=types.InsertTextFormat.Snippet,
        text_edit=types.TextEdit(
            range=types.Range(start=start, end=position), new_text=_snippet(typed + text)
        ),
        sort_text="0",
    )


PREFETCH = "starchat/prefetch"  # a notification: {textDocument: {uri}, position}


def _prefetch_place(params: Any) -> tuple[str, types.Position] | None:
    """The document and position of a starchat/prefetch notification; None if malformed."""
    params = plain(params)
    try:
        return document_uri(params), position(params["position"])
    except (JsonRpcInvalidParams, KeyError, TypeError, ValueError):
        return None


def register(server: StarchatServer) -> None:
    @server.feature(PREFETCH)
    async def prefetch(ls: StarchatServer, params: Any) -> None:
        place = _prefetch_place(params)
        if place is None:  # a notification gets no reply: the log says why
            log.warning("%s needs {textDocument: {uri}, position: {line, character}}", PREFETCH)
            return
        await prefetch_at(ls, *place)

    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    @json_rpc_errors
    async def inline(
        ls: StarchatServer, params: types.InlineCompletionParams
    ) -> list[types.InlineCompletionItem]:
        found = await completion_at(ls, params.text_document.uri, params.position)
        if found is None:
            return []
        end = params.position
        return [
            types.InlineCompletionItem(
                insert_text=found[1], range=types.Range(start=params.position, end=end)
            )
        ]

    @server.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions())
    @json_rpc_errors
    async def complete(ls: StarchatServer, params: types.CompletionParams) -> types.CompletionList:
        found = await completion_at(ls, params.text_document.uri, params.position)
        items = [] if found is None else [completion_item(found[0], params.position, found[1])]
        # incomplete: typing on asks again rather than filtering a stale answer
        return types.CompletionList(is_incomplete=True, items=items)
