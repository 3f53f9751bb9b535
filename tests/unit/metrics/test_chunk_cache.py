"""The decoded-chunk cache gives exactly what decoding gives, and stays within its bound."""

from __future__ import annotations

from array import array

import pytest

from sluice.metrics.tsdb import chunks


def _chunk(seed: int, n: int = 120) -> bytes:
    ts = array("q", (1_700_000_000_000 + i * 5000 for i in range(n)))
    vs = array("d", (float(seed * 1000 + i) for i in range(n)))
    return chunks.encode(ts, vs)


def test_cached_decode_equals_decode_and_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chunks, "_CACHE_SAMPLES", 10 * 120)
    monkeypatch.setattr(chunks, "_cache", type(chunks._cache)())
    monkeypatch.setattr(chunks, "_cached_samples", 0)
    encoded = [_chunk(i) for i in range(40)]
    for _ in range(2):
        for c in encoded:
            assert chunks.decode_cached(c) == chunks.decode(c)
    assert len(chunks._cache) <= 10
    assert chunks._cached_samples == sum(len(ts) for ts, _ in chunks._cache.values()) <= 10 * 120
