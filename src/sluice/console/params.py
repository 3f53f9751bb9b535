"""Request parameters of the console API: checking them, and the error a bad one answers.

Role: `Fail` is the console's own error (an HTTP code and a message saying what was wrong and where); the
API's middleware turns it into `{"error", "code"}`. The parsers here are pure: they take the raw text of a
query parameter or body field and return a value or raise `Fail(400, ...)` naming the parameter.

Callers: `sluice.console.api` (handlers) and the pure builders (`charts`, `logs`, `wizard`).
"""

from __future__ import annotations

import re

__all__ = ["Fail", "parse_duration", "check_name", "parse_int", "MAX_DURATION_S"]

_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_DURATION_RE = re.compile(r"^(\d+)(s|m|h|d)?$")
MAX_DURATION_S = 30 * 86400


class Fail(Exception):
    """An error the console answers as JSON `{"error": message, "code": code}`."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def parse_duration(text: str, what: str = "duration") -> int:
    """`60s`, `5m`, `1h`, `1d` or plain seconds → seconds (1 s … 30 d)."""
    m = _DURATION_RE.match(text.strip())
    if not m:
        raise Fail(400, f"invalid {what} {text!r} (want e.g. 60s, 5m, 1h)")
    seconds = int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2) or "s"]
    if not 1 <= seconds <= MAX_DURATION_S:
        raise Fail(400, f"{what} {text!r} out of range (1s to 30d)")
    return seconds


def check_name(value: str, what: str) -> str:
    """A Kubernetes object name (DNS subdomain), or `Fail(400)` naming what it was meant to be."""
    if not _NAME_RE.match(value) or len(value) > 253:
        raise Fail(400, f"invalid {what} {value!r}")
    return value


def parse_int(text: str, what: str, low: int, high: int) -> int:
    """An integer in [low, high], or `Fail(400)` naming the parameter and the range."""
    try:
        value = int(text.strip())
    except ValueError:
        raise Fail(400, f"{what} must be an integer, not {text!r}") from None
    if not low <= value <= high:
        raise Fail(400, f"{what} must be between {low} and {high}, not {value}")
    return value
