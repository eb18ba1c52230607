"""The one place where failures become JSON-RPC errors the editor can show."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pygls.exceptions import (
    JsonRpcContentModified,
    JsonRpcException,
    JsonRpcInvalidParams,
    JsonRpcServerError,
)

from starchat_lsp.context.budget import ContextTooSmallError
from starchat_lsp.engine.errors import EngineError

log = logging.getLogger(__name__)

REQUEST_FAILED = -32803  # LSP 3.17: the request was fine, the work failed

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


class DocumentNotOpenError(JsonRpcInvalidParams):
    def __init__(self, uri: str) -> None:
        super().__init__(f"{uri} is not open: send textDocument/didOpen first")


class ContentModifiedError(JsonRpcContentModified):
    def __init__(self) -> None:
        super().__init__("the document changed while the model worked: ask again")


def request_failed(message: str) -> JsonRpcServerError:
    return JsonRpcServerError(message, REQUEST_FAILED)


def to_json_rpc(error: Exception) -> JsonRpcException:
    """The JSON-RPC error for `error`; what the user can act on keeps its message."""
    if isinstance(error, JsonRpcException):
        return error
    if isinstance(error, (EngineError, ContextTooSmallError)):
        return request_failed(str(error))
    log.exception("unexpected error in a request", exc_info=error)
    return request_failed(f"internal error ({type(error).__name__}): see the server log")


def json_rpc_errors(handler: F) -> F:
    """Wrap an async handler so that every failure leaves as a JSON-RPC error, never a crash."""

    @functools.wraps(handler)
    async def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return await handler(*args, **kwargs)
        except Exception as error:
            raise to_json_rpc(error) from error

    return wrapped  # type: ignore[return-value]
