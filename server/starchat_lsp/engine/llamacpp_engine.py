"""The llama.cpp backend: the pulled GGUF file itself, run by llama-cpp-python (fast on a CPU).

It behaves like the transformers engine: one worker thread owns the `Llama` object, so requests
queue instead of running it concurrently; the caller's thread reads the streamed text; cancel,
stop strings, the time limit and the end-of-turn tokens are checked between tokens; closing the
stream early cancels the generation and waits for it (one token at most).

Interactive requests (a completion at the cursor) go ahead of the queue, and a running request
pauses for them between two of its tokens (or two slices of its prompt): its KV cache is copied
out and back (llamacpp_kv), so it goes on exactly where it was, and each side keeps its prefix.

`sample` decodes several answers to one prompt together, one batch per token (llamacpp_batch).

A completion model (`CompletionModel`: a smaller one of the same vocabulary, beside a bigger chat
model) can be loaded beside the model: interactive requests then run on it, with its own KV
cache, on the same worker thread (the two never compute at once: on a few cores two models
running together both crawl), and nothing is copied at a pause.

llama-cpp-python is an optional extra, imported only by `load()`.
"""

from __future__ import annotations

import codecs
import contextlib
import functools
import io
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from starchat_lsp.engine import (
    llamacpp_batch,
    llamacpp_build,
    llamacpp_reuse,
    llamacpp_shift,
    templates,
)
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
from starchat_lsp.engine.cpu import usable_cores
from starchat_lsp.engine.interactive import InteractiveQueue
from starchat_lsp.engine.llamacpp_kv import BACKGROUND, INTERACTIVE, KvOwners
from starchat_lsp.engine.stop_strings import StopStringMatcher
from starchat_lsp.errors import EngineError, ModelLoadError

log = logging.getLogger(__name__)
# The runtime's own chatter (banner, metadata, chat template): shown with --verbose only.
runtime_log = logging.getLogger("starchat_lsp.runtime")

INSTALL_HINT = "pip install 'starchat-lsp[llamacpp]'"
# With context_size 0: the model's own training context, capped here. llama.cpp allocates the whole
# KV cache up front (Qwen2.5-Coder-1.5B at its 32768 tokens: about 0.9 GB more than at 4096), and
# the prompts this assistant builds (a function or a selection, plus instructions) fit in 4096.
DEFAULT_CONTEXT_CAP = 4096
# Where llama.cpp's abort callback cannot be set: prompt tokens put through the model at once,
# with cancel and the time limit checked between. Small slices cost prefill speed (32 against one
# eval of the whole prompt: about 10% slower first token for SmolLM2-135M, bench/), so the abort
# callback is the normal way: the whole prompt in one eval, stopped within a graph node.
PREFILL_SLICE = 32
# A prompt goes through the model in slices of this many tokens. Between two slices a request
# pauses for interactive ones: they wait for one slice at most (about 1.3 s for
# Qwen2.5-Coder-1.5B on 2 cores; 128-token slices read a 1,000-token prompt as fast as one eval,
# 64-token ones 5% slower). A stopped prompt keeps the slices read before. Always sliced: an
# uninterrupted run computes exactly what a paused one does.
PAUSE_SLICE = 128
# An interactive request (a completion) is stopped between two slices, never inside one: the
# next keystroke stops it about every 200 ms, and the next completion's prompt begins the same,
# so what it read is kept for that one (a slice aborted half-way is lost, and at 64 tokens,
# 0.6 s, no slice was ever finished while typing).
INTERACTIVE_SLICE = 32
_DONE = object()  # the end of the chunk queue
# KV cells of a completion model's context beyond the window: for the middle of a moved prompt
# (llamacpp_shift: at most MAX_MIDDLE and READ_AGAIN tokens), read in another sequence.
COMPANION_ROOM = 256
# Tokenized by both models to tell whether a completion model shares the model's vocabulary.
_VOCABULARY_PROBE = (
    '<|fim_prefix|>def mean(values: list[float]) -> float:\n    """Ünïcode → ok."""\n'
    "<|fim_suffix|>\n    return total / len(values)<|fim_middle|><|im_end|><|endoftext|>"
)


@dataclass(frozen=True)
class CompletionModel:
    """A model for completions at the cursor, loaded beside the engine's own (completion.model).

    It must share the model's vocabulary (prompts are tokenized once, by the model); `problem`
    says why it cannot be used (not pulled, no GGUF file) and completions then use the model.
    """

    name: str
    gguf_path: Path | None
    problem: str = ""


class _Run:
    """One generation's shared state: written by the worker, read by the stream's reader."""

    def __init__(self, stops: tuple[str, ...]) -> None:
        self.chunks: queue.Queue[object] = queue.Queue()
        self.matcher = StopStringMatcher(stops)
        self.text = ""
        self.tokens_in = 0
        self.tokens_out = 0
        self.reused_tokens = 0
        self.started_at: float | None = None
        self.first_token_at: float | None = None
        self.reason: StopReason | None = None
        self.paused_s = 0.0  # time given to interactive requests: not counted against its limit

    def emit(self, text: str) -> None:
        if text:
            self.text += text
            self.chunks.put(text)


