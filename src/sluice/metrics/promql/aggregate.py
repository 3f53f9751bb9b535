"""Aggregation operators (sum, avg, min, max, count, group, stddev, stdvar, quantile, topk, bottomk,
count_values) with by/without grouping, evaluated step by step."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from sluice.metrics.series import METRIC_NAME

from . import ast as A
from .errors import EvalError
from .format import format_float, go_quote
from .mathops import kahan_inc, quantile
from .steps import Steps
from .values import Labels, Sample, Vector, keep_labels, set_label, without_labels

if TYPE_CHECKING:  # the evaluator imports this module, not the other way round
    from .evaluator import Evaluator

__all__ = ["aggregate", "valid_label_name"]


def valid_label_name(name: str) -> bool:
    """Prometheus 3 accepts any non-empty UTF-8 label name (surrogates mark invalid bytes)."""
    return bool(name) and not any(0xD800 <= ord(c) <= 0xDFFF for c in name)


def _grouping_labels(metric: Labels, grouping: tuple[str, ...], without: bool) -> Labels:
    if without:
        return without_labels(metric, (*grouping, METRIC_NAME))
    if grouping:
        return keep_labels(metric, grouping)
    return ()


# (grouping, without) → label set → its group's labels. A dashboard aggregates the same series the same way
# on every refresh; a group key costs a pass over some 25 labels, a look-up here one hash of the tuple.
_group_keys: dict[tuple[tuple[str, ...], bool], dict[Labels, Labels]] = {}
_GROUP_KEYS_MAX = 50_000


def _grouper(grouping: tuple[str, ...], without: bool) -> Callable[[Labels], Labels]:
    """`_grouping_labels`, remembered across queries (it runs for every sample of every step)."""
    if not without and not grouping:
        return lambda metric: ()
    names = frozenset((*grouping, METRIC_NAME)) if without else frozenset(grouping)
    keys = _group_keys.get((grouping, without))
    if keys is None:
        if len(_group_keys) > 1000:
            _group_keys.clear()
        keys = _group_keys[(grouping, without)] = {}
    known = keys.get

    def group_of(metric: Labels) -> Labels:
        key = known(metric)
        if key is None:
            if without:
                key = tuple(kv for kv in metric if kv[0] not in names)
            else:
                key = tuple(kv for kv in metric if kv[0] in names)
            if len(keys) >= _GROUP_KEYS_MAX:
                keys.clear()
            keys[metric] = key
        return key

    return group_of


def aggregate(ev: Evaluator, node: A.AggregateExpr) -> Steps:
    op = node.op
    if op in ("limitk", "limit_ratio"):
        raise EvalError(f"{op}() is an experimental aggregation that is not supported")
    if op == "count_values":
        assert node.param is not None
        label = ev.string(node.param)
        if not valid_label_name(label):
            raise EvalError(f"invalid label name {go_quote(label)}")
        steps = ev.vector(node.expr)
        return [_count_values(vec, label, node.grouping, node.without) for vec in steps]
    params = ev.scalar(node.param) if node.param is not None else [math.nan] * len(ev.ts)
    steps = ev.vector(node.expr)
    if op in ("topk", "bottomk"):
        if any(math.isnan(p) for p in params):
            raise EvalError("Parameter value is NaN")
        return [_topk(vec, p, node, op == "topk") for vec, p in zip(steps, params, strict=True)]
    if op == "quantile":
        for p in params:
            if math.isnan(p) or p < 0 or p > 1:
                ev.warnings.append(f"PromQL warning: quantile value should be between 0 and 1, got {format_float(p)}")
                break
    return [_aggregate_step(op, vec, p, node.grouping, node.without) for vec, p in zip(steps, params, strict=True)]


class _Group:
    __slots__ = ("metric", "value", "c", "mean", "count", "values", "incremental", "drop_name")

    def __init__(self, metric: Labels, f: float, drop: bool) -> None:
        self.metric = metric
        self.value = f
        self.c = 0.0
        self.mean = f
        self.count = 1.0
        self.values = [f]
        self.incremental = False
        self.drop_name = drop


def _aggregate_step(op: str, vec: Vector, q: float, grouping: tuple[str, ...], without: bool) -> Vector:
    groups: dict[Labels, _Group] = {}
    group_of = _grouper(grouping, without)
    for s in vec:
        key = group_of(s.metric)
        f = s.value
        g = groups.get(key)
        if g is None:
            g = groups[key] = _Group(key, f, s.drop_name)
            if op in ("stddev", "stdvar"):
                g.value = math.nan if math.isnan(f) or math.isinf(f) else 0.0
            continue
        g.drop_name = g.drop_name or s.drop_name
        g.count += 1
        if op == "sum":
            g.value, g.c = kahan_inc(f, g.value, g.c)
        elif op == "avg":
            if not g.incremental:
                nv, nc = kahan_inc(f, g.value, g.c)
                if not math.isinf(nv):
                    g.value, g.c = nv, nc
                    continue
                # The running sum would overflow: switch to an incremental mean from here on.
                g.incremental = True
                g.mean = g.value / (g.count - 1)
                g.c /= g.count - 1
            r = (g.count - 1) / g.count
            g.mean, g.c = kahan_inc(f / g.count, r * g.mean, r * g.c)
        elif op == "max":
            if g.value < f or math.isnan(g.value):
                g.value = f
        elif op == "min":
            if g.value > f or math.isnan(g.value):
                g.value = f
        elif op in ("stddev", "stdvar"):
            delta = f - g.mean
            g.mean += delta / g.count
            g.value += delta * (f - g.mean)
        elif op == "quantile":
            g.values.append(f)
    out: Vector = []
    t = vec[0].t if vec else 0
    for g in groups.values():
        if op == "sum":
            v = g.value + g.c if not math.isinf(g.value) else g.value
        elif op == "avg":
            v = g.mean + g.c if g.incremental else g.value / g.count + g.c / g.count
        elif op == "count":
            v = g.count
        elif op == "group":
            v = 1.0
        elif op == "stdvar":
            v = g.value / g.count
        elif op == "stddev":
            v = math.sqrt(g.value / g.count) if g.value >= 0 or math.isnan(g.value) else math.nan
        elif op == "quantile":
            v = quantile(q, g.values)
        else:
            v = g.value
        out.append(Sample(g.metric, v, t, g.drop_name))
    return out


def _topk(vec: Vector, p: float, node: A.AggregateExpr, top: bool) -> Vector:
    if not vec:
        return []
    k = int(p) if not math.isinf(p) else (len(vec) if p > 0 else 0)
    if k < 1:
        return []
    groups: dict[Labels, list[Sample]] = {}
    for s in vec:
        groups.setdefault(_grouping_labels(s.metric, node.grouping, node.without), []).append(s)
    out: Vector = []
    for members in groups.values():
        # NaN ranks below every number for both topk and bottomk; ties keep input order.
        if top:
            ranked = sorted(members, key=lambda s: (math.isnan(s.value), -s.value if not math.isnan(s.value) else 0))
        else:
            ranked = sorted(members, key=lambda s: (math.isnan(s.value), s.value if not math.isnan(s.value) else 0))
        out.extend(ranked[:k])
    return out


def _count_values(vec: Vector, label: str, grouping: tuple[str, ...], without: bool) -> Vector:
    counts: dict[Labels, int] = {}
    t = vec[0].t if vec else 0
    keys = (*grouping, label) if not without else grouping
    for s in vec:
        metric = set_label(s.metric, label, format_float(s.value))
        key = _grouping_labels(metric, keys, without)
        counts[key] = counts.get(key, 0) + 1
    return [Sample(k, float(c), t) for k, c in counts.items()]
