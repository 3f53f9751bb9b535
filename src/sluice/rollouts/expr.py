"""The subset of expr-lang (github.com/expr-lang/expr, the language of Argo's `successCondition` and
`failureCondition`) that Argo's docs and examples use, parsed and evaluated here without `eval`.

Supported: number/string/bool/nil literals, `result` and other environment names, `a.b` and `a[i]`
(negative indexes count from the end, as expr's), unary `!`/`not`/`-`, `* / % + -`, comparisons,
`in`, `&&`/`and`, `||`/`or`, `?:`, `??`, and calls of the builtins below; predicates with closures such as
`all(result, {# < 0.5})`. NaN compares false with everything (Go's float semantics). An unsupported
construct or a type error raises `ExprError`, which Argo reports as an Error measurement.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["ExprError", "evaluate", "parse", "Node"]


class ExprError(Exception):
    pass


_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<num>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)
  | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<op>==|!=|<=|>=|&&|\|\||\?\?|[-+*/%<>!(),\[\]{}.?:\#])
  | (?P<name>[A-Za-z_$][A-Za-z0-9_$]*)
""", re.VERBOSE)

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'"}


def _tokens(text: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ExprError(f"unexpected token {text[pos]!r} (1:{pos + 1})")
        pos = m.end()
        kind = m.lastgroup or ""
        tok = m.group()
        if kind == "ws":
            continue
        if kind == "num":
            out.append(("num", float(tok) if any(c in tok for c in ".eE") else int(tok)))
        elif kind == "str":
            out.append(("str", re.sub(r"\\(.)", lambda e: _ESCAPES.get(e.group(1), e.group(1)), tok[1:-1])))
        elif kind == "name" and tok in ("and", "or", "not", "in"):
            out.append(("op", {"and": "&&", "or": "||", "not": "!", "in": "in"}[tok]))
        else:
            out.append((kind, tok))
    out.append(("eof", None))
    return out


@dataclass(frozen=True)
class Node:
    op: str  # lit | name | pointer | unary | binary | index | member | call | cond | closure | array
    args: tuple[Any, ...]


_BINARY = {  # precedence, as expr's parser has it
    "??": 1, "||": 2, "&&": 3, "in": 4, "==": 5, "!=": 5, "<": 5, ">": 5, "<=": 5, ">=": 5,
    "+": 6, "-": 6, "*": 7, "/": 7, "%": 7,
}


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, Any]:
        return self.toks[self.i]

    def take(self, value: str | None = None) -> tuple[str, Any]:
        tok = self.toks[self.i]
        if value is not None and tok[1] != value:
            raise ExprError(f"expected {value!r}, found {tok[1]!r}")
        self.i += 1
        return tok

    def expression(self, min_prec: int = 0) -> Node:
        left = self.unary()
        while True:
            kind, tok = self.peek()
            if kind == "op" and tok == "?" and min_prec == 0:
                self.take()
                yes = self.expression()
                self.take(":")
                no = self.expression()
                left = Node("cond", (left, yes, no))
                continue
            prec = _BINARY.get(tok) if kind == "op" else None
            if prec is None or prec <= min_prec:
                return left
            self.take()
            right = self.expression(prec)
            left = Node("binary", (tok, left, right))

    def unary(self) -> Node:
        kind, tok = self.peek()
        if kind == "op" and tok in ("!", "-", "+"):
            self.take()
            return Node("unary", (tok, self.unary()))
        return self.postfix(self.primary())

    def postfix(self, node: Node) -> Node:
        while True:
            kind, tok = self.peek()
            if kind == "op" and tok == "[":
                self.take()
                idx = self.expression()
                self.take("]")
                node = Node("index", (node, idx))
            elif kind == "op" and tok == ".":
                self.take()
                k, name = self.take()
                if k != "name":
                    raise ExprError(f"expected a field name after '.', found {name!r}")
                node = Node("member", (node, name))
            else:
                return node

    def primary(self) -> Node:
        kind, tok = self.take()
        if kind in ("num", "str"):
            return Node("lit", (tok,))
        if kind == "name":
            if tok in ("true", "false"):
                return Node("lit", (tok == "true",))
            if tok == "nil":
                return Node("lit", (None,))
            if self.peek() == ("op", "("):
                self.take()
                args: list[Node] = []
                while self.peek() != ("op", ")"):
                    if self.peek() == ("op", "{"):
                        self.take()
                        args.append(Node("closure", (self.expression(),)))
                        self.take("}")
                    else:
                        args.append(self.expression())
                    if self.peek() == ("op", ","):
                        self.take()
                    elif self.peek() != ("op", ")"):
                        raise ExprError(f"expected ',' or ')', found {self.peek()[1]!r}")
                self.take(")")
                return Node("call", (tok, tuple(args)))
            return Node("name", (tok,))
        if kind == "op" and tok == "#":
            return Node("pointer", ())
        if kind == "op" and tok == "(":
            inner = self.expression()
            self.take(")")
            return inner
        if kind == "op" and tok == "[":
            items: list[Node] = []
            while self.peek() != ("op", "]"):
                items.append(self.expression())
                if self.peek() == ("op", ","):
                    self.take()
            self.take("]")
            return Node("array", tuple(items))
        raise ExprError(f"unexpected token {tok!r}" if tok is not None else "unexpected end of expression")


