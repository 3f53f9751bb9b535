"""CPU-heavy work off the event loop: in a worker thread, with the cyclic garbage collector paused meanwhile.

A thread alone is not enough. A full (generation 2) collection walks every tracked object in the process while
holding the GIL, and a worker that builds a large object graph — composing 3 MiB of YAML, translating a
VirtualService of thousands of routes — triggers one each time the heap has grown by a quarter, each walking
the whole, growing heap: the loop thread, which needs the GIL for every request it serves, waits that long
(composing a 2.9 MiB YAML body ran 10 full collections; on a loaded 2-core machine the loop beside it lagged
7.1 s at worst with the collector on, 0.41 s with it paused: docs/benchmarks.md). So while any such
work runs the collector is off: reference counting still frees everything acyclic at once, and the collector
resumes with its usual thresholds when the last such work ends.

Even so the loop thread shares the GIL with the worker thread: the API server's large request bodies now go to
a worker process instead (`sluice.api.body_pool`); this module serves the work that needs the daemon's own
objects (the xDS pusher, encoding a large answer); the console's large objects go to its own worker processes.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

__all__ = ["gc_paused", "call_gc_paused", "run_off_loop"]

T = TypeVar("T")

# While such work runs, a thread waiting for the GIL asks for it after 1 ms instead of CPython's 5 ms: the loop
# thread waits once per request step it resumes (and per socket or SQLite call), and a step is milliseconds.
_SWITCH_INTERVAL = 0.001

_lock = threading.Lock()
_depth = 0  # how many pieces of work hold the collector paused
_resume = False  # whether the collector was on when the first of them began
_interval = 0.005  # the switch interval before the first of them began


@contextmanager
def gc_paused(when: bool = True) -> Iterator[None]:
    """The cyclic garbage collector is off inside, and the GIL switch interval short (nested and concurrent uses
    are counted); nothing changes unless `when` (e.g. only for a large object's steps)."""
    global _depth, _resume, _interval
    if not when:
        yield
        return
    with _lock:
        if _depth == 0:
            _resume = gc.isenabled()
            gc.disable()
            _interval = sys.getswitchinterval()
            sys.setswitchinterval(min(_interval, _SWITCH_INTERVAL))
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                sys.setswitchinterval(_interval)
                if _resume:
                    gc.enable()


def call_gc_paused(fn: Callable[..., T], *args: Any) -> T:
    with gc_paused():
        return fn(*args)


async def run_off_loop(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` in the loop's default executor, with the collector paused while it runs."""
    return await asyncio.to_thread(call_gc_paused, fn, *args)
