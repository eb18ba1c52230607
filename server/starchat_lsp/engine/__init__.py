"""Model engines behind one interface (no pygls here)."""

from starchat_lsp.engine.base import (
    Ask,
    CancelFlag,
    ChatMessage,
    CompletionPrompt,
    Engine,
    GenerationResult,
    GenerationSettings,
    StopReason,
    TextStream,
)
from starchat_lsp.errors import EngineError, ModelLoadError

__all__ = [
    "Ask",
    "CancelFlag",
    "ChatMessage",
    "CompletionPrompt",
    "Engine",
    "EngineError",
    "GenerationResult",
    "GenerationSettings",
    "ModelLoadError",
    "StopReason",
    "TextStream",
]
