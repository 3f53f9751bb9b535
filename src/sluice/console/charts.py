"""Metric charts for the console (pure): the PromQL range queries behind a workload's charts and a namespace's
sparkline, the time window they run over, and the JSON the results become.

Role: `chart_queries` gives Kiali's workload dashboard queries (request volume total and 5xx errors;
duration, request size and response size p50/p95/p99 through `histogram_quantile` over the Istio
histograms), inbound as reported by the destination proxy (`destination_workload_namespace`,
`destination_workload`) or outbound as reported by the source proxy (`source_workload_namespace`,
`source_workload`), rates over `[1m]`. `range_window` checks a duration and step and aligns the window
to the step; `chart` and `points` turn range-query results (matrices) into `[[unix seconds, value]]`
lists, dropping NaN/Inf points (a quantile of no requests). No I/O and no clock: `now` is passed in.

Callers: `sluice.console.api` (the workload metrics endpoint and `GET /api/namespaces?sparkline=`).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sluice.console.params import Fail
from sluice.metrics.promql.values import QueryResult, Series

__all__ = [
    "QueryRangeFn", "MAX_POINTS", "DIRECTIONS", "RangeWindow", "ChartSpec", "range_window", "default_step",
    "chart_queries", "chart", "points", "sparkline_query", "sparkline_window", "SPARKLINE_POINTS",
]

# (expr, start, end, step) in unix seconds → a matrix (the engine's range query).
QueryRangeFn = Callable[[str, float, float, float], "QueryResult | Awaitable[QueryResult]"]

MAX_POINTS = 1000  # per series
SPARKLINE_POINTS = 30
RATE_WINDOW = "1m"
# direction → (reporter, label prefix of the workload the charts are about)
DIRECTIONS: Mapping[str, tuple[str, str]] = {"inbound": ("destination", "destination"),
                                             "outbound": ("source", "source")}
QUANTILES: tuple[tuple[str, float], ...] = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))


@dataclass(frozen=True)
class RangeWindow:
    start: float
    end: float
    step: float

    @property
    def points(self) -> int:
        return int(round((self.end - self.start) / self.step)) + 1


@dataclass(frozen=True)
class ChartSpec:
    name: str
    title: str
    unit: str
    series: tuple[tuple[str, str], ...]  # (label, PromQL)


def default_step(duration_s: int) -> int:
    """15 s, or coarser so that a long window stays around 250 points."""
    return max(15, math.ceil(duration_s / 250))


def range_window(now: float, duration_s: int, step_s: int) -> RangeWindow:
    """The window ending at `now` rounded down to a multiple of the step (so polls line up), `duration_s` long.

    A step longer than the duration, or more than `MAX_POINTS` points, is a `Fail(400)`.
    """
    if step_s > duration_s:
        raise Fail(400, f"step {step_s}s is longer than the duration {duration_s}s")
    count = duration_s // step_s + 1
    if count > MAX_POINTS:
        raise Fail(400, f"duration {duration_s}s at step {step_s}s gives {count} points per series "
                        f"(at most {MAX_POINTS}); use a larger step")
    end = math.floor(now / step_s) * step_s
    return RangeWindow(float(end - duration_s), float(end), float(step_s))


def sparkline_window(now: float, window_s: int, count: int = SPARKLINE_POINTS) -> RangeWindow:
    """`count` points covering the last `window_s` seconds (the step is window/count, in whole ms)."""
    step = max(0.001, round(window_s / count, 3))
    end = math.floor(now / step) * step
    return RangeWindow(round(end - step * (count - 1), 3), round(end, 3), step)


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _selector(namespace: str, workload: str, direction: str) -> str:
    reporter, side = DIRECTIONS[direction]
    return (f'reporter="{reporter}",{side}_workload_namespace="{_quote(namespace)}",'
            f'{side}_workload="{_quote(workload)}"')


def chart_queries(namespace: str, workload: str, direction: str) -> list[ChartSpec]:
    """Kiali's workload charts for `direction` (`inbound` or `outbound`), in display order."""
    if direction not in DIRECTIONS:
        raise Fail(400, f"invalid direction {direction!r} (want inbound or outbound)")
    sel = _selector(namespace, workload, direction)

    def quantiles(metric: str) -> tuple[tuple[str, str], ...]:
        return tuple((label, f"histogram_quantile({q}, sum(rate({metric}{{{sel}}}[{RATE_WINDOW}])) by (le))")
                     for label, q in QUANTILES)

    return [
        ChartSpec("request_count", "Request volume", "ops", (
            ("total", f"sum(rate(istio_requests_total{{{sel}}}[{RATE_WINDOW}]))"),
            ("errors", f'sum(rate(istio_requests_total{{{sel},response_code=~"5.."}}[{RATE_WINDOW}]))'))),
        ChartSpec("request_duration", "Request duration", "ms",
                  quantiles("istio_request_duration_milliseconds_bucket")),
        ChartSpec("request_size", "Request size", "B", quantiles("istio_request_bytes_bucket")),
        ChartSpec("response_size", "Response size", "B", quantiles("istio_response_bytes_bucket")),
    ]


def sparkline_query(namespace: str) -> str:
    """A namespace's inbound request rate (reported by the destination proxies)."""
    return (f'sum(rate(istio_requests_total{{reporter="destination",'
            f'destination_workload_namespace="{_quote(namespace)}"}}[{RATE_WINDOW}]))')


def _time(ms: int) -> float | int:
    return ms // 1000 if ms % 1000 == 0 else ms / 1000


def points(result: QueryResult) -> list[list[float]]:
    """`[[unix seconds, value]]` of an aggregated range-query result (empty when there is no series).

    Our queries aggregate to at most one series; should there be several, their values at a time are added.
    NaN and infinite values (a quantile over no requests) are left out.
    """
    if result.type != "matrix" or not isinstance(result.value, list):
        raise Fail(502, f"the metrics range query returned a {result.type}, not a matrix")
    series = [s for s in result.value if isinstance(s, Series)]
    by_t: dict[int, float] = {}
    for s in series:
        for t, v in zip(s.timestamps, s.values, strict=True):
            by_t[t] = by_t.get(t, 0.0) + v
    return [[_time(t), round(v, 6)] for t, v in sorted(by_t.items()) if math.isfinite(v)]


def chart(spec: ChartSpec, results: Mapping[str, QueryResult]) -> dict[str, Any]:
    """One chart's JSON from its series' results (by label)."""
    return {"name": spec.name, "title": spec.title, "unit": spec.unit,
            "series": [{"label": label, "values": points(results[label])} for label, _ in spec.series]}
