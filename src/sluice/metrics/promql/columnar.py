"""Column-wise evaluation of the expressions dashboards and canary analysis send most: selectors, the common
range functions, sum/count/min/max/group, arithmetic and comparisons, set operators and histogram_quantile.

A `Block` holds an instant-vector expression's value at every step as a (series × steps) float array and a
presence mask, so work that the step-by-step path (`Steps`, one `Sample` per series and step) does in Python
per sample happens here once per series (label work: grouping keys, match signatures) or in numpy over all
steps at once. Every float operation is the one the step-by-step path performs, element by element and in the
same order (Kahan sums run series by series, vectorised over steps), so results are identical to the bit.
Whatever falls outside the cases handled here (a window with a counter reset, duplicate match groups, an
unusual operator) is handed back to the step-by-step code: `evaluate` returns None, or the cell is computed
with the same Python function the other path uses.

Everything here runs inside `Engine.instant`/`Engine.range`, under their `np.errstate(all="ignore")`: a
division by zero or a NaN compared is PromQL's answer, not a floating-point error to report, and a context
entered once per query costs less than one around each array operation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import numpy.typing as npt

from sluice.metrics.series import METRIC_NAME, PartsStorage, hands_out_parts

from . import ast as A
from .aggregate import _grouper
from .binops import _result_metric
from .calls import _absent_labels, _bucket_quantile
from .calls import _extrapolated as _scalar_extrapolated
from .errors import EvalError
from .steps import Steps, subquery_steps, unwrap
from .values import Labels, Sample, get_label

if TYPE_CHECKING:  # the evaluator imports this module, not the other way round
    from typing_extensions import Buffer

    from .evaluator import Evaluator

__all__ = ["Block", "supported", "evaluate", "FlatRange", "top_rows", "FOLDS"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]
Sig = Callable[[Labels], Labels]

_STALE_BITS = np.uint64(0x7FF0000000000002)
# Up to this many series a search per series costs less than building the banded keys for one search.
_FEW_SERIES = 4
_RANGE_FNS = frozenset({"rate", "increase", "delta", "irate", "idelta", "count_over_time", "last_over_time",
                        "present_over_time", "sum_over_time", "max_over_time", "min_over_time"})
_KEEP_NAME = frozenset({"last_over_time"})
FOLDS = frozenset({"sum_over_time", "max_over_time", "min_over_time"})  # `_window_fold`'s
_AGG_OPS = frozenset({"sum", "count", "min", "max", "group"})
_ARITH = frozenset({"+", "-", "*", "/"})
_CMP = frozenset({"==", "!=", "<", "<=", ">", ">="})
_SET = frozenset({"and", "or", "unless"})


@dataclass
class Block:
    """An instant vector at every step: row i is series `metrics[i]` (with Prometheus's delayed-name-removal
    flag `drop[i]`), `vals[i, k]` its value at step k where `has[i, k]`."""

    metrics: list[Labels]
    drop: list[bool]
    vals: F64
    has: Mask
    # Each step's samples, as the step-by-step code met them, came in row order (always so for blocks built
    # here; `from_steps` checks): what topk/bottomk break ties by.
    ordered: bool = True

    @staticmethod
    def empty(n_steps: int) -> Block:
        return Block([], [], np.empty((0, n_steps)), np.zeros((0, n_steps), dtype=bool))

    def to_steps(self, ts: Sequence[int]) -> Steps:
        out: Steps = []
        metrics, drop = self.metrics, self.drop
        vals = self.vals.T.tolist()
        has = self.has.T
        for k, t in enumerate(ts):
            row = vals[k]
            out.append([Sample(metrics[i], row[i], t, drop[i]) for i in np.flatnonzero(has[k]).tolist()])
        return out

    @staticmethod
    def from_steps(steps: Steps, n_steps: int) -> Block:
        """Rows keyed by (labels, name flag, n-th occurrence in a step): duplicates survive, order is kept."""
        rows: dict[tuple[Labels, bool, int], int] = {}
        cells: list[tuple[int, int, float]] = []
        ordered = True
        for k, vec in enumerate(steps):
            seen: dict[tuple[Labels, bool], int] = {}
            last = -1
            for s in vec:
                base = (s.metric, s.drop_name)
                nth = seen.get(base, 0)
                seen[base] = nth + 1
                key = (s.metric, s.drop_name, nth)
                i = rows.get(key)
                if i is None:
                    i = rows[key] = len(rows)
                ordered = ordered and i > last
                last = i
                cells.append((i, k, s.value))
        n = len(rows)
        vals = np.full((n, n_steps), np.nan)
        has = np.zeros((n, n_steps), dtype=bool)
        if cells:
            ii = np.fromiter((c[0] for c in cells), dtype=np.int64, count=len(cells))
            kk = np.fromiter((c[1] for c in cells), dtype=np.int64, count=len(cells))
            vals[ii, kk] = np.fromiter((c[2] for c in cells), dtype=np.float64, count=len(cells))
            has[ii, kk] = True
        keys = list(rows)
        return Block([k[0] for k in keys], [k[1] for k in keys], vals, has, ordered)

    def take(self, rows: Sequence[int] | npt.NDArray[np.intp]) -> Block:
        idx = np.asarray(rows, dtype=np.intp)
        return Block([self.metrics[i] for i in idx.tolist()], [self.drop[i] for i in idx.tolist()],
                     self.vals[idx], self.has[idx])

    def compact(self) -> Block:
        """Without rows that are absent at every step."""
        keep: Mask = np.logical_or.reduce(self.has, axis=1)
        if _every(keep):
            return self
        return self.take(np.flatnonzero(keep))


def supported(node: A.Expr) -> bool:
    """Whether `evaluate` handles this node itself (its children may still be evaluated step by step)."""
    if isinstance(node, A.VectorSelector):
        return True
    if isinstance(node, A.Call):
        if node.func in _RANGE_FNS:
            return True
        return node.func in ("histogram_quantile", "round", "vector", "absent")
    if isinstance(node, A.AggregateExpr):
        return node.op in _AGG_OPS
    if isinstance(node, A.BinaryExpr):
        op = node.op
        if node.lhs.type == "scalar" or node.rhs.type == "scalar":
            return op in _ARITH or op in _CMP
        m = node.matching
        if op in _SET:
            return True
        return (op in _ARITH or op in _CMP) and (m is None or m.card != "many-to-many")
    return False


def evaluate(ev: Evaluator, node: A.Expr) -> Block | None:
    """The node's value as a Block, or None when this case belongs to the step-by-step path."""
    if isinstance(node, A.VectorSelector):
        return _selector(ev, node)
    if isinstance(node, A.Call):
        if node.func == "histogram_quantile":
            return _histogram_quantile(ev, node)
        if node.func == "round":
            return _round(ev, node)
        if node.func == "vector":
            vals = np.asarray(ev.scalar(node.args[0]), dtype=np.float64)[None, :]
            return Block([()], [False], vals, np.ones(vals.shape, dtype=bool))
        if node.func == "absent":
            return _absent(ev, node)
        return _range_call(ev, node)
    if isinstance(node, A.AggregateExpr):
        return _aggregate(ev, node)
    if isinstance(node, A.BinaryExpr):
        return _binary(ev, node)
    return None


