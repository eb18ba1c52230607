from starchat_lsp.settings import Settings, parse_settings


def test_defaults_for_nothing() -> None:
    assert parse_settings(None) == (Settings(), [])
    assert parse_settings({}) == (Settings(), [])


def test_values_are_read_and_a_vs_code_section_is_unwrapped() -> None:
    settings, problems = parse_settings(
        {
            "starchat": {
                "model": {"name": "qwen2.5-coder-1.5b", "dtype": "float32"},
                "generation": {"max_new_tokens": 64, "temperature": 1},
                "completion": {"enabled": False},
            }
        }
    )
    assert problems == []
    assert settings.model.name == "qwen2.5-coder-1.5b" and settings.model.dtype == "float32"
    assert settings.generation.max_new_tokens == 64
    assert settings.generation.temperature == 1.0 and isinstance(
        settings.generation.temperature, float
    )
    assert settings.completion.enabled is False


def test_bad_values_are_replaced_by_defaults_and_said() -> None:
    settings, problems = parse_settings(
        {
            "model": {"device": "tpu", "name": "  "},
            "generation": {"max_new_tokens": True, "temperature": -0.5},
            "completion": {"debounce_ms": "soon"},
            "diagnostics": "yes",
            "colour": {},
        }
    )
    assert settings == Settings()
    joined = "\n".join(problems)
    assert len(problems) == 7, problems
    for name in (
        "model.device",
        "model.name",
        "generation.max_new_tokens",
        "generation.temperature",
        "completion.debounce_ms",
        "starchat.diagnostics",
        "starchat.colour",
    ):
        assert name in joined
    assert "use one of auto, cpu, cuda" in joined


def test_a_non_object_is_one_problem() -> None:
    assert parse_settings([1, 2]) == (
        Settings(),
        ["starchat settings must be an object: using the defaults"],
    )
