"""Function implementations, one table (`FUNCTION_CALLS`) keyed like the signature table in `functions.py`.

Each implementation takes the evaluator and the call node and returns per-step results (a list of vectors,
or a list of floats for scalar functions). Range functions go through `_range_fn`, which hands each series'
window at each step to a small float function.
"""

from __future__ import annotations

import calendar
import math
import operator
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sluice.metrics.regex import Regex, RegexError, compile_anchored
from sluice.metrics.series import METRIC_NAME

from . import ast as A
from .aggregate import valid_label_name
from .errors import EvalError
from .format import format_float
from .mathops import go_ceil, go_floor, go_max, go_min, kahan_inc, quantile, safe
from .steps import Steps, unwrap
from .values import Labels, Sample, Vector, get_label, set_label

if TYPE_CHECKING:  # the evaluator imports this module, not the other way round
    from .evaluator import Evaluator

__all__ = ["FUNCTION_CALLS"]

Impl = Callable[["Evaluator", A.Call], "Steps | list[float]"]
# A range function sees (timestamps, values, range start, range end, step time, extra scalar args).
WindowFn = Callable[[list[int], list[float], int, int, int, list[float]], "float | None"]


# === helpers ===
def _simple(f: Callable[[float], float]) -> Impl:
    def impl(ev: Evaluator, call: A.Call) -> Steps:
        return [[Sample(s.metric, f(s.value), s.t, True) for s in vec] for vec in ev.vector(call.args[0])]

    return impl


def _range_fn(fn: WindowFn, keep_name: bool = False, matrix_arg: int = 0) -> Impl:
    def impl(ev: Evaluator, call: A.Call) -> Steps:
        extra = [ev.scalar(a) for i, a in enumerate(call.args) if i != matrix_arg]
        ra = ev.range_arg(call.args[matrix_arg])
        out: Steps = [[] for _ in ev.ts]
        for s in ra.series:
            dn = s.drop_name or not keep_name
            for k, ts, vs in ra.windows(s):
                r = ra.refs[k]
                v = fn(ts, vs, r - ra.range_ms, r, ev.ts[k], [e[k] for e in extra])
                if v is not None:
                    out[k].append(Sample(s.metric, v, ev.ts[k], dn))
        return out

    return impl


# === rate(node parser.ValueTypeMatrix), increase, delta ===
def _extrapolated(is_counter: bool, is_rate: bool) -> WindowFn:
    def fn(ts: list[int], vs: list[float], start: int, end: int, _t: int, _x: list[float]) -> float | None:
        if len(ts) < 2:
            return None
        result = vs[-1] - vs[0]
        if is_counter and any(map(operator.lt, vs[1:], vs)):  # a reset (checked in C first: they are rare)
            for prev, cur in zip(vs, vs[1:], strict=False):
                if cur < prev:
                    result += prev
        to_start = (ts[0] - start) / 1000
        to_end = (end - ts[-1]) / 1000
        sampled = (ts[-1] - ts[0]) / 1000
        avg = sampled / (len(ts) - 1)
        threshold = avg * 1.1
        if to_start >= threshold:
            to_start = avg / 2
        if is_counter and result > 0 and vs[0] >= 0:
            # Counters cannot go below zero: do not extrapolate past the point where it would be zero.
            to_zero = sampled * (vs[0] / result)
            to_start = min(to_start, to_zero)
        if to_end >= threshold:
            to_end = avg / 2
        factor = (sampled + to_start + to_end) / sampled if sampled else 1.0
        if is_rate:
            factor /= (end - start) / 1000
        return result * factor

    return fn


# === irate(node parser.ValueTypeMatrix), idelta ===
def _instant(is_rate: bool) -> WindowFn:
    def fn(ts: list[int], vs: list[float], _s: int, _e: int, _t: int, _x: list[float]) -> float | None:
        if len(ts) < 2:
            return None
        dt = ts[-1] - ts[-2]
        if dt == 0:
            return None
        v = vs[-1] if is_rate and vs[-1] < vs[-2] else vs[-1] - vs[-2]
        return v / (dt / 1000) if is_rate else v

    return fn


