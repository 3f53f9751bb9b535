"""Work off the loop pauses the cyclic garbage collector (and shortens the GIL switch interval) while it runs, and
only then."""

from __future__ import annotations

import asyncio
import gc
import sys
import threading

from sluice.offloop import gc_paused, run_off_loop


def test_the_collector_is_paused_while_any_work_runs_and_resumes_after_the_last() -> None:
    assert gc.isenabled()
    interval = sys.getswitchinterval()
    with gc_paused():
        assert not gc.isenabled() and sys.getswitchinterval() < interval
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer work still runs
    assert gc.isenabled() and sys.getswitchinterval() == interval


def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


async def test_concurrent_work_in_threads_resumes_the_collector_once_all_ended() -> None:
    started, release = threading.Barrier(3), threading.Event()

    def work(n: int) -> int:
        started.wait(5)
        release.wait(5)
        return n * 2

    tasks = [asyncio.ensure_future(run_off_loop(work, n)) for n in (1, 2)]
    await asyncio.to_thread(started.wait, 5)
    assert not gc.isenabled()
    release.set()
    assert await asyncio.gather(*tasks) == [2, 4]
    assert gc.isenabled()


async def test_an_error_in_the_work_reaches_the_caller_and_resumes_the_collector() -> None:
    def fail() -> None:
        raise ValueError("bad body")

    try:
        await run_off_loop(fail)
    except ValueError as e:
        assert str(e) == "bad body"
    else:
        raise AssertionError("the error was lost")
    assert gc.isenabled()
