"""The long chat answer that the replay's second scenario types beside.

The same question every time, greedy, so every answer should be the same text. Before each run
another question is asked and stopped at its first chunk: the chat's KV cache then holds nothing
of the measured question beyond the chat template's opening, so that every run, alone or beside
the typing, starts its prompt from the same state.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from bench.harness import RawLspClient, explain_messages
from bench.keystroke_replay import HANG_S

QUESTION = explain_messages()[0].content
OTHER = "Name three sorting algorithms."


@dataclass(frozen=True)
class ChatRun:
    text: str
    wall_s: float  # the client's send to the answer's arrival
    usage: dict[str, Any]
    runs_done: int  # completion model runs the server had finished when the answer came


class Running:
    """A chat answer on its way; `busy` while it runs."""

    def __init__(self, client: RawLspClient, msg_id: int, sent: float) -> None:
        self.client, self.msg_id, self.sent = client, msg_id, sent
        self._status_id: int | None = None
        # starchat/status sent the moment the answer arrives: which completion runs were done
        # by then (those that ran inside the answer's time), not those queued behind it
        self._watcher = threading.Thread(target=self._watch, daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        self.client.reply(self.msg_id, HANG_S)
        self._status_id = self.client.send_request("starchat/status", None)

    def busy(self) -> bool:
        return self.msg_id not in self.client.replies

    def finish(self) -> ChatRun:
        reply = self.client.reply(self.msg_id, HANG_S)
        assert "error" not in reply, reply
        self._watcher.join(HANG_S)
        assert self._status_id is not None, "no starchat/status after the answer"
        status = self.client.reply(self._status_id)["result"]
        return ChatRun(
            text=reply["result"]["text"],
            wall_s=self.client.reply_times[self.msg_id] - self.sent,
            usage=reply["result"]["usage"],
            runs_done=status["completion"]["model_runs"],
        )


class Chat:
    def __init__(self, client: RawLspClient) -> None:
        self.client = client
        self.count = 0

    def start(self) -> Running:
        """The question, once its answer streams (two chunks in: the model decodes)."""
        self._cool()
        token = self._token()
        sent = time.monotonic()
        msg_id = self._ask(QUESTION, token)
        self.client.wait_until(
            lambda: self.client.chunks(token) >= 2 or msg_id in self.client.replies,
            HANG_S,
            "the chat answer to stream",
        )
        return Running(self.client, msg_id, sent)

    def alone(self) -> ChatRun:
        return self.start().finish()

    def _cool(self) -> None:
        token = self._token()
        msg_id = self._ask(OTHER, token)
        self.client.wait_until(
            lambda: self.client.chunks(token) >= 1 or msg_id in self.client.replies,
            HANG_S,
            "the other question's answer",
        )
        if msg_id not in self.client.replies:
            self.client.notify("$/cancelRequest", {"id": msg_id})
        self.client.reply(msg_id, HANG_S)
        self.client.idle()

    def _ask(self, question: str, token: str) -> int:
        return self.client.send_request(
            "starchat/chat",
            {"messages": [{"role": "user", "content": question}], "partialResultToken": token},
        )

    def _token(self) -> str:
        self.count += 1
        return f"keystrokes-chat-{self.count}"
