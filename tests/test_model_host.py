"""The server's count of runs using the model (starchat/status `running`) goes back to zero,
however a run ends: the editor's status, the bench and the tests wait on it."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

from starchat_lsp.engine.base import CancelFlag
from starchat_lsp.engine.factory import EngineSettings
from starchat_lsp.model_host import ModelHost
from test_eval_support import ScriptedEngine


class Quiet:
    def begin(self, title: str) -> None: ...
    def report(self, message: str) -> None: ...
    def end(self, message: str, error: bool) -> None: ...


async def test_a_run_cancelled_before_its_thread_starts_is_not_counted_as_running() -> None:
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(max_workers=1))  # one thread: the next waits
    host = ModelHost(create=lambda settings, notify: ScriptedEngine(["x"]))
    host.configure(EngineSettings(model="scripted"), Quiet())
    release = threading.Event()
    ran: list[str] = []

    def blocking(engine: object, flag: CancelFlag) -> str:
        release.wait(10)
        return "first"

    def queued(engine: object, flag: CancelFlag) -> str:
        ran.append("queued")
        return "second"

    first = asyncio.create_task(host.run(blocking))
    await asyncio.sleep(0.1)
    second = asyncio.create_task(host.run(queued))
    await asyncio.sleep(0.1)
    assert host.active == 2
    second.cancel()  # as $/cancelRequest does, while it waits for the busy thread
    await asyncio.gather(second, return_exceptions=True)
    assert host.active == 1
    release.set()
    assert await first == "first"
    await asyncio.sleep(0.1)  # the thread may still pick the cancelled one up: it must not run it
    assert host.active == 0 and ran == []


async def test_a_run_that_yields_is_stopped_by_any_run_after_it() -> None:
    host = ModelHost(create=lambda settings, notify: ScriptedEngine(["x"]))
    host.configure(EngineSettings(model="scripted"), Quiet())
    started = threading.Event()

    def until_cancelled(engine: object, flag: CancelFlag) -> str:
        stop = threading.Event()
        flag.on_cancel(stop.set)
        started.set()
        return "stopped" if stop.wait(10) else "ran out"

    yielding = asyncio.create_task(host.run(until_cancelled, yields=True))
    await asyncio.to_thread(started.wait, 10)
    assert not yielding.done()
    assert await host.run(lambda engine, flag: "after") == "after"
    assert await yielding == "stopped"
    # one that does not yield is not stopped by the next
    started.clear()
    plain_flag = CancelFlag()
    plain = asyncio.create_task(host.run(until_cancelled, plain_flag))
    await asyncio.to_thread(started.wait, 10)
    assert await host.run(lambda engine, flag: "beside") == "beside"
    assert not plain_flag.cancelled
    plain_flag.cancel()
    assert await plain == "stopped"
