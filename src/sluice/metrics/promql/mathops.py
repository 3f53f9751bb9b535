"""Float arithmetic with Go's IEEE-754 results (Python raises where Go returns NaN or ±Inf), Kahan
summation as Prometheus's `kahansum.Inc`, and the quantile helpers shared by aggregations and functions."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

__all__ = ["binop", "kahan_inc", "quantile", "go_max", "go_min", "safe", "COMPARISON_OPS", "ARITHMETIC_OPS",
           "go_floor", "go_ceil"]

ARITHMETIC_OPS = frozenset({"+", "-", "*", "/", "%", "^", "atan2"})
COMPARISON_OPS = frozenset({"==", "!=", "<", "<=", ">", ">="})


def _div(a: float, b: float) -> float:
    if b == 0:
        if a == 0 or math.isnan(a):
            return math.nan
        neg = (a < 0) != (math.copysign(1.0, b) < 0)
        return -math.inf if neg else math.inf
    return a / b


def _mod(a: float, b: float) -> float:
    if b == 0 or math.isinf(a) or math.isnan(a) or math.isnan(b):
        return math.nan
    return math.fmod(a, b)


def _is_odd_int(x: float) -> bool:
    return x == int(x) and int(x) % 2 == 1 if not math.isinf(x) else False


def _pow(a: float, b: float) -> float:
    try:
        return math.pow(a, b)
    except OverflowError:
        return -math.inf if a < 0 and _is_odd_int(b) else math.inf
    except ValueError:
        if a == 0:
            return -math.inf if math.copysign(1.0, a) < 0 and _is_odd_int(b) else math.inf
        return math.nan


_OPS: dict[str, Callable[[float, float], float]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": _div,
    "%": _mod,
    "^": _pow,
    "atan2": math.atan2,
}
_CMP: dict[str, Callable[[float, float], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def binop(op: str, a: float, b: float) -> tuple[float, bool]:
    """Value and keep-flag of `a op b` (comparisons keep `a` when true)."""
    cmp = _CMP.get(op)
    if cmp is not None:
        return a, cmp(a, b)
    return _OPS[op](a, b), True


def kahan_inc(inc: float, s: float, c: float) -> tuple[float, float]:
    """One step of Neumaier-compensated summation (Prometheus util/kahansum.Inc)."""
    t = s + inc
    if math.isinf(t):
        c = 0.0
    elif abs(s) >= abs(inc):
        c += (s - t) + inc
    else:
        c += (inc - t) + s
    return t, c


def go_max(a: float, b: float) -> float:
    if math.isnan(a) or math.isnan(b):
        return math.nan
    return max(a, b)


def go_min(a: float, b: float) -> float:
    if math.isnan(a) or math.isnan(b):
        return math.nan
    return min(a, b)


def go_floor(x: float) -> float:
    return x if math.isinf(x) or math.isnan(x) else float(math.floor(x))


def go_ceil(x: float) -> float:
    return x if math.isinf(x) or math.isnan(x) else float(math.ceil(x))


def safe(f: Callable[[float], float], on_error: Callable[[float], float]) -> Callable[[float], float]:
    """Wrap a `math` function so domain/overflow errors give Go's answer instead of raising."""

    def g(x: float) -> float:
        try:
            return f(x)
        except (ValueError, OverflowError):
            return on_error(x)

    return g


def quantile(q: float, values: Sequence[float]) -> float:
    """Prometheus's quantile(): linear interpolation between the two nearest ranks (NaN sorts first)."""
    if not values or math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    vs = sorted(values, key=lambda v: (not math.isnan(v), v if not math.isnan(v) else 0.0))
    n = len(vs)
    rank = q * (n - 1)
    lower = max(0, math.floor(rank))
    upper = min(n - 1, lower + 1)
    weight = rank - math.floor(rank)
    return vs[lower] * (1 - weight) + vs[upper] * weight
