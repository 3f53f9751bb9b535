"""What a load run is asked to do (`LoadConfig`) and what it measured (`LoadResult`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sluice.load.histogram import LatencyHistogram

__all__ = ["LoadConfig", "LoadResult", "LatencySummary"]


@dataclass(frozen=True)
class LoadConfig:
    """One run. `rate` None (or 0) is closed loop: every connection sends back to back as fast as it can.

    `duration` None and `requests` None together mean "until stopped" (the caller's stop event or SIGTERM).
    `timeout` bounds each request, so a run always ends within `duration + timeout` of its start.
    """

    url: str
    rate: float | None = 10.0
    concurrency: int = 4
    duration: float | None = 10.0
    requests: int | None = None
    proxy: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    method: str = "GET"
    body: bytes = b""
    timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.rate is not None and self.rate < 0:
            raise ValueError(f"rate must be ≥ 0, got {self.rate}")
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be ≥ 1, got {self.concurrency}")
        if self.duration is not None and self.duration <= 0:
            raise ValueError(f"duration must be > 0 (None for no limit), got {self.duration}")
        if self.requests is not None and self.requests < 1:
            raise ValueError(f"requests must be ≥ 1, got {self.requests}")
        if self.timeout <= 0:
            raise ValueError(f"timeout must be > 0, got {self.timeout}")

    @property
    def open_loop(self) -> bool:
        return bool(self.rate)


@dataclass(frozen=True)
class LatencySummary:
    """Milliseconds."""

    min: float
    mean: float
    p50: float
    p90: float
    p99: float
    p999: float
    max: float

    @classmethod
    def of(cls, h: LatencyHistogram) -> LatencySummary:
        ms = 1e-6  # the histogram holds nanoseconds
        return cls(min=h.min * ms, mean=h.mean * ms, p50=h.percentile(50) * ms, p90=h.percentile(90) * ms,
                   p99=h.percentile(99) * ms, p999=h.percentile(99.9) * ms, max=h.max * ms)


@dataclass
class LoadResult:
    """Counts are of finished requests: `requests` = `responses` (any HTTP status) + sum of `errors`.

    `latency` covers every finished request, errors included; in open loop it runs from the moment the
    pacer released the request, so waiting for a busy connection counts (no coordinated omission). `dropped` are scheduled requests never sent
    (the run ended, or the backlog behind busy connections grew past its bound).
    """

    url: str
    proxy: str | None
    target_rate: float | None
    concurrency: int
    elapsed: float = 0.0
    requests: int = 0
    responses: int = 0
    status_codes: dict[int, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    bytes_received: int = 0
    bytes_sent: int = 0
    dropped: int = 0
    histogram: LatencyHistogram = field(default_factory=LatencyHistogram)

    @property
    def achieved_rps(self) -> float:
        return self.requests / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def latency(self) -> LatencySummary:
        return LatencySummary.of(self.histogram)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def ok_count(self) -> int:
        """Responses with a 2xx or 3xx status."""
        return sum(n for code, n in self.status_codes.items() if 200 <= code < 400)

    def to_dict(self) -> dict[str, Any]:
        lat = self.latency
        return {
            "url": self.url,
            "proxy": self.proxy,
            "targetRate": self.target_rate,
            "concurrency": self.concurrency,
            "elapsedSeconds": round(self.elapsed, 6),
            "requests": self.requests,
            "responses": self.responses,
            "achievedRps": round(self.achieved_rps, 3),
            "statusCodes": {str(k): v for k, v in sorted(self.status_codes.items())},
            "errors": dict(sorted(self.errors.items())),
            "bytesReceived": self.bytes_received,
            "bytesSent": self.bytes_sent,
            "dropped": self.dropped,
            "latencyMs": {k: round(getattr(lat, k), 4) for k in ("min", "mean", "p50", "p90", "p99", "p999",
                                                                  "max")},
        }
