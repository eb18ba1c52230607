"""The server's settings: typed, each with a default, and forgiving.

They come from `initializationOptions` and `workspace/didChangeConfiguration`, as a JSON object
shaped like the dataclasses below (optionally wrapped in {"starchat": ...}). A bad value is
reported and replaced by its default; it never stops the server.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starchat_lsp.engine.factory import BACKENDS, HTTP_APIS, EngineSettings, HttpEngineSettings
from starchat_lsp.engine.loading import DEVICES, DTYPES
from starchat_lsp.models.catalogue import DEFAULT_MODEL


@dataclass(kw_only=True)
class ModelSettings:
    name: str = DEFAULT_MODEL  # catalogue name, model folder, .gguf file or hub id
    backend: str = "auto"  # llamacpp for a GGUF on a CPU, else transformers; or http (a server)
    device: str = "auto"
    dtype: str = "auto"
    threads: int = 0  # llama.cpp: CPU threads; 0 = all cores
    context_size: int = 0  # llama.cpp: context tokens; 0 = the model's own


@dataclass(kw_only=True)
class HttpOptions:
    """The serving engine for backend "http" (vLLM, TGI, llama.cpp server, Ollama)."""

    endpoint: str = "http://127.0.0.1:8080"
    api: str = "openai"  # or "tgi" (its native /generate_stream)
    model: str = ""  # the name the server knows the model by; empty: model.name
    api_key_env: str = ""  # name of the environment variable that holds the API key
    connect_timeout_s: float = 5.0
    first_token_timeout_s: float = 60.0
    total_timeout_s: float = 600.0
    retries: int = 2
    max_concurrent: int = 4
    context_window: int = 4096  # the served model's context (prompt plus answer), in tokens


@dataclass(kw_only=True)
class GenerationOptions:
    max_new_tokens: int = 512
    temperature: float = 0.0  # greedy: the same answer for the same code
    system_prompt: str = ""  # empty: the built-in one


@dataclass(kw_only=True)
class CompletionOptions:
    enabled: bool = True
    # a smaller model of model.name's family for completions (llama.cpp, loaded beside it: a
    # 1.5B beside a bigger chat model); empty: model.name completes too
    model: str = ""
    debounce_ms: int = 150  # wait after the last keystroke before asking the model
    max_new_tokens: int = 128  # for a block; one line gets at most 48
    max_context_tokens: int = 1024  # text around the cursor that the model sees
    # definitions from other workspace files that the cursor's code uses, ahead of the text
    # (up to a quarter of max_context_tokens); off until `eval complete` shows it helps
    other_files: bool = False
    # read the text around where the cursor comes to rest before the user types there
    # (editors that send starchat/prefetch: the VS Code extension does)
    prefetch: bool = True


@dataclass(kw_only=True)
class DiagnosticsOptions:
    enabled: bool = True  # show the lines feedback points at as diagnostics


@dataclass(kw_only=True)
class VerifyOptions:
    """Feedback and fixes: try several fixes and check them before offering one (issue 9)."""

    enabled: bool = True  # false: the plain answer only, faster
    candidates: int = 2  # fixes to try, the first answer's included (drawn beside it)
    time_budget_s: float = 0.0  # for the fixes and tests drawn beside it; 0: the answer's limit


LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(kw_only=True)
class LogOptions:
    level: str = "info"  # debug: also the model runtime's own log (llama.cpp's load, template)


@dataclass(kw_only=True)
class Settings:
    model: ModelSettings = field(default_factory=ModelSettings)
    generation: GenerationOptions = field(default_factory=GenerationOptions)
    completion: CompletionOptions = field(default_factory=CompletionOptions)
    diagnostics: DiagnosticsOptions = field(default_factory=DiagnosticsOptions)
    http: HttpOptions = field(default_factory=HttpOptions)
    verify: VerifyOptions = field(default_factory=VerifyOptions)
    log: LogOptions = field(default_factory=LogOptions)

    def engine_settings(self) -> EngineSettings:
        model = self.model
        return EngineSettings(
            model=model.name,
            backend=model.backend,
            device=model.device,
            dtype=model.dtype,
            threads=model.threads,
            context_size=model.context_size,
            completion_model=self.completion.model.strip(),
            http=HttpEngineSettings(**dataclasses.asdict(self.http)),
        )


def _one_of(choices: tuple[str, ...]) -> Callable[[Any], str | None]:
    return lambda value: None if value in choices else f"use one of {', '.join(choices)}"


def _at_least(low: float) -> Callable[[Any], str | None]:
    return lambda value: None if value >= low else f"use a value of at least {low:g}"


_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "model.name": lambda value: None if value.strip() else "name a model",
    "model.backend": _one_of(BACKENDS),
    "log.level": _one_of(LOG_LEVELS),
    "model.device": _one_of(DEVICES),
    "model.dtype": _one_of(DTYPES),
    "generation.max_new_tokens": _at_least(1),
    "generation.temperature": _at_least(0),
    "model.threads": _at_least(0),
    "model.context_size": _at_least(0),
    "http.api": _one_of(HTTP_APIS),
    "http.endpoint": lambda value: (
        None if value.startswith(("http://", "https://")) else "use an http:// or https:// URL"
    ),
    "http.connect_timeout_s": _at_least(0.1),
    "http.first_token_timeout_s": _at_least(0.1),
    "http.total_timeout_s": _at_least(0.1),
    "http.retries": _at_least(0),
    "http.max_concurrent": _at_least(1),
    "http.context_window": _at_least(256),
    "completion.debounce_ms": _at_least(0),
    "completion.max_new_tokens": _at_least(1),
    "completion.max_context_tokens": _at_least(64),
    "verify.candidates": _at_least(1),
    "verify.time_budget_s": _at_least(0),
}

_TYPE_NAMES = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}


def _typed(value: Any, kind: type) -> tuple[bool, Any]:
    """Whether `value` is of `kind` as JSON gives it (an int is a float, a bool is no int)."""
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return True, float(value)
    if kind is int and isinstance(value, bool):
        return False, value
    return isinstance(value, kind), value


def parse_settings(raw: object) -> tuple[Settings, list[str]]:
    """Settings from the client's JSON, and one line for each value that was replaced."""
    problems: list[str] = []
    if isinstance(raw, dict) and isinstance(raw.get("starchat"), dict):
        raw = raw["starchat"]
    if raw is None:
        return Settings(), problems
    if not isinstance(raw, dict):
        return Settings(), ["starchat settings must be an object: using the defaults"]
    settings = Settings()
    sections = {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)}
    for section_name, section_raw in raw.items():
        section = sections.get(section_name)
        if section is None:
            problems.append(f"unknown setting starchat.{section_name}: ignored")
        elif not isinstance(section_raw, dict):
            problems.append(f"starchat.{section_name} must be an object: using its defaults")
        else:
            _fill(section, section_name, section_raw, problems)
    return settings, problems


def _fill(section: Any, section_name: str, raw: dict[str, Any], problems: list[str]) -> None:
    types = {f.name: f.type for f in dataclasses.fields(section)}
    for key, value in raw.items():
        path = f"{section_name}.{key}"
        if key not in types:
            problems.append(f"unknown setting starchat.{path}: ignored")
            continue
        default = getattr(section, key)
        kind = type(default)
        ok, value = _typed(value, kind)
        reason = None if ok else f"expected {_TYPE_NAMES[kind]}"
        if reason is None and path in _CHECKS:
            reason = _CHECKS[path](value)
        if reason is not None:
            problems.append(
                f"invalid starchat.{path} = {value!r} ({reason}): using the default {default!r}"
            )
            continue
        setattr(section, key, value)
