"""A latency histogram with bounded relative error, cheap enough to record every request forever.

Values are integers (nanoseconds here). Below 2**SUB_BITS they are counted exactly; above, each power of
two is split into 2**SUB_BITS equal buckets (the HdrHistogram layout), so any reported percentile is within
1/2**SUB_BITS (0.8 %) of a value that was really recorded, whatever the range, in memory proportional to
the number of distinct buckets used rather than the number of samples.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = ["LatencyHistogram", "SUB_BITS", "bucket_index", "bucket_bounds"]

SUB_BITS = 7
_SUB = 1 << SUB_BITS


def bucket_index(value: int) -> int:
    """The bucket a non-negative value falls in; indices grow with the value."""
    if value < _SUB:
        return value
    shift = value.bit_length() - SUB_BITS - 1
    return _SUB + shift * _SUB + ((value >> shift) - _SUB)


def bucket_bounds(index: int) -> tuple[int, int]:
    """The inclusive range [low, high] of values that land in bucket `index`."""
    if index < _SUB:
        return index, index
    shift, offset = divmod(index - _SUB, _SUB)
    low = (_SUB + offset) << shift
    return low, low + (1 << shift) - 1


@dataclass
class LatencyHistogram:
    """Counts per bucket plus exact count, sum, min and max."""

    counts: dict[int, int] = field(default_factory=dict)
    count: int = 0
    total: int = 0
    min: int = 0
    max: int = 0

    def record(self, value: int) -> None:
        value = max(0, int(value))
        i = bucket_index(value)
        self.counts[i] = self.counts.get(i, 0) + 1
        if self.count == 0 or value < self.min:
            self.min = value
        if value > self.max:
            self.max = value
        self.count += 1
        self.total += value

    def merge(self, other: LatencyHistogram) -> None:
        for i, n in other.counts.items():
            self.counts[i] = self.counts.get(i, 0) + n
        if other.count:
            self.min = other.min if self.count == 0 else min(self.min, other.min)
            self.max = max(self.max, other.max)
        self.count += other.count
        self.total += other.total

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    def percentile(self, q: float) -> int:
        """The nearest-rank q-th percentile (0 ≤ q ≤ 100): the value at rank ceil(q/100 · count).

        The answer is the midpoint of the bucket holding that rank, clamped to the recorded min and max, so
        p0 is the exact minimum and p100 the exact maximum. An empty histogram answers 0.
        """
        if not 0 <= q <= 100:
            raise ValueError(f"percentile must be within [0, 100], got {q}")
        if self.count == 0:
            return 0
        if q == 0:
            return self.min
        if q == 100:
            return self.max
        rank = max(1, math.ceil(q / 100 * self.count))
        seen = 0
        for i in sorted(self.counts):
            seen += self.counts[i]
            if seen >= rank:
                low, high = bucket_bounds(i)
                return min(max((low + high) // 2, self.min), self.max)
        return self.max

    def buckets(self) -> Iterator[tuple[int, int, int]]:
        """(low, high, count) for each non-empty bucket, in increasing order."""
        for i in sorted(self.counts):
            low, high = bucket_bounds(i)
            yield low, high, self.counts[i]
