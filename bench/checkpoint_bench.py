"""Telemetry checkpoints: how long one holds the daemon's event loop, written on the loop in one piece (what the
metrics service did before every TSDB sample until 2026-12-04, and what start and stop still do) against
captured and then encoded in pieces with the loop free between them (`Collector.write_checkpoint`, what it does
now).

A real `Collector` (SQLite store, ledger over an empty pods directory) with N request edges in its registry:
each of Istio's four HTTP metrics (a counter and three histograms) gets N label sets, the TCP ones N/20. A task
on the same loop notes the gap between its turns while each checkpoint is written; the longest gap is what any
other request (the API, xDS, ALS) could have waited. Both ways run alternately, `--reps` times each.

Usage: `python bench/checkpoint_bench.py [--edges 250,2000] [--reps 5]`. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.run import exit_on_sigterm  # noqa: E402

from sluice.store.sqlite import Store  # noqa: E402
from sluice.telemetry import Collector  # noqa: E402
from sluice.telemetry.istio import IstioMetrics  # noqa: E402


def fill(metrics: IstioMetrics, edges: int) -> int:
    """N label sets per HTTP metric (N/20 per TCP one), one observation each; returns the cells made."""
    cells = 0
    http = (metrics.requests_total, metrics.request_duration, metrics.request_bytes, metrics.response_bytes)
    tcp = (metrics.tcp_opened, metrics.tcp_closed, metrics.tcp_sent, metrics.tcp_received)
    for families, n in ((http, edges), (tcp, max(1, edges // 20))):
        for fam in families:
            for i in range(n):
                cell = fam.labels(tuple(f"value-{j}-{i}" for j in range(len(fam.label_names))))
                if hasattr(cell, "observe"):
                    cell.observe(3.0)
                else:
                    cell.inc()
                cells += 1
    return cells


async def measure(c: Collector, way: str) -> tuple[float, float]:
    """(ms the checkpoint took, longest ms the loop was held meanwhile)."""
    gaps: list[float] = []

    async def ticker() -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    gaps.clear()
    t0 = time.perf_counter()
    if way == "one piece":
        c.checkpoint()
    else:
        state = c.capture()
        assert state is not None
        await c.write_checkpoint(state)
    took = time.perf_counter() - t0
    await asyncio.sleep(0)
    task.cancel()
    return took * 1000, max(gaps) * 1000


async def run(edges: int, reps: int) -> list[str]:
    home = Path(tempfile.mkdtemp(prefix="sluice-ckpt-bench-"))
    store = Store(home / "store.db")
    try:
        c = Collector(store, state_dir=home / "telemetry", pods_dir=home / "pods")
        cells = fill(c.metrics, edges)
        results: dict[str, list[tuple[float, float]]] = {"one piece": [], "in pieces": []}
        for _ in range(reps):
            for way in results:
                results[way].append(await measure(c, way))
        size = (home / "telemetry" / "checkpoint.json").stat().st_size / 1e6
        rows = []
        for way, got in results.items():
            took, held = [g[0] for g in got], [g[1] for g in got]
            rows.append(f"| {cells:,} | {size:.1f} | {way} | {statistics.median(took):.1f} ({min(took):.1f}–"
                        f"{max(took):.1f}) | {statistics.median(held):.1f} ({min(held):.1f}–{max(held):.1f}) |")
        return rows
    finally:
        store.close()
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    exit_on_sigterm()
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--edges", default="250,2000", help="comma-separated label sets per HTTP metric")
    p.add_argument("--reps", type=int, default=5, help="checkpoints per way and size")
    args = p.parse_args()
    load = "/".join(f"{x:.2f}" for x in os.getloadavg())
    rows = [r for n in args.edges.split(",") for r in asyncio.run(run(int(n), args.reps))]
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print("## Telemetry checkpoints (`bench/checkpoint_bench.py`)\n")
    print(f"{now}; {platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}; load average "
          f"{load} before; {args.reps} checkpoints each way and size, alternating; median (min–max).\n")
    print("| registry cells | checkpoint MB | written | checkpoint ms | longest hold of the loop ms |")
    print("|---:|---:|---|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