class LlamaCppEngine:
    def __init__(
        self,
        gguf_path: str,
        *,
        name: str,
        threads: int = 0,
        context_size: int = 0,
        completion: CompletionModel | None = None,
    ) -> None:
        self._path = Path(gguf_path).expanduser()
        self._name = name
        self._threads = threads
        self._context_size = context_size
        self._llama: Any = None
        self._completion = completion
        self._companion: Any = None  # the completion model's Llama, once loaded and usable
        self._companion_can_shift = False
        self._load_lock = threading.Lock()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="starchat-llamacpp")
        self._closed = False
        self._running: CancelFlag | None = None  # the generation on the worker now, if any
        self._interactive = InteractiveQueue(self._worker)
        self._kv = KvOwners()
        # Per Llama: a completion's runs of cells waiting for sequence 0 (llamacpp_reuse).
        self._stashes: dict[int, llamacpp_reuse.Stash] = {}
        self.pauses = 0  # times a running request paused for interactive ones
        self._chat_template: str | None = None
        self._special: dict[str, str] = {}
        self._end_ids: frozenset[int] = frozenset()
        self._end_strings: tuple[str, ...] = ()
        self._fim: tuple[str, str, str] | None = None
        self._repo: tuple[str, str] | None = None  # repo-level tokens, for other files
        self._window = 0
        self.load_time_s: float | None = None
        # llama.cpp calls the abort callback from its compute threads during an eval; it asks
        # `_abort_check`, which is set only while a prompt is put through the model.
        self._abort_callback: Any = None
        self._can_shift = False  # the KV cache can move cells (llamacpp_shift), once loaded
        self._abort_check: Callable[[], bool] | None = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def llama(self) -> Any:
        """The llama_cpp.Llama object (loaded on first use)."""
        if self._llama is None:
            self.load()
        return self._llama

    @property
    def context_window(self) -> int:
        self.load()
        return self._window

    @property
    def fill_in_middle(self) -> bool:
        self.load()
        return self._fim is not None

    @property
    def completion_model(self) -> str:
        """The name of the model that answers completions at the cursor."""
        self.load()
        if self._companion is not None and self._completion is not None:
            return self._completion.name
        return self._name

    def load(self, progress: ProgressCallback | None = None) -> None:
        with self._load_lock:
            if self._llama is not None:
                return
            if self._closed:
                raise EngineError(f"the {self._name} engine is closed")
            try:
                import llama_cpp
            except ImportError as error:
                raise EngineError(
                    f"the llama.cpp backend needs llama-cpp-python: {INSTALL_HINT} "
                    f"(or choose the transformers backend) ({error})"
                ) from error
            if not self._path.is_file():
                raise ModelLoadError(
                    f"the GGUF file {self._path} does not exist: pull the model again "
                    f"(`starchat-lsp models pull {self._name}`)"
                )
            started = time.monotonic()
            if progress:
                progress(f"Loading {self._path.name} with llama.cpp")
            _route_llama_log()
            # the window, and room for answers decoded together (llamacpp_batch)
            cells = (self._context_size or DEFAULT_CONTEXT_CAP) + llamacpp_batch.ANSWER_CELLS
            llama = self._open(llama_cpp, self._path, self._name, cells)
            self._inspect(llama)
            self._install_abort_callback(llama)
            self._can_shift = llamacpp_shift.can_shift(llama)
            # llama.cpp rounds the context up (to a multiple of 256); the window is what was asked
            # for, and by default never more than the model was trained on.
            window = min(int(llama.n_ctx()), self._context_size or DEFAULT_CONTEXT_CAP)
            trained = _trained_context(llama.metadata)
            if not self._context_size and 0 < trained < window:
                window = trained
            self._window = window
            # The model itself named: it completes, from its one copy in memory.
            if self._completion is not None and self._completion.gguf_path != self._path:
                self._load_companion(llama_cpp, llama, self._completion, progress)
            self._llama = llama
            self.load_time_s = time.monotonic() - started

    def _open(self, llama_cpp: Any, path: Path, name: str, cells: int) -> Any:
        """A `Llama` for the GGUF file at `path`, its context of `cells` KV cells."""
        threads = self._threads or usable_cores()
        try:
            # verbose=False would make llama-cpp-python point file descriptors 1 and 2 at
            # /dev/null while the model loads: a language server's replies written to
            # stdout meanwhile were lost (editors waited forever). Its log goes through
            # _route_llama_log instead; its Python-side prints (metadata, the whole chat
            # template) into our log at DEBUG, never onto the user's terminal.
            with _prints_to_log(), _safe_buffers(), llamacpp_batch.context_params():
                llama = llama_cpp.Llama(
                    model_path=str(path),
                    n_ctx=cells,
                    n_threads=threads,
                    n_threads_batch=threads,
                    n_gpu_layers=0,
                    verbose=True,
                )
            llama.verbose = False  # no timing prints per request
        except MemoryError as error:
            raise ModelLoadError(
                f"not enough memory to load {name} with llama.cpp: choose a smaller "
                "model (`starchat-lsp models list`) or a smaller context (model.context_size)"
            ) from error
        except Exception as error:  # llama.cpp says only "Failed to load model from file"
            raise ModelLoadError(
                f"llama.cpp could not load {path} ({error}): the file may be damaged "
                f"or of an architecture this llama-cpp-python does not know; pull it again "
                f"(`starchat-lsp models pull {name}`) or upgrade llama-cpp-python"
            ) from error
        return llama

    def _load_companion(
        self,
        llama_cpp: Any,
        llama: Any,
        completion: CompletionModel,
        progress: ProgressCallback | None,
    ) -> None:
        """Load the completion model beside `llama`; where it cannot serve, say why and go on
        without it (completions then use the model: a setting must not cost the chat)."""
        problem = completion.problem
        if not problem and completion.gguf_path is not None:
            if progress:
                progress(f"Loading {completion.name} for completions")
            try:
                # a completion fits the window; a moved prompt's middle is read in another
                # sequence beside it (llamacpp_shift): no room for answers decoded together
                cells = self._window + COMPANION_ROOM
                companion = self._open(llama_cpp, completion.gguf_path, completion.name, cells)
            except ModelLoadError as error:
                problem = str(error)
            else:
                if _same_vocabulary(llama, companion):
                    self._companion = companion
                    self._companion_can_shift = llamacpp_shift.can_shift(companion)
                    return
                companion.close()
                problem = (
                    f"its vocabulary is not {self._name}'s: choose a smaller model of the same "
                    "family (`starchat-lsp models list`)"
                )
        message = (
            f"completion model {completion.name} not used ({problem}): completions use {self._name}"
        )
        log.warning("%s", message)
        if progress:
            progress(message)

    def _inspect(self, llama: Any) -> None:
        """What the model's vocabulary and metadata fix: chat template, end tokens, FIM tokens."""
        template = llama.metadata.get("tokenizer.chat_template") or None
        self._chat_template = template
        self._special = {
            "bos_token": self._piece(llama, llama.token_bos()),
            "eos_token": self._piece(llama, llama.token_eos()),
        }
        ends = {int(llama.token_eos())} if llama.token_eos() >= 0 else set()
        for token in templates.END_OF_TURN_TOKENS:
            token_id = self._single_token(llama, token)
            if token_id is not None:
                ends.add(token_id)
        self._end_ids = frozenset(ends)
        # The StarChat format on a vocabulary without <|end|>: stop on the markers as text.
        if template is None and self._single_token(llama, "<|end|>") is None:
            self._end_strings = ("<|end|>", "<|user|>")

        def single(token: str) -> bool:
            return self._single_token(llama, token) is not None

        self._fim = templates.first_known(templates.FIM_TOKEN_SETS, single)
        self._repo = templates.first_known(templates.REPO_TOKEN_SETS, single)

    @staticmethod
    def _piece(llama: Any, token_id: int) -> str:
        if token_id < 0:
            return ""
        return bytes(llama.detokenize([token_id], special=True)).decode("utf-8", "replace")

    @staticmethod
    def _single_token(llama: Any, text: str) -> int | None:
        """The id of `text` when the vocabulary has it as one special token, else None."""
        ids = llama.tokenize(text.encode(), add_bos=False, special=True)
        if len(ids) != 1:
            return None
        return int(ids[0]) if LlamaCppEngine._piece(llama, ids[0]) == text else None

    def count_tokens(self, text: str) -> int:
        return len(self._tokenize(text, add_bos=False))

    def _tokenize(self, text: str, *, add_bos: bool) -> list[int]:
        # special=True: special tokens written in the text are single tokens, as in transformers.
        return list(self.llama.tokenize(text.encode(), add_bos=add_bos, special=True))

    def render_chat(self, messages: list[ChatMessage]) -> str:
        """The prompt text for `messages`: the GGUF's chat template, or StarChat without one."""
        self.load()
        as_dicts = [{"role": m.role, "content": m.content} for m in messages]
        template = self._chat_template or templates.STARCHAT_TEMPLATE
        try:
            return _render(template, as_dicts, self._special)
        except Exception as error:  # jinja raises TemplateError for roles a template refuses
            if not any(m.role == "system" for m in messages) or "system" not in str(error).lower():
                raise
            # Some templates (Gemma, Mistral) refuse a system turn: fold it into the first user's.
            return _render(template, templates._fold_system(as_dicts), self._special)

    def render_completion(self, prompt: CompletionPrompt) -> str:
        """Fill-in-the-middle when there is a suffix and the vocabulary has FIM tokens."""
        self.load()
        if prompt.suffix is not None and self._fim is not None:
            return templates.fill_in_middle(self._fim, prompt, self._repo)
        return templates.plain_completion(prompt, self._repo)

    def chat(
        self,
        messages: list[ChatMessage],
        settings: GenerationSettings,
        cancel: CancelFlag | None = None,
    ) -> TextStream:
        # The template already wrote any BOS token it wants.
        return self._stream(self.render_chat(messages), settings, cancel, add_bos=False)

    def complete(
        self,
        prompt: CompletionPrompt,
        settings: GenerationSettings,
        cancel: CancelFlag | None = None,
    ) -> TextStream:
        # add_bos=True adds the BOS token only when the model's metadata asks for one.
        return self._stream(self.render_completion(prompt), settings, cancel, add_bos=True)

    def sample(
        self,
        messages: list[ChatMessage],
        settings: GenerationSettings,
        n: int,
        cancel: CancelFlag | None = None,
    ) -> list[GenerationResult]:
        """`n` answers decoded together (Engine.sample): `together` with one ask.

        With the same seed an answer draws its tokens as chat's would; the batch's arithmetic
        can differ from one sequence's in the last bits, so a long sampled answer may part from
        chat's where two tokens were nearly equally likely.
        """
        return self.together([Ask(messages, settings, n)], cancel)[0]

    def together(
        self,
        asks: Sequence[Ask],
        cancel: CancelFlag | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> list[list[GenerationResult]]:
        """Every ask's answers decoded together (Engine.together); run like a chat, never as
        interactive. Ask 0's prompt goes into sequence 0 (its prefix reused, as chat's); each
        other prompt reads only what it does not share with it.
        """
        if self._closed:
            raise EngineError(f"the {self._name} engine is closed")
        if not asks or all(ask.n < 1 for ask in asks):
            return [[] for _ in asks]
        flag = cancel or CancelFlag()
        prompts = [self._tokenize(self.render_chat(ask.messages), add_bos=False) for ask in asks]
        submitted = time.monotonic()
        future = self._worker.submit(self._together, asks, prompts, flag, on_text)
        try:
            return future.result()
        except CancelledError:  # dropped from the queue by close() before it started
            return [
                [_unstarted(len(tokens), StopReason.CANCELLED, submitted)] * ask.n
                for ask, tokens in zip(asks, prompts, strict=True)
            ]
        except BaseException as error:
            flag.cancel()  # Ctrl-C while waiting: the worker stops within a token
            if isinstance(error, EngineError):
                raise
            if isinstance(error, Exception):
                log.error("sampling failed", exc_info=error)
                raise EngineError(f"generation failed: {type(error).__name__}: {error}") from error
            raise

    def _together(
        self,
        asks: Sequence[Ask],
        prompts: list[list[int]],
        flag: CancelFlag,
        on_text: Callable[[str], None] | None,
    ) -> list[list[GenerationResult]]:
        """On the worker: sequence 0's prompt (prefix reused), then the answers in rounds."""
        self._interactive.run_waiting()  # interactive requests that came meanwhile go first
        run = _Run(())
        run.tokens_in = len(prompts[0])
        run.started_at = started = time.monotonic()
        outer, self._running = self._running, flag
        try:
            llama = self.llama
            limits = [
                self._answer_limit(tokens, ask.settings)
                for ask, tokens in zip(asks, prompts, strict=True)
            ]

            def clock() -> float:  # time given to interactive requests does not count
                return time.monotonic() - run.paused_s

            answers: list[list[llamacpp_batch.Answer]] = []
            for number, (ask, limit) in enumerate(zip(asks, limits, strict=True)):
                seed = ask.settings.seed
                limit_s = ask.settings.time_limit_s
                follows = answers[0][0] if number and ask.until_first_ends and answers[0] else None
                answers.append(
                    [
                        llamacpp_batch.Answer(
                            sequence=0,
                            limit=limit,
                            sampler=llamacpp_batch.sampler_chain(
                                llama, ask.settings, None if seed is None else seed + i
                            ),
                            matcher=StopStringMatcher(tuple(ask.settings.stop) + self._end_strings),
                            deadline=None if limit_s is None else started + limit_s,
                            on_text=on_text if number == 0 and i == 0 else None,
                            follows=follows,
                        )
                        for i in range(max(0, ask.n))
                    ]
                )
            first = prompts[0]
            shared = [_common_prefix(first, tokens) for tokens in prompts]
            # Where each prompt's own reading starts: sequence 0 holds the first whole; another
            # reads at least its last token, whose logits give its first answer token.
            starts = [len(first)] + [
                min(common, len(tokens) - 1)
                for tokens, common in zip(prompts[1:], shared[1:], strict=True)
            ]
            flat = [(b, a) for b, group in enumerate(answers) for a in group]
            plan = llamacpp_batch.rounds(
                int(llama.n_ctx()),
                len(first),
                [
                    (len(tokens) - start, [a.limit for a in group])
                    for tokens, start, group in zip(prompts, starts, answers, strict=True)
                ],
            )
            if flag.cancelled or self._closed:
                plan = []
            self._use(llama, BACKGROUND)

            def between_steps() -> StopReason | None:
                if flag.cancelled:
                    return StopReason.CANCELLED
                if self._interactive.waiting:
                    self._pause(llama, run)
                return None

            # The prompt's prefill serves every answer: it stops once none has time left.
            deadlines = [a.deadline for group in answers for a in group]
            deadline = None if None in deadlines else max(d for d in deadlines if d is not None)
            for numbers in plan:
                # The prompt's last logits are gone after a round: its last token is read again.
                if not self._prefill(llama, first, run, flag, deadline, pausable=True):
                    break
                branches: list[llamacpp_batch.Branch] = []
                for sequence, number in enumerate(numbers, start=1):
                    b, answer = flat[number]
                    answer.sequence = sequence
                    if not branches or branches[-1].tokens is not prompts[b]:
                        branches.append(llamacpp_batch.Branch(prompts[b], starts[b], []))
                    branches[-1].answers.append(answer)
                llamacpp_batch.decode_together(llama, branches, self._end_ids, between_steps, clock)
            for group in answers:  # not started: cancelled, out of time, or a round before
                for answer in group:
                    if answer.reason is None:
                        answer.end(run.reason or StopReason.CANCELLED)
            return [
                [
                    _answered(
                        a, len(tokens), run, common if b else run.reused_tokens, submitted=started
                    )
                    for a in group
                ]
                for b, (group, tokens, common) in enumerate(
                    zip(answers, prompts, shared, strict=True)
                )
            ]
        finally:
            self._running = outer

    def _answer_limit(self, tokens: list[int], settings: GenerationSettings) -> int:
        """The new tokens an answer may have; EngineError when the prompt fills the window."""
        window = self._window
        if len(tokens) >= window:
            raise EngineError(
                f"the prompt has {len(tokens)} tokens: the context window holds {window}"
            )
        # Past its context window a model fails: the answer ends there (length).
        return min(settings.max_new_tokens, window - len(tokens))

    def close(self) -> None:
        """Stop what runs (within a token), drop what waits, and free the model's memory."""
        self._closed = True
        running = self._running
        if running is not None:
            running.cancel()
        self._worker.shutdown(wait=True, cancel_futures=True)
        self._interactive.cancel_waiting()  # their readers get the end, and CANCELLED
        with self._load_lock:
            llama, self._llama = self._llama, None
            companion, self._companion = self._companion, None
        for model in (llama, companion):
            if model is not None:
                model.close()

    def _stream(
        self,
        prompt: str,
        settings: GenerationSettings,
        cancel: CancelFlag | None,
        *,
        add_bos: bool,
    ) -> TextStream:
        if self._closed:
            raise EngineError(f"the {self._name} engine is closed")
        flag = cancel or CancelFlag()
        tokens = self._tokenize(prompt, add_bos=add_bos)
        run = _Run(tuple(settings.stop) + self._end_strings)
        run.tokens_in = len(tokens)
        result_box: list[GenerationResult] = []
        submitted = time.monotonic()
        if settings.interactive:
            work = functools.partial(self._generate, tokens, settings, run, flag)
            future = self._interactive.submit(work)
        else:
            future = self._worker.submit(self._generate, tokens, settings, run, flag)
        # A request dropped from the queue (close) never runs: wake its reader all the same.
        future.add_done_callback(lambda f: run.chunks.put(_DONE) if f.cancelled() else None)

        def chunks() -> Iterator[str]:
            read_to_end = False
            try:
                while (chunk := run.chunks.get()) is not _DONE:
                    yield str(chunk)
                read_to_end = True
            finally:
                # Reached on normal end, on error, on Ctrl-C and when the reader stops early: in
                # the last cases the model must not keep running for nobody. Waiting for the
                # worker (one token at most) leaves the model free and the result whole.
                if not read_to_end and not future.done():
                    flag.cancel()
                result_box.append(self._result(future, run, submitted))
            if result_box[0].stop_reason is StopReason.ERROR:
                raise EngineError(f"generation failed: {result_box[0].error}")

        return TextStream(chunks(), flag, result_box, lambda: run.tokens_out)

    def _use(self, llama: Any, owner: str) -> None:
        """Give the context's sequence 0 to `owner` (llamacpp_kv); anything but a completion
        first drops the runs a completion held (their sequence may be an answer's)."""
        if owner == BACKGROUND:
            self._stash(llama).drop(llama)
        self._kv.use(llama, owner)

    def _suffix_token(self, llama: Any) -> int | None:
        """The fill-in-the-middle suffix token's id, where the vocabulary has one."""
        if self._fim is None:
            return None
        found = llama.tokenize(self._fim[1].encode(), add_bos=False, special=True)
        return int(found[0]) if len(found) == 1 else None

    def _stash(self, llama: Any) -> llamacpp_reuse.Stash:
        return self._stashes.setdefault(id(llama), llamacpp_reuse.Stash())

    def _pause(self, llama: Any, run: _Run) -> None:
        """Between two tokens (or prompt slices) of `run`: serve the interactive requests."""
        started = time.monotonic()
        sampler = getattr(llama, "_sampler", None)  # theirs replace it; ours goes on after
        self._interactive.run_waiting()
        self._use(llama, BACKGROUND)
        if sampler is not None:
            llama._sampler = sampler
        self.pauses += 1
        run.paused_s += time.monotonic() - started

    def _generate(
        self, tokens: list[int], settings: GenerationSettings, run: _Run, flag: CancelFlag
    ) -> None:
        if not settings.interactive:
            self._interactive.run_waiting()  # interactive requests that came meanwhile go first
        run.started_at = time.monotonic()
        outer, self._running = self._running, flag
        try:
            # Cancelled while it waited in the queue, or the engine is closing: don't start.
            if flag.cancelled or self._closed:
                run.reason = StopReason.CANCELLED
                return
            llama = self.llama
            if settings.interactive and self._companion is not None:
                llama = self._companion  # its own KV cache: the model's stays as it is
            else:
                self._use(llama, INTERACTIVE if settings.interactive else BACKGROUND)
            self._decode(llama, tokens, settings, run, flag)
        finally:
            self._running = outer
            run.emit(run.matcher.flush())
            run.chunks.put(_DONE)

    def _decode(
        self,
        llama: Any,
        tokens: list[int],
        settings: GenerationSettings,
        run: _Run,
        flag: CancelFlag,
    ) -> None:
        limit = self._answer_limit(tokens, settings)
        limit_s = settings.time_limit_s
        deadline = None if limit_s is None else time.monotonic() + limit_s
        sampling = settings.temperature > 0
        # A fixed seed repeats a sampled answer; without one llama.cpp picks a fresh seed.
        llama.set_seed(settings.seed if settings.seed is not None else 0xFFFFFFFF)
        if not self._prefill(llama, tokens, run, flag, deadline, pausable=not settings.interactive):
            return
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        # The prompt is in the KV cache now: generate() finds it there and starts sampling.
        generated = llama.generate(
            tokens,
            # Greedy when temperature is 0; otherwise plain temperature + top-p, as transformers.
            temp=settings.temperature if sampling else 0.0,
            top_k=0 if sampling else 1,
            top_p=settings.top_p if sampling else 1.0,
            min_p=0.0,
            typical_p=1.0,
            repeat_penalty=1.0,
            reset=True,
        )
        # An incomplete UTF-8 character at the end is dropped, as the transformers engine does.
        try:
            for token in generated:
                if run.first_token_at is None:
                    run.first_token_at = time.monotonic()
                run.tokens_out += 1
                if token in self._end_ids:
                    run.reason = StopReason.EOS
                    return
                piece = bytes(llama.detokenize([token]))
                run.emit(run.matcher.feed(decoder.decode(piece)))
                if run.matcher.hit is not None:
                    run.reason = StopReason.STOP_STRING
                    return
                if run.tokens_out >= limit:
                    return  # LENGTH
                # Read once per token: it is what makes cancel stop within one.
                if flag.cancelled:
                    run.reason = StopReason.CANCELLED
                    return
                if deadline is not None and time.monotonic() - run.paused_s >= deadline:
                    run.reason = StopReason.TIME
                    return
                if self._interactive.waiting and not settings.interactive:
                    self._pause(llama, run)
        finally:
            generated.close()

    def _prefill(
        self,
        llama: Any,
        tokens: list[int],
        run: _Run,
        flag: CancelFlag,
        deadline: float | None,
        *,
        pausable: bool,
    ) -> bool:
        """Put the prompt through the model; False if cancel or the time limit stopped it.

        A long prompt takes seconds on a CPU (Qwen2.5-Coder-1.5B: about 100 tokens/s on 2 cores);
        cancel must not wait for all of it, nor an interactive request (`pausable`: slices, with
        a pause between two when one waits). The KV cache of the prefix this prompt shares with
        the last run of its owner is kept (a follow-up chat turn, a completion after a few
        keystrokes).
        """
        # Prompt tokens whose KV cache the last run left (`Llama.generate` keeps them, as it
        # says); at least one token goes through, to give logits.
        cached = llama.input_ids[: llama.n_tokens].tolist()
        shared = min(_common_prefix(cached, tokens), len(tokens) - 1)
        stash = self._stash(llama)
        move = None
        runs: list[llamacpp_reuse.Run] = []
        can_shift = self._companion_can_shift if llama is self._companion else self._can_shift
        if not pausable and can_shift:  # a completion
            if shared > 0 and not stash.tokens:  # typing at the cursor
                move = llamacpp_shift.plan(cached, tokens, shared)
            if move is None:  # at another place: what the last one's window shares with it
                fresh = llamacpp_reuse.near_cursor(tokens, self._suffix_token(llama))
                runs = llamacpp_reuse.plan(stash.cached(cached), tokens, shared, fresh)
        if not runs:
            stash.drop(llama)
        # Keep the shared prefix, drop the rest (what Llama.generate does for a prefix match);
        # where the cache cannot drop a tail (recurrent models), start from scratch.
        cache = getattr(llama, "_ctx", None)
        if move is not None and llamacpp_shift.apply(llama, tokens, move):
            shared = move.to + move.count
            run.reused_tokens = shared - (move.to - move.kept)
        elif runs and stash.hold(llama, tokens, runs, shared):
            run.reused_tokens = shared + sum(r.count for r in runs)
        elif shared > 0 and cache is not None and cache.kv_cache_seq_rm(0, shared, -1):
            runs = []
            llama.n_tokens = shared
            run.reused_tokens = shared
        else:
            runs, shared = [], 0
            llama.reset()
        stop = self._prefill_stop(run, flag, deadline)
        size = PAUSE_SLICE if pausable else INTERACTIVE_SLICE

        def read(end: int) -> bool:
            """Sequence 0 reads the prompt on to `end`, in slices."""
            for start in range(int(llama.n_tokens), end, size):
                if pausable and self._interactive.waiting:
                    self._pause(llama, run)
                if not pausable and stop():
                    return False
                if not self._eval(
                    llama, tokens[start : min(start + size, end)], run, stop, abort=pausable
                ):
                    return False
            return True

        for held in runs:  # read up to each held run, then take it
            if not read(held.to):
                return False
            stash.give(llama, held, tokens)
        return read(len(tokens))

    def _eval(
        self, llama: Any, tokens: list[int], run: _Run, stop: Callable[[], bool], *, abort: bool
    ) -> bool:
        """Put `tokens` through the model; False if `stop` said so first (`abort`: inside)."""
        if not abort:
            llama.eval(tokens)
            return True
        if self._abort_callback is not None:
            # One eval for all of them (llama.cpp batches it), aborted from inside on cancel or
            # at the time limit; the callback is only set for the prefill: it runs per graph
            # node, too often to leave on while tokens are generated one by one.
            self._abort_check = stop
            try:
                llama.eval(tokens)
            except RuntimeError:
                if run.reason is None:
                    raise
                # llama.cpp dropped the slice it was in; the slices before stay, for the next run
                return False
            finally:
                self._abort_check = None
            return True
        for start in range(0, len(tokens), PREFILL_SLICE):
            if stop():
                return False
            llama.eval(tokens[start : start + PREFILL_SLICE])
        return True

    @staticmethod
    def _prefill_stop(run: _Run, flag: CancelFlag, deadline: float | None) -> Callable[[], bool]:
        """True (and the reason noted) once the prefill must stop: cancelled, or out of time."""

        def stop() -> bool:
            if flag.cancelled:
                run.reason = StopReason.CANCELLED
            elif deadline is not None and time.monotonic() - run.paused_s >= deadline:
                run.reason = StopReason.TIME
            return run.reason is not None

        return stop

    def _install_abort_callback(self, llama: Any) -> None:
        """Let a running eval be stopped: llama.cpp asks this callback between graph nodes."""
        import llama_cpp

        context = getattr(getattr(llama, "_ctx", None), "ctx", None)
        setter = getattr(llama_cpp, "llama_set_abort_callback", None)
        kind = getattr(llama_cpp, "ggml_abort_callback", None)
        if context is None or setter is None or kind is None:
            return  # an older or newer llama-cpp-python: prefill in slices instead

        def should_abort(_data: Any) -> bool:
            check = self._abort_check
            return check is not None and check()

        self._abort_callback = kind(should_abort)  # kept referenced: C holds only the pointer
        setter(context, self._abort_callback, None)

    def _result(self, future: Future[None], run: _Run, submitted: float) -> GenerationResult:
        try:
            error = future.exception()  # waits for the worker: the result is whole
            dropped = False
        except CancelledError:  # dropped from the queue by close() before it started
            error, dropped = None, True
        finished = time.monotonic()
        started = run.started_at if run.started_at is not None else finished
        if error is not None:
            log.error("generation failed", exc_info=error)
            reason = StopReason.ERROR
        elif dropped:
            reason = StopReason.CANCELLED
        else:
            reason = run.reason or StopReason.LENGTH
        first = run.first_token_at
        return GenerationResult(
            text=run.text,
            stop_reason=reason,
            tokens_in=run.tokens_in,
            tokens_out=run.tokens_out,
            time_to_first_token_s=None if first is None else first - started,
            total_s=finished - started,
            queue_wait_s=max(0.0, started - submitted),
            reused_tokens=run.reused_tokens,
            error=None if error is None else f"{type(error).__name__}: {error}",
        )


@contextlib.contextmanager
def _prints_to_log() -> Iterator[None]:
    """What llama-cpp-python prints to sys.stderr while it loads goes to the runtime log."""
    buffer = io.StringIO()
    with contextlib.redirect_stderr(buffer):
        yield
    for line in buffer.getvalue().splitlines():
        if line.strip():
            runtime_log.debug("llama.cpp: %s", line)


@contextlib.contextmanager
def _safe_buffers() -> Iterator[None]:
    """Load without the extra buffer types where the AMX path would crash (see llamacpp_build).

    Only for a llama.cpp built with its AMX path on a CPU that has AMX (`pip install` by hand;
    `make install` never builds it): slower decoding, but an answer instead of a SIGSEGV.
    """
    info = llamacpp_build.system_info() or ""
    if not (llamacpp_build.cpu_has_amx() and llamacpp_build.amx_path_compiled(info)):
        yield
        return
    import llama_cpp.llama_cpp as low_level

    log.warning(
        "llama.cpp was built with its AMX path, which crashes on this CPU: loading without "
        "weight repacking (slower). Rebuild it for full speed: %s",
        llamacpp_build.REBUILD_HINT,
    )
    defaults = low_level.llama_model_default_params

    def without_extra_buffers() -> Any:
        params = defaults()
        params.use_extra_bufts = False
        return params

    low_level.llama_model_default_params = without_extra_buffers
    try:
        yield
    finally:
        low_level.llama_model_default_params = defaults


@functools.cache
def _route_llama_log() -> None:
    """llama.cpp's own log into ours: errors as warnings, the rest at DEBUG (`--verbose`)."""
    import ctypes

    import llama_cpp

    @llama_cpp.llama_log_callback
    def callback(level: int, text: bytes, user_data: Any) -> None:
        line = text.decode("utf-8", "replace").rstrip()
        if _is_error(level, line):
            log.warning("llama.cpp: %s", line)
        elif line:
            runtime_log.debug("llama.cpp: %s", line)

    _LOG_CALLBACKS.append(callback)  # llama.cpp keeps a pointer: the object must live on
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))


