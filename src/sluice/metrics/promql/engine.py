"""The query engine: parses, evaluates over the requested steps, then applies Prometheus's delayed
`__name__` removal and shapes the result (vector, matrix, scalar, string)."""

from __future__ import annotations

import time

import numpy as np
import numpy.typing as npt

from sluice.metrics.series import Storage

from . import ast as A
from . import cancel
from .columnar import Block
from .errors import EvalError
from .evaluator import Evaluator
from .parser import parse
from .steps import MAX_POINTS, Deadline, Steps, unwrap
from .values import Labels, QueryResult, Sample, Scalar, Series, String, drop_name

__all__ = ["Engine", "DEFAULT_TIMEOUT_S"]

DEFAULT_TIMEOUT_S = 120.0  # Prometheus's --query.timeout default (2m)


class Engine:
    def __init__(self, storage: Storage, *, lookback_delta_ms: int = 300_000, max_samples: int = 50_000_000,
                 subquery_default_step_ms: int = 60_000, timeout_s: float = DEFAULT_TIMEOUT_S,
                 columnar: bool | None = None) -> None:
        self.storage = storage
        self.columnar = columnar  # None: column-wise when a query has several steps (see Evaluator.columnar)
        self.timeout_s = timeout_s
        self.lookback_delta_ms = lookback_delta_ms
        self.max_samples = max_samples
        self.subquery_default_step_ms = subquery_default_step_ms

    def _evaluator(self, start: int, end: int, step: int, timeout_s: float | None) -> Evaluator:
        limit = self.timeout_s if timeout_s is None else min(timeout_s, self.timeout_s)
        # A query running in a worker of the query pool can also be cancelled from the event loop.
        return Evaluator(self.storage, start, end, step, self.lookback_delta_ms, self.max_samples,
                         self.subquery_default_step_ms, query_start=start, query_end=end,
                         deadline=Deadline(time.monotonic() + limit, cancel.current()), columnar=self.columnar)

    def instant(self, expr: str, t_ms: int, *, timeout_s: float | None = None) -> QueryResult:
        """Evaluate at `t_ms`; `timeout_s` (capped by the engine's own) raises QueryTimeout past it."""
        # Division by zero, NaN compared, overflow to ±Inf: PromQL's answers, not errors. Set once here for the
        # whole evaluation (the column-wise code runs under it) rather than around each array operation.
        with np.errstate(all="ignore"):
            return self._instant(expr, t_ms, timeout_s)

    def range(self, expr: str, start_ms: int, end_ms: int, step_ms: int, *,
              timeout_s: float | None = None) -> QueryResult:
        with np.errstate(all="ignore"):  # as in `instant`
            return self._range(expr, start_ms, end_ms, step_ms, timeout_s)

    def _instant(self, expr: str, t_ms: int, timeout_s: float | None) -> QueryResult:
        node = parse(expr)
        ev = self._evaluator(t_ms, t_ms, 1, timeout_s)
        try:
            if node.type == "scalar":
                return QueryResult("scalar", Scalar(t_ms, ev.scalar(node)[0]), ev.warnings, ev.infos)
            if node.type == "string":
                return QueryResult("string", String(t_ms, ev.string(node)), ev.warnings, ev.infos)
            if node.type == "matrix":
                ra = ev.range_arg(unwrap(node))
                mat: list[Series] = []
                for s in ra.series:
                    for _k, ts, vs in ra.windows(s):
                        mat.append(Series(s.metric, ts, vs, s.drop_name))
                return QueryResult("matrix", _finish_matrix(mat), ev.warnings, ev.infos)
            vec = ev.vector(node)[0]
            out = [Sample(drop_name(s.metric) if s.drop_name else s.metric, s.value, t_ms) for s in vec]
            seen: set[Labels] = set()
            for smp in out:
                if smp.metric in seen:
                    raise EvalError("vector cannot contain metrics with the same labelset")
                seen.add(smp.metric)
            return QueryResult("vector", out, ev.warnings, ev.infos)
        except RecursionError as e:
            raise EvalError("query too deeply nested") from e

    def _range(self, expr: str, start_ms: int, end_ms: int, step_ms: int, timeout_s: float | None) -> QueryResult:
        if step_ms <= 0:
            raise EvalError("zero or negative query resolution step widths are not accepted. Try a positive integer")
        if end_ms < start_ms:
            raise EvalError("end timestamp must not be before start time")
        if (end_ms - start_ms) // step_ms > MAX_POINTS:
            raise EvalError(f"exceeded maximum resolution of {MAX_POINTS:,} points per timeseries. "
                            "Try decreasing the query resolution (?step=XX)")
        node = parse(expr)
        if node.type not in ("scalar", "vector"):
            raise EvalError(f'invalid expression type "{A.type_name(node.type)}" for range query, '
                            "must be Scalar or instant Vector")
        ev = self._evaluator(start_ms, end_ms, step_ms, timeout_s)
        try:
            if node.type == "scalar":
                vals = ev.scalar(node)
                return QueryResult("matrix", [Series((), list(ev.ts), vals)], ev.warnings, ev.infos)
            if ev.columnar_for(node):
                return QueryResult("matrix", _block_to_matrix(ev.block(node), ev.ts, ev.ts_array), ev.warnings,
                                   ev.infos)
            top = ev.top_block(node)
            if top is not None:
                return QueryResult("matrix", _block_to_matrix(top, ev.ts, ev.ts_array), ev.warnings, ev.infos)
            return QueryResult("matrix", _steps_to_matrix(ev.vector(node), ev.ts), ev.warnings, ev.infos)
        except RecursionError as e:
            raise EvalError("query too deeply nested") from e