def _linear_regression(ts: list[int], vs: list[float], intercept_t: int) -> tuple[float, float]:
    n = 0.0
    sx = cx = sy = cy = sxy = cxy = sx2 = cx2 = 0.0
    const_y = True
    for i, (t, v) in enumerate(zip(ts, vs, strict=True)):
        if const_y and i > 0 and v != vs[0]:
            const_y = False
        n += 1
        x = (t - intercept_t) / 1000
        sx, cx = kahan_inc(x, sx, cx)
        sy, cy = kahan_inc(v, sy, cy)
        sxy, cxy = kahan_inc(x * v, sxy, cxy)
        sx2, cx2 = kahan_inc(x * x, sx2, cx2)
    if const_y:
        if math.isinf(vs[0]):
            return math.nan, math.nan
        return 0.0, vs[0]
    sx, sy, sxy, sx2 = sx + cx, sy + cy, sxy + cxy, sx2 + cx2
    cov = sxy - sx * sy / n
    var = sx2 - sx * sx / n
    slope = cov / var if var != 0 else (math.nan if cov == 0 else math.copysign(math.inf, cov))
    return slope, sy / n - slope * sx / n


def _deriv(ts: list[int], vs: list[float], _s: int, _e: int, _t: int, _x: list[float]) -> float | None:
    if len(ts) < 2:
        return None
    return _linear_regression(ts, vs, ts[0])[0]


def _predict_linear(ts: list[int], vs: list[float], _s: int, _e: int, t: int, x: list[float]) -> float | None:
    if len(ts) < 2:
        return None
    slope, intercept = _linear_regression(ts, vs, t)
    return slope * x[0] + intercept


def _sum(vs: list[float]) -> float:
    s = c = 0.0
    for v in vs:
        s, c = kahan_inc(v, s, c)
    return s if math.isinf(s) else s + c


def _avg(vs: list[float]) -> float:
    s, c, count, mean, incremental = vs[0], 0.0, 1.0, 0.0, False
    for v in vs[1:]:
        count += 1
        if not incremental:
            ns, nc = kahan_inc(v, s, c)
            if not math.isinf(ns):
                s, c = ns, nc
                continue
            incremental = True
            mean = s / (count - 1)
            c /= count - 1
        q = (count - 1) / count
        mean, c = kahan_inc(v / count, q * mean, q * c)
    return mean + c if incremental else s / count + c / count


def _variance(vs: list[float]) -> float:
    count = mean = cm = aux = ca = 0.0
    for v in vs:
        count += 1
        delta = v - (mean + cm)
        mean, cm = kahan_inc(delta / count, mean, cm)
        aux, ca = kahan_inc(delta * (v - (mean + cm)), aux, ca)
    return (aux + ca) / count


def _extreme(vs: list[float], ts: list[int], larger: bool, want_ts: bool) -> float:
    total = sum(vs)
    if total == total and not want_ts:
        # No NaN in the window (a NaN, or +Inf with -Inf, makes the sum NaN): the builtin keeps the first of
        # equal values, as the loop below does.
        return max(vs) if larger else min(vs)
    best, best_t = vs[0], ts[0]
    for v, t in zip(vs, ts, strict=True):
        if (v > best if larger else v < best) or math.isnan(best):
            best, best_t = v, t
    return best_t / 1000 if want_ts else best


def _mad(vs: list[float]) -> float:
    if any(math.isnan(v) for v in vs):
        return math.nan
    med = quantile(0.5, vs)
    return quantile(0.5, [abs(v - med) for v in vs])


def _resets(vs: list[float]) -> float:
    return float(sum(1 for a, b in zip(vs, vs[1:], strict=False) if b < a))


def _changes(vs: list[float]) -> float:
    return float(sum(1 for a, b in zip(vs, vs[1:], strict=False) if a != b and not (math.isnan(a) and math.isnan(b))))


