"""The evaluator: one walk over the AST for a whole range of steps at once (Prometheus's rangeEval model).

Every instant-vector expression evaluates to `Steps` (one `Vector` per step), every scalar to one float per
step; range vectors (matrix selectors, subqueries) are only read through `range_arg`, which yields each
series' window at each step. Fatal problems raise `EvalError`; `warnings`/`infos` collect annotations.
Binary operators and aggregations live in `binops.py` and `aggregate.py`, functions in `calls.py`.

With several steps (a range query, a subquery's inner steps) the expressions `columnar.py` handles are
evaluated column-wise instead (`block`: a series × steps array), with bit-identical results; `vector` turns
a block back into `Steps` for the step-by-step code around it.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from sluice.metrics.series import METRIC_NAME, Storage, is_stale

from . import ast as A
from . import columnar
from .cancel import Cancellation
from .columnar import Block
from .errors import EvalError, QueryCanceled, QueryTimeout
from .values import Labels, Sample, Series

__all__ = ["Evaluator", "Steps", "RangeArg", "unwrap", "MAX_POINTS", "MAX_INNER_STEPS", "TOO_MANY_SAMPLES"]

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
_CHECK_EVERY = 1024
_CHECK_EVERY_WINDOW = 32


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
            if not k % _CHECK_EVERY_WINDOW:
                deadline.check()
            lo = bisect.bisect_right(ts, r - self.range_ms)
            hi = bisect.bisect_right(ts, r)
            if lo < hi:
                yield k, ts[lo:hi], s.values[lo:hi]


@dataclass
class Evaluator:
    storage: Storage
    start: int
    end: int
    interval: int
    lookback_ms: int = 300_000
    max_samples: int = 50_000_000
    subquery_step_ms: int = 60_000
    query_start: int = 0
    query_end: int = 0
    warnings: list[str] = field(default_factory=list)
    infos: list[str] = field(default_factory=list)
    loaded: list[int] = field(default_factory=lambda: [0])  # shared with sub-evaluators
    deadline: Deadline = field(default_factory=Deadline)  # shared with sub-evaluators
    # Evaluate what `columnar` handles column-wise: None decides by the step count (a single step is cheaper
    # step by step, numpy's per-call cost outweighs the work), True/False force it (tests compare both).
    columnar: bool | None = None

    def __post_init__(self) -> None:
        self.ts = list(range(self.start, self.end + 1, self.interval)) if self.interval > 0 else [self.start]
        # Blocks already computed for a node (by id) whose parent then fell back to the step-by-step path.
        self._blocks: dict[int, Block] = {}
        self._columnar = self.columnar if self.columnar is not None else len(self.ts) > 1

    # --- bookkeeping ---
    def check_deadline(self) -> None:
        self.deadline.check()

    def count_samples(self, n: int) -> None:
        self.check_deadline()  # called per selected series: a fine enough grain to stop a long query
        self.loaded[0] += n
        if self.loaded[0] > self.max_samples:
            raise EvalError(TOO_MANY_SAMPLES)

    def child(self, start: int, end: int, interval: int) -> Evaluator:
        ev = Evaluator(self.storage, start, end, interval, self.lookback_ms, self.max_samples, self.subquery_step_ms,
                       self.query_start, self.query_end, self.warnings, self.infos, self.loaded, self.deadline,
                       self.columnar)
        return ev

    def resolve_at(self, at_ms: int | None, special: str | None) -> int | None:
        if special == "start":
            return self.query_start
        if special == "end":
            return self.query_end
        return at_ms

    # --- dispatch ---
    def scalar(self, node: A.Expr) -> list[float]:
        node = unwrap(node)
        if isinstance(node, A.NumberLiteral):
            return [node.val] * len(self.ts)
        if isinstance(node, A.UnaryExpr):
            vals = self.scalar(node.expr)
            return [-v for v in vals] if node.op == "-" else vals
        if isinstance(node, A.BinaryExpr):
            from .binops import scalar_binop

            return scalar_binop(self, node)
        if isinstance(node, A.Call):
            from .calls import FUNCTION_CALLS

            out = FUNCTION_CALLS[node.func](self, node)
            assert isinstance(out, list) and (not out or isinstance(out[0], float))
            return out  # type: ignore[return-value]
        raise EvalError(f"unexpected scalar expression {node}")

    def string(self, node: A.Expr) -> str:
        node = unwrap(node)
        if isinstance(node, A.StringLiteral):
            return node.val
        raise EvalError(f"unexpected string expression {node}")

    def vector(self, node: A.Expr) -> Steps:
        self.check_deadline()
        node = unwrap(node)
        done = self._blocks.pop(id(node), None)
        if done is not None:
            steps = done.to_steps(self.ts)
        elif self._columnar and columnar.supported(node):
            steps = self.block(node).to_steps(self.ts)
            self._blocks.pop(id(node), None)
        else:
            steps = self._vector(node)
        return TimedSteps(steps, self.deadline)

    def columnar_for(self, node: A.Expr) -> bool:
        """Whether this evaluator computes `node` column-wise itself (rather than step by step)."""
        return self._columnar and columnar.supported(unwrap(node))

    def block(self, node: A.Expr) -> Block:
        """The expression's value at every step as a column-wise `Block`."""
        self.check_deadline()
        node = unwrap(node)
        b = columnar.evaluate(self, node) if self._columnar and columnar.supported(node) else None
        if b is None:
            b = Block.from_steps(self._vector(node), len(self.ts))
        self._blocks[id(node)] = b
        return b

    def _vector(self, node: A.Expr) -> Steps:
        if isinstance(node, A.VectorSelector):
            return self.vector_selector(node)
        if isinstance(node, A.UnaryExpr):
            steps = self.vector(node.expr)
            if node.op == "-":
                return [[Sample(s.metric, -s.value, s.t, True) for s in vec] for vec in steps]
            return steps
        if isinstance(node, A.BinaryExpr):
            from .binops import vector_binop

            return vector_binop(self, node)
        if isinstance(node, A.AggregateExpr):
            from .aggregate import aggregate

            return aggregate(self, node)
        if isinstance(node, A.Call):
            from .calls import FUNCTION_CALLS

            out = FUNCTION_CALLS[node.func](self, node)
            return out  # type: ignore[return-value]
        raise EvalError(f"unexpected instant vector expression {node}")

    # --- selectors ---
    def vector_selector(self, vs: A.VectorSelector, sample_time: bool = False) -> Steps:
        """Newest non-stale sample in (ref - lookback, ref] per series and step; `sample_time` keeps its
        own timestamp in `Sample.t` (for timestamp())."""
        at = self.resolve_at(vs.at_ms, vs.at_special)
        refs = [(at if at is not None else t) - vs.offset_ms for t in self.ts]
        out: Steps = [[] for _ in self.ts]
        lb = self.lookback_ms
        deadline = self.deadline
        for s in self.storage.select(vs.matchers, min(refs) - lb + 1, max(refs)):
            ts, vals = s.timestamps, s.values
            self.count_samples(len(ts))
            for k, r in enumerate(refs):
                if not k % _CHECK_EVERY:
                    deadline.check()
                j = bisect.bisect_right(ts, r) - 1
                if j < 0 or ts[j] <= r - lb:
                    continue
                v = vals[j]
                if is_stale(v):
                    continue
                out[k].append(Sample(s.labels, v, ts[j] if sample_time else self.ts[k]))
        return out

    def range_arg(self, node: A.Expr) -> RangeArg:
        node = unwrap(node)
        if isinstance(node, A.MatrixSelector):
            vs = node.vs
            at = self.resolve_at(vs.at_ms, vs.at_special)
            refs = [(at if at is not None else t) - vs.offset_ms for t in self.ts]
            series: list[Series] = []
            for s in self.storage.select(vs.matchers, min(refs) - node.range_ms + 1, max(refs)):
                values = s.values
                total = sum(values)
                if total == total:  # no NaN, so no stale marker: skip the per-sample check
                    ts_list, vs_list = list(s.timestamps), list(values)
                else:
                    pts = [(t, v) for t, v in zip(s.timestamps, values, strict=True) if v == v or not is_stale(v)]
                    ts_list, vs_list = [p[0] for p in pts], [p[1] for p in pts]
                self.count_samples(len(ts_list))
                if ts_list:
                    series.append(Series(s.labels, ts_list, vs_list))
            return RangeArg(series, refs, node.range_ms, deadline=self.deadline)
        if isinstance(node, A.SubqueryExpr):
            return self.subquery(node)
        raise EvalError(f"expected a range vector, got {node}")

    def subquery(self, sq: A.SubqueryExpr) -> RangeArg:
        at = self.resolve_at(sq.at_ms, sq.at_special)
        refs = [(at if at is not None else t) - sq.offset_ms for t in self.ts]
        plan = subquery_steps(self, sq, min(refs), max(refs))
        if plan is None:
            return RangeArg([], refs, sq.range_ms, True, self.deadline)
        inner = self.child(*plan)
        steps = inner.vector(sq.expr)
        by_metric: dict[Labels, Series] = {}
        for t, vec in zip(inner.ts, steps, strict=True):
            for s in vec:
                ser = by_metric.get(s.metric)
                if ser is None:
                    ser = by_metric[s.metric] = Series(s.metric)
                ser.timestamps.append(t)
                ser.values.append(s.value)
                ser.drop_name = ser.drop_name or s.drop_name
        self.count_samples(sum(len(s.timestamps) for s in by_metric.values()))
        return RangeArg(list(by_metric.values()), refs, sq.range_ms, True, self.deadline)


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


def has_name(labels: Sequence[tuple[str, str]]) -> bool:
    return any(k == METRIC_NAME for k, _ in labels)
