"""An error in the model worker reaches its caller as the kind it would have seen in-process."""

from __future__ import annotations

import pytest

from starchat_lsp.engine.errors import ModelCrashedError
from starchat_lsp.engine.worker.remote import error_from, error_to_wire
from starchat_lsp.errors import EngineError, ModelLoadError
from starchat_lsp.models.errors import ModelNotPulledError, PullError, UnknownModelError


@pytest.mark.parametrize(
    "error",
    [
        ModelLoadError("the file is not a GGUF model"),
        ModelNotPulledError("qwen2.5-coder-1.5b"),
        UnknownModelError("nope", ["smollm2-135m"]),
        PullError("the download was cut off; nothing was kept"),
    ],
)
def test_every_load_error_comes_back_as_a_load_error(error: ModelLoadError) -> None:
    back = error_from(error_to_wire(error))
    assert isinstance(back, ModelLoadError) and str(back) == str(error)


def test_a_crash_keeps_its_details_and_anything_else_says_where_it_came_from() -> None:
    crash = ModelCrashedError("segfault", backend="llamacpp", fallback="transformers", retry=True)
    back = error_from(error_to_wire(crash))
    assert isinstance(back, ModelCrashedError)
    assert (back.backend, back.fallback, back.retry) == ("llamacpp", "transformers", True)
    other = error_from(error_to_wire(ValueError("bad")))
    assert type(other) is EngineError and str(other) == "bad (ValueError in the model worker)"
