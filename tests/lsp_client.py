"""A pytest-lsp client that also records partial results (`$/progress` without a `kind`) and
the server's `starchat/progress` notifications (verification steps)."""

from __future__ import annotations

from typing import Any

from lsprotocol import types
from pygls.protocol import default_converter
from pytest_lsp.client import DEFAULT_CLIENT_FEATURES, LanguageClient, register_lsp_features


class StarchatTestClient(LanguageClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.partial_results: dict[types.ProgressToken, list[Any]] = {}
        self.stages: list[dict[str, Any]] = []


def _progress(client: StarchatTestClient, params: types.ProgressParams) -> None:
    value = params.value
    if isinstance(value, dict) and "kind" not in value:
        client.partial_results.setdefault(params.token, []).append(value)
        return
    DEFAULT_CLIENT_FEATURES[types.PROGRESS](client, params)


def _stage(client: StarchatTestClient, params: Any) -> None:
    fields = params._asdict() if hasattr(params, "_asdict") else dict(params)
    client.stages.append(fields)


def make_client() -> StarchatTestClient:
    client = StarchatTestClient(converter_factory=default_converter)
    register_lsp_features(client, {**DEFAULT_CLIENT_FEATURES, types.PROGRESS: _progress})
    client.feature("starchat/progress")(_stage)
    return client
