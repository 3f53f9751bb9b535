"""Rate control: when each request of an open-loop run is due, and the loop that releases them.

Open loop means requests are released on a fixed schedule (request i at start + i/rate) whether or not
earlier ones have finished, so a slow server cannot slow the offered load down (no coordinated omission);
latency is then measured from a request's scheduled time, not from when a connection became free.
The loop takes its clock and sleep as arguments so tests can drive it with a simulated clock.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

__all__ = ["OpenLoopSchedule", "pace", "planned_requests"]


@dataclass(frozen=True)
class OpenLoopSchedule:
    """Request i is due at `start + i / rate` (seconds on the caller's clock)."""

    rate: float
    start: float = 0.0

    def __post_init__(self) -> None:
        if not self.rate > 0 or math.isinf(self.rate):
            raise ValueError(f"rate must be a positive number of requests per second, got {self.rate}")

    def time_of(self, i: int) -> float:
        return self.start + i / self.rate

    def due(self, now: float) -> int:
        """How many requests (0 … n-1) are due at `now`."""
        if now < self.start:
            return 0
        # The epsilon keeps float error from postponing a request that is due exactly now.
        return math.floor((now - self.start) * self.rate + 1e-9) + 1


def planned_requests(rate: float, duration: float | None, limit: int | None) -> int | None:
    """How many requests an open-loop run releases: those due before `duration` ends, at most `limit`."""
    by_time = None if duration is None else max(0, math.ceil(duration * rate - 1e-9))
    if by_time is None:
        return limit
    return by_time if limit is None else min(by_time, limit)


async def pace(
    schedule: OpenLoopSchedule,
    *,
    release: Callable[[float], None],
    clock: Callable[[], float],
    sleep: Callable[[float], Awaitable[None]],
    stopped: Callable[[], bool],
    end: float | None = None,
    limit: int | None = None,
) -> int:
    """Call `release(scheduled_time)` for each request as it falls due; return how many were released.

    Stops when `stopped()` turns true, at `end` (requests due at or after it are not released) or after
    `limit` requests. After a late wake-up every overdue request is released at once, so the long-run rate
    stays exact however coarse `sleep` is.
    """
    i = 0
    while not stopped():
        if limit is not None and i >= limit:
            break
        t = schedule.time_of(i)
        if end is not None and t >= end:
            break
        now = clock()
        if t > now:
            await sleep(t - now)
            continue
        release(t)
        i += 1
    return i
