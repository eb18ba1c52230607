"""Hostile LSP input through the real server process: thousands of generated messages, none of
which may kill it, leave a request unanswered, or stop it answering a normal request afterwards.

The messages (hypothesis): bodies that are not JSON (binary, NUL bytes, cut off), JSON that is
no request, wrong types in every field, unknown methods, ranges outside the document or
reversed, positions inside a UTF-16 surrogate pair, text with lone surrogates and NUL bytes,
requests for documents never opened; and, as fixed scenarios, a 5 MB document and thousands of
didChange in one burst. A few requests run the tiny model (4 tokens) so the model paths are
fuzzed too.

The quick form (the normal test run) sends about 2,000 generated messages; the full run is
`STARCHAT_FUZZ_MESSAGES=10000 .venv/bin/pytest tests/test_reliability_fuzz.py -s`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raw_lsp import SERVER, RawLspClient, ServerGone, log_tail, rss_bytes, stop

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads the server's state from /proc"
)

MESSAGES = int(os.environ.get("STARCHAT_FUZZ_MESSAGES", "2000"))
REPLY_TIMEOUT_S = 60.0  # a model request waits behind the ones before it
INTERNAL_ERROR_LOG = "unexpected error in a request"  # features/errors.py: a handler's bug

URIS = [f"file:///fuzz/doc{n}.py" for n in range(4)] + ["file:///fuzz/never-opened.py"]
MODEL_URI = URIS[0]  # opened first and never closed: the model requests' document
CODE = '''import math


def total(values):
    """Add up the values: 😀 is two UTF-16 units."""
    result = 0
    for index in range(len(values) - 1):
        result += values[index]
    return result
'''
MODEL_METHODS = ["starchat/explain", "starchat/fix", "starchat/feedback", "starchat/chat"]
CHEAP_METHODS = [
    "textDocument/codeAction",
    "starchat/status",
    "textDocument/hover",  # not offered: MethodNotFound
    "textDocument/definition",
    "workspace/executeCommand",
]


# -- the generated messages ----------------------------------------------------------------


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
# Lone surrogates reach the server as JSON escapes ("\ud83d"): Python strings that UTF-8 refuses.
HOSTILE_TEXT = st.text(
    alphabet=st.characters(codec=None, categories=None)
    | st.sampled_from("\x00\ud83d\ude00😀\r\n\t"),
    max_size=60,
)
NUMBERS = st.integers(0, 12) | st.sampled_from([-1, 2**31 - 1, 2**31, 2**53, 10**6])
# Line 4 holds "😀" at UTF-16 units 26-27: character 27 is inside its surrogate pair.
EMOJI_LINE = 4
EMOJI_UNIT = len(CODE.split("\n")[EMOJI_LINE].partition("😀")[0].encode("utf-16-le")) // 2
assert EMOJI_UNIT == 26
POSITIONS = st.fixed_dictionaries({"line": NUMBERS, "character": NUMBERS}) | st.sampled_from(
    [
        {"line": EMOJI_LINE, "character": EMOJI_UNIT + 1},  # between the two halves
        {"line": EMOJI_LINE, "character": EMOJI_UNIT + 2},
        {"line": 99, "character": 0},
    ]
)
RANGES = st.fixed_dictionaries({"start": POSITIONS, "end": POSITIONS})  # reversed ones too
IN_ORDER = st.lists(st.tuples(st.integers(0, 12), st.integers(0, 50)), min_size=2, max_size=2).map(
    lambda ends: {
        name: {"line": line, "character": column}
        for name, (line, column) in zip(("start", "end"), sorted(ends), strict=True)
    }
)


def maybe_broken(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the well-formed value, sometimes random JSON in its place."""
    return st.one_of(good, good, good, JSON_VALUES)


