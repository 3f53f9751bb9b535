"""PromQL syntax tree: frozen dataclasses with a `span` (start, end offsets in the query) and a `__str__`
that prints PromQL which parses back to an equal node (spans are not compared).

Node order, as in Prometheus's ast.go: literals, selectors (vector, matrix), subquery, paren, unary,
binary, aggregate, call.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from sluice.metrics.series import METRIC_NAME, Matcher

from .format import go_quote
from .functions import FUNCTIONS, ValueType

__all__ = [
    "ValueType", "Expr", "NumberLiteral", "StringLiteral", "VectorSelector", "MatrixSelector", "SubqueryExpr",
    "ParenExpr", "UnaryExpr", "BinaryExpr", "VectorMatching", "AggregateExpr", "Call", "format_duration",
    "children", "walk", "type_name",
]

Span = tuple[int, int]
_NOSPAN: Span = (0, 0)


def type_name(t: ValueType) -> str:
    """Prometheus's names for value types in error messages."""
    return {"vector": "instant vector", "matrix": "range vector"}.get(t, t)


def format_duration(ms: int) -> str:
    """Prometheus's model.Duration.String(): 1h30m, 5m, 100ms, 0s."""
    if ms == 0:
        return "0s"
    sign = "-" if ms < 0 else ""
    ms = abs(ms)
    out = []
    for unit, size in (("y", 365 * 86_400_000), ("w", 7 * 86_400_000), ("d", 86_400_000), ("h", 3_600_000),
                       ("m", 60_000), ("s", 1000), ("ms", 1)):
        if ms >= size:
            out.append(f"{ms // size}{unit}")
            ms %= size
    return sign + "".join(out)


def _label_name(n: str) -> str:
    ok = bool(n) and (n[0].isascii() and (n[0].isalpha() or n[0] == "_")) and all(
        c.isascii() and (c.isalnum() or c == "_") for c in n)
    return n if ok else go_quote(n)


def _modifiers(offset_ms: int, at_ms: int | None, at_special: str | None) -> str:
    s = ""
    if at_special:
        s += f" @ {at_special}()"
    elif at_ms is not None:
        s += f" @ {at_ms / 1000:.3f}"
    if offset_ms > 0:
        s += f" offset {format_duration(offset_ms)}"
    elif offset_ms < 0:
        s += f" offset -{format_duration(-offset_ms)}"
    return s


@dataclass(frozen=True)
class NumberLiteral:
    val: float
    duration: bool = False
    span: Span = field(default=_NOSPAN, compare=False)

    @property
    def type(self) -> ValueType:
        return "scalar"

    def __eq__(self, other: object) -> bool:  # NaN literals must still compare equal for round trips
        if not isinstance(other, NumberLiteral):
            return NotImplemented
        return self.val == other.val or (math.isnan(self.val) and math.isnan(other.val))

    def __hash__(self) -> int:
        return hash(("num", 0.0 if math.isnan(self.val) else self.val))

    def __str__(self) -> str:
        v = self.val
        if self.duration and v == v and not math.isinf(v) and round(v * 1000) == v * 1000 and v >= 0:
            return format_duration(round(v * 1000))
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "+Inf" if v > 0 else "-Inf"
        return repr(v) if v != int(v) or abs(v) >= 1e15 else str(int(v))


@dataclass(frozen=True)
class StringLiteral:
    val: str
    span: Span = field(default=_NOSPAN, compare=False)

    @property
    def type(self) -> ValueType:
        return "string"

    def __str__(self) -> str:
        return go_quote(self.val)


@dataclass(frozen=True)
class VectorSelector:
    name: str
    matchers: tuple[Matcher, ...]
    offset_ms: int = 0
    at_ms: int | None = None
    at_special: str | None = None  # "start" / "end": resolved to the query's start or end
    span: Span = field(default=_NOSPAN, compare=False)

    @property
    def type(self) -> ValueType:
        return "vector"

    def selector_str(self) -> str:
        ms = [m for m in self.matchers
              if not (self.name and m.name == METRIC_NAME and m.type == "=" and m.value == self.name)]
        inner = ", ".join(f"{_label_name(m.name)}{m.type}{go_quote(m.value)}" for m in ms)
        if not self.name:
            return "{" + inner + "}"
        return self.name + ("{" + inner + "}" if ms else "")

    def __str__(self) -> str:
        return self.selector_str() + _modifiers(self.offset_ms, self.at_ms, self.at_special)


