"""Go-compatible float formatting: the shortest decimal that round-trips (Python's `repr` finds the same
digits as Go), laid out as Go lays it out.

`format_float` is `strconv.FormatFloat(v, 'f', -1, 64)` as Prometheus's JSON uses it: fixed notation, except
exponent notation below 1e-6 and from 1e21 on (`1e-07`, `1e+21`); `count_values` label values and the HTTP
API both need exactly this text, not Python's `repr`. `format_g` is `strconv.FormatFloat(v, 'g', -1, 64)`, as
client_golang writes the exposition format and Prometheus normalises `le`: exponent notation below 1e-4 and
from 1e6 on (`0.5`, `1`, `1.5e+06`). Specials are `NaN`, `+Inf`, `-Inf` in both.
"""

from __future__ import annotations

import math
from decimal import Decimal

__all__ = ["format_float", "format_g", "go_quote"]


def _digits(a: float) -> tuple[str, int]:
    """Shortest round-trip digits of a positive finite float, and `point` with value = 0.<digits> * 10**point."""
    _sign, digits, exp = Decimal(repr(a)).as_tuple()
    assert isinstance(exp, int)
    ds = "".join(map(str, digits)).lstrip("0") or "0"
    point = exp + len(ds)
    return ds.rstrip("0") or "0", point


def _special(v: float) -> str | None:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v == 0:
        return "-0" if math.copysign(1.0, v) < 0 else "0"
    return None


def _layout(v: float, low: int, high: int) -> str:
    """A finite non-zero `v` in its shortest digits: exponent form when its decimal exponent is < `low` or
    >= `high`, fixed notation otherwise."""
    sign = "-" if v < 0 else ""
    ds, point = _digits(abs(v))
    exp = point - 1
    if exp < low or exp >= high:
        mant = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
        return f"{sign}{mant}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{ds}"
    if point >= len(ds):
        return f"{sign}{ds}{'0' * (point - len(ds))}"
    return f"{sign}{ds[:point]}.{ds[point:]}"


def format_float(v: float) -> str:
    return _special(v) or _layout(v, -6, 21)


def format_g(v: float) -> str:
    return _special(v) or _layout(v, -4, 6)


_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v",
            "\\": "\\\\", '"': '\\"'}


def go_quote(s: str) -> str:
    """Go's strconv.Quote: double-quoted, with escapes (surrogate-escaped bytes come out as \\xNN)."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif 0xDC80 <= o <= 0xDCFF:  # an invalid UTF-8 byte kept by surrogateescape
            out.append(f"\\x{o - 0xDC00:02x}")
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\x{o:02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)
