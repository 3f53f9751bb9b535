"""An upper estimate of what evaluating a parsed query will touch, worked out before evaluating it.

Used by `sluice.metrics.api` to decide whether a query is small enough to evaluate on the event loop that
serves the API (skipping the hand-over to a query worker and back, most of a small query's cost) or must go to
the query pool, as every query whose cost is not bounded small does. `plan` runs where the query is parsed
(in a worker); `Plan.bounded` runs on the loop and only reads the storage's bookkeeping (no regex, no decoding):

* the query has no subquery, no `label_replace` (a regex over label values) and at most `MAX_NODES` nodes;
* every selector's series are already known to the storage's index, and there are few of them;
* the samples its selectors may read (whole chunks counted) stay within `max_samples`, and the series times
  steps that every node may produce stay within `max_cells` (the caller allows more cells when `Plan.columnar`:
  then a range query's cells cost numpy's time, not the step-by-step evaluator's).

Anything the storage cannot bound this way (no `samples_bound`, a matcher set not remembered) is unbounded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sluice.metrics.series import Matcher

from . import ast as A
from . import columnar
from .parser import parse

__all__ = ["Plan", "plan", "BoundedStorage", "MAX_NODES"]

MAX_NODES = 32
_UNBOUNDED_CALLS = frozenset({"label_replace"})


class BoundedStorage(Protocol):
    def samples_bound(self, matchers: Sequence[Matcher], start_ms: int, end_ms: int, *, max_series: int,
                      max_samples: int) -> tuple[int, int] | None: ...


@dataclass(frozen=True)
class _Selection:
    matchers: tuple[Matcher, ...]
    span_ms: int | None  # a range selector's range; None: the query's lookback delta
    offset_ms: int
    at_ms: int | None
    at_special: str | None


@dataclass(frozen=True)
class Plan:
    selections: tuple[_Selection, ...]
    nodes: int
    # Every instant-vector node is one the column-wise evaluator handles itself (a range query's per-cell
    # cost is then numpy's, not the step-by-step path's).
    columnar: bool

    def bounded(self, storage: object, start_ms: int, end_ms: int, step_ms: int, lookback_ms: int, *,
                max_samples: int, max_cells: int) -> bool:
        """Whether evaluating over [start_ms, end_ms] at `step_ms` provably reads at most `max_samples`
        samples and produces at most `max_cells` series × steps per node."""
        bound = getattr(storage, "samples_bound", None)
        if bound is None:
            return False
        steps = (end_ms - start_ms) // max(1, step_ms) + 1
        # No node yields more series than all selectors together plus one per node (`vector`, `absent`).
        max_series = max_cells // (steps * self.nodes) - self.nodes
        if max_series < 0:
            return False
        samples = series = 0
        for sel in self.selections:
            at = start_ms if sel.at_special == "start" else end_ms if sel.at_special == "end" else sel.at_ms
            lo = (start_ms if at is None else at) - sel.offset_ms
            hi = (end_ms if at is None else at) - sel.offset_ms
            span = lookback_ms if sel.span_ms is None else sel.span_ms
            got: tuple[int, int] | None = bound(sel.matchers, lo - span, hi, max_series=max_series - series,
                                                max_samples=max_samples - samples)
            if got is None:
                return False
            series += got[0]
            samples += got[1]
        return True


def plan(expr: str) -> Plan | None:
    """The selections `expr` makes, or None when its cost cannot be bounded from them (or it does not parse)."""
    try:
        root = parse(expr)
    except Exception:  # noqa: BLE001 - a query that does not parse has no plan; evaluation reports why
        return None
    sels: list[_Selection] = []
    stack: list[A.Expr] = [root]
    nodes = 0
    cols = True
    while stack:
        node = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            return None
        if node.type == "vector" and not isinstance(node, A.ParenExpr):
            cols = cols and columnar.supported(node)
        if isinstance(node, A.VectorSelector):
            sels.append(_Selection(node.matchers, None, node.offset_ms, node.at_ms, node.at_special))
        elif isinstance(node, A.MatrixSelector):
            vs = node.vs
            sels.append(_Selection(vs.matchers, node.range_ms, vs.offset_ms, vs.at_ms, vs.at_special))
        elif isinstance(node, A.SubqueryExpr):
            return None
        elif isinstance(node, A.Call):
            if node.func in _UNBOUNDED_CALLS:
                return None
            stack.extend(node.args)
        elif isinstance(node, (A.ParenExpr, A.UnaryExpr)):
            stack.append(node.expr)
        elif isinstance(node, A.BinaryExpr):
            stack.extend((node.lhs, node.rhs))
        elif isinstance(node, A.AggregateExpr):
            stack.append(node.expr)
            if node.param is not None:
                stack.append(node.param)
        elif not isinstance(node, (A.NumberLiteral, A.StringLiteral)):
            return None
    return Plan(tuple(sels), nodes, cols)