def _holt_winters(ts: list[int], vs: list[float], _s: int, _e: int, _t: int, x: list[float]) -> float | None:
    sf, tf = x
    if not 0 < sf < 1:
        raise EvalError(f"invalid smoothing factor. Expected: 0 < sf < 1, got: {sf:f}")
    if not 0 < tf < 1:
        raise EvalError(f"invalid trend factor. Expected: 0 < tf < 1, got: {tf:f}")
    if len(vs) < 2:
        return None
    s0, s1, b = 0.0, vs[0], vs[1] - vs[0]
    for i in range(1, len(vs)):
        xv = sf * vs[i]
        if i - 1 > 0:
            b = tf * (s1 - s0) + (1 - tf) * b
        y = (1 - sf) * (s1 + b)
        s0, s1 = s1, xv + y
    return s1


def _vals(f: Callable[[list[float]], float]) -> WindowFn:
    return lambda ts, vs, s, e, t, x: f(vs)


# === label_replace / label_join ===
_GROUP_REF = re.compile(r"\$(?:\$|\{([a-zA-Z0-9_]+)\}|([a-zA-Z0-9_]+))")


def _expand(template: str, rx: Regex, groups: list[str | None]) -> str:
    """Go's regexp.Expand: $1, ${1}, $name; unknown groups expand to nothing."""

    def sub(g: re.Match[str]) -> str:
        if g.group(0) == "$$":
            return "$"
        name = g.group(1) or g.group(2)
        idx = int(name) if name.isdigit() else rx.group_index(name)
        if idx is None or idx >= len(groups):  # an unknown group expands to nothing, as in Go
            return ""
        return groups[idx] or ""

    return _GROUP_REF.sub(sub, template)


def _check_unique(vec: Vector) -> Vector:
    seen: set[Labels] = set()
    for s in vec:
        if s.metric in seen:
            raise EvalError("vector cannot contain metrics with the same labelset")
        seen.add(s.metric)
    return vec


def _label_replace(ev: Evaluator, call: A.Call) -> Steps:
    dst, repl, src, regex = (ev.string(a) for a in call.args[1:5])
    try:
        rx = compile_anchored(regex)  # RE2, `^(?s:…)$`, as Prometheus compiles it
    except RegexError as e:
        raise EvalError(f"invalid regular expression in label_replace(): {regex}") from e
    if not valid_label_name(dst):
        raise EvalError(f"invalid destination label name in label_replace(): {dst}")
    out: Steps = []
    for vec in ev.vector(call.args[0]):
        res: Vector = []
        for s in vec:
            groups = rx.groups(get_label(s.metric, src))
            if groups is None:
                res.append(s)
                continue
            metric = set_label(s.metric, dst, _expand(repl, rx, groups))
            res.append(Sample(metric, s.value, s.t, False if dst == METRIC_NAME else s.drop_name))
        out.append(_check_unique(res))
    return out


def _label_join(ev: Evaluator, call: A.Call) -> Steps:
    dst, sep = ev.string(call.args[1]), ev.string(call.args[2])
    srcs = [ev.string(a) for a in call.args[3:]]
    for src in srcs:
        if not valid_label_name(src):
            raise EvalError(f"invalid source label name in label_join(): {src}")
    if not valid_label_name(dst):
        raise EvalError(f"invalid destination label name in label_join(): {dst}")
    out: Steps = []
    for vec in ev.vector(call.args[0]):
        res = [Sample(set_label(s.metric, dst, sep.join(get_label(s.metric, x) for x in srcs)), s.value, s.t,
                      False if dst == METRIC_NAME else s.drop_name) for s in vec]
        out.append(_check_unique(res))
    return out


# === histogram_quantile(k parser.ValueTypeScalar, Vector parser.ValueTypeVector) over classic buckets ===
def _buckets(vec: Vector, ev: Evaluator) -> dict[Labels, list[tuple[float, float]]]:
    groups: dict[Labels, list[tuple[float, float]]] = {}
    for s in vec:
        le = get_label(s.metric, "le")
        try:
            ub = float(le.replace("_", "")) if le.lower() not in ("+inf", "inf") else math.inf
        except ValueError:
            ev.warnings.append(f'PromQL warning: bucket label "le" is missing or has a malformed value of "{le}"')
            continue
        key = tuple(kv for kv in s.metric if kv[0] != "le")
        groups.setdefault(key, []).append((ub, s.value))
    return groups


