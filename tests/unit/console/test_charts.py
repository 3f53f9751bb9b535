"""Workload metric charts: the PromQL they run, the window, the JSON, and the metrics endpoint's answers."""

from __future__ import annotations

import math
from typing import Any

import pytest
from tests.unit.console.conftest import MakeClient
from tests.unit.console.fixtures import NS
from tests.unit.console.mesh import get_json

from sluice.console.charts import chart, chart_queries, points, range_window, sparkline_window
from sluice.console.params import Fail
from sluice.metrics.promql.values import QueryResult, Series


def test_inbound_queries_are_reported_by_the_destination() -> None:
    specs = {s.name: s for s in chart_queries("tutorial", "reviews-v2", "inbound")}
    assert list(specs) == ["request_count", "request_duration", "request_size", "response_size"]
    sel = 'reporter="destination",destination_workload_namespace="tutorial",destination_workload="reviews-v2"'
    count = dict(specs["request_count"].series)
    assert count["total"] == f"sum(rate(istio_requests_total{{{sel}}}[1m]))"
    assert count["errors"] == f'sum(rate(istio_requests_total{{{sel},response_code=~"5.."}}[1m]))'
    duration = dict(specs["request_duration"].series)
    assert list(duration) == ["p50", "p95", "p99"]
    assert duration["p95"] == (f"histogram_quantile(0.95, sum(rate(istio_request_duration_milliseconds_bucket"
                               f"{{{sel}}}[1m])) by (le))")
    assert "istio_request_bytes_bucket" in dict(specs["request_size"].series)["p99"]
    assert "istio_response_bytes_bucket" in dict(specs["response_size"].series)["p50"]
    assert (specs["request_duration"].unit, specs["request_size"].unit, specs["request_count"].unit) == ("ms", "B",
                                                                                                         "ops")


def test_outbound_queries_are_reported_by_the_source() -> None:
    for spec in chart_queries("tutorial", "productpage-v1", "outbound"):
        for _, expr in spec.series:
            assert ('reporter="source",source_workload_namespace="tutorial",source_workload="productpage-v1"'
                    in expr)
    with pytest.raises(Fail) as e:
        chart_queries("tutorial", "x", "sideways")
    assert e.value.code == 400 and "direction" in e.value.message


def test_range_window_aligns_to_the_step_and_caps_points() -> None:
    w = range_window(1_000_007.0, 600, 15)
    assert (w.start, w.end, w.step, w.points) == (999_405.0, 1_000_005.0, 15.0, 41)
    assert range_window(1_000_000.0, 14985, 15).points == 1000
    with pytest.raises(Fail) as e:
        range_window(1_000_000.0, 15000, 15)
    assert e.value.code == 400 and "1000" in e.value.message and "larger step" in e.value.message
    with pytest.raises(Fail):
        range_window(1_000_000.0, 60, 120)
    s = sparkline_window(1_000_007.0, 600)
    assert s.points == 30 and s.step == 20 and s.end == 1_000_000


def test_points_drop_nan_and_add_up_series() -> None:
    result = QueryResult("matrix", [Series((("a", "1"),), [1000, 2000, 3000], [1.0, math.nan, 2.5]),
                                    Series((("a", "2"),), [1000], [0.25])])
    assert points(result) == [[1, 1.25], [3, 2.5]]
    assert points(QueryResult("matrix", [])) == []
    with pytest.raises(Fail):
        points(QueryResult("vector", []))
    spec = chart_queries("ns", "w", "inbound")[0]
    assert chart(spec, {"total": result, "errors": QueryResult("matrix", [])}) == {
        "name": "request_count", "title": "Request volume", "unit": "ops",
        "series": [{"label": "total", "values": [[1, 1.25], [3, 2.5]]}, {"label": "errors", "values": []}]}


def _fake_range(calls: list[str]) -> Any:
    """Data for the inbound total and p95 duration of reviews-v2 only; every other series is empty."""
    def query_range(expr: str, start: float, end: float, step: float) -> QueryResult:
        calls.append(expr)
        n = int((end - start) / step) + 1
        ts = [int((start + i * step) * 1000) for i in range(n)]
        if 'destination_workload="reviews-v2"' not in expr:
            return QueryResult("matrix", [])
        if expr.startswith("sum(rate(istio_requests_total") and "response_code" not in expr:
            return QueryResult("matrix", [Series((), ts, [2.0] * n)])
        if "histogram_quantile(0.95, sum(rate(istio_request_duration" in expr:
            return QueryResult("matrix", [Series((), ts, [math.nan] + [12.5] * (n - 1))])
        return QueryResult("matrix", [])
    return query_range


async def test_metrics_endpoint(make_client: MakeClient) -> None:
    calls: list[str] = []
    c = await make_client(query_range=_fake_range(calls))
    url = f"/api/namespaces/{NS}/workloads/reviews-v2/metrics"
    body = await get_json(c, f"{url}?direction=inbound&duration=10m&step=15s")
    assert (body["end"] - body["start"], body["step"], body["direction"], body["reporter"]) == (
        600, 15, "inbound", "destination")
    assert body["end"] % 15 == 0
    charts = {ch["name"]: ch for ch in body["charts"]}
    assert [ch["name"] for ch in body["charts"]] == ["request_count", "request_duration", "request_size",
                                                     "response_size"]
    total, errors = charts["request_count"]["series"]
    assert total["label"] == "total" and len(total["values"]) == 41
    assert total["values"][0] == [body["start"], 2.0] and total["values"][-1][0] == body["end"]
    assert errors == {"label": "errors", "values": []}
    p = {s["label"]: s["values"] for s in charts["request_duration"]["series"]}
    assert p["p50"] == [] and len(p["p95"]) == 40 and p["p95"][0] == [body["start"] + 15, 12.5]
    assert charts["response_size"]["unit"] == "B"
    assert len(calls) == 11
    out = await get_json(c, f"{url}?direction=outbound")
    assert out["reporter"] == "source" and out["end"] - out["start"] == 600
    assert all(s["values"] == [] for ch in out["charts"] for s in ch["series"])


async def test_metrics_endpoint_bad_input(make_client: MakeClient) -> None:
    c = await make_client(query_range=_fake_range([]))
    url = f"/api/namespaces/{NS}/workloads/reviews-v2/metrics"
    for query, words in (("direction=up", "direction"), ("duration=soon", "duration"), ("step=0s", "step"),
                         ("step=fast", "step"), ("duration=1d&step=15s", "points"),
                         ("duration=1m&step=5m", "longer than")):
        body = await get_json(c, f"{url}?{query}", 400)
        assert words in body["error"], (query, body)
    await get_json(c, f"/api/namespaces/{NS}/workloads/nope/metrics", 404)
    await get_json(c, "/api/namespaces/nope/workloads/reviews-v2/metrics", 404)


async def test_metrics_without_a_range_engine_or_when_it_fails(make_client: MakeClient) -> None:
    c = await make_client()
    body = await get_json(c, f"/api/namespaces/{NS}/workloads/reviews-v2/metrics", 501)
    assert "not available" in body["error"]

    def broken(expr: str, start: float, end: float, step: float) -> QueryResult:
        raise RuntimeError("tsdb is closed")

    c = await make_client(query_range=broken)
    body = await get_json(c, f"/api/namespaces/{NS}/workloads/reviews-v2/metrics", 503)
    assert "tsdb is closed" in body["error"]
