"""Which engine a `--model` or `--judge` argument names: `NAME`, `NAME@BACKEND`, or a URL."""

from __future__ import annotations

from starchat_lsp.engine.factory import BACKENDS, EngineSettings, HttpEngineSettings


class CandidateError(ValueError):
    """A model argument that names no backend we have."""


def engine_settings(spec: str, default_backend: str = "transformers") -> EngineSettings:
    """`smollm2-135m`, `qwen2.5-coder-1.5b@llamacpp`, `./my-model`, `http://host:8080[#model]`."""
    spec = spec.strip()
    if not spec:
        raise CandidateError("a model argument is empty: give a model name, folder or URL")
    if spec.startswith(("http://", "https://")):
        endpoint, _, model = spec.partition("#")
        return EngineSettings(
            model=model or endpoint,
            backend="http",
            http=HttpEngineSettings(endpoint=endpoint, model=model),
        )
    name, at, backend = spec.rpartition("@")
    if at and backend in BACKENDS and name:
        return EngineSettings(model=name, backend=backend)
    if at and backend and "/" not in backend:
        raise CandidateError(
            f"unknown backend {backend!r} in {spec!r}: write NAME@{' or NAME@'.join(BACKENDS[:2])}"
        )
    return EngineSettings(model=spec, backend=default_backend)


def label(spec: str, default_backend: str = "transformers") -> str:
    """The name a candidate goes by in a run folder: the backend is part of it unless default."""
    settings = engine_settings(spec, default_backend)
    if settings.backend in ("transformers", "http"):
        return spec.strip() if settings.backend == "http" else settings.model
    return f"{settings.model}@{settings.backend}"
