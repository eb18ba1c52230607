"""One model per machine: servers and terminal commands asking for the same model share one
host process and so one model worker, whatever order they come and go in."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from raw_lsp import RawLspClient, log_tail, start_stdio_server, stop, tiny_options, whole_lines

TEXT = "def total(values):\n    return sum(values[:-1])\n"
URI = "file:///shared/total.py"
EXPLAIN = {"textDocument": {"uri": URI}, "range": whole_lines(0, 2)}


def status(client: RawLspClient) -> dict[str, Any]:
    result: dict[str, Any] = client.request("starchat/status", {})
    return result


def ready_worker(client: RawLspClient) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while (shown := status(client))["state"] != "ready":
        assert time.monotonic() < deadline, shown
        time.sleep(0.1)
    worker: dict[str, Any] = shown["worker"]
    return worker


def worker_processes(model: Path) -> list[int]:
    """Model worker processes on this machine that run `model`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "starchat_lsp.engine.worker.child" in command and str(model) in command:
            found.append(int(entry.name))
    return found


def test_two_servers_and_a_cli_share_one_model(tmp_path: Path, tiny_chatml_model: Path) -> None:
    started = [start_stdio_server(tmp_path / f"server-{n}.stderr") for n in "ab"]
    try:
        for _, client in started:
            client.initialize(tiny_options(tiny_chatml_model, max_new_tokens=6))
            client.open(URI, TEXT)
        workers = [ready_worker(client) for _, client in started]
        assert workers[0]["pid"] == workers[1]["pid"], workers
        assert workers[0]["shared"] and workers[1]["clients"] == 2, workers

        answers: list[Any] = [None, None]

        def ask(index: int) -> None:
            answers[index] = started[index][1].request("starchat/explain", EXPLAIN, timeout=120)

        threads = [threading.Thread(target=ask, args=(n,)) for n in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(180)
        assert all(a and a["usage"]["tokens_out"] == 6 for a in answers), answers

        source = tmp_path / "total.py"
        source.write_text(TEXT)
        command = [sys.executable, "-m", "starchat_lsp", "explain", str(source)]
        command += ["--model", str(tiny_chatml_model), "--dtype", "float32"]
        command += ["--max-new-tokens", "4", "--json"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert worker_processes(tiny_chatml_model) == [workers[0]["pid"]]
        assert status(started[0][1])["worker"]["pid"] == workers[0]["pid"]

        for proc, client in started:
            client.shutdown_and_exit()
            assert proc.wait(timeout=20) == 0, log_tail(tmp_path / "server-a.stderr")
        deadline = time.monotonic() + 30
        while worker_processes(tiny_chatml_model) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not worker_processes(tiny_chatml_model), "the model outlived its last client"
    finally:
        for proc, _ in started:
            stop(proc)


def test_a_client_that_goes_away_stops_its_generation(
    tmp_path: Path, tiny_chatml_model: Path
) -> None:
    (gone_proc, gone), (stays_proc, stays) = (
        start_stdio_server(tmp_path / f"server-{n}.stderr") for n in "ab"
    )
    try:
        gone.initialize(tiny_options(tiny_chatml_model, max_new_tokens=100_000))
        stays.initialize(tiny_options(tiny_chatml_model, max_new_tokens=100_000))
        for client in (gone, stays):
            client.open(URI, TEXT)
        ready_worker(gone)
        params = {**EXPLAIN, "partialResultToken": "long"}
        gone.send_request("starchat/explain", params)
        gone.wait_for_chunks("long", 2, timeout=120)
        assert status(stays)["worker"]["in_flight"] == 1
        gone_proc.kill()
        gone_proc.wait()
        deadline = time.monotonic() + 60
        while (worker := status(stays)["worker"])["in_flight"] or worker["clients"] != 1:
            assert time.monotonic() < deadline, worker
            time.sleep(0.05)
        stays.shutdown_and_exit()
        assert stays_proc.wait(timeout=20) == 0, log_tail(tmp_path / "server-b.stderr")
    finally:
        stop(gone_proc)
        stop(stays_proc)


def test_the_hosts_folder_is_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from starchat_lsp.engine.worker.shared import RUNTIME_DIR_ENV, runtime_dir
    from starchat_lsp.errors import EngineError

    folder = tmp_path / "hosts"
    monkeypatch.setenv(RUNTIME_DIR_ENV, str(folder))
    assert runtime_dir() == folder and (folder.stat().st_mode & 0o777) == 0o700
    folder.chmod(0o755)
    with pytest.raises(EngineError, match="not private"):
        runtime_dir()


def test_a_host_serves_only_clients_of_its_own_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host started before an upgrade (or an edit) runs the old code: its key differs."""
    from starchat_lsp.engine.factory import EngineSettings
    from starchat_lsp.engine.worker import shared
    from starchat_lsp.engine.worker.shared import code_digest, host_key

    package = tmp_path / "package"
    (package / "engine").mkdir(parents=True)
    (package / "engine" / "base.py").write_text("A = 1\n")
    before = code_digest(package)
    code_digest.cache_clear()
    (package / "engine" / "base.py").write_text("A = 2\n")
    assert code_digest(package) != before
    code_digest.cache_clear()
    # The installed package's own code is in the key, beside the model and its settings.
    settings = EngineSettings(model="m")
    assert host_key(settings, "/models/m.gguf") == host_key(settings, "/models/m.gguf")
    assert host_key(settings, "/models/m.gguf") != host_key(settings, "/models/n.gguf")
    key = host_key(settings, "/models/m.gguf")
    monkeypatch.setattr(shared, "code_digest", lambda package: "another")
    assert host_key(settings, "/models/m.gguf") != key