def _prepare(buckets: list[tuple[float, float]]) -> list[list[float]] | None:
    bs = sorted(buckets, key=lambda b: b[0])
    if not math.isinf(bs[-1][0]) or bs[-1][0] < 0:
        return None
    merged: list[list[float]] = []
    for ub, c in bs:
        if merged and merged[-1][0] == ub:
            merged[-1][1] += c
        else:
            merged.append([ub, c])
    return merged


def almost_equal(a: float, b: float, eps: float) -> bool:
    """Prometheus's `almost.Equal`: relative comparison, NaN equals NaN, care near zero."""
    if a == b:
        return True
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    diff = abs(a - b)
    min_normal = 2.2250738585072014e-308
    if a == 0 or b == 0 or diff < min_normal:
        return diff < eps * min_normal
    return diff / min(abs(a) + abs(b), 1.7976931348623157e308) < eps


def _bucket_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    bs = _prepare(buckets)
    if bs is None:
        return math.nan
    prev = bs[0][1]
    for b in bs[1:]:
        cur = b[1]
        if cur == prev:
            continue
        if almost_equal(prev, cur, 1e-12) or cur < prev:
            b[1] = prev  # ignore float noise and force monotonicity, as Prometheus does
            continue
        prev = cur
    if len(bs) < 2:
        return math.nan
    total = bs[-1][1]
    if total == 0:
        return math.nan
    rank = q * total
    idx = next((i for i in range(len(bs) - 1) if bs[i][1] >= rank), len(bs) - 1)
    if idx == len(bs) - 1:
        return bs[-2][0]
    if idx == 0 and bs[0][0] <= 0:
        return bs[0][0]
    start, end, count = 0.0, bs[idx][0], bs[idx][1]
    if idx > 0:
        start = bs[idx - 1][0]
        count -= bs[idx - 1][1]
        rank -= bs[idx - 1][1]
    return start + (end - start) * (rank / count)


def _bucket_fraction(lower: float, upper: float, buckets: list[tuple[float, float]]) -> float:
    bs = _prepare(buckets)
    if bs is None:
        return math.nan
    count = bs[-1][1]
    if count == 0 or math.isnan(lower) or math.isnan(upper):
        return math.nan
    if lower >= upper:
        return 0.0
    rank = lower_rank = upper_rank = 0.0
    lower_set = upper_set = False
    lower_bound = 0.0 if bs[0][0] > 0 else -math.inf
    for i, (ub, c) in enumerate(bs):
        if i > 0:
            lower_bound = bs[i - 1][0]

        def interp(v: float, lb: float = lower_bound, ub: float = ub, c: float = c, r: float = rank) -> float:
            if lb == -math.inf:
                return c
            return r + (c - r) * (v - lb) / (ub - lb)

        if not lower_set and lower_bound >= lower:
            lower_rank, lower_set = rank, True
        if not upper_set and lower_bound >= upper:
            upper_rank, upper_set = rank, True
        if lower_set and upper_set:
            break
        if not lower_set and lower_bound < lower < ub:
            lower_rank, lower_set = interp(lower), True
        if not upper_set and lower_bound < upper < ub:
            upper_rank, upper_set = interp(upper), True
        if lower_set and upper_set:
            break
        rank = c
    if not lower_set or lower_rank > count:
        lower_rank = count
    if not upper_set or upper_rank > count:
        upper_rank = count
    return (upper_rank - lower_rank) / count


def _histogram_quantile(ev: Evaluator, call: A.Call) -> Steps:
    qs = ev.scalar(call.args[0])
    if any(math.isnan(q) or q < 0 or q > 1 for q in qs):
        ev.warnings.append("PromQL warning: quantile value should be between 0 and 1")
    out: Steps = []
    for q, vec in zip(qs, ev.vector(call.args[1]), strict=True):
        t = vec[0].t if vec else 0
        out.append([Sample(k, _bucket_quantile(q, b), t, True) for k, b in _buckets(vec, ev).items()])
    return out


def _openmetrics_float(v: float) -> str:
    """OpenMetrics float text: integral values keep a ".0" (`1.0`)."""
    s = format_float(v)
    return s + ".0" if s.lstrip("-").isdigit() else s


