"""LDS: listeners (Istio's listener.go / listener_inbound.go / gateway.go, the parts we need).

Pods have no iptables capture here, so every listener binds a real address:
- sidecar `<podIP>_15001`: the outbound HTTP proxy apps reach through `HTTP_PROXY` (absolute URLs
  allowed), routed by the `http_proxy` RDS table;
- sidecar `<podIP>_<port>` per app port: inbound, at the pod IP, forwarding to the app on its app IP
  through `inbound|<port>||` (an HTTP connection manager, or a TCP proxy for ports a Service declares as
  TCP);
- router `0.0.0.0_<port>` per Gateway server port (Istio's name; bound at the proxy's listen address),
  routed by `http.<port>`.
Called by `sluice.xds.translate.generate`.
"""

from __future__ import annotations

from sluice import mesh

from .accesslog import access_logs, tcp_access_logs
from .clusters import inbound_port_protocol
from .httproute import CORS_FILTER, FAULT_FILTER
from .model import Proxy
from .protos import typed
from .push_context import PushContext
from .routes import HTTP_PROXY_ROUTE, gateway_route_name, gateway_servers, inbound_route_config
from .spec import Obj, is_http_protocol

__all__ = ["build_listeners", "HCM_FILTER"]

HCM_FILTER = "envoy.filters.network.http_connection_manager"
_HCM_TYPE = "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
_ROUTER = {"name": "envoy.filters.http.router", "typed_config": typed("envoy.extensions.filters.http.router.v3.Router")}
# Fault and CORS act only where a route carries their per-route config; they must precede the router.
_ROUTE_FILTERS = [
    {"name": CORS_FILTER, "typed_config": typed("envoy.extensions.filters.http.cors.v3.Cors")},
    {"name": FAULT_FILTER, "typed_config": typed("envoy.extensions.filters.http.fault.v3.HTTPFault")},
]


def _address(ip: str, port: int) -> Obj:
    return {"socket_address": {"address": ip, "port_value": port}}


def _hcm(push: PushContext, *, stat_prefix: str, rds: str | None = None, route_config: Obj | None = None,
         route_filters: bool = True, absolute_url: bool = False, edge: bool = False) -> Obj:
    body: Obj = {"stat_prefix": stat_prefix}
    if rds is not None:
        body["rds"] = {"route_config_name": rds, "config_source": {"ads": {}, "resource_api_version": "V3"}}
    else:
        body["route_config"] = route_config
    body["http_filters"] = ([*_ROUTE_FILTERS] if route_filters else []) + [_ROUTER]
    body["access_log"] = access_logs(push.options)
    body["upgrade_configs"] = [{"upgrade_type": "websocket"}]
    if absolute_url:
        body["http_protocol_options"] = {"allow_absolute_url": True}
    if edge:
        # a gateway is where traffic enters: trust the peer address, not its X-Forwarded-For
        body["use_remote_address"] = True
    return {"name": HCM_FILTER, "typed_config": typed(_HCM_TYPE, body)}


def _listener(name: str, ip: str, port: int, direction: str, network_filter: Obj) -> Obj:
    return {"name": name, "address": _address(ip, port), "traffic_direction": direction,
            "filter_chains": [{"filters": [network_filter]}]}


def _sidecar_listeners(proxy: Proxy, push: PushContext) -> list[Obj]:
    out = []
    for port in proxy.app_ports:
        if port == mesh.PROXY_OUTBOUND_PORT or port == mesh.PROXY_ADMIN_PORT:
            continue  # the proxy's own ports on the pod IP
        cluster = mesh.inbound_cluster(port)
        if is_http_protocol(inbound_port_protocol(push, proxy, port)):
            network = _hcm(push, stat_prefix=f"inbound_0.0.0.0_{port}", route_config=inbound_route_config(port),
                           route_filters=False)
        else:
            tcp: Obj = {"stat_prefix": cluster, "cluster": cluster}
            logs = tcp_access_logs(push.options)
            if logs:
                # istio_tcp_* metrics: connections count as opened when they open, not when they close.
                tcp["access_log"] = logs
                tcp["access_log_options"] = {"flush_access_log_on_connected": True}
            network = {"name": "envoy.filters.network.tcp_proxy", "typed_config": typed(
                "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy", tcp)}
        out.append(_listener(f"{proxy.ip}_{port}", proxy.ip, port, "INBOUND", network))
    port = mesh.PROXY_OUTBOUND_PORT
    out.append(_listener(f"{proxy.ip}_{port}", proxy.ip, port, "OUTBOUND",
                         _hcm(push, stat_prefix=f"outbound_0.0.0.0_{port}", rds=HTTP_PROXY_ROUTE, absolute_url=True)))
    return out


def _gateway_listeners(proxy: Proxy, push: PushContext) -> list[Obj]:
    return [_listener(f"0.0.0.0_{port}", proxy.listen_address, port, "OUTBOUND",
                      _hcm(push, stat_prefix=f"outbound_0.0.0.0_{port}", rds=gateway_route_name(port), edge=True))
            for port in sorted(gateway_servers(proxy, push))]


def build_listeners(proxy: Proxy, push: PushContext) -> list[Obj]:
    if proxy.type == "router":
        return _gateway_listeners(proxy, push)
    return _sidecar_listeners(proxy, push)
