"""RateLimitedLog: one line per key per period, and the next line says how many were held back."""

from __future__ import annotations

import logging

import pytest

from sluice.daemon.ratelog import RateLimitedLog


def test_one_line_per_period_with_the_count(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    log = RateLimitedLog(logging.getLogger("test.ratelog"), period=10.0, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="test.ratelog"):
        assert log("accept", "accept failed")
        for _ in range(999):
            now[0] += 0.001
            assert not log("accept", "accept failed")
        assert log("tls", "handshake failed")  # another key is not held back
        now[0] = 111.0
        assert log("accept", "accept failed")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["accept failed", "handshake failed", "accept failed (and 999 more like it in the last 11s)"]