def parse(text: str) -> Node:
    p = _Parser(text)
    node = p.expression()
    if p.peek()[0] != "eof":
        raise ExprError(f"unexpected token {p.peek()[1]!r}")
    return node


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _type(v: Any) -> str:
    if v is None:
        return "nil"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list | tuple):
        return "array"
    if isinstance(v, dict):
        return "map"
    return type(v).__name__


def _compare(op: str, a: Any, b: Any) -> bool:
    if op in ("==", "!="):
        eq = (a == b and not (isinstance(a, float) and math.isnan(a))) if (_is_number(a) and _is_number(b)) \
            else (type(a) is type(b) or a is None or b is None) and a == b
        return eq if op == "==" else not eq
    if not ((_is_number(a) and _is_number(b)) or (isinstance(a, str) and isinstance(b, str))):
        raise ExprError(f"invalid operation: {_type(a)} {op} {_type(b)}")
    return bool({"<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op])


def _arith(op: str, a: Any, b: Any) -> Any:
    if op == "+" and isinstance(a, str) and isinstance(b, str):
        return a + b
    if not (_is_number(a) and _is_number(b)):
        raise ExprError(f"invalid operation: {_type(a)} {op} {_type(b)}")
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/":  # expr's `/` is always a float division
        fa, fb = float(a), float(b)
        if fb == 0:
            return math.nan if fa == 0 or math.isnan(fa) else math.copysign(math.inf, fa) * math.copysign(1, fb)
        return fa / fb
    if not (isinstance(a, int) and isinstance(b, int)):
        raise ExprError(f"invalid operation: {_type(a)} % {_type(b)}")
    if b == 0:
        raise ExprError("integer divide by zero")
    return int(math.fmod(a, b))


def _as_float(v: Any) -> float:
    if _is_number(v):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            raise ExprError(f'strconv.ParseFloat: parsing "{v}": invalid syntax') from None
    raise ExprError(f"cannot convert {_type(v)} to float64")


def _seq(v: Any, fn: str) -> Sequence[Any]:
    if not isinstance(v, list | tuple):
        raise ExprError(f"invalid argument for {fn} (type {_type(v)})")
    return v


class _Evaluator:
    def __init__(self, env: Mapping[str, Any]) -> None:
        self.env = env
        self.pointer: list[Any] = []

    def ev(self, n: Node) -> Any:
        op = n.op
        if op == "lit":
            return n.args[0]
        if op == "name":
            name = n.args[0]
            if name not in self.env:
                raise ExprError(f"unknown name {name}")
            return self.env[name]
        if op == "pointer":
            if not self.pointer:
                raise ExprError("cannot use pointer accessor outside predicate")
            return self.pointer[-1]
        if op == "array":
            return [self.ev(a) for a in n.args]
        if op == "unary":
            sym, inner = n.args
            v = self.ev(inner)
            if sym == "!":
                if not isinstance(v, bool):
                    raise ExprError(f"invalid operation: ! {_type(v)}")
                return not v
            if not _is_number(v):
                raise ExprError(f"invalid operation: {sym} {_type(v)}")
            return -v if sym == "-" else v
        if op == "binary":
            return self.binary(*n.args)
        if op == "cond":
            c = self.ev(n.args[0])
            if not isinstance(c, bool):
                raise ExprError(f"non-bool expression (type {_type(c)}) used as condition")
            return self.ev(n.args[1] if c else n.args[2])
        if op in ("index", "member"):
            base = self.ev(n.args[0])
            key = self.ev(n.args[1]) if op == "index" else n.args[1]
            return self.index(base, key)
        if op == "call":
            return self.call(n.args[0], n.args[1])
        raise ExprError(f"unsupported expression {op}")

    def binary(self, sym: str, ln: Node, rn: Node) -> Any:
        if sym in ("&&", "||"):
            a = self.ev(ln)
            if not isinstance(a, bool):
                raise ExprError(f"invalid operation: {_type(a)} {sym} bool")
            if (sym == "&&" and not a) or (sym == "||" and a):
                return a
            b = self.ev(rn)
            if not isinstance(b, bool):
                raise ExprError(f"invalid operation: bool {sym} {_type(b)}")
            return b
        if sym == "??":
            a = self.ev(ln)
            return self.ev(rn) if a is None else a
        a, b = self.ev(ln), self.ev(rn)
        if sym == "in":
            if isinstance(b, dict):
                return a in b
            if isinstance(b, str) and isinstance(a, str):
                return a in b
            return any(_compare("==", a, x) for x in _seq(b, "in"))
        if sym in ("==", "!=", "<", ">", "<=", ">="):
            return _compare(sym, a, b)
        return _arith(sym, a, b)

    @staticmethod
    def index(base: Any, key: Any) -> Any:
        if isinstance(base, dict):
            return base.get(key)
        if isinstance(base, list | tuple | str):
            if not isinstance(key, int) or isinstance(key, bool):
                raise ExprError(f"invalid operation: cannot index {_type(base)} with {_type(key)}")
            i = key + len(base) if key < 0 else key
            if not 0 <= i < len(base):
                raise ExprError(f"index out of range: {key} (array length is {len(base)})")
            return base[i]
        raise ExprError(f"type {_type(base)} has no field or index {key!r}")

    def predicate(self, items: Sequence[Any], closure: Node, fn: str) -> list[Any]:
        if closure.op != "closure":
            raise ExprError(f"{fn} expects a predicate {{...}} as its second argument")
        out = []
        for item in items:
            self.pointer.append(item)
            try:
                out.append(self.ev(closure.args[0]))
            finally:
                self.pointer.pop()
        return out

    def call(self, fn: str, args: tuple[Node, ...]) -> Any:
        if fn in ("all", "any", "none", "one", "filter", "map", "count"):
            if len(args) != 2:
                raise ExprError(f"invalid number of arguments for {fn} (expected 2, got {len(args)})")
            items = _seq(self.ev(args[0]), fn)
            vals = self.predicate(items, args[1], fn)
            if fn == "map":
                return vals
            if any(not isinstance(v, bool) for v in vals):
                raise ExprError(f"predicate of {fn} must return bool")
            if fn == "all":
                return all(vals)
            if fn == "any":
                return any(vals)
            if fn == "none":
                return not any(vals)
            if fn == "one":
                return sum(vals) == 1
            if fn == "count":
                return sum(vals)
            return [x for x, v in zip(items, vals, strict=True) if v]
        values = [self.ev(a) for a in args]
        impl = _FUNCTIONS.get(fn)
        if impl is None:
            raise ExprError(f"unknown func {fn}")
        return impl(self.env, values)


def _one(values: list[Any], fn: str) -> Any:
    if len(values) != 1:
        raise ExprError(f"invalid number of arguments for {fn} (expected 1, got {len(values)})")
    return values[0]


def _numbers(v: Any, fn: str) -> list[float | int]:
    items = list(_seq(v, fn))
    if any(not _is_number(x) for x in items):
        raise ExprError(f"invalid argument for {fn}")
    return items


def _len(env: Mapping[str, Any], values: list[Any]) -> Any:
    v = _one(values, "len")
    if not isinstance(v, list | tuple | str | dict):
        raise ExprError(f"invalid argument for len (type {_type(v)})")
    return len(v)


def _mean(env: Mapping[str, Any], values: list[Any]) -> Any:
    xs = _numbers(_one(values, "mean"), "mean")
    return sum(xs) / len(xs) if xs else 0.0


def _extreme(pick: Callable[[list[Any]], Any], fn: str) -> Callable[[Mapping[str, Any], list[Any]], Any]:
    def f(env: Mapping[str, Any], values: list[Any]) -> Any:
        xs = _numbers(values[0], fn) if len(values) == 1 and isinstance(values[0], list) else _numbers(values, fn)
        if not xs:
            raise ExprError(f"not enough arguments to call {fn}")
        return pick(xs)
    return f


def _first(env: Mapping[str, Any], values: list[Any]) -> Any:
    xs = _seq(_one(values, "first"), "first")
    return xs[0] if xs else None


def _last(env: Mapping[str, Any], values: list[Any]) -> Any:
    xs = _seq(_one(values, "last"), "last")
    return xs[-1] if xs else None


def _int(env: Mapping[str, Any], values: list[Any]) -> Any:
    v = _one(values, "int")
    if isinstance(v, str):
        try:
            return int(v)
        except ValueError:
            raise ExprError(f'strconv.Atoi: parsing "{v}": invalid syntax') from None
    if not _is_number(v):
        raise ExprError(f"invalid operation: int({_type(v)})")
    return int(v)


def _as_int(env: Mapping[str, Any], values: list[Any]) -> Any:
    v = _one(values, "asInt")
    if isinstance(v, str):
        try:
            return int(v)
        except ValueError:
            raise ExprError(f'strconv.ParseInt: parsing "{v}": invalid syntax') from None
    if not _is_number(v):
        raise ExprError(f"cannot convert {_type(v)} to int")
    return int(v)


def _is_nan(env: Mapping[str, Any], values: list[Any]) -> Any:
    v = _one(values, "isNaN")
    return isinstance(v, float) and math.isnan(v)


def _is_inf(env: Mapping[str, Any], values: list[Any]) -> Any:
    v = _one(values, "isInf")
    return isinstance(v, float) and math.isinf(v)


def _is_nil(env: Mapping[str, Any], values: list[Any]) -> Any:
    # Argo's isNil ignores its argument and tests the measurement result itself
    return env.get("result") is None


def _default(env: Mapping[str, Any], values: list[Any]) -> Any:
    if len(values) != 2:
        raise ExprError(f"invalid number of arguments for default (expected 2, got {len(values)})")
    result = env.get("result")
    return values[1] if result is None else result


_FUNCTIONS: dict[str, Callable[[Mapping[str, Any], list[Any]], Any]] = {
    "len": _len,
    "isNaN": _is_nan,
    "isInf": _is_inf,
    "isNil": _is_nil,
    "default": _default,
    "asInt": _as_int,
    "asFloat": lambda env, v: _as_float(_one(v, "asFloat")),
    "float": lambda env, v: _as_float(_one(v, "float")),
    "int": _int,
    "abs": lambda env, v: abs(_numbers([_one(v, "abs")], "abs")[0]),
    "sum": lambda env, v: sum(_numbers(_one(v, "sum"), "sum")),
    "mean": _mean,
    "max": _extreme(max, "max"),
    "min": _extreme(min, "min"),
    "first": _first,
    "last": _last,
    "string": lambda env, v: str(_one(v, "string")),
}


def evaluate(expression: str, env: Mapping[str, Any]) -> Any:
    """Evaluate `expression` with the names in `env`; ExprError on a syntax or type error."""
    try:
        return _Evaluator(env).ev(parse(expression))
    except RecursionError:
        raise ExprError("expression is nested too deeply") from None
