"""Errors a user can act on: each message says what happened and what to do."""


class EngineError(Exception):
    """Base class for engine failures; the message is shown to the user as it is."""


class ModelLoadError(EngineError):
    """The model could not be loaded (missing folder, not pulled, offline hub id, out of memory)."""


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


class ModelCrashedError(EngineError):
    """The model's worker process died or stopped answering; the message says what to do."""

    def __init__(
        self, message: str, *, backend: str, fallback: str | None = None, retry: bool = False
    ) -> None:
        super().__init__(message)
        self.backend = backend  # the backend whose runtime died ("host": the shared host)
        self.fallback = fallback  # the backend the engine answers with from now on, if another
        self.retry = retry  # whether the next request goes to a new worker (restart or fallback)
