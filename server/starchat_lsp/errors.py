"""Errors a user can act on, shared by the model store and the engines: each message says what
happened and what to do. The store's own (not pulled, unknown, pull failed) are in models/errors.py,
the engines' own (a worker that crashed) in engine/errors.py."""


class EngineError(Exception):
    """Base class for engine failures; the message is shown to the user as it is."""


class ModelLoadError(EngineError):
    """The model could not be loaded (missing folder, not pulled, offline hub id, out of memory)."""
