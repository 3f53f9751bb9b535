"""An in-process registry of counters and classic histograms, read by the TSDB scraper and the exposition.

The collector (`sluice.telemetry.collector`) updates it on its hot path, so an update is a dict lookup done
once per distinct label set (callers keep the returned cell) followed by an attribute increment. Label
values are interned: every family of the registry that sees the same label values shares one tuple, and
the sorted `Labels` a scrape yields are built once per label set and kept.

Two views of the same data:
- `samples()`: `(Labels, value)` pairs exactly as Prometheus 3 stores a scrape of it (`__name__` included,
  histograms expanded to `_bucket{le}`, `_sum`, `_count`, `le` normalised the way Prometheus 3 does on
  ingestion, empty label values dropped). The embedded TSDB (`sluice.metrics.tsdb`) appends these.
- `families()`: `MetricFamily` records (name, type, help, samples) for the text exposition writer
  (`sluice.metrics.exposition`), with `le` printed the way Envoy prints it on `/stats/prometheus`.
"""

from __future__ import annotations

import bisect
import math
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Literal, TypeVar

from sluice.metrics.exposition import Family as MetricFamily
from sluice.metrics.exposition import Sample
from sluice.metrics.promql.format import format_g
from sluice.metrics.series import METRIC_NAME, Labels

__all__ = [
    "ENVOY_DEFAULT_BUCKETS", "MetricsRegistry", "CounterFamily", "HistogramFamily", "GaugeFamily",
    "CounterCell", "HistogramCell", "MetricFamily", "Sample", "MetricType", "prometheus_le", "envoy_le",
]

# Envoy's HistogramSettingsImpl::defaultBuckets(): Istio sets no bucket override, so these apply to the
# duration (ms) and both byte-size histograms alike.
ENVOY_DEFAULT_BUCKETS: tuple[float, ...] = (
    0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000,
)

MetricType = Literal["counter", "gauge", "histogram"]
_F = TypeVar("_F", bound="_Family")


def prometheus_le(bound: float) -> str:
    """`le` as Prometheus 3 stores it: its text parser normalises bucket bounds with Go's shortest `%g`
    and appends `.0` to integers (`1` → `1.0`, `3600000` → `3.6e+06`)."""
    if math.isinf(bound):
        return "+Inf" if bound > 0 else "-Inf"
    if bound == 0:
        return "0.0"
    text = format_g(bound)
    return text if ("e" in text or "." in text) else text + ".0"


def envoy_le(bound: float) -> str:
    """`le` as Envoy prints it on `/stats/prometheus` (`{:.32g}`): `0.5`, `1`, `3600000`."""
    if math.isinf(bound):
        return "+Inf"
    return f"{bound:.32g}"


