"""Sluice's HTTP load generator: fixed-rate (open loop) or max-rate (closed loop) traffic with latency stats.

Used by `sluice load`, by `sluice demo` as its steady traffic source (`python -m sluice.load URL --rate R
--duration 0`), and by the benchmarks. It only sends to this machine: loopback targets, or service names
through a loopback proxy such as a pod's sidecar (`proxy="http://<podIP>:15001"`).

    from sluice.load.runner import run_load  # aiohttp: loaded only by what sends

    result = await run_load(LoadConfig("http://127.0.0.1:9080/productpage", rate=50, duration=10))
    print(format_summary(result))
"""

from __future__ import annotations

from sluice.load.histogram import LatencyHistogram
from sluice.load.model import LatencySummary, LoadConfig, LoadResult
from sluice.load.pacing import OpenLoopSchedule, planned_requests
from sluice.load.summary import format_progress, format_summary, summary_table
from sluice.load.targets import TargetRefused, check_target, parse_duration, parse_header

__all__ = [
    "LatencyHistogram", "LatencySummary", "LoadConfig", "LoadResult", "OpenLoopSchedule", "TargetRefused",
    "check_target", "format_progress", "format_summary", "parse_duration", "parse_header", "planned_requests",
    "summary_table",
]
