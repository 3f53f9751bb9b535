"""Go-compatible float formatting (`strconv.FormatFloat(v, 'f', -1, 64)` as Prometheus's JSON uses it).

Prometheus writes sample values as the shortest decimal that round-trips, in fixed notation, except that it
switches to exponent notation below 1e-6 and from 1e21 on (`1e-07`, `1e+21`); specials are `NaN`, `+Inf`,
`-Inf`. `count_values` label values and the HTTP API both need exactly this text, not Python's `repr`.
"""

from __future__ import annotations

import math
from decimal import Decimal

__all__ = ["format_float", "go_quote"]


def _digits(a: float) -> tuple[str, int]:
    """Shortest round-trip digits of a positive finite float, and `point` with value = 0.<digits> * 10**point."""
    _sign, digits, exp = Decimal(repr(a)).as_tuple()
    assert isinstance(exp, int)
    ds = "".join(map(str, digits)).lstrip("0") or "0"
    point = exp + len(ds)
    return ds.rstrip("0") or "0", point


def format_float(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v == 0:
        return "-0" if math.copysign(1.0, v) < 0 else "0"
    sign = "-" if v < 0 else ""
    a = abs(v)
    ds, point = _digits(a)
    if a < 1e-6 or a >= 1e21:
        exp = point - 1
        mant = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
        return f"{sign}{mant}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{ds}"
    if point >= len(ds):
        return f"{sign}{ds}{'0' * (point - len(ds))}"
    return f"{sign}{ds[:point]}.{ds[point:]}"


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