def _round(ev: Evaluator, call: A.Call) -> Block:
    """`calls._round`, element-wise: floor(v * (1/n) + 0.5) / (1/n)."""
    b = ev.block(call.args[0])
    nearest = ev.scalar(call.args[1]) if len(call.args) > 1 else [1.0] * len(ev.ts)
    inv = np.asarray([1.0 / n if n != 0 else math.inf for n in nearest], dtype=np.float64)[None, :]
    vals = np.floor(b.vals * inv + 0.5) / inv
    return Block(b.metrics, [True] * len(b.metrics), np.where(b.has, vals, np.nan), b.has)


def _absent(ev: Evaluator, call: A.Call) -> Block:
    b = ev.block(call.args[0])
    if not b.metrics:  # nothing selected (the usual answer): absent at every step, no masks to work out
        ones = np.ones((1, len(ev.ts)))
        return Block([_absent_labels(call.args[0])], [False], ones, ones.astype(bool))
    missing: Mask = ~np.any(b.has, axis=0, keepdims=False)
    return Block([_absent_labels(call.args[0])], [False], np.where(missing, 1.0, np.nan)[None, :],
                 missing[None, :]).compact()


# ---- flat sample arrays ---------------------------------------------------------------------------------------

@dataclass
class FlatRange:
    """Samples of many series in one pair of arrays: series i is `T[off[i]:off[i+1]]`, `V[...]`."""

    metrics: list[Labels]
    drop: list[bool]
    T: I64
    V: F64
    off: I64

    @property
    def n(self) -> int:
        return len(self.metrics)

    def positions(self, edges: I64) -> npt.NDArray[np.int64]:
        """For every series i and edge e[k]: the index just past the last sample at or before e[k] (that is,
        bisect_right within the series), as an (n × len(edges)) array of indexes into T/V."""
        n = self.n
        if n == 0 or len(self.T) == 0:
            return np.repeat(self.off[:-1, None], len(edges), axis=1) if n else np.zeros((0, len(edges)), np.int64)
        if n <= _FEW_SERIES:
            return self._positions_each(edges)
        lo_t = min(int(self.T.min()), int(edges.min()))
        span = max(int(self.T.max()), int(edges.max())) - lo_t + 2
        if span * (n + 1) < 2**62:
            # One search for all series: series i's timestamps are shifted into their own band [i*span, ...).
            seg = np.repeat(np.arange(n, dtype=np.int64), np.diff(self.off))
            keys = seg * span + (self.T - lo_t)
            q = (np.arange(n, dtype=np.int64) * span)[:, None] + (edges - lo_t)[None, :]
            return np.searchsorted(keys, q, side="right").astype(np.int64)
        return self._positions_each(edges)

    def _positions_each(self, edges: I64) -> npt.NDArray[np.int64]:
        out = np.empty((self.n, len(edges)), dtype=np.int64)
        for i, (a, b) in enumerate(zip(self.off[:-1].tolist(), self.off[1:].tolist(), strict=True)):
            out[i] = np.searchsorted(self.T[a:b], edges, side="right")
            out[i] += a
        return out


