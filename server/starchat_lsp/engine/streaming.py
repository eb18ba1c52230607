"""The bridge between `model.generate` on the worker thread and the reader of the text.

`TokenStreamer` emits text token by token (TextIteratorStreamer waits for word ends), holds back
what could start a stop string, and records timing. `GenerationStopper` is the StoppingCriteria
that ends `generate()` at the next token on cancel, stop string or time limit. `BatchStopper`
does both for the rows of one `generate(num_return_sequences=n)`, not streamed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from transformers import StoppingCriteria, TextIteratorStreamer

from starchat_lsp.engine.base import CancelFlag, GenerationResult, StopReason
from starchat_lsp.engine.stop_strings import StopStringMatcher


class TokenStreamer(TextIteratorStreamer):
    def __init__(self, tokenizer: Any, stops: tuple[str, ...]) -> None:
        super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True)
        self._matcher = StopStringMatcher(stops)
        self._generated: list[int] = []
        self._decoded_len = 0
        self.tokens_out = 0
        self.started_at = time.monotonic()
        self.first_token_at: float | None = None
        self.last_token_id: int | None = None
        self.text = ""

    @property
    def stop_string_hit(self) -> bool:
        return self._matcher.hit is not None

    def put(self, value: torch.Tensor) -> None:
        if self.next_tokens_are_prompt:  # generate() first hands over the prompt itself
            self.next_tokens_are_prompt = False
            return
        token_ids = value.reshape(-1).tolist()
        if self.first_token_at is None:
            self.first_token_at = time.monotonic()
        self.tokens_out += len(token_ids)
        self.last_token_id = int(token_ids[-1])
        if self.stop_string_hit:
            return
        self._generated.extend(token_ids)
        # Decoding the whole answer each time keeps spaces and multi-token characters right.
        decoded = str(self.tokenizer.decode(self._generated, **self.decode_kwargs))
        if decoded.endswith("\ufffd"):  # half of a multi-byte character: wait for the rest
            return
        self._emit(self._matcher.feed(decoded[self._decoded_len :]))
        self._decoded_len = len(decoded)

    def end(self) -> None:
        self._emit(self._matcher.flush())
        self.text_queue.put(self.stop_signal, timeout=self.timeout)

    def _emit(self, text: str) -> None:
        if text:
            self.text += text
            self.text_queue.put(text, timeout=self.timeout)


class GenerationStopper(StoppingCriteria):
    """Read once per generated token: it is what makes cancel stop within one token.

    `pause`, called there too, serves interactive requests between two tokens and says how long
    that took: the time limit is of the request's own run.
    """

    def __init__(
        self,
        cancel: CancelFlag,
        streamer: TokenStreamer,
        time_limit_s: float | None,
        pause: Callable[[], float] | None = None,
    ) -> None:
        self._cancel = cancel
        self._streamer = streamer
        self._limit_s = time_limit_s
        self._deadline: float | None = None
        self._pause = pause
        self.reason: StopReason | None = None

    def start(self) -> None:
        """The run starts (the time limit counts from here, not from the queue)."""
        if self._limit_s is not None:
            self._deadline = time.monotonic() + self._limit_s

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> Any:
        if self._pause is not None and self.reason is None:
            paused = self._pause()
            if self._deadline is not None:
                self._deadline += paused
        if self.reason is None:
            if self._cancel.cancelled:
                self.reason = StopReason.CANCELLED
            elif self._streamer.stop_string_hit:
                self.reason = StopReason.STOP_STRING
            elif self._deadline is not None and time.monotonic() >= self._deadline:
                self.reason = StopReason.TIME
        return torch.full(
            (input_ids.shape[0],),
            self.reason is not None,
            dtype=torch.bool,
            device=input_ids.device,
        )


class _Row:
    """One answer of a batch: its tokens, its text so far, and why it ended."""

    def __init__(self, stops: tuple[str, ...]) -> None:
        self.matcher = StopStringMatcher(stops)
        self.ids: list[int] = []
        self.decoded_len = 0
        self.text = ""
        self.reason: StopReason | None = None
        self.first_token_at: float | None = None
        self.finished_at: float | None = None

    def end(self, reason: StopReason) -> None:
        if self.reason is None:
            self.reason = reason
            self.finished_at = time.monotonic()
            self.text += self.matcher.flush()


class BatchStopper(StoppingCriteria):
    """The rows of one `generate(num_return_sequences=n)`: each read as TokenStreamer reads its
    one, each ended on its own (end token, stop string); cancel and the time limit end all.

    `pause` serves interactive requests between two tokens, as in GenerationStopper.
    """

    def __init__(
        self,
        tokenizer: Any,
        rows: int,
        stops: tuple[str, ...],
        end_ids: list[int],
        cancel: CancelFlag,
        time_limit_s: float | None,
        pause: Callable[[], float] | None = None,
    ) -> None:
        self._tokenizer = tokenizer
        self._rows = [_Row(stops) for _ in range(rows)]
        self._end_ids = set(end_ids)
        self._cancel = cancel
        self._limit_s = time_limit_s
        self._deadline: float | None = None
        self._pause = pause
        self.started_at = time.monotonic()

    def start(self) -> None:
        self.started_at = time.monotonic()
        if self._limit_s is not None:
            self._deadline = self.started_at + self._limit_s

    def end_all(self, reason: StopReason) -> None:
        for row in self._rows:
            row.end(reason)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> Any:
        now = time.monotonic()
        for row, token in zip(self._rows, input_ids[:, -1].tolist(), strict=True):
            if row.reason is None:
                self._take(row, int(token), now)
        if self._pause is not None:
            paused = self._pause()
            if self._deadline is not None:
                self._deadline += paused
        if self._cancel.cancelled:
            self.end_all(StopReason.CANCELLED)
        elif self._deadline is not None and time.monotonic() >= self._deadline:
            self.end_all(StopReason.TIME)
        done = [row.reason is not None for row in self._rows]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    def _take(self, row: _Row, token: int, now: float) -> None:
        if row.first_token_at is None:
            row.first_token_at = now
        row.ids.append(token)
        if token in self._end_ids:
            row.end(StopReason.EOS)
            return
        # The whole answer decoded each time keeps spaces and multi-token characters right.
        decoded = str(self._tokenizer.decode(row.ids, skip_special_tokens=True))
        if decoded.endswith("\ufffd"):  # half of a multi-byte character: wait for the rest
            return
        row.text += row.matcher.feed(decoded[row.decoded_len :])
        row.decoded_len = len(decoded)
        if row.matcher.hit is not None:
            row.end(StopReason.STOP_STRING)

    def results(self, tokens_in: int, submitted: float) -> list[GenerationResult]:
        finished = time.monotonic()
        started = self.started_at
        return [
            GenerationResult(
                text=row.text,
                stop_reason=row.reason or StopReason.LENGTH,
                tokens_in=tokens_in,
                tokens_out=len(row.ids),
                time_to_first_token_s=None
                if row.first_token_at is None
                else row.first_token_at - started,
                total_s=max(0.0, (row.finished_at or finished) - started),
                queue_wait_s=max(0.0, started - submitted),
            )
            for row in self._rows
        ]
