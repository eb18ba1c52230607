"""`--model` and `--judge` arguments: a name, NAME@BACKEND, or a URL, and the label they get."""

from __future__ import annotations

import pytest

from starchat_lsp.eval.candidates import CandidateError, engine_settings, label


@pytest.mark.parametrize(
    ("spec", "default", "model", "backend"),
    [
        ("smollm2-135m", "transformers", "smollm2-135m", "transformers"),
        ("smollm2-135m", "llamacpp", "smollm2-135m", "llamacpp"),
        ("qwen2.5-coder-1.5b@llamacpp", "transformers", "qwen2.5-coder-1.5b", "llamacpp"),
        ("/models/a@b/model", "transformers", "/models/a@b/model", "transformers"),
    ],
)
def test_specs_name_a_model_and_backend(spec: str, default: str, model: str, backend: str) -> None:
    settings = engine_settings(spec, default)
    assert (settings.model, settings.backend) == (model, backend)


def test_a_url_is_an_http_backend() -> None:
    settings = engine_settings("http://127.0.0.1:8080#coder")
    assert settings.backend == "http"
    assert (settings.http.endpoint, settings.http.model) == ("http://127.0.0.1:8080", "coder")


def test_labels_carry_the_backend_and_read_back_the_same() -> None:
    assert label("smollm2-135m") == "smollm2-135m"  # auto: the backend the machine suits
    assert label("smollm2-135m", "llamacpp") == "smollm2-135m@llamacpp"
    assert label("a@transformers", "llamacpp") == "a@transformers"
    assert label("a@llamacpp+verify") == "a@llamacpp+verify"
    assert label("a+verify", "transformers") == "a@transformers+verify"
    for spec, default in [
        ("m", "llamacpp"),
        ("m@llamacpp", "transformers"),
        ("m", "transformers"),
        ("m", "auto"),
        ("m+verify", "llamacpp"),
    ]:
        again = engine_settings(label(spec, default))
        assert again.backend == engine_settings(spec, default).backend


@pytest.mark.parametrize(("spec", "message"), [("", "empty"), ("m@gpu", "unknown backend 'gpu'")])
def test_bad_specs_say_what_to_write(spec: str, message: str) -> None:
    with pytest.raises(CandidateError, match=message):
        engine_settings(spec)
