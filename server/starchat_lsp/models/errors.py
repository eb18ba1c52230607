"""Errors from pulling a model; like the engine's, each message says what to do."""

from starchat_lsp.engine.errors import ModelLoadError


class PullError(ModelLoadError):
    """A model could not be fetched, verified or converted; nothing half-done is left behind."""
