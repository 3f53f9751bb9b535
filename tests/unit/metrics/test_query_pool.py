"""Queries evaluate in the worker pool: the API keeps answering while one runs, a full pool answers 503
`unavailable`, and the real engine's errors (parse depth, regex, limits) come back as Prometheus's."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator

import pytest
from tests.unit.metrics.served import Client, served

from sluice.metrics.api import metrics_app
from sluice.metrics.promql import Engine, QueryCanceled
from sluice.metrics.promql.values import QueryResult
from sluice.metrics.series import labels_of
from sluice.metrics.tsdb import TSDB
from sluice.metrics.workers import PoolFull, QueryPool


async def test_pool_bounds_pending_queries() -> None:
    pool = QueryPool(concurrency=1, queue=1)
    gate = threading.Event()
    try:
        first = asyncio.ensure_future(pool.run(lambda: gate.wait(30)))
        second = asyncio.ensure_future(pool.run(lambda: 2))
        await asyncio.sleep(0)
        with pytest.raises(PoolFull, match="too many concurrent queries: 1 running and 1 waiting; try again later"):
            await pool.run(lambda: 3)
        gate.set()
        assert await first is True and await second == 2
        await _until_idle(pool)  # a worker hands its answer to the loop, then frees its slot
        assert await pool.run(lambda: 4) == 4
    finally:
        gate.set()
        pool.close()


async def test_cancelled_request_keeps_its_slot_until_the_query_ends() -> None:
    pool = QueryPool(concurrency=1, queue=0)
    gate = threading.Event()
    try:
        task = asyncio.ensure_future(pool.run(lambda: gate.wait(30)))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        with pytest.raises(PoolFull):  # the thread still runs the abandoned query
            await pool.run(lambda: 1)
        gate.set()
        for _ in range(500):
            if pool.pending == 0:
                break
            await asyncio.sleep(0.01)
        assert await pool.run(lambda: 1) == 1
    finally:
        gate.set()
        pool.close()


def _heavy_db() -> TSDB:
    db = TSDB(None)
    for t in range(0, 3_600_000, 1000):
        db.append(t, [(labels_of({"__name__": "m", "i": str(i)}), float(t)) for i in range(20)], scrape_target="x")
    return db


async def _until_idle(pool: QueryPool) -> None:
    for _ in range(1000):  # up to 10 s; the query's own timeout is a minute
        if pool.pending == 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{pool.pending} queries still pending")


async def test_cancelling_the_request_cancels_the_running_query() -> None:
    engine = Engine(_heavy_db())
    pool = QueryPool(concurrency=1, queue=0)
    outcome: list[BaseException] = []

    def query() -> QueryResult:
        try:
            return engine.range("quantile_over_time(0.5, m[1h])", 0, 3_600_000, 1000, timeout_s=60)
        except BaseException as e:
            outcome.append(e)
            raise

    try:
        task = asyncio.ensure_future(pool.run(query))
        await asyncio.sleep(0.2)
        assert pool.pending == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await _until_idle(pool)
        assert [str(e) for e in outcome] == ["query was canceled in expression evaluation"]
    finally:
        pool.close()


async def test_closing_the_pool_cancels_running_queries() -> None:
    engine = Engine(_heavy_db())
    pool = QueryPool(concurrency=1, queue=1)
    running = asyncio.ensure_future(pool.run(
        lambda: engine.range("quantile_over_time(0.5, m[1h])", 0, 3_600_000, 1000, timeout_s=60)))
    queued = asyncio.ensure_future(pool.run(lambda: 1))
    await asyncio.sleep(0.2)
    pool.close()
    with pytest.raises(QueryCanceled):
        await running
    with pytest.raises(asyncio.CancelledError):
        await queued
    await _until_idle(pool)


class BlockingEngine:
    """Holds every query until `gate` opens."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.started = threading.Event()

    def instant(self, expr: str, t_ms: int, *, timeout_s: float | None = None) -> QueryResult:
        self.started.set()
        self.gate.wait(30)
        return QueryResult("vector", [])

    def range(self, expr: str, start_ms: int, end_ms: int, step_ms: int, *,
              timeout_s: float | None = None) -> QueryResult:
        return self.instant(expr, start_ms, timeout_s=timeout_s)


