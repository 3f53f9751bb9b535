"""Runs Prometheus's promqltest scripts (read from /work/shared/promqltest, never copied) against Sluice's
engine and fails if any case of the target files fails; per-file counts are printed by conftest.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from .promqltest import FileReport, run_file

TESTDATA = Path("/work/shared/promqltest")
TARGET_FILES = [
    "aggregators", "at_modifier", "collision", "functions", "histograms", "literals", "operators",
    "range_queries", "selectors", "staleness", "subquery", "trig_functions",
]
# Cases we know we fail, as "file:line" with the reason; keep this list short and explained.
KNOWN_FAILURES: dict[str, str] = {}

REPORTS: dict[str, FileReport] = {}


@pytest.mark.skipif(not TESTDATA.is_dir(), reason="promqltest scripts not available")
@pytest.mark.parametrize("name", TARGET_FILES)
def test_promqltest_file(name: str) -> None:
    rep = run_file(TESTDATA / f"{name}.test")
    REPORTS[name] = rep
    unexpected = [f for f in rep.failures if f.split(": ", 1)[0].replace(".test", "") not in KNOWN_FAILURES]
    assert not unexpected, f"{len(unexpected)} failing case(s):\n" + "\n".join(unexpected[:40])
