"""Errors from the model store: a model not pulled, unknown, or that could not be pulled. Each is
a `ModelLoadError`, so whoever loads a model catches them with the engines' load errors."""

from starchat_lsp.errors import ModelLoadError


class ModelNotPulledError(ModelLoadError):
    def __init__(self, name: str) -> None:
        super().__init__(f"model {name!r} is not pulled: run `starchat-lsp models pull {name}`")
        self.model_name = name


class UnknownModelError(ModelLoadError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(
            f"unknown model {name!r}: name one of {', '.join(known)}, a local model folder, "
            "or a Hugging Face hub id (owner/name)"
        )
        self.model_name = name


class PullError(ModelLoadError):
    """A model could not be fetched, verified or converted; nothing half-done is left behind."""
