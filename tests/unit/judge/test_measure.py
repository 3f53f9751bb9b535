"""`measure(config, query)` end to end over Sluice's own PromQL engine: Istio-shaped counters and duration
buckets for a canary and a stable workload are loaded into a store, and `query` evaluates the judge's PromQL
and answers with the HTTP API's `data.result` shape, as the controller's query function will."""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from sluice.metrics.promql import Engine
from sluice.metrics.promql.format import format_float
from sluice.metrics.series import MemStorage, labels_of
from sluice.rollouts.judge import ConfigError, for_run, measure
from sluice.rollouts.judge.config import parse, parse_duration

BUCKETS = ["0.5", "1", "5", "10", "25", "50", "100", "250", "500", "1000", "2500", "5000", "10000", "30000",
           "60000", "300000", "600000", "1800000", "3600000", "+Inf"]
CONFIG = {"canary": 'destination_workload="reviews-v3"', "stable": 'destination_workload="reviews-v2"'}


def _labels(workload: str, **extra: str) -> dict[str, str]:
    return {"reporter": "source", "destination_workload": workload, "destination_workload_namespace": "tutorial",
            "source_workload": "productpage-v1", **extra}


def load(store: MemStorage, now_ms: int, workload: str, per_minute: float, error_share: float,
         latency_ms: float, minutes: int = 10) -> None:
    """Counters of a workload answering `per_minute` requests, `error_share` of them 503, each taking
    `latency_ms`, scraped every 15 s for `minutes` minutes up to now."""
    steps = minutes * 4
    for i in range(steps + 1):
        t = now_ms - (steps - i) * 15_000
        total = math.floor(per_minute * i / 4)
        errors = math.floor(total * error_share)
        store.append(labels_of({"__name__": "istio_requests_total", **_labels(workload, response_code="200")}),
                     t, total - errors)
        store.append(labels_of({"__name__": "istio_requests_total", **_labels(workload, response_code="503")}),
                     t, errors)
        for le in BUCKETS:
            inside = float(le) >= latency_ms
            store.append(labels_of({"__name__": "istio_request_duration_milliseconds_bucket",
                                    **_labels(workload, le=le)}), t, total if inside else 0)


def prometheus(store: MemStorage, now_ms: int, seen: list[str] | None = None) -> Callable[[str], list[dict[str, Any]]]:
    engine = Engine(store)

    def query(expr: str) -> list[dict[str, Any]]:
        if seen is not None:
            seen.append(expr)
        res = engine.instant(expr, now_ms)
        assert res.type == "vector", res
        return [{"metric": dict(s.metric), "value": [s.t / 1000, format_float(s.value)]} for s in res.value]

    return query


def mesh(canary: tuple[float, float, float], stable: tuple[float, float, float] = (600, 0.01, 20),
         minutes: int = 10, seen: list[str] | None = None) -> Callable[[str], list[dict[str, Any]]]:
    now_ms = int(time.time() * 1000)
    store = MemStorage()
    load(store, now_ms, "reviews-v3", *canary, minutes=minutes)
    load(store, now_ms, "reviews-v2", *stable, minutes=minutes)
    return prometheus(store, now_ms, seen)


def test_a_canary_failing_five_times_as_often_is_failed_with_its_numbers() -> None:
    phase, value, message = measure(CONFIG, mesh((600, 0.05, 20)))
    assert phase == "Failed", message
    assert re.match(r"canary 5xx 5\.0% vs stable 1\.0%: [45]\.?\d?× worse, e-value \S+ > 40 \(α=0\.025\)$", message)
    v = json.loads(value)
    assert v["window"] == "300s"
    err = v["errorRate"]
    # increase() extrapolates to the window's edges: counts are within a request or two of 3000 / 150 / 30.
    assert abs(err["canary"]["requests"] - 3000) <= 2 and abs(err["canary"]["errors"] - 150) <= 2
    assert abs(err["stable"]["errors"] - 30) <= 2 and err["eFail"] > err["eFailThreshold"] == 40
    assert err["ratioInterval"][0] > 2 and 4.5 < err["ratio"] < 5.5
    assert "\n" not in message and " " not in value


def test_an_equal_canary_passes_both_checks() -> None:
    phase, value, message = measure(CONFIG, mesh((600, 0.01, 20)))
    assert phase == "Successful", message
    v = json.loads(value)
    assert v["latency"]["a"] == 0.5 and v["latency"]["ePass"] >= 5 and v["errorRate"]["ePass"] >= 5
    assert "below 2× stable + 0.5%" in message and "below 60%" in message


