"""The plugin's configuration block (`provider: {plugin: {"sluice/judge": {...}}}`), parsed and checked.

Errors name the field as Argo's analysis validation does (`canary: ...`), and `measure` reports them as an
Error measurement; nothing here does I/O. docs/judge.md documents every field.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sluice.metrics.exposition import escape_label_value
from sluice.rollouts.judge import errorrate, latency

PLUGIN_NAME = "sluice/judge"
MAX_DURATION_S = 366 * 86400


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the field."""


_LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
_STRING = r'"(?:[^"\\\n]|\\.)*"'
_MATCHER = re.compile(rf"\s*({_LABEL})\s*(=~|!~|!=|=)\s*({_STRING})\s*")
_DURATION = re.compile(r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$")
_HAS_REPORTER = re.compile(r"(^|,\s*)reporter\s*(=~|!~|!=|=)")
_UNITS = (365 * 86400, 7 * 86400, 86400, 3600, 60, 1, 0.001)


@dataclass(frozen=True)
class Config:
    canary: str  # PromQL label matchers, without braces
    stable: str
    window_s: float | None  # look-back window; None when `since` is set
    since: float | None  # unix seconds: every look counts all requests since then (nested looks)
    alpha: float
    power: float
    min_requests: int
    error_codes: re.Pattern[str] | None  # None: the error-rate check is off
    errors: errorrate.Bounds
    latency: latency.Bounds | None  # None: the latency check is off


def parse_duration(text: str, field: str) -> float:
    """Prometheus's duration syntax (`30s`, `5m`, `1h30m`), or a number of seconds."""
    t = text.strip()
    try:
        v = float(t)
    except ValueError:
        m = _DURATION.match(t)
        if not t or m is None:
            raise ConfigError(f'{field}: not a valid duration string: "{text}"') from None
        v = sum(int(g) * u for g, u in zip(m.groups(), _UNITS, strict=True) if g)
    if not math.isfinite(v) or v <= 0:
        raise ConfigError(f'{field}: duration must be greater than 0: "{text}"')
    if v > MAX_DURATION_S:
        raise ConfigError(f'{field}: duration must be at most 366d: "{text}"')
    return v


def _matchers(value: Any, field: str) -> str:
    """`destination_workload="reviews-v3", reporter="source"` or a mapping of label → exact value."""
    if isinstance(value, Mapping):
        if not value:
            raise ConfigError(f"{field}: at least one label matcher is required")
        parts = []
        for k, v in value.items():
            if not isinstance(k, str) or not re.fullmatch(_LABEL, k) or not isinstance(v, str):
                raise ConfigError(f"{field}: invalid label matcher {k!r}: {v!r}")
            parts.append(f'{k}="{escape_label_value(v)}"')
        return ", ".join(parts)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f'{field}: required: PromQL label matchers such as destination_workload="reviews-v3"')
    text = value.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    pos, parts = 0, []
    while True:
        m = _MATCHER.match(text, pos)
        if m is None:
            raise ConfigError(f"{field}: invalid label matcher at character {pos}: {text[pos:pos + 40]!r}")
        parts.append(f"{m.group(1)}{m.group(2)}{m.group(3)}")
        pos = m.end()
        if pos == len(text):
            break
        if text[pos] != ",":
            raise ConfigError(f"{field}: expected \",\" at character {pos}: {text[pos:pos + 40]!r}")
        pos += 1
        if pos == len(text):  # a trailing comma, as PromQL allows
            break
    return ", ".join(parts)


def _number(block: Mapping[str, Any], key: str, default: float, field: str, lo: float, hi: float,
            lo_open: bool = False, hi_open: bool = False) -> float:
    raw = block.get(key, default)
    if isinstance(raw, bool):
        raise ConfigError(f"{field}.{key}: must be a number, got {raw!r}")
    try:
        v = float(raw)  # Argo args are strings after templating: accept "0.05"
    except (TypeError, ValueError):
        raise ConfigError(f"{field}.{key}: must be a number, got {raw!r}") from None
    bad = (not math.isfinite(v) or v < lo or v > hi or (lo_open and v == lo) or (hi_open and v == hi))
    if bad:
        lb, hb = "(" if lo_open else "[", ")" if hi_open else "]"
        raise ConfigError(f"{field}.{key}: must be in {lb}{lo:g}, {hi:g}{hb}, got {raw!r}")
    return v


def _block(config: Mapping[str, Any], key: str, enabled: bool) -> Mapping[str, Any] | None:
    if key not in config:
        return {} if enabled else None
    raw = config[key]
    if raw is None or raw is False:
        return None
    if raw is True:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{key}: must be an object, got {type(raw).__name__}")
    if raw.get("enabled", True) in (False, "false"):
        return None
    return raw


