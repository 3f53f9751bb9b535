"""Percentile math of the latency histogram: bucket layout, nearest-rank percentiles, bounded error."""

from __future__ import annotations

import math
import random

import pytest

from sluice.load.histogram import SUB_BITS, LatencyHistogram, bucket_bounds, bucket_index


def test_buckets_are_contiguous_and_ordered() -> None:
    previous_high = -1
    for i in range(40 * (1 << SUB_BITS)):
        low, high = bucket_bounds(i)
        assert low == previous_high + 1
        assert bucket_index(low) == i and bucket_index(high) == i
        previous_high = high


def test_small_values_are_exact() -> None:
    h = LatencyHistogram()
    for v in range(1, 101):
        h.record(v)
    assert h.percentile(50) == 50
    assert h.percentile(90) == 90
    assert h.percentile(99) == 99
    assert h.percentile(100) == 100 and h.max == 100
    assert h.percentile(0) == 1 and h.min == 1
    assert h.count == 100 and h.mean == 50.5


@pytest.mark.parametrize("q", [50, 90, 99, 99.9])
def test_relative_error_is_bounded_against_exact_nearest_rank(q: float) -> None:
    rng = random.Random(7)
    values = [int(rng.lognormvariate(14, 1.5)) for _ in range(20000)]  # ~ ms-scale latencies in ns
    h = LatencyHistogram()
    for v in values:
        h.record(v)
    exact = sorted(values)[math.ceil(q / 100 * len(values)) - 1]
    assert abs(h.percentile(q) - exact) <= exact / (1 << SUB_BITS) + 1


def test_single_value_and_empty() -> None:
    assert LatencyHistogram().percentile(99) == 0
    h = LatencyHistogram()
    h.record(123_456_789)
    assert h.percentile(50) == h.percentile(99) == 123_456_789  # clamped to the exact min/max


def test_merge_equals_recording_everything_once() -> None:
    a, b, both = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    for v in range(0, 5000, 3):
        a.record(v * 1000)
        both.record(v * 1000)
    for v in range(7, 9000, 11):
        b.record(v * 997)
        both.record(v * 997)
    a.merge(b)
    assert (a.count, a.total, a.min, a.max, a.counts) == (both.count, both.total, both.min, both.max, both.counts)
    assert [a.percentile(q) for q in (50, 90, 99)] == [both.percentile(q) for q in (50, 90, 99)]


def test_bad_percentile() -> None:
    with pytest.raises(ValueError):
        LatencyHistogram().percentile(101)
