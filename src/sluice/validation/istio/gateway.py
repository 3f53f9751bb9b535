"""Gateway validation (Istio's ValidateGateway): name, selector, servers (port, hosts, bind, TLS).

Called through `sluice.validation.istio.validate` by the API server on every write.
"""

from __future__ import annotations

from typing import Any

from sluice.validation.field import Path
from sluice.validation.istio.common import (
    Ctx,
    check_labels,
    is_dns1123_label,
    is_ip,
    port_error,
    wildcard_domain_error,
)

__all__ = ["validate_gateway", "parse_protocol", "SERVER_TLS_MODES"]

SERVER_TLS_MODES = ["PASSTHROUGH", "SIMPLE", "MUTUAL", "AUTO_PASSTHROUGH", "ISTIO_MUTUAL", "OPTIONAL_MUTUAL"]
_PROTOCOLS = {"tcp": "TCP", "udp": "UDP", "grpc": "GRPC", "grpc-web": "GRPC-Web", "http": "HTTP",
              "http_proxy": "HTTP_PROXY", "http2": "HTTP2", "https": "HTTPS", "tls": "TLS", "mongo": "Mongo",
              "redis": "Redis", "mysql": "MySQL"}
HTTP_PROTOCOLS = frozenset({"HTTP", "HTTP2", "HTTP_PROXY", "GRPC", "GRPC-Web"})
TLS_PROTOCOLS = frozenset({"HTTPS", "TLS"})
_UNIX = "unix://"


def parse_protocol(name: str) -> str | None:
    """Istio's protocol.Parse (case-insensitive); None for an unsupported name."""
    return _PROTOCOLS.get(name.lower())


def validate_gateway(ctx: Ctx, spec: dict[str, Any]) -> None:
    root = Path("spec")
    if ctx.name and not is_dns1123_label(ctx.name):
        # Envoy resource names are built from it, so no dots
        ctx.invalid("metadata.name", ctx.name, f'invalid gateway name: "{ctx.name}"')
    check_labels(ctx, root.child("selector"), ctx.str_map(spec, "selector", root))
    servers = ctx.lst(spec, "servers", root)
    if not servers:
        ctx.required(root.child("servers"), "gateway must have at least one server")
    port_names: dict[str, int] = {}
    for i, server in enumerate(servers):
        p = root.child("servers").index(i)
        if not isinstance(server, dict):
            ctx.required(p, "server may not be nil")
            continue
        _check_server(ctx, p, server)
        port = server.get("port")
        if isinstance(port, dict):
            name = port.get("name") if isinstance(port.get("name"), str) else ""
            if name in port_names:
                ctx.invalid(p.child("port").child("name"), name,
                            f"port names in servers must be unique: duplicate name {name}")
            port_names.setdefault(str(name), i)
            tls = server.get("tls")
            proto = parse_protocol(str(port.get("protocol", "")))
            if proto not in HTTP_PROTOCOLS and isinstance(tls, dict) and tls.get("httpsRedirect"):
                ctx.warn("tls.httpsRedirect should only be used with http servers")


def _host_errors(host: str) -> list[str]:
    """A server host: `[namespace/]dnsName`, FQDN or `*` wildcard, or an IP; no short names."""
    errs: list[str] = []
    ns, slash, name = host.partition("/")
    if not slash:
        ns, name = "", host  # old style: any namespace
    elif not ns or not name:
        errs.append("config namespace and dnsName in host entry cannot be empty")
    if slash and ns not in ("*", ".") and not is_dns1123_label(ns):
        errs.append(f'invalid namespace value "{ns}" in gateway')
    if name != "*" and "." not in name:
        errs.append("short names (non FQDN) are not allowed")
    if (err := wildcard_domain_error(name)) and not is_ip(name):
        errs.append(err)
    if "*" in name and len(name) != 1 and not name.startswith("*."):
        errs.append(f'partial wildcard "{name}" not allowed')
    return errs


