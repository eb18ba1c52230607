"""What `starchat-lsp doctor` finds out: the CPU, the runtimes, and whether each answers.

Each backend answers a short prompt in its own worker process, so a runtime that crashes on
this machine (llama.cpp's AMX path, a broken CUDA driver) is reported, never fatal.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial

from starchat_lsp.engine import cpu, llamacpp_build
from starchat_lsp.engine.base import ChatMessage, GenerationSettings, ProgressCallback
from starchat_lsp.engine.errors import ModelCrashedError
from starchat_lsp.engine.factory import EngineSettings, backend_order, open_engine
from starchat_lsp.errors import EngineError

SMOKE_PROMPT = "Write a Python function that adds two numbers."
SMOKE_TOKENS = 24
LOCAL_BACKENDS = ("llamacpp", "transformers")


@dataclass
class SmokeResult:
    backend: str
    outcome: str  # "ok", "crashed", "error", "not installed"
    message: str = ""
    load_s: float | None = None
    first_token_s: float | None = None
    tokens_per_s: float | None = None


@dataclass
class Checkup:
    cpu_model: str
    cores: int
    flags: list[str]
    amx_cpu: bool
    versions: dict[str, str | None]
    llamacpp_amx_path: bool | None  # None: llama.cpp not installed
    model: str
    default_order: list[str]
    smoke: list[SmokeResult] = field(default_factory=list)
    advice: list[str] = field(default_factory=list)

    @property
    def default_answers(self) -> bool:
        """Whether the default choice (the first backend `auto` takes) answered."""
        first = self.default_order[0] if self.default_order else None
        return any(s.backend == first and s.outcome == "ok" for s in self.smoke)

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "default_answers": self.default_answers}


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def examine(
    model: str,
    backends: tuple[str, ...] = LOCAL_BACKENDS,
    progress: Callable[[str, str], None] | None = None,
) -> Checkup:
    """`progress(backend, message)`: each backend's load as it goes (a first transformers use
    converts the GGUF: minutes for a large model)."""
    flags = cpu.cpu_flags()
    info = llamacpp_build.system_info()
    try:
        _, order = backend_order(EngineSettings(model=model))
    except EngineError:
        order = []
    checkup = Checkup(
        cpu_model=cpu.model_name(),
        cores=cpu.usable_cores(),
        flags=[flag for flag in cpu.FLAGS_THAT_MATTER if flag in flags],
        amx_cpu=cpu.cpu_has_amx(flags),
        versions={
            package: _version(package)
            for package in ("starchat-lsp", "llama-cpp-python", "torch", "transformers")
        },
        llamacpp_amx_path=None if info is None else llamacpp_build.amx_path_compiled(info),
        model=model,
        default_order=order,
    )
    for backend in backends:
        say = partial(progress, backend) if progress else None
        checkup.smoke.append(
            smoke(model, backend, installed=_installed(checkup, backend), progress=say)
        )
    checkup.advice = advise(checkup)
    return checkup


def _installed(checkup: Checkup, backend: str) -> bool:
    package = "llama-cpp-python" if backend == "llamacpp" else "transformers"
    return checkup.versions.get(package) is not None


def smoke(
    model: str, backend: str, *, installed: bool = True, progress: ProgressCallback | None = None
) -> SmokeResult:
    """A short answer from `backend` in a worker process: OK with its speed, or what failed."""
    if not installed:
        return SmokeResult(backend, "not installed")
    try:
        # Its own worker, not the shared host: this backend, fresh, on this machine.
        engine = open_engine(EngineSettings(model=model, backend=backend), restarts=0, shared=False)
    except EngineError as error:
        return SmokeResult(backend, "error", str(error))
    try:
        engine.load(progress)
        stream = engine.chat(
            [ChatMessage("user", SMOKE_PROMPT)], GenerationSettings(max_new_tokens=SMOKE_TOKENS)
        )
        result = stream.finish()
    except ModelCrashedError as crash:
        return SmokeResult(backend, "crashed", str(crash))
    except EngineError as error:
        return SmokeResult(backend, "error", str(error))
    finally:
        engine.close()
    return SmokeResult(
        backend,
        "ok",
        load_s=getattr(engine, "load_time_s", None),
        first_token_s=result.time_to_first_token_s,
        tokens_per_s=round(result.tokens_per_s, 1),
    )


def advise(checkup: Checkup) -> list[str]:
    """What to set on this machine, from what answered and how fast."""
    ok = {s.backend: s for s in checkup.smoke if s.outcome == "ok"}
    failed = {s.backend: s for s in checkup.smoke if s.outcome in ("crashed", "error")}
    advice = []
    if checkup.llamacpp_amx_path and checkup.amx_cpu:
        advice.append(
            "llama.cpp was built with its AMX path, which crashes on this CPU (Q4_K weights): "
            f"rebuild it: {llamacpp_build.REBUILD_HINT}"
        )
    if not checkup.default_order:
        advice.append(f"pull the model first: starchat-lsp models pull {checkup.model}")
    elif checkup.default_answers:
        first = checkup.default_order[0]
        advice.append(f"model.backend: auto (answers with {first}); nothing to change")
    elif ok:
        fastest = max(ok.values(), key=lambda s: s.tokens_per_s or 0.0)
        advice.append(f"set model.backend to {fastest.backend}: the default choice failed")
    else:
        advice.append(
            "no backend answered: see the errors above; a smaller model "
            "(starchat-lsp models list) or the HTTP backend (a team server) may work"
        )
    if "llamacpp" in failed and "llamacpp" not in ok and not checkup.llamacpp_amx_path:
        advice.append("llama.cpp failed here: reinstall it (make install) or use transformers")
    advice.append(f"threads: {checkup.cores} (the cores this process may use; model.threads)")
    return advice