@st.composite
def params_for(draw: st.DrawFn, method: str) -> Any:
    uri = draw(maybe_broken(st.sampled_from(URIS)))
    document = maybe_broken(st.fixed_dictionaries({"uri": st.just(uri)}))
    if method == "textDocument/codeAction":
        context = st.fixed_dictionaries(
            {"diagnostics": maybe_broken(st.just([]))},
            optional={"only": maybe_broken(st.lists(st.sampled_from(["quickfix", "refactor"])))},
        )
        good = st.fixed_dictionaries(
            {"textDocument": document, "range": maybe_broken(RANGES), "context": context}
        )
    elif method == "starchat/chat":
        message = st.fixed_dictionaries(
            {"role": maybe_broken(st.sampled_from(["user", "assistant", "system"]))},
            optional={"content": maybe_broken(HOSTILE_TEXT)},
        )
        good = st.fixed_dictionaries({"messages": maybe_broken(st.lists(message, max_size=3))})
    elif method in MODEL_METHODS:
        good = st.fixed_dictionaries(
            {"textDocument": document, "range": maybe_broken(RANGES)},
            optional={"note": maybe_broken(HOSTILE_TEXT)},
        )
    elif method in ("textDocument/completion", "textDocument/inlineCompletion"):
        good = st.fixed_dictionaries(
            {"textDocument": document, "position": maybe_broken(POSITIONS)},
            optional={"context": JSON_VALUES},
        )
    else:
        good = st.fixed_dictionaries({"textDocument": document})
    return draw(maybe_broken(good))


@st.composite
def change_params(draw: st.DrawFn) -> Any:
    partial = st.fixed_dictionaries({"range": maybe_broken(RANGES), "text": HOSTILE_TEXT})
    whole = st.fixed_dictionaries({"text": HOSTILE_TEXT})
    changes = st.lists(maybe_broken(partial | whole), max_size=4)
    version = maybe_broken(st.integers(-5, 10**6))
    document = st.fixed_dictionaries({"uri": st.sampled_from(URIS), "version": version})
    return draw(
        maybe_broken(
            st.fixed_dictionaries(
                {"textDocument": document, "contentChanges": maybe_broken(changes)}
            )
        )
    )


@st.composite
def open_params(draw: st.DrawFn) -> Any:
    text = draw(st.sampled_from([CODE, ""]) | st.builds(lambda t: CODE + t, HOSTILE_TEXT))
    document = {
        "uri": draw(st.sampled_from(URIS[:-1])),  # never-opened.py stays unopened
        "languageId": draw(st.sampled_from(["python", "rust", "", "no-such-language"])),
        "version": draw(st.integers(0, 5)),
        "text": text,
    }
    return draw(maybe_broken(st.just({"textDocument": document})))


RAW_BODIES = st.one_of(
    st.binary(max_size=64),  # not JSON, not even UTF-8, NUL bytes
    st.builds(lambda v: json.dumps(v).encode(), JSON_VALUES),  # JSON, but not a message
    st.builds(lambda b: b'{"jsonrpc": "2.0", "id": 1, "method": "' + b, st.binary(max_size=8)),
    st.sampled_from([b"", b"null", b"[]", b"\x00" * 16, b"[" * 5000, b'{"jsonrpc": "2.0"}']),
)


@dataclass(frozen=True)
class Message:
    kind: str  # request | notify | raw
    method: str = ""
    params: Any = None
    body: bytes = b""


def requests(methods: list[str]) -> st.SearchStrategy[Message]:
    return st.sampled_from(methods).flatmap(
        lambda method: st.builds(Message, st.just("request"), st.just(method), params_for(method))
    )


MESSAGE = st.one_of(
    requests(CHEAP_METHODS),
    requests(CHEAP_METHODS),
    requests(["textDocument/completion", "textDocument/inlineCompletion"]),
    st.builds(Message, st.just("request"), HOSTILE_TEXT, JSON_VALUES),  # unknown methods
    st.builds(Message, st.just("notify"), st.just("textDocument/didChange"), change_params()),
    st.builds(Message, st.just("notify"), st.just("textDocument/didChange"), change_params()),
    st.builds(Message, st.just("notify"), st.just("textDocument/didOpen"), open_params()),
    st.builds(
        Message,
        st.just("notify"),
        st.just("textDocument/didClose"),
        st.fixed_dictionaries(
            {"textDocument": st.fixed_dictionaries({"uri": st.sampled_from(URIS[1:])})}
        ),
    ),
    st.builds(
        Message,
        st.just("notify"),
        st.sampled_from(["$/cancelRequest", "$/setTrace", "no/suchNotification"]),
        JSON_VALUES,
    ),
    st.builds(Message, st.just("raw"), body=RAW_BODIES),
)
# Well-formed model requests on whatever the fuzzed documents hold now (lone surrogates, NUL).
MODEL_REQUEST = st.builds(
    Message,
    st.just("request"),
    st.sampled_from(MODEL_METHODS[:3]),
    st.fixed_dictionaries({"textDocument": st.just({"uri": MODEL_URI}), "range": IN_ORDER}),
)
CHAT_REQUEST = st.builds(
    Message,
    st.just("request"),
    st.just("starchat/chat"),
    st.fixed_dictionaries(
        {
            "messages": st.tuples(
                st.fixed_dictionaries({"role": st.just("user"), "content": HOSTILE_TEXT})
            )
        }
    ),
)
# One message in ~20 asks the model: enough to fuzz its paths, few enough to stay quick.
MESSAGES_WITH_MODEL = st.one_of(
    *([MESSAGE] * 37), requests(MODEL_METHODS), MODEL_REQUEST, CHAT_REQUEST
)


