"""The judge as an analysis provider: query Prometheus for canary and stable over the same window, then judge.

The only I/O is the `query` callable the controller hands in (an instant PromQL query returning the HTTP API's
`data.result`) and the clock, read once to size the window when `since` is set.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from sluice.rollouts.judge import config as configuration
from sluice.rollouts.judge.verdict import ERROR, INCONCLUSIVE, ErrorCounts, Histograms, combine

Query = Callable[[str], list[dict[str, Any]]]

MAX_COUNT = 1e12  # per series and window; far beyond real traffic, well inside the statistics' float range
MAX_SPAN_S = 366 * 86400  # the longest window `since` may open
REQUESTS = "istio_requests_total"
DURATION = "istio_request_duration_milliseconds_bucket"


def queries(cfg: configuration.Config, window: str) -> dict[str, str]:
    """The four PromQL queries a measurement runs (named for the value's metadata and for tests)."""
    q = {}
    if cfg.error_codes is not None:
        for arm, sel in (("canary", cfg.canary), ("stable", cfg.stable)):
            q[f"{arm}Requests"] = f"sum by (response_code) (increase({REQUESTS}{{{sel}}}[{window}]))"
    if cfg.latency is not None:
        for arm, sel in (("canary", cfg.canary), ("stable", cfg.stable)):
            q[f"{arm}Latency"] = f"sum by (le) (increase({DURATION}{{{sel}}}[{window}]))"
    return q


class _BadAnswer(ValueError):
    pass


def _value(item: Mapping[str, Any]) -> float:
    try:
        v = float(item["value"][1])
    except (KeyError, IndexError, TypeError, ValueError):
        raise _BadAnswer(f"unexpected result item {str(item)[:120]}") from None
    # increase() extrapolates; a count is whole and never negative (NaN: a series with one sample).
    if not math.isfinite(v) or v < 0:
        return 0.0
    if v > MAX_COUNT:
        raise _BadAnswer(f"{item['value'][1]} requests in one series is beyond what the judge accepts "
                         f"({MAX_COUNT:.0e})")
    return float(round(v))


def _items(result: Any) -> Iterable[Mapping[str, Any]]:
    if not isinstance(result, list):
        raise _BadAnswer(f"expected a vector result, got {type(result).__name__}")
    for item in result:
        if not isinstance(item, Mapping) or not isinstance(item.get("metric", {}), Mapping):
            raise _BadAnswer(f"unexpected result item {str(item)[:120]}")
        yield item


def _error_counts(result: Any, codes: Any) -> tuple[float, float]:
    total = errors = 0.0
    for item in _items(result):
        v = _value(item)
        total += v
        if codes.fullmatch(str(item.get("metric", {}).get("response_code", ""))):
            errors += v
    return total, errors


def _buckets(result: Any) -> dict[float, float]:
    out: dict[float, float] = {}
    for item in _items(result):
        le = item.get("metric", {}).get("le")
        try:
            bound = float(le)  # "+Inf" parses
        except (TypeError, ValueError):
            raise _BadAnswer(f"a bucket series without a numeric le label: {str(item)[:120]}") from None
        out[bound] = out.get(bound, 0.0) + _value(item)
    return out


def histograms(canary: Mapping[float, float], stable: Mapping[float, float]) -> Histograms:
    """Cumulative `le` series of both arms → per-bucket counts on the union of their bounds. A bound only one
    arm reports is filled from that arm's next lower cumulative count (no requests fell in between)."""
    bounds = sorted(set(canary) | set(stable) | {math.inf})

    def per_bucket(cum: Mapping[float, float]) -> list[float]:
        out, last = [], 0.0
        for b in bounds:
            c = cum.get(b, last)
            if b == math.inf and b not in cum:
                c = max(cum.values(), default=0.0)
            c = max(c, last)  # rounding can make a cumulative series dip by one
            out.append(c - last)
            last = c
        return out

    return Histograms(bounds, per_bucket(canary), per_bucket(stable))


def measure(config: Mapping[str, Any], query: Query) -> tuple[str, str, str]:
    """One measurement: (phase, value, message) with Argo's measurement phases."""
    try:
        cfg = configuration.parse(config)
    except configuration.ConfigError as e:
        return ERROR, "", f"{configuration.PLUGIN_NAME}: invalid config: {e}"
    if cfg.since is not None:
        span = math.ceil(time.time() - cfg.since)
        if span < 1:
            ahead = f" by {-span + 1}s" if span > -86400 else ""
            return INCONCLUSIVE, "", f"inconclusive: since is in the future{ahead}; no requests to judge yet"
        if span > MAX_SPAN_S:
            return ERROR, "", f"{configuration.PLUGIN_NAME}: invalid config: since: more than 366 days ago"
        window = f"{span}s"
    else:
        assert cfg.window_s is not None
        window = f"{math.ceil(cfg.window_s * 1000)}ms" if cfg.window_s < 1 else f"{math.ceil(cfg.window_s)}s"
    qs = queries(cfg, window)
    answers: dict[str, Any] = {}
    for name, expr in qs.items():
        try:
            answers[name] = query(expr)
        except Exception as e:  # noqa: BLE001 - any failure of the provider is an Error measurement, as in Argo
            return ERROR, "", f"query {expr!r} failed: {e}"
    try:
        errors = None
        if cfg.error_codes is not None:
            n_c, x_c = _error_counts(answers["canaryRequests"], cfg.error_codes)
            n_s, x_s = _error_counts(answers["stableRequests"], cfg.error_codes)
            errors = ErrorCounts(n_c, x_c, n_s, x_s)
        hist = None
        if cfg.latency is not None:
            hist = histograms(_buckets(answers["canaryLatency"]), _buckets(answers["stableLatency"]))
    except _BadAnswer as e:
        return ERROR, "", f"Prometheus answer not understood: {e}"
    label = "5xx" if cfg.error_codes is not None and cfg.error_codes.pattern == "5.." else "errors"
    with np.errstate(all="ignore"):  # extreme counts give inf/NaN e-values, read as "no decision", not noise
        v = combine(cfg, window, errors, hist, label)
    return v.phase, v.value, v.message
