"""`starchat-lsp serve --tcp`: the real server process on a socket, on the tiny model."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from raw_lsp import (
    SERVER,
    connect_tcp,
    free_port,
    log_tail,
    socket_client,
    start_stdio_server,
    stop,
    tiny_options,
    whole_lines,
)

URI = "file:///work/total.py"
TEXT = '''def total(values):
    """Add up the values."""
    result = 0
    for index in range(len(values) - 1):
        result += values[index]
    return result
'''
EXIT_TIMEOUT_S = 10.0


def serve_tcp(address: str, stderr_path: Path) -> subprocess.Popen[bytes]:
    """`starchat-lsp serve --tcp ADDRESS`, stdout piped (it must stay empty), stderr to a file."""
    with stderr_path.open("wb") as stderr:
        return subprocess.Popen(
            [*SERVER, "--tcp", address],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )


def refused(host: str, port: int) -> bool:
    """True if nothing listens on host:port."""
    try:
        socket.create_connection((host, port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


def loopback_alias_available() -> bool:
    """127.0.0.2 is a loopback address on Linux, but not on every system (macOS)."""
    try:
        with socket.socket() as probe:
            probe.bind(("127.0.0.2", 0))
    except OSError:
        return False
    return True


@pytest.fixture
def stderr_path(tmp_path: Path) -> Path:
    return tmp_path / "server.stderr"


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Server processes a test starts; any still running at the end are killed."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        stop(proc)


def test_a_session_over_tcp_on_the_default_host(
    tiny_chatml_model: Path, stderr_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    port = free_port()
    proc = serve_tcp(str(port), stderr_path)
    processes.append(proc)
    sock = connect_tcp("127.0.0.1", port, proc)
    client = socket_client(sock)

    result = client.initialize(tiny_options(tiny_chatml_model, max_new_tokens=8))
    assert result["capabilities"]["codeActionProvider"]["resolveProvider"] is True
    assert result["serverInfo"]["name"] == "starchat-lsp"
    # 127.0.0.1 only, not every interface: another loopback address finds nothing there.
    if loopback_alias_available():
        assert refused("127.0.0.2", port)

    client.open(URI, TEXT)
    cursor = {"line": 3, "character": 4}
    actions = client.request(
        "textDocument/codeAction",
        {
            "textDocument": {"uri": URI},
            "range": {"start": cursor, "end": cursor},
            "context": {"diagnostics": []},
        },
    )
    assert [a["title"] for a in actions] == [
        "Ask starchat for feedback on this code",
        "Fix this code with starchat",
        "Explain this code with starchat",
    ]
    # The model runs and streams over the socket too.
    answer = client.request(
        "starchat/explain",
        {"textDocument": {"uri": URI}, "range": whole_lines(0, 6), "partialResultToken": "t"},
    )
    assert answer["usage"]["tokens_out"] == 8
    assert "".join(value["text"] for _, value in client.partial["t"]) == answer["text"]

    client.shutdown_and_exit()
    try:
        code = proc.wait(timeout=EXIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the server did not exit within {EXIT_TIMEOUT_S} s{log_tail(stderr_path)}")
    sock.close()
    assert code == 0, log_tail(stderr_path)
    assert proc.stdout is not None
    assert proc.stdout.read() == b"", "over TCP nothing may go to stdout"
    log = stderr_path.read_text()
    assert "Traceback" not in log, log


@pytest.mark.skipif(not loopback_alias_available(), reason="127.0.0.2 is not a local address")
def test_tcp_binds_the_host_given(
    stderr_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    port = free_port("127.0.0.2")
    proc = serve_tcp(f"127.0.0.2:{port}", stderr_path)
    processes.append(proc)
    sock = connect_tcp("127.0.0.2", port, proc)
    client = socket_client(sock)
    assert client.request("initialize", {"processId": None, "rootUri": None, "capabilities": {}})
    assert refused("127.0.0.1", port)
    client.shutdown_and_exit()
    assert proc.wait(timeout=EXIT_TIMEOUT_S) == 0, log_tail(stderr_path)
    sock.close()
    assert proc.stdout is not None and proc.stdout.read() == b""


@pytest.mark.parametrize("transport", ["tcp", "stdio"])
@pytest.mark.parametrize("busy_with", ["load", "generation"])
def test_exit_ends_the_process_at_once(
    transport: str,
    busy_with: str,
    tiny_chatml_model: Path,
    stderr_path: Path,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    """Not when the model has loaded (seconds) or the answer has run to the end of the context."""
    if transport == "tcp":
        port = free_port()
        proc = serve_tcp(str(port), stderr_path)
        processes.append(proc)
        sock = connect_tcp("127.0.0.1", port, proc)
        client = socket_client(sock)
    else:
        proc, client = start_stdio_server(stderr_path)
        processes.append(proc)
    client.initialize(tiny_options(tiny_chatml_model, max_new_tokens=100_000))
    explain = None
    if busy_with == "generation":
        client.open(URI, TEXT)
        explain = client.send_request(
            "starchat/explain",
            {"textDocument": {"uri": URI}, "range": whole_lines(0, 6), "partialResultToken": "g"},
        )
        client.wait_for_chunks("g")
    client.shutdown_and_exit()
    exiting = time.monotonic()
    assert proc.wait(timeout=EXIT_TIMEOUT_S) == 0, log_tail(stderr_path)
    exit_s = time.monotonic() - exiting
    print(f"\n{transport}: exit during the {busy_with} took {exit_s * 1000:.0f} ms")
    if explain is not None:  # it ended with the answer unfinished, not at the context's end
        assert "result" not in client.replies.get(explain, {}), client.replies[explain]
    assert "Traceback" not in stderr_path.read_text(), log_tail(stderr_path)


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("abc", "bad --tcp address 'abc': write PORT or HOST:PORT"),
        ("70000", "bad --tcp port 70000: use 1-65535"),
        ("0", "bad --tcp port 0: use 1-65535"),
        ("localhost:", "bad --tcp address 'localhost:'"),
        ("nosuchhost.invalid:2087", "cannot listen on nosuchhost.invalid:2087"),
    ],
)
def test_a_bad_address_is_one_clear_line(address: str, message: str) -> None:
    result = subprocess.run(
        [*SERVER, "--tcp", address],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result
    assert result.stdout == ""
    assert result.stderr.startswith(f"starchat-lsp: error: {message}"), result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_port_in_use_is_one_clear_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [*SERVER, "--tcp", str(port)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2, result
    assert result.stderr.strip() == (
        f"starchat-lsp: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    )