_COUNT_EVERY = 32  # series selected between checks of the samples limit and the deadline
_EMPTY_I64: I64 = np.empty(0, np.int64)
_EMPTY_F64: F64 = np.empty(0, np.float64)
_ZERO_OFF: I64 = np.zeros(1, np.int64)
for _a in (_EMPTY_I64, _EMPTY_F64, _ZERO_OFF):
    _a.flags.writeable = False  # shared by every empty selection


def _no_samples() -> FlatRange:
    """An empty selection, on the shared empty arrays."""
    return FlatRange([], [], _EMPTY_I64, _EMPTY_F64, _ZERO_OFF)


def _every(mask: Mask) -> bool:
    """`mask.all()` for a boolean array, without the Python-level wrapper numpy puts around that method (this
    runs on every block of every query, where the wrapper is most of its cost)."""
    return int(np.count_nonzero(mask)) == mask.size


def _some(mask: Mask) -> bool:
    """`mask.any()`, as `_every`."""
    return int(np.count_nonzero(mask)) > 0


def _offsets(counts: Sequence[int] | npt.NDArray[np.int64]) -> I64:
    """Where each series' samples begin in a flat array, and where the last ends (`FlatRange.off`)."""
    off = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=off[1:])
    return off


def _flatten(parts: list[tuple[Labels, Sequence[int], Sequence[float]]], drop: list[bool] | None = None,
             ) -> FlatRange:
    off = _offsets(np.fromiter((len(p[1]) for p in parts), dtype=np.int64, count=len(parts)))
    T = _concat([p[1] for p in parts], np.int64)
    V = _concat([p[2] for p in parts], np.float64)
    return FlatRange([p[0] for p in parts], drop if drop is not None else [False] * len(parts), T, V, off)


def _concat(seqs: Sequence[Sequence[int] | Sequence[float]], dtype: type[np.int64] | type[np.float64], *,
            machine: bool = False) -> npt.NDArray[Any]:
    """The sequences end to end. The storage's are machine arrays (`array('q')`/`array('d')`, numpy): their
    bytes are joined in one call, instead of a numpy array made per series (a few µs each). `machine`: the
    caller knows they are of `dtype`'s size (a `PartsStorage`'s pieces), so they are not looked at first."""
    size = np.dtype(dtype).itemsize
    if machine or all(getattr(x, "itemsize", 0) == size and not isinstance(x, list) for x in seqs):
        try:
            return np.frombuffer(b"".join(cast("list[Buffer]", seqs)), dtype=dtype)
        except (TypeError, BufferError):  # not contiguous after all
            pass
    return np.concatenate([np.asarray(x, dtype=dtype) for x in seqs]) if seqs else np.empty(0, dtype)


def _is_stale(V: F64) -> Mask:
    stale: Mask = V.view(np.uint64) == _STALE_BITS
    return stale


def _refs(ev: Evaluator, at_ms: int | None, special: str | None, offset_ms: int) -> I64:
    """Each step's reference time (ascending: the steps', or one `@` time for all)."""
    at = ev.resolve_at(at_ms, special)
    if at is not None:
        return np.full(len(ev.ts), at - offset_ms, dtype=np.int64)
    return ev.ts_array - offset_ms if offset_ms else ev.ts_array


def _select(ev: Evaluator, vs: A.VectorSelector, start: int, end: int) -> FlatRange:
    if hands_out_parts(ev.storage):
        return _select_parts(ev, ev.storage, vs, start, end)
    parts: list[tuple[Labels, Sequence[int], Sequence[float]]] = []
    for s in ev.storage.select(vs.matchers, start, end):
        ev.count_samples(len(s.timestamps))
        parts.append((s.labels, s.timestamps, s.values))
    return _flatten(parts)


def _select_parts(ev: Evaluator, storage: PartsStorage, vs: A.VectorSelector, start: int, end: int) -> FlatRange:
    """`_select` from a storage that hands out its samples in pieces (the TSDB's chunks and head): every
    series' pieces joined into one array in one call, no array built per series."""
    metrics: list[Labels] = []
    lens: list[int] = []
    tbufs: list[Sequence[int]] = []
    vbufs: list[Sequence[float]] = []
    uncounted = 0
    for labels, parts in storage.select_parts(vs.matchers, start, end):
        n = 0
        for t, v in parts:
            n += len(t)
            tbufs.append(t)
            vbufs.append(v)
        metrics.append(labels)
        lens.append(n)
        uncounted += n
        if len(metrics) % _COUNT_EVERY == 0:  # the samples limit and the deadline, every few series
            ev.count_samples(uncounted)
            uncounted = 0
    ev.count_samples(uncounted)
    if not metrics:  # nothing selected (`absent(...)`'s usual case): no arrays to join
        return _no_samples()
    return FlatRange(metrics, [False] * len(metrics), _concat(tbufs, np.int64, machine=True),
                     _concat(vbufs, np.float64, machine=True), _offsets(lens))


# ---- selectors ------------------------------------------------------------------------------------------------

