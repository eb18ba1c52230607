"""An editing session replayed through the server as VS Code drives it.

Seeded places inside the function bodies of a real file: the rest of a line is deleted, then
typed back key by key with a person's gaps. After each key: an incremental `didChange`, then
`$/cancelRequest` for the previous inline request if it has no answer yet, then a new
`textDocument/inlineCompletion` at the cursor. A suggestion is shown when a non-empty answer
arrives before the next key.
"""

from __future__ import annotations

import ast
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.harness import RawLspClient

PAUSE_S = 1.0  # a gap this long before the next key is a pause: the user waits for a suggestion
REST_S = 0.4  # the VS Code extension's wait for a cursor to rest before starchat/prefetch
NEXT_REACH = 8  # the next line typed at a place is at most this many lines below it
HANG_S = 600.0  # only a hung server takes this long to answer (a completion behind a chat can)
COMPOUND = (
    ast.If,
    ast.For,
    ast.AsyncFor,
    ast.While,
    ast.With,
    ast.AsyncWith,
    ast.Try,
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.Match,
)


@dataclass(frozen=True)
class Edit:
    line: int  # 0-based, in the file as read
    column: int  # where the deleted rest of the line starts
    rest: str  # deleted, then typed back


@dataclass(frozen=True)
class Key:
    sent: float  # time.monotonic() just before its didChange
    msg_id: int  # its inline completion request
    next_sent: float | None  # the next key's; None: the last of its line (the user waits)
    during: bool  # sent while something else (a chat answer) was running


@dataclass(frozen=True)
class Outcome:
    shown: bool  # a non-empty suggestion arrived before the next key
    latency_s: float | None  # key to suggestion, when shown
    cached: bool  # shown faster than the debounce: the server's cache answered
    pause: bool  # not the line's last key: the line is whole again, nothing is left to suggest
    during: bool


def places(text: str, count: int, max_rest: int, seed: int) -> list[Edit]:
    """`count` seeded places: one-line statements inside function bodies (not docstrings, no
    comments), cut at a column that leaves 3 to `max_rest` characters to type."""
    lines, candidates = text.split("\n"), _candidates(text)
    rng = random.Random(seed)
    chosen = rng.sample(sorted(candidates), min(count, len(candidates)))
    return [_cut(lines, index, max_rest, rng) for index in chosen]


def next_lines(text: str, edits: list[Edit], max_rest: int, seed: int) -> list[Edit | None]:
    """For each place, the first line below it (at most NEXT_REACH lines down) that `places`
    could have picked, cut the same way, else None: the user typing on near a place, where the
    KV cache is warm."""
    lines, candidates = text.split("\n"), _candidates(text)
    rng = random.Random(seed)
    found: list[Edit | None] = []
    for edit in edits:
        below = [n for n in range(edit.line + 1, edit.line + 1 + NEXT_REACH) if n in candidates]
        found.append(_cut(lines, below[0], max_rest, rng) if below else None)
    return found


def _candidates(text: str) -> set[int]:
    lines = text.split("\n")
    return {
        node.lineno - 1
        for function in ast.walk(ast.parse(text))
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef)
        for node in ast.walk(function)
        if isinstance(node, ast.stmt) and _retypable(node, lines)
    }


def _cut(lines: list[str], index: int, max_rest: int, rng: random.Random) -> Edit:
    line = lines[index]
    rest = rng.randint(3, max(3, min(max_rest, len(line.strip()) - 1)))
    return Edit(index, len(line) - rest, line[len(line) - rest :])


def _retypable(node: ast.stmt, lines: list[str]) -> bool:
    """A simple statement alone on its line, at least 12 characters, with no comment."""
    if isinstance(node, COMPOUND) or node.lineno != node.end_lineno or _is_docstring(node):
        return False
    line = lines[node.lineno - 1]
    alone = node.col_offset == len(line) - len(line.lstrip()) and ";" not in line
    return alone and "#" not in line and len(line.strip()) >= 12


