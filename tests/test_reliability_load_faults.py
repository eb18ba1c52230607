"""A model that cannot load (its folder corrupt, or memory running out while loading) gives the
user one clear message, and the server keeps running: the requests that need no model are
answered, model requests fail with that reason, and a good model then serves. The HTTP backend's
faults (refused, 401, 404, 429, 500, cut stream, no first token): tests/test_engine_http.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from raw_lsp import RawLspClient, log_tail, start_stdio_server, stop, tiny_options, whole_lines
from starchat_lsp.engine import loading
from starchat_lsp.errors import ModelLoadError

TEXT = "def total(values):\n    return sum(values[:-1])\n"
URI = "file:///faults/total.py"
REQUEST_FAILED = -32803


def load_failures(client: RawLspClient) -> list[str]:
    """The messages of the work-done progress ends that say a load failed."""
    ends = [
        n["params"]["value"].get("message", "")
        for n in client.notifications
        if n["method"] == "$/progress" and n["params"]["value"].get("kind") == "end"
    ]
    return [message for message in ends if "failed to load" in message]


def test_a_corrupt_model_folder_is_one_message_and_the_server_goes_on(
    tmp_path: Path, tiny_chatml_model: Path
) -> None:
    broken = tmp_path / "broken-model"
    shutil.copytree(tiny_chatml_model, broken)
    (broken / "model.safetensors").write_bytes(b"\x00" * 100)  # cut short on a full disk
    stderr_path = tmp_path / "server.stderr"
    proc, client = start_stdio_server(stderr_path)
    try:
        progress = {"capabilities": {"window": {"workDoneProgress": True}}}
        client.initialize({**progress, **tiny_options(broken, max_new_tokens=4)})
        client.open(URI, TEXT)
        params = {"textDocument": {"uri": URI}, "range": whole_lines(0, 2)}
        failures = [client.reply(client.send_request("starchat/explain", params)) for _ in "ab"]
        for reply in failures:
            assert reply["error"]["code"] == REQUEST_FAILED, reply
            assert "could not be loaded" in reply["error"]["message"], reply
            assert "pull it again" in reply["error"]["message"], reply
        actions = client.request(
            "textDocument/codeAction",
            {
                "textDocument": {"uri": URI},
                "range": params["range"],
                "context": {"diagnostics": []},
            },
        )
        assert actions, actions
        # Said once where the editor shows the load's progress, and with each model request.
        [said] = load_failures(client)
        assert "could not be loaded" in said and "pull it again" in said, said
        good = tiny_options(tiny_chatml_model, max_new_tokens=4)["initializationOptions"]
        client.notify("workspace/didChangeConfiguration", {"settings": good})
        answer = client.request("starchat/explain", params, timeout=60)
        assert answer["usage"]["tokens_out"] == 4, answer
        client.shutdown_and_exit()
        assert proc.wait(timeout=10) == 0, log_tail(stderr_path)
        assert "Traceback" not in stderr_path.read_text(), log_tail(stderr_path)
    finally:
        stop(proc)


@pytest.mark.parametrize("error", [MemoryError(), "torch"])
def test_out_of_memory_while_loading_says_choose_a_smaller_model(
    tiny_chatml_model: Path, monkeypatch: pytest.MonkeyPatch, error: object
) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    raised = torch.OutOfMemoryError("CUDA out of memory") if error == "torch" else error

    def run_out(*args: object, **kwargs: object) -> None:
        raise raised  # type: ignore[misc]

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", run_out)
    with pytest.raises(ModelLoadError) as caught:
        loading.load_transformers_model(
            str(tiny_chatml_model), is_hub_id=False, device="cpu", dtype="float32"
        )
    message = str(caught.value)
    assert "not enough memory" in message and "choose a smaller model" in message
    assert "\n" not in message
