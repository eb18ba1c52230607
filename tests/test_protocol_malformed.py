"""Malformed JSON-RPC input gets an error reply (or, for notifications, is dropped) and the
server keeps going. The server runs as a real process; the test writes raw LSP frames so it
controls every byte."""

from __future__ import annotations

import itertools
import json
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

REPLY_TIMEOUT_S = 60.0  # a hang guard: the first reply waits for the process to start
PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS = -32700, -32600, -32601, -32602

URI = "file:///tmp/example.py"
CODE_ACTION_PARAMS: dict[str, Any] = {
    "textDocument": {"uri": URI},
    "range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 3}},
    "context": {"diagnostics": []},
}


@pytest.fixture
def server_command() -> list[str]:
    """The real server on stdio; no model is needed for these messages."""
    return [sys.executable, "-m", "starchat_lsp", "serve"]


class RawClient:
    """Speaks LSP framing over a server process's stdin/stdout, byte for byte."""

    def __init__(self, command: list[str], stderr_path: Path) -> None:
        self.stderr_path = stderr_path
        with stderr_path.open("wb") as stderr:
            self.proc = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr
            )
        self.inbox: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.replies: list[dict[str, Any]] = []  # every reply, to check there is one per id
        self.ids = itertools.count(1)
        threading.Thread(target=self._read_frames, daemon=True).start()

    def _read_frames(self) -> None:
        assert self.proc.stdout is not None
        out = self.proc.stdout
        while True:
            length = None
            while (line := out.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("ascii").partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            if not line or length is None:
                self.inbox.put(None)  # server closed stdout
                return
            self.inbox.put(json.loads(out.read(length)))

    def send_body(self, body: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def send(self, message: dict[str, Any]) -> None:
        self.send_body(json.dumps(message).encode())

    def request(self, method: str, params: Any = None) -> dict[str, Any]:
        msg_id = next(self.ids)
        self.send({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
        return self.reply_to(msg_id)

    def notify(self, method: str, params: Any) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def reply_to(self, msg_id: int | None) -> dict[str, Any]:
        """The next reply for `msg_id`, skipping server-initiated messages (logs, progress)."""
        while True:
            try:
                message = self.inbox.get(timeout=REPLY_TIMEOUT_S)
            except queue.Empty:
                pytest.fail(f"no reply to id {msg_id} within {REPLY_TIMEOUT_S} s{self._log_tail()}")
            if message is None:
                pytest.fail(f"server closed stdout before replying to {msg_id}{self._log_tail()}")
            if "method" in message:
                continue
            self.replies.append(message)
            if message.get("id") == msg_id:
                return message
            pytest.fail(f"expected a reply to {msg_id}, got {message}")

    def error_code(self, reply: dict[str, Any]) -> int:
        assert "result" not in reply, reply
        message = reply["error"]["message"]
        assert "Traceback" not in message and len(message) <= 300, message
        return int(reply["error"]["code"])

    def _log_tail(self) -> str:
        return "\nserver stderr:\n" + self.stderr_path.read_text(errors="replace")[-3000:]

    def shutdown_and_exit(self) -> int:
        assert "error" not in self.request("shutdown")
        self.notify("exit", None)
        return self.proc.wait(timeout=REPLY_TIMEOUT_S)


@pytest.fixture
def client(server_command: list[str], tmp_path: Path) -> Iterator[RawClient]:
    """A started server that has answered `initialize`."""
    raw = RawClient(server_command, tmp_path / "server.stderr")
    try:
        reply = raw.request("initialize", {"processId": None, "rootUri": None, "capabilities": {}})
        assert reply["result"]["capabilities"]["codeActionProvider"], reply
        raw.notify("initialized", {})
        yield raw
    finally:
        if raw.proc.poll() is None:
            raw.proc.kill()
            raw.proc.wait()


def with_range(value: Any) -> dict[str, Any]:
    return {**CODE_ACTION_PARAMS, "range": value}


def test_each_malformed_message_gets_one_error_and_the_server_goes_on(client: RawClient) -> None:
    start = {"line": 0, "character": 0}
    cases = [
        ("textDocument/codeAction", with_range(None), INVALID_PARAMS),
        ("textDocument/codeAction", with_range({"start": start}), INVALID_PARAMS),
        (
            "textDocument/codeAction",
            with_range({"start": {"line": "two", "character": 0}, "end": start}),
            INVALID_PARAMS,
        ),
        ("codeAction/resolve", {}, INVALID_PARAMS),
        ("no/suchMethod", {}, METHOD_NOT_FOUND),
    ]
    for method, params, code in cases:
        reply = client.request(method, params)
        assert client.error_code(reply) == code, (method, params, reply)
        assert method in reply["error"]["message"], reply

    client.send_body(b'{"jsonrpc": "2.0", "id": 99, "method": ')  # cut off mid-message
    assert client.error_code(client.reply_to(None)) == PARSE_ERROR
    client.send_body(b'[{"jsonrpc": "2.0", "id": 98, "method": "shutdown"}]')
    assert client.error_code(client.reply_to(None)) == INVALID_REQUEST
    client.send_body(b"42")
    assert client.error_code(client.reply_to(None)) == INVALID_REQUEST

    client.notify("textDocument/didChange", {"textDocument": 7, "contentChanges": "garbage"})
    client.notify("textDocument/didChange", None)

    client.notify(
        "textDocument/didOpen",
        {
            "textDocument": {
                "uri": URI,
                "languageId": "python",
                "version": 1,
                "text": "def f():\n    return 1\n",
            }
        },
    )
    reply = client.request("textDocument/codeAction", CODE_ACTION_PARAMS)
    assert reply["result"][0]["title"] == "Ask starchat for feedback on this code", reply
    assert client.shutdown_and_exit() == 0
    replied_ids = [r["id"] for r in client.replies if r["id"] is not None]
    assert len(replied_ids) == len(set(replied_ids)), client.replies  # one reply per request


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=6,
)
FIELD_PATHS = [
    (),
    ("textDocument",),
    ("textDocument", "uri"),
    ("range",),
    ("range", "start"),
    ("range", "start", "line"),
    ("range", "end", "character"),
    ("context",),
    ("context", "diagnostics"),
    ("context", "only"),
    ("context", "triggerKind"),
]


@st.composite
def code_action_params(draw: st.DrawFn) -> Any:
    """Well-formed codeAction params with one to three fields replaced by random JSON."""
    params: Any = json.loads(json.dumps(CODE_ACTION_PARAMS))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(FIELD_PATHS))
        if not path:
            params = draw(JSON_VALUES)
            continue
        parent = params
        for key in path[:-1]:
            if not isinstance(parent, dict):
                break
            parent = parent.setdefault(key, {})
        if isinstance(parent, dict):
            parent[path[-1]] = draw(JSON_VALUES)
    return params


def test_random_code_action_params_all_get_a_reply(client: RawClient) -> None:
    @settings(
        max_examples=200,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(params=code_action_params())
    def each_gets_a_reply(params: Any) -> None:
        reply = client.request("textDocument/codeAction", params)
        assert "result" in reply or "error" in reply, reply

    each_gets_a_reply()
    assert "result" in client.request("textDocument/codeAction", CODE_ACTION_PARAMS)
    assert client.shutdown_and_exit() == 0


@pytest.mark.parametrize(
    ("body", "reply_id", "code"),
    [
        (b'{"jsonrpc": "2.0", "id": true, "method": "shutdown"}', None, INVALID_REQUEST),
        (b'{"jsonrpc": "1.0", "id": 7, "method": "shutdown"}', 7, INVALID_REQUEST),
        (b'{"jsonrpc": "2.0", "id": 7, "method": 12}', 7, INVALID_REQUEST),
        (b'{"jsonrpc": "2.0", "id": 7, "method": "no/suchMethod"}', 7, METHOD_NOT_FOUND),
        (b'{"jsonrpc": "2.0", "id": 7, "method": "textDocument/codeAction"}', 7, INVALID_PARAMS),
        (b"\xff\xfe", None, PARSE_ERROR),
        (b"[" * 100_000, None, PARSE_ERROR),  # too deep for json.loads
    ],
)
def test_invalid_envelope_gets_the_json_rpc_error(
    client: RawClient, body: bytes, reply_id: int | None, code: int
) -> None:
    client.send_body(body)
    assert client.error_code(client.reply_to(reply_id)) == code


def test_error_response_without_id_is_not_answered(client: RawClient) -> None:
    # Answering it could start two peers bouncing errors forever.
    client.send({"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "?"}})
    assert "result" in client.request("textDocument/codeAction", CODE_ACTION_PARAMS)