# ggml's levels moved between releases (ERROR was 3, then DEBUG was inserted as 1 and WARN became
# 3, ERROR 4): a warning such as "control-looking token ... was not control-type" came as 3 here.
# ERROR-or-WARN levels count as errors only when the line says so.
_GGML_ERROR_LEVELS = (3, 4)


def _is_error(level: int, line: str) -> bool:
    lowered = line.lower()
    return level in _GGML_ERROR_LEVELS and ("error" in lowered or "fail" in lowered)


_LOG_CALLBACKS: list[Any] = []


def _same_vocabulary(llama: Any, other: Any) -> bool:
    """Whether `other` reads text into the same tokens as `llama` (so a prompt tokenized once
    serves both), special tokens and end of text included."""
    if int(llama.n_vocab()) != int(other.n_vocab()) or llama.token_eos() != other.token_eos():
        return False
    probe = _VOCABULARY_PROBE.encode()
    return list(llama.tokenize(probe, add_bos=False, special=True)) == list(
        other.tokenize(probe, add_bos=False, special=True)
    )


def _common_prefix(first: Sequence[int], tokens: Sequence[int]) -> int:
    """How many tokens two prompts share from the start."""
    shared = 0
    for a, b in zip(first, tokens, strict=False):
        if a != b:
            break
        shared += 1
    return shared


