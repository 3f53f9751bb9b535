"""PromQL evaluation off the event loop: a few worker threads behind a bounded queue.

The daemon's event loop serves the API server, xDS and ALS; a query evaluated on it would stall all of them
for as long as it runs. The Prometheus API and the console hand each query to `QueryPool.run`, which runs it
in a worker thread (the TSDB's reads are thread-safe) and awaits the answer, so the loop keeps serving.
Prometheus bounds concurrent queries (`--query.max-concurrency`); here a query beyond the running ones waits
in a queue of bounded length, and past that is refused at once with `PoolFull` (the API's 503
`unavailable`) instead of piling up work that would only time out.

A query whose request is cancelled (the client went away) or that is still running when the pool closes (the
daemon stops) is cancelled through `sluice.metrics.promql.cancel`: the engine stops at its next deadline check.

The GIL still makes a worker compete with the loop for the CPU; CPython hands the GIL over every switch
interval (5 ms), and the engine never holds a lock across a query, so the loop gets its turn.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from sluice.metrics.promql.cancel import Cancellation, bound

__all__ = ["QueryPool", "PoolFull", "DEFAULT_CONCURRENCY", "DEFAULT_QUEUE"]

T = TypeVar("T")

DEFAULT_CONCURRENCY = 2  # pure-Python evaluation is CPU-bound: more threads than cores only share the GIL
DEFAULT_QUEUE = 16


class PoolFull(Exception):
    """Every worker is busy and the queue is full."""


class QueryPool:
    def __init__(self, concurrency: int = DEFAULT_CONCURRENCY, queue: int = DEFAULT_QUEUE) -> None:
        self.concurrency = max(1, concurrency)
        self.queue = max(0, queue)
        self._executor = ThreadPoolExecutor(self.concurrency, thread_name_prefix="promql")
        self._lock = threading.Lock()
        self._pending = 0  # queued or running; a query whose client went away still counts until it ends
        self._tokens: set[Cancellation] = set()

    @property
    def pending(self) -> int:
        return self._pending

    async def run(self, fn: Callable[[], T]) -> T:
        """`fn()` in a worker thread; raises `PoolFull` when `concurrency + queue` queries are already pending."""
        with self._lock:
            if self._pending >= self.concurrency + self.queue:
                raise PoolFull(f"too many concurrent queries: {self.concurrency} running and {self.queue} "
                               "waiting; try again later")
            self._pending += 1
        token = Cancellation()
        self._tokens.add(token)
        try:
            fut = self._executor.submit(self._call, fn, token)
        except BaseException:
            self._release(token)
            raise
        # Released when the query really ends (in the worker), or when a cancelled request's query had not
        # started yet: a query whose client went away keeps its slot until it has stopped.
        fut.add_done_callback(lambda _f: self._release(token))
        try:
            return await asyncio.wrap_future(fut)
        except asyncio.CancelledError:
            token.cancel()
            raise

    @staticmethod
    def _call(fn: Callable[[], T], token: Cancellation) -> T:
        with bound(token):
            return fn()

    def _release(self, token: Cancellation) -> None:
        with self._lock:
            self._pending -= 1
            self._tokens.discard(token)

    def close(self) -> None:
        """Stop taking queries and cancel the running ones (they stop at their next deadline check)."""
        with self._lock:
            for token in self._tokens:
                token.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)
