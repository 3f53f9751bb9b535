"""A bare Envoy pair for the mesh bench: the same Envoy binary and command line as Sluice's sidecars, with a
minimal static config, optionally plus one of the things a Sluice sidecar adds.

client → client-side Envoy (an HTTP proxy, like a sidecar's 15001) → server-side Envoy → app. Bare: one
HCM with only the router, one STATIC cluster per side, no access log, no stats sinks, no admin. Each
feature adds what Sluice's translation puts there (taken from the translation itself where it is a
function, so the two cannot drift apart):

- `file_log`: Istio's TEXT access log on both HCMs, to the proxy's stdout (a file here, the shim's pipe in a
  pod);
- `als`: gRPC ALS on both HCMs to the daemon's collector, over mutual TLS with the real pods' certificates and
  node identities (so the collector does its usual work for them);
- `als16k`, `als256k`, `als1m`: `als` with another ALS buffer size (Envoy's default 16 KiB, 256 KiB, 1 MiB;
  Sluice's is `ALS_BUFFER_BYTES`), and `als_noextra`: `als` without the additional headers and trailers Sluice
  logs for gRPC requests: what tuning the ALS config could win;
- `filters`: the CORS and fault filters ahead of the router on the outbound HCM;
- `retries`: Istio's default retry policy (outbound) and `reset-before-request` (inbound), with the attempt
  count header;
- `cluster`: Istio's cluster settings (LEAST_REQUEST, unlimited circuit breakers with `track_remaining`);
- `routes`: a route table of 200 virtual hosts (a mesh that size) in front of the one that matches;
- `otel`: in place of ALS, Envoy's OpenTelemetry access logger (`envoy.access_loggers.open_telemetry`) with
  only the fields the collector reads from an ALS entry as attributes, to a sink that answers every export
  and does nothing else (`otel_sink`): whether another logger carries the same facts for less;
- `istio_stats`: Istio's stats inclusion list (`sluice.resources.proxyconfig.stats_matcher`), under which the
  clusters', listeners' and HCMs' per-request counters and histograms are never created.

Every variant runs with Sluice's own Envoy command line (`sluice.xds.envoy.envoy_command`: the same flags, file
flush interval included). Pure functions build the configs; `BarePair` runs the two processes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sluice.meshconfig import MeshConfig
from sluice.resources.proxyconfig import stats_matcher
from sluice.xds.envoy import envoy_command
from sluice.xds.identity import upstream_tls
from sluice.xds.translate.accesslog import access_logs
from sluice.xds.translate.clusters import ALS_CLUSTER
from sluice.xds.translate.model import MeshOptions
from sluice.xds.translate.network_filters import http_connection_manager

__all__ = ["FEATURES", "H2_OPTIONS", "OTEL_SERVICE", "SLUICE_FEATURES", "AlsTarget", "BarePair", "pair_configs"]

SLUICE_FEATURES = ("file_log", "als", "filters", "retries", "cluster", "routes", "istio_stats")  # a sidecar's
FEATURES = (*SLUICE_FEATURES, "als16k", "als256k", "als1m", "als_noextra", "stats_log", "otel")
_ALS_BUFFERS = {"als16k": 16 * 1024, "als256k": 256 * 1024, "als1m": 1024 * 1024}
OUTBOUND_CLUSTER = "outbound|8000||server.bench.svc.cluster.local"  # Sluice's names: the collector keys on them
INBOUND_CLUSTER = "inbound|8000||"
_HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
_ROUTER = {"name": "envoy.filters.http.router",
           "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}
_UNLIMITED = 4294967295
H2_OPTIONS = {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {  # a gRPC cluster's
    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
    "explicit_http_config": {"http2_protocol_options": {}}}}


@dataclass(frozen=True)
class AlsTarget:
    """Where the daemon's ALS listens and, per side, the pod bootstrap whose node and certificates to use."""

    address: tuple[str, int]
    client_bootstrap: dict[str, Any]
    server_bootstrap: dict[str, Any]


