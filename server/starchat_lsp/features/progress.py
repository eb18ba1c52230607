"""Server-initiated work-done progress ($/progress), for clients that support it."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from lsprotocol import types

if TYPE_CHECKING:
    from starchat_lsp.server import StarchatServer

log = logging.getLogger(__name__)


class WorkProgress:
    """begin / report / end of one piece of work; sends nothing the client can't show.

    The token must be created (a request to the client) before use, so reports that come while
    the client has not answered yet wait, and only the newest is sent.
    """

    def __init__(self, server: StarchatServer, *, cancellable: bool = False) -> None:
        self._server = server
        self._cancellable = cancellable
        self._token = f"starchat-{uuid.uuid4()}"
        self._created: asyncio.Task[bool] | None = None
        self._supported = server.client_supports_progress()

    def begin(self, title: str) -> None:
        log.info("%s", title)
        if not self._supported:
            return
        self._created = asyncio.get_running_loop().create_task(self._create(title))

    async def _create(self, title: str) -> bool:
        try:
            await self._server.work_done_progress.create_async(self._token)
        except Exception as error:  # the client refused the token: no progress, no harm
            log.warning("work done progress refused: %s", error)
            return False
        self._server.work_done_progress.begin(
            self._token,
            types.WorkDoneProgressBegin(title=title, cancellable=self._cancellable),
        )
        return True

    def report(self, message: str) -> None:
        self._after_begin(
            lambda: self._server.work_done_progress.report(
                self._token, types.WorkDoneProgressReport(message=message)
            )
        )

    def end(self, message: str, error: bool = False) -> None:
        (log.error if error else log.info)("%s", message)
        self._after_begin(
            lambda: self._server.work_done_progress.end(
                self._token, types.WorkDoneProgressEnd(message=message)
            )
        )

    def _after_begin(self, send: Callable[[], None]) -> None:
        created = self._created
        if created is None:
            return
        if created.done():
            if created.result():
                send()
            return
        created.add_done_callback(lambda task: send() if task.result() else None)
