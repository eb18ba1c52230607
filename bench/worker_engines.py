"""Section 8's engines on one backend: in-process, a private worker, and the shared host (the
benchmark's own: a private socket folder and a short idle time, so that no other client attaches
to it and it is gone when the benchmark closes it)."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from bench.worker_probe import Figures
from starchat_lsp.engine.base import Engine
from starchat_lsp.engine.factory import EngineSettings, create_engine, open_engine
from starchat_lsp.engine.worker.host import IDLE_ENV
from starchat_lsp.engine.worker.shared import RUNTIME_DIR_ENV

LOCAL = "in-process"
HOST_IDLE_S = 1.0  # the benchmark's host leaves this soon after its last client
HOST_EXIT_S = 30.0

Opened = dict[str, tuple[Engine, Figures]]  # kind: the engine, what it measured


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _builders(settings: EngineSettings, folder: Path) -> dict[str, Callable[[], Engine]]:
    def shared() -> Engine:
        # The host inherits the environment when it starts, which is in load().
        with _environment(**{RUNTIME_DIR_ENV: str(folder), IDLE_ENV: str(HOST_IDLE_S)}):
            engine = open_engine(settings)
            engine.load()
        return engine

    return {
        LOCAL: lambda: create_engine(settings),
        "worker": lambda: open_engine(settings, shared=False),
        "shared host": shared,
    }


def open_all(settings: EngineSettings, folder: Path) -> Opened:
    """The three engines, loaded one after the other (each load timed, process starts too)."""
    opened: Opened = {}
    try:
        for kind, build in _builders(settings, folder).items():
            started = time.monotonic()
            engine = build()
            opened[kind] = engine, Figures()
            engine.load()
            opened[kind][1].load_s = time.monotonic() - started
    except BaseException:
        close_all(opened, folder)
        raise
    return opened


def close_all(opened: Opened, folder: Path) -> None:
    """Close every engine; wait for the benchmark's host to leave, then remove its folder."""
    for engine, _ in opened.values():
        engine.close()
    deadline = time.monotonic() + HOST_EXIT_S
    while any(folder.glob("*.sock")) and time.monotonic() < deadline:
        time.sleep(0.1)  # the host removes its socket as it leaves
    shutil.rmtree(folder, ignore_errors=True)