def _selector(ev: Evaluator, vs: A.VectorSelector) -> Block:
    refs = _refs(ev, vs.at_ms, vs.at_special, vs.offset_ms)
    lb = ev.lookback_ms
    fr = _select(ev, vs, int(refs[0]) - lb + 1, int(refs[-1]))  # refs ascend (`_refs`)
    ev.check_deadline()
    if fr.n == 0:
        return Block.empty(len(ev.ts))
    j = fr.positions(refs) - 1
    ok = j >= fr.off[:-1, None]
    jj = np.where(ok, j, 0)
    if len(fr.T):
        ok &= fr.T[jj] > (refs - lb)[None, :]
        ok &= ~_is_stale(fr.V)[jj]
        vals = np.where(ok, fr.V[jj], np.nan)
    else:
        vals = np.full(ok.shape, np.nan)
    return Block(fr.metrics, fr.drop, vals, ok).compact()


# ---- range functions ------------------------------------------------------------------------------------------

def _flat_range(ev: Evaluator, node: A.Expr) -> tuple[FlatRange, I64, int] | None:
    """The range argument's samples (stale markers removed), each step's window end and the range."""

    node = unwrap(node)
    if isinstance(node, A.MatrixSelector):
        vs = node.vs
        refs = _refs(ev, vs.at_ms, vs.at_special, vs.offset_ms)
        fr = _select(ev, vs, int(refs[0]) - node.range_ms + 1, int(refs[-1]))
        stale = _is_stale(fr.V)
        if _some(stale):
            keep = ~stale
            seg = np.repeat(np.arange(fr.n, dtype=np.int64), np.diff(fr.off))
            fr = FlatRange(fr.metrics, fr.drop, fr.T[keep], fr.V[keep],
                           _offsets(np.bincount(seg[keep], minlength=fr.n)))
        return fr, refs, node.range_ms
    if isinstance(node, A.SubqueryExpr):
        return _subquery_range(ev, node)
    return None


def _subquery_range(ev: Evaluator, sq: A.SubqueryExpr) -> tuple[FlatRange, I64, int] | None:

    refs = _refs(ev, sq.at_ms, sq.at_special, sq.offset_ms)
    plan = subquery_steps(ev, sq, int(refs[0]), int(refs[-1]))
    if plan is None:
        return _no_samples(), refs, sq.range_ms
    inner = ev.child(*plan)
    b = inner.block(sq.expr)
    if len(set(b.metrics)) != len(b.metrics):
        return None  # rows that the step-by-step path merges into one series
    # Row by row, each row's points at the steps it has: a boolean mask picks a 2-D array's cells row-major.
    off = _offsets(b.has.sum(axis=1))
    ev.count_samples(int(off[-1]))
    T = np.broadcast_to(inner.ts_array, b.has.shape)[b.has]
    return FlatRange(list(b.metrics), list(b.drop), T, b.vals[b.has], off), refs, sq.range_ms


def _range_call(ev: Evaluator, call: A.Call) -> Block | None:
    got = _flat_range(ev, call.args[0])
    if got is None:
        return None
    fr, refs, range_ms = got
    K = len(refs)
    if fr.n == 0:
        return Block.empty(K)
    ev.check_deadline()
    # Both edges of every window in one search.
    both = fr.positions(np.concatenate((refs - range_ms, refs)))
    lo, hi = both[:, :K], both[:, K:]
    cnt = hi - lo
    fn = call.func
    T, V = fr.T, fr.V
    if fn in ("rate", "increase", "delta"):
        vals, has = _extrapolated(fr, lo, hi, cnt, refs, range_ms, fn != "delta", fn == "rate", ev.check_deadline)
    elif fn in ("irate", "idelta"):
        has = cnt >= 2
        last = np.maximum(hi - 1, 0)
        prev = np.maximum(hi - 2, 0)
        vl, vp = V[last], V[prev]
        dt = T[last] - T[prev]
        has &= dt != 0
        if fn == "irate":
            v = np.where(vl < vp, vl, vl - vp)
            vals = v / (dt / 1000)
        else:
            vals = vl - vp
    elif fn == "count_over_time":
        has, vals = cnt > 0, cnt.astype(np.float64)
    elif fn == "present_over_time":
        has = cnt > 0
        vals = np.ones(cnt.shape)
    elif fn == "last_over_time":
        has = cnt > 0
        vals = V[np.maximum(hi - 1, 0)] if len(V) else np.zeros(cnt.shape)
    else:
        has = cnt > 0
        vals = _window_fold(fn, V, np.minimum(lo, max(len(V) - 1, 0)), cnt, ev.check_deadline)
    drop = [d or fn not in _KEEP_NAME for d in fr.drop]
    return Block(fr.metrics, drop, np.where(has, vals, np.nan), has).compact()


def _window_fold(fn: str, V: F64, first: I64, cnt: I64, check: Callable[[], None]) -> F64:
    """sum/max/min over each window, sample by sample in window order (as the scalar code), vectorised over
    all windows."""
    width = int(cnt.max()) if cnt.size else 0
    s = V[first] if len(V) else np.zeros(cnt.shape)
    c = np.zeros(cnt.shape)
    if fn == "sum_over_time":
        s, c = np.zeros(cnt.shape), np.zeros(cnt.shape)
        for o in range(width):
            if not o % 16:
                check()
            live = o < cnt
            x = V[np.where(live, first + o, 0)]
            t, c2 = _kahan(x, s, c)
            s, c = np.where(live, t, s), np.where(live, c2, c)
        return np.where(np.isinf(s), s, s + c)
    # `v > best or isnan(best)` sample by sample is fmax/fmin folded left to right: NaN loses to any number,
    # a tie keeps the earlier sample (so -0 and 0 come out as the scalar code has them). reduceat folds every
    # window [first, first + cnt) in one pass; a NaN appended keeps the end index in range.
    check()
    ufunc = np.fmax if fn == "max_over_time" else np.fmin
    if not len(V):
        return s
    idx = np.empty(2 * cnt.size, dtype=np.int64)
    idx[0::2] = first.ravel()
    idx[1::2] = (first + np.maximum(cnt, 1)).ravel()
    folded: F64 = ufunc.reduceat(np.append(V, np.nan), idx)[0::2].reshape(cnt.shape)
    return folded


