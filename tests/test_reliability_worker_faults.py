"""The model runs in a worker process: whatever happens to it, the server lives on and says so.

Faults are injected into the real worker of the real server process (STARCHAT_LSP_WORKER_FAULT,
engine/worker/faults.py): a segmentation fault while the prompt goes in, SIGKILL during the
answer, os._exit while the model loads, and a worker that stops answering. Each time the request
in flight fails with a message that names what happened, the editor's other requests are
answered meanwhile, nothing is edited, `starchat/status` shows the crash, and a later request
is answered by the restarted worker. With the `auto` backend a second crash of llama.cpp falls
back to transformers, told once (window/showMessage). The worker never outlives its server.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from raw_lsp import RawLspClient, log_tail, start_stdio_server, stop, tiny_options, whole_lines
from starchat_lsp.models.store import ModelStore

TEXT = (
    "def total(values):\n    result = 0\n    for v in values[:-1]:\n        result += v\n"
    "    return result\n"
)
URI = "file:///faults/total.py"
REQUEST_FAILED = -32803
EXPLAIN = {"textDocument": {"uri": URI}, "range": whole_lines(0, 5)}
SMALL_MODEL = "smollm2-135m"


def code_actions(client: RawLspClient) -> int:
    """Send a code-action listing (it needs no model); its request id."""
    return client.send_request(
        "textDocument/codeAction",
        {"textDocument": {"uri": URI}, "range": whole_lines(1, 1), "context": {"diagnostics": []}},
    )


def status(client: RawLspClient) -> dict[str, Any]:
    result: dict[str, Any] = client.request("starchat/status", {})
    return result


def gone(pid: int, within_s: float = 10.0) -> bool:
    """Whether process `pid` has ended (or become a zombie nobody waits for) within a while."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0]
        except (FileNotFoundError, IndexError):
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


def serve(tmp_path: Path, fault: str, **env: str) -> tuple[subprocess.Popen[bytes], RawLspClient]:
    """A server whose model host (its own: a folder of this test's) injects `fault`."""
    variables = {
        "STARCHAT_LSP_WORKER_FAULT": fault,
        "STARCHAT_LSP_WORKER_FAULT_ONCE": str(tmp_path / "faulted-once"),
        "STARCHAT_LSP_RUNTIME_DIR": str(tmp_path / "hosts"),
        **env,
    }
    return start_stdio_server(tmp_path / "server.stderr", variables)


CRASHES = [
    ("segv@prompt", "crashed (SIGSEGV)"),
    ("kill@generation", "was killed (SIGKILL"),
    ("hang@prompt", "stopped answering"),
]


@pytest.mark.parametrize(("fault", "said"), CRASHES, ids=[fault for fault, _ in CRASHES])
def test_a_worker_that_dies_fails_its_request_and_the_next_one_is_answered(
    tmp_path: Path, tiny_chatml_model: Path, fault: str, said: str
) -> None:
    proc, client = serve(tmp_path, fault, STARCHAT_LSP_WORKER_DEADLINE_S="4")
    try:
        client.initialize(tiny_options(tiny_chatml_model, max_new_tokens=8))
        client.open(URI, TEXT)
        first_pid = _worker_pid(client)
        fix = client.send_request("starchat/fix", EXPLAIN)
        # While the worker dies (or hangs for seconds), the editor's other requests are answered.
        listing = code_actions(client)
        assert "error" not in client.reply(listing), client.reply(listing)
        failed = client.reply(fix, timeout=60)
        assert client.reply_times[listing] < client.reply_times[fix], "listing waited for the crash"
        assert failed["error"]["code"] == REQUEST_FAILED, failed
        message = failed["error"]["message"]
        assert said in message and "restarts for the next request" in message, message
        assert not client.server_requests, "nothing may be edited after a crash"
        shown = status(client)["worker"]
        assert shown["crashes"] == 1 and said in shown["last_crash"], shown
        assert gone(first_pid), "the dead worker was not reaped"

        answer = client.request("starchat/explain", EXPLAIN, timeout=120)
        assert answer["usage"]["tokens_out"] == 8, answer
        after = status(client)["worker"]
        assert after["worker"] == "running" and after["pid"] != first_pid, after
        client.shutdown_and_exit()
        assert proc.wait(timeout=20) == 0, log_tail(tmp_path / "server.stderr")
        assert gone(after["pid"]), "the worker outlived its server"
        assert "Traceback" not in (tmp_path / "server.stderr").read_text()
    finally:
        stop(proc)


