"""Human-readable summaries of a `LoadResult`: plain text (logs, `python -m sluice.load`) and rich tables."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sluice.load.model import LoadResult

if TYPE_CHECKING:
    from rich.table import Table

__all__ = ["format_summary", "format_progress", "summary_table", "format_ms", "format_bytes"]


def format_ms(ms: float) -> str:
    if ms >= 1000:
        return f"{ms / 1000:.2f} s"
    if ms >= 100:
        return f"{ms:.0f} ms"
    if ms >= 10:
        return f"{ms:.1f} ms"
    return f"{ms:.2f} ms"


def format_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"  # unreachable; keeps mypy sure of a return


def _rate_line(r: LoadResult) -> str:
    target = f"target {r.target_rate:g} rps" if r.target_rate else "closed loop (max rate)"
    return f"{r.achieved_rps:.1f} rps achieved, {target}"


def _codes(r: LoadResult) -> str:
    return "  ".join(f"{code}: {n}" for code, n in sorted(r.status_codes.items())) or "-"


def _errors(r: LoadResult) -> str:
    return "  ".join(f"{name}: {n}" for name, n in sorted(r.errors.items(), key=lambda kv: -kv[1])) or "-"


def format_summary(r: LoadResult) -> str:
    """A few aligned lines: target, counts and rates, latency percentiles, status codes, errors, bytes."""
    lat = r.latency
    via = f" via proxy {r.proxy}" if r.proxy else ""
    lines = [
        f"Target      {r.url}{via}",
        f"Requests    {r.requests} in {r.elapsed:.2f} s over {r.concurrency} connections ({_rate_line(r)})",
        f"Latency     p50 {format_ms(lat.p50)}   p90 {format_ms(lat.p90)}   p99 {format_ms(lat.p99)}   "
        f"max {format_ms(lat.max)}   (min {format_ms(lat.min)}, mean {format_ms(lat.mean)})",
        f"Status      {_codes(r)}",
        f"Errors      {_errors(r)}",
        f"Bytes       received {format_bytes(r.bytes_received)}, sent {format_bytes(r.bytes_sent)}",
    ]
    if r.dropped:
        lines.append(f"Dropped     {r.dropped} scheduled requests were not sent (all connections busy)")
    return "\n".join(lines)


def format_progress(r: LoadResult) -> str:
    """One line for periodic reports while a run is going."""
    lat = r.latency
    return (f"{r.elapsed:7.1f}s  {r.requests} requests  {r.achieved_rps:.1f} rps  p50 {format_ms(lat.p50)}  "
            f"p99 {format_ms(lat.p99)}  errors {r.error_count}  codes {_codes(r)}")


def summary_table(r: LoadResult) -> Table:
    """The end-of-run table `sluice load` prints."""
    from rich.table import Table

    lat = r.latency
    table = Table(title=f"{r.url}" + (f" via {r.proxy}" if r.proxy else ""), show_header=True,
                  title_justify="left")
    for col in ("requests", "duration", "rps", "p50", "p90", "p99", "max", "status codes", "errors"):
        table.add_column(col, justify="left" if col in ("status codes", "errors") else "right")
    rps = f"{r.achieved_rps:.1f}" + (f" / {r.target_rate:g}" if r.target_rate else "")
    table.add_row(str(r.requests), f"{r.elapsed:.2f} s", rps, format_ms(lat.p50), format_ms(lat.p90),
                  format_ms(lat.p99), format_ms(lat.max), _codes(r), _errors(r))
    return table