def _kahan(inc: F64, s: F64, c: F64) -> tuple[F64, F64]:
    """`mathops.kahan_inc`, element-wise."""
    t = s + inc
    big = np.abs(s) >= np.abs(inc)
    c = np.where(np.isinf(t), 0.0, c + np.where(big, (s - t) + inc, (inc - t) + s))
    return t, c


def _extrapolated(fr: FlatRange, lo: I64, hi: I64, cnt: I64, refs: I64, range_ms: int, is_counter: bool,
                  is_rate: bool, check: Callable[[], None]) -> tuple[F64, Mask]:
    """rate/increase/delta: `calls._extrapolated`, element-wise; windows with a counter reset go through it.
    The arithmetic is the scalar code's, operation for operation (so the results agree to the bit); what is
    saved is numpy calls, each a microsecond on a dashboard's few series: the masks for windows of fewer than
    two samples only when there are such windows, each shared term computed once. Runs under the engine's
    `np.errstate(all="ignore")`."""
    scalar_fn = _scalar_extrapolated

    T, V = fr.T, fr.V
    has = cnt >= 2
    every = _every(has)
    if every:
        a, b, n1 = lo, hi - 1, cnt - 1
    else:
        a = np.where(has, lo, 0)
        b = np.where(has, hi - 1, 0)
        n1 = np.where(has, cnt - 1, 1)
    v0, v1 = V[a], V[b]
    t0, t1 = T[a], T[b]
    result = v1 - v0
    to_start = (t0 - (refs - range_ms)[None, :]) / 1000
    to_end = (refs[None, :] - t1) / 1000
    sampled = (t1 - t0) / 1000
    avg = sampled / n1
    threshold = avg * 1.1
    half = avg / 2
    to_start = np.where(to_start >= threshold, half, to_start)
    if is_counter:
        to_zero = sampled * (v0 / result)
        clamp = (result > 0) & (v0 >= 0) & (to_zero < to_start)
        np.copyto(to_start, to_zero, where=clamp)
    to_end = np.where(to_end >= threshold, half, to_end)
    nonzero = sampled != 0
    factor = np.where(nonzero, (sampled + to_start + to_end) / np.where(nonzero, sampled, 1.0), 1.0)
    if is_rate:
        factor = factor / (range_ms / 1000)
    vals = result * factor
    if is_counter and len(V) > 1:
        # A reset inside a window adds the value before it; those (rare) windows take the scalar path. Where no
        # sample is below the one before it (within a series) there is none to look for.
        fell = V[1:] < V[:-1]  # fell[j]: sample j + 1 is below sample j
        starts = fr.off[1:-1]
        fell[starts[starts > 0] - 1] = False  # a series' first sample follows another series' last
        if _some(fell):
            cum = np.zeros(len(V), dtype=np.int64)
            np.cumsum(fell, out=cum[1:])
            resets = has & (cum[b] - cum[a] > 0)
            fn = scalar_fn(True, is_rate)
            for n, (i, k) in enumerate(zip(*np.nonzero(resets), strict=True)):
                if not n % 8:  # a window here can be thousands of samples
                    check()
                r = int(refs[k])
                ts = T[int(a[i, k]):int(b[i, k]) + 1].tolist()
                vs = V[int(a[i, k]):int(b[i, k]) + 1].tolist()
                v = fn(ts, vs, r - range_ms, r, 0, [])
                vals[i, k] = math.nan if v is None else v
    return vals, has


# ---- aggregation ----------------------------------------------------------------------------------------------

