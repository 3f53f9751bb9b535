"""The judge's pure statistics against brute force: the e-value's numerator and constrained maximum by grid,
Â and its variance by expanding buckets into samples, the projection of requests still needed."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sluice.rollouts.judge import errorrate, latency
from sluice.rollouts.judge.special import lgamma, log_ndtr


def test_special_functions_match_the_standard_library() -> None:
    xs = np.array([0.25, 0.5, 1.0, 1.5, 3.7, 10.0, 123.4, 1e4])
    assert np.allclose(lgamma(xs), [math.lgamma(x) for x in xs], rtol=1e-12, atol=1e-12)
    z = np.array([-6.0, -1.0, 0.0, 2.5])
    assert np.allclose(np.exp(log_ndtr(z)), [0.5 * math.erfc(-v / math.sqrt(2)) for v in z], rtol=1e-12)


@pytest.mark.parametrize(("n_c", "x_c", "n_s", "x_s", "ratio", "plus", "above"), [
    (200, 12, 600, 9, 1.0, 0.0, False),
    (200, 12, 600, 9, 2.0, 0.005, True),
    (50, 0, 80, 0, 2.0, 0.01, True),
    (300, 30, 100, 1, 1.5, 0.0, False),
])
def test_error_evalue_matches_a_grid_computation(n_c: int, x_c: int, n_s: int, x_s: int, ratio: float,
                                                 plus: float, above: bool) -> None:
    # Numerator: the Beta-mixture likelihood by quadrature on a fine grid (Beta(1/4, 1) has an integrable
    # singularity at 0: substitute p = u^4, dp = 4u^3 du, so the density times dp is smooth in u).
    u = (np.arange(200_000) + 0.5) / 200_000
    p = u ** 4
    a, b = errorrate.PRIOR_A, errorrate.PRIOR_B
    log_beta = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    weight = np.exp((a - 1) * np.log(p) + (b - 1) * np.log1p(-p) - log_beta) * 4 * u ** 3 / u.size

    def arm(n: int, x: int) -> float:
        return float(np.log(np.sum(weight * np.exp(x * np.log(p) + (n - x) * np.log1p(-p)))))

    numerator = arm(n_c, x_c) + arm(n_s, x_s)
    # Denominator: the largest likelihood inside the hypothesis, by a grid over both rates.
    g = np.linspace(1e-6, 1 - 1e-6, 2001)
    pc, ps = np.meshgrid(g, g, indexing="ij")
    inside = pc >= ratio * ps + plus if above else pc <= ratio * ps + plus
    ll = (x_c * np.log(pc) + (n_c - x_c) * np.log1p(-pc) + x_s * np.log(ps) + (n_s - x_s) * np.log1p(-ps))
    denominator = float(ll[inside].max())
    got = float(errorrate.log_evalue(n_c, x_c, n_s, x_s, ratio, plus, above))
    assert got == pytest.approx(numerator - denominator, abs=0.05)


def test_rank_statistics_match_the_samples_they_stand_for() -> None:
    rng = np.random.default_rng(3)
    canary = rng.integers(0, 30, 8).astype(float)
    stable = rng.integers(0, 30, 8).astype(float)
    xs = np.repeat(np.arange(8), canary.astype(int))
    ys = np.repeat(np.arange(8), stable.astype(int))
    # Mann–Whitney with ties as halves, pair by pair.
    wins = (xs[:, None] > ys[None, :]).sum() + 0.5 * (xs[:, None] == ys[None, :]).sum()
    st = latency.rank_stats(canary, stable)
    assert float(st.a) == pytest.approx(wins / (xs.size * ys.size))
    # DeLong's variance from the placement values of every sample.
    v_c = np.array([((ys < x).sum() + 0.5 * (ys == x).sum()) / ys.size for x in xs])
    v_s = np.array([((xs > y).sum() + 0.5 * (xs == y).sum()) / xs.size for y in ys])
    assert float(st.var) == pytest.approx(v_c.var(ddof=1) / xs.size + v_s.var(ddof=1) / ys.size)


def test_quantile_interpolates_inside_buckets_like_histogram_quantile() -> None:
    bounds = [10.0, 20.0, 40.0, math.inf]
    assert latency.quantile(bounds, [10, 10, 0, 0], 0.5) == 10.0
    assert latency.quantile(bounds, [0, 10, 10, 0], 0.75) == 30.0
    assert latency.quantile(bounds, [0, 0, 0, 5], 0.5) == 40.0  # only +Inf: the highest finite bound
    assert math.isnan(latency.quantile(bounds, [0, 0, 0, 0], 0.5))


def test_projected_requests_are_enough_to_decide_when_the_rates_hold() -> None:
    b = errorrate.Bounds()
    log_fail, log_pass = math.log(20), math.log(5)
    n_c, x_c, n_s, x_s = 150.0, 6.0, 450.0, 9.0
    need = errorrate.requests_needed(n_c, x_c, n_s, x_s, b, log_fail, log_pass)
    assert 0 < need < math.inf
    k = (n_c + need) / n_c
    worse, better = errorrate.evidence(k * n_c, k * x_c, k * n_s, k * x_s, b)
    assert worse >= log_fail or better >= log_pass
    k = (n_c + 0.9 * need) / n_c
    worse, better = errorrate.evidence(k * n_c, k * x_c, k * n_s, k * x_s, b)
    assert worse < log_fail and better < log_pass


def test_the_ratio_interval_covers_the_observed_ratio_and_narrows_with_data() -> None:
    lo, hi = errorrate.ratio_interval(1000, 40, 1000, 20, 0.05)
    assert lo < 2 < hi
    lo2, hi2 = errorrate.ratio_interval(10000, 400, 10000, 200, 0.05)
    assert lo < lo2 < 2 < hi2 < hi
