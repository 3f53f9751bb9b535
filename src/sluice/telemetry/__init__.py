"""Telemetry: Envoy access logs (gRPC ALS) → Istio's standard metrics, kept in an in-process registry.

- `collector.Collector`: what the daemon runs (ALS servicer on the xDS gRPC server + pod/service index).
- `registry.MetricsRegistry`: counters and histograms; `samples()` for the TSDB, `families()` for the
  text exposition.
- `als.AccessLogServicer`: the ALS stream handler; `istio`: metric and label definitions; `peers`: who
  an IP address is.
"""

from __future__ import annotations

from .als import AccessLogServicer, AlsStats, TelemetryOptions
from .collector import Collector
from .istio import ISTIO_LABELS, TARGET_LABELS, TCP_LABELS, IstioMetrics
from .peers import PodIndex, Workload
from .registry import ENVOY_DEFAULT_BUCKETS, MetricFamily, MetricsRegistry, Sample

__all__ = [
    "AccessLogServicer", "AlsStats", "Collector", "ENVOY_DEFAULT_BUCKETS", "ISTIO_LABELS", "IstioMetrics",
    "MetricFamily", "MetricsRegistry", "PodIndex", "Sample", "TARGET_LABELS", "TCP_LABELS", "TelemetryOptions",
    "Workload",
]