# -- the server ------------------------------------------------------------------------------


class CountingClient(RawLspClient):
    """Also counts the replies whose id is null (answers to bodies it could not read)."""

    def __init__(self, *args: Any) -> None:
        self.null_id_replies = 0
        super().__init__(*args)

    def _file(self, message: dict[str, Any], arrived: float) -> None:
        if "method" not in message and message.get("id") is None:
            self.null_id_replies += 1
        super()._file(message, arrived)

    def send_raw(self, body: bytes) -> None:
        with self._write_lock:
            self._write(b"Content-Length: %d\r\n\r\n" % len(body) + body)


@dataclass
class Fuzzed:
    proc: Any
    client: CountingClient
    stderr_path: Path
    model: Path
    sent: int = 0
    request_ids: list[int] = field(default_factory=list)
    methods: dict[int, str] = field(default_factory=dict)  # request id -> method

    def send(self, message: Message) -> None:
        if message.kind == "raw":
            self.client.send_raw(message.body)
        elif message.kind == "notify":
            self.client.notify(message.method, message.params)
        else:
            msg_id = self.client.send_request(message.method, message.params)
            self.request_ids.append(msg_id)
            self.methods[msg_id] = message.method
        self.sent += 1

    def await_replies(self) -> None:
        """Every request sent so far has its reply, and the process lives."""
        for msg_id in self.request_ids:
            try:
                reply = self.client.reply(msg_id, timeout=REPLY_TIMEOUT_S)
            except (TimeoutError, ServerGone) as error:
                raise AssertionError(f"{error}{log_tail(self.stderr_path)}") from None
            assert ("result" in reply) != ("error" in reply), reply
            if "error" in reply:
                text = reply["error"]["message"]
                assert isinstance(reply["error"]["code"], int), reply
                assert "Traceback" not in text and len(text) <= 300, reply
        self.request_ids.clear()
        assert self.proc.poll() is None, f"the server died{log_tail(self.stderr_path)}"

    def initialize_params(self, max_new_tokens: int = 4) -> dict[str, Any]:
        return {
            "model": {"name": str(self.model), "dtype": "float32"},
            "generation": {"max_new_tokens": max_new_tokens},
            "completion": {"debounce_ms": 0, "max_new_tokens": 2},
        }


@pytest.fixture
def fuzzed(tmp_path: Path, tiny_chatml_model: Path) -> Iterator[Fuzzed]:
    stderr_path = tmp_path / "server.stderr"
    # An empty model cache: a setting fuzzed back to the default model fails fast, loads nothing.
    env = dict(os.environ, HF_HUB_OFFLINE="1", STARCHAT_LSP_CACHE=str(tmp_path / "cache"))
    with stderr_path.open("wb") as stderr:
        proc = subprocess.Popen(
            SERVER, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, env=env
        )
    assert proc.stdin is not None and proc.stdout is not None
    stdin = proc.stdin

    def write(data: bytes) -> None:
        stdin.write(data)
        stdin.flush()

    client = CountingClient(proc.stdout, write)
    state = Fuzzed(proc, client, stderr_path, tiny_chatml_model)
    try:
        client.initialize({"initializationOptions": state.initialize_params()})
        client.open(MODEL_URI, CODE)
        yield state
        client.shutdown_and_exit()
        assert proc.wait(timeout=10) == 0, log_tail(stderr_path)
    finally:
        stop(proc)


