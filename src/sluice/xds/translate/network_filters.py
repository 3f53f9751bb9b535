"""The two network filters every listener ends in: the HTTP connection manager and the TCP proxy.

Both carry Istio's access logs, so telemetry sees every request and connection, whichever side reports
it. HCM: route filters (CORS, fault) ahead of the router, websocket upgrades. Called by `listeners` and
`capture`.
"""

from __future__ import annotations

from .accesslog import access_logs, tcp_access_logs
from .httproute import CORS_FILTER, FAULT_FILTER
from .protos import typed
from .push_context import PushContext
from .spec import Obj

__all__ = ["HCM_FILTER", "TCP_PROXY_FILTER", "http_connection_manager", "tcp_proxy"]

HCM_FILTER = "envoy.filters.network.http_connection_manager"
TCP_PROXY_FILTER = "envoy.filters.network.tcp_proxy"
_TCP_PROXY_TYPE = "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
_HCM_TYPE = "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
_ROUTER = {"name": "envoy.filters.http.router", "typed_config": typed("envoy.extensions.filters.http.router.v3.Router")}
# Fault and CORS act only where a route carries their per-route config; they must precede the router.
_ROUTE_FILTERS = [
    {"name": CORS_FILTER, "typed_config": typed("envoy.extensions.filters.http.cors.v3.Cors")},
    {"name": FAULT_FILTER, "typed_config": typed("envoy.extensions.filters.http.fault.v3.HTTPFault")},
]


def http_connection_manager(push: PushContext, *, stat_prefix: str, rds: str | None = None,
                            route_config: Obj | None = None, route_filters: bool = True,
                            absolute_url: bool = False, edge: bool = False, server_name: str = "") -> Obj:
    body: Obj = {"stat_prefix": stat_prefix}
    if rds is not None:
        body["rds"] = {"route_config_name": rds, "config_source": {"ads": {}, "resource_api_version": "V3"}}
    else:
        body["route_config"] = route_config
    body["http_filters"] = ([*_ROUTE_FILTERS] if route_filters else []) + [_ROUTER]
    if logs := access_logs(push.options, push.mesh_config):
        body["access_log"] = logs
    body["upgrade_configs"] = [{"upgrade_type": "websocket"}]
    if absolute_url:
        body["http_protocol_options"] = {"allow_absolute_url": True}
    if edge:
        # a gateway is where traffic enters: trust the peer address, not its X-Forwarded-For
        body["use_remote_address"] = True
    if server_name:
        body["server_name"] = server_name
    return {"name": HCM_FILTER, "typed_config": typed(_HCM_TYPE, body)}


def tcp_proxy(push: PushContext, cluster: str, *, logs: bool = True,
              weighted: list[tuple[str, int]] | None = None, stat_prefix: str | None = None) -> Obj:
    """A TCP proxy to `cluster`, or split between `weighted` (cluster, weight) pairs (`cluster` names its
    stats unless `stat_prefix` does). Istio's TEXT access log line when a connection ends; with `logs`, also
    ALS entries that feed the istio_tcp_* metrics, flushed when the connection opens so it counts as opened
    then, not when it closes."""
    body: Obj = {"stat_prefix": stat_prefix or cluster}
    if weighted and len(weighted) > 1:
        body["weighted_clusters"] = {"clusters": [{"name": c, "weight": w} for c, w in weighted]}
    else:
        body["cluster"] = weighted[0][0] if weighted else cluster
    body["access_log"] = tcp_access_logs(push.options, push.mesh_config, als=logs)
    if any(a["name"] == "envoy.access_loggers.tcp_grpc" for a in body["access_log"]):
        # ALS: the connection counts as opened when it opens
        body["access_log_options"] = {"flush_access_log_on_connected": True}
    if not body["access_log"]:
        del body["access_log"]
    return {"name": TCP_PROXY_FILTER, "typed_config": typed(_TCP_PROXY_TYPE, body)}
