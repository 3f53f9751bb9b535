"""LDS: listeners (Istio's listener.go / listener_inbound.go / gateway.go, the parts we need).

netns mode (pods in their own network namespaces, with istio-init's capture): sidecars get Istio's
transparent-capture listeners, see `capture`. An ingress gateway gets each listener twice: Istio's
`0.0.0.0_<targetPort>` in its own pod (pods reach it through its Service's ClusterIP, as on Kubernetes) and
`127.0.0.1_<Service port>` opened in the host's namespace (the load balancer's address, `$INGRESS_HOST`).

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

from collections.abc import Callable, Collection

from sluice import mesh

from . import gateway
from .capture import capture_listeners
from .clusters import inbound_port_protocol
from .gateway_tcp import gateway_tcp_chains, gateway_tcp_listeners
from .model import RESERVED_PORTS, Proxy
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


# Ports the gateway's Envoy holds in its own pod (admin, health, Prometheus): no Gateway listener there.
_OWN_PORTS = frozenset({mesh.PROXY_ADMIN_PORT, *RESERVED_PORTS})


def _gateway_target_port(proxy: Proxy, push: PushContext, port: int) -> int:
    """Istio's gateway listener port: the targetPort of the gateway Service's port numbered as the server."""
    for svc in push.services_selecting(proxy.namespace, proxy.labels):
        for sp in svc.ports:
            if sp.port == port and isinstance(sp.target_port, int):
                return sp.target_port
    return port


def _gateway_listener_set(proxy: Proxy, push: PushContext, *, name: Callable[[int], str],
                          address: Callable[[int], Obj], bind: Callable[[int], int],
                          skip: Collection[int] = ()) -> list[Obj]:
    """One listener per port the proxy's Gateway servers land on (`gateway.gateway_host_port`), its filter
    chains from each protocol's builder (HTTP and HTTPS: `gateway.filter_chains`; TCP and TLS passthrough:
    `gateway_tcp`). `bind(host port)`: the port it binds; `name`/`address` of that port; `skip`: bound ports
    left out (the proxy's own)."""

    def host_port(number: int) -> int:
        return gateway.gateway_host_port(proxy, push, number)

    tcp = gateway_tcp_chains(proxy, push)
    out = []
    served: set[int] = set()
    bound: set[int] = set(skip)  # two Service ports with one targetPort: one listener, the first port's
    for port, servers in sorted(gateway.gateway_servers(proxy, push).items()):
        listen = bind(port)
        if listen in bound:
            continue
        chains = gateway.filter_chains(proxy, push, port, servers, listen)
        if not chains:
            continue  # e.g. an HTTPS server whose credential is missing: nothing to serve on the port
        bound.add(listen)
        listener_name = name(listen)
        for number, (kind, more) in tcp.items():
            if host_port(number) == port:
                served.add(number)
                if kind == "passthrough":  # a bare TCP server cannot share a port with HTTP: HTTP wins
                    chains += [c.build(f"{listener_name}|{c.server_names[0]}") for c in more]
        listener: Obj = {"name": listener_name, "address": address(listen),
                         "traffic_direction": "OUTBOUND", "filter_chains": chains}
        if any("filter_chain_match" in c for c in chains):
            listener["listener_filters"] = [gateway.TLS_INSPECTOR]  # SNI and transport protocol matches
        out.append(listener)
    tcp_ports = {n for n in tcp if n not in served and bind(host_port(n)) in bound}
    return out + gateway_tcp_listeners(proxy, push, address=address, skip_ports=served | tcp_ports,
                                       listen_port=lambda number: bind(host_port(number)), name=name)


def _gateway_listeners(proxy: Proxy, push: PushContext) -> list[Obj]:
    """A gateway's listeners: in its pod at the targetPorts of its Service (as on Kubernetes, where pods
    reach it through the Service's ClusterIP), and for an ingress gateway also on the host's 127.0.0.1 at
    the Service's ports (the load balancer's address, where the docs' `$INGRESS_HOST` points).

    loopback mode: an ingress gateway on 127.0.0.1 at the host ports (named `0.0.0.0_<port>`) and at its pod IP
    at the targetPorts (`<pod IP>_<port>`), an egress gateway at its pod IP only. netns mode: the pod set is
    named as Istio names it (`0.0.0.0_8080`, 0.0.0.0 in the pod's namespace, without the proxy's own ports); the
    host set `127.0.0.1_<port>` is opened in the host's namespace (SocketAddress.network_namespace_filepath) by
    the same Envoy."""
    netns = push.options.network == "netns"

    def pod_port(host_port: int) -> int:
        return _gateway_target_port(proxy, push, host_port)

    def istio_name(port: int) -> str:
        return f"0.0.0.0_{port}"

    if _in_pod_gateway(proxy):
        ip = "0.0.0.0" if netns else proxy.ip
        return _gateway_listener_set(proxy, push, name=istio_name, address=lambda port: _address(ip, port),
                                     bind=pod_port, skip=_OWN_PORTS if netns else ())
    host = proxy.listen_address
    if not netns:
        # 127.0.0.1 at the Service's ports (the load balancer's address), and the pod's own IP at its targetPorts,
        # where the Service's endpoints send a client in the mesh (`curl istio-ingressgateway.istio-system`)
        return (_gateway_listener_set(proxy, push, name=istio_name, address=lambda port: _address(host, port),
                                      bind=lambda port: port)
                + _gateway_listener_set(proxy, push, name=lambda port: f"{proxy.ip}_{port}",
                                        address=lambda port: _address(proxy.ip, port), bind=pod_port,
                                        skip=_OWN_PORTS))
    pod = _gateway_listener_set(proxy, push, name=istio_name, address=lambda port: _address("0.0.0.0", port),
                                bind=pod_port, skip=_OWN_PORTS)
    host_netns = push.options.host_netns
    if host_netns is None:  # nowhere else to listen (a config without the host's namespace: tests)
        return pod
    return pod + _gateway_listener_set(proxy, push, name=lambda port: f"{host}_{port}",
                                       address=lambda port: _address(host, port, host_netns),
                                       bind=lambda port: port)


def build_listeners(proxy: Proxy, push: PushContext) -> list[Obj]:
    if proxy.type == "router":
        return _gateway_listeners(proxy, push)
    if push.options.network == "netns":
        return capture_listeners(proxy, push)
    return _sidecar_listeners(proxy, push)
