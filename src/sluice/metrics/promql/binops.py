"""Binary operators: scalar/scalar, vector/scalar and vector/vector with on/ignoring/group_left/group_right
matching, the set operators, and Prometheus's matching errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from sluice.metrics.series import METRIC_NAME

from . import ast as A
from .errors import EvalError
from .mathops import ARITHMETIC_OPS, COMPARISON_OPS, binop
from .steps import Steps
from .values import (
    Labels,
    Sample,
    Vector,
    drop_name,
    get_label,
    keep_labels,
    labels_str,
    set_label,
    without_labels,
)

if TYPE_CHECKING:  # the evaluator imports this module, not the other way round
    from .evaluator import Evaluator

__all__ = ["scalar_binop", "vector_binop"]


def scalar_binop(ev: Evaluator, node: A.BinaryExpr) -> list[float]:
    lhs, rhs = ev.scalar(node.lhs), ev.scalar(node.rhs)
    out = []
    for a, b in zip(lhs, rhs, strict=True):
        v, keep = binop(node.op, a, b)
        out.append((1.0 if keep else 0.0) if node.op in COMPARISON_OPS else v)
    return out


def vector_binop(ev: Evaluator, node: A.BinaryExpr) -> Steps:
    lt, rt = node.lhs.type, node.rhs.type
    if lt == "scalar" or rt == "scalar":
        swap = lt == "scalar"
        vec_steps = ev.vector(node.rhs if swap else node.lhs)
        sc = ev.scalar(node.lhs if swap else node.rhs)
        return [_vector_scalar(node.op, vec, s, swap, node.return_bool) for vec, s in zip(vec_steps, sc, strict=True)]
    lhs, rhs = ev.vector(node.lhs), ev.vector(node.rhs)
    m = node.matching or A.VectorMatching("one-to-one")
    sig = _signature(m)
    if node.op == "and":
        return [_and(lv, rv, sig) for lv, rv in zip(lhs, rhs, strict=True)]
    if node.op == "or":
        return [_or(lv, rv, sig) for lv, rv in zip(lhs, rhs, strict=True)]
    if node.op == "unless":
        return [_unless(lv, rv, sig) for lv, rv in zip(lhs, rhs, strict=True)]
    return [_vector_vector(node.op, lv, rv, m, sig, node.return_bool) for lv, rv in zip(lhs, rhs, strict=True)]


def _vector_scalar(op: str, vec: Vector, s: float, swap: bool, return_bool: bool) -> Vector:
    out: Vector = []
    for smp in vec:
        a, b = (s, smp.value) if swap else (smp.value, s)
        v, keep = binop(op, a, b)
        if op in COMPARISON_OPS:
            v = smp.value  # a filter keeps the vector's own value, whichever side it is on
        if return_bool:
            v, keep = (1.0 if keep else 0.0), True
        if keep:
            dn = smp.drop_name or op in ARITHMETIC_OPS or return_bool
            out.append(Sample(smp.metric, v, smp.t, dn))
    return out


def _signature(m: A.VectorMatching) -> Callable[[Labels], Labels]:
    if m.on:
        names = frozenset(m.labels)
        return lambda lbls: tuple(kv for kv in lbls if kv[0] in names)
    ignored = frozenset(m.labels) | {METRIC_NAME}
    return lambda lbls: tuple(kv for kv in lbls if kv[0] not in ignored)


def _and(lhs: Vector, rhs: Vector, sig: Callable[[Labels], Labels]) -> Vector:
    if not lhs or not rhs:
        return []
    right = {sig(s.metric) for s in rhs}
    return [s for s in lhs if sig(s.metric) in right]


def _or(lhs: Vector, rhs: Vector, sig: Callable[[Labels], Labels]) -> Vector:
    if not lhs or not rhs:
        return lhs + rhs
    left = {sig(s.metric) for s in lhs}
    return lhs + [s for s in rhs if sig(s.metric) not in left]


def _unless(lhs: Vector, rhs: Vector, sig: Callable[[Labels], Labels]) -> Vector:
    if not rhs:
        return lhs
    right = {sig(s.metric) for s in rhs}
    return [s for s in lhs if sig(s.metric) not in right]


def _match_labels(lbls: Labels, m: A.VectorMatching) -> Labels:
    if m.on:
        return keep_labels(lbls, m.labels)
    return without_labels(lbls, set(m.labels) | {METRIC_NAME})


def _vector_vector(op: str, lhs: Vector, rhs: Vector, m: A.VectorMatching, sig: Callable[[Labels], Labels],
                   return_bool: bool) -> Vector:
    if not lhs or not rhs:
        return []
    one_to_many = m.card == "one-to-many"
    if one_to_many:
        lhs, rhs = rhs, lhs
    # The right side is the "one" side: its signatures must be unique.
    right: dict[Labels, Sample] = {}
    for rs in rhs:
        k = sig(rs.metric)
        dup = right.get(k)
        if dup is not None:
            side = "left" if one_to_many else "right"
            d1, d2 = sorted((labels_str(rs.metric), labels_str(dup.metric)))
            raise EvalError(f"found duplicate series for the match group {labels_str(_match_labels(rs.metric, m))} "
                            f"on the {side} hand-side of the operation: [{d1}, {d2}];many-to-many matching not "
                            "allowed: matching labels must be unique on one side")
        right[k] = rs
    matched: set[Labels] = set()
    inserted: dict[Labels, set[Labels]] = {}
    out: Vector = []
    for ls in lhs:
        k = sig(ls.metric)
        match = right.get(k)
        if match is None:
            continue
        rs = match
        a, b = (rs.value, ls.value) if one_to_many else (ls.value, rs.value)
        v, keep = binop(op, a, b)
        if return_bool:
            v = 1.0 if keep else 0.0
        metric = _result_metric(ls.metric, rs.metric, op, m)
        if m.card == "one-to-one":
            if k in matched:
                raise EvalError("multiple matches for labels: many-to-one matching must be explicit "
                                "(group_left/group_right)")
            matched.add(k)
        else:
            seen = inserted.setdefault(k, set())
            if metric in seen:
                raise EvalError("multiple matches for labels: grouping labels must ensure unique matches")
            seen.add(metric)
        if keep or return_bool:
            out.append(Sample(metric, v, ls.t, return_bool or (ls.drop_name and op in COMPARISON_OPS)))
    return out


def _result_metric(lhs: Labels, rhs: Labels, op: str, m: A.VectorMatching) -> Labels:
    metric = drop_name(lhs) if op in ARITHMETIC_OPS else lhs
    if m.card == "one-to-one":
        metric = keep_labels(metric, m.labels) if m.on else without_labels(metric, m.labels)
    for name in m.include:
        metric = set_label(metric, name, get_label(rhs, name))
    return metric
