"""Build the engine a setting names: transformers or llama.cpp on a local model, or an HTTP server.

Backends import lazily: llama-cpp-python is an optional extra and the HTTP client is only needed
when a team server is used.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING

from starchat_lsp.engine.base import Engine
from starchat_lsp.errors import EngineError
from starchat_lsp.models.catalogue import DEFAULT_MODEL

if TYPE_CHECKING:
    from starchat_lsp.engine.llamacpp_engine import CompletionModel
    from starchat_lsp.models.store import ResolvedModel

log = logging.getLogger(__name__)

BACKENDS = ("auto", "transformers", "llamacpp", "http")
# What "auto" picks, and why: llama.cpp is 5-10x faster on a CPU (docs/benchmarks.md) and gave
# the same answers in the eval (docs/eval/); transformers runs everything else, and CUDA.
HTTP_APIS = ("openai", "tgi")


@dataclass(frozen=True, kw_only=True)
class HttpEngineSettings:
    """Where a serving engine (vLLM, TGI, llama.cpp server, Ollama) listens; how to talk to it."""

    endpoint: str = "http://127.0.0.1:8080"  # base URL; /v1/... (openai) or /generate_stream (tgi)
    api: str = "openai"  # "openai": /v1/chat/completions and /v1/completions; "tgi": native
    model: str = ""  # the model name the server expects; empty: the `model` setting's name
    api_key_env: str = ""  # the environment variable holding the API key (never the key itself)
    connect_timeout_s: float = 5.0
    first_token_timeout_s: float = 60.0
    total_timeout_s: float = 600.0
    retries: int = 2  # for connection errors, 429 and 503 only, with backoff
    max_concurrent: int = 4  # requests in flight at once from this editor
    context_window: int = 4096  # the served model's context, in tokens (prompt plus answer)


@dataclass(frozen=True, kw_only=True)
class EngineSettings:
    model: str = DEFAULT_MODEL
    backend: str = "auto"  # llama.cpp for a GGUF model on a CPU, else transformers
    device: str = "auto"
    dtype: str = "auto"
    threads: int = 0  # llama.cpp: CPU threads; 0 = as many as there are cores
    context_size: int = 0  # llama.cpp: tokens of context; 0 = the model's own
    # llama.cpp: a smaller model of the same family for completions at the cursor, loaded beside
    # `model` in its process (a 1.5B beside a bigger chat model); empty: `model` completes too
    completion_model: str = ""
    http: HttpEngineSettings = field(default_factory=HttpEngineSettings)


def open_engine(
    settings: EngineSettings,
    *,
    notify: Callable[[str], None] | None = None,
    restarts: int = 1,
    shared: bool = True,
) -> Engine:
    """The engine the server and the CLI use: a local model runs in another process.

    A native crash of the model runtime then kills that process, not the caller: the request in
    flight fails with a message, the worker restarts (`restarts` times), and with the `auto`
    backend llama.cpp falls back to transformers (`notify` tells the user once). `shared`: every
    server and CLI of this user asking for the same model and settings attaches to one shared
    host and so to one copy of the model; otherwise the worker is this caller's alone. An HTTP
    backend is already another process: it is used directly.
    """
    if settings.backend == "http":
        return create_engine(settings)
    resolved, backends = backend_order(settings)
    if shared:
        from starchat_lsp.engine.worker.shared import SharedEngine

        return SharedEngine(
            settings,
            name=resolved.name,
            model_location=resolved.location,
            restarts=restarts,
            notify=notify,
        )
    from starchat_lsp.engine.worker.engine import WorkerEngine

    return WorkerEngine(
        settings, name=resolved.name, backends=backends, notify=notify, restarts=restarts
    )


def backend_order(settings: EngineSettings) -> tuple[ResolvedModel, list[str]]:
    """The model and the local backends to try for it, best first (`auto`: two)."""
    if settings.backend not in BACKENDS:
        raise EngineError(f"unknown backend {settings.backend!r}: use one of {', '.join(BACKENDS)}")
    from starchat_lsp.models.store import ModelStore

    resolved = ModelStore().resolve(settings.model)
    if settings.backend != "auto":
        if settings.backend == "llamacpp":
            _require_gguf(settings.model, resolved.gguf_path)
        return resolved, [settings.backend]
    if _llamacpp_fits(resolved.gguf_path, settings.device):
        return resolved, ["llamacpp", "transformers"]
    return resolved, ["transformers"]


def create_engine(settings: EngineSettings) -> Engine:
    """An engine for `settings.model` in this process; nothing loads until `load()`.

    The product runs local models through `open_engine` (a worker process); this is what the
    worker itself, the benchmarks' in-process rows and the engine tests use.
    """
    if settings.backend == "http":
        from starchat_lsp.engine.http_engine import HttpEngine

        return HttpEngine(settings.http, name=settings.http.model or settings.model)

    resolved, backends = backend_order(settings)
    if backends[0] == "llamacpp":
        from starchat_lsp.engine.llamacpp_engine import LlamaCppEngine

        return LlamaCppEngine(
            str(_require_gguf(settings.model, resolved.gguf_path)),
            name=resolved.name,
            threads=settings.threads,
            context_size=settings.context_size,
            completion=_completion_model(settings.completion_model),
        )
    if settings.completion_model.strip():
        log.warning(
            "completion.model %s is for llama.cpp only: completions use %s",
            settings.completion_model,
            resolved.name,
        )

    from starchat_lsp.engine.transformers_engine import TransformersEngine

    return TransformersEngine(
        resolved.location,
        name=resolved.name,
        is_hub_id=resolved.is_hub_id,
        device=settings.device,
        dtype=settings.dtype,
        prepare=resolved.prepare_transformers,
    )


def _completion_model(setting: str) -> CompletionModel | None:
    """The completion model a setting names, or why it cannot be used (the engine says it)."""
    from starchat_lsp.engine.llamacpp_engine import CompletionModel
    from starchat_lsp.models.store import ModelStore

    name = setting.strip()
    if not name:
        return None
    try:
        resolved = ModelStore().resolve(name)
    except EngineError as error:
        return CompletionModel(name, None, str(error))
    if resolved.gguf_path is None:
        return CompletionModel(resolved.name, None, "it has no GGUF file for llama.cpp")
    return CompletionModel(resolved.name, resolved.gguf_path)


def _require_gguf(model: str, gguf_path: Path | None) -> Path:
    if gguf_path is None:
        raise EngineError(
            f"{model} has no GGUF file for llama.cpp: pull a catalogue model "
            "(`starchat-lsp models pull NAME`) or give the path of a .gguf file"
        )
    return gguf_path


def _llamacpp_fits(gguf_path: object, device: str) -> bool:
    """Whether "auto" takes llama.cpp: a GGUF file, no CUDA asked for, the extra installed."""
    return gguf_path is not None and device != "cuda" and find_spec("llama_cpp") is not None
