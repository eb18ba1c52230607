"""The language server: state shared by the features, and their registration. Glue only."""

from __future__ import annotations

import logging
from typing import Any

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from starchat_lsp import __version__
from starchat_lsp.completion import CompletionCache
from starchat_lsp.context.document_trees import DocumentTrees
from starchat_lsp.features.completion import LatestPerDocument, RecentRuns
from starchat_lsp.model_host import ModelHost
from starchat_lsp.protocol import StarchatProtocol
from starchat_lsp.settings import Settings

log = logging.getLogger(__name__)


class StarchatServer(LanguageServer):
    protocol: StarchatProtocol

    def __init__(self) -> None:
        super().__init__(
            "starchat-lsp",
            __version__,
            text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
            protocol_cls=StarchatProtocol,
            # pygls' pool only reads stdin, one message at a time (no handler runs on it): one
            # thread. Left at its default size (min(32, cores + 4)) it grows a thread now and
            # then, when the next read is handed over before the last reader has marked itself
            # idle: idle threads that made the server's thread count drift under load.
            max_workers=1,
        )
        self.settings = Settings()
        self.host = ModelHost(notify=lambda message: self.tell(message, types.MessageType.Warning))
        self.initialization_options: object = None
        self.feedback_diagnostics: dict[str, list[types.Diagnostic]] = {}
        self.trees = DocumentTrees()
        self.completion_cache = CompletionCache()
        self.completion_cache_hits = 0
        self.latest_completions = LatestPerDocument()
        self.completion_runs = RecentRuns()

    def report_server_error(self, error: Exception, source: Any) -> None:
        # A body that is not JSON at all never reaches the protocol: answer it with -32700 here.
        if not self.protocol.reply_parse_error(error, source):
            super().report_server_error(error, source)

    def client_supports_progress(self) -> bool:
        capabilities = self.client_capabilities
        window = capabilities.window if capabilities else None
        return bool(window and window.work_done_progress)

    def tell(self, message: str, kind: types.MessageType = types.MessageType.Warning) -> None:
        """A message the user sees (window/showMessage), also logged."""
        log.log(logging.ERROR if kind == types.MessageType.Error else logging.INFO, "%s", message)
        self.window_show_message(types.ShowMessageParams(type=kind, message=message))


def create_server() -> StarchatServer:
    from starchat_lsp.features import (
        assist_requests,
        code_actions,
        completion,
        documents,
        lifecycle,
        status,
    )

    server = StarchatServer()
    features = (lifecycle, documents, code_actions, assist_requests, completion, status)
    for feature in features:
        feature.register(server)
    return server
