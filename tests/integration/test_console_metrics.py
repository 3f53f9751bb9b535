"""The workload charts and namespace sparklines through the daemon's `ConsoleService` range query over a real
(in-memory) TSDB holding Istio's counters and histograms, as the collector would have sampled them."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from sluice.api.registry import Registry
from sluice.console.api import console_app
from sluice.daemon.console_service import ConsoleService
from sluice.metrics.promql import Engine
from sluice.metrics.series import labels_of
from sluice.metrics.tsdb import TSDB
from sluice.metrics.workers import QueryPool
from sluice.store.sqlite import Store
from tests.unit.console.access import bearer_client, console_auth
from tests.unit.console.fixtures import NS
from tests.unit.console.mesh import populate

STEP_S = 15
RPS = 2.0  # requests per second into reviews-v2, one in twenty a 503
BUCKETS = (("10", 0.5), ("50", 0.9), ("+Inf", 1.0))  # share of requests at or under each bound


def _scrapes(now: float) -> list[tuple[int, list[tuple[Any, float]]]]:
    """15 minutes of scrapes of reviews-v2's inbound telemetry (reported by the destination proxy)."""
    base = {"reporter": "destination", "destination_workload_namespace": NS, "destination_workload": "reviews-v2",
            "source_workload_namespace": NS, "source_workload": "productpage-v1"}
    out = []
    start = int(now) - 900
    for i in range(900 // STEP_S + 1):
        t = start + i * STEP_S
        n = RPS * i * STEP_S  # requests so far
        samples: list[tuple[Any, float]] = [
            (labels_of({"__name__": "istio_requests_total", **base, "response_code": "200"}), n * 0.95),
            (labels_of({"__name__": "istio_requests_total", **base, "response_code": "503"}), n * 0.05)]
        for metric in ("istio_request_duration_milliseconds", "istio_request_bytes", "istio_response_bytes"):
            for le, share in BUCKETS:
                samples.append((labels_of({"__name__": f"{metric}_bucket", **base, "le": le}), n * share))
        out.append((t * 1000, samples))
    return out


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    reg = Registry(Store(tmp_path / "db"))
    populate(reg)
    tsdb = TSDB(None)
    for t_ms, samples in _scrapes(time.time()):
        tsdb.append(t_ms, samples, scrape_target="sluice")
    pool = QueryPool()
    metrics = SimpleNamespace(tsdb=tsdb, pool=pool, engine=lambda lookback_ms=None: Engine(tsdb))
    service = ConsoleService(reg, metrics, 0, auth=console_auth(tmp_path))  # type: ignore[arg-type]
    c: TestClient[Any, Any] = bearer_client(console_app(reg, service.query, auth=service.auth,
                                                       query_range=service.query_range))
    await c.start_server()
    yield c
    await c.close()
    pool.close()
    tsdb.close()


async def test_workload_charts_have_values(console: TestClient[Any, Any]) -> None:
    r = await console.get(f"/api/namespaces/{NS}/workloads/reviews-v2/metrics?duration=10m&step=30s")
    body = await r.json()
    assert r.status == 200, body
    assert body["end"] - body["start"] == 600 and body["step"] == 30
    charts = {ch["name"]: {s["label"]: s["values"] for s in ch["series"]} for ch in body["charts"]}
    total, errors = charts["request_count"]["total"], charts["request_count"]["errors"]
    assert len(total) >= 18  # the newest points may fall after the last scrape
    assert all(t % 30 == 0 for t, _ in total)
    assert all(abs(v - RPS) < 0.01 for _, v in total), total
    assert all(abs(v - RPS * 0.05) < 0.01 for _, v in errors), errors
    for name in ("request_duration", "request_size", "response_size"):
        p = {label: [v for _, v in values] for label, values in charts[name].items()}
        assert p["p50"] and all(abs(v - 10) < 0.01 for v in p["p50"]), (name, p["p50"])
        assert p["p95"] and all(10 < v <= 50 for v in p["p95"])
        assert p["p99"] and all(v > 40 for v in p["p99"])
    r = await console.get(f"/api/namespaces/{NS}/workloads/reviews-v2/metrics?direction=outbound")
    out = await r.json()
    assert r.status == 200 and all(s["values"] == [] for ch in out["charts"] for s in ch["series"])


async def test_namespace_sparkline(console: TestClient[Any, Any]) -> None:
    r = await console.get("/api/namespaces?sparkline=10m")
    body = await r.json()
    assert r.status == 200, body
    line = {n["name"]: n["sparkline"] for n in body["namespaces"]}[NS]
    assert 25 <= len(line) <= 30 and all(abs(v - RPS) < 0.01 for _, v in line)