def _aggregate(ev: Evaluator, node: A.AggregateExpr) -> Block | None:
    b = ev.block(node.expr)
    K = len(ev.ts)
    index: dict[Labels, int] = {}
    gid = np.empty(len(b.metrics), dtype=np.int64)
    rank = np.empty(len(b.metrics), dtype=np.int64)
    sizes: list[int] = []
    group_of = _grouper(node.grouping, node.without)
    gdrop: list[bool] = []
    for i, m in enumerate(b.metrics):
        key = group_of(m)
        g = index.get(key)
        d = b.drop[i]
        if g is None:
            g = index[key] = len(index)
            sizes.append(0)
            gdrop.append(d)
        elif gdrop[g] != d:
            return None  # the name flag would depend on which members are present at each step
        gid[i] = g
        rank[i] = sizes[g]
        sizes[g] += 1
    G = len(index)
    if G == 0:
        return Block.empty(K)
    op = node.op
    all_present = op == "sum" and _every(b.has)  # every member at every step: sums without presence masks
    if all_present and max(sizes) * G <= 2 * len(b.metrics):
        return _sum_present(ev, b, list(index), gdrop, gid, rank, max(sizes))
    S = np.zeros((G, K))
    C = np.zeros((G, K))
    seen = np.zeros((G, K), dtype=bool)
    count = np.zeros((G, K))
    by_rank = np.argsort(rank, kind="stable")
    bounds = np.searchsorted(rank[by_rank], np.arange(max(sizes) + 1))
    if all_present:  # the usual case, groups of unlike sizes
        for r in range(max(sizes)):
            if not r % 16:
                ev.check_deadline()
            rows = by_rank[bounds[r]:bounds[r + 1]]
            gs = gid[rows]
            if r == 0:
                S[gs] = b.vals[rows]
            else:
                S[gs], C[gs] = _kahan(b.vals[rows], S[gs], C[gs])
        vals = np.where(np.isinf(S), S, S + C)
        seen[:] = True
        return Block(list(index), gdrop, vals, seen).compact()
    for r in range(max(sizes)):
        if not r % 16:
            ev.check_deadline()
        rows = by_rank[bounds[r]:bounds[r + 1]]
        gs = gid[rows]
        X, H = b.vals[rows], b.has[rows]
        old, was = S[gs], seen[gs]
        add = H & was
        if op == "sum":
            t, c = _kahan(X, old, C[gs])
            S[gs] = np.where(add, t, np.where(H & ~was, X, old))
            C[gs] = np.where(add, c, C[gs])
        elif op in ("max", "min"):
            better = (old < X) if op == "max" else (old > X)
            S[gs] = np.where(H & (~was | better | np.isnan(old)), X, old)
        count[gs] += H
        seen[gs] = was | H
    if op == "sum":
        vals = np.where(np.isinf(S), S, S + C)
    elif op == "count":
        vals = count
    elif op == "group":
        vals = np.ones((G, K))
    else:
        vals = S
    return Block(list(index), gdrop, np.where(seen, vals, np.nan), seen).compact()


# ---- topk / bottomk at the root of a range query ------------------------------------------------------------

def top_rows(ev: Evaluator, node: A.AggregateExpr) -> Block | None:
    """`topk`/`bottomk` as the step-by-step code picks at every step (per group: present members, NaN after
    every number, ties in input order, the first k), as its argument's block with the others masked out. Only
    where the order of the picked samples cannot matter (a range query's root: its series are sorted), and None
    when the argument's steps did not come in row order (ties would then be broken differently)."""
    assert node.param is not None
    params = ev.scalar(node.param)
    b = ev.block(node.expr)
    if any(math.isnan(p) for p in params):
        raise EvalError("Parameter value is NaN")
    if not b.ordered:
        return None  # not kept by the evaluator either: the step-by-step path evaluates it again
    n = len(b.metrics)  # no group has more members: a larger k (or +Inf) keeps them all
    ks = np.asarray([max(0, min(int(p), n)) if not math.isinf(p) else (n if p > 0 else 0) for p in params],
                    dtype=np.int64)
    group_of = _grouper(node.grouping, node.without)
    groups: dict[Labels, list[int]] = {}
    for i, m in enumerate(b.metrics):
        groups.setdefault(group_of(m), []).append(i)
    keep = np.zeros(b.has.shape, dtype=bool)
    sign = -1.0 if node.op == "topk" else 1.0
    for rows in groups.values():
        ev.check_deadline()
        idx = np.asarray(rows, dtype=np.intp)
        V, H = b.vals[idx], b.has[idx]
        nan = np.isnan(V)
        # lexsort is stable and sorts by its last key first: absent members, then NaN, go after the numbers.
        order = np.lexsort((np.where(nan, 0.0, sign * V), nan, ~H), axis=0)
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.arange(len(rows))[:, None], axis=0)
        keep[idx] = H & (rank < ks[None, :])
    return Block(b.metrics, b.drop, np.where(keep, b.vals, np.nan), keep).compact()


def _sum_present(ev: Evaluator, b: Block, keys: list[Labels], gdrop: list[bool], gid: I64, rank: I64,
                 width: int) -> Block:
    """`sum` where every member is present at every step and the groups are of like sizes: the members laid
    out as (rank × group × step), groups short of `width` padded with -0.0, which the compensated sum adds
    without a trace (x + -0.0 is x for every x, and its compensation term is +0.0), so each rank's step is
    plain slices instead of gathers and scatters."""
    G, K = len(keys), b.vals.shape[1]
    if G == 1:
        P = b.vals[:, None, :]  # one group (`sum(...)`): rank r is row r
    else:
        P = np.full((width, G, K), -0.0)
        P[rank, gid] = b.vals
    S, C = P[0], np.zeros((G, K))
    for r in range(1, width):
        if not r % 16:
            ev.check_deadline()
        S, C = _kahan(P[r], S, C)
    vals = np.where(np.isinf(S), S, S + C)
    return Block(keys, gdrop, vals, np.ones((G, K), dtype=bool)).compact()


# ---- binary operators -----------------------------------------------------------------------------------------

def _apply(op: str, a: F64, b: F64) -> tuple[F64, Mask | None]:
    """`mathops.binop` element-wise for the operators handled here: (value, keep mask for comparisons)."""
    if op == "+":
        return a + b, None
    if op == "-":
        return a - b, None
    if op == "*":
        return a * b, None
    if op == "/":
        return a / b, None
    if op == "==":
        return a, a == b
    if op == "!=":
        return a, a != b
    if op == "<":
        return a, a < b
    if op == "<=":
        return a, a <= b
    if op == ">":
        return a, a > b
    return a, a >= b