def _socket(ip: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": ip, "port_value": port}}


def _cluster(name: str, ip: str, port: int, features: frozenset[str]) -> dict[str, Any]:
    c: dict[str, Any] = {"name": name, "type": "STATIC", "connect_timeout": "10s",
                         "load_assignment": {"cluster_name": name,
                                             "endpoints": [{"lb_endpoints": [{"endpoint": {"address":
                                                                                           _socket(ip, port)}}]}]}}
    if "cluster" in features:
        c["lb_policy"] = "LEAST_REQUEST"
        c["circuit_breakers"] = {"thresholds": [{"max_connections": _UNLIMITED, "max_pending_requests": _UNLIMITED,
                                                 "max_requests": _UNLIMITED, "max_retries": _UNLIMITED,
                                                 "track_remaining": True}]}
    return c


def _route(cluster: str, outbound: bool, features: frozenset[str]) -> dict[str, Any]:
    action: dict[str, Any] = {"cluster": cluster, "timeout": "0s"}
    if "retries" in features:
        action["retry_policy"] = ({"retry_on": "connect-failure,refused-stream,unavailable,cancelled,"
                                               "retriable-status-codes", "num_retries": 2,
                                   "retry_host_predicate": [{"name": "envoy.retry_host_predicates.previous_hosts",
                                                             "typed_config": {"@type": "type.googleapis.com/envoy."
                                                                              "extensions.retry.host.previous_hosts."
                                                                              "v3.PreviousHostsPredicate"}}],
                                   "host_selection_retry_max_attempts": "5", "retriable_status_codes": [503]}
                                  if outbound else {"retry_on": "reset-before-request", "num_retries": 2})
    return {"match": {"prefix": "/"}, "route": action, "name": "default"}


def _route_config(name: str, cluster: str, outbound: bool, features: frozenset[str]) -> dict[str, Any]:
    vhost: dict[str, Any] = {"name": "server", "domains": ["*"], "routes": [_route(cluster, outbound, features)]}
    vhosts = [vhost]
    if outbound and "routes" in features:
        # Sluice's http_proxy table lists every service by its names; the request's host matches the last one
        vhost["domains"] = ["server", "server:8000", "server.bench", "server.bench.svc.cluster.local"]
        vhosts = [{"name": f"svc{i}.bench.svc.cluster.local:8000",
                   "domains": [f"svc{i}", f"svc{i}:8000", f"svc{i}.bench", f"svc{i}.bench.svc.cluster.local"],
                   "routes": [_route(cluster, outbound, features)]} for i in range(200)] + [vhost]
    if outbound and "retries" in features:
        for v in vhosts:
            v["include_request_attempt_count"] = True
    return {"name": name, "virtual_hosts": vhosts, "validate_clusters": False}


class _Options:
    """The few attributes of a PushContext that `http_connection_manager` reads."""

    def __init__(self, options: MeshOptions) -> None:
        self.options = options
        self.mesh_config = MeshConfig()  # Sluice's default: Istio's TEXT log to /dev/stdout


def _hcm(stat_prefix: str, route_config: dict[str, Any], outbound: bool, features: frozenset[str],
         als: bool) -> dict[str, Any]:
    if als or {"file_log", "filters"} & features:
        # Sluice's own HCM, then the parts this variant does not have taken out again
        options = MeshOptions(als_address=("127.0.0.1", 1) if als else None)
        hcm: dict[str, Any] = http_connection_manager(
            _Options(options),  # type: ignore[arg-type]
            stat_prefix=stat_prefix, route_config=route_config, route_filters=outbound and "filters" in features,
            absolute_url=outbound)["typed_config"]
        hcm = json.loads(json.dumps(hcm))
        logs = access_logs(options, MeshConfig())
        hcm["access_log"] = [entry for entry in logs
                             if ("file_log" in features and entry["name"].endswith(".file"))
                             or (als and entry["name"].endswith("_grpc"))]
        if not hcm["access_log"]:
            del hcm["access_log"]
        del hcm["upgrade_configs"]
        return {"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}
    body: dict[str, Any] = {"@type": _HCM, "stat_prefix": stat_prefix, "route_config": route_config,
                            "http_filters": [_ROUTER]}
    if outbound:
        body["http_protocol_options"] = {"allow_absolute_url": True}
    return {"name": "envoy.filters.network.http_connection_manager", "typed_config": body}


# Istio's standard metrics counted inside Envoy, as Istio's stats filter does, by Envoy's own stats access logger
# (envoy.access_loggers.stats): one counter and three histograms per request, tagged with what the collector
# needs to name both peers (the other side's address, the upstream cluster) and the response. A candidate to
# replace ALS as the metrics' source; this variant measures what it costs the proxies.
_STATS_TAGS = [{"name": n, "value_format": f} for n, f in (
    ("response_code", "%RESPONSE_CODE%"), ("response_flags", "%RESPONSE_FLAGS%"), ("protocol", "%PROTOCOL%"),
    ("peer", "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"), ("upstream_cluster", "%UPSTREAM_CLUSTER%"),
    ("grpc_status", "%GRPC_STATUS(NUMBER)%"))]
_STATS_LOGGER: dict[str, Any] = {
    "name": "envoy.access_loggers.stats",
    "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.access_loggers.stats.v3.Config", "stat_prefix": "istio",
        "counters": [{"stat": {"name": "requests_total", "tags": _STATS_TAGS}, "value_fixed": 1}],
        "histograms": [{"stat": {"name": name, "tags": _STATS_TAGS}, "unit": unit, "value_format": value}
                       for name, unit, value in (("request_duration_milliseconds", "Milliseconds", "%DURATION%"),
                                                 ("request_bytes", "Bytes", "%BYTES_RECEIVED%"),
                                                 ("response_bytes", "Bytes", "%BYTES_SENT%"))]}}


# What the collector reads from an ALS entry (`sluice.telemetry.als`), as OpenTelemetry log attributes.
_OTEL_ATTRIBUTES = (
    ("upstream_cluster", "%UPSTREAM_CLUSTER%"), ("route_name", "%ROUTE_NAME%"),
    ("response_flags", "%RESPONSE_FLAGS%"), ("response_code", "%RESPONSE_CODE%"),
    ("downstream_local", "%DOWNSTREAM_LOCAL_ADDRESS%"), ("downstream_peer", "%DOWNSTREAM_REMOTE_ADDRESS%"),
    ("upstream_host", "%UPSTREAM_HOST%"), ("request_id", "%REQ(X-REQUEST-ID)%"), ("authority", "%REQ(:AUTHORITY)%"),
    ("content_type", "%REQ(CONTENT-TYPE)%"), ("grpc_status", "%GRPC_STATUS(NUMBER)%"),
    ("duration", "%DURATION%"), ("bytes_received", "%BYTES_RECEIVED%"), ("bytes_sent", "%BYTES_SENT%"))
OTEL_CLUSTER = "otel_sink"
OTEL_SERVICE = "opentelemetry.proto.collector.logs.v1.LogsService"


def _otel_logger() -> dict[str, Any]:
    return {"name": "envoy.access_loggers.open_telemetry", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.access_loggers.open_telemetry.v3.OpenTelemetryAccessLogConfig",
        "common_config": {"log_name": "otel", "transport_api_version": "V3", "buffer_size_bytes": 65536,
                          "buffer_flush_interval": "1s",
                          "grpc_service": {"envoy_grpc": {"cluster_name": OTEL_CLUSTER}}},
        "disable_builtin_labels": True,
        "attributes": {"values": [{"key": k, "value": {"string_value": v}} for k, v in _OTEL_ATTRIBUTES]}}}


