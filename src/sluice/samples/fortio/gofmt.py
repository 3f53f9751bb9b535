"""Go's number formatting, as fortio's output uses it (`%g`, `%.6g`)."""

from __future__ import annotations

import math
from decimal import Decimal

__all__ = ["g", "gp"]


def g(v: float) -> str:
    """`fmt.Sprintf("%g", v)`: the shortest digits that round-trip, exponent form below 1e-4 or from 1e6."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v == 0:
        return "-0" if math.copysign(1.0, v) < 0 else "0"
    sign = "-" if v < 0 else ""
    _, digit_tuple, exp = Decimal(repr(abs(v))).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    point = len(digits) + int(exp)  # where the decimal point goes, counted from the first digit
    x = point - 1
    if x < -4 or x >= 6:  # strconv's rule for the shortest form: precision 6 decides
        mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mant}e{'-' if x < 0 else '+'}{abs(x):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


def gp(v: float, precision: int) -> str:
    """`fmt.Sprintf("%.<precision>g", v)` (Python's %g follows the same rules for an explicit precision)."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return f"{v:.{precision}g}"