def _histogram_quantiles(ev: Evaluator, call: A.Call) -> Steps:
    label = ev.string(call.args[1])
    qss = [ev.scalar(a) for a in call.args[2:]]
    out: Steps = []
    for k, vec in enumerate(ev.vector(call.args[0])):
        t = vec[0].t if vec else 0
        groups = _buckets(vec, ev)
        res: Vector = []
        for qs in qss:
            q = qs[k]
            for key, b in groups.items():
                res.append(Sample(set_label(key, label, _openmetrics_float(q)), _bucket_quantile(q, b), t, True))
        out.append(_check_unique(res))
    return out


def _histogram_fraction(ev: Evaluator, call: A.Call) -> Steps:
    lows, highs = ev.scalar(call.args[0]), ev.scalar(call.args[1])
    out: Steps = []
    for lo, hi, vec in zip(lows, highs, ev.vector(call.args[2]), strict=True):
        t = vec[0].t if vec else 0
        out.append([Sample(k, _bucket_fraction(lo, hi, b), t, True) for k, b in _buckets(vec, ev).items()])
    return out


def _native_only(ev: Evaluator, call: A.Call) -> Steps:
    """histogram_count/sum/avg/stddev/stdvar read native histograms only; float samples are ignored."""
    return [[] for _ in ev.vector(call.args[0])]


# === instant-vector functions with scalar arguments ===
def _clamp(ev: Evaluator, call: A.Call) -> Steps:
    mins, maxs = ev.scalar(call.args[1]), ev.scalar(call.args[2])
    return [[] if hi < lo else [Sample(s.metric, go_max(lo, go_min(hi, s.value)), s.t, True) for s in vec]
            for vec, lo, hi in zip(ev.vector(call.args[0]), mins, maxs, strict=True)]


def _clamp_one(upper: bool) -> Impl:
    def impl(ev: Evaluator, call: A.Call) -> Steps:
        bounds = ev.scalar(call.args[1])
        f = go_min if upper else go_max
        return [[Sample(s.metric, f(s.value, b), s.t, True) for s in vec]
                for vec, b in zip(ev.vector(call.args[0]), bounds, strict=True)]

    return impl


def _round(ev: Evaluator, call: A.Call) -> Steps:
    nearest = ev.scalar(call.args[1]) if len(call.args) > 1 else [1.0] * len(ev.ts)
    out: Steps = []
    for vec, n in zip(ev.vector(call.args[0]), nearest, strict=True):
        inv = 1.0 / n if n != 0 else math.inf  # dividing by the inverse gives fewer float artefacts
        out.append([Sample(s.metric, go_floor(s.value * inv + 0.5) / inv, s.t, True) for s in vec])
    return out


def _date(f: Callable[[datetime], float]) -> Impl:
    def conv(v: float) -> float:
        if math.isnan(v) or math.isinf(v):
            return math.nan
        try:
            return f(datetime.fromtimestamp(int(v), tz=UTC))
        except (OverflowError, OSError, ValueError):
            return math.nan

    def impl(ev: Evaluator, call: A.Call) -> Steps:
        if not call.args:
            return [[Sample((), conv(t / 1000), t)] for t in ev.ts]
        return [[Sample(s.metric, conv(s.value), s.t, True) for s in vec] for vec in ev.vector(call.args[0])]

    return impl


def _timestamp(ev: Evaluator, call: A.Call) -> Steps:
    arg = unwrap(call.args[0])
    steps = ev.vector_selector(arg, sample_time=True) if isinstance(arg, A.VectorSelector) else ev.vector(arg)
    return [[Sample(s.metric, s.t / 1000, t, True) for s in vec] for vec, t in zip(steps, ev.ts, strict=True)]


def _absent_labels(node: A.Expr) -> Labels:
    node = unwrap(node)
    if isinstance(node, A.MatrixSelector):
        node = node.vs
    if not isinstance(node, A.VectorSelector):
        return ()
    out: Labels = ()
    has: set[str] = set()
    for m in node.matchers:
        if m.name == METRIC_NAME:
            continue
        if m.type == "=" and m.name not in has:
            out = set_label(out, m.name, m.value)
            has.add(m.name)
        else:
            out = set_label(out, m.name, "")
    return out


