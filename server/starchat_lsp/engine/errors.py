"""The engines' own errors; the ones the model store shares with them are in starchat_lsp.errors."""

from starchat_lsp.errors import EngineError


class ModelCrashedError(EngineError):
    """The model's worker process died or stopped answering; the message says what to do."""

    def __init__(
        self, message: str, *, backend: str, fallback: str | None = None, retry: bool = False
    ) -> None:
        super().__init__(message)
        self.backend = backend  # the backend whose runtime died ("host": the shared host)
        self.fallback = fallback  # the backend the engine answers with from now on, if another
        self.retry = retry  # whether the next request goes to a new worker (restart or fallback)
