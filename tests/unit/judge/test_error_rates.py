"""The judge's error rates, measured: thousands of seeded canary/stable streams, each checked at every analysis
interval the way the controller runs it (stop at the first Failed or Successful), vectorised over streams and
looks. Each rate is asserted through a one-sided 99 % Wilson bound on the simulated proportion, so the claim is
"the true rate is within the stated bound at 99 % confidence", not just "this seed was lucky"."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from sluice.rollouts.judge import errorrate, latency

ALPHA = 0.05
POWER = 0.8
LOG_FAIL = math.log(1 / ALPHA)
LOG_PASS = math.log(1 / (1 - POWER))
STREAMS = 2000
LOOKS = 20
Z99 = 2.326


def wilson(k: int, n: int) -> tuple[float, float]:
    p = k / n
    centre = (p + Z99 * Z99 / (2 * n)) / (1 + Z99 * Z99 / n)
    half = Z99 * math.sqrt(p * (1 - p) / n + Z99 * Z99 / (4 * n * n)) / (1 + Z99 * Z99 / n)
    return centre - half, centre + half


def outcomes(worse: npt.NDArray[np.float64], better: npt.NDArray[np.float64]) -> tuple[int, int]:
    """(streams Failed, streams Successful) when every stream stops at its first decisive look; Failed is
    checked before Successful within a look, as the judge does."""
    fail = worse >= LOG_FAIL
    ok = better >= LOG_PASS
    decisive = fail | ok
    first = np.where(decisive.any(1), decisive.argmax(1), -1)
    rows = np.arange(fail.shape[0])
    decided = first >= 0
    failed = decided & fail[rows, np.maximum(first, 0)]
    return int(failed.sum()), int((decided & ~failed).sum())


def error_streams(seed: int, p_c: float, p_s: float, per_look_c: int, per_look_s: int) -> tuple[int, int]:
    rng = np.random.default_rng(seed)
    x_c = rng.binomial(per_look_c, p_c, (STREAMS, LOOKS)).cumsum(1)
    x_s = rng.binomial(per_look_s, p_s, (STREAMS, LOOKS)).cumsum(1)
    looks = np.arange(1, LOOKS + 1, dtype=np.float64)
    worse, better = errorrate.evidence(looks * per_look_c, x_c, looks * per_look_s, x_s, errorrate.Bounds())
    return outcomes(worse, better)


def test_equal_error_rate_canary_is_failed_at_most_alpha_of_the_time_and_usually_passes() -> None:
    # 25 % of traffic on the canary, 2 % errors on both, 20 looks of 1000 requests.
    failed, passed = error_streams(1, 0.02, 0.02, 250, 750)
    assert wilson(failed, STREAMS)[1] <= ALPHA, failed
    assert wilson(passed, STREAMS)[0] >= POWER, passed


def test_twice_the_error_rate_is_caught_with_the_stated_power() -> None:
    failed, passed = error_streams(2, 0.04, 0.02, 250, 750)
    assert wilson(failed, STREAMS)[0] >= POWER, failed
    assert wilson(passed, STREAMS)[1] <= 1 - POWER, passed


def test_a_canary_on_the_bad_boundary_passes_at_most_beta_of_the_time() -> None:
    # The default bad region: p_c >= 2 * p_s + 0.5 %. On its edge a wrong pass is most likely.
    failed, passed = error_streams(9, 2 * 0.02 + 0.005, 0.02, 250, 750)
    assert wilson(passed, STREAMS)[1] <= 1 - POWER, passed


def test_zero_errors_on_both_sides_passes_and_a_failing_canary_against_a_clean_stable_fails() -> None:
    failed, passed = error_streams(3, 0.0, 0.0, 100, 100)
    assert failed == 0 and passed == STREAMS
    failed, passed = error_streams(4, 0.05, 0.0, 100, 100)
    assert wilson(failed, STREAMS)[0] >= POWER and passed == 0


def test_the_false_failure_guarantee_holds_whatever_the_split_and_its_changes() -> None:
    # The rollout shifts 10 % → 20 % → 50 % of traffic while the background analysis keeps looking; rates equal.
    rng = np.random.default_rng(5)
    per_look_c = np.repeat([100, 200, 500, 500], 5)
    per_look_s = 1000 - per_look_c
    x_c = rng.binomial(per_look_c, 0.03, (STREAMS, LOOKS)).cumsum(1)
    x_s = rng.binomial(per_look_s, 0.03, (STREAMS, LOOKS)).cumsum(1)
    worse, better = errorrate.evidence(per_look_c.cumsum(), x_c, per_look_s.cumsum(), x_s, errorrate.Bounds())
    failed, _ = outcomes(worse, better)
    assert wilson(failed, STREAMS)[1] <= ALPHA, failed


# Envoy's default histogram buckets (ms), as Istio's istio_request_duration_milliseconds uses them.
BUCKETS = np.array([0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000,
                    1800000, 3600000, math.inf])


def lognormal_buckets(median: float, sigma: float) -> npt.NDArray[np.float64]:
    cdf = [0.5 * math.erfc(-(math.log(b) - math.log(median)) / (sigma * math.sqrt(2))) if math.isfinite(b) else 1.0
           for b in BUCKETS]
    return np.diff(np.concatenate([[0.0], cdf]))


def latency_streams(seed: int, slowdown: float, per_look_c: int = 50, per_look_s: int = 150) -> tuple[int, int]:
    rng = np.random.default_rng(seed)
    c = rng.multinomial(np.full((STREAMS, LOOKS), per_look_c), lognormal_buckets(20 * slowdown, 0.6)).cumsum(1)
    s = rng.multinomial(np.full((STREAMS, LOOKS), per_look_s), lognormal_buckets(20, 0.6)).cumsum(1)
    worse, better = latency.evidence(latency.rank_stats(c, s), latency.Bounds())
    return outcomes(worse, better)


def test_equal_latency_canary_is_failed_at_most_alpha_of_the_time_and_usually_passes() -> None:
    failed, passed = latency_streams(6, 1.0)
    assert wilson(failed, STREAMS)[1] <= ALPHA, failed
    assert wilson(passed, STREAMS)[0] >= POWER, passed


def test_one_and_a_half_times_slower_canary_is_caught_with_the_stated_power() -> None:
    # Median 30 ms instead of 20 ms: P(canary slower) ≈ 0.66 once bucketed, beyond the default detect of 0.6.
    failed, passed = latency_streams(7, 1.5)
    assert wilson(failed, STREAMS)[0] >= POWER, failed
    assert wilson(passed, STREAMS)[1] <= 1 - POWER, passed


def test_latency_guarantee_holds_from_small_samples_on() -> None:
    # The judge's default minRequests is 20: looks start with 20 canary requests.
    failed, _ = latency_streams(8, 1.0, per_look_c=20, per_look_s=20)
    assert wilson(failed, STREAMS)[1] <= ALPHA, failed