def test_a_slower_canary_is_failed_on_latency_alone() -> None:
    phase, value, message = measure(CONFIG, mesh((600, 0.01, 40)))
    assert phase == "Failed", message
    assert message.startswith("canary slower than stable in 100% of request pairs (p50 37.5 ms vs 17.5 ms)")
    assert json.loads(value)["latency"]["a"] == 1


def test_too_little_traffic_is_inconclusive_with_the_requests_still_needed() -> None:
    phase, value, message = measure(CONFIG, mesh((2, 0.0, 20)))
    assert phase == "Inconclusive"
    v = json.loads(value)
    needed = v["needed"]
    assert message.startswith(f"inconclusive: {needed} more canary requests needed (")
    assert "too few canary requests" in message
    assert needed == 20 - v["errorRate"]["canary"]["requests"] > 0  # about 10 in 5 minutes, minRequests 20
    # Enough to clear minRequests but not to decide: the projection names a number, not a pass.
    phase, value, message = measure({**CONFIG, "errorRate": {}}, mesh((10, 0.0, 20)))
    assert phase == "Inconclusive", message
    needed = json.loads(value)["needed"]
    assert needed > 0 and message.startswith(f"inconclusive: {needed} more canary requests needed")


def test_no_traffic_at_all_is_inconclusive_not_a_pass() -> None:
    phase, _, message = measure(CONFIG, mesh((0, 0.0, 20), (0, 0.0, 20)))
    assert phase == "Inconclusive" and "more canary requests needed" in message


def test_queries_use_the_selectors_reporter_and_window() -> None:
    seen: list[str] = []
    measure({**CONFIG, "reporter": "destination", "window": "2m"}, mesh((600, 0.01, 20), seen=seen))
    assert seen == [
        'sum by (response_code) (increase(istio_requests_total{reporter="destination", '
        'destination_workload="reviews-v3"}[120s]))',
        'sum by (response_code) (increase(istio_requests_total{reporter="destination", '
        'destination_workload="reviews-v2"}[120s]))',
        'sum by (le) (increase(istio_request_duration_milliseconds_bucket{reporter="destination", '
        'destination_workload="reviews-v3"}[120s]))',
        'sum by (le) (increase(istio_request_duration_milliseconds_bucket{reporter="destination", '
        'destination_workload="reviews-v2"}[120s]))']


def test_since_makes_every_look_count_everything_from_the_analysis_start() -> None:
    start = time.time() - 400
    phase, value, _ = measure({**CONFIG, "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start)),
                               "errorRate": {}}, mesh((600, 0.01, 20)))
    window = json.loads(value)["window"]
    assert window.endswith("s") and 399 <= int(window[:-1]) <= 405
    assert phase == "Successful"


def test_error_codes_and_bounds_are_configurable() -> None:
    cfg = {**CONFIG, "errorRate": {"errorCodes": "503", "tolerance": "10", "detect": "20"}}  # Argo args arrive as strings
    phase, _, message = measure(cfg, mesh((600, 0.05, 20)))
    assert phase != "Failed", message
    assert message.startswith("canary errors 5.0% vs stable 1.0%")


@pytest.mark.parametrize(("config", "message"), [
    ({"stable": 'app="a"'}, 'canary: required: PromQL label matchers such as destination_workload="reviews-v3"'),
    ({"canary": 'app="a"}) or vector(1) or foo{x="', "stable": 'app="b"'},
     "canary: expected \",\" at character 7: '}) or vector(1) or foo{x=\"'"),
    ({"canary": "app=a", "stable": 'app="b"'}, "canary: invalid label matcher at character 0: 'app=a'"),
    ({"canary": 'app="a"', "stable": {"app": "a"}},
     "stable: the canary and stable selectors are the same; two different selectors are required"),
    ({**CONFIG, "window": "5 minutes"}, 'window: not a valid duration string: "5 minutes"'),
    ({**CONFIG, "alpha": 0}, "config.alpha: must be in (0, 0.5], got 0"),
    ({**CONFIG, "power": "high"}, "config.power: must be a number, got 'high'"),
    ({**CONFIG, "latency": {"tolerance": 0.6, "detect": 0.55}},
     "latency.detect: must be greater than latency.tolerance (0.6), got 0.55"),
    ({**CONFIG, "errorRate": {"detect": 0.5}}, "errorRate: detect must be >= tolerance and detectIncrease > "
     "toleranceIncrease (the rates the canary must not reach lie above the ones it may reach)"),
    ({**CONFIG, "errorRate": {"errorCodes": "5(("}}, "errorRate.errorCodes: error parsing regexp: "),
    ({**CONFIG, "reporter": "both"},
     'reporter: Unsupported value: "both": supported values: "source", "destination"'),
    ({**CONFIG, "windw": "5m"}, 'unknown field "windw"'),
    ({**CONFIG, "errorRate": False, "latency": False}, "errorRate, latency: at least one check must be enabled"),
    ({**CONFIG, "since": "yesterday"}, "since: must be an RFC 3339 time or unix seconds, got 'yesterday'"),
])
def test_bad_config_is_an_error_measurement_naming_the_field(config: dict[str, Any], message: str) -> None:
    def never(expr: str) -> list[dict[str, Any]]:
        raise AssertionError("no query for a bad config")

    phase, value, got = measure(config, never)
    assert (phase, value) == ("Error", "")
    assert got.startswith("sluice/judge: invalid config: " + message), got


