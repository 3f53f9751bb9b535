"""Go's number formatting, as fortio's output uses it (`%g`, `%.6g`).

`g` is the shortest round-tripping `%g` that PromQL's output also uses (`sluice.metrics.promql.format`).
"""

from __future__ import annotations

import math

from sluice.metrics.promql.format import format_g as g

__all__ = ["g", "gp"]


def gp(v: float, precision: int) -> str:
    """`fmt.Sprintf("%.<precision>g", v)` (Python's %g follows the same rules for an explicit precision)."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return f"{v:.{precision}g}"
