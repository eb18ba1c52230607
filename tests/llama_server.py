"""A real llama.cpp OpenAI-compatible server for the HTTP backend's tests.

`python -m llama_cpp.server` (from llama-cpp-python[server]) serving the default model's GGUF, run
in its own process group and killed with it. `make test` pulls the model before the suite.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from starchat_lsp.models.catalogue import SMALL_MODEL
from starchat_lsp.models.store import ModelStore

CONTEXT = 2048  # the server's context window, in tokens: give it to the HTTP backend too
START_TIMEOUT_S = 180.0
# A core is left for the language server and the test; llama.cpp's threads spin while they wait
# for each other, and on a busy 2-core machine 2 threads ran 5x slower than 1.
THREADS = max(1, min((os.cpu_count() or 2) - 1, 4))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def llama_cpp_server(
    log_dir: Path, model: str = SMALL_MODEL, threads: int = THREADS
) -> Iterator[str]:
    """Start the server on the GGUF of `model` (served as that name); yield its URL once it
    answers. The benchmark uses it too."""
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.fail("llama-cpp-python[server] is not installed: run `make install` (dev extra)")
    resolved = ModelStore().resolve(model)
    if resolved.gguf_path is None or not Path(resolved.gguf_path).exists():
        pytest.fail("the default model is not pulled: run `make pull` before this test")
    port = free_port()
    log_path = log_dir / "server.log"
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(resolved.gguf_path),
        "--model_alias",
        model,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(CONTEXT),
        "--n_threads",
        str(threads),
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"llama_cpp.server exited: {log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not start: {log_path.read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=10)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