def _side(*, listen: tuple[str, int], upstream: tuple[str, int], outbound: bool, features: frozenset[str],
          als: AlsTarget | None, pod_bootstrap: dict[str, Any] | None,
          otel_sink: tuple[str, int] | None = None) -> dict[str, Any]:
    cluster = OUTBOUND_CLUSTER if outbound else INBOUND_CLUSTER
    name = "http_proxy" if outbound else INBOUND_CLUSTER
    prefix = "outbound_0.0.0.0_15001" if outbound else "inbound_0.0.0.0_8000"
    use_als = any(f.startswith("als") for f in features) and als is not None
    hcm = _hcm(prefix, _route_config(name, cluster, outbound, features), outbound, features, use_als)
    if use_als:
        logger = hcm["typed_config"]["access_log"][-1]["typed_config"]
        # the ALS cluster name is what the access logger config points at
        logger["common_config"]["grpc_service"]["envoy_grpc"]["cluster_name"] = ALS_CLUSTER
        for f in features & _ALS_BUFFERS.keys():
            logger["common_config"]["buffer_size_bytes"] = _ALS_BUFFERS[f]
        if "als_noextra" in features:
            for key in [k for k in logger if k.startswith("additional_")]:
                del logger[key]
    if "stats_log" in features:
        hcm["typed_config"].setdefault("access_log", []).append(_STATS_LOGGER)
    if "otel" in features:
        hcm["typed_config"].setdefault("access_log", []).append(_otel_logger())
    listener = {"name": f"{listen[0]}_{listen[1]}", "address": _socket(*listen),
                "filter_chains": [{"filters": [hcm]}]}
    clusters = [_cluster(cluster, upstream[0], upstream[1], features)]
    boot: dict[str, Any] = {"node": {"id": f"bare-{'client' if outbound else 'server'}", "cluster": "bare"},
                            "static_resources": {"listeners": [listener], "clusters": clusters}}
    if "istio_stats" in features:
        boot["stats_config"] = {"use_all_default_tags": True, "stats_matcher": stats_matcher({}, [listen[0]])}
    if use_als and als is not None and pod_bootstrap is not None:
        boot["node"] = pod_bootstrap["node"]
        als_cluster = _cluster(ALS_CLUSTER, als.address[0], als.address[1], frozenset())
        als_cluster["typed_extension_protocol_options"] = H2_OPTIONS
        als_cluster["transport_socket"] = upstream_tls()
        clusters.append(als_cluster)
        boot["static_resources"]["secrets"] = pod_bootstrap["static_resources"]["secrets"]
    if "otel" in features and otel_sink is not None:
        sink = _cluster(OTEL_CLUSTER, otel_sink[0], otel_sink[1], frozenset())
        sink["typed_extension_protocol_options"] = H2_OPTIONS
        clusters.append(sink)
    return boot


