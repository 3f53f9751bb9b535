"""A small stand-in for the translation: enough Envoy config from Services, Endpoints and VirtualServices
to exercise the xDS server against a real Envoy (valid and deliberately invalid resources alike).

Per proxy: one EDS cluster per Service port, its endpoints, an HTTP-proxy listener on <pod IP>:15001 using
RDS `http_proxy`, and a route configuration with one virtual host per Service plus a `direct` host that
answers by itself (to check that Envoy keeps serving). A VirtualService whose first rule has a
`uri.regex` puts that regex into the route match verbatim: "((" makes Envoy NACK.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2  # noqa: F401 - registers the type for ParseDict
from envoy.extensions.filters.network.http_connection_manager.v3 import (  # noqa: F401
    http_connection_manager_pb2,
)
from google.protobuf import json_format

from sluice import mesh
from sluice.xds.cache import CLUSTER, ENDPOINT, LISTENER, ROUTE, Resources

HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"


@dataclass(frozen=True)
class StubProxy:
    id: str
    ip: str
    pod: str
    namespace: str


@dataclass(frozen=True)
class StubPush:
    version: str
    services: list[dict[str, Any]]
    endpoints: dict[tuple[str, str], dict[str, Any]]
    virtual_services: list[dict[str, Any]]


def _ns_name(obj: dict[str, Any]) -> tuple[str, str]:
    m = obj.get("metadata") or {}
    return str(m.get("namespace") or ""), str(m.get("name") or "")


class StubGenerator:
    def __init__(self) -> None:
        self.generated = 0  # how many times generate() ran (tests)

    def push_context(self, objects: list[dict[str, Any]], version: str) -> StubPush:
        by_kind: dict[str, list[dict[str, Any]]] = {}
        for o in objects:
            by_kind.setdefault(str(o.get("kind")), []).append(o)
        return StubPush(version, by_kind.get("Service", []),
                        {_ns_name(e): e for e in by_kind.get("Endpoints", [])},
                        by_kind.get("VirtualService", []))

    def proxy(self, pod: dict[str, Any]) -> StubProxy | None:
        ip = (pod.get("status") or {}).get("podIP")
        if not ip:
            return None
        ns, name = _ns_name(pod)
        return StubProxy(mesh.sidecar_node_id(ip, name, ns), ip, name, ns)

    def generate(self, proxy: StubProxy, push: StubPush) -> Resources:
        self.generated += 1
        clusters: dict[str, Any] = {}
        cla: dict[str, Any] = {}
        vhosts: list[dict[str, Any]] = []
        regex = {_ns_name(vs)[1]: vs["spec"]["http"][0]["match"][0]["uri"]["regex"]
                 for vs in push.virtual_services
                 if "regex" in (((vs.get("spec") or {}).get("http") or [{}])[0].get("match") or [{}])[0].get("uri", {})}
        for svc in push.services:
            ns, name = _ns_name(svc)
            host = mesh.fqdn(name, ns)
            ep = push.endpoints.get((ns, name)) or {}
            for port in svc["spec"]["ports"]:
                cname = mesh.outbound_cluster(int(port["port"]), "", host)
                clusters[cname] = json_format.ParseDict({
                    "name": cname, "type": "EDS", "connect_timeout": "1s",
                    "eds_cluster_config": {"service_name": cname, "eds_config": {"ads": {}, "resource_api_version": "V3"}},
                }, cluster_pb2.Cluster())
                lb = [{"endpoint": {"address": {"socket_address": {"address": a["ip"], "port_value": int(p["port"])}}}}
                      for s in ep.get("subsets") or [] for a in s.get("addresses") or [] for p in s.get("ports") or []]
                cla[cname] = json_format.ParseDict({"cluster_name": cname, "endpoints": [{"lb_endpoints": lb}]},
                                                   endpoint_pb2.ClusterLoadAssignment())
                match = {"safe_regex": {"regex": regex[name]}} if name in regex else {"prefix": "/"}
                vhosts.append({"name": f"{host}:{port['port']}",
                               "domains": [name, f"{name}:{port['port']}", host, f"{host}:{port['port']}"],
                               "routes": [{"match": match, "route": {"cluster": cname, "timeout": "0s"}}]})
        vhosts.append({"name": "direct", "domains": ["direct", "direct:9080"], "routes": [
            {"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {"inline_string": "direct\n"}}}]})
        routes = {"http_proxy": json_format.ParseDict({"name": "http_proxy", "virtual_hosts": vhosts},
                                                      route_pb2.RouteConfiguration())}
        lname = f"{proxy.ip}_{mesh.PROXY_OUTBOUND_PORT}"
        listeners = {lname: json_format.ParseDict({
            "name": lname,
            "address": {"socket_address": {"address": proxy.ip, "port_value": mesh.PROXY_OUTBOUND_PORT}},
            "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
                "@type": HCM, "stat_prefix": "outbound_http_proxy",
                "http_protocol_options": {"allow_absolute_url": True},
                "rds": {"route_config_name": "http_proxy", "config_source": {"ads": {}, "resource_api_version": "V3"}},
                "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER}}],
            }}]}],
        }, listener_pb2.Listener())}
        return {CLUSTER: clusters, ENDPOINT: cla, LISTENER: listeners, ROUTE: routes}