def _answered(
    answer: llamacpp_batch.Answer, tokens_in: int, run: _Run, reused: int, *, submitted: float
) -> GenerationResult:
    """The result of one answer of a `together` call; its times count from the call's start."""
    started = run.started_at if run.started_at is not None else submitted
    ended = answer.finished_at if answer.finished_at is not None else time.monotonic()
    first = answer.first_token_at
    return GenerationResult(
        text=answer.text,
        stop_reason=answer.reason or StopReason.LENGTH,
        tokens_in=tokens_in,
        tokens_out=answer.tokens_out,
        time_to_first_token_s=None if first is None else first - started,
        total_s=max(0.0, ended - started),
        queue_wait_s=max(0.0, started - submitted),
        reused_tokens=reused,
    )


def _unstarted(tokens_in: int, reason: StopReason, submitted: float) -> GenerationResult:
    return GenerationResult(
        text="",
        stop_reason=reason,
        tokens_in=tokens_in,
        tokens_out=0,
        time_to_first_token_s=None,
        total_s=0.0,
        queue_wait_s=max(0.0, time.monotonic() - submitted),
    )


def _trained_context(metadata: dict[str, str]) -> int:
    """The context the model was trained with (GGUF `<arch>.context_length`); 0: unknown."""
    try:
        return int(metadata[f"{metadata['general.architecture']}.context_length"])
    except (KeyError, ValueError):
        return 0


def _render(template: str, messages: list[dict[str, str]], special: dict[str, str]) -> str:
    """A chat template rendered the way transformers renders it (same Jinja settings)."""
    return _compiled(template).render(messages=messages, add_generation_prompt=True, **special)


@functools.lru_cache(maxsize=8)
def _compiled(template: str) -> Any:
    """The Jinja template, compiled once: compiling costs milliseconds on every request."""
    import json

    import jinja2
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(value: Any, indent: int | None = None) -> str:
        return json.dumps(value, ensure_ascii=False, indent=indent)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env.from_string(template)
