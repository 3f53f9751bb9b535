"""LDS: listeners (Istio's listener.go / listener_inbound.go / gateway.go, the parts we need).

netns mode (pods in their own network namespaces, with istio-init's capture): sidecars get Istio's
transparent-capture listeners, see `capture`; gateways the listeners below, opened in the host's namespace.

loopback mode: pods have no capture, so every listener binds a real address:
- sidecar `<podIP>_15001`: the outbound HTTP proxy apps reach through `HTTP_PROXY` (absolute URLs
  allowed), routed by the `http_proxy` RDS table;
- sidecar `<podIP>_<port>` per app port: inbound, at the pod IP, forwarding to the app on its app IP
  through `inbound|<port>||` (an HTTP connection manager, or a TCP proxy for ports a Service declares as
  TCP);
- router `0.0.0.0_<port>` per Gateway server port (Istio's name; bound at the proxy's listen address),
  routed by `http.<port>`; TCP and TLS-passthrough servers' listeners come from `gateway_tcp`.
An egress gateway (label `istio: egressgateway`) listens where its Service sends: on the server port's
targetPort, inside its own pod (netns) or at its pod IP (loopback); sidecars reach it like any service.
Called by `sluice.xds.translate.generate`.
"""

from __future__ import annotations

from sluice import mesh

from .capture import capture_listeners
from .clusters import inbound_port_protocol
from .gateway_tcp import gateway_tcp_listeners
from .model import Proxy
from .network_filters import HCM_FILTER, http_connection_manager, tcp_proxy
from .push_context import PushContext
from .routes import HTTP_PROXY_ROUTE, gateway_route_name, gateway_servers, inbound_route_config
from .spec import Obj, is_http_protocol

__all__ = ["build_listeners", "HCM_FILTER"]


def _address(ip: str, port: int, netns: str | None = None) -> Obj:
    socket: Obj = {"address": ip, "port_value": port}
    if netns:
        socket["network_namespace_filepath"] = netns
    return {"socket_address": socket}


def _hcm(push: PushContext, *, stat_prefix: str, rds: str | None = None, route_config: Obj | None = None,
         route_filters: bool = True, absolute_url: bool = False, edge: bool = False) -> Obj:
    return http_connection_manager(push, stat_prefix=stat_prefix, rds=rds, route_config=route_config,
                                   route_filters=route_filters, absolute_url=absolute_url, edge=edge)


def _listener(name: str, ip: str, port: int, direction: str, network_filter: Obj, netns: str | None = None) -> Obj:
    return {"name": name, "address": _address(ip, port, netns), "traffic_direction": direction,
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
            network = tcp_proxy(push, cluster)
        out.append(_listener(f"{proxy.ip}_{port}", proxy.ip, port, "INBOUND", network))
    port = mesh.PROXY_OUTBOUND_PORT
    out.append(_listener(f"{proxy.ip}_{port}", proxy.ip, port, "OUTBOUND",
                         _hcm(push, stat_prefix=f"outbound_0.0.0.0_{port}", rds=HTTP_PROXY_ROUTE, absolute_url=True)))
    return out


EGRESS_GATEWAY_LABEL = ("istio", "egressgateway")


def _in_pod_gateway(proxy: Proxy) -> bool:
    """An egress gateway (`istio: egressgateway`, as Istio installs it) is reached like any pod, through its
    Service: it listens in its own network (netns) or on its pod IP (loopback), not on the host's 127.0.0.1."""
    return proxy.labels.get(EGRESS_GATEWAY_LABEL[0]) == EGRESS_GATEWAY_LABEL[1]


def _gateway_target_port(proxy: Proxy, push: PushContext, port: int) -> int:
    """Istio's gateway listener port: the targetPort of the gateway Service's port numbered as the server."""
    for svc in push.services_selecting(proxy.namespace, proxy.labels):
        for sp in svc.ports:
            if sp.port == port and isinstance(sp.target_port, int):
                return sp.target_port
    return port


def _in_pod_gateway_listeners(proxy: Proxy, push: PushContext) -> list[Obj]:
    ip = "0.0.0.0" if push.options.network == "netns" else proxy.ip
    out = []
    for port in sorted(gateway_servers(proxy, push)):
        target = _gateway_target_port(proxy, push, port)
        out.append(_listener(f"0.0.0.0_{target}", ip, target, "OUTBOUND",
                             _hcm(push, stat_prefix=f"outbound_0.0.0.0_{target}", rds=gateway_route_name(port),
                                  edge=True)))
    return out


def _gateway_listeners(proxy: Proxy, push: PushContext) -> list[Obj]:
    if _in_pod_gateway(proxy):
        return _in_pod_gateway_listeners(proxy, push)
    # netns mode: the gateway's Envoy runs in its pod's namespace, but its listeners must be in the host's,
    # where browsers reach 127.0.0.1; Envoy opens them there (SocketAddress.network_namespace_filepath).
    netns = push.options.host_netns if push.options.network == "netns" else None
    http_ports = sorted(gateway_servers(proxy, push))
    return [_listener(f"0.0.0.0_{port}", proxy.listen_address, port, "OUTBOUND",
                      _hcm(push, stat_prefix=f"outbound_0.0.0.0_{port}", rds=gateway_route_name(port), edge=True),
                      netns)
            for port in http_ports] + gateway_tcp_listeners(
        proxy, push, address=lambda port: _address(proxy.listen_address, port, netns), skip_ports=http_ports)


def build_listeners(proxy: Proxy, push: PushContext) -> list[Obj]:
    if proxy.type == "router":
        return _gateway_listeners(proxy, push)
    if push.options.network == "netns":
        return capture_listeners(proxy, push)
    return _sidecar_listeners(proxy, push)
