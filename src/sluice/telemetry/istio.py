"""Istio's standard metrics: names, label names in the stats filter's order, and the small translations
the filter applies (Envoy's short response-flag string, HTTP status → gRPC status).

Facts from istio/proxy `source/extensions/filters/http/istio_stats/istio_stats.cc` (before the code moved
to Envoy) and Envoy's `ResponseFlagUtils`; see reference/istio.md §3. Used by `sluice.telemetry.als`,
which computes the label values, and by `sluice.telemetry.collector`, which defines the families.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sluice import mesh

from .registry import CounterCell, CounterFamily, HistogramCell, HistogramFamily, MetricsRegistry

__all__ = [
    "ISTIO_LABELS", "TCP_LABELS", "TARGET_LABELS", "UNKNOWN", "LATEST", "response_flags_string",
    "http_to_grpc_status", "IstioMetrics", "HttpSeries", "TcpSeries",
]

UNKNOWN = "unknown"
LATEST = "latest"  # the default canonical revision of a peer without the label

# The filter's tag list (Context::all_tags_), in its order.
ISTIO_LABELS: tuple[str, ...] = (
    "reporter",
    "source_workload", "source_workload_namespace", "source_principal", "source_app", "source_version",
    "source_canonical_service", "source_canonical_revision", "source_cluster",
    "destination_workload", "destination_workload_namespace", "destination_principal", "destination_app",
    "destination_version", "destination_service", "destination_service_name", "destination_service_namespace",
    "destination_canonical_service", "destination_canonical_revision", "destination_cluster",
    "request_protocol", "response_flags", "connection_security_policy", "response_code", "grpc_response_status",
)
# TCP metrics carry no response code or gRPC status.
TCP_LABELS: tuple[str, ...] = ISTIO_LABELS[:-2]

# What Prometheus adds when it scrapes a sidecar with Istio's `kubernetes-pods` job: without them two
# pods of one workload would collapse into one series, and a deleted pod's series could never go stale.
TARGET_LABELS: tuple[str, ...] = ("instance", "job", "namespace", "pod")
SCRAPE_JOB = "kubernetes-pods"
AGENT_PORT = mesh.AGENT_STATUS_PORT  # the port Istio's Prometheus annotations point at (pilot-agent's merged metrics)

# Envoy's ResponseFlagUtils::ALL_RESPONSE_STRINGS_FLAGS order (toShortString joins with ","), keyed by
# the field names of envoy.data.accesslog.v3.ResponseFlags.
_FLAG_ORDER: tuple[tuple[str, str], ...] = (
    ("failed_local_healthcheck", "LH"),
    ("no_healthy_upstream", "UH"),
    ("upstream_request_timeout", "UT"),
    ("local_reset", "LR"),
    ("upstream_remote_reset", "UR"),
    ("upstream_connection_failure", "UF"),
    ("upstream_connection_termination", "UC"),
    ("upstream_overflow", "UO"),
    ("no_route_found", "NR"),
    ("delay_injected", "DI"),
    ("fault_injected", "FI"),
    ("rate_limited", "RL"),
    ("unauthorized_details", "UAEX"),
    ("rate_limit_service_error", "RLSE"),
    ("downstream_connection_termination", "DC"),
    ("upstream_retry_limit_exceeded", "URX"),
    ("stream_idle_timeout", "SI"),
    ("invalid_envoy_request_headers", "IH"),
    ("downstream_protocol_error", "DPE"),
    ("upstream_max_stream_duration_reached", "UMSDR"),
    ("response_from_cache_filter", "RFCF"),
    ("no_filter_config_found", "NFCF"),
    ("duration_timeout", "DT"),
    ("upstream_protocol_error", "UPE"),
    ("no_cluster_found", "NC"),
    ("overload_manager", "OM"),
    ("dns_resolution_failure", "DF"),
    ("downstream_remote_reset", "DR"),
)
_FLAG_RANK = {name: (i, short) for i, (name, short) in enumerate(_FLAG_ORDER)}


def response_flags_string(flags: Any) -> str:
    """Envoy's `%RESPONSE_FLAGS%` for an `envoy.data.accesslog.v3.ResponseFlags` message: `-` for none."""
    # ListFields returns only the set fields (almost always none), far cheaper than reading all 28.
    set_fields = flags.ListFields()
    if not set_fields:
        return "-"
    ranked = sorted(_FLAG_RANK[fd.name] for fd, _ in set_fields if fd.name in _FLAG_RANK)
    return ",".join(short for _, short in ranked) or "-"


def http_to_grpc_status(code: int) -> int:
    """Envoy's Grpc::Utility::httpToGrpcStatus, used when a gRPC response carries no grpc-status."""
    if code == 400:
        return 13  # Internal
    if code == 401:
        return 16  # Unauthenticated
    if code == 403:
        return 7  # PermissionDenied
    if code == 404:
        return 12  # Unimplemented
    if code in (429, 502, 503, 504):
        return 14  # Unavailable
    return 2  # Unknown


@dataclass(frozen=True, slots=True)
class HttpSeries:
    """The four cells one resolved HTTP label set updates; kept by the servicer's per-stream cache."""

    requests: CounterCell
    duration: HistogramCell
    request_bytes: HistogramCell
    response_bytes: HistogramCell


@dataclass(frozen=True, slots=True)
class TcpSeries:
    opened: CounterCell
    closed: CounterCell
    sent: CounterCell
    received: CounterCell


class IstioMetrics:
    """The standard metric families on a registry (names and help from istio.io's metrics reference)."""

    def __init__(self, registry: MetricsRegistry, target_labels: bool = True) -> None:
        extra = TARGET_LABELS if target_labels else ()
        self.target_labels = target_labels
        self.http_labels = extra + ISTIO_LABELS
        self.tcp_labels = extra + TCP_LABELS
        r = registry
        self.requests_total: CounterFamily = r.counter(
            "istio_requests_total", "Total number of requests handled by an Istio proxy.", self.http_labels)
        self.request_duration: HistogramFamily = r.histogram(
            "istio_request_duration_milliseconds", "Duration of requests in milliseconds.", self.http_labels)
        self.request_bytes: HistogramFamily = r.histogram(
            "istio_request_bytes", "Size of HTTP requests (bytes on the wire).", self.http_labels)
        self.response_bytes: HistogramFamily = r.histogram(
            "istio_response_bytes", "Size of HTTP responses (bytes on the wire).", self.http_labels)
        self.tcp_opened: CounterFamily = r.counter(
            "istio_tcp_connections_opened_total", "Total number of TCP connections opened.", self.tcp_labels)
        self.tcp_closed: CounterFamily = r.counter(
            "istio_tcp_connections_closed_total", "Total number of TCP connections closed.", self.tcp_labels)
        self.tcp_sent: CounterFamily = r.counter(
            "istio_tcp_sent_bytes_total", "Total bytes sent in response to TCP connections.", self.tcp_labels)
        self.tcp_received: CounterFamily = r.counter(
            "istio_tcp_received_bytes_total", "Total bytes received in requests of TCP connections.",
            self.tcp_labels)

    def http(self, values: tuple[str, ...]) -> HttpSeries:
        return HttpSeries(self.requests_total.labels(values), self.request_duration.labels(values),
                          self.request_bytes.labels(values), self.response_bytes.labels(values))

    def tcp(self, values: tuple[str, ...]) -> TcpSeries:
        return TcpSeries(self.tcp_opened.labels(values), self.tcp_closed.labels(values),
                         self.tcp_sent.labels(values), self.tcp_received.labels(values))
