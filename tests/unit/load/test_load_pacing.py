"""Rate control: the open-loop schedule and the pacing loop, driven by a simulated clock (nothing timed)."""

from __future__ import annotations

import pytest

from sluice.load.pacing import OpenLoopSchedule, pace, planned_requests


class FakeClock:
    """A clock whose sleep advances time instantly, optionally oversleeping like a coarse timer."""

    def __init__(self, oversleep: float = 0.0) -> None:
        self.now = 100.0
        self.oversleep = oversleep
        self.sleeps = 0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.now += seconds + self.oversleep


def test_schedule_times_and_due_counts() -> None:
    s = OpenLoopSchedule(rate=4.0, start=10.0)
    assert [s.time_of(i) for i in range(3)] == [10.0, 10.25, 10.5]
    assert s.due(9.99) == 0
    assert s.due(10.0) == 1
    assert s.due(10.2499) == 1
    assert s.due(10.25) == 2
    assert s.due(11.0) == 5


@pytest.mark.parametrize("rate", [0.0, -1.0, float("inf")])
def test_schedule_rejects_bad_rates(rate: float) -> None:
    with pytest.raises(ValueError):
        OpenLoopSchedule(rate=rate)


def test_planned_requests() -> None:
    assert planned_requests(100, 10, None) == 1000
    assert planned_requests(100, 10, 50) == 50
    assert planned_requests(3, 1.0, None) == 3
    assert planned_requests(100, None, None) is None
    assert planned_requests(100, None, 7) == 7


async def run_pace(rate: float, *, duration: float | None = None, limit: int | None = None,
                   oversleep: float = 0.0, stop_after: int | None = None) -> tuple[list[float], FakeClock]:
    clock = FakeClock(oversleep)
    released: list[float] = []
    schedule = OpenLoopSchedule(rate, start=clock())
    end = None if duration is None else clock() + duration
    await pace(schedule, release=released.append, clock=clock, sleep=clock.sleep,
               stopped=lambda: stop_after is not None and len(released) >= stop_after, end=end, limit=limit)
    return released, clock


async def test_releases_exactly_rate_times_duration() -> None:
    released, _ = await run_pace(250.0, duration=4.0)
    assert len(released) == 1000
    gaps = {round(b - a, 9) for a, b in zip(released, released[1:], strict=False)}
    assert gaps == {0.004}


async def test_late_wakeups_release_the_backlog_and_keep_the_rate() -> None:
    # Every sleep oversleeps by 10 ms (40 request intervals at 4000 rps): overdue requests go out in bursts,
    # but the count over the run is the same and nothing due before the end is skipped.
    released, clock = await run_pace(4000.0, duration=2.0, oversleep=0.01)
    assert len(released) == 8000
    assert clock.sleeps < 8000 / 10  # batched, not one sleep per request


async def test_limit_and_stop() -> None:
    released, _ = await run_pace(100.0, limit=25)
    assert len(released) == 25
    released, _ = await run_pace(100.0, stop_after=10)
    assert len(released) == 10
