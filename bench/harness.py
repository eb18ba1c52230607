"""Shared set-up for the sections: the options, the in-process engines, the server process."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starchat_lsp.engine.base import ChatMessage, GenerationSettings
from starchat_lsp.engine.transformers_engine import TransformersEngine
from starchat_lsp.models.store import ModelStore

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests/raw_lsp.py: the JSON-RPC client the server tests use

from tests.raw_lsp import RawLspClient, start_stdio_server, stop  # noqa: E402

EXAMPLE = (REPO / "examples" / "off_by_one.py").read_text()
EXAMPLE_URI = "file:///bench/off_by_one.py"


@dataclass(frozen=True, kw_only=True)
class Options:
    model: str
    quick: bool
    runs: int  # repetitions of each timed run (the median is reported)
    new_tokens: int  # tokens each timed generation produces
    samples: int  # latency samples in the responsiveness section
    cancels: int
    prompt_lengths: tuple[int, ...]
    concurrency: tuple[int, ...]
    dtype: str
    sections: tuple[str, ...]
    worker_backends: tuple[str, ...]  # section 8's backends; empty: what the model allows
    edits: int  # lines retyped in the keystroke replay (section 9)
    completion_model: str  # section 9: completion.model (empty: the model completes)
    prefetch: bool = True  # section 9: completion.prefetch (the replay says where the cursor rests)
    look: tuple[float, float] = (0.5, 2.0)  # section 9: seconds the cursor rests before a place
    out: Path


class Bench:
    """One model under test; engines are loaded once and shared by the in-process sections."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.resolved = ModelStore().resolve(options.model)
        self.started = time.monotonic()
        self._engine: TransformersEngine | None = None  # one, shared by the sections

    def log(self, message: str) -> None:
        print(
            f"[bench {time.monotonic() - self.started:6.1f}s] {message}",
            file=sys.stderr,
            flush=True,
        )

    def engine(self, *, reuse_prefix: bool = False) -> TransformersEngine:
        """The transformers engine on the model; without prefix reuse unless asked (baselines)."""
        engine = self._engine
        if engine is None:
            engine = self._engine = TransformersEngine(
                self.resolved.location,
                name=self.resolved.name,
                is_hub_id=self.resolved.is_hub_id,
                dtype=self.options.dtype,
                prepare=self.resolved.prepare_transformers,  # converts a pulled GGUF, once
            )
            engine.load(self.log)
        engine.reuse_prefix = reuse_prefix
        return engine

    def settings(self, max_new_tokens: int | None = None) -> GenerationSettings:
        return GenerationSettings(max_new_tokens=max_new_tokens or self.options.new_tokens)

    def server_options(self, max_new_tokens: int, **extra: Any) -> dict[str, Any]:
        # The in-process baselines are transformers engines, and a feedback request is one
        # generation: the server runs the same backend, without verification's extra answers.
        options: dict[str, Any] = {
            "model": {
                "name": self.options.model,
                "dtype": self.options.dtype,
                "backend": "transformers",
            },
            "generation": {"max_new_tokens": max_new_tokens},
            "completion": {"debounce_ms": 0},
            "verify": {"enabled": False},
        }
        for key, value in extra.items():
            options.setdefault(key, {}).update(value)
        return options

    @contextmanager
    def server(
        self, options: dict[str, Any], settle_s: float = 0.0
    ) -> Iterator[tuple[RawLspClient, dict[str, float]]]:
        """The real server process on stdio, initialized with `options`, its model loaded.

        Yields the client and start-up times: `initialize_s` (request to answer), `spawn_s`
        (process start to the answer), `ready_s` (`initialized` to the model's ready report).
        With `settle_s`, `initialize` is sent that long after the process started (its imports
        done), so that `initialize_s` is the server's own answer time.
        """
        log_path = self.options.out / "server.stderr"
        spawned = time.monotonic()
        proc, client = start_stdio_server(log_path)
        try:
            time.sleep(settle_s)
            sent = time.monotonic()
            msg_id = client.send_request(
                "initialize",
                {
                    "processId": os.getpid(),
                    "rootUri": None,
                    "capabilities": {"window": {"workDoneProgress": True}},
                    "initializationOptions": options,
                },
            )
            client.reply(msg_id, timeout=120)
            answered = client.reply_times[msg_id]
            initialized = time.monotonic()
            client.notify("initialized", {})
            client.wait_until(lambda: _ready_at(client) is not None, 600, "the model to load")
            ready = _ready_at(client)
            assert ready is not None
            if "failed" in ready[1]:
                raise RuntimeError(f"the server could not load the model: {ready[1]}")
            times = {
                "initialize_s": answered - sent,
                "spawn_s": answered - spawned,
                "ready_s": ready[0] - initialized,
            }
            yield client, times
            client.request("shutdown", None)
            client.notify("exit", None)
            proc.wait(timeout=30)
        finally:
            stop(proc)


def _ready_at(client: RawLspClient) -> tuple[float, str] | None:
    """When the load progress ended, and its message (`... is ready` or `... failed ...`)."""
    for arrived, message in zip(client.notification_times, client.notifications, strict=True):
        value = (message.get("params") or {}).get("value") or {}
        if message.get("method") == "$/progress" and value.get("kind") == "end":
            return arrived, str(value.get("message", ""))
    return None


def explain_messages(words: int = 0) -> list[ChatMessage]:
    """A question whose answer is long: the timed generations run to their token count."""
    padding = ("\n\n# notes\n" + " ".join(f"item{i}" for i in range(words))) if words else ""
    return [
        ChatMessage(
            "user",
            "Explain in detail, step by step, what this code does and how to test it:\n\n"
            f"```python\n{EXAMPLE}{padding}\n```",
        )
    ]