@dataclass(frozen=True)
class MatrixSelector:
    vs: VectorSelector
    range_ms: int
    span: Span = field(default=_NOSPAN, compare=False)

    @property
    def type(self) -> ValueType:
        return "matrix"

    def __str__(self) -> str:
        v = self.vs
        return f"{v.selector_str()}[{format_duration(self.range_ms)}]" + _modifiers(v.offset_ms, v.at_ms, v.at_special)


@dataclass(frozen=True)
class SubqueryExpr:
    expr: Expr
    range_ms: int
    step_ms: int = 0  # 0: the engine's default subquery step
    offset_ms: int = 0
    at_ms: int | None = None
    at_special: str | None = None
    span: Span = field(default=_NOSPAN, compare=False)

    @property
    def type(self) -> ValueType:
        return "matrix"

    def __str__(self) -> str:
        step = format_duration(self.step_ms) if self.step_ms else ""
        return (f"{self.expr}[{format_duration(self.range_ms)}:{step}]"
                + _modifiers(self.offset_ms, self.at_ms, self.at_special))


@dataclass(frozen=True)
class ParenExpr:
    expr: Expr
    span: Span = field(default=_NOSPAN, compare=False)

    @property
    def type(self) -> ValueType:
        return self.expr.type

    def __str__(self) -> str:
        return f"({self.expr})"


@dataclass(frozen=True)
class UnaryExpr:
    op: str  # "-" or "+"
    expr: Expr
    span: Span = field(default=_NOSPAN, compare=False)

    @property
    def type(self) -> ValueType:
        return self.expr.type

    def __str__(self) -> str:
        return f"{self.op}{self.expr}"


@dataclass(frozen=True)
class VectorMatching:
    card: Literal["one-to-one", "many-to-one", "one-to-many", "many-to-many"]
    on: bool = False
    labels: tuple[str, ...] = ()
    include: tuple[str, ...] = ()


@dataclass(frozen=True)
class BinaryExpr:
    op: str
    lhs: Expr
    rhs: Expr
    matching: VectorMatching | None = None
    return_bool: bool = False
    span: Span = field(default=_NOSPAN, compare=False)

    @property
    def type(self) -> ValueType:
        return "scalar" if self.lhs.type == "scalar" and self.rhs.type == "scalar" else "vector"

    def __str__(self) -> str:
        mod = " bool" if self.return_bool else ""
        m = self.matching
        if m is not None:
            if m.on or m.labels:
                kw = "on" if m.on else "ignoring"
                mod += f" {kw}({', '.join(map(_label_name, m.labels))})"
            if m.card in ("many-to-one", "one-to-many"):
                kw = "group_left" if m.card == "many-to-one" else "group_right"
                mod += f" {kw}({', '.join(map(_label_name, m.include))})"
        return f"{self.lhs} {self.op}{mod} {self.rhs}"


@dataclass(frozen=True)
class AggregateExpr:
    op: str
    expr: Expr
    param: Expr | None = None
    grouping: tuple[str, ...] = ()
    without: bool = False
    span: Span = field(default=_NOSPAN, compare=False)

    @property
    def type(self) -> ValueType:
        return "vector"

    def __str__(self) -> str:
        s = self.op
        if self.without:
            s += f" without ({', '.join(map(_label_name, self.grouping))}) "
        elif self.grouping:
            s += f" by ({', '.join(map(_label_name, self.grouping))}) "
        args = f"{self.param}, {self.expr}" if self.param is not None else str(self.expr)
        return f"{s}({args})"


@dataclass(frozen=True)
class Call:
    func: str
    args: tuple[Expr, ...]
    span: Span = field(default=_NOSPAN, compare=False)

    @property
    def type(self) -> ValueType:
        return FUNCTIONS[self.func].return_type

    def __str__(self) -> str:
        return f"{self.func}({', '.join(map(str, self.args))})"


Expr: TypeAlias = (NumberLiteral | StringLiteral | VectorSelector | MatrixSelector | SubqueryExpr | ParenExpr
                   | UnaryExpr | BinaryExpr | AggregateExpr | Call)


def children(node: Expr) -> list[Expr]:
    if isinstance(node, (SubqueryExpr, ParenExpr, UnaryExpr)):
        return [node.expr]
    if isinstance(node, MatrixSelector):
        return [node.vs]
    if isinstance(node, BinaryExpr):
        return [node.lhs, node.rhs]
    if isinstance(node, AggregateExpr):
        return [node.expr] if node.param is None else [node.param, node.expr]
    if isinstance(node, Call):
        return list(node.args)
    return []


def walk(node: Expr) -> Iterator[Expr]:
    """Pre-order traversal."""
    yield node
    for c in children(node):
        yield from walk(c)