class CounterCell:
    """One counter series; `value += n` is the whole update."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class HistogramCell:
    """One histogram series: per-bucket (not cumulative) counts, the last slot is +Inf."""

    __slots__ = ("bounds", "counts", "sum", "count")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        # bisect_left: a value equal to a bound belongs to that bound's bucket (le is "less or equal").
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1


class _Family:
    type: MetricType = "counter"

    def __init__(self, registry: MetricsRegistry, name: str, help: str, label_names: Sequence[str]) -> None:
        self.registry = registry
        self.name = name
        self.help = help
        self.label_names = tuple(label_names)
        self._name_pair = (METRIC_NAME, name)

    def __len__(self) -> int:
        return len(self._cells())

    def _cells(self) -> dict[tuple[str, ...], object]:
        raise NotImplementedError

    def remove_where(self, pred: Callable[[tuple[str, ...]], bool]) -> int:
        cells = self._cells()
        doomed = [k for k in cells if pred(k)]
        for k in doomed:
            del cells[k]
        return len(doomed)


class CounterFamily(_Family):
    type: MetricType = "counter"

    def __init__(self, registry: MetricsRegistry, name: str, help: str, label_names: Sequence[str]) -> None:
        super().__init__(registry, name, help, label_names)
        self.cells: dict[tuple[str, ...], CounterCell] = {}

    def _cells(self) -> dict[tuple[str, ...], object]:
        return self.cells  # type: ignore[return-value]

    def labels(self, values: tuple[str, ...]) -> CounterCell:
        cell = self.cells.get(values)
        if cell is None:
            cell = self.cells[self.registry.intern(self.label_names, values)] = CounterCell()
        return cell

    def _samples(self, le_format: Callable[[float], str], with_name: bool) -> Iterator[tuple[Labels, str, float]]:
        base_of = self.registry.base_labels
        for values, cell in list(self.cells.items()):  # updates may land while a reader awaits
            base, pos = base_of(self.label_names, values)
            if with_name:
                yield base[:pos] + (self._name_pair,) + base[pos:], self.name, cell.value
            else:
                yield base, self.name, cell.value


class GaugeFamily(CounterFamily):
    """Same storage as a counter; `value` may be set to anything."""

    type: MetricType = "gauge"


class HistogramFamily(_Family):
    type: MetricType = "histogram"

    def __init__(self, registry: MetricsRegistry, name: str, help: str, label_names: Sequence[str],
                 buckets: Sequence[float] = ENVOY_DEFAULT_BUCKETS) -> None:
        super().__init__(registry, name, help, label_names)
        if "le" in self.label_names:
            raise ValueError("a histogram may not have a label named le")
        self.bounds = tuple(float(b) for b in buckets)
        if list(self.bounds) != sorted(set(self.bounds)):
            raise ValueError("histogram buckets must be strictly increasing")
        self.cells: dict[tuple[str, ...], HistogramCell] = {}
        self._bucket_pair = (METRIC_NAME, name + "_bucket")
        self._sum_pair = (METRIC_NAME, name + "_sum")
        self._count_pair = (METRIC_NAME, name + "_count")
        self._le_pairs: dict[Callable[[float], str], tuple[tuple[str, str], ...]] = {}

    def _cells(self) -> dict[tuple[str, ...], object]:
        return self.cells  # type: ignore[return-value]

    def labels(self, values: tuple[str, ...]) -> HistogramCell:
        cell = self.cells.get(values)
        if cell is None:
            cell = self.cells[self.registry.intern(self.label_names, values)] = HistogramCell(self.bounds)
        return cell

    def _le(self, le_format: Callable[[float], str]) -> tuple[tuple[str, str], ...]:
        pairs = self._le_pairs.get(le_format)
        if pairs is None:
            pairs = self._le_pairs[le_format] = tuple(
                ("le", sys.intern(le_format(b))) for b in (*self.bounds, math.inf))
        return pairs

    def _samples(self, le_format: Callable[[float], str], with_name: bool) -> Iterator[tuple[Labels, str, float]]:
        base_of = self.registry.base_labels
        le_pairs = self._le(le_format)
        bucket, total, count = self.name + "_bucket", self.name + "_sum", self.name + "_count"
        for values, cell in list(self.cells.items()):  # updates may land while a reader awaits
            base, pos = base_of(self.label_names, values)
            # `le` sorts after `__name__`, so both insert points come from one bisect each.
            lpos = bisect.bisect_left(base, ("le",))
            if with_name:
                head, mid, tail = base[:pos], base[pos:lpos], base[lpos:]
                cumulative = 0
                for le, n in zip(le_pairs, cell.counts, strict=True):
                    cumulative += n
                    yield head + (self._bucket_pair,) + mid + (le,) + tail, bucket, float(cumulative)
                yield head + (self._sum_pair,) + base[pos:], total, cell.sum
                yield head + (self._count_pair,) + base[pos:], count, float(cell.count)
            else:
                head, tail = base[:lpos], base[lpos:]
                cumulative = 0
                for le, n in zip(le_pairs, cell.counts, strict=True):
                    cumulative += n
                    yield head + (le,) + tail, bucket, float(cumulative)
                yield base, total, cell.sum
                yield base, count, float(cell.count)


class MetricsRegistry:
    """Families by name, plus the interning shared by all of them."""

    def __init__(self) -> None:
        self._families: dict[str, _Family] = {}
        self._values: dict[tuple[str, ...], tuple[str, ...]] = {}
        # (label names, label values) → (sorted Labels without empty values, insert position of __name__)
        self._bases: dict[tuple[tuple[str, ...], tuple[str, ...]], tuple[Labels, int]] = {}

    # ------------------------------------------------------------------ definition
    def counter(self, name: str, help: str, label_names: Sequence[str]) -> CounterFamily:
        return self._add(CounterFamily(self, name, help, label_names))

    def gauge(self, name: str, help: str, label_names: Sequence[str]) -> GaugeFamily:
        return self._add(GaugeFamily(self, name, help, label_names))

    def histogram(self, name: str, help: str, label_names: Sequence[str],
                  buckets: Sequence[float] = ENVOY_DEFAULT_BUCKETS) -> HistogramFamily:
        return self._add(HistogramFamily(self, name, help, label_names, buckets))

    def _add(self, family: _F) -> _F:
        if family.name in self._families:
            raise ValueError(f"metric {family.name} is already registered")
        self._families[family.name] = family
        return family

    def family(self, name: str) -> CounterFamily | HistogramFamily | None:
        f = self._families.get(name)
        return f if isinstance(f, CounterFamily | HistogramFamily) else None

    # ------------------------------------------------------------------ interning
    def intern(self, names: tuple[str, ...], values: tuple[str, ...]) -> tuple[str, ...]:
        if len(values) != len(names):
            raise ValueError(f"expected {len(names)} label values, got {len(values)}")
        kept = self._values.get(values)
        if kept is None:
            kept = self._values[values] = tuple(sys.intern(v) for v in values)
        return kept

    def base_labels(self, names: tuple[str, ...], values: tuple[str, ...]) -> tuple[Labels, int]:
        key = (names, values)
        got = self._bases.get(key)
        if got is None:
            base: Labels = tuple(sorted((n, v) for n, v in zip(names, values, strict=True) if v != ""))
            got = self._bases[key] = (base, bisect.bisect_left(base, (METRIC_NAME,)))
        return got

    def remove_where(self, pred: Callable[[tuple[str, ...], tuple[str, ...]], bool]) -> int:
        """Drop every series whose (label names, values) satisfy `pred`; returns how many went."""
        removed = 0
        for f in self._families.values():
            names = f.label_names
            removed += f.remove_where(lambda values: pred(names, values))  # noqa: B023 - used at once
        live = {(f.label_names, v) for f in self._families.values() for v in f._cells()}
        for key in [k for k in self._bases if k not in live]:
            del self._bases[key]
        live_values = {v for _, v in live}
        for v in [v for v in self._values if v not in live_values]:
            del self._values[v]
        return removed

    # ------------------------------------------------------------------ reading
    def samples(self) -> Iterable[tuple[Labels, float]]:
        """Every sample as a Prometheus 3 scrape stores it (see the module docstring)."""
        for f in list(self._families.values()):
            if isinstance(f, CounterFamily | HistogramFamily):
                for labels, _, value in f._samples(prometheus_le, True):
                    yield labels, value

    def families(self) -> list[MetricFamily]:
        """Families for the text exposition (Envoy's `le` format); families without series included."""
        out = []
        for f in list(self._families.values()):
            if isinstance(f, CounterFamily | HistogramFamily):
                samples = [Sample(name, labels, value) for labels, name, value in f._samples(envoy_le, False)]
                out.append(MetricFamily(f.name, f.type, f.help, samples))
        return out

    # ------------------------------------------------------------------ persistence
    def dump(self) -> dict[str, Any]:
        """The counters' and histograms' values as plain data (JSON-ready), for `restore` after a restart.

        Gauges are left out: a restarted daemon's gauge says what is true now, not what was."""
        out: dict[str, Any] = {}
        for f in list(self._families.values()):
            if isinstance(f, HistogramFamily):
                # The label values' tuple itself (immutable; JSON writes it as a list), the counts copied.
                rows: list[Any] = [[v, c.counts[:], c.sum, c.count] for v, c in list(f.cells.items())]
            elif isinstance(f, CounterFamily) and not isinstance(f, GaugeFamily):
                rows = [[v, c.value] for v, c in list(f.cells.items())]
            else:
                continue
            out[f.name] = {"labels": list(f.label_names), "cells": rows}
        return out

    def restore(self, data: dict[str, Any]) -> int:
        """Set the cells `dump` wrote, for families defined the same way (same label names, same bucket count);
        returns how many series were restored. Called before anything updates the registry."""
        restored = 0
        for name, fam in data.items():
            f = self._families.get(name)
            if f is None or not isinstance(fam, dict) or fam.get("labels") != list(f.label_names):
                continue
            width = len(f.label_names)
            for row in fam.get("cells") or []:
                values = tuple(str(v) for v in row[0])
                if len(values) != width:
                    continue
                if isinstance(f, HistogramFamily):
                    counts = [int(n) for n in row[1]]
                    if len(counts) != len(f.bounds) + 1:
                        continue
                    h = f.labels(values)
                    h.counts, h.sum, h.count = counts, float(row[2]), int(row[3])
                elif isinstance(f, CounterFamily):
                    f.labels(values).value = float(row[1])
                restored += 1
        return restored

    @property
    def series_count(self) -> int:
        """Distinct label sets over all families (a histogram counts once, not per bucket)."""
        return sum(len(f) for f in self._families.values())
