"""The HTTP backend: a model served by vLLM, TGI, a llama.cpp server or Ollama for a whole team.

Chat goes to `/v1/chat/completions` and completion to `/v1/completions` (the OpenAI-compatible
API that all of them offer), or to TGI's native `/generate_stream` with `api = "tgi"`; answers
stream back as server-sent events.

One event loop on a background thread owns the HTTP client. Each generation runs there as a task
watched by a supervisor that, every few milliseconds, checks the cancel flag, the first-token
timeout and the time limits and, when one trips, cancels the task: the connection closes at once
and the server stops generating. The caller's thread reads the text from a queue, so a
`TextStream` here behaves like the transformers one: iterate it to drive it, close or abandon it
to cancel, read `result` at the end. `sample` and `together` send their answers as concurrent
chat requests, which the server batches.

There is no local tokenizer: `count_tokens` is a conservative estimate (see there), and the token
figures of a result come from the server's `usage` when it sends one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import queue
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from starchat_lsp.engine import templates
from starchat_lsp.engine.base import (
    Ask,
    CancelFlag,
    ChatMessage,
    CompletionPrompt,
    GenerationResult,
    GenerationSettings,
    ProgressCallback,
    StopReason,
    TextStream,
)
from starchat_lsp.engine.factory import HttpEngineSettings
from starchat_lsp.engine.stop_strings import StopStringMatcher
from starchat_lsp.errors import EngineError, ModelLoadError

log = logging.getLogger(__name__)

POLL_S = 0.02  # how often the supervisor looks at the cancel flag and the clocks
BACKOFF_S = 0.5  # first wait before a retry; doubles each time
MAX_BACKOFF_S = 8.0
MESSAGE_OVERHEAD_TOKENS = 8  # role markers and separators a chat template adds per message
REQUEST_OVERHEAD_TOKENS = 8  # a chat template's start and the assistant's turn opening
RETRIED_STATUSES = (429, 503)
# End-of-turn markers of the StarChat format, which the TGI path writes itself.
STARCHAT_END_STRINGS = ("<|end|>", "<|user|>")

_END = object()  # the queue's end-of-text marker
# A word with its leading space, a digit, a whitespace run, an ASCII symbol, a non-ASCII character.
_PIECES = re.compile(r" ?[A-Za-z]+|[0-9]|\s+|[\x21-\x7e]|[^\x00-\x7f]")


def estimate_tokens(text: str) -> int:
    """An estimate of the tokens in `text` that errs high, with no tokenizer at hand.

    Counted by pieces the way BPE vocabularies of code models split text: a word (with its
    leading space) is a token per 6 letters, each digit and each ASCII symbol a token (most
    tokenizers split numbers into digits), a run of whitespace a token per 8 characters, and a
    non-ASCII character one token less than its UTF-8 bytes. On this project's sources and docs
    that is 1.1 to 1.6 times what the SmolLM2 and Qwen2.5-Coder tokenizers count (CJK text up to
    3.3 times); only dense hex or base64 comes out lower. Counting bytes / 3 instead gave 0.86
    on a TOML file, 0.57 on Japanese and 0.33 on digits: prompts sized with it overflowed.
    """
    tokens = 0
    for piece in _PIECES.findall(text):
        last = piece[-1]
        if last.isascii() and last.isalpha():
            tokens += -(-len(piece.lstrip(" ")) // 6)
        elif last.isspace():
            tokens += 1 + len(piece) // 8
        elif last.isascii():
            tokens += 1
        else:
            tokens += max(1, len(last.encode("utf-8")) - 1)
    return tokens


class _Failure(EngineError):
    """An HTTP failure; `retry` when trying again may help (connection refused, 429, 503)."""

    def __init__(self, message: str, *, retry: bool = False, retry_after: float | None = None):
        super().__init__(message)
        self.retry = retry
        self.retry_after = retry_after


@dataclass
class _Request:
    path: str  # below the endpoint: /v1/chat/completions, /v1/completions, /generate_stream
    payload: dict[str, Any]
    tokens_in_estimate: int
    stops: tuple[str, ...]


@dataclass
class _State:
    """One generation as it goes, written on the loop thread, read by the caller's thread."""

    flag: CancelFlag
    out: queue.Queue[object]
    matcher: StopStringMatcher
    submitted: float = field(default_factory=time.monotonic)
    started_at: float | None = None  # when the concurrency slot was had
    first_token_at: float | None = None
    text: str = ""
    tokens_out: int = 0  # events that carried a token, or the server's usage at the end
    tokens_in: int | None = None  # from the server's usage
    last_problem: str | None = None  # the last retried failure, for the timeout message
    deadline: float | None = None  # when an ask of `sample` or `together` is out of time
    # Set once the request ended; a request `after` another is sent only then (see `together`).
    done: asyncio.Event = field(default_factory=asyncio.Event)
    after: _State | None = None

    def emit(self, text: str) -> None:
        if not text:
            return
        if self.first_token_at is None:
            self.first_token_at = time.monotonic()
        shown = self.matcher.feed(text)
        if shown:
            self.text += shown
            self.out.put(shown)

    def flush(self) -> None:
        rest = self.matcher.flush()
        if rest:
            self.text += rest
            self.out.put(rest)


