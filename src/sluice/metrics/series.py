"""The contract between the PromQL engine and any storage: labels, samples, series and the `Storage` protocol.

The engine (`sluice.metrics.promql`) reads through `Storage.select`; the daemon's TSDB (`sluice.metrics.tsdb`)
and the in-memory store the PromQL conformance tests load (`MemStorage`) implement it. Times are integer
milliseconds since the epoch; values are floats; Prometheus's stale marker is a particular NaN bit pattern.
"""

from __future__ import annotations

import math
import struct
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeGuard

from sluice.metrics.regex import Regex, compile_anchored

__all__ = [
    "Labels", "labels_of", "Matcher", "MatchType", "Series", "Storage", "PartsStorage", "Part", "hands_out_parts",
    "MemStorage", "STALE_NAN", "is_stale", "METRIC_NAME",
]

METRIC_NAME = "__name__"
# Prometheus writes this NaN when a series disappears (value.StaleNaN); a normal NaN is 0x7ff8000000000001.
STALE_NAN: float = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]


def is_stale(v: float) -> bool:
    return math.isnan(v) and struct.pack("<d", v) == struct.pack("<Q", 0x7FF0000000000002)


Labels = tuple[tuple[str, str], ...]  # sorted by name, no empty values; hashable


def labels_of(m: Mapping[str, str]) -> Labels:
    return tuple(sorted((k, v) for k, v in m.items() if v != ""))


MatchType = str  # "=", "!=", "=~", "!~"


@dataclass(frozen=True)
class Matcher:
    name: str
    type: MatchType
    value: str
    _re: Regex | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        """Raises `RegexError` (Go's `error parsing regexp: …` text) for a regex RE2 rejects."""
        if self.type in ("=~", "!~"):
            # Prometheus regexes are fully anchored RE2 with `.` matching newlines: `^(?s:…)$`.
            object.__setattr__(self, "_re", compile_anchored(self.value))

    def matches(self, value: str) -> bool:
        if self.type == "=":
            return value == self.value
        if self.type == "!=":
            return value != self.value
        assert self._re is not None
        ok = self._re.fullmatch(value)
        return ok if self.type == "=~" else not ok


@dataclass(frozen=True)
class Series:
    """One series' samples in [start, end], oldest first (stale markers included: the engine handles them)."""

    labels: Labels
    timestamps: Sequence[int]
    values: Sequence[float]


class Storage(Protocol):
    def select(self, matchers: Sequence[Matcher], start_ms: int, end_ms: int) -> Iterable[Series]:
        """Every series whose labels satisfy all matchers, with its samples in [start_ms, end_ms]."""
        ...

    def label_names(self, matchers: Sequence[Matcher], start_ms: int, end_ms: int) -> list[str]: ...

    def label_values(self, name: str, matchers: Sequence[Matcher], start_ms: int, end_ms: int) -> list[str]: ...


# A piece of one series' samples: a decoded chunk, a head copy, or a cut of one (at most a chunk's worth).
Part = tuple["array[int]", "array[float]"]


class PartsStorage(Storage, Protocol):
    """A storage that can also hand out a selection's samples in the pieces it keeps them in (the TSDB's chunks
    and head), for a reader that joins many series into one array anyway: timestamps as `array('q')`, values as
    `array('d')` (the reader joins their bytes)."""

    def select_parts(self, matchers: Sequence[Matcher], start_ms: int,
                     end_ms: int) -> Iterable[tuple[Labels, list[Part]]]: ...


def hands_out_parts(storage: Storage) -> TypeGuard[PartsStorage]:
    return hasattr(storage, "select_parts")


class MemStorage:
    """A plain in-memory `Storage` (tests, `load` blocks of promqltest files)."""

    def __init__(self) -> None:
        self._series: dict[Labels, tuple[list[int], list[float]]] = {}

    def append(self, labels: Labels, t_ms: int, v: float) -> None:
        ts, vs = self._series.setdefault(labels, ([], []))
        if ts and t_ms <= ts[-1]:
            if t_ms == ts[-1]:
                vs[-1] = v
                return
            raise ValueError(f"out of order sample for {labels}: {t_ms} <= {ts[-1]}")
        ts.append(t_ms)
        vs.append(v)

    def clear(self) -> None:
        self._series.clear()

    def _matching(self, matchers: Sequence[Matcher]) -> Iterator[Labels]:
        for labels in self._series:
            d = dict(labels)
            if all(m.matches(d.get(m.name, "")) for m in matchers):
                yield labels

    def select(self, matchers: Sequence[Matcher], start_ms: int, end_ms: int) -> Iterable[Series]:
        import bisect

        for labels in self._matching(matchers):
            ts, vs = self._series[labels]
            lo = bisect.bisect_left(ts, start_ms)
            hi = bisect.bisect_right(ts, end_ms)
            if lo < hi:
                yield Series(labels, ts[lo:hi], vs[lo:hi])

    def label_names(self, matchers: Sequence[Matcher], start_ms: int, end_ms: int) -> list[str]:
        names = {k for s in self.select(matchers, start_ms, end_ms) for k, _ in s.labels}
        return sorted(names)

    def label_values(self, name: str, matchers: Sequence[Matcher], start_ms: int, end_ms: int) -> list[str]:
        vals = {dict(s.labels).get(name, "") for s in self.select(matchers, start_ms, end_ms)}
        return sorted(v for v in vals if v)
