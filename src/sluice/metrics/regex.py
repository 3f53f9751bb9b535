"""Regular expressions as Prometheus uses them: RE2 (linear time, Go's syntax), fully anchored.

Prometheus compiles label-matcher and `label_replace` regexes with Go's regexp package, which is RE2: no
backtracking, so `(.+)+z` costs time linear in the input instead of exponential. The `google-re2` wheel is
the same engine, and its parser accepts the same syntax (`(?i)` anywhere, `\\pL`, `[[:alpha:]]`, no
backreferences or look-around). Errors are rendered in Go's words (`error parsing regexp: missing closing ):
`a(``), which differ from RE2 C++'s in a few codes.

Used by `sluice.metrics.series.Matcher` (PromQL `=~`/`!~`, the TSDB's postings scan) and by PromQL's
`label_replace`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import re2

__all__ = ["RegexError", "Regex", "compile_anchored"]

# RE2 C++'s error-code texts → Go's regexp/syntax ErrorCode texts (what Prometheus prints).
_GO_CODES = {
    "missing )": "missing closing )",
    "missing ]": "missing closing ]",
    "trailing \\": "trailing backslash at end of expression",
    "no argument for repetition operator": "missing argument to repetition operator",
    "invalid repetition size": "invalid repeat count",
    "bad repetition operator": "invalid nested repetition operator",
    "invalid perl operator": "invalid or unsupported Perl syntax",
    "invalid named capture group": "invalid named capture",
    "pattern too large - compile failed": "expression too large",
    "unexpected error": "regexp/syntax: internal error",
}
_KNOWN = ("invalid escape sequence", "invalid character class range", "invalid character class", "unexpected )",
          "invalid UTF-8", *_GO_CODES)

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # RE2 would print every bad pattern to stderr
_BOTH = re2._re2.RE2.Anchor.ANCHOR_BOTH
_NULL_SPAN = (-1, -1)


class RegexError(ValueError):
    """A pattern RE2 (and so Prometheus) rejects; `str()` is Go's `error parsing regexp: …` text."""


def _go_error(text: str) -> str:
    for code in sorted(_KNOWN, key=len, reverse=True):
        if text == code or text.startswith(code + ": "):
            arg = text[len(code) + 2:]
            return f"error parsing regexp: {_GO_CODES.get(code, code)}: `{arg}`"
    return f"error parsing regexp: {text}"


def _utf8(text: str) -> bytes:
    """Text as the bytes RE2 matches. Invalid UTF-8 (kept in Python strings as surrogates) becomes U+FFFD: Go's
    regexp reads each invalid byte as that rune, so `.` matches it there, which RE2 C++ would not do."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text).encode("utf-8")


def _compile(pattern: str) -> re2._re2.RE2:
    rx = re2._re2.RE2(_utf8(pattern), _OPTIONS)
    if not rx.ok():
        raise RegexError(_go_error(rx.error().decode("utf-8", "replace")))
    return rx


# Patterns that need no regex engine, as Prometheus's FastRegexMatcher finds them: `.*`, `.+`, and
# alternations of plain literals (`v1|v2`, what dashboards' multi-value variables produce).
_LITERAL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-:/ |")


def _shortcut(pattern: str) -> Callable[[str], bool] | None:
    if pattern == ".*":
        return lambda v: True  # (?s): "." matches newlines too
    if pattern == ".+":
        return lambda v: v != ""
    if _LITERAL_CHARS.issuperset(pattern):
        return frozenset(pattern.split("|")).__contains__
    return None


class Regex:
    """A compiled `^(?s:pattern)$`; `fullmatch` answers a yes/no, `groups` the capture groups of a match."""

    __slots__ = ("pattern", "_rx", "_names", "_fast")

    def __init__(self, pattern: str) -> None:
        # The bare pattern is checked first, as Prometheus's FastRegexMatcher parses it before wrapping it:
        # otherwise `a)|(b` would compile once wrapped and mean something else, and errors would quote the
        # wrapper.
        _compile(pattern)
        self.pattern = pattern
        self._rx = _compile(f"^(?s:{pattern})$")
        self._names: dict[str, int] = {k.decode(): v for k, v in self._rx.NamedCapturingGroups()}
        self._fast = _shortcut(pattern)

    def fullmatch(self, value: str) -> bool:
        if self._fast is not None:
            return self._fast(value)
        b = _utf8(value)
        return bool(self._rx.Match(_BOTH, b, 0, len(b))[0] != _NULL_SPAN)

    def groups(self, value: str) -> list[str | None] | None:
        """Group 0 (the whole value) and every capture group, or None when the value does not match."""
        b = _utf8(value)
        spans = self._rx.Match(_BOTH, b, 0, len(b))
        if spans[0] == _NULL_SPAN:
            return None
        return [None if sp == _NULL_SPAN else b[sp[0]:sp[1]].decode("utf-8", "replace") for sp in spans]

    def group_index(self, name: str) -> int | None:
        return self._names.get(name)


@functools.lru_cache(maxsize=1024)
def compile_anchored(pattern: str) -> Regex:
    """`Regex(pattern)`, cached: dashboards send the same matchers on every refresh."""
    return Regex(pattern)
