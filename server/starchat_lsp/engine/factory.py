"""Build the engine a setting names: a catalogue model, a local folder or a hub id."""

from __future__ import annotations

from dataclasses import dataclass

from starchat_lsp.engine.base import Engine
from starchat_lsp.engine.errors import EngineError
from starchat_lsp.engine.transformers_engine import TransformersEngine
from starchat_lsp.models.catalogue import DEFAULT_MODEL

BACKENDS = ("transformers",)


@dataclass(frozen=True, kw_only=True)
class EngineSettings:
    model: str = DEFAULT_MODEL
    backend: str = "transformers"
    device: str = "auto"
    dtype: str = "auto"


def create_engine(settings: EngineSettings) -> Engine:
    """An engine for `settings.model`; nothing loads until `load()` or the first request."""
    from starchat_lsp.models.store import ModelStore

    if settings.backend not in BACKENDS:
        raise EngineError(f"unknown backend {settings.backend!r}: use one of {', '.join(BACKENDS)}")
    resolved = ModelStore().resolve(settings.model)
    return TransformersEngine(
        resolved.location,
        name=resolved.name,
        is_hub_id=resolved.is_hub_id,
        device=settings.device,
        dtype=settings.dtype,
    )
