"""Unreachable-rule detection and the shared helpers (durations, domains, regexes)."""

from __future__ import annotations

from typing import Any

import pytest

from sluice.validation.istio import find_unreachable_rules, validate
from sluice.validation.istio.common import host_matches, parse_duration, regex_error, wildcard_domain_error

R = [{"destination": {"host": "reviews"}}]


def messages(http: list[dict[str, Any]]) -> list[str]:
    return [f.message for f in find_unreachable_rules({"hosts": ["reviews"], "http": http})]


@pytest.mark.parametrize(("http", "expected"), [
    ([{"match": [{"uri": {"prefix": "/a"}}], "route": R}, {"route": R}], []),
    ([{"route": R}, {"route": R}], ["virtualService rule #1 not used (only the last rule can have no matches)"]),
    ([{"route": R}, {"match": [{"uri": {"exact": "/a"}}], "route": R}],
     ["virtualService rule #1 not used (route without matches defined before)"]),
    ([{"name": "a", "match": [{"uri": {"exact": "/a"}}], "route": R},
      {"name": "b", "match": [{"name": "m", "uri": {"exact": "/a"}}], "route": R}],
     ['virtualService rule "b" match "m" is not used (duplicate/overlapping match in rule "a")',
      'virtualService rule "b" not used (all matches used by prior rules)']),
    ([{"match": [{"uri": {"prefix": "/debug"}}], "route": R}, {"match": [{"uri": {"prefix": "/debugs"}}], "route": R}],
     ["virtualService rule #1 match #0 of prefix /debugs is not used "
      "(duplicate/overlapping match in rule #0 of prefix /debug on #0)"]),
    ([{"match": [{"uri": {"prefix": "/debugs"}}], "route": R}, {"match": [{"uri": {"prefix": "/debug"}}], "route": R}], []),
    ([{"match": [{"uri": {"prefix": "/a"}, "headers": {"x": {"exact": "1"}}}], "route": R},
      {"match": [{"uri": {"prefix": "/ab"}}], "route": R}], []),
])
def test_unreachable_http_rules(http: list[dict[str, Any]], expected: list[str]) -> None:
    assert messages(http) == expected


def test_unreachable_tcp_rules() -> None:
    spec = {"hosts": ["db"], "tcp": [{"match": [{"port": 1}], "route": R}, {"match": [{"port": 1}], "route": R}]}
    assert [f.message for f in find_unreachable_rules(spec)] == [
        "virtualService rule #1 match #0 is not used (duplicate/overlapping match in rule #0)",
        "virtualService rule #1 not used (all matches used by prior rules)"]


def test_validate_reports_unreachable_rules_as_warnings() -> None:
    doc = {"kind": "VirtualService", "metadata": {"name": "r"}, "spec": {"hosts": ["r"], "http": [{"route": R}, {"route": R}]}}
    result = validate("VirtualService", doc)
    assert result.errors == []
    assert result.warnings == ["virtualService rule #1 not used (only the last rule can have no matches)"]


@pytest.mark.parametrize(("text", "ns"), [
    ("1.5s", 1_500_000_000), ("100ms", 100_000_000), ("1h30m", 5_400_000_000_000), ("0", 0), ("2s", 2 * 10**9),
    ("0.001s", 1_000_000), ("-1s", -(10**9)), ("", None), ("1", None), ("1x", None), ("s", None),
])
def test_parse_duration(text: str, ns: int | None) -> None:
    assert parse_duration(text) == ns


@pytest.mark.parametrize(("domain", "ok"), [
    ("reviews", True), ("*.example.com", True), ("*", True), ("*-foo.com", True), ("istio.io.", True),
    ("a*.com", False), ("a.*.com", False), ("", False), ("-a.com", False), ("a.1", False),
])
def test_wildcard_domain(domain: str, ok: bool) -> None:
    assert (wildcard_domain_error(domain) is None) == ok


@pytest.mark.parametrize(("expr", "ok"), [
    (r"^/api/v\d+$", True), (r"\pL+", True), (r"a\z", True), ("(a", False), ("a(?!b)", False), (r"(a)\1", False),
])
def test_regex(expr: str, ok: bool) -> None:
    assert (regex_error(expr) is None) == ok


@pytest.mark.parametrize(("a", "b", "match"), [
    ("a.com", "a.com", True), ("*.com", "a.com", True), ("a.com", "*.com", True), ("*.a.com", "*.com", True),
    ("a.com", "b.com", False), ("*.a.com", "b.com", False),
])
def test_host_matches(a: str, b: str, match: bool) -> None:
    assert host_matches(a, b) == match
