"""The API key never leaves the server in anything it writes. The real server process runs the
HTTP backend against a local fault server that refuses (401), fails (500, echoing the key back),
cuts a stream and then answers; every byte the server wrote to stdout (replies, messages,
progress, logs sent to the editor), its stderr and its --log-file are searched for the key."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from raw_lsp import SERVER, RawLspClient, log_tail, stop, whole_lines
from test_engine_http import FaultServer, Plan

KEY_ENV = "STARCHAT_TEST_SECRET_KEY"
KEY = "sk-live-0123456789-never-show-me"
TEXT = "def total(values):\n    result = 0\n    for v in values[:-1]:\n        result += v\n"
URI = "file:///secret/total.py"


class Recorded:
    """A reader that keeps a copy of every byte read through it."""

    def __init__(self, inner: IO[bytes]) -> None:
        self.inner = inner
        self.seen = bytearray()

    def readline(self) -> bytes:
        line = self.inner.readline()
        self.seen += line
        return line

    def read(self, size: int) -> bytes:
        data = self.inner.read(size)
        self.seen += data
        return data


@pytest.fixture
def fault() -> Iterator[FaultServer]:
    server = FaultServer()
    yield server
    server.close()


def test_the_api_key_appears_in_nothing_the_server_writes(
    tmp_path: Path, fault: FaultServer
) -> None:
    stderr_path, log_path = tmp_path / "server.stderr", tmp_path / "server.log"
    env = dict(os.environ, **{KEY_ENV: KEY})
    with stderr_path.open("wb") as stderr:
        proc = subprocess.Popen(
            [*SERVER, "--log-file", str(log_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
        )
    assert proc.stdin is not None and proc.stdout is not None
    stdin, stdout = proc.stdin, Recorded(proc.stdout)

    def write(data: bytes) -> None:
        stdin.write(data)
        stdin.flush()

    client = RawLspClient(stdout, write)  # type: ignore[arg-type]
    fault.plans = [
        Plan(mode="status", status=401, body={"error": {"message": "invalid key"}}),
        Plan(mode="status", status=500, body={"error": f"bad header: Bearer {KEY}"}),
        Plan(mode="error_event"),
        Plan(mode="cut"),
    ]
    try:
        settings: dict[str, Any] = {
            "model": {"name": "team-model", "backend": "http"},
            "http": {"endpoint": fault.url, "api_key_env": KEY_ENV, "retries": 0},
            "generation": {"max_new_tokens": 16},
        }
        client.initialize(
            {
                "initializationOptions": settings,
                "capabilities": {"window": {"workDoneProgress": True}},
                "trace": "verbose",
            }
        )
        client.open(URI, TEXT)
        params = {"textDocument": {"uri": URI}, "range": whole_lines(0, 4)}
        errors = []
        for index in range(4):  # 401, 500 echoing the key, an error event, a cut stream
            reply = client.reply(
                client.send_request("starchat/explain", {**params, "partialResultToken": index})
            )
            errors.append(reply.get("error"))
        answer = client.request("starchat/explain", {**params, "partialResultToken": "good"})
        client.request("starchat/status", None)
        client.shutdown_and_exit()
        assert proc.wait(timeout=10) == 0, log_tail(stderr_path)
    finally:
        stop(proc)

    # The key was really in play: sent on every request, and a failure named where it lives.
    posts = fault.posts
    assert posts and all(p["headers"]["Authorization"] == f"Bearer {KEY}" for p in posts)
    assert errors[0] and f"${KEY_ENV}" in errors[0]["message"], errors
    assert errors[1] and "Bearer ***" in errors[1]["message"], errors
    assert answer["text"], answer
    written = {
        "stdout": bytes(stdout.seen).decode("utf-8", errors="replace"),
        "stderr": stderr_path.read_text(errors="replace"),
        "log file": log_path.read_text(errors="replace"),
    }
    assert "refused access (401)" in written["log file"]  # the failures were logged
    for where, text in written.items():
        # also as JSON would escape it, and in part (a prefix long enough to matter)
        for secret in (KEY, json.dumps(KEY)[1:-1], KEY[:16]):
            assert secret not in text, f"the key is in the server's {where}"
    print(
        f"\n{len(posts)} authenticated requests, {sum(1 for e in errors if e)} failed; "
        + ", ".join(f"{where}: {len(text)} chars" for where, text in written.items())
        + ": no trace of the key"
    )
