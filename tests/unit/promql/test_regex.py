"""PromQL regexes are RE2 as in Prometheus: linear time, Go's syntax and anchoring, Go's error texts."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.metrics.promql import Engine, EvalError, ParseError, parse
from sluice.metrics.regex import Regex, RegexError, compile_anchored
from sluice.metrics.series import MemStorage, labels_of


@pytest.mark.parametrize(("pattern", "value", "matches"), [
    ("a(?i)b", "aB", True),          # a flag group mid-pattern, as RE2 allows
    ("a.b", "a\nb", True),           # (?s): "." matches a newline
    ("ab", "ab\n", False),           # "$" is the end of the text, not before a trailing newline
    ("a|b", "ab", False),            # anchored around the whole alternation
    (r"\pL+", "héllo", True),
    ("[[:alpha:]]+", "abc", True),
    ("", "", True),
])
def test_re2_semantics(pattern: str, value: str, matches: bool) -> None:
    assert compile_anchored(pattern).fullmatch(value) is matches


def test_values_that_are_not_valid_utf8() -> None:
    assert compile_anchored("a.b").fullmatch("a\udcffb")  # an escaped raw byte
    assert compile_anchored(".+").fullmatch("\ud800")  # a lone surrogate never raises
    # Go reads an invalid byte as U+FFFD; so does the matcher (captures carry U+FFFD for it).
    assert compile_anchored("(.)(.*)").groups("\udcffx") == ["\ufffdx", "\ufffd", "x"]


def test_backtracking_pattern_is_linear() -> None:
    # Python's re takes longer than the age of the universe on this; RE2 answers at once.
    rx = compile_anchored("(.+)+z")
    start = time.monotonic()
    assert not rx.fullmatch("a" * 100_000)
    assert not compile_anchored("(a|a)*b").fullmatch("a" * 100_000)
    assert time.monotonic() - start < 5  # generous: a backtracking engine never finishes


@pytest.mark.parametrize(("pattern", "message"), [
    ("a(", "error parsing regexp: missing closing ): `a(`"),
    ("a)", "error parsing regexp: unexpected ): `a)`"),
    ("[a", "error parsing regexp: missing closing ]: `[a`"),
    ("[z-a]", "error parsing regexp: invalid character class range: `z-a`"),
    ("a**", "error parsing regexp: invalid nested repetition operator: `**`"),
    ("*", "error parsing regexp: missing argument to repetition operator: `*`"),
    ("a{1001}", "error parsing regexp: invalid repeat count: `{1001}`"),
    (r"(a)\1", r"error parsing regexp: invalid escape sequence: `\1`"),
    ("(?P<>a)", "error parsing regexp: invalid named capture: `(?P<>`"),
    ("a)|(b", "error parsing regexp: unexpected ): `a)|(b`"),  # never accepted once wrapped in ^(?s:…)$
])
def test_go_error_texts(pattern: str, message: str) -> None:
    with pytest.raises(RegexError) as e:
        compile_anchored(pattern)
    assert str(e.value) == message


def test_parse_error_points_at_the_matcher() -> None:
    with pytest.raises(ParseError) as e:
        parse('up{job=~"a("}')
    assert str(e.value) == "1:4: parse error: error parsing regexp: missing closing ): `a(`"


def test_label_replace_uses_re2() -> None:
    st = MemStorage()
    st.append(labels_of({"__name__": "m", "src": "a-b"}), 0, 1.0)
    eng = Engine(st)
    res = eng.instant('label_replace(m, "dst", "${x}/$2/$9", "src", "(?P<x>[a-z])-([a-z])")', 0)
    assert [dict(s.metric)["dst"] for s in res.value] == ["a/b/"]  # type: ignore[union-attr]
    res = eng.instant('label_replace(m, "dst", "x", "src", "(.+)+z")', 0)
    assert ["dst" in dict(s.metric) for s in res.value] == [False]  # type: ignore[union-attr]
    with pytest.raises(EvalError, match=r"invalid regular expression in label_replace\(\): a\("):
        eng.instant('label_replace(m, "dst", "x", "src", "a(")', 0)


def test_tsdb_matcher_path_uses_re2() -> None:
    from sluice.metrics.tsdb import TSDB

    db = TSDB(None)
    db.append(1000, [(labels_of({"__name__": "m", "v": "a" * 5000}), 1.0)], scrape_target="t")
    start = time.monotonic()
    assert Engine(db).instant('{__name__=~"(.+)+z"}', 1000).value == []
    assert Engine(db).instant('m{v=~"(a|a)*b"}', 1000).value == []
    assert time.monotonic() - start < 5


_ALPHABET = st.sampled_from(list("ab_-:/ |.*+\n"))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([".*", ".+", "a|b", "a|", "", "ab|b-c|:/ x", "a||b", "|"]), st.text(_ALPHABET, max_size=6))
def test_shortcuts_agree_with_re2(pattern: str, value: str) -> None:
    fast = Regex(pattern)
    assert fast._fast is not None
    slow = Regex(pattern)
    slow._fast = None
    assert fast.fullmatch(value) == slow.fullmatch(value)