def _binary(ev: Evaluator, node: A.BinaryExpr) -> Block | None:
    op = node.op
    if node.lhs.type == "scalar" or node.rhs.type == "scalar":
        swap = node.lhs.type == "scalar"
        b = ev.block(node.rhs if swap else node.lhs)
        sc = np.asarray(ev.scalar(node.lhs if swap else node.rhs), dtype=np.float64)[None, :]
        x, y = (np.broadcast_to(sc, b.vals.shape), b.vals) if swap else (b.vals, np.broadcast_to(sc, b.vals.shape))
        v, keep = _apply(op, x, y)
        if keep is not None:
            v = b.vals
        has = b.has
        if node.return_bool:
            v = np.where(keep if keep is not None else True, 1.0, 0.0)
        elif keep is not None:
            has = has & keep
        drop = [d or op in _ARITH or node.return_bool for d in b.drop]
        return Block(b.metrics, drop, np.where(has, v, np.nan), has).compact()
    lhs, rhs = ev.block(node.lhs), ev.block(node.rhs)
    m = node.matching or A.VectorMatching("one-to-one")
    if m.on:
        names = frozenset(m.labels)

        def sig(lbls: Labels) -> Labels:
            return tuple(kv for kv in lbls if kv[0] in names)
    else:
        ignored = frozenset(m.labels) | {METRIC_NAME}

        def sig(lbls: Labels) -> Labels:
            return tuple(kv for kv in lbls if kv[0] not in ignored)
    if op in _SET:
        return _set_op(op, lhs, rhs, sig)
    return _vector_vector(op, lhs, rhs, m, sig, node.return_bool)


def _sig_ids(metrics: Iterable[Labels], sig: Sig, index: dict[Labels, int]) -> I64:
    out = []
    for mt in metrics:
        k = sig(mt)
        g = index.get(k)
        if g is None:
            g = index[k] = len(index)
        out.append(g)
    return np.asarray(out, dtype=np.int64)


def _presence_by_sig(b: Block, ids: I64, n_sig: int) -> Mask:
    out = np.zeros((n_sig, b.has.shape[1]), dtype=bool)
    np.logical_or.at(out, ids, b.has)
    return out


def _set_op(op: str, lhs: Block, rhs: Block, sig: Sig) -> Block:
    index: dict[Labels, int] = {}
    lid = _sig_ids(lhs.metrics, sig, index)
    rid = _sig_ids(rhs.metrics, sig, index)
    n = len(index)
    K = lhs.has.shape[1]
    if op == "and":
        rp = _presence_by_sig(rhs, rid, n)
        has = lhs.has & rp[lid] if len(lid) else lhs.has
        return Block(lhs.metrics, lhs.drop, np.where(has, lhs.vals, np.nan), has).compact()
    if op == "unless":
        rp = _presence_by_sig(rhs, rid, n)
        has = lhs.has & ~rp[lid] if len(lid) else lhs.has
        return Block(lhs.metrics, lhs.drop, np.where(has, lhs.vals, np.nan), has).compact()
    lp = _presence_by_sig(lhs, lid, n)
    rhas = rhs.has & ~lp[rid] if len(rid) else rhs.has
    vals = np.concatenate([lhs.vals, np.where(rhas, rhs.vals, np.nan)]) if len(rid) else lhs.vals
    has = np.concatenate([lhs.has, rhas]) if len(rid) else lhs.has
    if not len(lid) and not len(rid):
        return Block.empty(K)
    return Block(lhs.metrics + rhs.metrics, lhs.drop + rhs.drop, vals, has).compact()


def _vector_vector(op: str, lhs: Block, rhs: Block, m: A.VectorMatching, sig: Sig,
                   return_bool: bool) -> Block | None:

    one_to_many = m.card == "one-to-many"
    many, one = (rhs, lhs) if one_to_many else (lhs, rhs)
    index: dict[Labels, int] = {}
    one_id = _sig_ids(one.metrics, sig, index)
    if len(set(one_id.tolist())) != len(one_id):
        return None  # several "one"-side series per match group: the step-by-step path sorts it out (or errs)
    many_id = _sig_ids(many.metrics, sig, index)
    row_of = np.full(len(index), -1, dtype=np.int64)
    row_of[one_id] = np.arange(len(one_id))
    match = row_of[many_id] if len(many_id) else np.empty(0, np.int64)
    pairs = np.flatnonzero(match >= 0)
    if m.card == "one-to-one" and len(set(many_id[pairs].tolist())) != len(pairs):
        return None  # two series on the many side share a group: an error, or not, step by step
    metrics: list[Labels] = []
    for p in pairs.tolist():
        metrics.append(_result_metric(many.metrics[p], one.metrics[int(match[p])], op, m))
    if m.card != "one-to-one":
        seen: set[tuple[int, Labels]] = set()
        for p, mt in zip(pairs.tolist(), metrics, strict=True):
            key = (int(many_id[p]), mt)
            if key in seen:
                return None
            seen.add(key)
    K = lhs.has.shape[1]
    if not len(pairs):
        return Block.empty(K)
    mr = one.take(match[pairs])
    ml = many.take(pairs)
    a, b = (mr.vals, ml.vals) if one_to_many else (ml.vals, mr.vals)
    v, keep = _apply(op, a, b)
    has = ml.has & mr.has
    if return_bool:
        v = np.where(keep if keep is not None else True, 1.0, 0.0)
    elif keep is not None:
        has = has & keep
    drop = [return_bool or (d and op in _CMP) for d in ml.drop]
    return Block(metrics, drop, np.where(has, v, np.nan), has).compact()


