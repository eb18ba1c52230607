"""A pygls protocol that answers malformed messages instead of leaving the editor waiting.

pygls 2.1 structures each message inside `json.loads(body, object_hook=structure_message)`. When
params don't fit the lsprotocol type, the hook raises out of `json.loads`, the read loop logs it,
and the request id is lost with it: the editor never gets a reply. Here the hook keeps the raw
JSON and `handle_message` structures the whole message itself, so a request that can't be
structured is answered with a JSON-RPC error for its id.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from cattrs.v import transform_error
from lsprotocol.types import ErrorCodes, ResponseError
from pygls.exceptions import JsonRpcException, JsonRpcInternalError
from pygls.protocol import LanguageServerProtocol

logger = logging.getLogger(__name__)

_NOT_JSON = (json.JSONDecodeError, UnicodeDecodeError, RecursionError)
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")

JSONRPC_VERSION = "2.0"
MAX_REASONS = 3  # a reply names the first few problems; the rest only clutter the editor's log
MAX_REPLY_CHARS = 300


class StarchatProtocol(LanguageServerProtocol):
    """LanguageServerProtocol that replies -32602/-32600 to requests it cannot structure."""

    def structure_message(self, data: dict[str, Any]) -> Any:
        """Return `data` unchanged: structuring happens in `handle_message` (see module doc)."""
        # json.loads calls this for every object, innermost first, so here we can't tell a
        # message from a nested params object; in handle_message we can.
        return data

    def handle_message(self, message: Any) -> None:
        """Structure and dispatch one decoded message; answer it if it is malformed."""
        if not isinstance(message, dict):  # e.g. a JSON array or number
            self._reply_error(None, ErrorCodes.InvalidRequest, "Invalid Request: not a JSON object")
            return
        message = _valid_text(message)
        problem = _envelope_problem(message)
        if problem is not None:
            if "method" not in message and ("result" in message or "error" in message):
                # Never answer an answer: two peers could bounce error replies forever.
                logger.warning("Dropped malformed response: %s", problem)
            else:
                # JSON-RPC 2.0: an invalid Request is answered even without an id, with id null.
                self._reply_error(_usable_id(message.get("id")), ErrorCodes.InvalidRequest, problem)
            return
        try:
            structured = super().structure_message(message)
        except Exception as exc:  # pygls wraps the cattrs error; the cause names the bad fields
            self._reject(message, _describe(exc.__cause__ or exc))
            return
        super().handle_message(structured)

    def reply_parse_error(self, error: Exception, source: object) -> bool:
        """Answer a body that is not JSON with -32700; True if `error` was such a failure.

        The read loop reports `json.loads` failures to the *server's* `report_server_error`
        (with `source` JsonRpcException), never to the protocol, so a server that wants this
        reply calls it from its override of `report_server_error`.
        """
        if source is not JsonRpcException or not isinstance(
            error, (json.JSONDecodeError, UnicodeDecodeError, RecursionError)
        ):
            return False
        logger.warning("Dropped a message that is not JSON: %s", error)
        self._reply_error(None, ErrorCodes.ParseError, f"Parse error: {error}")
        return True

    def _reject(self, message: dict[str, Any], reason: str) -> None:
        method, msg_id = message.get("method"), message.get("id")
        if method is None:  # the envelope check made sure a response has a usable id
            # A client's reply to one of our requests: fail the waiting future rather than
            # leave the server-side caller (e.g. workspace/configuration) hanging.
            logger.warning("Malformed response to request %r: %s", msg_id, reason)
            error = ResponseError(code=ErrorCodes.InvalidParams, message=reason)
            self._handle_response(message["id"], error=error)
        elif "id" not in message:
            logger.warning("Dropped %s notification with invalid params: %s", method, reason)
        elif method not in self.fm.builtin_features and method not in self.fm.features:
            # pygls says -32601 only once params structure; an unknown method is the real problem.
            self._reply_error(msg_id, ErrorCodes.MethodNotFound, f"Method Not Found: {method}")
        else:
            logger.warning("Rejected %s request %r: %s", method, msg_id, reason)
            self._reply_error(msg_id, ErrorCodes.InvalidParams, f"{method}: {reason}")

    def _reply_error(self, msg_id: int | str | None, code: ErrorCodes, text: str) -> None:
        # A plain dict, not lsprotocol's ResponseErrorMessage: its converter drops `id: None`,
        # and JSON-RPC requires "id": null when the request id is unknown.
        error = {"code": int(code), "message": text[:MAX_REPLY_CHARS]}
        self._send_data({"jsonrpc": JSONRPC_VERSION, "id": msg_id, "error": error})


def _usable_id(msg_id: Any) -> int | str | None:
    # LSP ids are integers or strings; bool is an int to Python but not to JSON.
    if isinstance(msg_id, str) or (isinstance(msg_id, int) and not isinstance(msg_id, bool)):
        return msg_id
    return None


def _valid_text(value: Any) -> Any:
    """`value` with each lone UTF-16 surrogate in its strings replaced by U+FFFD.

    JSON allows "\\ud83d" alone and Python keeps it in a str, but UTF-8 (tree-sitter) and the
    tokenizers refuse such text: one bad character in a document or a chat message would fail
    every request on it. U+FFFD is one UTF-16 unit too, so the client's positions still fit.
    """
    if isinstance(value, str):
        return value if value.isascii() else _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {key: _valid_text(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_valid_text(item) for item in value]
    return value


def _envelope_problem(message: dict[str, Any]) -> str | None:
    """Why `message` is not a JSON-RPC 2.0 request, notification or response, or None."""
    if message.get("jsonrpc") != JSONRPC_VERSION:
        return 'Invalid Request: "jsonrpc" must be "2.0"'
    if "id" in message and _usable_id(message["id"]) is None:
        return 'Invalid Request: "id" must be an integer or a string'
    if "method" in message:
        if not isinstance(message["method"], str):
            return 'Invalid Request: "method" must be a string'
    elif "id" not in message or ("result" not in message and "error" not in message):
        return 'Invalid Request: no "method", and not a response'
    return None


def _describe(exc: BaseException) -> str:
    """A one-line account of a structuring failure, e.g. 'expected int @ $.params.range...'."""
    try:
        reasons = transform_error(exc, path="$")
    except Exception:
        reasons = [str(exc)]
    more = f" (+{len(reasons) - MAX_REASONS} more)" if len(reasons) > MAX_REASONS else ""
    return "invalid params: " + "; ".join(reasons[:MAX_REASONS]) + more


class _OneLineForClientErrors(logging.Filter):
    """Keep pygls from logging a whole traceback for each message a client got wrong.

    Such a message is answered (or dropped) and logged in one line here; pygls's own record of
    it is 20 to 60 lines of traceback, so a client sending garbage would fill the log (and a
    --log-file) at a thousand times the rate it sends. Tracebacks of real faults stay.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage().startswith("Unable to deserialize message"):
            return False  # handle_message logs the reason in one line
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, _NOT_JSON):
            return False  # reply_parse_error logs it in one line
        if isinstance(error, JsonRpcException) and not isinstance(error, JsonRpcInternalError):
            # A handler refused the request (invalid params, cancelled): the reason, no stack.
            record.msg, record.args = f"{record.getMessage()}: {error}", None
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


for _name in ("pygls.protocol.json_rpc", "pygls.io_", "pygls.server"):  # server: its read loop
    logging.getLogger(_name).addFilter(_OneLineForClientErrors())
