"""Cancelling a query from another thread: the client went away, or the daemon is stopping.

Queries run in worker threads (`sluice.metrics.workers.QueryPool`); the pool binds a `Cancellation` to the
worker thread while it runs a query, and the engine checks it wherever it checks the query's deadline, so a
cancelled query stops within milliseconds with Prometheus's `query was canceled in expression evaluation`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["Cancellation", "bound", "current"]

_local = threading.local()


class Cancellation:
    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True  # one attribute store: atomic, read by the worker at its next check


@contextmanager
def bound(token: Cancellation) -> Iterator[None]:
    """Make `token` the current thread's cancellation while the block runs."""
    prev = getattr(_local, "token", None)
    _local.token = token
    try:
        yield
    finally:
        _local.token = prev


def current() -> Cancellation | None:
    token: Cancellation | None = getattr(_local, "token", None)
    return token
