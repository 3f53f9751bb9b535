"""Gateways (Istio's gateway.go, the parts we need): which Gateway servers a router proxy serves, at which host
port, and the filter chains and route tables of its HTTP and HTTPS servers.

Ports. Istio's gateway pod listens on a Gateway server's port when that is a targetPort of the gateway's Service,
or on the targetPort of the Service port it names (`number: 80` → Service port 80 → targetPort 8080); the outside
world reaches it at the Service port. Here the host plays the outside world, so the listener is on 127.0.0.1 at
that Service port (`gateway_host_port`, the one place that decides; others' gateway listeners call it).
Servers that land on one host port share its listener, as Istio merges servers by port.

Servers. Plain HTTP servers share one HCM and the route table `http.<host port>`; an HTTP server with
`tls.httpsRedirect` answers 301 to https (`require_tls`). Each HTTPS server with `tls.mode` SIMPLE, MUTUAL or
OPTIONAL_MUTUAL gets its own filter chain, matched by SNI on its hosts (`*` matches any), terminating TLS with
the certificate of its `credentialName`, and its own route table `https.<number>.<port name>.<gateway>.<namespace>` (Istio's names).
The credential is a Secret in the gateway proxy's namespace (Istio's rule): `tls.crt`/`tls.key` (or `cert`/`key`),
and for (OPTIONAL_)MUTUAL the client CA in `ca.crt` (or `cacert`) of that Secret, else of `<credentialName>-cacert`
(`credentialNames`: one certificate from each). A server whose credential is missing or does not load gets no
filter chain (Istio's gateway cannot complete a handshake either). TLS 1.2 at least unless `minProtocolVersion`
says otherwise (Istio's gateway default); `maxProtocolVersion`, `cipherSuites`, `subjectAltNames`,
`verifyCertificateSpki`/`Hash` as Istio programs them.
Certificates travel inline in the listener (not SDS); the control plane's own config dump redacts private keys.
Servers of other protocols (TCP, TLS) are left to their own builders, beside these on the same listener.
Called by `listeners` (LDS) and `routes` (RDS).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from .credentials import ca_of, first, key_pair_loads
from .httproute import RouteContext, is_catch_all, virtual_service_routes
from .model import Proxy
from .network_filters import http_connection_manager
from .protos import typed
from .push_context import IstioConfig, PushContext, Service
from .spec import Obj, host_covers

__all__ = ["GatewayServer", "HTTP_PROTOCOLS", "SERVER_NAME", "TLS_INSPECTOR", "gateway_services", "gateway_host_port",
           "gateway_servers", "http_route_name", "https_route_name", "filter_chains", "route_configs",
           "credential"]

HTTP_PROTOCOLS = ("HTTP", "HTTP2", "GRPC", "GRPC-WEB")
SERVER_NAME = "istio-envoy"  # Istio's gateways answer with `server: istio-envoy`
TLS_INSPECTOR = {"name": "envoy.filters.listener.tls_inspector",
                 "typed_config": typed("envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector")}
_DOWNSTREAM_TLS = "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
_TERMINATED = ("SIMPLE", "MUTUAL", "OPTIONAL_MUTUAL")
_CLIENT_CA = ("MUTUAL", "OPTIONAL_MUTUAL")


@dataclass(frozen=True)
class GatewayServer:
    """One `servers[]` entry of a Gateway that selects the proxy."""

    gateway: IstioConfig
    server: Obj
    number: int  # `port.number` as written
    protocol: str  # upper-cased `port.protocol`
    port_name: str

    @property
    def ref(self) -> str:
        return f"{self.gateway.namespace}/{self.gateway.name}"

    @property
    def tls(self) -> Obj:
        tls = self.server.get("tls")
        return tls if isinstance(tls, dict) else {}

    @property
    def tls_mode(self) -> str:
        return str(self.tls.get("mode") or "PASSTHROUGH").upper() if self.tls else ""  # Istio's default mode

    @property
    def hosts(self) -> list[str]:
        return [str(h) for h in self.server.get("hosts") or []]

    @property
    def is_http(self) -> bool:
        """Plain HTTP: Istio ignores `tls` on an HTTP server except `httpsRedirect`."""
        return self.protocol in HTTP_PROTOCOLS

    @property
    def is_https(self) -> bool:
        """TLS terminated at the gateway, then HTTP (PASSTHROUGH and the TLS protocol are not ours)."""
        return self.protocol == "HTTPS" and self.tls_mode in _TERMINATED


def gateway_services(proxy: Proxy, push: PushContext) -> list[Service]:
    """The Services that expose the gateway pod (in its namespace, selecting its labels)."""
    return push.services_selecting(proxy.namespace, proxy.labels)


def gateway_host_port(proxy: Proxy, push: PushContext, number: int) -> int:
    """The port on 127.0.0.1 that serves a Gateway server with `port.number` = `number`.

    A Service port whose targetPort is `number` (Istio's gateway pod listens there); else the Service port
    `number` itself, as it is stored (a LoadBalancer's port may have moved, see sluice.resources.loadbalancer);
    else `number`, moved the same way (no Service exposes it: served where a LoadBalancer port would be)."""
    services = gateway_services(proxy, push)
    for svc in services:
        for sp in svc.ports:
            if sp.target_port == number:
                return sp.port
    moved = push.options.gateway_ports.host(number)
    for svc in services:
        for sp in svc.ports:
            if sp.port in (moved, number):
                return sp.port
    return moved


def gateway_servers(proxy: Proxy, push: PushContext) -> dict[int, list[GatewayServer]]:
    """Host port → every server (any protocol) of the Gateways selecting this proxy, in Istio's order."""
    out: dict[int, list[GatewayServer]] = {}
    for gw in push.gateways_for(proxy.labels):
        for server in gw.spec.get("servers") or []:
            if not isinstance(server, dict) or not isinstance(server.get("port"), dict):
                continue
            port = server["port"]
            try:
                number = int(port.get("number") or 0)
            except (TypeError, ValueError):
                continue
            if not number:
                continue
            gs = GatewayServer(gw, server, number, str(port.get("protocol") or "").upper(), str(port.get("name") or ""))
            out.setdefault(gateway_host_port(proxy, push, number), []).append(gs)
    return out


def http_route_name(host_port: int) -> str:
    return f"http.{host_port}"


def https_route_name(s: GatewayServer) -> str:
    return f"https.{s.number}.{s.port_name}.{s.gateway.name}.{s.gateway.namespace}"


# --- credentials -------------------------------------------------------------------------------------------

def _names(s: GatewayServer) -> list[str]:
    """`credentialNames` (several certificates, e.g. RSA and ECDSA), else `credentialName`."""
    many = s.tls.get("credentialNames")
    if isinstance(many, list) and many:
        return [str(n) for n in many]
    return [str(s.tls.get("credentialName") or "")]


def credential(push: PushContext, namespace: str, name: str, mutual: bool) -> tuple[bytes, bytes, bytes | None] | None:
    """(certificate chain, private key, client CA or None) from the Secret `name` in `namespace`, read as Istio
    reads it; None when it is missing, incomplete (MUTUAL: without a CA) or does not load."""
    def read() -> tuple[bytes, bytes, bytes | None] | None:
        secret = push.secret(namespace, name)
        cert, key = first(secret, "tls.crt", "cert"), first(secret, "tls.key", "key")
        if cert is None or key is None:
            return None
        ca = None
        if mutual:
            ca = ca_of(push, namespace, name)
            if ca is None:
                return None
        return (cert, key, ca) if key_pair_loads(cert, key, ca) else None
    return push.memo(("gateway-credential", namespace, name, mutual), read)


def _credentials(proxy: Proxy, push: PushContext, s: GatewayServer) -> list[tuple[bytes, bytes, bytes | None]] | None:
    mutual = s.tls_mode in _CLIENT_CA
    found = [credential(push, proxy.namespace, n, mutual) for n in _names(s)]
    if not found or any(c is None for c in found):
        return None
    return [c for c in found if c is not None]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


_TLS_VERSIONS = {"TLS_AUTO": "TLS_AUTO", "TLSV1_0": "TLSv1_0", "TLSV1_1": "TLSv1_1", "TLSV1_2": "TLSv1_2",
                 "TLSV1_3": "TLSv1_3"}


def _tls_socket(s: GatewayServer, creds: list[tuple[bytes, bytes, bytes | None]]) -> Obj:
    tls = s.tls
    params: Obj = {"tls_minimum_protocol_version":  # Istio's gateways default to TLS 1.2 at least
                   _TLS_VERSIONS.get(str(tls.get("minProtocolVersion") or "TLSV1_2").upper(), "TLSv1_2")}
    if tls.get("maxProtocolVersion"):
        params["tls_maximum_protocol_version"] = _TLS_VERSIONS.get(str(tls["maxProtocolVersion"]).upper(), "TLS_AUTO")
    if isinstance(tls.get("cipherSuites"), list) and tls["cipherSuites"]:
        params["cipher_suites"] = [str(c) for c in tls["cipherSuites"]]
    common: Obj = {"tls_params": params, "alpn_protocols": ["h2", "http/1.1"],
                   "tls_certificates": [{"certificate_chain": {"inline_bytes": _b64(cert)},
                                         "private_key": {"inline_bytes": _b64(key)}} for cert, key, _ in creds]}
    body: Obj = {"common_tls_context": common}
    ca = creds[0][2]
    if ca is not None:
        validation: Obj = {"trusted_ca": {"inline_bytes": _b64(ca)}}
        sans = [str(n) for n in tls.get("subjectAltNames") or []]
        if sans:
            validation["match_typed_subject_alt_names"] = [
                {"san_type": t, "matcher": {"exact": n}} for n in sans for t in ("DNS", "URI")]
        for field, key in (("verifyCertificateSpki", "verify_certificate_spki"),
                           ("verifyCertificateHash", "verify_certificate_hash")):
            if isinstance(tls.get(field), list) and tls[field]:
                validation[key] = [str(v) for v in tls[field]]
        common["validation_context"] = validation
        # OPTIONAL_MUTUAL: a client certificate is checked when one is sent
        body["require_client_certificate"] = s.tls_mode == "MUTUAL"
    return {"name": "envoy.transport_sockets.tls", "typed_config": typed(_DOWNSTREAM_TLS, body)}


# --- listeners ---------------------------------------------------------------------------------------------

def _hcm(push: PushContext, listen_port: int, rds: str) -> Obj:
    return http_connection_manager(push, stat_prefix=f"outbound_0.0.0.0_{listen_port}", rds=rds, edge=True,
                                   server_name=SERVER_NAME)


def _sni_names(s: GatewayServer) -> list[str]:
    """Istio's SNI match: the server's hosts without namespace prefixes; `*` among them matches any name."""
    names = [h.rpartition("/")[2].lower() for h in s.hosts]
    return [] if "*" in names else sorted(set(names))


def _has_credential(proxy: Proxy, push: PushContext, s: GatewayServer) -> bool:
    return _credentials(proxy, push, s) is not None


def filter_chains(proxy: Proxy, push: PushContext, host_port: int, servers: list[GatewayServer],
                  listen_port: int | None = None) -> list[Obj]:
    """The HTTP and HTTPS filter chains of one host port's listener (none for servers of other protocols);
    `listen_port`: where that listener binds, if not at the host port (an egress gateway, in its pod)."""
    bound = host_port if listen_port is None else listen_port
    chains: list[Obj] = []
    seen: set[tuple[str, ...]] = set()
    for s in servers:
        if not s.is_https:
            continue
        names = _sni_names(s)
        if tuple(names) in seen:
            continue  # Envoy refuses two chains with one match; the first server wins, as in Istio
        creds = _credentials(proxy, push, s)
        if creds is None:
            continue
        seen.add(tuple(names))
        match: Obj = {"transport_protocol": "tls"}
        if names:
            match["server_names"] = names
        chains.append({"filter_chain_match": match, "transport_socket": _tls_socket(s, creds),
                       "filters": [_hcm(push, bound, https_route_name(s))]})
    if any(s.is_http for s in servers):
        chains.append({"filters": [_hcm(push, bound, http_route_name(host_port))]})
    return chains


# --- routes ------------------------------------------------------------------------------------------------

def _vhosts(proxy: Proxy, push: PushContext, servers: list[GatewayServer], empty_name: str) -> list[Obj]:
    by_domain: dict[str, list[Obj]] = {}
    redirect: set[str] = set()
    numbers: dict[str, int] = {}
    used: set[tuple[str, str, str]] = set()  # (domain, vs namespace, vs name): each VS once per host
    for s in servers:
        routes_by_vs: dict[tuple[str, str], list[Obj]] = {}
        for vs in push.gateway_virtual_services(s.ref, proxy.namespace):
            for raw in s.hosts:
                ns_filter, _, shost = raw.rpartition("/")
                if ns_filter not in ("", "*", vs.namespace) and not (ns_filter == "." and
                                                                      vs.namespace == s.gateway.namespace):
                    continue
                shost = shost.lower()
                for vs_host in vs.hosts:
                    domain = (vs_host if host_covers(shost, vs_host) else shost if host_covers(vs_host, shost)
                              else "")
                    if not domain or (domain, vs.namespace, vs.name) in used:
                        continue
                    used.add((domain, vs.namespace, vs.name))
                    key = (vs.namespace, vs.name)
                    if key not in routes_by_vs:
                        routes_by_vs[key] = virtual_service_routes(RouteContext(push, proxy, vs, s.number, (s.ref,)))
                    by_domain.setdefault(domain, []).extend(routes_by_vs[key])
                    numbers.setdefault(domain, s.number)
                    if s.tls.get("httpsRedirect") is True:
                        redirect.add(domain)
    vhosts: list[Obj] = []
    for domain, routes in by_domain.items():
        if not routes and domain not in redirect:
            continue
        # VirtualServices merged on one host: a catch-all from an earlier one must not shadow the rest
        ordered = [r for r in routes if not is_catch_all(r)] + [r for r in routes if is_catch_all(r)]
        vhost: Obj = {"name": f"{domain}:{numbers[domain]}", "domains": ["*"] if domain == "*" else
                      [domain, f"{domain}:*"], "routes": ordered, "include_request_attempt_count": True}
        if domain in redirect:
            vhost["require_tls"] = "ALL"  # Istio's httpsRedirect: a 301 to the https URL
        vhosts.append(vhost)
    if not vhosts:  # nothing bound: answer 404 rather than leave the port without a route table
        vhosts.append({"name": empty_name, "domains": ["*"], "routes": [
            {"name": "default", "match": {"prefix": "/"}, "direct_response": {"status": 404}}]})
    return vhosts


def _route_config(name: str, vhosts: list[Obj]) -> Obj:
    return {"name": name, "virtual_hosts": sorted(vhosts, key=lambda v: str(v["name"])),
            "validate_clusters": False, "max_direct_response_body_size_bytes": 1024 * 1024}


def route_configs(proxy: Proxy, push: PushContext) -> list[Obj]:
    """`http.<host port>` per port with plain HTTP servers, `https.<…>` per HTTPS server with a chain."""
    out: list[Obj] = []
    for host_port, servers in sorted(gateway_servers(proxy, push).items()):
        http = [s for s in servers if s.is_http]
        if http:
            out.append(_route_config(http_route_name(host_port),
                                     _vhosts(proxy, push, http, f"blackhole:{host_port}")))
        names: set[str] = set()
        for s in servers:
            if s.is_https and https_route_name(s) not in names and _has_credential(proxy, push, s):
                names.add(https_route_name(s))
                out.append(_route_config(https_route_name(s), _vhosts(proxy, push, [s], f"blackhole:{s.number}")))
    return out
