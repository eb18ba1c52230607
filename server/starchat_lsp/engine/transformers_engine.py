"""The reference backend: a Hugging Face transformers model on CPU or GPU.

One worker thread owns the model, so requests queue instead of running it concurrently; the
caller's thread reads the streamed text, and closing the stream early cancels the generation.
Interactive requests (a completion at the cursor) go ahead of the queue and run between two
tokens of a running answer, which then goes on with its own KV cache, untouched; each kind keeps
the cache of its last prefix. (A prompt goes through the model in one piece: an interactive
request waits for a running prompt to be read.) `sample` draws several answers in one batch;
`together` runs its prompts one after another.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from dataclasses import replace
from typing import Any

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
    together_in_turn,
)
from starchat_lsp.engine.interactive import InteractiveQueue
from starchat_lsp.engine.loading import (
    LoadedModel,
    choose_device,
    choose_dtype,
    load_transformers_model,
)
from starchat_lsp.errors import EngineError

log = logging.getLogger(__name__)

DEFAULT_CONTEXT_WINDOW = 2048
MIN_REUSED_TOKENS = 16  # below this, reusing a cache saves less than it risks


class TransformersEngine:
    def __init__(
        self,
        location: str,
        *,
        name: str | None = None,
        is_hub_id: bool = False,
        device: str = "auto",
        dtype: str = "auto",
        reuse_prefix: bool = True,
        prepare: Callable[[ProgressCallback | None], None] | None = None,
    ) -> None:
        self._location = location
        # Run at load, before anything else: makes `location` (a pulled GGUF's transformers
        # copy is converted on first use), telling its progress like the load's own.
        self._prepare = prepare
        # Keep the last run's KV cache for the next prompt that shares its prefix (off: the
        # benchmark's baseline, or to give the memory back between requests).
        self.reuse_prefix = reuse_prefix
        self._name = name or location
        self._is_hub_id = is_hub_id
        self._device_setting = device
        self._dtype_setting = dtype
        self._loaded: LoadedModel | None = None
        self._load_lock = threading.Lock()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="starchat-model")
        self._interactive = InteractiveQueue(self._worker)
        self.pauses = 0  # times a running request paused for interactive ones
        self.load_time_s: float | None = None
        self._end_ids: list[int] = []
        # The last run's token ids and KV cache, per kind (interactive or not); only the worker
        # thread touches them.
        self._prefixes: dict[bool, tuple[list[int], Any]] = {}

    @property
    def name(self) -> str:
        return self._name

    @property
    def loaded(self) -> LoadedModel:
        if self._loaded is None:
            self.load()
        assert self._loaded is not None
        return self._loaded

    @property
    def context_window(self) -> int:
        config = self.loaded.model.config
        window = getattr(config, "max_position_embeddings", None)
        return int(window) if window else DEFAULT_CONTEXT_WINDOW

    def load(self, progress: ProgressCallback | None = None) -> None:
        with self._load_lock:
            if self._loaded is not None:
                return
            started = time.monotonic()
            if self._prepare is not None:
                self._prepare(progress)
            device = choose_device(self._device_setting)
            dtype = choose_dtype(self._dtype_setting, device)
            self._loaded = load_transformers_model(
                self._location,
                is_hub_id=self._is_hub_id,
                device=device,
                dtype=dtype,
                progress=progress,
            )
            # What ends an answer is fixed by the model: worked out once, read per request.
            self._end_ids = templates.end_token_ids(
                self._loaded.tokenizer, self._loaded.model.generation_config.eos_token_id
            )
            self.load_time_s = time.monotonic() - started

    @property
    def fill_in_middle(self) -> bool:
        return templates.fim_tokens(self.loaded.tokenizer) is not None

    def count_tokens(self, text: str) -> int:
        return len(self.loaded.tokenizer.encode(text, add_special_tokens=False))

    def render_chat(self, messages: list[ChatMessage]) -> str:
        return templates.render_chat(self.loaded.tokenizer, messages)

    def chat(
        self,
        messages: list[ChatMessage],
        settings: GenerationSettings,
        cancel: CancelFlag | None = None,
    ) -> TextStream:
        prompt = self.render_chat(messages)
        # The template already wrote any BOS token it wants.
        return self._stream(prompt, settings, cancel, add_special_tokens=False)

    def complete(
        self,
        prompt: CompletionPrompt,
        settings: GenerationSettings,
        cancel: CancelFlag | None = None,
    ) -> TextStream:
        text = templates.render_completion(self.loaded.tokenizer, prompt)
        return self._stream(text, settings, cancel, add_special_tokens=True)

    def sample(
        self,
        messages: list[ChatMessage],
        settings: GenerationSettings,
        n: int,
        cancel: CancelFlag | None = None,
    ) -> list[GenerationResult]:
        """`n` answers from one `generate(num_return_sequences=n)` (Engine.sample).

        torch draws all of them from one generator: `settings.seed` fixes the whole set (the
        same seed, the same n answers), but answer i is not chat's answer with seed + i. Greedy
        answers are all alike, so greedy runs once and is given n times. The prompt is read
        afresh: the kept KV cache is of one sequence, and is left as it was for the next chat.
        """
        from starchat_lsp.engine.streaming import BatchStopper

        if n < 1:
            return []
        loaded = self.loaded
        flag = cancel or CancelFlag()
        inputs = loaded.tokenizer(
            self.render_chat(messages), return_tensors="pt", add_special_tokens=False
        ).to(loaded.device)
        tokens_in = int(inputs["input_ids"].shape[1])
        room = max(1, self.context_window - tokens_in)
        settings = replace(settings, max_new_tokens=min(settings.max_new_tokens, room))
        rows = n if settings.temperature > 0 else 1
        stops = tuple(settings.stop) + templates.end_strings(loaded.tokenizer)
        stopper = BatchStopper(
            loaded.tokenizer, rows, stops, self._eos_ids(), flag, settings.time_limit_s, self._pause
        )
        submitted = time.monotonic()
        future = self._worker.submit(self._generate_rows, inputs, settings, rows, stopper, flag)
        try:
            future.result()
        except CancelledError:  # dropped before it started: the engine closed
            stopper.end_all(StopReason.CANCELLED)
        except BaseException as error:
            flag.cancel()
            if isinstance(error, Exception) and not isinstance(error, EngineError):
                log.error("sampling failed", exc_info=error)
                raise EngineError(f"generation failed: {type(error).__name__}: {error}") from error
            raise
        results = stopper.results(tokens_in, submitted)
        return [results[i % rows] for i in range(n)]

    def together(
        self,
        asks: Sequence[Ask],
        cancel: CancelFlag | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> list[list[GenerationResult]]:
        """One ask after another (Engine.together): ask 0's first answer streams through `chat`,
        the other answers of an ask come from one `sample` batch."""
        return together_in_turn(self, asks, cancel, on_text)

    def _generate_rows(
        self,
        inputs: Any,
        settings: GenerationSettings,
        rows: int,
        stopper: Any,
        flag: CancelFlag,
    ) -> None:
        """On the worker: one generate() for `rows` answers; each row ends on its own."""
        import torch
        from transformers import DynamicCache, StoppingCriteriaList

        loaded = self.loaded
        self._interactive.run_waiting()  # interactive requests that came meanwhile go first
        stopper.start()
        if flag.cancelled:
            stopper.end_all(StopReason.CANCELLED)
            return
        if settings.seed is not None:
            torch.manual_seed(settings.seed)
        with torch.inference_mode():
            loaded.model.generate(
                **inputs,
                **self._generation_options(settings),
                cache=DynamicCache(config=loaded.model.config),
                num_return_sequences=rows,
                stopping_criteria=StoppingCriteriaList([stopper]),
            )
        stopper.end_all(StopReason.LENGTH)  # the rows still open ran to max_new_tokens

    def _generation_options(self, settings: GenerationSettings) -> dict[str, Any]:
        """generate()'s sampling and ending arguments, the same for one answer and for rows."""
        sampling = settings.temperature > 0
        eos_ids = self._eos_ids()
        pad = self.loaded.tokenizer.pad_token_id
        return {
            "max_new_tokens": settings.max_new_tokens,
            "do_sample": sampling,
            "temperature": settings.temperature if sampling else None,
            "top_p": settings.top_p if sampling else None,
            "top_k": None,
            "eos_token_id": eos_ids,
            "pad_token_id": pad if pad is not None else eos_ids[0],
        }

    def close(self) -> None:
        self._worker.shutdown(wait=False, cancel_futures=True)
        self._interactive.cancel_waiting()

    def _stream(
        self,
        prompt: str,
        settings: GenerationSettings,
        cancel: CancelFlag | None,
        *,
        add_special_tokens: bool,
    ) -> TextStream:
        from starchat_lsp.engine.streaming import GenerationStopper, TokenStreamer

        loaded = self.loaded
        flag = cancel or CancelFlag()
        stops = tuple(settings.stop) + templates.end_strings(loaded.tokenizer)
        streamer = TokenStreamer(loaded.tokenizer, stops)
        pause = None if settings.interactive else self._pause
        stopper = GenerationStopper(flag, streamer, settings.time_limit_s, pause)
        inputs = loaded.tokenizer(
            prompt, return_tensors="pt", add_special_tokens=add_special_tokens
        )
        inputs = inputs.to(loaded.device)
        tokens_in = int(inputs["input_ids"].shape[1])
        # Past its context window a model degrades or fails: the answer ends there (length).
        room = max(1, self.context_window - tokens_in)
        settings = replace(settings, max_new_tokens=min(settings.max_new_tokens, room))
        result_box: list[GenerationResult] = []
        submitted = time.monotonic()
        work = functools.partial(self._generate, inputs, settings, streamer, stopper, flag)
        if settings.interactive:
            future = self._interactive.submit(work)
        else:
            future = self._worker.submit(work)
        # A request dropped before it started (close) never runs: wake its reader all the same.
        future.add_done_callback(lambda f: streamer.end() if f.cancelled() else None)

        def chunks() -> Iterator[str]:
            read_to_end = False
            try:
                yield from streamer
                read_to_end = True
            finally:
                # Reached on normal end, on error, on Ctrl-C and when the reader stops early: in
                # the last cases the model must not keep running for nobody. Waiting for the
                # worker (one token at most) leaves the model free and the result whole.
                if not read_to_end and not future.done():
                    flag.cancel()
                result_box.append(self._result(future, streamer, stopper, tokens_in, submitted))
            if result_box[0].stop_reason is StopReason.ERROR:
                raise EngineError(f"generation failed: {result_box[0].error}")

        return TextStream(chunks(), flag, result_box, lambda: streamer.tokens_out)

    def _generate(
        self,
        inputs: Any,
        settings: GenerationSettings,
        streamer: Any,
        stopper: Any,
        flag: CancelFlag,
    ) -> None:
        import torch
        from transformers import StoppingCriteriaList

        loaded = self.loaded
        if not settings.interactive:
            self._interactive.run_waiting()  # interactive requests that came meanwhile go first
        streamer.started_at = time.monotonic()
        stopper.start()
        try:
            if flag.cancelled:  # cancelled while it waited in the queue: don't start at all
                stopper.reason = StopReason.CANCELLED
                return
            if settings.seed is not None:
                torch.manual_seed(settings.seed)
            kind = settings.interactive
            cache = self._reusable_cache(inputs["input_ids"][0].tolist(), stopper, kind)
            with torch.inference_mode():
                sequences = loaded.model.generate(
                    **inputs,
                    **self._generation_options(settings),
                    cache=cache,
                    streamer=streamer,
                    stopping_criteria=StoppingCriteriaList([stopper]),
                )
            # What the cache holds now: the prompt and the answer but its last token.
            self._prefixes[kind] = (sequences[0, : cache.get_seq_length()].tolist(), cache)
        except BaseException:
            self._prefixes.pop(settings.interactive, None)  # a failed run may leave it half-written
            raise
        finally:
            streamer.end()

    def _pause(self) -> float:
        """On the worker, between two tokens of a request: run the interactive ones that wait."""
        if not self._interactive.waiting:
            return 0.0
        started = time.monotonic()
        if self._interactive.run_waiting():
            self.pauses += 1
        return time.monotonic() - started

    def _reusable_cache(self, input_ids: list[int], stopper: Any, interactive: bool) -> Any:
        """On the worker thread: the KV cache of the last run of the same kind (interactive or
        not), cut to what this prompt shares with it.

        A follow-up chat turn or a completion after a few keystrokes repeats a long prefix;
        its attention keys and values are kept, so only the new tokens go through the model.
        """
        from transformers import DynamicCache

        previous = self._prefixes.pop(interactive, None)
        stopper.reused_tokens = 0
        if previous is not None and self.reuse_prefix:
            ids, cache = previous
            shared = 0
            for old, new in zip(ids, input_ids, strict=False):
                if old != new:
                    break
                shared += 1
            shared = min(shared, len(input_ids) - 1)  # at least one token must go through
            if shared >= MIN_REUSED_TOKENS and cache.is_croppable:
                surplus = cache.get_seq_length() - shared
                if surplus > 0:
                    cache.crop(-surplus)  # transformers 5 crops by a negative count
                stopper.reused_tokens = shared
                return cache
        return DynamicCache(config=self.loaded.model.config)

    def _result(
        self,
        future: Future[None],
        streamer: Any,
        stopper: Any,
        tokens_in: int,
        submitted: float,
    ) -> GenerationResult:
        finished = time.monotonic()
        try:
            error = future.exception()
            dropped = False
        except CancelledError:  # dropped before it started: the engine closed
            error, dropped = None, True
        first = streamer.first_token_at
        if dropped:
            reason = StopReason.CANCELLED
        elif error is not None:
            log.error("generation failed", exc_info=error)
            reason = StopReason.ERROR
        elif stopper.reason is not None:
            reason = stopper.reason
        elif streamer.last_token_id is not None and streamer.last_token_id in self._eos_ids():
            reason = StopReason.EOS
        else:
            reason = StopReason.LENGTH
        return GenerationResult(
            text=streamer.text,
            stop_reason=reason,
            tokens_in=tokens_in,
            tokens_out=streamer.tokens_out,
            time_to_first_token_s=None if first is None else first - streamer.started_at,
            total_s=finished - streamer.started_at,
            queue_wait_s=max(0.0, streamer.started_at - submitted),
            reused_tokens=getattr(stopper, "reused_tokens", 0),
            error=None if error is None else f"{type(error).__name__}: {error}",
        )

    def _eos_ids(self) -> list[int]:
        self.load()
        return self._end_ids
