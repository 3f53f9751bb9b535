"""LDS: listeners (Istio's listener.go / listener_inbound.go / gateway.go, the parts we need).

netns mode (pods in their own network namespaces, with istio-init's capture): sidecars get Istio's
transparent-capture listeners, see `capture`; gateways the listeners below, opened in the host's namespace.

loopback mode: pods have no capture, so every listener binds a real address:
- sidecar `<podIP>_15001`: the outbound HTTP proxy apps reach through `HTTP_PROXY` (absolute URLs
  allowed), routed by the `http_proxy` RDS table;
- sidecar `<podIP>_<port>` per app port: inbound, at the pod IP, forwarding to the app on its app IP
  through `inbound|<port>||` (an HTTP connection manager, or a TCP proxy for ports a Service declares as
  TCP);
- router `0.0.0.0_<port>` per host port its Gateway servers are served at (Istio's name; bound at the proxy's
  listen address, 127.0.0.1), see `gateway`.
  TCP and TLS-passthrough servers' chains come from `gateway_tcp` (a passthrough port shared with HTTPS
  servers joins their listener).
An egress gateway (label `istio: egressgateway`) listens where its Service sends: on the targetPort of the
Service port a server lands on, inside its own pod (netns) or at its pod IP (loopback); sidecars reach it like
any service.
Called by `sluice.xds.translate.generate`.
"""

from __future__ import annotations

from sluice import mesh

from . import gateway
from .capture import capture_listeners
from .clusters import inbound_port_protocol
from .gateway_tcp import gateway_tcp_chains, gateway_tcp_listeners
from .model import Proxy
from .network_filters import HCM_FILTER, http_connection_manager, tcp_proxy
from .push_context import PushContext
from .routes import HTTP_PROXY_ROUTE, inbound_route_config
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


def _gateway_listeners(proxy: Proxy, push: PushContext) -> list[Obj]:
    """One listener per host port the proxy's Gateway servers land on (`gateway.gateway_host_port`), its
    filter chains from each protocol's builder (HTTP and HTTPS: `gateway.filter_chains`; TCP and TLS
    passthrough: `gateway_tcp`)."""
    in_pod = _in_pod_gateway(proxy)
    # netns mode: an ingress gateway's Envoy runs in its pod's namespace, but its listeners must be in the
    # host's, where browsers reach 127.0.0.1; Envoy opens them there (SocketAddress.network_namespace_filepath).
    netns = push.options.host_netns if push.options.network == "netns" and not in_pod else None
    ip = ("0.0.0.0" if push.options.network == "netns" else proxy.ip) if in_pod else proxy.listen_address

    def bind(host_port: int) -> int:
        return _gateway_target_port(proxy, push, host_port) if in_pod else host_port

    def host_port(number: int) -> int:
        return gateway.gateway_host_port(proxy, push, number)

    tcp = gateway_tcp_chains(proxy, push)
    out = []
    served: set[int] = set()
    for port, servers in sorted(gateway.gateway_servers(proxy, push).items()):
        chains = gateway.filter_chains(proxy, push, port, servers, bind(port))
        if not chains:
            continue  # e.g. an HTTPS server whose credential is missing: nothing to serve on the port
        name = f"0.0.0.0_{bind(port)}"
        for number, (kind, more) in tcp.items():
            if host_port(number) == port:
                served.add(number)
                if kind == "passthrough":  # a bare TCP server cannot share a port with HTTP: HTTP wins
                    chains += [c.build(f"{name}|{c.server_names[0]}") for c in more]
        listener: Obj = {"name": name, "address": _address(ip, bind(port), netns),
                         "traffic_direction": "OUTBOUND", "filter_chains": chains}
        if any("filter_chain_match" in c for c in chains):
            listener["listener_filters"] = [gateway.TLS_INSPECTOR]  # SNI and transport protocol matches
        out.append(listener)
    return out + gateway_tcp_listeners(proxy, push, address=lambda port: _address(ip, port, netns),
                                       skip_ports=served, listen_port=lambda number: bind(host_port(number)))


def build_listeners(proxy: Proxy, push: PushContext) -> list[Obj]:
    if proxy.type == "router":
        return _gateway_listeners(proxy, push)
    if push.options.network == "netns":
        return capture_listeners(proxy, push)
    return _sidecar_listeners(proxy, push)
