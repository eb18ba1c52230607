"""Initialization, settings and the model's background load."""

from __future__ import annotations

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
    # Loading starts here, after `initialize` was answered: the editor never waits for it.
    server.host.configure(settings.engine_settings(), WorkProgress(server))


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
