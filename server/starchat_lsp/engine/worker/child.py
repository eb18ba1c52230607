"""The model worker: one process that loads one model and answers over two pipes.

Started by `WorkerProcess` (never by hand): `python -m starchat_lsp.engine.worker.child
--input FD --output FD --settings JSON`. Requests are answered by `serving.Requests`. When the
parent goes away (its end of the pipe closes), the worker exits: it never outlives the process
that started it.
"""

from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import ThreadPoolExecutor

from starchat_lsp.engine.cpu import usable_cores
from starchat_lsp.engine.factory import EngineSettings, create_engine
from starchat_lsp.engine.worker import faults, protocol
from starchat_lsp.engine.worker.serving import Requests


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="starchat-lsp model worker")
    parser.add_argument("--input", type=int, required=True)
    parser.add_argument("--output", type=int, required=True)
    args, settings = protocol.start_process(parser, argv)
    _set_threads(settings)
    writer = protocol.Writer(args.output)
    try:
        engine = create_engine(settings)
    except Exception as error:  # told to the parent at its load request
        engine = _Unavailable(error)  # type: ignore[assignment]
    pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="starchat-worker")
    requests = Requests(engine, writer, pool, faults.from_environment(settings.backend))
    with os.fdopen(args.input, "rb") as reader:
        requests.serve(reader)
    engine.close()
    writer.close()
    # Skip the interpreter's teardown: native runtimes' atexit hooks have crashed on exit before,
    # and nothing here needs flushing.
    sys.stderr.flush()
    os._exit(0)


def _set_threads(settings: EngineSettings) -> None:
    """torch's threads from the cores this process may use (llama.cpp's engine does the same)."""
    if settings.backend == "transformers":
        import torch

        torch.set_num_threads(settings.threads or usable_cores())


class _Unavailable:
    """Stands in for an engine that could not be built: every request says why."""

    def __init__(self, error: Exception) -> None:
        self._error = error

    def __getattr__(self, _name: str) -> object:
        raise self._error

    def close(self) -> None:
        pass


if __name__ == "__main__":
    sys.exit(main())
