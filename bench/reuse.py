"""5. Reuse of the KV cache of a shared prefix: a follow-up chat turn on a long conversation, and
a completion after typing a few characters, with the engine's reuse on and off."""

from __future__ import annotations

from typing import Any

from bench.harness import EXAMPLE, Bench
from bench.results_model import Row, Section
from bench.stats import Spread, ratio
from starchat_lsp.engine.base import ChatMessage, CompletionPrompt

TARGET = 2.0  # at least twice as fast to the first token


def conversation(engine: Any, tokens: int) -> list[ChatMessage]:
    """A conversation about code, grown turn by turn to about `tokens` tokens of `engine`'s
    rendered prompt (any in-process engine: it needs `render_chat`)."""
    messages = [ChatMessage("user", f"Here is my code:\n```python\n{EXAMPLE}```\nWhat does it do?")]
    turn = 0
    while engine.count_tokens(engine.render_chat(messages)) < tokens:
        turn += 1
        messages.append(
            ChatMessage(
                "assistant",
                f"Part {turn}: moving_average slides a window of `window` values over `values` "
                "and averages each window; the loop bound decides how many windows there are. "
                + EXAMPLE,
            )
        )
        messages.append(ChatMessage("user", f"Thanks. Tell me more about part {turn}."))
    return messages


def _ttft(bench: Bench, reuse: bool, first: object, second: object) -> float:
    """Run `first`, then time the first token of `second` (with or without reuse)."""
    engine = bench.engine(reuse_prefix=reuse)
    settings = bench.settings(4)
    for prompt in (first, second):
        if isinstance(prompt, CompletionPrompt):
            result = engine.complete(prompt, settings).finish()
        else:
            assert isinstance(prompt, list)
            result = engine.chat(prompt, settings).finish()
    if reuse:
        assert result.reused_tokens > 0, "the engine did not reuse the prefix"
    assert result.time_to_first_token_s is not None
    return result.time_to_first_token_s + result.queue_wait_s


def _compare(bench: Bench, section: Section, measure: str, first: object, second: object) -> None:
    cold, warm = [], []
    for _ in range(bench.options.runs):
        cold.append(_ttft(bench, False, first, second))
        warm.append(_ttft(bench, True, first, second))
    cold_s, warm_s = Spread.of(cold), Spread.of(warm)
    speedup = ratio(cold_s.median, warm_s.median)
    section.add(
        Row(
            f"{measure}: first token, reuse on vs off",
            warm_s.show(),
            cold_s.show(),
            ratio(warm_s.median, cold_s.median),
            f"{TARGET:.0f}x faster or more",
            speedup >= TARGET,
        )
    )
    section.series[measure] = speedup


def run(bench: Bench) -> Section:
    section = Section("reuse", "5. Reuse of the shared prefix's KV cache")
    size = 300 if bench.options.quick else 1500
    engine = bench.engine()
    history = conversation(engine, size)
    follow_up = [
        *history,
        ChatMessage("assistant", "It averages windows."),
        ChatMessage("user", "Is the loop bound right?"),
    ]
    tokens = engine.count_tokens(engine.render_chat(history))
    _compare(bench, section, f"follow-up turn on a {tokens}-token conversation", history, follow_up)
    code = EXAMPLE * (3 if bench.options.quick else 8)
    typed = CompletionPrompt(prefix=code + "\ndef moving_med")
    before = CompletionPrompt(prefix=code + "\ndef mov")
    _compare(
        bench,
        section,
        f"completion after typing 4 characters ({engine.count_tokens(typed.prefix)}-token prefix)",
        before,
        typed,
    )
    section.notes.append(
        "first token timed from the request reaching the model worker; each pair runs the "
        "first prompt, then the second, with the same engine and reuse on or off"
    )
    return section