def test_prometheus_failures_and_odd_answers_are_error_measurements() -> None:
    def down(expr: str) -> list[dict[str, Any]]:
        raise OSError("connection refused")

    phase, _, message = measure(CONFIG, down)
    assert phase == "Error" and message.startswith("query 'sum by (response_code)") and "connection refused" in message
    phase, _, message = measure(CONFIG, lambda expr: [{"metric": {}, "value": "x"}])
    assert phase == "Error" and message.startswith("Prometheus answer not understood: unexpected result item")


def test_selectors_as_mappings_and_matcher_lists() -> None:
    cfg = parse({"canary": {"destination_workload": 'we"ird'},
                 "stable": '{destination_service_name="reviews", destination_version=~"v2|v1",}'})
    assert cfg.canary == 'reporter="source", destination_workload="we\\"ird"'
    assert cfg.stable == 'reporter="source", destination_service_name="reviews", destination_version=~"v2|v1"'
    assert parse({**CONFIG, "canary": 'reporter="destination", app="x"'}).canary == 'reporter="destination", app="x"'
    assert parse({**CONFIG, "since": "2026-12-03T14:00:00"}).since == parse({**CONFIG, "since": 1796306400}).since
    assert parse_duration("1h30m", "window") == 5400 and parse_duration("90", "window") == 90
    with pytest.raises(ConfigError):
        parse_duration("0s", "window")


def test_hostile_answers_and_times_give_clear_measurements_not_tracebacks() -> None:
    def answering(v: str) -> Callable[[str], list[dict[str, Any]]]:
        def query(expr: str) -> list[dict[str, Any]]:
            if "response_code" in expr:
                return [{"metric": {"response_code": "503"}, "value": [1, v]},
                        {"metric": {"response_code": "200"}, "value": [1, v]}]
            return [{"metric": {"le": "5"}, "value": [1, v]}, {"metric": {"le": "+Inf"}, "value": [1, v]}]
        return query

    phase, _, message = measure(CONFIG, answering("1e300"))
    assert phase == "Error" and message == ("Prometheus answer not understood: 1e300 requests in one series is "
                                            "beyond what the judge accepts (1e+12)")
    for v in ("NaN", "-5", "+Inf"):  # no usable count is no traffic, never a pass
        assert measure(CONFIG, answering(v))[0] == "Inconclusive"
    assert measure({**CONFIG, "since": 1e30}, answering("1")) == (
        "Inconclusive", "", "inconclusive: since is in the future; no requests to judge yet")
    assert measure({**CONFIG, "since": 0}, answering("1")) == (
        "Error", "", "sluice/judge: invalid config: since: more than 366 days ago")
    phase, _, message = measure({**CONFIG, "window": "9999999y"}, answering("1"))
    assert (phase, message) == ("Error", 'sluice/judge: invalid config: window: duration must be at most 366d: '
                                         '"9999999y"')
    phase, _, message = measure(CONFIG, lambda expr: [{"metric": {"le": "abc"}, "value": [1, "1"]}])
    assert phase == "Error" and "a bucket series without a numeric le label" in message


def test_for_run_makes_looks_count_from_the_run_start_unless_the_block_chose_a_window() -> None:
    assert for_run(CONFIG, "2026-12-03T14:00:00Z") == {**CONFIG, "since": "2026-12-03T14:00:00Z"}
    assert for_run({**CONFIG, "window": "10m"}, "2026-12-03T14:00:00Z") == {**CONFIG, "window": "10m"}
    assert for_run({**CONFIG, "since": "1"}, "2026-12-03T14:00:00Z")["since"] == "1"
    assert for_run(CONFIG, None) == CONFIG