def _absent(ev: Evaluator, call: A.Call) -> Steps:
    lbls = _absent_labels(call.args[0])
    return [[] if vec else [Sample(lbls, 1.0, t)] for vec, t in zip(ev.vector(call.args[0]), ev.ts, strict=True)]


def _absent_over_time(ev: Evaluator, call: A.Call) -> Steps:
    ra = ev.range_arg(call.args[0])
    present = [False] * len(ev.ts)
    for s in ra.series:
        for k, _ts, _vs in ra.windows(s):
            present[k] = True
    lbls = _absent_labels(call.args[0])
    return [[] if p else [Sample(lbls, 1.0, t)] for p, t in zip(present, ev.ts, strict=True)]


def _sort(desc: bool) -> Impl:
    def impl(ev: Evaluator, call: A.Call) -> Steps:
        def key(s: Sample) -> tuple[bool, float]:
            nan = math.isnan(s.value)
            return nan, (0.0 if nan else (-s.value if desc else s.value))

        return [sorted(vec, key=key) for vec in ev.vector(call.args[0])]

    return impl


def _natural_key(s: str) -> list[tuple[int, int | str]]:
    return [(0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"(\d+)", s) if p]


def _sort_by_label(desc: bool) -> Impl:
    def impl(ev: Evaluator, call: A.Call) -> Steps:
        names = [ev.string(a) for a in call.args[1:]]
        out: Steps = []
        for vec in ev.vector(call.args[0]):
            # Ties are broken by the full label set, so the order is deterministic.
            res = sorted(vec, key=lambda s: [_natural_key(get_label(s.metric, n)) for n in names]
                         + [_natural_key(str(s.metric))], reverse=desc)
            out.append(res)
        return out

    return impl


def _vector(ev: Evaluator, call: A.Call) -> Steps:
    return [[Sample((), v, t)] for v, t in zip(ev.scalar(call.args[0]), ev.ts, strict=True)]


def _scalar(ev: Evaluator, call: A.Call) -> list[float]:
    return [vec[0].value if len(vec) == 1 else math.nan for vec in ev.vector(call.args[0])]


def _time(ev: Evaluator, call: A.Call) -> list[float]:
    return [t / 1000 for t in ev.ts]


def _pi(ev: Evaluator, call: A.Call) -> list[float]:
    return [math.pi] * len(ev.ts)


def _of(f: Callable[[float, float], float]) -> Impl:
    def impl(ev: Evaluator, call: A.Call) -> list[float]:
        return [f(a, b) for a, b in zip(ev.scalar(call.args[0]), ev.scalar(call.args[1]), strict=True)]

    return impl


def _nan(_x: float) -> float:
    return math.nan


def _ln_err(x: float) -> float:
    return -math.inf if x == 0 else math.nan


def _sgn(v: float) -> float:
    return -1.0 if v < 0 else 1.0 if v > 0 else v


def _atanh_err(x: float) -> float:
    return math.copysign(math.inf, x) if abs(x) == 1 else math.nan