def _since(raw: Any) -> float:
    if isinstance(raw, bool):
        raise ConfigError(f"since: must be an RFC 3339 time or unix seconds, got {raw!r}")
    if isinstance(raw, int | float):
        v = float(raw)
    elif isinstance(raw, str):
        try:
            v = float(raw)
        except ValueError:
            try:
                when = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
                # Kubernetes times are UTC; a time without an offset is read as UTC, not as local time.
                v = (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
            except ValueError:
                raise ConfigError(f"since: must be an RFC 3339 time or unix seconds, got {raw!r}") from None
    else:
        raise ConfigError(f"since: must be an RFC 3339 time or unix seconds, got {raw!r}")
    if not math.isfinite(v):
        raise ConfigError(f"since: must be finite, got {raw!r}")
    return v


KNOWN = {"canary", "stable", "reporter", "window", "since", "alpha", "power", "minRequests", "errorRate",
         "latency"}


def parse(config: Mapping[str, Any]) -> Config:
    if not isinstance(config, Mapping):
        raise ConfigError(f"{PLUGIN_NAME}: config must be an object, got {type(config).__name__}")
    unknown = sorted(set(config) - KNOWN)
    if unknown:
        raise ConfigError(f"unknown field \"{unknown[0]}\" (known: {', '.join(sorted(KNOWN))})")
    reporter = config.get("reporter", "source")
    if reporter not in ("source", "destination", "", None):
        raise ConfigError(f'reporter: Unsupported value: "{reporter}": supported values: "source", "destination"')
    canary = _matchers(config.get("canary"), "canary")
    stable = _matchers(config.get("stable"), "stable")
    if canary == stable:
        raise ConfigError("stable: the canary and stable selectors are the same; two different selectors are required")
    if reporter:
        canary = canary if _HAS_REPORTER.search(canary) else f'reporter="{reporter}", {canary}'
        stable = stable if _HAS_REPORTER.search(stable) else f'reporter="{reporter}", {stable}'
    since = _since(config["since"]) if config.get("since") not in (None, "") else None
    window = None if since is not None else parse_duration(str(config.get("window", "5m")), "window")
    alpha = _number(config, "alpha", 0.05, "config", 0.0, 0.5, lo_open=True)
    power = _number(config, "power", 0.8, "config", 0.5, 1.0, hi_open=True)
    min_requests = int(_number(config, "minRequests", 20, "config", 1, 1e9))

    err_block = _block(config, "errorRate", enabled="latency" not in config or "errorRate" in config)
    lat_block = _block(config, "latency", enabled="errorRate" not in config or "latency" in config)
    if err_block is None and lat_block is None:
        raise ConfigError("errorRate, latency: at least one check must be enabled")
    codes: re.Pattern[str] | None = None
    errors = errorrate.Bounds()
    if err_block is not None:
        unknown = sorted(set(err_block) - {"enabled", "errorCodes", "tolerance", "toleranceIncrease", "detect",
                                           "detectIncrease"})
        if unknown:
            raise ConfigError(f'errorRate: unknown field "{unknown[0]}"')
        pattern = str(err_block.get("errorCodes", "5.."))
        try:
            codes = re.compile(pattern)
        except re.error as e:
            raise ConfigError(f"errorRate.errorCodes: error parsing regexp: {e}: `{pattern}`") from None
        f = "errorRate"
        errors = errorrate.Bounds(
            tolerance=_number(err_block, "tolerance", 1.0, f, 0.0, 1e6, lo_open=True),
            tolerance_plus=_number(err_block, "toleranceIncrease", 0.0, f, 0.0, 1.0, hi_open=True),
            detect=_number(err_block, "detect", 2.0, f, 0.0, 1e6, lo_open=True),
            detect_plus=_number(err_block, "detectIncrease", 0.005, f, 0.0, 1.0, hi_open=True))
        if errors.detect < errors.tolerance or errors.detect_plus <= errors.tolerance_plus:
            raise ConfigError("errorRate: detect must be >= tolerance and detectIncrease > toleranceIncrease "
                              "(the rates the canary must not reach lie above the ones it may reach)")
    lat: latency.Bounds | None = None
    if lat_block is not None:
        unknown = sorted(set(lat_block) - {"enabled", "tolerance", "detect"})
        if unknown:
            raise ConfigError(f'latency: unknown field "{unknown[0]}"')
        lat = latency.Bounds(tolerance=_number(lat_block, "tolerance", 0.5, "latency", 0.0, 1.0, hi_open=True),
                             detect=_number(lat_block, "detect", 0.6, "latency", 0.0, 1.0, lo_open=True))
        if lat.detect <= lat.tolerance:
            raise ConfigError(f"latency.detect: must be greater than latency.tolerance ({lat.tolerance:g}), "
                              f"got {lat.detect:g}")
    return Config(canary, stable, window, since, alpha, power, min_requests, codes, errors, lat)


def for_run(config: Mapping[str, Any], started_at: str | None) -> dict[str, Any]:
    """The config to pass for one look of an AnalysisRun that started at `started_at` (its
    `status.startedAt`): unless the block chose a `window` or a `since`, every look counts every request since
    the run started, so the looks are nested and the sequential guarantee is exact."""
    out = dict(config)
    if started_at and "window" not in out and out.get("since") in (None, ""):
        out["since"] = started_at
    return out
