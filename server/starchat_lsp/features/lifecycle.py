"""Initialization, settings and the model's background load."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from lsprotocol import types

from starchat_lsp.features.progress import WorkProgress
from starchat_lsp.settings import parse_settings

if TYPE_CHECKING:
    from starchat_lsp.server import StarchatServer


def apply_settings(server: StarchatServer, raw: object) -> None:
    settings, problems = parse_settings(raw)
    for problem in problems:
        server.tell(problem)
    server.settings = settings
    _set_log_level(settings.log.level)
    # Loading starts here, after `initialize` was answered: the editor never waits for it.
    server.host.configure(settings.engine_settings(), WorkProgress(server))


def _set_log_level(level: str) -> None:
    """Ours at `level`; the model runtime's own log (DEBUG) only when `level` is debug.

    A model worker takes the level it was started with: a change shows from the next load.
    """
    logging.getLogger("starchat_lsp").setLevel(level.upper())
    logging.getLogger("starchat_lsp.runtime").setLevel(level.upper())


def register(server: StarchatServer) -> None:
    @server.feature(types.INITIALIZE)
    def initialize(ls: StarchatServer, params: types.InitializeParams) -> None:
        ls.initialization_options = params.initialization_options

    @server.feature(types.INITIALIZED)
    def initialized(ls: StarchatServer, params: types.InitializedParams) -> None:
        apply_settings(ls, ls.initialization_options)

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    def changed(ls: StarchatServer, params: types.DidChangeConfigurationParams) -> None:
        if params.settings is not None:  # null: the client wants us to pull; we keep ours
            apply_settings(ls, params.settings)
