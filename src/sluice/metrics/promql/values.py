"""Query results (vector, matrix, scalar, string) and the label-set helpers the engine shares.

Labels are the storage contract's sorted tuples of (name, value); helpers here return new tuples.
`Sample` and `Series` are the engine's working values; they carry `drop_name`, Prometheus's delayed
`__name__` removal flag, which the engine resolves once, at the end of a query.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from sluice.metrics.series import METRIC_NAME, Labels

from .format import format_float, go_quote

__all__ = [
    "Labels", "Sample", "Series", "Scalar", "String", "Vector", "Matrix", "Value", "QueryResult",
    "get_label", "without_labels", "keep_labels", "set_label", "labels_str", "drop_name",
]


@dataclass(slots=True)
class Sample:
    """One element of an instant vector. `t` is the evaluation time (the sample's own time for `timestamp`)."""

    metric: Labels
    value: float
    t: int = 0
    drop_name: bool = False


@dataclass(slots=True)
class Series:
    """One element of a range vector: points in time order, stale markers already removed."""

    metric: Labels
    timestamps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    drop_name: bool = False

    @property
    def points(self) -> list[tuple[int, float]]:
        return list(zip(self.timestamps, self.values, strict=True))


@dataclass(frozen=True, slots=True)
class Scalar:
    t: int
    value: float


@dataclass(frozen=True, slots=True)
class String:
    t: int
    value: str


Vector = list[Sample]
Matrix = list[Series]
Value: TypeAlias = Vector | Matrix | Scalar | String


@dataclass(slots=True)
class QueryResult:
    type: Literal["vector", "matrix", "scalar", "string"]
    value: Value
    warnings: list[str] = field(default_factory=list)
    infos: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        if isinstance(self.value, Scalar):
            return f"scalar: {format_float(self.value.value)} @[{self.value.t}]"
        if isinstance(self.value, String):
            return f"string: {self.value.value!r} @[{self.value.t}]"
        lines: list[str] = []
        for el in self.value:
            if isinstance(el, Sample):
                lines.append(f"{labels_str(el.metric)} => {format_float(el.value)} @[{el.t}]")
            else:
                pts = " ".join(f"{format_float(v)} @[{t}]" for t, v in zip(el.timestamps, el.values, strict=True))
                lines.append(f"{labels_str(el.metric)} =>\n{pts}")
        return "\n".join(lines)


def get_label(labels: Labels, name: str) -> str:
    for k, v in labels:
        if k == name:
            return v
    return ""


def without_labels(labels: Labels, names: Iterable[str]) -> Labels:
    drop = set(names)
    return tuple(kv for kv in labels if kv[0] not in drop)


def keep_labels(labels: Labels, names: Iterable[str]) -> Labels:
    keep = set(names)
    return tuple(kv for kv in labels if kv[0] in keep)


def set_label(labels: Labels, name: str, value: str) -> Labels:
    """Set (or, for an empty value, delete) one label, keeping the tuple sorted."""
    rest = [kv for kv in labels if kv[0] != name]
    if value != "":
        rest.append((name, value))
        rest.sort()
    return tuple(rest)


_NAME_KEY = (METRIC_NAME,)  # sorts just before the (METRIC_NAME, value) pair


def drop_name(labels: Labels) -> Labels:
    # Labels are sorted by name: the name is found by bisection and cut out with two slices, not a pass over
    # every pair (this runs for every series of most results).
    i = bisect_left(labels, _NAME_KEY)
    if i < len(labels) and labels[i][0] == METRIC_NAME:
        return labels[:i] + labels[i + 1:]
    return labels


def _is_legacy_name(name: str) -> bool:
    return bool(name) and (name[0].isascii() and (name[0].isalpha() or name[0] == "_")) and all(
        c.isascii() and (c.isalnum() or c == "_") for c in name)


def labels_str(labels: Labels) -> str:
    """Prometheus's Labels.String(): `{__name__="x", a="b"}`."""
    parts = [f"{k if _is_legacy_name(k) else go_quote(k)}={go_quote(v)}" for k, v in labels]
    return "{" + ", ".join(parts) + "}"
