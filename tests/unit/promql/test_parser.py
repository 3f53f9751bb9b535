"""Lexer and parser: tokens, precedence, errors with positions, and the `__str__` round trip."""

from __future__ import annotations

import pytest

from sluice.metrics.promql import ParseError, parse
from sluice.metrics.promql import ast as A
from sluice.metrics.promql.calls import FUNCTION_CALLS
from sluice.metrics.promql.format import format_float
from sluice.metrics.promql.functions import FUNCTIONS
from sluice.metrics.promql.lexer import lex


def test_function_tables_have_the_same_keys() -> None:
    assert set(FUNCTIONS) == set(FUNCTION_CALLS)


def test_lexer_tokens() -> None:
    kinds = [(t.kind, t.text) for t in lex('rate(foo{a=~"b"}[5m:1m]) >= bool 0x1F')]
    assert kinds == [("IDENT", "rate"), ("(", "("), ("IDENT", "foo"), ("{", "{"), ("IDENT", "a"), ("=~", "=~"),
                     ("STRING", '"b"'), ("}", "}"), ("[", "["), ("DURATION", "5m"), (":", ":"),
                     ("DURATION", "1m"), ("]", "]"), (")", ")"), (">=", ">="), ("IDENT", "bool"),
                     ("NUMBER", "0x1F"), ("EOF", "")]


@pytest.mark.parametrize("query", [
    "foo", 'foo{a="b", c!~"d.*"}', '{__name__=~"a|b"}', "rate(foo[5m] offset -1m)", "foo @ 100.000",
    "sum by (job) (rate(x[1m]))", "topk(3, x) > bool 2", "a + on(b) group_left(c) d",
    "a and ignoring(x) b or c unless d", "-x ^ 2", "max_over_time(rate(x[5m])[30m:1m] @ end())",
    'label_replace(x, "a", "$1", "b", "(.*)")', "count_values(\"v\", x)", "quantile without (a) (0.9, x)",
    "1 - -1", "(1 + 2) * 3", "x offset 5m", "foo[1h30m]", 'histogram_quantile(0.9, sum by (le) (rate(b[5m])))',
])
def test_string_round_trip(query: str) -> None:
    node = parse(query)
    assert parse(str(node)) == node


def test_precedence() -> None:
    node = parse("a + b * c ^ d ^ e")
    assert isinstance(node, A.BinaryExpr) and node.op == "+"
    rhs = node.rhs
    assert isinstance(rhs, A.BinaryExpr) and rhs.op == "*"
    pow_ = rhs.rhs
    assert isinstance(pow_, A.BinaryExpr) and pow_.op == "^" and isinstance(pow_.rhs, A.BinaryExpr)  # right-assoc
    unary = parse("-a ^ b")
    assert isinstance(unary, A.UnaryExpr)  # -(a ^ b)
    assert isinstance(parse("-1"), A.NumberLiteral)


@pytest.mark.parametrize(("query", "message"), [
    ("foo{", "1:5: parse error: unexpected end of input inside braces"),
    ("rate(foo)", '1:6: parse error: expected type range vector in call to function "rate", got instant vector'),
    ("foo[5m][1m]", "1:8: parse error: ranges only allowed for vector selectors"),
    ("1 == 1", "1:1: parse error: comparisons between scalars must use BOOL modifier"),
    ("foo offset 1m offset 2m", "1:1: parse error: offset may not be set multiple times"),
    ("{}", "1:1: parse error: vector selector must contain at least one non-empty matcher"),
    ("nope(x)", '1:1: parse error: unknown function with name "nope"'),
    ("sum(x) + ", "1:10: parse error: unexpected end of input"),
    ("abs(x, y)", '1:1: parse error: expected 1 argument(s) in call to "abs", got 2'),
    ("1 and 2", '1:1: parse error: set operator "and" not allowed in binary scalar expression'),
    ("foo\n  + )", "2:6: parse error: unexpected right parenthesis ')'"),
])
def test_errors_have_positions(query: str, message: str) -> None:
    with pytest.raises(ParseError) as ei:
        parse(query)
    assert str(ei.value).startswith(message)


@pytest.mark.parametrize(("v", "text"), [
    (1.0, "1"), (0.1, "0.1"), (1e-6, "0.000001"), (1e-7, "1e-07"), (1e21, "1e+21"), (1e20, "100000000000000000000"),
    (-2.5, "-2.5"), (float("nan"), "NaN"), (float("inf"), "+Inf"), (float("-inf"), "-Inf"), (1e-5, "0.00001"),
])
def test_format_float_like_go(v: float, text: str) -> None:
    assert format_float(v) == text
