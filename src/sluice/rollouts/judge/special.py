"""Vectorised special functions the judge needs (numpy has no log-gamma or normal CDF, and scipy is not a
dependency). Pure functions of arrays; accuracy is far beyond what a decision threshold needs."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
_erfc = np.frompyfunc(math.erfc, 1, 1)


def lgamma(x: npt.ArrayLike) -> Array:
    """log Γ(x) for x > 0: Stirling's series at x + 7 (error < 1e-12), shifted back by the recurrence."""
    x = np.asarray(x, dtype=np.float64)
    z = x + 7.0
    shift = np.log(x * (x + 1) * (x + 2) * (x + 3) * (x + 4) * (x + 5) * (x + 6))
    zi = 1.0 / z
    zi2 = zi * zi
    series = zi * (1 / 12 - zi2 * (1 / 360 - zi2 * (1 / 1260 - zi2 * (1 / 1680 - zi2 / 1188))))
    out: Array = (z - 0.5) * np.log(z) - z + _HALF_LOG_2PI + series - shift
    return out


def log_ndtr(x: npt.ArrayLike) -> Array:
    """log Φ(x), the standard normal CDF; -inf where Φ underflows."""
    x = np.asarray(x, dtype=np.float64)
    phi = np.asarray(_erfc(-x / math.sqrt(2.0)), dtype=np.float64) / 2.0
    with np.errstate(divide="ignore"):
        out: Array = np.log(phi)
    return out


def xlogy(x: npt.ArrayLike, y: npt.ArrayLike) -> Array:
    """x·log(y) with 0·log(0) = 0 (a likelihood term with no observations)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out: Array = np.where(x == 0, 0.0, x * np.log(np.where(x == 0, 1.0, y)))
    return out
