"""`serve --tcp` listens on loopback unless told otherwise: a host that other machines can reach
is refused without --allow-remote, and with it a warning goes to stderr. (The default host and
a session over TCP: tests/test_server_tcp.py.)"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from raw_lsp import SERVER, connect_tcp, free_port, log_tail, socket_client, stop
from starchat_lsp.cli.serve_command import is_loopback

WARNING = "starchat-lsp: warning: listening on"


@pytest.mark.parametrize("host", ["0.0.0.0", "[::]"])
def test_a_remote_host_without_the_flag_is_refused(host: str) -> None:
    port = free_port()
    result = subprocess.run(
        [*SERVER, "--tcp", f"{host}:{port}"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result
    assert result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("starchat-lsp: error: --tcp ") and "--allow-remote" in line, line


def serve(args: list[str], stderr_path: Path) -> subprocess.Popen[bytes]:
    with stderr_path.open("wb") as stderr:
        return subprocess.Popen(
            [*SERVER, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr
        )


@pytest.mark.parametrize(
    ("host", "remote"), [("0.0.0.0", True), ("127.0.0.1", False), ("localhost", False)]
)
def test_allow_remote_listens_and_warns_on_stderr(tmp_path: Path, host: str, remote: bool) -> None:
    port = free_port()
    stderr_path = tmp_path / "server.stderr"
    args = ["--tcp", f"{host}:{port}"] + (["--allow-remote"] if remote else [])
    proc = serve(args, stderr_path)
    try:
        sock = connect_tcp("127.0.0.1", port, proc)
        client = socket_client(sock)
        client.initialize({})
        client.shutdown_and_exit()
        assert proc.wait(timeout=10) == 0, log_tail(stderr_path)
        sock.close()
    finally:
        stop(proc)
    warnings = [line for line in stderr_path.read_text().splitlines() if line.startswith(WARNING)]
    assert len(warnings) == (1 if remote else 0), log_tail(stderr_path)
    if remote:
        assert "no authentication" in warnings[0]


def test_what_counts_as_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert is_loopback("127.0.0.2")
    assert is_loopback("0.0.0.0") is False and is_loopback("::") is False
    assert is_loopback("10.1.2.3") is False
    assert is_loopback("nosuchhost.invalid") is None  # listening on it fails with its own line