FUNCTION_CALLS: dict[str, Impl] = {
    "abs": _simple(abs),
    "absent": _absent,
    "absent_over_time": _absent_over_time,
    "acos": _simple(safe(math.acos, _nan)),
    "acosh": _simple(safe(math.acosh, _nan)),
    "asin": _simple(safe(math.asin, _nan)),
    "asinh": _simple(safe(math.asinh, _nan)),
    "atan": _simple(math.atan),
    "atanh": _simple(safe(math.atanh, _atanh_err)),
    "avg_over_time": _range_fn(_vals(_avg)),
    "ceil": _simple(go_ceil),
    "changes": _range_fn(_vals(_changes)),
    "clamp": _clamp,
    "clamp_max": _clamp_one(upper=True),
    "clamp_min": _clamp_one(upper=False),
    "cos": _simple(safe(math.cos, _nan)),
    "cosh": _simple(safe(math.cosh, lambda x: math.nan if math.isnan(x) else math.inf)),
    "count_over_time": _range_fn(_vals(lambda vs: float(len(vs)))),
    "days_in_month": _date(lambda d: float(calendar.monthrange(d.year, d.month)[1])),
    "day_of_month": _date(lambda d: float(d.day)),
    "day_of_week": _date(lambda d: float(d.isoweekday() % 7)),
    "day_of_year": _date(lambda d: float(d.timetuple().tm_yday)),
    "deg": _simple(lambda v: v * 180 / math.pi),
    "delta": _range_fn(_extrapolated(is_counter=False, is_rate=False)),
    "deriv": _range_fn(_deriv),
    "double_exponential_smoothing": _range_fn(_holt_winters),
    "exp": _simple(safe(math.exp, lambda x: math.nan if math.isnan(x) else math.inf)),
    "first_over_time": _range_fn(lambda ts, vs, s, e, t, x: vs[0], keep_name=True),
    "floor": _simple(go_floor),
    "histogram_avg": _native_only,
    "histogram_count": _native_only,
    "histogram_fraction": _histogram_fraction,
    "histogram_quantile": _histogram_quantile,
    "histogram_quantiles": _histogram_quantiles,
    "histogram_stddev": _native_only,
    "histogram_stdvar": _native_only,
    "histogram_sum": _native_only,
    "hour": _date(lambda d: float(d.hour)),
    "idelta": _range_fn(_instant(is_rate=False)),
    "increase": _range_fn(_extrapolated(is_counter=True, is_rate=False)),
    "irate": _range_fn(_instant(is_rate=True)),
    "label_join": _label_join,
    "label_replace": _label_replace,
    "last_over_time": _range_fn(lambda ts, vs, s, e, t, x: vs[-1], keep_name=True),
    "ln": _simple(safe(math.log, _ln_err)),
    "log10": _simple(safe(math.log10, _ln_err)),
    "log2": _simple(safe(math.log2, _ln_err)),
    "mad_over_time": _range_fn(_vals(_mad)),
    "max_of": _of(go_max),
    "max_over_time": _range_fn(lambda ts, vs, s, e, t, x: _extreme(vs, ts, True, False)),
    "min_of": _of(go_min),
    "min_over_time": _range_fn(lambda ts, vs, s, e, t, x: _extreme(vs, ts, False, False)),
    "minute": _date(lambda d: float(d.minute)),
    "month": _date(lambda d: float(d.month)),
    "pi": _pi,
    "predict_linear": _range_fn(_predict_linear),
    "present_over_time": _range_fn(_vals(lambda vs: 1.0)),
    "quantile_over_time": _range_fn(lambda ts, vs, s, e, t, x: quantile(x[0], vs), matrix_arg=1),
    "rad": _simple(lambda v: v * math.pi / 180),
    "rate": _range_fn(_extrapolated(is_counter=True, is_rate=True)),
    "resets": _range_fn(_vals(_resets)),
    "round": _round,
    "scalar": _scalar,
    "sgn": _simple(_sgn),
    "sin": _simple(safe(math.sin, _nan)),
    "sinh": _simple(safe(math.sinh, lambda x: math.copysign(math.inf, x))),
    "sort": _sort(desc=False),
    "sort_by_label": _sort_by_label(desc=False),
    "sort_by_label_desc": _sort_by_label(desc=True),
    "sort_desc": _sort(desc=True),
    "sqrt": _simple(safe(math.sqrt, _nan)),
    "stddev_over_time": _range_fn(_vals(lambda vs: math.sqrt(v) if (v := _variance(vs)) >= 0 else math.nan)),
    "stdvar_over_time": _range_fn(_vals(_variance)),
    "sum_over_time": _range_fn(_vals(_sum)),
    "tan": _simple(safe(math.tan, _nan)),
    "tanh": _simple(math.tanh),
    "time": _time,
    "timestamp": _timestamp,
    "ts_of_first_over_time": _range_fn(lambda ts, vs, s, e, t, x: ts[0] / 1000),
    "ts_of_last_over_time": _range_fn(lambda ts, vs, s, e, t, x: ts[-1] / 1000),
    "ts_of_max_over_time": _range_fn(lambda ts, vs, s, e, t, x: _extreme(vs, ts, True, True)),
    "ts_of_min_over_time": _range_fn(lambda ts, vs, s, e, t, x: _extreme(vs, ts, False, True)),
    "vector": _vector,
    "year": _date(lambda d: float(d.year)),
}