async def test_api_answers_while_a_query_runs_and_a_full_pool_is_503() -> None:
    engine = BlockingEngine()
    pool = QueryPool(concurrency=1, queue=0)
    app = metrics_app(TSDB(None), lambda lookback: engine, pool=pool)
    try:
        async with served(app) as c:
            running = asyncio.ensure_future(c.get("/api/v1/query", params={"query": "up"}))
            while not engine.started.is_set():
                await asyncio.sleep(0.01)
            r = await c.get("/api/v1/status/buildinfo")
            assert r.status == 200  # the loop is free while the query blocks its worker
            r = await c.get("/api/v1/query", params={"query": "up"})
            assert r.status == 503
            assert await r.json() == {"status": "error", "errorType": "unavailable",
                                      "error": "too many concurrent queries: 1 running and 0 waiting; try again later"}
            engine.gate.set()
            assert (await running).status == 200
    finally:
        engine.gate.set()
        pool.close()


@pytest.fixture
async def real() -> AsyncIterator[Client]:
    db = TSDB(None)
    for t in range(0, 3_600_000, 1000):
        db.append(t, [(labels_of({"__name__": "m", "i": str(i)}), float(t)) for i in range(5)], scrape_target="x")
    app = metrics_app(db, lambda lookback: Engine(db, max_samples=10_000), now=lambda: 3600.0)
    async with served(app) as c:
        yield c


@pytest.mark.parametrize(("params", "status", "etype", "error"), [
    ({"query": "(" * 1000 + "1" + ")" * 1000}, 400, "bad_data",
     'invalid parameter "query": 1:129: parse error: expression nests too deeply: more than 128 levels of '
     "parentheses, calls, aggregations or unary operators"),
    ({"query": 'm{i=~"a("}'}, 400, "bad_data",
     'invalid parameter "query": 1:3: parse error: error parsing regexp: missing closing ): `a(`'),
    ({"query": "sum_over_time(m[1h])"}, 422, "execution",
     "query processing would load too many samples into memory in query execution"),
    ({"query": "max_over_time(m[3h:1ms])", "timeout": "1s"}, 422, "execution",
     "exceeded maximum resolution of 11,000 points per timeseries in subquery [3h:1ms]. "
     "Try increasing the subquery step"),
    ({"query": 'label_replace(m, "a", "b", "i", "a(")'}, 422, "execution",
     "invalid regular expression in label_replace(): a("),
])
async def test_real_engine_errors(real: Client, params: dict[str, str], status: int, etype: str,
                                  error: str) -> None:
    r = await real.get("/api/v1/query", params=params)
    assert r.status == status
    assert json.loads(await r.text()) == {"status": "error", "errorType": etype, "error": error}


async def test_range_query_over_11000_points(real: Client) -> None:
    r = await real.get("/api/v1/query_range", params={"query": "m", "start": "0", "end": "11001", "step": "1"})
    assert r.status == 400
    assert (await r.json())["error"] == ("exceeded maximum resolution of 11,000 points per timeseries. "
                                         "Try decreasing the query resolution (?step=XX)")


async def test_a_normal_query_answers(real: Client) -> None:
    r = await real.get("/api/v1/query", params={"query": "count(m)", "timeout": "30s"})
    assert r.status == 200 and (await r.json())["data"]["result"][0]["value"][1] == "5"


async def test_oversized_form_is_bad_data(real: Client) -> None:
    r = await real.post("/api/v1/query", data="query=" + "1+" * 1_000_000 + "1",
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 400
    assert await r.json() == {"status": "error", "errorType": "bad_data",
                              "error": "error parsing form values: http: POST too large"}
