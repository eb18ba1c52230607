"""The messages between the server (or CLI) and its model worker: one JSON object per line.

Each side owns one pipe to write. Requests carry an `id`; every message about a request names
it. From the parent: load, count, chat, complete, sample, together, cancel, ping, close. From
the worker: progress, loaded, value, chunk, done, error, pong. A sample's `done` carries
`results`, one per answer: it is not streamed. A together request carries `asks` (messages,
settings and `n` each); its first ask's first answer streams as `chunk`s, and its `done` carries
`results` as one list per ask. A `cancel` stops every answer of the request it names. JSON keeps
the wire readable in a log and costs tens of microseconds a chunk, far below a token's time.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import sys
import threading
from collections.abc import Sequence
from typing import IO, Any

from starchat_lsp.engine.base import (
    Ask,
    ChatMessage,
    CompletionPrompt,
    GenerationResult,
    GenerationSettings,
    OtherFiles,
    StopReason,
)
from starchat_lsp.engine.factory import EngineSettings, HttpEngineSettings

Message = dict[str, Any]


class Writer:
    """Whole lines to a pipe from any thread (a lock keeps lines whole)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._lock = threading.Lock()

    def send(self, message: Message) -> None:
        data = (json.dumps(message, ensure_ascii=False) + "\n").encode("utf-8", "surrogatepass")
        with self._lock:
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]

    def close(self) -> None:
        with self._lock, contextlib.suppress(OSError):
            os.close(self._fd)


def read(stream: IO[bytes]) -> Message | None:
    """The next message, or None at the end of the pipe (the other side is gone)."""
    line = stream.readline()
    if not line:
        return None
    message: Message = json.loads(line.decode("utf-8", "surrogatepass"))
    return message


def settings_to_wire(settings: EngineSettings) -> Message:
    return dataclasses.asdict(settings)


def settings_from_wire(data: Message) -> EngineSettings:
    http = HttpEngineSettings(**data.pop("http", {}))
    return EngineSettings(**data, http=http)


def generation_to_wire(settings: GenerationSettings) -> Message:
    return dataclasses.asdict(settings)


def generation_from_wire(data: Message) -> GenerationSettings:
    return GenerationSettings(**{**data, "stop": tuple(data.get("stop", ()))})


def messages_to_wire(messages: list[ChatMessage]) -> list[Message]:
    return [{"role": m.role, "content": m.content} for m in messages]


def messages_from_wire(data: list[Message]) -> list[ChatMessage]:
    return [ChatMessage(m["role"], m["content"]) for m in data]


def asks_to_wire(asks: Sequence[Ask]) -> list[Message]:
    return [
        {
            "messages": messages_to_wire(ask.messages),
            "settings": generation_to_wire(ask.settings),
            "n": ask.n,
            "until_first_ends": ask.until_first_ends,
        }
        for ask in asks
    ]


def asks_from_wire(data: list[Message]) -> list[Ask]:
    return [
        Ask(
            messages_from_wire(a["messages"]),
            generation_from_wire(a["settings"]),
            int(a["n"]),
            until_first_ends=bool(a.get("until_first_ends", False)),
        )
        for a in data
    ]


def prompt_to_wire(prompt: CompletionPrompt) -> Message:
    files = prompt.other_files
    return {
        "prefix": prompt.prefix,
        "suffix": prompt.suffix,
        "middle": prompt.middle,
        "other_files": None if files is None else dataclasses.asdict(files),
        "suffix_first": prompt.suffix_first,
    }


def prompt_from_wire(data: Message) -> CompletionPrompt:
    files = data.get("other_files")
    return CompletionPrompt(
        prefix=data["prefix"],
        suffix=data.get("suffix"),
        middle=data.get("middle", ""),
        other_files=None
        if files is None
        else OtherFiles(
            repo=files["repo"],
            path=files["path"],
            files=tuple((path, text) for path, text in files["files"]),
            comment=files.get("comment", "#"),
        ),
        suffix_first=bool(data.get("suffix_first", False)),
    )


def result_to_wire(result: GenerationResult) -> Message:
    return {**dataclasses.asdict(result), "stop_reason": result.stop_reason.value}


def result_from_wire(data: Message) -> GenerationResult:
    return GenerationResult(**{**data, "stop_reason": StopReason(data["stop_reason"])})


def start_process(
    parser: argparse.ArgumentParser, argv: list[str] | None
) -> tuple[argparse.Namespace, EngineSettings]:
    """The common start of the worker and the host: their settings, their log, offline."""
    parser.add_argument("--settings", required=True, help="EngineSettings as JSON")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return args, settings_from_wire(json.loads(args.settings))
