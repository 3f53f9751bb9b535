"""PromQL evaluation off the event loop: a few worker threads behind a bounded queue.

The daemon's event loop serves the API server, xDS and ALS; a query evaluated on it would stall all of them
for as long as it runs. The Prometheus API and the console hand each query to `QueryPool.run`, which runs it
in a worker thread (the TSDB's reads are thread-safe) and awaits the answer, so the loop keeps serving.
Prometheus bounds concurrent queries (`--query.max-concurrency`); here a query beyond the running ones waits
in a queue of bounded length, and past that is refused at once with `PoolFull` (the API's 503
`unavailable`) instead of piling up work that would only time out.

`QueryPool.run_here` is for queries the caller has proved small (`sluice.metrics.api` with
`sluice.metrics.promql.cost`): it runs them on the calling thread under the same admission limits.

A query whose request is cancelled (the client went away) or that is still running when the pool closes (the
daemon stops) is cancelled through `sluice.metrics.promql.cancel`: the engine stops at its next deadline check.

The GIL still makes a worker compete with the loop for the CPU; CPython hands the GIL over every switch
interval (5 ms), and the engine never holds a lock across a query, so the loop gets its turn.
"""

from __future__ import annotations

import asyncio
import queue as queue_mod
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from sluice.metrics.promql.cancel import Cancellation, bound

__all__ = ["QueryPool", "PoolFull", "DEFAULT_CONCURRENCY", "DEFAULT_QUEUE"]

T = TypeVar("T")

DEFAULT_CONCURRENCY = 2  # pure-Python evaluation is CPU-bound: more threads than cores only share the GIL
DEFAULT_QUEUE = 16


class PoolFull(Exception):
    """Every worker is busy and the queue is full."""


class _Job:
    __slots__ = ("fn", "token", "loop", "future")

    def __init__(self, fn: Callable[[], Any], token: Cancellation, loop: asyncio.AbstractEventLoop,
                 future: asyncio.Future[Any]) -> None:
        self.fn = fn
        self.token = token
        self.loop = loop
        self.future = future


def _deliver(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():  # the request was cancelled meanwhile
        return
    if value is None and not ok:
        future.cancel()
    elif ok:
        future.set_result(value)
    else:
        future.set_exception(value)


class QueryPool:
    """Worker threads fed from one queue. A query's answer goes straight back to the loop that asked
    (`call_soon_threadsafe`): a small query's round trip is mostly this hand-off, so it is kept to one queue
    put and one loop wake-up (no executor future chained to an asyncio one)."""

    def __init__(self, concurrency: int = DEFAULT_CONCURRENCY, queue: int = DEFAULT_QUEUE) -> None:
        self.concurrency = max(1, concurrency)
        self.queue = max(0, queue)
        self._jobs: queue_mod.SimpleQueue[_Job | None] = queue_mod.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._lock = threading.Lock()
        self._pending = 0  # queued or running; a query whose client went away still counts until it ends
        self._tokens: set[Cancellation] = set()

    @property
    def pending(self) -> int:
        return self._pending

    async def run(self, fn: Callable[[], T]) -> T:
        """`fn()` in a worker thread; raises `PoolFull` when `concurrency + queue` queries are already pending."""
        with self._lock:
            self._admit()
            self._pending += 1
            token = Cancellation()
            self._tokens.add(token)
            # Every thread runs one query at a time: more pending queries than threads, and a thread is due.
            start = self._pending > len(self._threads) and len(self._threads) < self.concurrency
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put(_Job(fn, token, loop, future))
        if start:
            t = threading.Thread(target=self._worker, name=f"promql_{len(self._threads)}", daemon=True)
            self._threads.append(t)
            t.start()
        try:
            return await future
        except asyncio.CancelledError:
            token.cancel()  # a running query stops at its next deadline check; a queued one never starts
            raise

    def run_here(self, fn: Callable[[], T]) -> T:
        """`fn()` on the calling thread (the event loop), counted against the same limits as `run`: only for
        work whose cost the caller has bounded small (see `sluice.metrics.promql.cost`). It holds a slot while
        it runs, so a full pool refuses it with `PoolFull` as it refuses any query."""
        with self._lock:
            self._admit()
            self._pending += 1
        try:
            with bound(Cancellation()):
                return fn()
        finally:
            with self._lock:
                self._pending -= 1

    def _admit(self) -> None:
        if self._closed:
            raise PoolFull("the query pool is closed")
        if self._pending >= self.concurrency + self.queue:
            raise PoolFull(f"too many concurrent queries: {self.concurrency} running and {self.queue} "
                           "waiting; try again later")

    def _worker(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            ok, value = False, None
            # Abandoned before it started (its request went away, or the pool closed): it frees its slot,
            # and whoever still awaits it sees a cancellation.
            if not (job.token.cancelled or self._closed):
                try:
                    with bound(job.token):
                        ok, value = True, job.fn()
                except BaseException as e:  # noqa: BLE001 - handed to the awaiting coroutine
                    ok, value = False, e
            # The slot is freed before the answer goes out: the loop, woken by it, then finds the pool as the
            # answer leaves it, and this thread's last step before it sleeps is the hand-over itself.
            with self._lock:
                self._pending -= 1
                self._tokens.discard(job.token)
            self._send(job, ok, value)

    @staticmethod
    def _send(job: _Job, ok: bool, value: Any) -> None:
        try:
            job.loop.call_soon_threadsafe(_deliver, job.future, ok, value)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass

    def close(self) -> None:
        """Stop taking queries and cancel the running ones (they stop at their next deadline check)."""
        with self._lock:
            self._closed = True
            for token in self._tokens:
                token.cancel()
            threads = list(self._threads)
        for _ in threads:
            self._jobs.put(None)
