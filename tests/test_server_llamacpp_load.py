"""While llama.cpp loads a model, every request still gets its reply on stdout.

llama-cpp-python, asked to be quiet (verbose=False), points file descriptors 1 and 2 at
/dev/null while it loads a model: the language server's replies written in that window went
nowhere and the editor waited forever (found when llama.cpp became the default backend). The
server now keeps the descriptors as they are; this test sends code-action listings every 10 ms
through a load of the real pulled smollm2-135m GGUF and counts the replies.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from raw_lsp import log_tail, start_stdio_server, stop
from starchat_lsp.models.catalogue import SMALL_MODEL

pytestmark = pytest.mark.default_model

URI = "file:///load/t.py"
LISTING = {
    "textDocument": {"uri": URI},
    "range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}},
    "context": {"diagnostics": []},
}


def test_no_reply_is_lost_while_the_model_loads(tmp_path: Path) -> None:
    stderr_path = tmp_path / "server.stderr"
    proc, client = start_stdio_server(stderr_path)
    try:
        options = {"model": {"name": SMALL_MODEL, "backend": "llamacpp"}}
        client.initialize({"initializationOptions": options})
        client.open(URI, "def f(x):\n    return x\n")
        sent = []
        for _ in range(150):  # 1.5 s: the load takes a fraction of that, from `initialized`
            sent.append(client.send_request("textDocument/codeAction", LISTING))
            time.sleep(0.01)
        for msg_id in sent:
            reply = client.reply(msg_id, timeout=30)
            assert "error" not in reply and len(reply["result"]) == 3, reply
        # The load ends ready (on a busy machine it may outlast the 1.5 s of requests).
        status = client.status_when(lambda shown: shown["state"] != "loading", "end of the load")
        assert status["state"] == "ready", (status, log_tail(stderr_path))
        client.shutdown_and_exit()
        assert proc.wait(timeout=10) == 0, log_tail(stderr_path)
    finally:
        stop(proc)
