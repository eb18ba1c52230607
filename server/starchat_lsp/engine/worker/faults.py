"""Faults injected into a model worker, for the tests that prove the server outlives its model.

Read in the worker only, from the environment it inherits:

    STARCHAT_LSP_WORKER_FAULT=KIND@STAGE[:BACKEND]
        KIND   segv (a real segmentation fault), kill (SIGKILL), exit (os._exit(3)),
               hang (the whole process stops: SIGSTOP)
        STAGE  load, prompt (a chat or completion request arrives), generation (after its
               first chunk)
        BACKEND only in a worker of this backend (llamacpp, transformers)
    STARCHAT_LSP_WORKER_FAULT_ONCE=PATH
        fault only the first time: the first worker to fault creates PATH, later ones see it

Nothing happens when the variable is unset, which is always outside the tests.
"""

from __future__ import annotations

import faulthandler
import os
import signal
from dataclasses import dataclass

FAULT_ENV = "STARCHAT_LSP_WORKER_FAULT"
ONCE_ENV = "STARCHAT_LSP_WORKER_FAULT_ONCE"
KINDS = ("segv", "kill", "exit", "hang")
STAGES = ("load", "prompt", "generation")


@dataclass(frozen=True)
class Fault:
    kind: str
    stage: str
    backend: str | None


def from_environment(backend: str) -> Fault | None:
    spec = os.environ.get(FAULT_ENV, "").strip()
    if not spec:
        return None
    kind, _, rest = spec.partition("@")
    stage, _, only = rest.partition(":")
    if kind not in KINDS or stage not in STAGES:
        raise ValueError(f"{FAULT_ENV}={spec!r}: expected KIND@STAGE[:BACKEND]")
    if only and only != backend:
        return None
    return Fault(kind, stage, only or None)


def maybe_fail(fault: Fault | None, stage: str) -> None:
    """Fail as `fault` says when this is its stage (and, with ONCE, the first time)."""
    if fault is None or fault.stage != stage or not _first_time():
        return
    if fault.kind == "segv":
        faulthandler._sigsegv()  # type: ignore[attr-defined]  # a real SIGSEGV, as a native crash gives
    elif fault.kind == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif fault.kind == "exit":
        os._exit(3)
    elif fault.kind == "hang":
        os.kill(os.getpid(), signal.SIGSTOP)


def _first_time() -> bool:
    marker = os.environ.get(ONCE_ENV)
    if not marker:
        return True
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        return False
    return True
