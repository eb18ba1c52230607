"""A pytest-lsp client that also records partial results (`$/progress` without a `kind`) and
the server's `starchat/progress` notifications (verification steps)."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import time
from collections.abc import Callable
from typing import Any

from lsprotocol import types
from pygls.protocol import default_converter
from pytest_lsp.client import DEFAULT_CLIENT_FEATURES, LanguageClient, register_lsp_features

HANG_GUARD_S = 120.0  # for waits on what must come: only a hang takes this long (bench/ times)
_status_ids = itertools.count(1)


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


async def eventually(
    condition: Callable[[], Any], what: str, timeout: float = HANG_GUARD_S
) -> None:
    """Wait until `condition()` (awaited, if it is a coroutine function) is true. `timeout` only
    stops a hung test: how soon it comes is not asserted here."""
    deadline = time.monotonic() + timeout
    while True:
        held = condition()
        if inspect.isawaitable(held):
            held = await held
        if held:
            return
        assert time.monotonic() < deadline, f"no {what} within {timeout:g} s"
        await asyncio.sleep(0.05)


async def idle(client: StarchatTestClient) -> Any:
    """`starchat/status` once no model run is left: a cancelled request is answered at once,
    its run stops a token later."""
    shown: list[Any] = []

    async def nothing_running() -> bool:
        msg_id = f"idle-{next(_status_ids)}"
        sent = client.protocol.send_request("starchat/status", {}, msg_id=msg_id)
        shown[:] = [await asyncio.wrap_future(sent)]
        return not shown[0].running

    await eventually(nothing_running, "end of the model runs")
    return shown[0]
