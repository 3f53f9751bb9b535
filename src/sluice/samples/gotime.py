"""Go's `time.ParseDuration` and `time.Duration.String`, for the Go programs the samples stand in for
(go-httpbin's `/delay/1.5s`, fortio's `?delay=150ms`, `-t 5s` and its `Ended after 59.8524ms`)."""

from __future__ import annotations

import re

__all__ = ["parse_duration", "format_duration"]

_PART = re.compile(r"^([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float | None:
    """Seconds from a Go duration (`1.5s`, `300ms`, `1m30s`, `0`), or None if it is not one."""
    sign = -1.0 if text.startswith("-") else 1.0
    rest = text[1:] if text[:1] in ("+", "-") else text
    if rest == "0":
        return 0.0
    if not rest:
        return None
    total = 0.0
    while rest:
        m = _PART.match(rest)
        if not m or m.group(1) in ("", "."):
            return None
        total += float(m.group(1)) * _UNITS[m.group(2)]
        rest = rest[m.end():]
    return sign * total


def _frac(value: int, digits: int) -> tuple[str, int]:
    """The fraction of `value` / 10**digits without trailing zeros (Go's fmtFrac), and the integer part."""
    text = f"{value % 10**digits:0{digits}d}".rstrip("0")
    return ("." + text if text else ""), value // 10**digits


def format_duration(seconds: float) -> str:
    """`time.Duration.String()`: `59.8524ms`, `1.5s`, `2m3.004s`, `1h0m0s`, `0s`."""
    ns = int(round(seconds * 1e9))
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    u = abs(ns)
    if u < 1_000:
        return f"{sign}{u}ns"
    if u < 1_000_000:
        frac, whole = _frac(u, 3)
        return f"{sign}{whole}{frac}µs"
    if u < 1_000_000_000:
        frac, whole = _frac(u, 6)
        return f"{sign}{whole}{frac}ms"
    frac, secs = _frac(u, 9)
    out = f"{secs % 60}{frac}s"
    minutes = secs // 60
    if minutes:
        out = f"{minutes % 60}m{out}"
        if minutes // 60:
            out = f"{minutes // 60}h{out}"
    return sign + out
