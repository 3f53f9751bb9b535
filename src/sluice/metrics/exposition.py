"""Prometheus text exposition format 0.0.4: the body of `GET /metrics` that a stock Prometheus scrapes.

The daemon hands `render` its metric families (the telemetry registry's `families()` fit the `FamilyLike`
protocol as they are); `histogram_samples` expands one classic histogram into its `_bucket`/`_sum`/`_count`
lines for callers that hold raw bucket counts. Numbers are written the way client_golang writes them
(Go's `strconv.FormatFloat(f, 'g', -1, 64)`: `0.5`, `1`, `1.5e+06`, `+Inf`, `NaN`), so our output and a Go
exporter's read the same.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sluice.metrics.promql.format import format_g
from sluice.metrics.series import Labels

__all__ = [
    "CONTENT_TYPE", "Sample", "Family", "SampleLike", "FamilyLike", "render", "histogram_samples", "format_g",
    "escape_label_value", "escape_help",
]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class SampleLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def labels(self) -> Labels: ...
    @property
    def value(self) -> float: ...


class FamilyLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def help(self) -> str: ...
    @property
    def samples(self) -> Sequence[SampleLike]: ...


@dataclass(frozen=True, slots=True)
class Sample:
    """One line: `name{labels} value [timestamp_ms]`; labels without `__name__`."""

    name: str
    labels: Labels
    value: float
    timestamp_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    type: str  # counter | gauge | histogram | summary | untyped
    help: str = ""
    samples: Sequence[Sample] = field(default_factory=list)


def escape_label_value(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(s: str) -> str:
    return s.replace("\\", "\\\\").replace("\n", "\\n")


def _line(name: str, labels: Labels, value: float, timestamp_ms: int | None = None) -> str:
    if labels:
        inner = ",".join(f'{k}="{escape_label_value(v)}"' for k, v in labels if k != "__name__")
        head = f"{name}{{{inner}}}" if inner else name
    else:
        head = name
    if timestamp_ms is None:
        return f"{head} {format_g(value)}\n"
    return f"{head} {format_g(value)} {timestamp_ms}\n"


def render(families: Iterable[FamilyLike]) -> str:
    """The whole exposition: per family `# HELP` (if any) and `# TYPE` once, then all its samples together.

    Families that share a name are merged, so HELP/TYPE still appear once and the family's lines stay in one
    group, as the format requires.
    """
    order: list[str] = []
    merged: dict[str, tuple[FamilyLike, list[SampleLike]]] = {}
    for fam in families:
        if fam.name in merged:
            merged[fam.name][1].extend(fam.samples)
        else:
            order.append(fam.name)
            merged[fam.name] = (fam, list(fam.samples))
    out: list[str] = []
    for name in order:
        fam, samples = merged[name]
        if fam.help:
            out.append(f"# HELP {name} {escape_help(fam.help)}\n")
        out.append(f"# TYPE {name} {fam.type}\n")
        for s in samples:
            out.append(_line(s.name, s.labels, s.value, getattr(s, "timestamp_ms", None)))
    return "".join(out)


def histogram_samples(name: str, labels: Labels, buckets: Sequence[tuple[float, float]], total: float,
                      count: float | None = None) -> list[Sample]:
    """Expand a classic histogram: `buckets` are (upper bound, non-cumulative count) in any order.

    Writes cumulative `_bucket{le}` lines in increasing bound order, always ending with `le="+Inf"` equal to
    `_count`, then `_sum` and `_count` (`count` defaults to the sum of the bucket counts).
    """
    ordered = sorted(buckets)
    observed = sum(c for _, c in ordered)
    n = observed if count is None else count
    base = tuple(kv for kv in labels if kv[0] not in ("__name__", "le"))
    out: list[Sample] = []
    cumulative = 0.0
    for bound, c in ordered:
        cumulative += c
        if math.isinf(bound):
            continue
        out.append(Sample(f"{name}_bucket", _with_le(base, format_g(bound)), cumulative))
    out.append(Sample(f"{name}_bucket", _with_le(base, "+Inf"), n))
    out.append(Sample(f"{name}_sum", base, total))
    out.append(Sample(f"{name}_count", base, n))
    return out


def _with_le(base: Labels, le: str) -> Labels:
    return tuple(sorted((*base, ("le", le))))