def pair_configs(*, client_listen: tuple[str, int], server_listen: tuple[str, int], app: tuple[str, int],
                 features: frozenset[str] = frozenset(), als: AlsTarget | None = None,
                 otel_sink: tuple[str, int] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(client-side, server-side) Envoy bootstraps of a bare pair plus `features` (names in FEATURES)."""
    unknown = features - set(FEATURES)
    if unknown:
        raise ValueError(f"unknown feature(s) {sorted(unknown)}; known: {', '.join(FEATURES)}")
    if any(f.startswith("als") for f in features) and als is None:
        raise ValueError("the als feature needs an AlsTarget (the daemon's ALS address and pod bootstraps)")
    if "otel" in features and otel_sink is None:
        raise ValueError("the otel feature needs otel_sink, the address of an OpenTelemetry logs sink")
    client = _side(listen=client_listen, upstream=server_listen, outbound=True, features=features, als=als,
                   pod_bootstrap=als.client_bootstrap if als else None, otel_sink=otel_sink)
    server = _side(listen=server_listen, upstream=app, outbound=False, features=features, als=als,
                   pod_bootstrap=als.server_bootstrap if als else None, otel_sink=otel_sink)
    return client, server


@dataclass
class BarePair:
    """The two Envoy processes of one variant, started with Sluice's own Envoy command line."""

    name: str
    directory: Path
    configs: tuple[dict[str, Any], dict[str, Any]]
    concurrency: int = 1
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        for side, cfg in zip(("client", "server"), self.configs, strict=True):
            path = self.directory / f"{side}.json"
            path.write_text(json.dumps(cfg, indent=1))
            with open(self.directory / f"{side}.log", "wb") as out:
                argv = envoy_command(path, concurrency=self.concurrency, log_level="warning")
                self.procs.append(subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                                   start_new_session=True))

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs)

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs.clear()
