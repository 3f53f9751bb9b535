"""PromQL parser: precedence climbing over `lexer` tokens into `ast` nodes, then a type check.

Like Prometheus's parser it type-checks only a syntactically clean tree (`_check`), and every error carries
the position of the offending token, rendered as `line:col: parse error: …`.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import replace
from typing import NoReturn

from sluice.metrics.regex import RegexError
from sluice.metrics.series import METRIC_NAME, Matcher

from . import ast as A
from .errors import ParseError
from .format import go_quote
from .functions import FUNCTIONS
from .lexer import AGGREGATORS, DURATION, EOF, ERROR, IDENT, NUMBER, STRING, Token, lex, unquote

__all__ = ["parse", "parse_duration"]

_PRECEDENCE = {
    "or": 1, "and": 2, "unless": 2,
    "==": 3, "!=": 3, "<": 3, "<=": 3, ">": 3, ">=": 3,
    "+": 4, "-": 4, "*": 5, "/": 5, "%": 5, "atan2": 5, "^": 6,
}
COMPARISONS = frozenset({"==", "!=", "<", "<=", ">", ">="})
SET_OPS = frozenset({"and", "or", "unless"})
_PARAM_AGGREGATORS = frozenset({"topk", "bottomk", "quantile", "count_values", "limitk", "limit_ratio"})
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000,
            "y": 31_536_000_000}
_DUR_PART = re.compile(r"([0-9]+)(ms|s|m|h|d|w|y)")
# Bounds on nesting, so that neither this recursive-descent parser nor the tree walks after it (type check,
# evaluation, printing) can exhaust Python's stack: parentheses, calls, aggregations, unary operators and
# subqueries inside one another, and the depth of the finished tree (a chain `a + b + …` is as deep as it is
# long). Prometheus's yacc parser has no such limit; real queries stay far below these.
MAX_NESTING = 128
MAX_TREE_DEPTH = 256
_TOO_DEEP = f"expression nests too deeply: more than {MAX_TREE_DEPTH} levels of operators and arguments"


def parse_duration(text: str) -> int:
    """A Prometheus duration (`1h30m`, `5m`, `100ms`) in milliseconds."""
    total, pos = 0, 0
    for m in _DUR_PART.finditer(text):
        if m.start() != pos:
            raise ValueError(f"not a valid duration string: {text!r}")
        total += int(m.group(1)) * _UNIT_MS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"not a valid duration string: {text!r}")
    return total


def _number(text: str) -> float:
    t = text.replace("_", "")
    low = t.lower()
    if low.startswith("0x"):
        return float(int(t, 16))
    if low in ("inf", "+inf"):
        return math.inf
    if low == "nan":
        return math.nan
    return float(t)


@functools.lru_cache(maxsize=1024)
def parse(query: str) -> A.Expr:
    """The syntax tree of `query`; raises `ParseError` (and nothing else) for any text that is not PromQL.

    Dashboards send the same queries on every refresh, and the tree is immutable (frozen nodes), so the
    latest trees are kept (a failed parse is not: it raises every time)."""
    p = _Parser(query)
    try:
        node = p.expr(0)
        if p.peek().kind != EOF:
            p.unexpected(p.peek())
        _check_depth(node, query)
        _check(node, query)
    except RecursionError:  # the limits above keep well inside the stack; this is only a last line
        raise ParseError("expression nests too deeply", 0, query) from None
    return node


def _check_depth(root: A.Expr, query: str) -> None:
    stack = [(root, 1)]
    while stack:  # iterative: this walk is what keeps the recursive ones safe
        node, depth = stack.pop()
        if depth > MAX_TREE_DEPTH:
            _err(node, query, _TOO_DEEP)
        stack.extend((c, depth + 1) for c in A.children(node))


class _Parser:
    def __init__(self, query: str) -> None:
        self.query = query
        self.toks = lex(query)
        self.i = 0
        self.depth = 0  # expr() calls under way
        self._depths: dict[int, tuple[A.Expr, int]] = {}  # id → (node, kept alive so the id stays its own; depth)

    # --- token helpers ---
    def peek(self, k: int = 0) -> Token:
        t = self.toks[min(self.i + k, len(self.toks) - 1)]
        if t.kind == ERROR:
            raise ParseError(t.text, t.pos, self.query)
        return t

    def next(self) -> Token:
        t = self.peek()
        self.i += 1
        return t

    def is_kw(self, word: str, k: int = 0) -> bool:
        t = self.peek(k)
        return t.kind == IDENT and t.text.lower() == word

    def error(self, msg: str, pos: int, end: int | None = None) -> NoReturn:
        raise ParseError(msg, pos, self.query, end)

    def unexpected(self, tok: Token, context: str = "", expected: str = "") -> NoReturn:
        msg = f"unexpected {tok.describe()}"
        if context:
            msg += f" in {context}"
        if expected:
            msg += f", expected {expected}"
        self.error(msg, tok.pos, tok.end)

    def expect(self, kind: str, context: str, expected: str = "") -> Token:
        t = self.peek()
        if t.kind != kind:
            self.unexpected(t, context, expected or go_quote(kind))
        return self.next()

    # --- expressions ---
    def binary_op(self) -> str | None:
        t = self.peek()
        if t.kind in _PRECEDENCE:
            return t.kind
        if t.kind == IDENT and t.text.lower() in ("and", "or", "unless", "atan2"):
            return t.text.lower()
        return None

    def expr(self, min_prec: int) -> A.Expr:
        if self.depth >= MAX_NESTING:
            self.error(f"expression nests too deeply: more than {MAX_NESTING} levels of parentheses, calls, "
                       "aggregations or unary operators", self.peek().pos)
        self.depth += 1
        try:
            return self._expr(min_prec)
        finally:
            self.depth -= 1

    def _expr(self, min_prec: int) -> A.Expr:
        lhs = self.unary()
        while True:
            op = self.binary_op()
            if op is None or _PRECEDENCE[op] < min_prec:
                return lhs
            op_tok = self.next()
            return_bool = False
            if self.is_kw("bool"):
                if op not in COMPARISONS:
                    self.error("bool modifier can only be used on comparison operators", self.peek().pos)
                self.next()
                return_bool = True
            matching, has_labels = self.matching(op)
            prec = _PRECEDENCE[op]
            rhs = self.expr(prec if op == "^" else prec + 1)
            lhs = self.binary(op, op_tok, lhs, rhs, matching, has_labels, return_bool)

    def tree_depth(self, root: A.Expr) -> int:
        """Depth of a subtree, remembered per node so that a long chain costs linear time, never recursion."""
        memo = self._depths
        stack = [(root, False)]
        while stack:
            node, ready = stack.pop()
            if id(node) in memo:
                continue
            kids = A.children(node)
            if ready:
                memo[id(node)] = (node, 1 + max((memo[id(c)][1] for c in kids), default=0))
            else:
                stack.append((node, True))
                stack.extend((c, False) for c in kids if id(c) not in memo)
        return memo[id(root)][1]

    def binary(self, op: str, tok: Token, lhs: A.Expr, rhs: A.Expr, matching: A.VectorMatching | None,
               has_labels: bool, return_bool: bool) -> A.Expr:
        if 1 + max(self.tree_depth(lhs), self.tree_depth(rhs)) > MAX_TREE_DEPTH:
            self.error(_TOO_DEEP, tok.pos)
        span = (lhs.span[0], rhs.span[1])
        if lhs.type == "vector" and rhs.type == "vector":
            m = matching or A.VectorMatching("one-to-one")
            if op in SET_OPS:
                if m.card in ("many-to-one", "one-to-many"):
                    self.error(f"no grouping allowed for {go_quote(op)} operation", tok.pos)
                m = replace(m, card="many-to-many")
            return A.BinaryExpr(op, lhs, rhs, m, return_bool, span=span)
        if has_labels and lhs.type in ("scalar", "vector") and rhs.type in ("scalar", "vector"):
            self.error("vector matching only allowed between instant vectors", lhs.span[0], span[1])
        return A.BinaryExpr(op, lhs, rhs, None, return_bool, span=span)

    def matching(self, op: str) -> tuple[A.VectorMatching | None, bool]:
        if not (self.is_kw("on") or self.is_kw("ignoring")):
            if self.is_kw("group_left") or self.is_kw("group_right"):
                self.unexpected(self.peek(), "binary expression")
            return None, False
        on = self.next().text.lower() == "on"
        labels = self.grouping_labels()
        card: str = "one-to-one"
        include: tuple[str, ...] = ()
        if self.is_kw("group_left") or self.is_kw("group_right"):
            gtok = self.next()
            if op in SET_OPS:
                self.error(f"no grouping allowed for {go_quote(op)} operation", gtok.pos)
            card = "many-to-one" if gtok.text.lower() == "group_left" else "one-to-many"
            if self.peek().kind == "(":
                include = self.grouping_labels()
            for lbl in include:
                if on and lbl in labels:
                    self.error(f"label {go_quote(lbl)} must not occur in ON and GROUP clause at once", gtok.pos)
        return A.VectorMatching(card, on, labels, include), bool(labels)  # type: ignore[arg-type]

    def grouping_labels(self) -> tuple[str, ...]:
        self.expect("(", "grouping opts", '"("')
        out: list[str] = []
        while self.peek().kind != ")":
            t = self.next()
            if t.kind == IDENT:
                out.append(t.text)
            elif t.kind == STRING:
                out.append(self.string_value(t))
            else:
                self.unexpected(t, "grouping opts", "label")
            if self.peek().kind == ",":
                self.next()
            elif self.peek().kind != ")":
                self.unexpected(self.peek(), "grouping opts", '"," or ")"')
        self.next()
        return tuple(out)

    def unary(self) -> A.Expr:
        t = self.peek()
        if t.kind in ("+", "-"):
            self.next()
            # Unary operators bind like "*": only "^" (and postfix modifiers) bind tighter.
            operand = self.expr(_PRECEDENCE["^"])
            span = (t.pos, operand.span[1])
            if isinstance(operand, A.NumberLiteral):
                return A.NumberLiteral(-operand.val if t.kind == "-" else operand.val, operand.duration, span=span)
            if operand.type not in ("scalar", "vector"):
                self.error("unary expression only allowed on expressions of type scalar or instant vector",
                           t.pos, span[1])
            return A.UnaryExpr(t.kind, operand, span=span)
        return self.postfix(self.primary())

    def postfix(self, node: A.Expr) -> A.Expr:
        while True:
            t = self.peek()
            if t.kind == "[":
                node = self.range_or_subquery(node)
            elif self.is_kw("offset"):
                self.next()
                node = self.set_offset(node, t)
            elif t.kind == "@":
                self.next()
                node = self.set_at(node, t)
            else:
                return node

    def duration_ms(self, context: str, allow_sign: bool = False) -> int:
        sign = 1
        if allow_sign and self.peek().kind in ("+", "-"):
            sign = -1 if self.next().kind == "-" else 1
        t = self.peek()
        if t.kind == DURATION:
            self.next()
            return sign * parse_duration(t.text)
        if t.kind == NUMBER:
            self.next()
            v = _number(t.text)
            if math.isnan(v) or math.isinf(v) or abs(v) > 9.2e15:
                self.error("duration out of range", t.pos)
            return sign * round(v * 1000)
        self.unexpected(t, context, "number or duration")

    def range_or_subquery(self, node: A.Expr) -> A.Expr:
        lb = self.next()
        rng = self.duration_ms("subquery or range selector")
        if self.peek().kind == "]":
            end = self.next().end
            if not isinstance(node, A.VectorSelector):
                self.error("ranges only allowed for vector selectors", lb.pos, end)
            if node.offset_ms:
                self.error("no offset modifiers allowed before range", lb.pos, end)
            if node.at_ms is not None or node.at_special:
                self.error("no @ modifiers allowed before range", lb.pos, end)
            if rng <= 0:
                self.error("duration must be greater than 0", lb.pos, end)
            return A.MatrixSelector(node, rng, span=(node.span[0], end))
        if self.peek().kind != ":":
            self.unexpected(self.peek(), "subquery or range", '":" or "]"')
        self.next()
        step = 0
        if self.peek().kind != "]":
            step = self.duration_ms("subquery selector")
        end = self.expect("]", "subquery selector", '"]"').end
        if rng <= 0:
            self.error("duration must be greater than 0", lb.pos, end)
        return A.SubqueryExpr(node, rng, step, span=(node.span[0], end))

    def set_offset(self, node: A.Expr, tok: Token) -> A.Expr:
        off = self.duration_ms("offset", allow_sign=True)
        end = self.toks[self.i - 1].end
        msg = "offset modifier must be preceded by an instant vector selector or range vector selector or a subquery"
        if isinstance(node, A.VectorSelector):
            if node.offset_ms:
                self.error("offset may not be set multiple times", *node.span)
            return replace(node, offset_ms=off, span=(node.span[0], end))
        if isinstance(node, A.MatrixSelector):
            if node.vs.offset_ms:
                self.error("offset may not be set multiple times", *node.span)
            return replace(node, vs=replace(node.vs, offset_ms=off), span=(node.span[0], end))
        if isinstance(node, A.SubqueryExpr):
            if node.offset_ms:
                self.error("offset may not be set multiple times", *node.span)
            return replace(node, offset_ms=off, span=(node.span[0], end))
        self.error(msg, *node.span)

    def set_at(self, node: A.Expr, tok: Token) -> A.Expr:
        special: str | None = None
        at: int | None = None
        if self.is_kw("start") or self.is_kw("end"):
            special = self.next().text.lower()
            self.expect("(", "@ modifier", '"("')
            self.expect(")", "@ modifier", '")"')
        else:
            sign = 1.0
            if self.peek().kind in ("+", "-"):
                sign = -1.0 if self.next().kind == "-" else 1.0
            t = self.peek()
            if t.kind not in (NUMBER, DURATION):
                self.unexpected(t, "@", "timestamp")
            self.next()
            v = sign * (_number(t.text) if t.kind == NUMBER else parse_duration(t.text) / 1000)
            if math.isnan(v) or math.isinf(v) or abs(v) * 1000 > 9.2e18:
                self.error(f"timestamp out of bounds for @ modifier: {v}", t.pos)
            at = round(v * 1000)
        end = self.toks[self.i - 1].end
        msg = "@ modifier must be preceded by an instant vector selector or range vector selector or a subquery"
        if isinstance(node, A.MatrixSelector):
            vs = node.vs
            if vs.at_ms is not None or vs.at_special:
                self.error("@ <timestamp> may not be set multiple times", *node.span)
            return replace(node, vs=replace(vs, at_ms=at, at_special=special), span=(node.span[0], end))
        if isinstance(node, (A.VectorSelector, A.SubqueryExpr)):
            if node.at_ms is not None or node.at_special:
                self.error("@ <timestamp> may not be set multiple times", *node.span)
            return replace(node, at_ms=at, at_special=special, span=(node.span[0], end))
        self.error(msg, *node.span)

    def string_value(self, t: Token) -> str:
        try:
            return unquote(t.text)
        except (ValueError, IndexError):
            self.error("invalid syntax", t.pos)

    def primary(self) -> A.Expr:
        t = self.peek()
        if t.kind == NUMBER:
            self.next()
            return A.NumberLiteral(_number(t.text), span=(t.pos, t.end))
        if t.kind == DURATION:
            self.next()
            return A.NumberLiteral(parse_duration(t.text) / 1000, duration=True, span=(t.pos, t.end))
        if t.kind == STRING:
            self.next()
            return A.StringLiteral(self.string_value(t), span=(t.pos, t.end))
        if t.kind == "(":
            self.next()
            inner = self.expr(0)
            end = self.expect(")", "paren expression", '")"').end
            return A.ParenExpr(inner, span=(t.pos, end))
        if t.kind == "{":
            return self.vector_selector("", t.pos)
        if t.kind == IDENT:
            low = t.text.lower()
            nxt = self.peek(1)
            if low in AGGREGATORS and (nxt.kind == "(" or self.is_kw("by", 1) or self.is_kw("without", 1)):
                return self.aggregate()
            if nxt.kind == "(":
                return self.call()
            self.next()
            return self.vector_selector(t.text, t.pos)
        if t.kind == EOF:
            self.error("unexpected end of input", t.pos)
        self.unexpected(t)

    def call(self) -> A.Expr:
        name_tok = self.next()
        name = name_tok.text
        fn = FUNCTIONS.get(name)
        if fn is None:
            self.error(f"unknown function with name {go_quote(name)}", name_tok.pos, name_tok.end)
        self.next()  # "("
        args: list[A.Expr] = []
        while self.peek().kind != ")":
            args.append(self.expr(0))
            if self.peek().kind == ",":
                self.next()
                if self.peek().kind == ")":
                    self.unexpected(self.peek(), "function call arguments")
            elif self.peek().kind != ")":
                self.unexpected(self.peek(), "function call arguments", '"," or ")"')
        end = self.next().end
        return A.Call(name, tuple(args), span=(name_tok.pos, end))

    def aggregate(self) -> A.Expr:
        op_tok = self.next()
        op = op_tok.text.lower()
        grouping: tuple[str, ...] = ()
        without = False
        seen_mod = False
        if self.is_kw("by") or self.is_kw("without"):
            without = self.next().text.lower() == "without"
            grouping = self.grouping_labels()
            seen_mod = True
        self.expect("(", "aggregation", '"("')
        args: list[A.Expr] = []
        while self.peek().kind != ")":
            args.append(self.expr(0))
            if self.peek().kind == ",":
                self.next()
            elif self.peek().kind != ")":
                self.unexpected(self.peek(), "aggregation", '"," or ")"')
        end = self.next().end
        if not seen_mod and (self.is_kw("by") or self.is_kw("without")):
            without = self.next().text.lower() == "without"
            grouping = self.grouping_labels()
            end = self.toks[self.i - 1].end
        want = 2 if op in _PARAM_AGGREGATORS else 1
        if len(args) != want:
            self.error(f"wrong number of arguments for aggregate expression provided, expected {want}, got {len(args)}",
                       op_tok.pos, end)
        param = args[0] if want == 2 else None
        return A.AggregateExpr(op, args[-1], param, grouping, without, span=(op_tok.pos, end))

    def vector_selector(self, name: str, start: int) -> A.Expr:
        matchers: list[Matcher] = []
        end = start + len(name)
        if self.peek().kind == "{":
            self.next()
            while self.peek().kind != "}":
                lt = self.next()
                if lt.kind == STRING and self.peek().kind in (",", "}"):
                    # A lone quoted string is the metric name ({"my.metric"}).
                    if name:
                        self.error(f"metric name must not be set twice: {go_quote(name)} or "
                                   f"{go_quote(self.string_value(lt))}", lt.pos)
                    name = self.string_value(lt)
                elif lt.kind in (IDENT, STRING):
                    lname = lt.text if lt.kind == IDENT else self.string_value(lt)
                    op = self.next()
                    if op.kind not in ("=", "!=", "=~", "!~"):
                        self.unexpected(op, "label matching", "label matching operator")
                    vt = self.next()
                    if vt.kind != STRING:
                        self.unexpected(vt, "label matching", "string")
                    try:
                        matchers.append(Matcher(lname, op.kind, self.string_value(vt)))
                    except RegexError as e:
                        # Prometheus reports a bad regex over the whole matcher, from the label name on.
                        self.error(str(e), lt.pos, vt.end)
                else:
                    self.unexpected(lt, "label matching", "label matching operator" if lt.kind == "=" else
                                    "identifier or \"}\"")
                if self.peek().kind == ",":
                    self.next()
                elif self.peek().kind != "}":
                    self.unexpected(self.peek(), "label matching", '"," or "}"')
            end = self.next().end
        if name:
            for m in matchers:
                if m.name == METRIC_NAME:
                    self.error(f"metric name must not be set twice: {go_quote(name)} or {go_quote(m.value)}", start)
            matchers.insert(0, Matcher(METRIC_NAME, "=", name))
        if not any(not m.matches("") for m in matchers):
            self.error("vector selector must contain at least one non-empty matcher", start, end)
        return A.VectorSelector(name, tuple(matchers), span=(start, end))


def _err(node: A.Expr, query: str, msg: str) -> NoReturn:
    raise ParseError(msg, node.span[0], query, node.span[1])


def _expect_type(node: A.Expr, want: A.ValueType, context: str, query: str) -> None:
    if node.type != want:
        _err(node, query, f"expected type {A.type_name(want)} in {context}, got {A.type_name(node.type)}")


def _check(node: A.Expr, query: str) -> None:
    """Type-check a syntactically valid tree (Prometheus's checkAST)."""
    if isinstance(node, A.Call):
        fn = FUNCTIONS[node.func]
        n, want = len(node.args), len(fn.arg_types)
        if fn.variadic == 0 and n != want:
            _err(node, query, f"expected {want} argument(s) in call to {go_quote(fn.name)}, got {n}")
        if fn.variadic != 0 and n < want - 1:
            _err(node, query, f"expected at least {want - 1} argument(s) in call to "
                              f"{go_quote(fn.name)}, got {n}")
        if fn.variadic > 0 and n > want + fn.variadic - 1:
            _err(node, query, f"expected at most {want + fn.variadic - 1} argument(s) in call to "
                              f"{go_quote(fn.name)}, got {n}")
        for i, arg in enumerate(node.args):
            t = fn.arg_types[min(i, want - 1)]
            _expect_type(arg, t, f"call to function {go_quote(fn.name)}", query)
    elif isinstance(node, A.AggregateExpr):
        _expect_type(node.expr, "vector", "aggregation expression", query)
        if node.param is not None:
            want_t: A.ValueType = "string" if node.op == "count_values" else "scalar"
            _expect_type(node.param, want_t, "aggregation parameter", query)
    elif isinstance(node, A.BinaryExpr):
        lt, rt = node.lhs.type, node.rhs.type
        for side in (node.lhs, node.rhs):
            if side.type not in ("scalar", "vector"):
                _err(side, query, "binary expression must contain only scalar and instant vector types")
        if node.op in COMPARISONS and lt == "scalar" and rt == "scalar" and not node.return_bool:
            _err(node, query, "comparisons between scalars must use BOOL modifier")
        if node.op in SET_OPS and (lt == "scalar" or rt == "scalar"):
            _err(node, query, f"set operator {go_quote(node.op)} not allowed in binary scalar expression")
    elif isinstance(node, A.SubqueryExpr):
        if node.expr.type != "vector":
            _err(node, query, f"subquery is only allowed on instant vector, got {A.type_name(node.expr.type)}")
    elif isinstance(node, A.UnaryExpr):
        if node.expr.type not in ("scalar", "vector"):
            _err(node, query, "unary expression only allowed on expressions of type scalar or instant vector")
    for c in A.children(node):
        _check(c, query)
