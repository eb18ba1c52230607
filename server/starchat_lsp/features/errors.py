"""The one place where failures become JSON-RPC errors the editor can show."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from pygls.exceptions import (
    JsonRpcContentModified,
    JsonRpcException,
    JsonRpcInvalidParams,
)

from starchat_lsp.context.budget import ContextTooSmallError
from starchat_lsp.errors import EngineError
from starchat_lsp.tasks import NoInstructionError

log = logging.getLogger(__name__)


class RequestFailedError(JsonRpcException):
    """LSP 3.17 RequestFailed: the request was fine, the work failed; the message says why."""

    CODE = -32803


F = TypeVar("F", bound=Callable[..., Any])


class DocumentNotOpenError(JsonRpcInvalidParams):
    def __init__(self, uri: str) -> None:
        super().__init__(f"{uri} is not open: send textDocument/didOpen first")


class ContentModifiedError(JsonRpcContentModified):
    def __init__(self) -> None:
        super().__init__("the document changed while the model worked: ask again")


def to_json_rpc(error: Exception) -> JsonRpcException:
    """The JSON-RPC error for `error`; what the user can act on keeps its message."""
    if isinstance(error, JsonRpcException):
        return error
    if isinstance(error, NoInstructionError):
        return JsonRpcInvalidParams(str(error))
    if isinstance(error, (EngineError, ContextTooSmallError)):
        return RequestFailedError(str(error))
    log.error("unexpected error in a request", exc_info=error)
    return RequestFailedError(f"internal error ({type(error).__name__}): see the server log")


def json_rpc_errors(handler: F) -> F:
    """Wrap a handler so that every failure leaves as a JSON-RPC error without a traceback."""
    if inspect.iscoroutinefunction(handler):

        @functools.wraps(handler)
        async def wrapped_async(*args: Any, **kwargs: Any) -> Any:
            try:
                return await handler(*args, **kwargs)
            except Exception as error:
                raise to_json_rpc(error) from None

        return wrapped_async  # type: ignore[return-value]

    @functools.wraps(handler)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return handler(*args, **kwargs)
        except Exception as error:
            raise to_json_rpc(error) from None

    return wrapped  # type: ignore[return-value]