def answers_normally(state: Fuzzed) -> dict[str, Any]:
    """After the fuzzing: a fresh document gets its actions, and the model a whole answer."""
    client = state.client
    client.notify("workspace/didChangeConfiguration", {"settings": state.initialize_params()})
    uri = "file:///fuzz/after.py"
    client.open(uri, CODE)
    whole = {"start": {"line": 3, "character": 0}, "end": {"line": 8, "character": 0}}
    actions = client.request(
        "textDocument/codeAction",
        {"textDocument": {"uri": uri}, "range": whole, "context": {"diagnostics": []}},
    )
    assert actions and actions[0]["title"] == "Ask starchat for feedback on this code", actions
    answer: dict[str, Any] = client.request(
        "starchat/explain", {"textDocument": {"uri": uri}, "range": whole}, timeout=REPLY_TIMEOUT_S
    )
    assert answer["usage"]["tokens_out"] == 4, answer["usage"]
    return answer


def test_thousands_of_hostile_messages_leave_the_server_answering(fuzzed: Fuzzed) -> None:
    deadline = time.monotonic() + REPLY_TIMEOUT_S
    while fuzzed.client.request("starchat/status", None)["state"] != "ready":
        assert time.monotonic() < deadline, log_tail(fuzzed.stderr_path)
        time.sleep(0.1)
    started = time.monotonic()
    rss_before = rss_bytes(fuzzed.proc.pid)  # the model loaded

    @settings(
        max_examples=max(1, MESSAGES // 5),  # batches average under 10 messages
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(batch=st.lists(MESSAGES_WITH_MODEL, min_size=1, max_size=19))
    def each_batch_is_survived(batch: list[Message]) -> None:
        if fuzzed.sent >= MESSAGES:
            return  # enough: the remaining examples only cost their drawing
        for message in batch:
            fuzzed.send(message)
        fuzzed.await_replies()

    while fuzzed.sent < MESSAGES:
        each_batch_is_survived()
    fuzz_s = time.monotonic() - started
    model_runs = fuzzed.client.request("starchat/status", None)["generations"]
    answer = answers_normally(fuzzed)
    log = fuzzed.stderr_path.read_text(errors="replace")
    replies = list(fuzzed.client.replies.values())
    codes = Counter(r["error"]["code"] if "error" in r else "result" for r in replies)
    model_answers = Counter(
        f"{fuzzed.methods[r['id']]} {r['error']['code'] if 'error' in r else 'result'}"
        for r in replies
        if fuzzed.methods.get(r.get("id"), "") in MODEL_METHODS
    )
    print(
        f"\n{fuzzed.sent} fuzzed messages in {fuzz_s:.1f} s; {len(replies)} requests answered "
        f"({dict(codes.most_common())}), "
        f"{fuzzed.client.null_id_replies} replies with id null; {model_runs} model runs "
        f"({dict(model_answers.most_common())}); RSS "
        f"{rss_before / 2**20:.0f} -> {rss_bytes(fuzzed.proc.pid) / 2**20:.0f} MB; "
        f"server log {len(log.splitlines())} lines; then: {answer['usage']}"
    )
    assert INTERNAL_ERROR_LOG not in log, log_tail(fuzzed.stderr_path)
    assert "Traceback" not in log, log_tail(fuzzed.stderr_path)


def test_a_5_mb_document_and_a_burst_of_didchange(fuzzed: Fuzzed) -> None:
    client = fuzzed.client
    big_uri = "file:///fuzz/big.py"
    big = CODE * (5 * 2**20 // len(CODE.encode()) + 1)  # 5 MB of Python, emoji included
    assert len(big.encode()) >= 5 * 2**20
    started = time.monotonic()
    client.open(big_uri, big)
    lines = big.count("\n")
    far = {"start": {"line": lines - 5, "character": 0}, "end": {"line": lines, "character": 0}}
    actions = client.request(
        "textDocument/codeAction",
        {"textDocument": {"uri": big_uri}, "range": far, "context": {"diagnostics": []}},
        timeout=REPLY_TIMEOUT_S,
    )
    assert actions, actions
    # The model on a 5 MB document: the prompt budget trims it to what fits.
    answer = client.request(
        "starchat/explain", {"textDocument": {"uri": big_uri}, "range": far}, timeout=120
    )
    assert answer["usage"]["tokens_out"] == 4, answer["usage"]
    big_s = time.monotonic() - started

    # A burst: 3,000 one-character edits at the end of line 8, and some whole replacements.
    burst = 3000
    started = time.monotonic()
    for version in range(2, burst + 2):
        change: dict[str, Any] = {
            "range": {"start": {"line": 8, "character": 17}, "end": {"line": 8, "character": 17}},
            "text": "x",
        }
        if version % 1000 == 0:
            change = {"text": CODE}  # the whole document again
        client.notify(
            "textDocument/didChange",
            {"textDocument": {"uri": URIS[0], "version": version}, "contentChanges": [change]},
        )
        fuzzed.sent += 1
    status = client.request("starchat/status", None, timeout=REPLY_TIMEOUT_S)
    burst_s = time.monotonic() - started
    assert status["syntax"]["incremental_parses"] >= burst - 3, status
    # 1,001 "x" after the last whole replacement at version 3000 (and 2..3001 in all).
    whole = {"start": {"line": 8, "character": 0}, "end": {"line": 9, "character": 0}}
    actions = client.request(
        "textDocument/codeAction",
        {"textDocument": {"uri": URIS[0]}, "range": whole, "context": {"diagnostics": []}},
    )
    assert actions, actions
    print(
        f"\n5 MB document: open + code actions + explain in {big_s:.1f} s; "
        f"{burst} didChange then status in {burst_s:.1f} s; RSS "
        f"{rss_bytes(fuzzed.proc.pid) / 2**20:.0f} MB"
    )
    fuzzed.client.notify("textDocument/didClose", {"textDocument": {"uri": big_uri}})
    answers_normally(fuzzed)


def test_lone_surrogates_reach_the_model_as_replacement_characters(fuzzed: Fuzzed) -> None:
    """JSON may carry half an emoji ("\\ud83d"); it used to fail the tokenizer (-32803)."""
    client = fuzzed.client
    uri = "file:///fuzz/half-emoji.py"
    client.open(uri, "def f():\n    return '\ud83d'  # \ude00\n")
    lines = {"start": {"line": 0, "character": 0}, "end": {"line": 2, "character": 0}}
    explained = client.request("starchat/explain", {"textDocument": {"uri": uri}, "range": lines})
    assert explained["usage"]["tokens_out"] == 4, explained
    chat = client.request("starchat/chat", {"messages": [{"role": "user", "content": "a\ud83d"}]})
    assert chat["usage"]["tokens_out"] == 4, chat
    log = fuzzed.stderr_path.read_text(errors="replace")
    assert INTERNAL_ERROR_LOG not in log and "Traceback" not in log, log_tail(fuzzed.stderr_path)


def test_positions_inside_a_surrogate_pair_are_answered(fuzzed: Fuzzed) -> None:
    """An editor bug (or a hostile client) points between the two halves of "😀"."""
    client = fuzzed.client
    inside = {"line": EMOJI_LINE, "character": EMOJI_UNIT + 1}
    document = {"uri": MODEL_URI}
    span = {"start": inside, "end": {"line": EMOJI_LINE + 1, "character": 0}}
    client.request(
        "textDocument/codeAction",
        {"textDocument": document, "range": span, "context": {"diagnostics": []}},
    )
    explained = client.request("starchat/explain", {"textDocument": document, "range": span})
    assert explained["usage"]["tokens_out"] == 4, explained
    client.request("textDocument/completion", {"textDocument": document, "position": inside})
    client.notify(
        "textDocument/didChange",
        {
            "textDocument": {"uri": MODEL_URI, "version": 2},
            "contentChanges": [{"range": {"start": inside, "end": inside}, "text": "x"}],
        },
    )
    status = client.request("starchat/status", None)
    assert status["state"] == "ready", status
    log = fuzzed.stderr_path.read_text(errors="replace")
    assert INTERNAL_ERROR_LOG not in log and "Traceback" not in log, log_tail(fuzzed.stderr_path)
