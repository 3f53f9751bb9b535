"""What the evaluator and the operator, aggregation and function modules share: the per-step result type,
the query's deadline, range-vector arguments and the limits on how much a query may compute.

Kept apart from `evaluator` so that `binops`, `aggregate`, `calls` and `columnar` need it only as a type: the
evaluator imports them, not the other way round.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import ast as A
from .cancel import Cancellation
from .errors import EvalError, QueryCanceled, QueryTimeout
from .values import Sample, Series

if TYPE_CHECKING:
    from .evaluator import Evaluator

__all__ = ["Steps", "Deadline", "TimedSteps", "RangeArg", "unwrap", "subquery_steps", "MAX_POINTS",
           "MAX_INNER_STEPS", "TOO_MANY_SAMPLES", "CHECK_EVERY"]

Steps = list[list[Sample]]

# Prometheus's limit on points per series in a range query (web/api/v1); here it also bounds a subquery's
# range/step ratio, which is the same resolution question asked inside a query.
MAX_POINTS = 11_000
# A subquery evaluates its expression over every inner step of the whole outer range at once; each step costs
# memory before any sample is read, so the inner evaluation is bounded too (100 outer ranges of MAX_POINTS).
MAX_INNER_STEPS = 100 * MAX_POINTS
TOO_MANY_SAMPLES = "query processing would load too many samples into memory in query execution"
# How many per-series steps run between two looks at the clock: a step of a selector is a bisect, a window of
# a range function can be thousands of points (quantile_over_time sorts them).
CHECK_EVERY = 1024
CHECK_EVERY_WINDOW = 32


class Deadline:
    """When a query must stop: past `at` (time.monotonic()), or once its cancellation is set."""

    __slots__ = ("at", "cancel")

    def __init__(self, at: float | None = None, cancel: Cancellation | None = None) -> None:
        self.at = at
        self.cancel = cancel

    def check(self) -> None:
        if self.cancel is not None and self.cancel.cancelled:
            raise QueryCanceled()
        if self.at is not None and time.monotonic() > self.at:
            raise QueryTimeout()


class TimedSteps(list[list[Sample]]):
    """The per-step result of an instant-vector expression; iterating it (every binary operator, aggregation
    and function walks its argument's steps) checks the query's deadline, so no step loop outlives it."""

    __slots__ = ("deadline",)

    def __init__(self, steps: Steps, deadline: Deadline) -> None:
        super().__init__(steps)
        self.deadline = deadline

    def __iter__(self) -> Iterator[list[Sample]]:
        return _timed(super().__iter__(), self.deadline)


def _timed(it: Iterator[list[Sample]], deadline: Deadline) -> Iterator[list[Sample]]:
    for vec in it:
        deadline.check()
        yield vec


def unwrap(node: A.Expr) -> A.Expr:
    while isinstance(node, A.ParenExpr):
        node = node.expr
    return node


@dataclass
class RangeArg:
    """A range-vector argument: series (stale markers dropped) and, per step, the window's right edge."""

    series: list[Series]
    refs: list[int]  # window k is (refs[k] - range_ms, refs[k]]
    range_ms: int
    from_subquery: bool = False

    deadline: Deadline = field(default_factory=Deadline)

    def windows(self, s: Series) -> Iterator[tuple[int, list[int], list[float]]]:
        """(step index, timestamps, values) for each step whose window holds at least one point."""
        ts = s.timestamps
        deadline = self.deadline
        for k, r in enumerate(self.refs):
            if not k % CHECK_EVERY_WINDOW:
                deadline.check()
            lo = bisect.bisect_right(ts, r - self.range_ms)
            hi = bisect.bisect_right(ts, r)
            if lo < hi:
                yield k, ts[lo:hi], s.values[lo:hi]


def subquery_steps(ev: Evaluator, sq: A.SubqueryExpr, min_ref: int, max_ref: int) -> tuple[int, int, int] | None:
    """The inner evaluation's (first, last, step) for a subquery whose windows end at min_ref..max_ref; None
    when no inner step falls in them. Refuses, as Prometheus, resolutions it would not compute."""
    step = sq.step_ms or ev.subquery_step_ms
    if sq.range_ms // step > MAX_POINTS:
        window = f"[{A.format_duration(sq.range_ms)}:{A.format_duration(step)}]"
        raise EvalError(f"exceeded maximum resolution of {MAX_POINTS:,} points per timeseries in subquery "
                        f"{window}. Try increasing the subquery step")
    # Inner steps are the multiples of the step inside (min ref - range, max ref], as in Prometheus.
    first = ((min_ref - sq.range_ms) // step + 1) * step
    last = max_ref
    if first > last:
        return None
    n_steps = (last - first) // step + 1
    if n_steps > MAX_INNER_STEPS:
        raise EvalError(TOO_MANY_SAMPLES)
    # Every inner step holds a point of every series it selects: charge at least one series' worth before
    # allocating them, as Prometheus counts a subquery's points against --query.max-samples.
    ev.count_samples(n_steps)
    return first, last, step