# ---- histogram_quantile -------------------------------------------------------------------------------------

def _upper_bound(le: str) -> float | None:
    try:
        return float(le.replace("_", "")) if le.lower() not in ("+inf", "inf") else math.inf
    except ValueError:
        return None


_EPS, _MIN_NORMAL = 1e-12, 2.2250738585072014e-308


def _needs_fix(prev: F64, cur: F64) -> Mask:
    """Where Prometheus's ensureMonotonicAndIgnoreSmallDeltas replaces a bucket by the one below it: it is
    smaller, or within a relative 1e-12 of it (both NaN counts as equal), without being equal."""
    eq = cur == prev
    diff = np.abs(prev - cur)
    tiny = (prev == 0) | (cur == 0) | (diff < _MIN_NORMAL)
    near = np.where(tiny, diff < _EPS * _MIN_NORMAL,
                    diff / np.minimum(np.abs(prev) + np.abs(cur), 1.7976931348623157e308) < _EPS)
    near = (near & ~np.isnan(prev) & ~np.isnan(cur)) | (np.isnan(prev) & np.isnan(cur))
    fix: Mask = ~eq & (near | (cur < prev))
    return fix


def _histogram_quantile(ev: Evaluator, call: A.Call) -> Block | None:

    qs = ev.scalar(call.args[0])
    b = ev.block(call.args[1])
    K = len(ev.ts)
    groups: dict[Labels, list[tuple[float, int]]] = {}
    for i, mt in enumerate(b.metrics):
        ub = _upper_bound(get_label(mt, "le"))
        if ub is None:
            return None  # a warning per sample and step: the step-by-step path writes them
        groups.setdefault(tuple(kv for kv in mt if kv[0] != "le"), []).append((ub, i))
    if any(math.isnan(q) or q < 0 or q > 1 for q in qs):
        ev.warnings.append("PromQL warning: quantile value should be between 0 and 1")
    q = np.asarray(qs, dtype=np.float64)
    q_ok = (q >= 0) & (q <= 1)
    out_vals = np.full((len(groups), K), np.nan)
    out_has = np.zeros((len(groups), K), dtype=bool)
    for gi, members in enumerate(groups.values()):
        members.sort(key=lambda x: x[0])  # stable: equal bounds keep their input order, as _prepare's sort
        rows = [i for _, i in members]
        ubs = [u for u, _ in members]
        present = b.has[rows]
        any_p = present.any(axis=0)
        out_has[gi] = any_p
        fast = present.all(axis=0) & q_ok & (len(set(ubs)) == len(ubs)) & (len(ubs) >= 2) & math.isinf(ubs[-1]) \
            & (ubs[-1] > 0)
        ev.check_deadline()
        if fast.any():
            M = b.vals[rows][:, fast].copy()
            # Buckets that already rise (or stay equal) from one bound to the next need no fixing: checked
            # on all of them at once, the bucket-by-bucket pass below runs only where one would change.
            if _needs_fix(M[:-1], M[1:]).any():
                prev = M[0].copy()
                for j in range(1, len(ubs)):
                    cur = M[j]
                    fix = _needs_fix(prev, cur)
                    keep = (cur == prev) | fix
                    M[j] = np.where(fix, prev, cur)
                    prev = np.where(keep, prev, M[j])
            total = M[-1]
            rank = q[fast] * total
            ge = M[:-1] >= rank[None, :]
            idx = np.where(ge.any(axis=0), np.argmax(ge, axis=0), len(ubs) - 1)
            ubv = np.asarray(ubs)
            cols = np.arange(M.shape[1])
            end = ubv[idx]
            below = np.maximum(idx - 1, 0)
            start = np.where(idx > 0, ubv[below], 0.0)
            cnt = M[idx, cols]
            prev_c = M[below, cols]
            cnt = np.where(idx > 0, cnt - prev_c, cnt)
            rk = np.where(idx > 0, rank - prev_c, rank)
            res = start + (end - start) * (rk / cnt)
            res = np.where(idx == len(ubs) - 1, ubv[-2], res)
            res = np.where((idx == 0) & (ubv[0] <= 0), ubv[0], res)
            res = np.where(total == 0, np.nan, res)
            out_vals[gi, fast] = res
        for n, k in enumerate(np.flatnonzero(any_p & ~fast).tolist()):
            if not n % 64:
                ev.check_deadline()
            buckets = [(u, float(b.vals[i, k])) for u, i in members if b.has[i, k]]
            # _prepare sorts by bound again (stable), so the members' order here is the input order it expects
            out_vals[gi, k] = _bucket_quantile(qs[k], sorted(buckets, key=lambda x: x[0]))
    return Block(list(groups), [True] * len(groups), out_vals, out_has).compact()

