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
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from sluice.metrics.series import METRIC_NAME, Storage, is_stale

from . import ast as A
from . import columnar
from .aggregate import aggregate
from .binops import scalar_binop, vector_binop
from .calls import FUNCTION_CALLS
from .columnar import Block
from .errors import EvalError
from .steps import (
    CHECK_EVERY,
    MAX_INNER_STEPS,
    MAX_POINTS,
    TOO_MANY_SAMPLES,
    Deadline,
    RangeArg,
    Steps,
    TimedSteps,
    subquery_steps,
    unwrap,
)
from .values import Labels, Sample, Series

__all__ = ["Evaluator", "Steps", "RangeArg", "unwrap", "MAX_POINTS", "MAX_INNER_STEPS", "TOO_MANY_SAMPLES"]

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

    @functools.cached_property
    def ts_array(self) -> npt.NDArray[np.int64]:
        """`ts` as an array, made once: every selector and range function of a range query starts from it.
        Shared, so read-only."""
        arr = np.asarray(self.ts, dtype=np.int64)
        arr.flags.writeable = False
        return arr

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

            return scalar_binop(self, node)
        if isinstance(node, A.Call):

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
        b = done if done is not None else (
            columnar.evaluate(self, node) if (self._columnar or self._fold(node)) and columnar.supported(node)
            else None)
        # A case the column-wise code handed back keeps its own order of samples in each step.
        steps = b.to_steps(self.ts) if b is not None else self._vector(node)
        return TimedSteps(steps, self.deadline)

    def _fold(self, node: A.Expr) -> bool:
        """A sum/max/min over each window of a selector's samples: column-wise even at a single step (numpy
        folds a window in one call where the step-by-step code walks its samples), unless told otherwise."""
        return (self.columnar is None and isinstance(node, A.Call) and node.func in columnar.FOLDS
                and isinstance(unwrap(node.args[0]), A.MatrixSelector))

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
        if b.ordered:  # else its steps' order is lost: a parent falling back evaluates the node again
            self._blocks[id(node)] = b
        return b

    def top_block(self, node: A.Expr) -> Block | None:
        """A range query's root `topk`/`bottomk` over a column-wise argument, column-wise (None: not that, or
        it must go step by step). Only at the root, where the picked series' order is the sorted result's."""
        node = unwrap(node)
        if not (self._columnar and isinstance(node, A.AggregateExpr) and node.op in ("topk", "bottomk")
                and columnar.supported(unwrap(node.expr))):
            return None
        return columnar.top_rows(self, node)

    def _vector(self, node: A.Expr) -> Steps:
        if isinstance(node, A.VectorSelector):
            return self.vector_selector(node)
        if isinstance(node, A.UnaryExpr):
            steps = self.vector(node.expr)
            if node.op == "-":
                return [[Sample(s.metric, -s.value, s.t, True) for s in vec] for vec in steps]
            return steps
        if isinstance(node, A.BinaryExpr):

            return vector_binop(self, node)
        if isinstance(node, A.AggregateExpr):

            return aggregate(self, node)
        if isinstance(node, A.Call):

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
                if not k % CHECK_EVERY:
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
        if inner.columnar_for(sq.expr):
            b = inner.block(sq.expr)
            if len(set(b.metrics)) == len(b.metrics):
                # One series per row, straight from the block (no per-step samples in between), in the order
                # the step-by-step path meets them: by first step present, then row.
                first = np.argmax(b.has, axis=1)
                present = np.any(b.has, axis=1).tolist()
                times = inner.ts_array
                series = []
                for i in np.lexsort((np.arange(len(b.metrics)), first)).tolist():
                    if present[i]:
                        h = b.has[i]
                        series.append(Series(b.metrics[i], times[h].tolist(), b.vals[i][h].tolist(), b.drop[i]))
                self.count_samples(int(b.has.sum()))
                return RangeArg(series, refs, sq.range_ms, True, self.deadline)
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


def has_name(labels: Sequence[tuple[str, str]]) -> bool:
    return any(k == METRIC_NAME for k, _ in labels)
