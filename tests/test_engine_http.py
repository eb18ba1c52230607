"""The HTTP backend against a local fault server that the tests script: good answers, refused
connections, 401/404/429/500/503, a stream cut midway, a stall before the first token, slow
streams to cancel, and the concurrency bound; then a cut answer through the real LSP server.
"""

from __future__ import annotations

import http.server
import json
import logging
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
import pytest_lsp
from pygls.exceptions import JsonRpcException

from lsp_client import StarchatTestClient
from starchat_lsp.engine import http_engine
from starchat_lsp.engine.base import (
    Ask,
    CancelFlag,
    ChatMessage,
    CompletionPrompt,
    GenerationSettings,
    StopReason,
)
from starchat_lsp.engine.factory import EngineSettings, HttpEngineSettings, create_engine
from starchat_lsp.engine.http_engine import HttpEngine, estimate_tokens, render_starchat
from starchat_lsp.errors import EngineError, ModelLoadError
from starchat_lsp.models.catalogue import DEFAULT_MODEL
from test_server import CONFIG, URI, open_buggy, request, start, whole

KEY_ENV = "STARCHAT_TEST_HTTP_KEY"
KEY = "sk-test-very-secret-4711"
ASK = [ChatMessage("user", "What is wrong with my loop?")]
GREEDY = GenerationSettings(max_new_tokens=64)


@dataclass
class Plan:
    """What the fault server does for one POST."""

    mode: str = "good"  # good | status | cut | clean_cut | stall | error_event
    tokens: tuple[str, ...] = ("The ", "loop ", "stops ", "one ", "early.")
    status: int = 200
    body: Any = None  # the error body for `status`
    delay_s: float = 0.0  # between events
    finish: str = "stop"
    headers: dict[str, str] = field(default_factory=dict)
    echo: bool = False  # the tokens say which request they answer: "<last message> seed=<seed>"
    head_delay_s: float = 0.0  # before the response's headers


