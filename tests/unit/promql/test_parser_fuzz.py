"""Fuzzing the PromQL lexer and parser: whatever the text, `parse` returns a tree or raises `ParseError` (with
a position inside the text), never another exception, and nesting is bounded before any stack runs out."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sluice.metrics.promql import ParseError, parse
from sluice.metrics.promql import ast as A
from sluice.metrics.promql.parser import MAX_NESTING, MAX_TREE_DEPTH

# Pieces of PromQL, so that random sequences get deep into the grammar instead of failing at the first byte.
_TOKENS = [
    "(", ")", "{", "}", "[", "]", ",", ":", "@", "+", "-", "*", "/", "%", "^", "==", "!=", "<", "<=", ">", ">=",
    "=", "=~", "!~", " ", "\n", "#c\n", "x", "up", "__name__", "job", "rate", "sum", "topk", "count_values",
    "label_replace", "histogram_quantile", "by", "without", "on", "ignoring", "group_left", "group_right",
    "bool", "and", "or", "unless", "atan2", "offset", "start()", "end()", "inf", "NaN", "0x1F", "1e3", "1.5",
    ".5", "0", "5m", "1h30m", "1ms", '"a"', '"(.+)+z"', '"a("', "'b'", "`c`", '"\\x"', '"\\u12"', '"\\',
    "\\", "!", "$", "~", "é", "\x00",
]
_SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _parse_or_error(text: str) -> A.Expr | None:
    try:
        return parse(text)
    except ParseError as e:
        assert 0 <= e.position <= len(text)
        assert str(e).startswith(f"{e.line_col[0]}:{e.line_col[1]}: parse error: ")
        return None


def _depth(node: A.Expr) -> int:
    best, stack = 0, [(node, 1)]
    while stack:
        n, d = stack.pop()
        best = max(best, d)
        stack.extend((c, d + 1) for c in A.children(n))
    return best


@_SETTINGS
@given(st.lists(st.sampled_from(_TOKENS), max_size=40).map("".join))
def test_token_soup_parses_or_raises_parse_error(text: str) -> None:
    node = _parse_or_error(text)
    if node is not None:
        assert _depth(node) <= MAX_TREE_DEPTH
        again = _parse_or_error(str(node))  # what the parser accepts prints back as valid PromQL
        assert again is not None


@_SETTINGS
@given(st.text(max_size=60))
def test_arbitrary_text_parses_or_raises_parse_error(text: str) -> None:
    _parse_or_error(text)


@settings(_SETTINGS, max_examples=100)
@given(st.integers(min_value=1, max_value=3000),
       st.sampled_from([("(", ")"), ("abs(", ")"), ("sum(", ")"), ("-", ""), ("+", ""), ("sum by (a) (", ")"),
                        ("max_over_time((", ")[1m:])"), ("x + (", ")"), ("2 ^ ", "")]))
def test_deep_nesting_is_a_parse_error(depth: int, wrap: tuple[str, str]) -> None:
    opening, closing = wrap
    node = _parse_or_error(opening * depth + "x" + closing * depth)
    if node is not None:
        assert _depth(node) <= MAX_TREE_DEPTH


@settings(_SETTINGS, max_examples=50)
@given(st.integers(min_value=1, max_value=5000), st.sampled_from(["+", "*", " or ", " and on(a) ", "^"]))
def test_long_operator_chains_are_bounded(n: int, op: str) -> None:
    node = _parse_or_error(op.join(["x"] * n))
    if node is not None:
        assert _depth(node) <= MAX_TREE_DEPTH


@pytest.mark.parametrize(("query", "message"), [
    ("(" * 1000 + "1" + ")" * 1000,
     f"1:{MAX_NESTING + 1}: parse error: expression nests too deeply: more than {MAX_NESTING} levels of "
     "parentheses, calls, aggregations or unary operators"),
    ("-" * 10_000 + "1",
     f"1:{MAX_NESTING + 1}: parse error: expression nests too deeply: more than {MAX_NESTING} levels of "
     "parentheses, calls, aggregations or unary operators"),
    ("+".join(["x"] * 1000),
     f"1:{2 * MAX_TREE_DEPTH}: parse error: expression nests too deeply: more than {MAX_TREE_DEPTH} levels of operators and "
     "arguments"),
])
def test_nesting_messages(query: str, message: str) -> None:
    with pytest.raises(ParseError) as e:
        parse(query)
    assert str(e.value) == message


def test_limits_leave_room_for_real_queries() -> None:
    parse("(" * (MAX_NESTING - 1) + "x" + ")" * (MAX_NESTING - 1))
    parse("+".join(["x"] * MAX_TREE_DEPTH))


def test_very_long_inputs_are_handled() -> None:
    parse('sum(rate(x{a="' + "b" * 1_000_000 + '"}[5m]))')
    with pytest.raises(ParseError):
        parse("x" + " x" * 200_000)
    with pytest.raises(ParseError, match="unterminated quoted string"):
        parse('"' + "a" * 1_000_000)
