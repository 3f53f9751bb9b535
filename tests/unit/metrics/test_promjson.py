"""The bulk encoders (one orjson call per series) print exactly what the one-value encoders print."""

from __future__ import annotations

import math
import random
import struct

from sluice.metrics.promjson import (
    format_timestamp,
    format_timestamps,
    format_value,
    format_values,
    jlabels,
    matrix_json,
)
from sluice.metrics.promql.values import Series
from sluice.metrics.series import labels_of


def _values(rng: random.Random, n: int) -> list[float]:
    out = []
    for _ in range(n):
        c = rng.random()
        if c < 0.1:
            out.append(rng.choice([math.nan, math.inf, -math.inf, 0.0, -0.0, 1e-7, 1e21, 1e16, 1e-5, 1e-6, 5e-324]))
        elif c < 0.4:  # any bit pattern: every exponent, subnormals
            out.append(struct.unpack("d", struct.pack("Q", rng.getrandbits(64)))[0])
        elif c < 0.6:
            out.append(float(rng.randint(-10**7, 10**7)))
        else:
            out.append(rng.random() * 10.0 ** rng.randint(-9, 22) * rng.choice((1, -1)))
    return out


def test_format_values_matches_format_value() -> None:
    rng = random.Random(12)
    for _ in range(200):
        vals = _values(rng, rng.randint(0, 300))
        assert format_values(vals) == [format_value(v) for v in vals]
    assert format_values((1.0, 2.5)) == ["1", "2.5"]  # not a list
    assert format_values([3, 0.5]) == ["3", "0.5"]  # an int among the floats


def test_format_timestamps_matches_format_timestamp() -> None:
    rng = random.Random(13)
    for lo, hi in [(-5000, 5000), (1_700_000_000_000, 1_800_000_000_000), (10**15 - 10**6, 10**15 + 10**6),
                   (-(10**15) - 10**6, -(10**15) + 10**6), (-(2**63), 2**63 - 1)]:
        ts = [rng.randint(lo, hi) for _ in range(5000)]
        assert format_timestamps(ts) == [format_timestamp(t) for t in ts]
    assert format_timestamps([]) == []


def _matrix_reference(series: list[Series]) -> str:
    """Point by point with the one-value encoders."""
    out = []
    for s in series:
        pts = ",".join(f'[{format_timestamp(t)},"{format_value(v)}"]' for t, v in zip(s.timestamps, s.values,
                                                                                       strict=True))
        out.append(f'{{"metric":{jlabels(s.metric)},"values":[{pts}]}}')
    return "[" + ",".join(out) + "]"


def test_matrix_json_matches_point_by_point() -> None:
    rng = random.Random(14)
    for lo, hi in [(-5000, 5000), (1_700_000_000_000, 1_800_000_000_000), (10**15 - 10**6, 10**15 + 10**6),
                   (-(10**15) - 10**6, -(10**15) + 10**6), (-(2**63), 2**63 - 1)]:
        series = []
        for i in range(rng.randint(1, 6)):
            n = rng.choice([0, 1, 2, 241])
            start = rng.randint(lo, hi) // rng.choice([1, 1000]) * 1000 if i % 2 else rng.randint(lo, hi)
            step = rng.choice([1, 1000, 15_000, 250])  # whole seconds and not
            ts = [min(hi, start + k * step) for k in range(n)]
            series.append(Series(labels_of({"__name__": "x", "i": str(i), "q": 'a",[b'}), ts, _values(rng, n)))
        assert matrix_json(series) == _matrix_reference(series)
    assert matrix_json([]) == "[]"


def test_matrix_json_series_sharing_their_times_or_some_of_them() -> None:
    rng = random.Random(15)
    grid = list(range(1_764_800_000_250, 1_764_800_000_250 + 241 * 15_000, 15_000))
    times = [grid, list(grid), grid[::2], grid, grid[5:9], [grid[0] - 1000, *grid[:3]], list(grid)]
    series = [Series(labels_of({"i": str(i)}), ts, _values(rng, len(ts))) for i, ts in enumerate(times)]
    for k in range(1, len(series) + 1):
        assert matrix_json(series[:k]) == _matrix_reference(series[:k])
