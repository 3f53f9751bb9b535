"""A keyed work queue with delayed requeue: each key is reconciled by one task at a time, in order of
arrival, and a burst of events for one key collapses into a single reconcile.

Used by every controller; the reconcile function is synchronous (it talks to the in-process registry)
and returns a delay in seconds to be called again, or None.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Hashable

from sluice.aio import cancel_and_wait

__all__ = ["WorkQueue"]

log = logging.getLogger("sluice.controllers")

MAX_BACKOFF = 30.0


class WorkQueue:
    def __init__(self, name: str, reconcile: Callable[[Hashable], float | None]) -> None:
        self.name = name
        self._reconcile = reconcile
        self._pending: dict[Hashable, None] = {}
        self._wake = asyncio.Event()
        self._timers: dict[Hashable, asyncio.TimerHandle] = {}
        self._failures: dict[Hashable, int] = {}
        self._task: asyncio.Task[None] | None = None

    def add(self, key: Hashable, delay: float = 0.0) -> None:
        if delay > 0:
            old = self._timers.pop(key, None)
            if old is not None and old.when() <= asyncio.get_running_loop().time() + delay:
                self._timers[key] = old
                return
            if old is not None:
                old.cancel()
            self._timers[key] = asyncio.get_running_loop().call_later(delay, self._fire, key)
            return
        self._pending[key] = None
        self._wake.set()

    def _fire(self, key: Hashable) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"queue-{self.name}")

    async def stop(self) -> None:
        for t in self._timers.values():
            t.cancel()
        self._timers.clear()
        await cancel_and_wait(self._task)

    @property
    def idle(self) -> bool:
        return not self._pending

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                key = next(iter(self._pending))
                del self._pending[key]
                try:
                    again = self._reconcile(key)
                    self._failures.pop(key, None)
                except Exception:
                    n = self._failures.get(key, 0) + 1
                    self._failures[key] = n
                    log.exception("%s: reconciling %s failed (attempt %d)", self.name, key, n)
                    again = min(MAX_BACKOFF, 0.1 * 2 ** n)
                if again is not None:
                    self.add(key, again)
                await asyncio.sleep(0)  # let the event loop serve requests between reconciles