def _is_docstring(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


def gaps(count: int, seed: int) -> list[float]:
    """Seconds after each of `count` keys: mostly 80-250 ms, sometimes a hesitation
    (300-800 ms), now and then a stop to think (1-2.5 s). The first, after the deletion, is a
    look at the line (0.8-1.5 s)."""
    rng = random.Random(seed)
    found = [rng.uniform(0.8, 1.5)]
    for _ in range(count - 1):
        roll = rng.random()
        if roll < 0.03:
            found.append(rng.uniform(1.0, 2.5))
        elif roll < 0.15:
            found.append(rng.uniform(0.3, 0.8))
        else:
            found.append(rng.uniform(0.08, 0.25))
    return found


LOOK_S = (0.5, 2.0)  # the cursor rests this long at a place before the user deletes there


def look(seed: int, between: tuple[float, float] = LOOK_S) -> float:
    """Seconds the cursor rests at a place before the user deletes there (seeded)."""
    return random.Random(seed).uniform(*between)


def utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


class Typist:
    """One open document, edited key by key as VS Code sends it."""

    def __init__(
        self, client: RawLspClient, uri: str, text: str, looks: tuple[float, float] = LOOK_S
    ) -> None:
        self.client = client
        self.looks = looks
        self.uri = uri
        self.lines = text.split("\n")
        self.version = 1
        client.open(uri, text, self.version)

    def retype(self, edit: Edit, seed: int, busy: Callable[[], bool] = lambda: False) -> list[Key]:
        """The cursor comes to the place and rests there (`look`), as the VS Code extension says
        with starchat/prefetch; then the rest of the line is deleted and typed back, every key's
        request answered."""
        line = self.lines[edit.line]
        assert line[edit.column :] == edit.rest, (line, edit)
        head = line[: edit.column]
        resting = look(seed, self.looks)
        time.sleep(REST_S)
        self.client.notify(
            "starchat/prefetch",
            {
                "textDocument": {"uri": self.uri},
                "position": {"line": edit.line, "character": utf16(head)},
            },
        )
        time.sleep(resting - REST_S)
        steps = [("", "")] + [
            (edit.rest[:n], edit.rest[n - 1]) for n in range(1, 1 + len(edit.rest))
        ]
        waits = gaps(len(steps), seed)
        sent: list[tuple[float, int, bool]] = []
        due = time.monotonic()
        for number, ((typed, change), wait) in enumerate(zip(steps, waits, strict=True)):
            time.sleep(max(0.0, due - time.monotonic()))
            during, at = busy(), time.monotonic()
            if number == 0:  # the deletion: from the cut to the line's end
                self._change(edit.line, utf16(head), utf16(line), "")
            else:
                column = utf16(head + typed[:-1])
                self._change(edit.line, column, column, change)
            if sent and sent[-1][1] not in self.client.replies:
                self.client.notify("$/cancelRequest", {"id": sent[-1][1]})
            sent.append((at, self._ask(edit.line, utf16(head + typed)), during))
            due = at + wait
        keys = [
            Key(at, msg_id, sent[n + 1][0] if n + 1 < len(sent) else None, during)
            for n, (at, msg_id, during) in enumerate(sent)
        ]
        for key in keys:
            self.client.reply(key.msg_id, HANG_S)
        return keys

    def _change(self, line: int, start: int, end: int, text: str) -> None:
        self.version += 1
        where = {
            "start": {"line": line, "character": start},
            "end": {"line": line, "character": end},
        }
        self.client.notify(
            "textDocument/didChange",
            {
                "textDocument": {"uri": self.uri, "version": self.version},
                "contentChanges": [{"range": where, "text": text}],
            },
        )

    def _ask(self, line: int, character: int) -> int:
        return self.client.send_request(
            "textDocument/inlineCompletion",
            {
                "textDocument": {"uri": self.uri},
                "position": {"line": line, "character": character},
                "context": {"triggerKind": 2},  # automatic: as the editor asks while typing
            },
        )


def outcomes(client: RawLspClient, keys: list[Key], debounce_s: float) -> list[Outcome]:
    found = []
    for key in keys:
        reply: dict[str, Any] = client.replies[key.msg_id]
        arrived = client.reply_times[key.msg_id]
        items = reply.get("result") or []
        in_time = key.next_sent is None or arrived < key.next_sent
        shown = bool(items) and bool(items[0].get("insertText")) and in_time
        latency = arrived - key.sent
        found.append(
            Outcome(
                shown=shown,
                latency_s=latency if shown else None,
                # the model's path waits the debounce first; the cache answers at once
                cached=shown and latency < debounce_s,
                pause=key.next_sent is not None and key.next_sent - key.sent >= PAUSE_S,
                during=key.during,
            )
        )
    return found