def _check_server(ctx: Ctx, path: Path, server: dict[str, Any]) -> None:
    hosts = ctx.str_list(server, "hosts", path)
    if not hosts:
        ctx.required(path.child("hosts"), "server config must contain at least one host")
    for i, host in enumerate(hosts):
        for problem in _host_errors(host):
            ctx.invalid(path.child("hosts").index(i), host, problem)
    bind = ctx.str_(server, "bind", path)
    port = ctx.obj(server, "port", path)
    port_ok = port is not None
    proto: str | None = None
    if port is None:
        ctx.required(path.child("port"), "port is required")
    else:
        pp = path.child("port")
        protocol = ctx.str_(port, "protocol", pp)
        proto = parse_protocol(protocol)
        if proto is None:
            port_ok = False
            ctx.invalid(pp.child("protocol"), protocol,
                        f'invalid protocol "{protocol}", supported protocols are HTTP, HTTP2, GRPC, GRPC-WEB, '
                        "MONGO, REDIS, MYSQL, TCP")
        number = ctx.int_(port, "number", pp) or 0
        if (number > 0 or not bind.startswith(_UNIX)) and (err := port_error(number)):
            port_ok = False
            ctx.invalid(pp.child("number"), number, err)
        if ctx.int_(port, "targetPort", pp):
            ctx.forbidden(pp.child("targetPort"), "targetPort has no impact on Gateways")
        if not ctx.str_(port, "name", pp):
            port_ok = False
            ctx.required(pp.child("name"), "port name must be set")
        if bind.startswith(_UNIX) and number:
            ctx.invalid(pp.child("number"), number, "port number must be 0 for unix domain socket")
    if bind.startswith(_UNIX):
        addr = bind.removeprefix(_UNIX)
        if not addr:
            ctx.invalid(path.child("bind"), bind, "unix address must not be empty")
        elif not addr.startswith("@") and (not addr.startswith("/") or addr.endswith("/")):
            ctx.invalid(path.child("bind"), bind, f"{addr} is not an absolute path to a file")
    elif bind and not is_ip(bind):
        ctx.invalid(path.child("bind"), bind, f"{bind} is not a valid IP")
    tls = ctx.obj(server, "tls", path)
    _check_server_tls(ctx, path.child("tls"), tls)
    if port_ok and proto is not None:
        if proto in TLS_PROTOCOLS and tls is None:
            ctx.required(path.child("tls"), "server must have TLS settings for HTTPS/TLS protocols")
        elif proto not in TLS_PROTOCOLS and tls is not None:
            if proto in HTTP_PROTOCOLS:
                # plain HTTP servers may only carry `httpsRedirect`
                certs = any(tls.get(k) for k in ("caCertificates", "privateKey", "serverCertificate"))
                mode = tls.get("mode") or "PASSTHROUGH"
                if mode not in ("PASSTHROUGH", "AUTO_PASSTHROUGH") or certs:
                    ctx.forbidden(path.child("tls"), "server cannot have TLS settings for plain text HTTP ports")
            else:
                ctx.forbidden(path.child("tls"), "server cannot have TLS settings for non HTTPS/TLS ports")


def _check_server_tls(ctx: Ctx, path: Path, tls: dict[str, Any] | None) -> None:
    if tls is None:
        return
    mode = ctx.str_(tls, "mode", path) or "PASSTHROUGH"
    if mode not in SERVER_TLS_MODES:
        ctx.not_supported(path.child("mode"), mode, SERVER_TLS_MODES)
        return
    cert = ctx.str_(tls, "serverCertificate", path)
    key = ctx.str_(tls, "privateKey", path)
    ca = ctx.str_(tls, "caCertificates", path)
    cred = ctx.str_(tls, "credentialName", path)
    creds = ctx.str_list(tls, "credentialNames", path)
    certs = ctx.lst(tls, "tlsCertificates", path)
    crl = ctx.str_(tls, "caCrl", path)
    if mode == "ISTIO_MUTUAL":
        # the proxy's own mesh certificate is used; any other source is a mistake
        for key_name, present, what in (("serverCertificate", cert, "server certificate"),
                                        ("privateKey", key, "private key"), ("caCertificates", ca, "CA bundle"),
                                        ("tlsCertificates", certs, "tlsCertificates"),
                                        ("credentialName", cred, "credentialName"),
                                        ("credentialNames", creds, "credentialNames")):
            if present:
                ctx.forbidden(path.child(key_name), f"ISTIO_MUTUAL TLS cannot have associated {what}")
        return
    if mode in ("PASSTHROUGH", "AUTO_PASSTHROUGH") and (crl or cert or key or ca or certs or cred or creds):
        ctx.warn(f"{mode} mode does not use certificates, they will be ignored")
    sources = sum(bool(x) for x in (cert and key, cred, creds, certs))
    if sources > 1:
        ctx.forbidden(path, "only one of credential_name, credential_names, server_certificate/private_key, "
                            "tls_certificates should be specified")
    simple_or_mutual = mode in ("SIMPLE", "MUTUAL", "OPTIONAL_MUTUAL")
    if simple_or_mutual and (cred or creds):
        return  # certificates come from the named secret
    if simple_or_mutual:
        prefix = "SIMPLE TLS" if mode == "SIMPLE" else "MUTUAL TLS"
        if mode != "SIMPLE" and not ca:
            ctx.required(path.child("caCertificates"), f"{prefix} requires a client CA bundle")
        if len(certs) > 2:
            ctx.warn(f"{prefix} can support up to 2 server certificates")
        pairs = [(c.get("serverCertificate"), c.get("privateKey")) if isinstance(c, dict) else (None, None)
                 for c in certs] if certs else [(cert, key)]
        for j, (c, k) in enumerate(pairs):
            p = path.child("tlsCertificates").index(j) if certs else path
            if not c:
                ctx.required(p.child("serverCertificate"), f"{prefix} requires a server certificate")
            if not k:
                ctx.required(p.child("privateKey"), f"{prefix} requires a private key")
    if crl:
        if cred:
            ctx.forbidden(path.child("caCrl"), "CRL is not supported with credentialName. CRL has to be specified "
                                               "in the credential")
        if mode == "SIMPLE":
            ctx.forbidden(path.child("caCrl"), "CRL is not supported with SIMPLE TLS")