def test_a_worker_that_exits_while_loading_is_restarted(
    tmp_path: Path, tiny_chatml_model: Path
) -> None:
    proc, client = serve(tmp_path, "exit@load")
    try:
        client.initialize(tiny_options(tiny_chatml_model, max_new_tokens=4))
        client.open(URI, TEXT)
        assert "error" not in client.reply(code_actions(client))
        answer = client.request("starchat/explain", EXPLAIN, timeout=120)
        assert answer["usage"]["tokens_out"] == 4, answer
        shown = status(client)["worker"]
        assert shown["crashes"] == 1 and "exit code 3" in shown["last_crash"], shown
        client.shutdown_and_exit()
        assert proc.wait(timeout=20) == 0, log_tail(tmp_path / "server.stderr")
    finally:
        stop(proc)


def test_the_server_killed_takes_its_worker_along(tmp_path: Path, tiny_chatml_model: Path) -> None:
    """Its model host exits once no client is left (at once here: the tests' idle time is 0)."""
    proc, client = start_stdio_server(tmp_path / "server.stderr")
    try:
        client.initialize(tiny_options(tiny_chatml_model, max_new_tokens=4))
        worker = _worker_pid(client)
        proc.kill()
        proc.wait()
        assert gone(worker), "the worker outlived a killed server"
    finally:
        stop(proc)


def _worker_pid(client: RawLspClient) -> int:
    """The model worker's process id, once the model has loaded (the server loads at start)."""
    deadline = time.monotonic() + 120
    while (shown := status(client))["state"] != "ready" and time.monotonic() < deadline:
        time.sleep(0.1)
    pid = shown["worker"]["pid"]
    assert isinstance(pid, int), shown
    return pid


@pytest.fixture(scope="module")
def small_gguf() -> str:
    resolved = ModelStore().resolve(SMALL_MODEL)
    if resolved.gguf_path is None:
        pytest.fail(f"{SMALL_MODEL} is not pulled: `make pull` pulls it before the suite")
    return SMALL_MODEL


def test_llamacpp_crashing_twice_falls_back_to_transformers_and_says_so_once(
    tmp_path: Path, small_gguf: str
) -> None:
    proc, client = start_stdio_server(
        tmp_path / "server.stderr",
        {
            "STARCHAT_LSP_WORKER_FAULT": "segv@prompt:llamacpp",
            "STARCHAT_LSP_RUNTIME_DIR": str(tmp_path / "hosts"),
        },
    )
    try:
        options = {"model": {"name": small_gguf}, "generation": {"max_new_tokens": 4}}
        client.initialize({"initializationOptions": options})
        client.open(URI, TEXT)
        messages = []
        for _ in range(2):
            failed = client.reply(client.send_request("starchat/explain", EXPLAIN), timeout=120)
            messages.append(failed["error"]["message"])
        assert "crashed (SIGSEGV) in llama.cpp" in messages[0], messages
        assert "restarts for the next request" in messages[0], messages
        assert "falling back to transformers: set model.backend" in messages[1], messages
        answer = client.request("starchat/explain", EXPLAIN, timeout=300)
        assert answer["usage"]["tokens_out"] == 4, answer
        assert status(client)["worker"]["backend"] == "transformers"
        told = [
            n["params"]["message"]
            for n in client.notifications
            if n["method"] == "window/showMessage" and "falling back" in n["params"]["message"]
        ]
        assert told == [messages[1]], told
        client.shutdown_and_exit()
        assert proc.wait(timeout=20) == 0, log_tail(tmp_path / "server.stderr")
    finally:
        stop(proc)


def _explain(tmp_path: Path, model: str, *options: str, fault: str) -> Any:
    """`starchat-lsp explain` on the buggy function, its model host in this test's folder."""
    source = tmp_path / "total.py"
    source.write_text(TEXT)
    env = {
        **os.environ,
        "STARCHAT_LSP_WORKER_FAULT": fault,
        "STARCHAT_LSP_RUNTIME_DIR": str(tmp_path / "hosts"),
    }
    command = [sys.executable, "-m", "starchat_lsp", "explain", str(source), "--model", model]
    return subprocess.run(
        [*command, *options], capture_output=True, text=True, env=env, timeout=600
    )


def test_the_cli_answers_through_the_fallback_with_one_line_said(
    tmp_path: Path, small_gguf: str
) -> None:
    done = _explain(tmp_path, small_gguf, "--max-new-tokens", "4", fault="segv@prompt:llamacpp")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip(), "no answer"
    said = [line for line in done.stderr.splitlines() if "SIGSEGV" in line]
    assert len(said) == 1 and "falling back to transformers" in said[0], done.stderr
    assert "Traceback" not in done.stderr


def test_the_cli_with_a_chosen_backend_says_one_line_and_fails(
    tmp_path: Path, small_gguf: str
) -> None:
    done = _explain(tmp_path, small_gguf, "--backend", "llamacpp", fault="segv@prompt")
    assert done.returncode == 1, done.stderr
    assert not done.stdout.strip(), done.stdout
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("starchat-lsp: error: the model runtime crashed (SIGSEGV)"), lines
    assert "starchat-lsp doctor" in lines[0], lines
