"""Sluice's PromQL engine: Prometheus 3 query semantics over any `sluice.metrics.series.Storage`.

    engine = Engine(storage)
    engine.instant('sum by (job) (rate(http_requests_total[5m]))', t_ms)
    engine.range('up', start_ms, end_ms, step_ms)

Layers, as in Prometheus's promql/: `lexer` → `parser` → `ast`; `functions` (signatures) and `calls`
(implementations); `evaluator` with `binops` and `aggregate`; `values` (results); `format` (Go floats).
"""

from __future__ import annotations

from .ast import Expr
from .engine import Engine
from .errors import EvalError, ParseError, PromQLError, QueryCanceled, QueryTimeout
from .format import format_float
from .parser import parse
from .values import Matrix, QueryResult, Sample, Scalar, Series, String, Vector

__all__ = [
    "Engine", "QueryResult", "PromQLError", "ParseError", "EvalError", "QueryTimeout", "QueryCanceled", "parse", "Expr", "format_float",
    "Sample", "Series", "Scalar", "String", "Vector", "Matrix",
]
