"""Prints the promqltest conformance table (passed / failed / skipped per file) at the end of the session."""

from __future__ import annotations

import pytest


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from .test_promqltest import REPORTS

    if not REPORTS:
        return
    tr = terminalreporter
    tr.section("promqltest conformance")
    tr.write_line(f"{'file':<16} {'passed':>7} {'failed':>7} {'skipped':>8}  skip reasons")
    tot = [0, 0, 0]
    for name, r in REPORTS.items():
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(r.skip_reasons.items()))
        tr.write_line(f"{name:<16} {r.passed:>7} {r.failed:>7} {r.skipped:>8}  {reasons}")
        tot[0] += r.passed
        tot[1] += r.failed
        tot[2] += r.skipped
    tr.write_line(f"{'total':<16} {tot[0]:>7} {tot[1]:>7} {tot[2]:>8}")