class FaultServer:
    """An OpenAI-style (and TGI-style) SSE server in a thread, scripted per request."""

    def __init__(self) -> None:
        self.plans: list[Plan] = []  # consumed one per POST; the default plan when empty
        self.default = Plan()
        self.requests: list[dict[str, Any]] = []  # {"path", "body", "headers"}
        self.in_flight = 0
        self.max_in_flight = 0
        self.disconnected_at: float | None = None
        self.missing: set[str] = set()  # GET paths that answer 404
        self.released = threading.Event()
        self._lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                server.record(self, None)
                if self.path in server.missing:
                    self.send_json(404, {"detail": "Not Found"})
                elif self.path == "/health":
                    self.send_json(200, {})
                elif self.path == "/v1/models":
                    self.send_json(200, {"object": "list", "data": [{"id": "served-model"}]})
                elif self.path == "/info":
                    self.send_json(200, {"model_id": "served-model"})
                else:
                    self.send_json(404, {"error": "no such path"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                server.record(self, body)
                plan = server.next_plan()
                with server._lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    self.answer(plan, body)
                except (BrokenPipeError, ConnectionResetError):
                    server.disconnected_at = time.monotonic()
                    self.close_connection = True
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def answer(self, plan: Plan, body: dict[str, Any]) -> None:
                time.sleep(plan.head_delay_s)
                if plan.mode == "status":
                    self.send_json(plan.status, plan.body, plan.headers)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.wfile.flush()
                if plan.mode == "stall":
                    server.released.wait(10)
                    self.close_connection = True
                    return
                tgi = self.path == "/generate_stream"
                chat = self.path == "/v1/chat/completions"
                limit = body.get("max_tokens") or body.get("parameters", {}).get("max_new_tokens")
                tokens = plan.tokens[:limit]
                if plan.echo:
                    tokens = (body["messages"][-1]["content"], f" seed={body.get('seed')}")
                finish = "length" if limit is not None and limit < len(plan.tokens) else plan.finish
                for index, token in enumerate(tokens):
                    if plan.mode in ("cut", "clean_cut") and index == 3:
                        break
                    if plan.mode == "error_event" and index == 2:
                        self.event({"error": {"message": f"out of memory {body.get('model')}"}})
                        break
                    last = index == len(tokens) - 1
                    if tgi:
                        event: dict[str, Any] = {
                            "token": {"id": index, "text": token, "special": False},
                            "generated_text": None,
                            "details": None,
                        }
                        if last:
                            tgi_finish = {"stop": "eos_token"}.get(finish, finish)
                            event["details"] = {
                                "finish_reason": tgi_finish,
                                "generated_tokens": len(tokens),
                            }
                    elif chat:
                        event = {
                            "choices": [
                                {
                                    "index": 0,
                                    "delta": {"content": token},
                                    "finish_reason": finish if last else None,
                                }
                            ]
                        }
                    else:
                        event = {
                            "choices": [
                                {
                                    "index": 0,
                                    "text": token,
                                    "finish_reason": finish if last else None,
                                }
                            ]
                        }
                    self.event(event)
                    if plan.delay_s:
                        time.sleep(plan.delay_s)
                if plan.mode == "cut":  # the socket closes without the chunked terminator
                    self.close_connection = True
                    return
                if plan.mode == "good" and not tgi:
                    usage = {"prompt_tokens": 42, "completion_tokens": len(tokens)}
                    self.event({"choices": [], "usage": usage})
                    self.chunk(b"data: [DONE]\n\n")
                self.chunk(b"")  # the chunked terminator: a clean end

            def event(self, data: dict[str, Any]) -> None:
                self.chunk(f"data: {json.dumps(data)}\n\n".encode())

            def chunk(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def send_json(
                self, status: int, payload: Any, headers: dict[str, str] | None = None
            ) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def record(self, handler: http.server.BaseHTTPRequestHandler, body: Any) -> None:
        with self._lock:
            self.requests.append(
                {
                    "path": handler.path,
                    "body": body,
                    "headers": dict(handler.headers),
                    "at": time.monotonic(),
                }
            )

    def next_plan(self) -> Plan:
        with self._lock:
            return self.plans.pop(0) if self.plans else self.default

    @property
    def posts(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["body"] is not None]

    def close(self) -> None:
        self.released.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fault() -> Iterator[FaultServer]:
    server = FaultServer()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_engine, "BACKOFF_S", 0.01)


def make_engine(url: str, **overrides: Any) -> HttpEngine:
    settings = replace(HttpEngineSettings(endpoint=url, connect_timeout_s=2.0), **overrides)
    return HttpEngine(settings, name="team-model")


@pytest.fixture
def engine(fault: FaultServer) -> Iterator[HttpEngine]:
    engine = make_engine(fault.url)
    yield engine
    engine.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def failure(engine: HttpEngine, messages: list[ChatMessage] = ASK) -> tuple[str, Any]:
    stream = engine.chat(messages, GREEDY)
    with pytest.raises(EngineError) as caught:
        stream.finish()
    return str(caught.value), stream.result


# -- answers -------------------------------------------------------------------------------------


def test_factory_builds_it_and_load_finds_the_served_model(fault: FaultServer) -> None:
    engine = create_engine(
        EngineSettings(backend="http", http=HttpEngineSettings(endpoint=fault.url))
    )
    assert isinstance(engine, HttpEngine) and engine.name == DEFAULT_MODEL
    progress: list[str] = []
    engine.load(progress.append)
    engine.load()  # once only
    assert [r["path"] for r in fault.requests] == ["/v1/models"]
    assert progress == [f"connecting to {fault.url}"]
    assert engine.model == "served-model"  # no http.model and one model served: that one
    assert engine.context_window == 4096 and engine.fill_in_middle is False
    engine.close()


def test_a_server_without_a_model_list_is_checked_by_its_health(fault: FaultServer) -> None:
    fault.missing = {"/v1/models"}
    engine = make_engine(fault.url)
    engine.load()
    assert [r["path"] for r in fault.requests] == ["/v1/models", "/health"]
    engine.close()
    fault.missing = {"/v1/models", "/health"}
    engine = make_engine(fault.url + "/v1/")  # the OpenAI base URL pasted: /v1 is dropped
    with pytest.raises(ModelLoadError) as caught:
        engine.load()
    assert f"{fault.url}/v1/models answered 404 (not found): Not Found" in str(caught.value)
    assert "http.endpoint" in str(caught.value)
    engine.close()


def test_a_model_the_server_does_not_serve_is_named(fault: FaultServer) -> None:
    engine = make_engine(fault.url, model="other-model")
    with pytest.raises(ModelLoadError, match=r"does not serve 'other-model'.*served-model"):
        engine.load()
    engine.close()


def test_chat_streams_text_with_usage_and_timings(engine: HttpEngine, fault: FaultServer) -> None:
    fault.default = Plan(delay_s=0.02)
    stream = engine.chat(ASK, GREEDY)
    chunks = list(stream)
    result = stream.result
    assert chunks == ["The ", "loop ", "stops ", "one ", "early."]
    assert result.text == "The loop stops one early."
    assert result.stop_reason is StopReason.EOS
    assert (result.tokens_in, result.tokens_out) == (42, 5)  # the server's usage
    assert result.time_to_first_token_s is not None and result.time_to_first_token_s > 0
    assert result.total_s >= 4 * 0.02 and result.tokens_per_s > 0
    body = fault.posts[0]["body"]
    assert fault.posts[0]["path"] == "/v1/chat/completions"
    assert body["messages"] == [{"role": "user", "content": "What is wrong with my loop?"}]
    assert body["stream"] is True and body["temperature"] == 0.0 and body["max_tokens"] == 64
    assert "Authorization" not in fault.posts[0]["headers"]


def test_complete_sends_the_prefix_and_max_tokens_gives_length(
    engine: HttpEngine, fault: FaultServer
) -> None:
    stream = engine.complete(
        CompletionPrompt(prefix="def add(a, b):\n", suffix="\n"), replace(GREEDY, max_new_tokens=2)
    )
    result = stream.finish()
    assert result.text == "The loop " and result.stop_reason is StopReason.LENGTH
    post = fault.posts[0]
    assert post["path"] == "/v1/completions"
    assert post["body"]["prompt"] == "def add(a, b):\n" and post["body"]["max_tokens"] == 2


def test_max_tokens_never_passes_the_context_window(fault: FaultServer) -> None:
    engine = make_engine(fault.url, context_window=300)
    question = "Why? " * 100
    prompt_estimate = estimate_tokens(question) + 16  # the template's markers, estimated
    assert 100 <= prompt_estimate <= 300
    engine.chat([ChatMessage("user", question)], replace(GREEDY, max_new_tokens=1000)).finish()
    assert fault.posts[0]["body"]["max_tokens"] == 300 - prompt_estimate
    engine.close()


def test_stop_strings_end_the_answer_and_are_never_shown(
    engine: HttpEngine, fault: FaultServer
) -> None:
    fault.default = Plan(tokens=("a = 1\n", "b = ", "2\n", "```", "\nmore", " text"))
    stream = engine.chat(ASK, replace(GREEDY, stop=("``",)))
    chunks = list(stream)
    assert "".join(chunks) == "a = 1\nb = 2\n"
    assert stream.result.stop_reason is StopReason.STOP_STRING
    assert stream.result.tokens_out == 4  # the stream was left at the stop string


def test_tgi_renders_the_starchat_prompt_and_reads_native_events(fault: FaultServer) -> None:
    engine = make_engine(fault.url, api="tgi")
    engine.load()
    assert fault.requests[0]["path"] == "/info"
    result = engine.chat(
        [ChatMessage("system", "Be brief."), *ASK], replace(GREEDY, temperature=0.0)
    ).finish()
    post = fault.posts[0]
    assert post["path"] == "/generate_stream"
    assert post["body"]["inputs"] == (
        "<|system|>\nBe brief.<|end|>\n"
        "<|user|>\nWhat is wrong with my loop?<|end|>\n<|assistant|>\n"
    )
    assert post["body"]["parameters"]["do_sample"] is False
    assert "temperature" not in post["body"]["parameters"]  # TGI refuses 0
    assert result.text == "The loop stops one early." and result.stop_reason is StopReason.EOS
    assert result.tokens_out == 5
    length = engine.complete(CompletionPrompt(prefix="x = "), replace(GREEDY, max_new_tokens=3))
    assert length.finish().stop_reason is StopReason.LENGTH
    engine.close()


def test_tgi_chat_stops_at_the_starchat_end_marker(fault: FaultServer) -> None:
    engine = make_engine(fault.url, api="tgi")
    fault.default = Plan(tokens=("Fine.", "<|end|>", "\n<|user|>", "more"))
    stream = engine.chat(ASK, GREEDY)
    assert stream.finish().text == "Fine." and stream.result.stop_reason is StopReason.STOP_STRING
    engine.close()


def test_token_estimate_errs_high() -> None:
    assert estimate_tokens("") == 0
    # SmolLM2's tokenizer counts 12 tokens here, Qwen2.5-Coder's 9.
    assert estimate_tokens("def total(values):\n    return sum(values)\n") == 13
    assert estimate_tokens("12345") == 5  # numbers split into digits
    assert estimate_tokens("日本語") == 6 and estimate_tokens("é") == 1
    assert render_starchat([ChatMessage("user", "hi")]) == "<|user|>\nhi<|end|>\n<|assistant|>\n"


# -- failures ------------------------------------------------------------------------------------


def test_an_unreachable_server_is_named_with_its_url() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    engine = make_engine(url, retries=1)
    with pytest.raises(ModelLoadError) as caught:
        engine.load()
    assert f"cannot reach the model server at {url}" in str(caught.value)
    message, result = failure(engine)
    assert f"cannot reach the model server at {url}" in message and "tried 2 times" in message
    assert result.stop_reason is StopReason.ERROR and result.error == message
    assert result.text == "" and result.time_to_first_token_s is None
    engine.close()


def test_401_says_to_check_the_key_and_never_shows_it(
    fault: FaultServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv(KEY_ENV, KEY)
    engine = make_engine(fault.url, api_key_env=KEY_ENV)
    fault.plans = [Plan(mode="status", status=401, body={"error": {"message": "bad key"}})]
    message, _ = failure(engine)
    assert "refused access (401)" in message and f"check the key in ${KEY_ENV}" in message
    assert fault.posts[0]["headers"]["Authorization"] == f"Bearer {KEY}"
    assert len(fault.posts) == 1  # not retried
    # A server that echoes the key back in its error: the message shows *** instead.
    fault.plans = [Plan(mode="status", status=500, body={"error": f"bad header Bearer {KEY}"})]
    message, result = failure(engine)
    assert "failed (500)" in message and "Bearer ***" in message
    fault.plans = [Plan(mode="status", status=403, body={})]
    message, _ = failure(engine)
    assert "(403)" in message
    engine.chat(ASK, GREEDY).finish()
    engine.close()
    logged = "\n".join(r.getMessage() for r in caplog.records) + caplog.text
    assert KEY not in logged and KEY not in (result.error or "")
    assert "refused access" in logged or "failed (500)" in logged  # the failures were logged


def test_a_missing_key_variable_is_said_at_load(fault: FaultServer) -> None:
    engine = make_engine(fault.url, api_key_env="STARCHAT_NO_SUCH_VARIABLE")
    with pytest.raises(ModelLoadError, match=r"\$STARCHAT_NO_SUCH_VARIABLE, but it is not set"):
        engine.load()
    engine.close()


def test_401_without_a_key_setting_says_how_to_give_one(
    engine: HttpEngine, fault: FaultServer
) -> None:
    fault.plans = [Plan(mode="status", status=401, body={})]
    message, _ = failure(engine)
    assert "http.api_key_env" in message


def test_404_names_the_model_and_the_path(engine: HttpEngine, fault: FaultServer) -> None:
    fault.plans = [Plan(mode="status", status=404, body={"error": {"message": "model not found"}})]
    message, _ = failure(engine)
    assert f"{fault.url}/v1/chat/completions answered 404" in message
    assert "model not found" in message and "http.model ('team-model')" in message


def test_429_is_retried_with_backoff_then_reported(engine: HttpEngine, fault: FaultServer) -> None:
    fault.default = Plan(mode="status", status=429, body={"error": "slow down"})
    message, _ = failure(engine)
    assert len(fault.posts) == 3  # the first try and two retries
    assert "rate limiting (429): slow down" in message and "tried 3 times" in message


def test_503_then_an_answer_succeeds_after_retries(engine: HttpEngine, fault: FaultServer) -> None:
    fault.plans = [Plan(mode="status", status=503, body={}, headers={"Retry-After": "0"})] * 2
    result = engine.chat(ASK, GREEDY).finish()
    assert result.text == "The loop stops one early." and len(fault.posts) == 3


def test_500_is_not_retried(engine: HttpEngine, fault: FaultServer) -> None:
    fault.plans = [Plan(mode="status", status=500, body={"detail": "CUDA error"})]
    message, _ = failure(engine)
    assert message.endswith("failed (500): CUDA error") and len(fault.posts) == 1


def test_other_4xx_shows_what_the_server_said(engine: HttpEngine, fault: FaultServer) -> None:
    fault.plans = [Plan(mode="status", status=400, body={"error": {"message": "too long"}})]
    message, _ = failure(engine)
    assert "refused the request (400): too long" in message


@pytest.mark.parametrize("mode", ["cut", "clean_cut", "error_event"])
def test_a_stream_cut_midway_keeps_the_partial_answer_as_an_error(
    engine: HttpEngine, fault: FaultServer, mode: str
) -> None:
    fault.default = Plan(mode=mode)
    stream = engine.chat(ASK, GREEDY)
    seen = []
    with pytest.raises(EngineError) as caught:
        for chunk in stream:
            seen.append(chunk)
    result = stream.result
    assert result.stop_reason is StopReason.ERROR and result.error == str(caught.value)
    assert result.text == "".join(seen) and result.text.startswith("The loop ")
    assert "partial answer is kept, not applied" in result.error
    assert {"cut": "broke off", "clean_cut": "midway", "error_event": "out of memory"}[
        mode
    ] in result.error
    assert len(fault.posts) == 1  # never retried once text came


def test_no_first_token_in_time_is_an_error(fault: FaultServer) -> None:
    engine = make_engine(fault.url, first_token_timeout_s=0.3)
    fault.default = Plan(mode="stall")  # the server holds the request for 10 s
    message, result = failure(engine)
    # The engine's own deadline ended it, not the server: the request was still held then.
    assert fault.in_flight == 1
    assert "no answer from the model server" in message and "within 0.3 s" in message
    assert "http.first_token_timeout_s" in message and result.tokens_out == 0
    engine.close()


def test_the_time_limit_ends_a_slow_answer(engine: HttpEngine, fault: FaultServer) -> None:
    fault.default = Plan(tokens=tuple(f"t{i} " for i in range(100)), delay_s=0.05)
    result = engine.chat(ASK, replace(GREEDY, max_new_tokens=200, time_limit_s=0.3)).finish()
    assert result.stop_reason is StopReason.TIME and result.tokens_out < 20


# -- cancel and concurrency ----------------------------------------------------------------------


def test_cancel_mid_stream_stops_within_one_event_and_closes_the_connection(
    engine: HttpEngine, fault: FaultServer
) -> None:
    fault.default = Plan(tokens=tuple(f"t{i} " for i in range(200)), delay_s=0.1)
    flag = CancelFlag()
    stream = engine.chat(ASK, replace(GREEDY, max_new_tokens=500), cancel=flag)
    chunks = []
    read_at_cancel = []

    def cancel() -> None:  # from another thread, while the reader may be waiting for an event
        read_at_cancel.append(len(chunks))
        flag.cancel()

    for chunk in stream:
        chunks.append(chunk)
        if len(chunks) == 3:
            threading.Timer(0.01, cancel).start()
    result = stream.result
    assert result.stop_reason is StopReason.CANCELLED and result.error is None
    # Counted in events, not seconds: at most the one in flight when the cancel came.
    assert len(chunks) <= read_at_cancel[0] + 1 and result.text == "".join(chunks)
    # The server sees the connection close at its next write: long before its 200 events.
    deadline = time.monotonic() + 60  # a hang guard only
    while fault.disconnected_at is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fault.disconnected_at is not None


def test_closing_the_stream_early_cancels(engine: HttpEngine, fault: FaultServer) -> None:
    fault.default = Plan(tokens=tuple(f"t{i} " for i in range(200)), delay_s=0.05)
    stream = engine.chat(ASK, replace(GREEDY, max_new_tokens=500))
    iterator = iter(stream)
    next(iterator)
    stream.chunks.close()  # type: ignore[attr-defined]
    assert stream.result.stop_reason is StopReason.CANCELLED
    assert stream.cancel_flag.cancelled


def test_a_stream_never_read_sends_nothing(engine: HttpEngine, fault: FaultServer) -> None:
    engine.chat(ASK, GREEDY)
    time.sleep(0.1)
    assert fault.posts == []


def test_cancel_while_waiting_for_a_slot(fault: FaultServer) -> None:
    engine = make_engine(fault.url, max_concurrent=1)
    fault.default = Plan(tokens=tuple(f"t{i} " for i in range(30)), delay_s=0.05)
    first = engine.chat(ASK, GREEDY)
    first_chunks = iter(first)
    next(first_chunks)
    flag = CancelFlag()
    second = engine.chat(ASK, GREEDY, cancel=flag)
    threading.Timer(0.1, flag.cancel).start()
    result = second.finish()
    assert result.stop_reason is StopReason.CANCELLED and result.tokens_out == 0
    assert len(fault.posts) == 1
    first.cancel()
    first.finish()
    engine.close()


def test_requests_in_flight_never_pass_max_concurrent(fault: FaultServer) -> None:
    engine = make_engine(fault.url, max_concurrent=2)
    fault.default = Plan(tokens=("a", "b", "c", "d"), delay_s=0.05)
    results = []

    def ask() -> None:
        results.append(engine.chat(ASK, GREEDY).finish())

    threads = [threading.Thread(target=ask) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(results) == 5 and all(r.text == "abcd" for r in results)
    assert fault.max_in_flight == 2
    assert max(r.queue_wait_s for r in results) >= 0.1  # some waited for a slot
    engine.close()


def test_sample_sends_its_answers_at_once_each_with_its_seed(fault: FaultServer) -> None:
    engine = make_engine(fault.url, max_concurrent=4)
    fault.plans = [
        Plan(tokens=("a\n", "b"), delay_s=0.1),
        Plan(tokens=("one ", "two ", "three"), delay_s=0.1),
        Plan(mode="status", status=500, body={"error": {"message": "boom"}}),
    ]
    settings = GenerationSettings(max_new_tokens=64, temperature=0.8, seed=5, stop=("\n",))
    results = engine.sample(ASK, settings, 3)
    assert sorted(post["body"]["seed"] for post in fault.posts) == [5, 6, 7]
    assert all(post["path"] == "/v1/chat/completions" for post in fault.posts)
    assert fault.max_in_flight >= 2  # sent together, not one after another
    texts = sorted(r.text for r in results)
    reasons = sorted(r.stop_reason.value for r in results)
    assert texts == ["", "a", "one two three"]
    assert reasons == sorted(["error", "stop_string", "eos"])
    engine.close()


def test_sample_raises_only_when_every_answer_failed_and_its_limit_is_the_whole_call(
    fault: FaultServer,
) -> None:
    engine = make_engine(fault.url, max_concurrent=1)
    fault.default = Plan(tokens=tuple(f"t{i} " for i in range(200)), delay_s=0.05)
    settings = GenerationSettings(max_new_tokens=500, time_limit_s=0.5)
    started = time.monotonic()
    results = engine.sample(ASK, settings, 3)
    assert time.monotonic() - started < 3.0  # not 0.5 s per answer and more: one limit for all
    assert [r.stop_reason for r in results] == [StopReason.TIME] * 3
    assert results[0].tokens_out > 0 and results[2].tokens_out == 0  # the last never had a slot
    fault.default = Plan(mode="status", status=500, body={"error": {"message": "boom"}})
    with pytest.raises(EngineError, match="boom"):
        engine.sample(ASK, GREEDY, 2)
    engine.close()


def test_sample_cancel_stops_every_answer(fault: FaultServer) -> None:
    engine = make_engine(fault.url)
    fault.default = Plan(tokens=tuple(f"t{i} " for i in range(200)), delay_s=0.05)
    flag = CancelFlag()
    threading.Timer(0.3, flag.cancel).start()
    started = time.monotonic()
    results = engine.sample(ASK, GREEDY, 2, flag)
    assert time.monotonic() - started < 2.0
    assert [r.stop_reason for r in results] == [StopReason.CANCELLED] * 2
    engine.close()


def test_together_streams_ask_0_sent_first_and_the_others_together(fault: FaultServer) -> None:
    engine = make_engine(fault.url, max_concurrent=8)
    fault.default = Plan(echo=True, delay_s=0.1, head_delay_s=0.2)
    sampled = GenerationSettings(max_new_tokens=64, temperature=0.8, seed=5)
    asks = [
        Ask([ChatMessage("user", "A")], sampled, 2),
        Ask([ChatMessage("user", "B")], GREEDY, 1),
        Ask([ChatMessage("user", "none")], GREEDY, 0),
        Ask([ChatMessage("user", "C")], replace(sampled, seed=20), 3),
    ]
    streamed: list[tuple[str, float]] = []
    started = time.monotonic()
    answers = engine.together(asks, on_text=lambda text: streamed.append((text, time.monotonic())))
    ended = time.monotonic()
    assert [[r.text for r in answer] for answer in answers] == [
        ["A seed=5", "A seed=6"],
        ["B seed=None"],
        [],
        ["C seed=20", "C seed=21", "C seed=22"],
    ]
    assert all(r.stop_reason is StopReason.EOS for answer in answers for r in answer)
    assert [text for text, _ in streamed] == ["A", " seed=5"]  # ask 0's first answer only
    assert streamed[0][1] < ended - 0.15  # its first event came as it was sent, not at the end
    # The streamed answer reached the server first; the others once it had ended (a
    # llama-cpp-python server stops a running stream when another request comes in).
    leader, *others = fault.posts
    assert (leader["body"]["messages"][-1]["content"], leader["body"]["seed"]) == ("A", 5)
    assert min(post["at"] for post in others) >= leader["at"] + 0.3
    assert len(others) == 5 and fault.max_in_flight >= 2  # then sent together
    assert ended - started < 1.8  # not one answer after another (0.4 s each)
    engine.close()


def test_together_counts_each_time_limit_from_the_call_start(fault: FaultServer) -> None:
    engine = make_engine(fault.url, max_concurrent=1)
    fault.default = Plan(tokens=tuple(f"t{i} " for i in range(200)), delay_s=0.05)
    slow = replace(GREEDY, max_new_tokens=500)
    asks = [
        Ask(ASK, replace(slow, time_limit_s=0.5)),
        Ask(ASK, replace(slow, time_limit_s=0.3)),  # spent waiting for ask 0's slot
        Ask(ASK, replace(slow, time_limit_s=1.0)),  # has the slot from about 0.5 s to 1.0 s
    ]
    started = time.monotonic()
    answers = engine.together(asks)
    assert time.monotonic() - started < 3.0
    assert [answer[0].stop_reason for answer in answers] == [StopReason.TIME] * 3
    assert answers[0][0].tokens_out > 0 and answers[1][0].tokens_out == 0
    assert answers[1][0].text == "" and len(fault.posts) == 2  # ask 1 was never sent
    # Ask 2 ran for what was left of its second, not a second from when it had the slot.
    assert answers[2][0].tokens_out > 0 and answers[2][0].total_s < 0.8
    fault.default = Plan(mode="status", status=500, body={"error": {"message": "boom"}})
    with pytest.raises(EngineError, match="boom"):
        engine.together([Ask(ASK, GREEDY, 2), Ask(ASK, GREEDY)])
    engine.close()


def test_together_raises_as_chat_when_the_streamed_answer_fails(fault: FaultServer) -> None:
    engine = make_engine(fault.url, max_concurrent=1)  # one at a time, in order
    cut = Plan(mode="cut", tokens=("The ", "loop ", "stops ", "one "))
    slow = Plan(tokens=tuple(f"t{i} " for i in range(200)), delay_s=0.05)
    fault.plans = [Plan(), cut, Plan()]
    answers = engine.together([Ask(ASK, GREEDY, 2), Ask(ASK, GREEDY)])
    # Another answer that failed alone comes back as an error; the streamed one stands.
    assert [r.stop_reason for answer in answers for r in answer] == [
        StopReason.EOS,
        StopReason.ERROR,
        StopReason.EOS,
    ]
    assert "broke off the answer" in (answers[0][1].error or "")
    fault.requests.clear()
    fault.plans = [cut, slow, slow]
    streamed: list[str] = []
    started = time.monotonic()
    with pytest.raises(EngineError, match="broke off the answer"):
        engine.together([Ask(ASK, GREEDY, 2), Ask(ASK, GREEDY)], on_text=streamed.append)
    assert "".join(streamed) == "The loop stops "
    # The others were stopped, not left to run for nobody (10 s each): the one that had the
    # slot the failed answer left may have been sent, the last one never was.
    assert time.monotonic() - started < 2.0 and len(fault.posts) <= 2
    engine.close()


def test_together_cancel_stops_every_answer(fault: FaultServer) -> None:
    engine = make_engine(fault.url)
    fault.default = Plan(tokens=tuple(f"t{i} " for i in range(200)), delay_s=0.05)
    flag = CancelFlag()
    streamed: list[str] = []

    def cancel_after_two(text: str) -> None:
        streamed.append(text)
        if len(streamed) == 2:
            flag.cancel()

    started = time.monotonic()
    answers = engine.together([Ask(ASK, GREEDY, 2), Ask(ASK, GREEDY)], flag, cancel_after_two)
    assert time.monotonic() - started < 2.0
    assert [r.stop_reason for answer in answers for r in answer] == [StopReason.CANCELLED] * 3
    assert answers[0][0].text == "".join(streamed) and len(streamed) <= 3
    engine.close()


def test_closing_the_engine_ends_its_streams(fault: FaultServer) -> None:
    engine = make_engine(fault.url)
    fault.default = Plan(tokens=tuple(f"t{i} " for i in range(200)), delay_s=0.05)
    stream = engine.chat(ASK, replace(GREEDY, max_new_tokens=500))
    iterator = iter(stream)
    next(iterator)
    engine.close()
    with pytest.raises(EngineError, match="the HTTP engine was closed"):
        list(iterator)
    # Ended by the close, not by the server's 200 events (10 s of them).
    text = stream.result.text
    assert text.startswith("t0 ") and "t199 " not in text
    with pytest.raises(EngineError, match="closed"):
        engine.chat(ASK, GREEDY).finish()


def test_tokens_out_now_counts_live(engine: HttpEngine, fault: FaultServer) -> None:
    fault.default = Plan(delay_s=0.02)
    stream = engine.chat(ASK, GREEDY)
    iterator = iter(stream)
    next(iterator)
    assert stream.tokens_out_now() >= 1
    stream.finish()


# -- through the language server -----------------------------------------------------------------

FIXED = """def total(values):
    \"\"\"Add up the values.\"\"\"
    result = 0
    for index in range(len(values)):
        result += values[index]
    return result
"""
FIX_ANSWER = ("The range stops one early.\n\n", "```python\n", *FIXED.splitlines(True), "```\n")


@pytest.fixture(scope="module")
def lsp_fault() -> Iterator[FaultServer]:
    server = FaultServer()
    yield server
    server.close()


@pytest_lsp.fixture(config=CONFIG)
async def http_client(lsp_client: StarchatTestClient, lsp_fault: FaultServer) -> Any:
    await start(
        lsp_client,
        {
            "model": {"name": "team-model", "backend": "http"},
            "http": {"endpoint": lsp_fault.url, "retries": 0},
        },
    )
    open_buggy(lsp_client)
    yield
    await lsp_client.shutdown_session()


@pytest.mark.skipif(sys.platform == "win32", reason="the fault server binds 127.0.0.1")
async def test_a_cut_answer_is_never_applied_through_the_server(
    http_client: StarchatTestClient, lsp_fault: FaultServer
) -> None:
    client = http_client
    params = {"textDocument": {"uri": URI}, "range": whole(3, 9), "partialResultToken": "p1"}
    lsp_fault.plans = [Plan(tokens=FIX_ANSWER)]
    whole_answer = await request(client, "starchat/fix", params, "fix-good")
    assert whole_answer.complete is True and whole_answer.fix.edit is not None
    assert whole_answer.usage.tokens_in == 42  # the server's usage reached the editor
    # The same answer cut before its end: an error the editor shows, and no edit at all.
    lsp_fault.plans = [Plan(mode="cut", tokens=(*FIX_ANSWER[:3], "    ret", "urn"))]
    params["partialResultToken"] = "p2"
    with pytest.raises(JsonRpcException) as caught:
        await request(client, "starchat/fix", params, "fix-cut")
    assert caught.value.code == -32803  # RequestFailed, with the engine's message
    assert "broke off the answer" in str(caught.value) and lsp_fault.url in str(caught.value)
    assert "".join(p["text"] for p in client.partial_results["p2"]).startswith("The range")


async def test_a_server_that_is_down_fails_the_load_with_its_url(
    bare_http: StarchatTestClient,
) -> None:
    port = closed_port()
    await start(
        bare_http,
        {
            "model": {"name": "team-model", "backend": "http"},
            "http": {"endpoint": f"http://127.0.0.1:{port}"},
        },
    )
    open_buggy(bare_http)
    with pytest.raises(JsonRpcException) as caught:
        await request(
            bare_http,
            "starchat/explain",
            {"textDocument": {"uri": URI}, "range": whole(3, 9)},
            "x1",
        )
    assert f"cannot reach the model server at http://127.0.0.1:{port}" in str(caught.value)


@pytest_lsp.fixture(config=CONFIG)
async def bare_http(lsp_client: StarchatTestClient) -> Any:
    yield
    await lsp_client.shutdown_session()