class _StopStream(Exception):
    """A stop string ended the answer: leave the stream (closing the connection) now."""


# One answer sent: its request, its state as it goes, and the future of its result.
_Sent = tuple[_Request, _State, concurrent.futures.Future[GenerationResult]]


class HttpEngine:
    def __init__(self, settings: HttpEngineSettings, *, name: str) -> None:
        self._settings = settings
        self._name = name
        self._model = settings.model or name
        self._base = _base_url(settings.endpoint)
        self._shown_url = _without_credentials(self._base)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: httpx.AsyncClient | None = None
        self._slots: asyncio.Semaphore | None = None
        self._lock = threading.Lock()
        self._loaded = False
        self._closed = False
        self.load_time_s: float | None = None

    # -- the Engine interface ----------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def model(self) -> str:
        """The model name sent to the server (found at load when the settings name none)."""
        return self._model

    @property
    def context_window(self) -> int:
        return self._settings.context_window

    @property
    def fill_in_middle(self) -> bool:
        # The OpenAI-style servers have no common FIM route (vLLM rejects `suffix`): completion
        # with a suffix sends the prefix, and the completion code uses a chat prompt instead.
        return False

    def load(self, progress: ProgressCallback | None = None) -> None:
        """Check that the server answers and knows the model; raises ModelLoadError if not."""
        with self._lock:
            if self._loaded:
                return
        started = time.monotonic()
        if progress is not None:
            progress(f"connecting to {self._shown_url}")
        self._api_key()  # a missing key variable is said now, not at the first request
        try:
            self._run(self._check_server()).result()
        except EngineError as error:
            raise ModelLoadError(self._redact(str(error))) from None
        with self._lock:
            self._loaded = True
        self.load_time_s = time.monotonic() - started

    def count_tokens(self, text: str) -> int:
        return estimate_tokens(text)

    def chat(
        self,
        messages: list[ChatMessage],
        settings: GenerationSettings,
        cancel: CancelFlag | None = None,
    ) -> TextStream:
        return self._stream(self._chat_request(messages, settings), settings, cancel)

    def sample(
        self,
        messages: list[ChatMessage],
        settings: GenerationSettings,
        n: int,
        cancel: CancelFlag | None = None,
    ) -> list[GenerationResult]:
        """`n` chat requests sent at once, answer i with the seed `settings.seed + i`.

        Not the OpenAI `n`: llama.cpp's server and TGI ignore or refuse it, and its choices
        share one seed. Concurrent requests are what every server batches (vLLM, TGI, llama.cpp
        with parallel slots); http.max_concurrent caps them, so at 1 they go one after another.
        The time limit is for the whole call; an answer that failed alone comes back with
        stop_reason ERROR, and only when all fail is it raised.
        """
        results = self._answers([Ask(messages, settings, n)], cancel)[0]
        _raise_if_all_failed(results)
        return results

    def together(
        self,
        asks: Sequence[Ask],
        cancel: CancelFlag | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> list[list[GenerationResult]]:
        """Every answer of every ask as a chat request of its own, sent together as `sample`'s.

        Ask 0's first answer goes first, and the others once it has ended: llama-cpp-python's
        server stops the answer it is streaming when a new request comes in (its
        `interrupt_requests`, on by default), which cut the answer the user reads midway; and on
        a server with fewer free slots than answers, that one is not left waiting.
        Its text goes to `on_text` as it comes, on the caller's thread. An ask's time limit
        counts from the call's start, waiting for a slot included. When that first answer
        fails, the others are stopped and the failure raised, as `chat`'s stream raises it; any
        other answer that failed comes back with stop_reason ERROR, and only when all fail is
        it raised.
        """
        answers = self._answers(asks, cancel, on_text, streamed=True)
        _raise_if_all_failed([result for answer in answers for result in answer])
        return answers

    def _answers(
        self,
        asks: Sequence[Ask],
        cancel: CancelFlag | None,
        on_text: Callable[[str], None] | None = None,
        *,
        streamed: bool = False,
    ) -> list[list[GenerationResult]]:
        """The answers of `asks`, sent together, the first one's text to `on_text`.

        `streamed`: the first answer is the one a user reads (`together`'s): when it fails, the
        others are stopped and its failure raised. Otherwise no failure is raised here.
        """
        started = time.monotonic()
        # The answers' own flag: the caller's stops them all, and so does a failed streamed
        # answer (nobody reads the others then), without cancelling the caller's flag.
        flag = CancelFlag()
        if cancel is not None:
            cancel.on_cancel(flag.cancel)
        sent: list[list[_Sent]] = []
        leader: _State | None = None
        try:
            for number, ask in enumerate(asks):
                sent.append([])
                for index in range(ask.n):
                    run = self._send_answer(ask, index, flag, started, leader)
                    sent[-1].append(run)
                    if streamed and number == 0 and index == 0:
                        leader = run[1]
            first: GenerationResult | None = None
            if sent and sent[0]:
                request, state, future = sent[0][0]
                while on_text is not None and (item := self._next(state)) is not _END:
                    assert isinstance(item, str)
                    on_text(item)
                first = self._outcome(future, request, state)
                if streamed and first.stop_reason is StopReason.ERROR:
                    flag.cancel()
            answers = [[self._outcome(f, r, s) for r, s, f in runs] for runs in sent]
        except BaseException:
            flag.cancel()  # Ctrl-C, or closed midway: nobody is left to read the answers sent
            raise
        if streamed and first is not None and first.stop_reason is StopReason.ERROR:
            raise EngineError(first.error or "the model server failed")
        return answers

    def _send_answer(
        self, ask: Ask, index: int, flag: CancelFlag, started: float, after: _State | None
    ) -> _Sent:
        """Send the ask's answer `index` (seed + index), out of time at the ask's limit after
        `started`, and only once `after` has ended when one is given."""
        settings = ask.settings
        limit_s = settings.time_limit_s
        one = replace(
            settings,
            seed=None if settings.seed is None else settings.seed + index,
            time_limit_s=None,
        )
        request = self._chat_request(ask.messages, one)
        state = self._state(request, one, flag)
        state.deadline = None if limit_s is None else started + limit_s
        state.after = after
        return request, state, self._run(self._generate(request, one, state))

    def _chat_request(self, messages: list[ChatMessage], settings: GenerationSettings) -> _Request:
        tokens_in = REQUEST_OVERHEAD_TOKENS + sum(
            estimate_tokens(m.content) + MESSAGE_OVERHEAD_TOKENS for m in messages
        )
        if self._settings.api == "tgi":
            prompt = render_starchat(messages)
            return self._tgi_request(
                prompt, settings, estimate_tokens(prompt), STARCHAT_END_STRINGS
            )
        payload: dict[str, Any] = {
            "model": self._model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            **self._openai_parameters(settings, tokens_in),
        }
        return _Request("/v1/chat/completions", payload, tokens_in, ())

    def complete(
        self,
        prompt: CompletionPrompt,
        settings: GenerationSettings,
        cancel: CancelFlag | None = None,
    ) -> TextStream:
        text = templates.plain_completion(prompt)  # no FIM route here: the suffix is not sent
        tokens_in = estimate_tokens(text)
        if self._settings.api == "tgi":
            return self._stream(self._tgi_request(text, settings, tokens_in, ()), settings, cancel)
        payload: dict[str, Any] = {
            "model": self._model,
            "prompt": text,
            **self._openai_parameters(settings, tokens_in),
        }
        return self._stream(_Request("/v1/completions", payload, tokens_in, ()), settings, cancel)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, thread, client = self._loop, self._thread, self._client
        if loop is None or thread is None:
            return

        async def shut_down() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if client is not None:
                await client.aclose()

        try:
            asyncio.run_coroutine_threadsafe(shut_down(), loop).result(timeout=5)
        except Exception:  # closing must not fail: the loop goes away below either way
            log.debug("closing the HTTP client failed", exc_info=True)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)

    # -- requests ----------------------------------------------------------------------------

    def _openai_parameters(self, settings: GenerationSettings, tokens_in: int) -> dict[str, Any]:
        parameters: dict[str, Any] = {
            "max_tokens": self._max_new_tokens(settings, tokens_in),
            "temperature": settings.temperature,
            "stream": True,
            # The last event carries the token counts (vLLM, OpenAI, llama.cpp; others ignore it).
            "stream_options": {"include_usage": True},
        }
        if settings.temperature > 0 and settings.top_p < 1.0:
            parameters["top_p"] = settings.top_p
        if settings.seed is not None:
            parameters["seed"] = settings.seed
        # Stop strings are matched here, not sent: the OpenAI API reports a stop string as
        # "stop", like the end of the answer, and servers cap their number (TGI at 4).
        return parameters

    def _tgi_request(
        self, prompt: str, settings: GenerationSettings, tokens_in: int, stops: tuple[str, ...]
    ) -> _Request:
        parameters: dict[str, Any] = {
            "max_new_tokens": self._max_new_tokens(settings, tokens_in),
            "details": True,
            "do_sample": settings.temperature > 0,
        }
        if settings.temperature > 0:  # TGI refuses a temperature of 0 and a top_p of 1
            parameters["temperature"] = settings.temperature
            if settings.top_p < 1.0:
                parameters["top_p"] = settings.top_p
        if settings.seed is not None:
            parameters["seed"] = settings.seed
        payload = {"inputs": prompt, "parameters": parameters, "stream": True}
        return _Request("/generate_stream", payload, tokens_in, stops)

    def _max_new_tokens(self, settings: GenerationSettings, tokens_in: int) -> int:
        # Past the context window a server refuses the request: the answer ends there (length).
        return max(1, min(settings.max_new_tokens, self.context_window - tokens_in))

    def _stream(
        self, request: _Request, settings: GenerationSettings, cancel: CancelFlag | None
    ) -> TextStream:
        flag = cancel or CancelFlag()
        state = self._state(request, settings, flag)
        result_box: list[GenerationResult] = []

        def chunks() -> Iterator[str]:
            # Nothing is sent before the first read: a stream never iterated costs nothing.
            future = self._run(self._generate(request, settings, state))
            read_to_end = False
            try:
                while (item := self._next(state)) is not _END:
                    assert isinstance(item, str)
                    yield item
                read_to_end = True
            finally:
                # Reached on the end, on errors, and when the reader stops early (close, Ctrl-C,
                # garbage collection): then the request must not go on for nobody.
                if not read_to_end:
                    flag.cancel()
                result_box.append(self._outcome(future, request, state))
            if result_box[0].stop_reason is StopReason.ERROR:
                raise EngineError(result_box[0].error or "the model server failed")

        return TextStream(chunks(), flag, result_box, lambda: state.tokens_out)

    @staticmethod
    def _state(request: _Request, settings: GenerationSettings, flag: CancelFlag) -> _State:
        return _State(
            flag=flag,
            out=queue.Queue(),
            matcher=StopStringMatcher(tuple(settings.stop) + request.stops),
        )

    def _next(self, state: _State) -> object:
        """The next chunk or _END; _END too when the engine was closed under the stream."""
        while True:
            try:
                return state.out.get(timeout=0.5)
            except queue.Empty:
                if self._thread is None or not self._thread.is_alive():
                    return _END

    def _outcome(
        self, future: concurrent.futures.Future[Any], request: _Request, state: _State
    ) -> GenerationResult:
        while self._thread is not None and self._thread.is_alive():
            try:
                result: GenerationResult = future.result(timeout=0.5)
                return result
            except concurrent.futures.TimeoutError:
                continue
        future.cancel()
        return GenerationResult(
            text=state.text,
            stop_reason=StopReason.ERROR,
            tokens_in=request.tokens_in_estimate,
            tokens_out=state.tokens_out,
            time_to_first_token_s=None,
            total_s=0.0,
            error="the HTTP engine was closed",
        )

    # -- on the loop thread ------------------------------------------------------------------

    def _run(self, coroutine: Any) -> concurrent.futures.Future[Any]:
        with self._lock:
            if self._closed:
                coroutine.close()
                raise EngineError("the HTTP engine is closed")
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="starchat-http", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
                settings = self._settings
                self._client = httpx.AsyncClient(
                    timeout=httpx.Timeout(
                        connect=settings.connect_timeout_s,
                        read=None,  # the supervisor keeps the first-token and total clocks
                        write=settings.connect_timeout_s,
                        pool=None,
                    ),
                    limits=httpx.Limits(max_connections=max(settings.max_concurrent, 1) + 2),
                )
                self._slots = asyncio.Semaphore(max(settings.max_concurrent, 1))
            loop = self._loop
        return asyncio.run_coroutine_threadsafe(coroutine, loop)

    async def _generate(
        self, request: _Request, settings: GenerationSettings, state: _State
    ) -> GenerationResult:
        """Run the request under the supervisor; always returns a result and ends the queue."""
        worker = asyncio.ensure_future(self._attempts(request, state))
        reason: StopReason | None = None
        error: str | None = None
        try:
            while True:
                done, _ = await asyncio.wait({worker}, timeout=POLL_S)
                if done:
                    break
                reason, error = self._tripped(settings, state)
                if reason is not None:
                    worker.cancel()
                    await asyncio.gather(worker, return_exceptions=True)
                    break
        except asyncio.CancelledError:  # the engine is closing
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
            if state.flag.cancelled:
                reason = StopReason.CANCELLED
            else:
                reason, error = StopReason.ERROR, "the HTTP engine was closed"
        if reason is None:
            failure = worker.exception()
            if isinstance(failure, EngineError):
                reason, error = StopReason.ERROR, self._redact(str(failure))
                if state.first_token_at is not None:
                    error = (
                        f"{error} (after {state.tokens_out} tokens: the partial answer is "
                        "kept, not applied; ask again)"
                    )
            elif failure is not None:
                log.error("HTTP generation failed", exc_info=failure)
                reason = StopReason.ERROR
                error = self._redact(f"{type(failure).__name__}: {failure}")
            else:
                reason = worker.result()
        if reason is not StopReason.ERROR or state.first_token_at is not None:
            state.flush()
        state.out.put(_END)
        state.done.set()
        finished = time.monotonic()
        started = state.started_at if state.started_at is not None else finished
        if reason is StopReason.ERROR:
            log.warning("generation failed: %s", error)
        return GenerationResult(
            text=state.text,
            stop_reason=reason,
            tokens_in=state.tokens_in
            if state.tokens_in is not None
            else request.tokens_in_estimate,
            tokens_out=state.tokens_out,
            time_to_first_token_s=None
            if state.first_token_at is None
            else state.first_token_at - started,
            total_s=finished - started,
            queue_wait_s=max(0.0, started - state.submitted),
            error=error,
        )

    def _tripped(
        self, settings: GenerationSettings, state: _State
    ) -> tuple[StopReason | None, str | None]:
        """Whether the request must end now: cancelled, no first token in time, out of time."""
        if state.flag.cancelled:
            return StopReason.CANCELLED, None
        if state.deadline is not None and time.monotonic() >= state.deadline:
            return StopReason.TIME, None  # a sample's or together's limit, waiting for a slot too
        if state.started_at is None:  # still waiting for a concurrency slot
            return None, None
        elapsed = time.monotonic() - state.started_at
        if settings.time_limit_s is not None and elapsed >= settings.time_limit_s:
            return StopReason.TIME, None  # the caller's limit, as in the other engines
        first_token_timeout = min(
            self._settings.first_token_timeout_s, self._settings.total_timeout_s
        )
        if state.first_token_at is None and elapsed >= first_token_timeout:
            why = f" (last: {state.last_problem})" if state.last_problem else ""
            return StopReason.ERROR, (
                f"no answer from the model server at {self._shown_url} within "
                f"{first_token_timeout:g} s{why}: it may be overloaded or still loading; "
                "raise http.first_token_timeout_s if it is just slow"
            )
        if elapsed >= self._settings.total_timeout_s:
            return StopReason.TIME, None  # http.total_timeout_s: the partial answer is kept
        return None, None

    async def _attempts(self, request: _Request, state: _State) -> StopReason:
        assert self._slots is not None
        if state.after is not None:
            await state.after.done.wait()
        async with self._slots:
            state.started_at = time.monotonic()
            attempt = 0
            while True:
                try:
                    return await self._attempt(request, state)
                except _Failure as failure:
                    if not failure.retry or state.first_token_at is not None:
                        raise
                    if attempt >= self._settings.retries:
                        if attempt == 0:
                            raise
                        raise EngineError(f"{failure} (tried {attempt + 1} times)") from None
                    attempt += 1
                    delay = min(BACKOFF_S * 2 ** (attempt - 1), MAX_BACKOFF_S)
                    if failure.retry_after is not None:
                        delay = min(max(delay, failure.retry_after), MAX_BACKOFF_S)
                    state.last_problem = str(failure)
                    log.warning(
                        "%s; trying again in %.1f s (%d of %d)",
                        failure,
                        delay,
                        attempt,
                        self._settings.retries,
                    )
                    await asyncio.sleep(delay)

    async def _attempt(self, request: _Request, state: _State) -> StopReason:
        assert self._client is not None
        url = self._base + request.path
        try:
            async with self._client.stream(
                "POST", url, json=request.payload, headers=self._headers()
            ) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise self._status_failure(response, request)
                try:
                    if request.path == "/generate_stream":
                        return await self._read_tgi(response, state)
                    return await self._read_openai(response, state)
                except _StopStream:
                    return StopReason.STOP_STRING
                except httpx.TransportError as error:  # the connection broke mid-answer
                    raise EngineError(
                        f"the model server at {self._shown_url} broke off the answer "
                        f"({_describe(error)})"
                    ) from None
        except httpx.TransportError as error:  # before any answer: retried
            raise self._transport_failure(error) from None

    async def _read_openai(self, response: httpx.Response, state: _State) -> StopReason:
        finish: StopReason | None = None
        done = False
        async for data in _sse_data(response):
            if data.strip() == "[DONE]":
                done = True
                break
            event = self._event(data)
            usage = event.get("usage")
            if isinstance(usage, dict):
                state.tokens_in = _int_or(usage.get("prompt_tokens"), state.tokens_in)
                completion_tokens = _int_or(usage.get("completion_tokens"), None)
                if completion_tokens is not None:
                    state.tokens_out = completion_tokens
            for choice in event.get("choices") or []:
                if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                    continue
                delta = choice.get("delta")
                text = delta.get("content") if isinstance(delta, dict) else choice.get("text")
                if isinstance(text, str) and text:
                    state.tokens_out += 1
                    state.emit(text)
                reason = choice.get("finish_reason")
                if reason:
                    finish = StopReason.LENGTH if reason == "length" else StopReason.EOS
            if state.matcher.hit is not None:
                raise _StopStream
        if finish is None:
            raise EngineError(
                f"the model server at {self._shown_url} ended the answer midway"
                + ("" if done else " (the stream closed without [DONE])")
            )
        return finish

    async def _read_tgi(self, response: httpx.Response, state: _State) -> StopReason:
        async for data in _sse_data(response):
            event = self._event(data)
            token = event.get("token")
            if isinstance(token, dict):
                state.tokens_out += 1
                text = token.get("text")
                if isinstance(text, str) and not token.get("special"):
                    state.emit(text)
                if state.matcher.hit is not None:
                    raise _StopStream
            details = event.get("details")
            if isinstance(details, dict):
                state.tokens_out = _int_or(details.get("generated_tokens"), state.tokens_out)
                reason = details.get("finish_reason")
                if reason == "length":
                    return StopReason.LENGTH
                if reason == "stop_sequence":
                    return StopReason.STOP_STRING
                return StopReason.EOS
        raise EngineError(f"the model server at {self._shown_url} ended the answer midway")

    def _event(self, data: str) -> dict[str, Any]:
        try:
            event = json.loads(data)
        except json.JSONDecodeError:
            raise EngineError(
                f"the model server at {self._shown_url} sent an event that is not JSON: "
                f"{self._redact(data[:120])!r}"
            ) from None
        if not isinstance(event, dict):
            return {}
        if "error" in event:  # vLLM and TGI report failures after the headers as an event
            raise EngineError(
                f"the model server at {self._shown_url} failed midway: "
                f"{self._redact(_error_text(event))}"
            )
        return event

    async def _check_server(self) -> None:
        path = "/info" if self._settings.api == "tgi" else "/v1/models"
        response = await self._get(path)
        if response.status_code == 404 and self._settings.api != "tgi":
            # Not every OpenAI-style server lists its models: one that answers /health is up.
            health = await self._get("/health")
            if health.status_code == 200:
                return
        if response.status_code != 200:
            raise self._status_failure(response, None, path=path)
        if self._settings.api == "tgi":
            return
        try:
            served = [str(m["id"]) for m in response.json().get("data", []) if "id" in m]
        except (ValueError, AttributeError, TypeError, KeyError):
            served = []
        if not served or self._model in served:
            return
        if not self._settings.model and len(served) == 1:
            # No http.model given and one model served: that one (its id is often a path).
            log.info("the model server serves %s; using it", served[0])
            self._model = served[0]
            return
        raise EngineError(
            f"the model server at {self._shown_url} does not serve {self._model!r}: set "
            f"http.model to one of {', '.join(served[:10])}"
        )

    async def _get(self, path: str) -> httpx.Response:
        assert self._client is not None
        try:
            return await self._client.get(
                self._base + path,
                headers=self._headers(),
                timeout=httpx.Timeout(
                    self._settings.first_token_timeout_s, connect=self._settings.connect_timeout_s
                ),
            )
        except httpx.TransportError as error:
            raise self._transport_failure(error) from None

    # -- errors and secrets ------------------------------------------------------------------

    def _api_key(self) -> str | None:
        variable = self._settings.api_key_env
        if not variable:
            return None
        key = os.environ.get(variable, "").strip()
        if not key:
            raise ModelLoadError(
                f"http.api_key_env names ${variable}, but it is not set in the server's "
                "environment: set it where the editor starts starchat-lsp"
            )
        return key

    def _headers(self) -> dict[str, str]:
        key = self._api_key()
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _redact(self, text: str) -> str:
        variable = self._settings.api_key_env
        key = os.environ.get(variable, "").strip() if variable else ""
        return text.replace(key, "***") if key else text

    def _transport_failure(self, error: httpx.TransportError) -> _Failure:
        if isinstance(error, (httpx.ConnectError, httpx.ConnectTimeout)):
            return _Failure(
                f"cannot reach the model server at {self._shown_url} ({_describe(error)}): "
                "is it running, and is http.endpoint right?",
                retry=True,
            )
        # A kept-alive connection the server had closed, or a reset before the answer began.
        return _Failure(
            f"the model server at {self._shown_url} dropped the connection ({_describe(error)})",
            retry=isinstance(error, (httpx.RemoteProtocolError, httpx.ReadError)),
        )

    def _status_failure(
        self, response: httpx.Response, request: _Request | None, *, path: str | None = None
    ) -> _Failure:
        status = response.status_code
        where = f"{self._shown_url}{path or (request.path if request else '')}"
        detail = self._redact(_error_text(_json_or_text(response)))[:300]
        said = f": {detail}" if detail else ""
        if status in (401, 403):
            variable = self._settings.api_key_env
            hint = (
                f"check the key in ${variable}"
                if variable
                else "it wants an API key: put it in an environment variable and name that "
                "variable in http.api_key_env"
            )
            return _Failure(
                f"the model server at {self._shown_url} refused access ({status}): {hint}"
            )
        if status == 404:
            return _Failure(
                f"{where} answered 404 (not found){said}: check http.model ({self._model!r}) and "
                "http.endpoint (the server's base URL, without /v1) and http.api"
            )
        if status == 429:
            return _Failure(
                f"the model server at {self._shown_url} is rate limiting (429){said}: wait a "
                "moment, or lower http.max_concurrent",
                retry=True,
                retry_after=_retry_after(response),
            )
        if status == 503:
            return _Failure(
                f"the model server at {self._shown_url} is unavailable (503){said}: it may be "
                "overloaded or still loading the model",
                retry=True,
                retry_after=_retry_after(response),
            )
        if status >= 500:
            return _Failure(f"the model server at {self._shown_url} failed ({status}){said}")
        return _Failure(
            f"the model server at {self._shown_url} refused the request ({status}){said}"
        )