def _steps_to_matrix(steps: Steps, ts: list[int]) -> list[Series]:
    by_metric: dict[Labels, Series] = {}
    for t, vec in zip(ts, steps, strict=True):
        for s in vec:
            metric = drop_name(s.metric) if s.drop_name else s.metric
            ser = by_metric.get(metric)
            if ser is None:
                ser = by_metric[metric] = Series(metric)
            elif ser.timestamps and ser.timestamps[-1] == t:
                raise EvalError("vector cannot contain metrics with the same labelset")
            ser.timestamps.append(t)
            ser.values.append(s.value)
    return sorted(by_metric.values(), key=lambda s: s.metric)


def _block_to_matrix(b: Block, ts: list[int], t: npt.NDArray[np.int64]) -> list[Series]:
    """`_steps_to_matrix` from a column-wise result: one series per row, rows whose labels coincide once the
    name is dropped merged, unless they have a point at the same step."""
    rows: dict[Labels, list[int]] = {}
    for i, m in enumerate(b.metrics):
        rows.setdefault(drop_name(m) if b.drop[i] else m, []).append(i)
    full = np.asarray(b.has.all(axis=1), dtype=bool)
    out: list[Series] = []
    for metric, idx in rows.items():
        if len(idx) == 1 and bool(full[idx[0]]):  # present at every step (the usual case): no selection to make
            out.append(Series(metric, list(ts), b.vals[idx[0]].tolist()))
            continue
        has, vals = b.has[idx[0]], b.vals[idx[0]]
        if len(idx) > 1:
            present = b.has[idx]
            if (present.sum(axis=0) > 1).any():
                raise EvalError("vector cannot contain metrics with the same labelset")
            has = present.any(axis=0)
            vals = b.vals[idx][present.argmax(axis=0), np.arange(len(ts))]
        out.append(Series(metric, t[has].tolist(), vals[has].tolist()))
    return sorted(out, key=lambda s: s.metric)


def _finish_matrix(mat: list[Series]) -> list[Series]:
    """Drop names marked for removal; series that then collide are merged unless their points overlap."""
    by_metric: dict[Labels, Series] = {}
    for s in mat:
        metric = drop_name(s.metric) if s.drop_name else s.metric
        prev = by_metric.get(metric)
        if prev is None:
            by_metric[metric] = Series(metric, list(s.timestamps), list(s.values))
            continue
        if set(prev.timestamps) & set(s.timestamps):
            raise EvalError("vector cannot contain metrics with the same labelset")
        pts = sorted(zip(prev.timestamps + list(s.timestamps), prev.values + list(s.values), strict=True))
        prev.timestamps, prev.values = [p[0] for p in pts], [p[1] for p in pts]
    return sorted(by_metric.values(), key=lambda s: s.metric)
