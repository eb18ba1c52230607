"""The model worker: one process that loads one model and answers over two pipes.

Started by `WorkerEngine` (never by hand): `python -m starchat_lsp.engine.worker.child
--input FD --output FD --settings JSON`. The main thread reads requests and answers pings and
cancels at once; loads, token counts and generations run on threads, so a long prompt never
keeps a cancel or a ping waiting. When the parent goes away (its end of the pipe closes), the
worker exits: it never outlives the server or CLI that started it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import IO

from starchat_lsp.engine.base import CancelFlag, Engine, TextStream
from starchat_lsp.engine.cpu import usable_cores
from starchat_lsp.engine.errors import EngineError
from starchat_lsp.engine.factory import EngineSettings, create_engine
from starchat_lsp.engine.worker import faults, protocol
from starchat_lsp.engine.worker.protocol import Message

log = logging.getLogger(__name__)


class Worker:
    def __init__(self, engine: Engine, writer: protocol.Writer, fault: faults.Fault | None) -> None:
        self._engine = engine
        self._writer = writer
        self._fault = fault
        self._flags: dict[int, CancelFlag] = {}
        self._flags_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="starchat-worker")

    def serve(self, reader: IO[bytes]) -> None:
        while (message := protocol.read(reader)) is not None:
            op = message["op"]
            request = message.get("id", 0)
            if op == "ping":
                self._writer.send({"op": "pong", "id": request})
            elif op == "cancel":
                with self._flags_lock:
                    flag = self._flags.get(request)
                if flag is not None:
                    flag.cancel()
            elif op == "close":
                break
            elif op == "load":
                self._pool.submit(self._answer, request, self._load, request)
            elif op == "count":
                self._pool.submit(self._answer, request, self._engine.count_tokens, message["text"])
            elif op in ("chat", "complete"):
                flag = CancelFlag()
                with self._flags_lock:
                    self._flags[request] = flag
                self._pool.submit(self._generate, message, flag)
            else:
                self._writer.send(
                    {"op": "error", "id": request, "type": "EngineError", "message": f"no op {op}"}
                )
        self.close()

    def close(self) -> None:
        with self._flags_lock:
            for flag in self._flags.values():
                flag.cancel()
        self._engine.close()

    def _answer(self, request: int, work: object, *args: object) -> None:
        try:
            value = work(*args)  # type: ignore[operator]
        except Exception as error:
            self._send_error(request, error)
            return
        self._writer.send({"op": "value", "id": request, "value": value})

    def _load(self, request: int) -> dict[str, object]:
        faults.maybe_fail(self._fault, "load")

        def progress(text: str) -> None:
            self._writer.send({"op": "progress", "id": request, "text": text})

        self._engine.load(progress)
        return {
            "context_window": self._engine.context_window,
            "fill_in_middle": self._engine.fill_in_middle,
            "load_time_s": getattr(self._engine, "load_time_s", None),
        }

    def _generate(self, message: Message, flag: CancelFlag) -> None:
        request = message["id"]
        stream: TextStream | None = None
        try:
            faults.maybe_fail(self._fault, "prompt")
            settings = protocol.generation_from_wire(message["settings"])
            if message["op"] == "chat":
                messages = protocol.messages_from_wire(message["messages"])
                stream = self._engine.chat(messages, settings, flag)
            else:
                prompt = protocol.prompt_from_wire(message["prompt"])
                stream = self._engine.complete(prompt, settings, flag)
            first = True
            for chunk in stream:
                self._writer.send(
                    {"op": "chunk", "id": request, "text": chunk, "n": stream.tokens_out_now()}
                )
                if first:
                    faults.maybe_fail(self._fault, "generation")
                    first = False
            self._writer.send(
                {"op": "done", "id": request, "result": protocol.result_to_wire(stream.result)}
            )
        except Exception as error:
            result = None
            if stream is not None and stream._result_box:
                result = protocol.result_to_wire(stream.result)
            self._send_error(request, error, result)
        finally:
            with self._flags_lock:
                self._flags.pop(request, None)

    def _send_error(self, request: int, error: Exception, result: Message | None = None) -> None:
        if not isinstance(error, EngineError):
            log.error("request failed in the model worker", exc_info=error)
        self._writer.send(
            {
                "op": "error",
                "id": request,
                "type": type(error).__name__,
                "message": str(error),
                "result": result,
            }
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="starchat-lsp model worker")
    parser.add_argument("--input", type=int, required=True)
    parser.add_argument("--output", type=int, required=True)
    parser.add_argument("--settings", required=True, help="EngineSettings as JSON")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    settings = protocol.settings_from_wire(json.loads(args.settings))
    _set_threads(settings)
    fault = faults.from_environment(settings.backend)
    writer = protocol.Writer(args.output)
    try:
        engine = create_engine(settings)
    except Exception as error:
        engine = _Unavailable(error)  # type: ignore[assignment]
    worker = Worker(engine, writer, fault)
    with os.fdopen(args.input, "rb") as reader:
        worker.serve(reader)
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