# -- helpers ---------------------------------------------------------------------------------


def render_starchat(messages: list[ChatMessage]) -> str:
    """The StarChat dialogue prompt for TGI's native API, which takes text, not messages."""
    import jinja2

    template = jinja2.Environment(autoescape=False).from_string(templates.STARCHAT_TEMPLATE)
    return template.render(
        messages=[{"role": m.role, "content": m.content} for m in messages],
        add_generation_prompt=True,
    )


async def _sse_data(response: httpx.Response) -> AsyncIterator[str]:
    """The data of each server-sent event (joined `data:` lines); comments and ids skipped."""
    lines: list[str] = []
    async for line in response.aiter_lines():
        if not line:
            if lines:
                yield "\n".join(lines)
                lines = []
            continue
        if line.startswith("data:"):
            value = line[5:]
            lines.append(value[1:] if value.startswith(" ") else value)
    if lines:
        yield "\n".join(lines)


def _base_url(endpoint: str) -> str:
    base = endpoint.strip().rstrip("/")
    # People paste the OpenAI base URL (".../v1"); the paths here start above it.
    return base.removesuffix("/v1")


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _describe(error: Exception) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _json_or_text(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text.strip()


def _error_text(body: Any) -> str:
    """The human part of an error body: OpenAI {"error": {"message"}}, TGI/FastAPI and text."""
    if isinstance(body, dict):
        for key in ("error", "detail", "message"):
            if key in body:
                return _error_text(body[key])
        return json.dumps(body)[:300]
    if isinstance(body, list):
        return "; ".join(_error_text(item) for item in body[:3])
    return str(body).strip()


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers.get("retry-after", ""))
    except ValueError:
        return None


def _raise_if_all_failed(results: list[GenerationResult]) -> None:
    if results and all(result.stop_reason is StopReason.ERROR for result in results):
        raise EngineError(results[0].error or "the model server failed")


def _int_or(value: object, default: int | None) -> Any:
    return value if isinstance(value, int) and not isinstance(value, bool) else default
