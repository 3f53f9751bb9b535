"""Logging that cannot flood: one line per key per period, carrying how many were held back.

Used by `sluice.daemon.guarded_site`, the xDS/ALS servers and the TSDB (refused, evicted and timed-out connections, failed TLS handshakes) and by
the daemon's event-loop exception handler (`install_loop_handler`, e.g. asyncio's
`socket.accept() out of system resource` while file descriptors run out), so an attacker opening thousands of
connections costs a few log lines, not a disk.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

__all__ = ["RateLimitedLog", "install_loop_handler"]


class RateLimitedLog:
    """`log(key, message)` writes the first message of a key, then at most one per `period` seconds; the next
    line written says how many were held back since the previous one."""

    def __init__(self, logger: logging.Logger, period: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.period = period
        self.clock = clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def __call__(self, key: str, message: str, *, level: int = logging.WARNING,
                 exc_info: BaseException | None = None) -> bool:
        """Log (and return True) unless this key logged less than `period` ago."""
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.period:
            self._held[key] = self._held.get(key, 0) + 1
            return False
        held = self._held.pop(key, 0)
        self._last[key] = now
        if held:
            message += f" (and {held} more like it in the last {now - (last or now):.0f}s)"
        self.logger.log(level, "%s", message, exc_info=exc_info)
        return True


def install_loop_handler(loop: asyncio.AbstractEventLoop, log: RateLimitedLog) -> None:
    """Route the loop's unhandled errors (accept failures, transport errors, lost task exceptions) through
    `log`, keyed by their message; tracebacks are kept for programming errors, dropped for OS errors."""

    def handler(_loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = str(context.get("message") or "unhandled error in the event loop")
        exc = context.get("exception")
        text = f"{message}: {exc}" if isinstance(exc, BaseException) else message
        tb = exc if isinstance(exc, BaseException) and not isinstance(exc, OSError) else None
        log(message, text, level=logging.ERROR, exc_info=tb)

    loop.set_exception_handler(handler)
