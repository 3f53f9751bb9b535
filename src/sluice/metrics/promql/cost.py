"""An upper estimate of what evaluating a parsed query will touch, worked out before evaluating it.

Used by `sluice.metrics.api` to decide whether a query is small enough to evaluate on the event loop that
serves the API (skipping the hand-over to a query worker and back, most of a small query's cost) or must go to
the query pool, as every query whose cost is not bounded small does. `plan` runs where the query is parsed
(in a worker); `Plan.bounded` runs on the loop and only reads the storage's bookkeeping (no regex, no decoding):

* the query has no `label_replace` (a regex over label values) and at most `MAX_NODES` nodes;
* a subquery is not nested, has an explicit step and no `@`, and everything inside it is evaluated column-wise
  with range functions whose cost does not grow with their window; its inner steps' cells are counted against
  the column-wise budget (`max_columnar_cells`), and a query holding one is bounded at a single step only;
* every selector's series are already known to the storage's index, and there are few of them;
* the samples its selectors may read (whole chunks counted; several times over under a costly function) stay
  within `max_samples`, and the series × steps its instant-vector nodes may hold stay within `max_cells`;
* a query of several steps (a range query) is evaluated column-wise throughout, with range functions whose
  cost does not grow with their window (`Plan.flat`), so its work is its cells at numpy's cost.

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
# Functions and aggregations whose work per sample or series is a few numpy or Python steps; anything else
# (regressions, quantiles, sorting, smoothing) counts its samples several times over (`_HEAVY_WEIGHT`).
_CHEAP = frozenset({"rate", "increase", "delta", "irate", "idelta", "count_over_time", "last_over_time",
                    "present_over_time", "sum_over_time", "avg_over_time", "max_over_time", "min_over_time",
                    "absent", "absent_over_time", "vector", "scalar", "time", "round", "abs", "ceil", "floor",
                    "exp", "ln", "log2", "log10", "sqrt", "clamp", "clamp_min", "clamp_max", "timestamp", "sgn",
                    "sum", "avg", "count", "min", "max", "group"})
_HEAVY_WEIGHT = 4
# Range functions whose column-wise form costs the same whatever the window holds (positions, not folds): the
# only ones a multi-step query may use and still be bounded by its cells.
_FLAT_RANGE_FNS = frozenset({"rate", "increase", "delta", "irate", "idelta", "count_over_time", "last_over_time",
                             "present_over_time"})
# Calls that yield a series without reading one.
_CREATORS = frozenset({"vector", "absent", "absent_over_time"})


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
    # An enclosing subquery's range and offset: the selection is read over that much more, that much earlier.
    sub_range_ms: int = 0
    sub_offset_ms: int = 0


@dataclass(frozen=True)
class _Sub:
    range_ms: int
    offset_ms: int
    steps: int  # inner steps per outer step, at most


@dataclass(frozen=True)
class Plan:
    selections: tuple[_Selection, ...]
    vector_nodes: int  # nodes whose value is an instant vector (each holds at most series × steps cells)
    creators: int  # nodes that make a series of their own (`vector`, `absent`)
    weight: int  # how many times each sample counts against the sample budget
    # Every instant-vector node is one the column-wise evaluator handles itself, with range functions whose
    # cost does not grow with their window: a multi-step query's work is then its cells at numpy's cost.
    flat: bool
    # Cells per series that subqueries' inner vector nodes hold, summed over those nodes (each node: its
    # subquery's inner steps); 0 without a subquery.
    inner_cells: int = 0

    def bounded(self, storage: object, start_ms: int, end_ms: int, step_ms: int, lookback_ms: int, *,
                max_samples: int, max_cells: int, max_columnar_cells: int | None = None) -> bool:
        """Whether evaluating over [start_ms, end_ms] at `step_ms` provably reads at most `max_samples`
        (weighted) samples and holds at most `max_cells` series × steps over all its instant-vector nodes
        outside subqueries, and `max_columnar_cells` (default `max_cells`) inside them."""
        bound = getattr(storage, "samples_bound", None)
        if bound is None:
            return False
        steps = (end_ms - start_ms) // max(1, step_ms) + 1
        if steps > 1 and not self.flat:
            return False
        # No node yields more series than all selectors together plus the series made from nothing.
        max_series = max_cells // (steps * max(1, self.vector_nodes)) - self.creators
        if self.inner_cells:
            inner_cap = (max_cells if max_columnar_cells is None else max_columnar_cells) // self.inner_cells
            max_series = min(max_series, inner_cap - self.creators)
        max_reads = max_samples // self.weight
        if max_series < 0:
            return False
        samples = series = 0
        for sel in self.selections:
            at = start_ms if sel.at_special == "start" else end_ms if sel.at_special == "end" else sel.at_ms
            lo = (start_ms if at is None else at) - sel.offset_ms - sel.sub_offset_ms
            hi = (end_ms if at is None else at) - sel.offset_ms - sel.sub_offset_ms
            span = (lookback_ms if sel.span_ms is None else sel.span_ms) + sel.sub_range_ms
            got: tuple[int, int] | None = bound(sel.matchers, lo - span, hi, max_series=max_series - series,
                                                max_samples=max_reads - samples)
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
    stack: list[tuple[A.Expr, _Sub | None]] = [(root, None)]
    nodes = vector_nodes = creators = inner_cells = 0
    weight = 1
    flat = True
    while stack:
        node, sub = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            return None
        if node.type == "vector" and not isinstance(node, A.ParenExpr):
            node_flat = columnar.supported(node) and not (
                isinstance(node, A.Call) and node.func not in _FLAT_RANGE_FNS | _CREATORS | {"round"})
            if sub is None:
                vector_nodes += 1
                flat = flat and node_flat
            elif not node_flat:
                return None  # evaluated step by step inside: its cost grows with the inner steps' windows
            else:
                inner_cells += sub.steps
        if isinstance(node, A.VectorSelector):
            sels.append(_Selection(node.matchers, None, node.offset_ms, node.at_ms, node.at_special,
                                   *_widening(sub)))
        elif isinstance(node, A.MatrixSelector):
            vs = node.vs
            sels.append(_Selection(vs.matchers, node.range_ms, vs.offset_ms, vs.at_ms, vs.at_special,
                                   *_widening(sub)))
        elif isinstance(node, A.SubqueryExpr):
            if sub is not None or not node.step_ms or node.at_ms is not None or node.at_special is not None:
                return None
            flat = False
            stack.append((node.expr, _Sub(node.range_ms, node.offset_ms, node.range_ms // node.step_ms + 1)))
        elif isinstance(node, A.Call):
            if node.func in _UNBOUNDED_CALLS:
                return None
            if node.func not in _CHEAP:
                weight = _HEAVY_WEIGHT
            creators += node.func in _CREATORS
            stack.extend((a, sub) for a in node.args)
        elif isinstance(node, (A.ParenExpr, A.UnaryExpr)):
            stack.append((node.expr, sub))
        elif isinstance(node, A.BinaryExpr):
            stack.extend(((node.lhs, sub), (node.rhs, sub)))
        elif isinstance(node, A.AggregateExpr):
            if node.op not in _CHEAP:
                weight = _HEAVY_WEIGHT
            stack.append((node.expr, sub))
            if node.param is not None:
                stack.append((node.param, sub))
        elif not isinstance(node, (A.NumberLiteral, A.StringLiteral)):
            return None
    return Plan(tuple(sels), vector_nodes, creators, weight, flat, inner_cells)


def _widening(sub: _Sub | None) -> tuple[int, int]:
    return (0, 0) if sub is None else (sub.range_ms, sub.offset_ms)
