"""starchat/status: which model serves, whether it is ready, and how much work it has done."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starchat_lsp.context import syntax
from starchat_lsp.features.errors import json_rpc_errors

if TYPE_CHECKING:
    from starchat_lsp.server import StarchatServer


def register(server: StarchatServer) -> None:
    @server.feature("starchat/status")
    @json_rpc_errors
    def status(ls: StarchatServer, params: Any) -> dict[str, Any]:
        return {
            "model": ls.settings.model.name,
            "backend": ls.settings.model.backend,
            "state": ls.host.state,
            "generations": ls.host.runs,
            "running": ls.host.active,
            "worker": ls.host.health,
            "syntax": {
                "full_parses": syntax.counts.full_parses,
                "incremental_parses": ls.trees.incremental_parses,
            },
            "completion": {
                "cache_hits": ls.completion_cache_hits,
                "superseded": ls.latest_completions.superseded,
                "model_runs": ls.completion_runs.count,
                "recent_runs": ls.completion_runs.recent(),
            },
        }
