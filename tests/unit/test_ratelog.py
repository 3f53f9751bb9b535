"""RateLimitedLog: one line per key per period, and the next line says how many were held back."""

from __future__ import annotations

import logging

import pytest

from sluice.ratelog import RateLimitedLog


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


async def test_loop_errors_such_as_accept_failures_are_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    import asyncio
    import errno

    from sluice.ratelog import install_loop_handler

    loop = asyncio.get_running_loop()
    old = loop.get_exception_handler()
    install_loop_handler(loop, RateLimitedLog(logging.getLogger("test.loop"), period=60.0))
    try:
        with caplog.at_level(logging.INFO, logger="test.loop"):
            for _ in range(1000):  # what asyncio reports while accept() fails with EMFILE
                loop.call_exception_handler({"message": "socket.accept() out of system resource",
                                             "exception": OSError(errno.EMFILE, "Too many open files")})
    finally:
        loop.set_exception_handler(old)
    lines = [r for r in caplog.records if r.name == "test.loop"]
    assert len(lines) == 1 and "Too many open files" in lines[0].getMessage()
    assert lines[0].exc_info is None  # OS errors carry no traceback
