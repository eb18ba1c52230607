"""Which engine a `--model` or `--judge` argument names: `NAME`, `NAME@BACKEND`, or a URL.

A `+verify` at the end (`qwen2.5-coder-1.5b@llamacpp+verify`) answers bug feedback through the
verification pipeline instead of the plain prompt: the same model, another candidate.
"""

from __future__ import annotations

from starchat_lsp.engine.factory import BACKENDS, EngineSettings, HttpEngineSettings


class CandidateError(ValueError):
    """A model argument that names no backend we have."""


VERIFY = "+verify"


def verifies(spec: str) -> bool:
    """Whether the candidate answers through the verification pipeline."""
    return spec.strip().endswith(VERIFY)


def engine_settings(spec: str, default_backend: str = "auto") -> EngineSettings:
    """`smollm2-135m`, `qwen2.5-coder-1.5b@llamacpp`, `./my-model`, `http://host:8080[#model]`."""
    spec = spec.strip().removesuffix(VERIFY)
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


def label(spec: str, default_backend: str = "auto") -> str:
    """The name a candidate goes by in a run folder: the backend is part of it unless default."""
    settings = engine_settings(spec, default_backend)
    suffix = VERIFY if verifies(spec) else ""
    if settings.backend in ("auto", "http"):
        name = spec.strip().removesuffix(VERIFY) if settings.backend == "http" else settings.model
        return name + suffix
    return f"{settings.model}@{settings.backend}{suffix}"
