"""Connection hygiene shared by the daemon's HTTP servers: the deadlines and the per-port connection cap.

`sluice.daemon.guarded_site` (aiohttp: the API server and the console) and `sluice.httpserver` (the metrics
port) keep their connections in a `ConnectionGuard`:

* **header deadline** — a connection must send the headers of its first request within
  `Limits.header_timeout` of being accepted, and a later request within the same time of its first byte
  (slowloris); otherwise it is aborted;
* **idle deadline** — a keep-alive connection with no request for `Limits.idle_timeout` is closed;
* **connection cap** — at most `Limits.max_connections` per port. When a new connection arrives at the cap,
  the oldest connection that is not serving a request is closed to make room (a connection that never sent
  a request first); only when every connection is busy is the new one refused. So a flood of half-open
  connections cannot lock out a client, and long-lived watches are never the ones dropped;
* refusals, evictions and timeouts are logged through `RateLimitedLog`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Protocol

from sluice.ratelog import RateLimitedLog

__all__ = ["Limits", "ConnectionGuard", "Guarded", "GuardedProtocol"]

log = logging.getLogger("sluice.connections")


@dataclass(frozen=True)
class Limits:
    header_timeout: float = 10.0
    idle_timeout: float = 120.0
    max_connections: int = 256


class Guarded(Protocol):
    """One connection as the guard sees it."""

    busy: int  # requests being served
    requests: int  # requests started so far

    def abort(self) -> None: ...


class ConnectionGuard:
    """The connections of one port, oldest first."""

    def __init__(self, limits: Limits, name: str) -> None:
        self.limits = limits
        self.name = name
        self.conns: dict[Guarded, None] = {}
        self.ratelog = RateLimitedLog(log)

    def admit(self, conn: Guarded) -> bool:
        if len(self.conns) >= self.limits.max_connections:
            victim = next((c for c in self.conns if c.busy == 0 and c.requests == 0), None) \
                or next((c for c in self.conns if c.busy == 0), None)
            if victim is None:
                self.ratelog("refused", f"{self.name}: {len(self.conns)} connections, all serving requests: "
                                        "refusing a new one")
                return False
            self.ratelog("evicted", f"{self.name}: at the limit of {self.limits.max_connections} connections: "
                                    "closing the oldest idle one for a new one")
            victim.abort()
        self.conns[conn] = None
        return True

    def forget(self, conn: Guarded) -> None:
        self.conns.pop(conn, None)


class GuardedProtocol(asyncio.Protocol):
    """A connection's counters and deadlines, for the protocols the guard keeps. Subclasses close the
    connection in `abort` (and call `guard.forget`), and say in `quiet` when nothing is in progress."""

    def __init__(self, guard: ConnectionGuard) -> None:
        self.guard = guard
        self.loop = asyncio.get_running_loop()
        self.busy = 0  # requests being served
        self.requests = 0  # requests started so far
        self.closed = False
        self.deadline: asyncio.TimerHandle | None = None

    def abort(self) -> None:
        raise NotImplementedError

    def quiet(self) -> bool:
        return self.busy == 0

    def arm(self, seconds: float, why: str) -> None:
        """Abort the connection in `seconds` unless a request starts (or another deadline replaces this)."""
        self.disarm()
        self.deadline = self.loop.call_later(seconds, self._expire, self.requests, why)

    def disarm(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def arm_header_deadline(self, first: bool) -> None:
        why = "did not send a request's headers in time" if first else "did not finish a request's headers in time"
        self.arm(self.guard.limits.header_timeout, why)

    def arm_idle_deadline(self) -> None:
        self.arm(self.guard.limits.idle_timeout, f"stayed idle for {self.guard.limits.idle_timeout:g}s")

    def _expire(self, requests_then: int, why: str) -> None:
        self.deadline = None
        if self.quiet() and self.requests == requests_then and not self.closed:
            self.guard.ratelog(why, f"{self.guard.name}: closing a connection that {why}", level=logging.INFO)
            self.abort()
