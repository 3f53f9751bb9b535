"""Small repeated queries are evaluated on the loop that serves the API, provably small ones only: a query
whose cost the plan cannot bound small still waits for a worker, and the pool's limits hold for both.

The pool has one worker and a queue of one; the test holds the worker with a job of its own, so a query
answered meanwhile was answered without it, and one that is still pending is waiting for it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from tests.unit.metrics.served import Client
from tests.unit.metrics.served import served as served_app

from sluice.metrics.api import (
    INLINE_DEADLINE_S,
    INLINE_MAX_CELLS_RANGE,
    INLINE_MAX_SAMPLES,
    InlineBudget,
    metrics_app,
)
from sluice.metrics.promql import Engine
from sluice.metrics.promql.cost import plan
from sluice.metrics.series import labels_of
from sluice.metrics.tsdb import TSDB
from sluice.metrics.workers import QueryPool

SERIES = 40
HOUR_MS = 3_600_000
AT = "3600"  # the end of the data, in seconds
Served = tuple[Client, QueryPool, TSDB]


def _db() -> TSDB:
    db = TSDB(None)
    for t in range(5000, HOUR_MS + 1, 5000):  # 720 samples per series: several sealed chunks and a head
        db.append(t, [(labels_of({"__name__": "m", "i": str(i)}), float(t // 1000)) for i in range(SERIES)]
                  # `r` is a counter that resets at every other scrape: rate() takes its per-window path
                  + [(labels_of({"__name__": "r", "i": str(i)}), float(t // 5000 % 2)) for i in range(20)],
                  scrape_target="x")
    return db


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    db = _db()
    pool = QueryPool(concurrency=1, queue=1)
    app = metrics_app(db, lambda lookback: Engine(db, lookback_delta_ms=lookback or 300_000), pool=pool,
                      now=lambda: 3600.0)
    try:
        async with served_app(app) as c:
            yield c, pool, db
    finally:
        pool.close()


async def _until(cond: Any) -> None:
    for _ in range(1000):
        if cond():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


@asynccontextmanager
async def _worker_held(pool: QueryPool) -> AsyncIterator[threading.Event]:
    """The pool's one worker busy with a job of the test's own until the event it yields is set (at the latest
    when the block ends)."""
    gate, holding = threading.Event(), threading.Event()

    def hold() -> None:
        holding.set()
        gate.wait(30)

    held = asyncio.ensure_future(pool.run(hold))
    try:
        await _until(holding.is_set)
        yield gate
    finally:
        gate.set()
        await held


SMALL = [("/api/v1/query", {"query": 'sum(rate(m{i="1"}[1m])) / sum(rate(m{i="2"}[1m])) or vector(0)',
                            "time": AT}),
         ("/api/v1/query_range", {"query": 'sum(rate(m{i="1"}[1m]))', "start": "600", "end": AT, "step": "15"}),
         ("/api/v1/query", {"query": 'absent(m{i="nope"})', "time": AT}),
         # a subquery over one series: 21 inner steps column-wise
         ("/api/v1/query", {"query": 'max_over_time(sum(rate(m{i="1"}[1m]))[10m:30s])', "time": AT})]
# Each reads every series over the whole hour (28,800 samples), or holds too many cells in a subquery's inner
# steps (40 series × 721 steps × 2 nodes), or makes a subquery at every step of a range query: never on the loop.
HEAVY = [("/api/v1/query", {"query": "sum(count_over_time(m[1h]))", "time": AT}),
         ("/api/v1/query_range", {"query": "sum(rate(m[1m]))", "start": "0", "end": AT, "step": "5"}),
         ("/api/v1/query", {"query": "max_over_time(sum(rate(m[1m]))[1h:5s])", "time": AT}),
         ("/api/v1/query_range", {"query": 'max_over_time(rate(m{i="1"}[1m])[5m:15s])', "start": "3000",
                                  "end": AT, "step": "60"})]


@pytest.mark.parametrize(("path", "params"), SMALL)
async def test_a_small_repeated_query_is_answered_while_every_worker_is_busy(
        served: Served, path: str, params: dict[str, str]) -> None:
    c, pool, _ = served
    first = await c.get(path, params=params)  # the first time, a worker evaluates it (and plans it)
    assert first.status == 200
    expected = await first.json()
    async with _worker_held(pool):
        again = asyncio.ensure_future(c.get(path, params=params))
        await _until(lambda: again.done() or pool.pending == 2)  # answered, or queued behind the held worker
        assert again.done()
        r = again.result()
        assert r.status == 200
        assert await r.json() == expected


@pytest.mark.parametrize(("path", "params"), HEAVY)
async def test_a_query_not_bounded_small_waits_for_a_worker_however_often_it_is_sent(
        served: Served, path: str, params: dict[str, str]) -> None:
    c, pool, _ = served
    first = await c.get(path, params=params)
    assert first.status == 200
    expected = await first.json()
    async with _worker_held(pool) as gate:
        again = asyncio.ensure_future(c.get(path, params=params))
        await _until(lambda: pool.pending == 2)  # queued behind the held worker, not evaluated on the loop
        assert not again.done()
        # The pool is full now, and that holds for small queries too: Prometheus's max-concurrency, 503.
        small_path, small = SMALL[0]
        assert (await c.get(small_path, params=small)).status == 503
        gate.set()
        r = await again
        assert r.status == 200
        assert await r.json() == expected


async def test_a_query_slower_on_the_loop_than_its_bound_said_goes_to_a_worker(
        served: Served) -> None:
    c, pool, db = served
    params = {"query": "rate(r[10s])", "start": "3300", "end": AT, "step": "1"}
    first = await c.get("/api/v1/query_range", params=params)
    assert first.status == 200
    expected = await first.json()
    # Within the static bounds (20 series, 301 steps, a few chunks each) ...
    p = plan("rate(r[10s])")
    assert p is not None
    assert p.bounded(db, 3_300_000, HOUR_MS, 1000, 300_000, max_samples=INLINE_MAX_SAMPLES,
                     max_cells=INLINE_MAX_CELLS_RANGE)
    # ... but each of its 6,020 windows holds a counter reset: evaluation on the loop passes its deadline.
    async with _worker_held(pool) as gate:
        again = asyncio.ensure_future(c.get("/api/v1/query_range", params=params))
        await _until(lambda: pool.pending == 2)  # handed to the (held) worker after all
        assert not again.done()
        gate.set()
        r = await again
        assert r.status == 200
        assert await r.json() == expected


def test_plans_bound_only_what_they_can() -> None:
    p = plan("max_over_time(sum(rate(m[1m]))[5m:15s])")  # a subquery: 21 inner steps of two nodes' cells
    assert p is not None and p.inner_cells == 2 * 21 and not p.flat  # bounded for one step only
    assert p.selections[0].sub_range_ms == 300_000
    assert plan("max_over_time(m[5m:])") is None  # the engine's default step: not known here
    assert plan("max_over_time(max_over_time(m[5m:15s])[10m:1m])") is None  # nested
    assert plan("max_over_time(m[5m:15s] @ 100)") is None
    assert plan("max_over_time(sum_over_time(m[1m])[5m:15s])") is None  # inner cost grows with the window
    assert plan('label_replace(m, "a", "$1", "i", "(.*)")') is None  # a regex over every series' value
    assert plan("sum(") is None
    assert plan(" + ".join(["m"] * 40)) is None  # too many nodes
    p = plan('sum(rate(m{i="1"}[1m])) or vector(0)')
    assert p is not None and len(p.selections) == 1 and p.flat and p.weight == 1
    p = plan("sum_over_time(m[5m])")  # fine for one step; a range query's cost would grow with the window
    assert p is not None and not p.flat
    p = plan("deriv(m[5m])")
    assert p is not None and p.weight > 1


def test_a_plan_is_bounded_only_when_the_storage_can_bound_it() -> None:
    db = _db()
    p = plan('sum(rate(m{i="1"}[1m]))')
    assert p is not None
    args = dict(max_samples=8192, max_cells=1024)
    # Which series `m{i="1"}` selects is not known yet: working it out is the worker's job.
    assert not p.bounded(db, HOUR_MS, HOUR_MS, 1, 300_000, **args)
    Engine(db).instant('sum(rate(m{i="1"}[1m]))', HOUR_MS)
    assert p.bounded(db, HOUR_MS, HOUR_MS, 1, 300_000, **args)
    assert not p.bounded(db, 0, HOUR_MS, 1000, 300_000, **args)  # 3,601 steps: too many cells
    assert not p.bounded(object(), HOUR_MS, HOUR_MS, 1, 300_000, **args)  # a storage that cannot bound


async def test_once_the_loops_budget_is_spent_small_queries_wait_for_a_worker() -> None:
    """A client sending ever new texts of a query that is bounded small but slow on the loop: each repeat
    costs the loop one attempt up to its deadline, until the budget is gone; then even a query that is
    small in fact waits for a worker."""
    db = _db()
    pool = QueryPool(concurrency=1, queue=1)
    budget = InlineBudget(capacity_s=2.5 * INLINE_DEADLINE_S, share=1e-6)
    app = metrics_app(db, lambda lookback: Engine(db, lookback_delta_ms=lookback or 300_000), pool=pool,
                      now=lambda: 3600.0, inline_budget=budget)
    small_path, small = SMALL[1]
    try:
        async with served_app(app) as c:
            assert (await c.get(small_path, params=small)).status == 200  # planned by a worker
            for i in range(3):  # three slow attempts at 3 ms each: more than the budget
                params = {"query": f'rate(r{{i!="x{i}"}}[10s])', "start": "3300", "end": AT, "step": "1"}
                for _ in range(2):  # once in a worker (planned), once tried on the loop (too slow)
                    assert (await c.get("/api/v1/query_range", params=params)).status == 200
            assert not budget.available()
            async with _worker_held(pool) as gate:
                again = asyncio.ensure_future(c.get(small_path, params=small))
                await _until(lambda: pool.pending == 2)  # queued behind the held worker
                assert not again.done()
                gate.set()
                assert (await again).status == 200
    finally:
        pool.close()
