"""Function signatures (argument types, variadic count, return type), as Prometheus's parser/functions.go.

The implementations live in `calls.py`; `tests/unit/promql/test_functions_table.py` keeps both tables'
keys identical.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Function", "FUNCTIONS", "AT_MODIFIER_UNSAFE", "ValueType"]

ValueType = Literal["scalar", "vector", "matrix", "string"]  # PromQL's value types (the AST re-exports it)


@dataclass(frozen=True)
class Function:
    name: str
    arg_types: tuple[ValueType, ...]
    return_type: ValueType
    variadic: int = 0  # 0: exact; n > 0: up to n optional trailing args of the last type; -1: unbounded
    experimental: bool = False


def _f(name: str, args: str, ret: ValueType, variadic: int = 0, experimental: bool = False) -> Function:
    kinds: dict[str, ValueType] = {"s": "scalar", "v": "vector", "m": "matrix", "S": "string"}
    return Function(name, tuple(kinds[c] for c in args), ret, variadic, experimental)


_V: ValueType = "vector"
_S: ValueType = "scalar"

FUNCTIONS: dict[str, Function] = {f.name: f for f in [
    _f("abs", "v", _V), _f("absent", "v", _V), _f("absent_over_time", "m", _V),
    _f("acos", "v", _V), _f("acosh", "v", _V), _f("asin", "v", _V), _f("asinh", "v", _V),
    _f("atan", "v", _V), _f("atanh", "v", _V), _f("avg_over_time", "m", _V), _f("ceil", "v", _V),
    _f("changes", "m", _V), _f("clamp", "vss", _V), _f("clamp_max", "vs", _V), _f("clamp_min", "vs", _V),
    _f("cos", "v", _V), _f("cosh", "v", _V), _f("count_over_time", "m", _V),
    _f("days_in_month", "v", _V, 1), _f("day_of_month", "v", _V, 1), _f("day_of_week", "v", _V, 1),
    _f("day_of_year", "v", _V, 1), _f("deg", "v", _V), _f("delta", "m", _V), _f("deriv", "m", _V),
    _f("exp", "v", _V), _f("first_over_time", "m", _V), _f("floor", "v", _V),
    _f("histogram_avg", "v", _V), _f("histogram_count", "v", _V), _f("histogram_sum", "v", _V),
    _f("histogram_stddev", "v", _V), _f("histogram_stdvar", "v", _V), _f("histogram_fraction", "ssv", _V),
    _f("histogram_quantile", "sv", _V),
    _f("histogram_quantiles", "vSss", _V, 9, experimental=True),
    _f("double_exponential_smoothing", "mss", _V, experimental=True),
    _f("hour", "v", _V, 1), _f("idelta", "m", _V), _f("increase", "m", _V), _f("irate", "m", _V),
    _f("label_replace", "vSSSS", _V), _f("label_join", "vSSS", _V, -1),
    _f("last_over_time", "m", _V), _f("ln", "v", _V), _f("log10", "v", _V), _f("log2", "v", _V),
    _f("mad_over_time", "m", _V, experimental=True), _f("max_over_time", "m", _V),
    _f("max_of", "ss", _S, experimental=True), _f("min_of", "ss", _S, experimental=True),
    _f("min_over_time", "m", _V), _f("minute", "v", _V, 1), _f("month", "v", _V, 1), _f("pi", "", _S),
    _f("predict_linear", "ms", _V), _f("present_over_time", "m", _V), _f("quantile_over_time", "sm", _V),
    _f("rad", "v", _V), _f("rate", "m", _V), _f("resets", "m", _V), _f("round", "vs", _V, 1),
    _f("scalar", "v", _S), _f("sgn", "v", _V), _f("sin", "v", _V), _f("sinh", "v", _V), _f("sort", "v", _V),
    _f("sort_desc", "v", _V), _f("sort_by_label", "vS", _V, -1, experimental=True),
    _f("sort_by_label_desc", "vS", _V, -1, experimental=True), _f("sqrt", "v", _V),
    _f("stddev_over_time", "m", _V), _f("stdvar_over_time", "m", _V), _f("sum_over_time", "m", _V),
    _f("tan", "v", _V), _f("tanh", "v", _V), _f("time", "", _S), _f("timestamp", "v", _V),
    _f("ts_of_first_over_time", "m", _V, experimental=True), _f("ts_of_last_over_time", "m", _V, experimental=True),
    _f("ts_of_max_over_time", "m", _V, experimental=True), _f("ts_of_min_over_time", "m", _V, experimental=True),
    _f("vector", "s", _V), _f("year", "v", _V, 1),
]}

# Functions whose result depends on the evaluation time even when their arguments do not
# (Prometheus's AtModifierUnsafeFunctions): the @-modifier re-runs of the conformance harness skip them.
AT_MODIFIER_UNSAFE = frozenset({
    "days_in_month", "day_of_month", "day_of_week", "day_of_year", "hour", "minute", "month", "year",
    "predict_linear", "time", "timestamp",
})
