"""DestinationRule `trafficPolicy` validation (load balancer, connection pool, outlier detection, TLS, ports).

Called by destinationrule.py for the top-level policy and for each subset's policy.
"""

from __future__ import annotations

import math
from typing import Any

from sluice.validation.field import Path
from sluice.validation.istio.common import (
    Ctx,
    check_duration,
    check_percent,
    check_port,
    fqdn_error,
    is_ip,
    port_error,
)

__all__ = ["check_traffic_policy", "LB_SIMPLE", "CLIENT_TLS_MODES"]

LB_SIMPLE = ["UNSPECIFIED", "LEAST_CONN", "RANDOM", "PASSTHROUGH", "ROUND_ROBIN", "LEAST_REQUEST"]
CLIENT_TLS_MODES = ["DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL"]
H2_UPGRADE = ["DEFAULT", "DO_NOT_UPGRADE", "UPGRADE"]
_POLICY_FIELDS = ("outlierDetection", "connectionPool", "loadBalancer", "tls", "portLevelSettings", "tunnel",
                  "proxyProtocol", "retryBudget")
_PORT_POLICY_FIELDS = ("outlierDetection", "connectionPool", "loadBalancer", "tls")
_TOPOLOGY_LABELS = ("topology.kubernetes.io/region", "topology.kubernetes.io/zone", "topology.istio.io/subzone")


def check_traffic_policy(ctx: Ctx, path: Path, policy: dict[str, Any] | None) -> None:
    if policy is None:
        return
    if not any(policy.get(f) is not None for f in _POLICY_FIELDS):
        ctx.required(path, "traffic policy must have at least one field")
        return
    if policy.get("tunnel") is not None and policy.get("proxyProtocol") is not None:
        ctx.forbidden(path.child("proxyProtocol"), "tunnel and proxyProtocol must not be set together")
        return
    outlier = ctx.obj(policy, "outlierDetection", path)
    _check_outlier(ctx, path.child("outlierDetection"), outlier)
    _check_connection_pool(ctx, path.child("connectionPool"), ctx.obj(policy, "connectionPool", path))
    _check_load_balancer(ctx, path.child("loadBalancer"), ctx.obj(policy, "loadBalancer", path), outlier)
    _check_tls(ctx, path.child("tls"), ctx.obj(policy, "tls", path))
    _check_port_policies(ctx, path.child("portLevelSettings"), ctx.lst(policy, "portLevelSettings", path))
    _check_tunnel(ctx, path.child("tunnel"), ctx.obj(policy, "tunnel", path))
    proxy = ctx.obj(policy, "proxyProtocol", path)
    if proxy is not None:
        version = proxy.get("version")
        if version is not None and version not in ("V1", "V2", 0, 1):
            ctx.invalid(path.child("proxyProtocol").child("version"), version,
                        f"proxy protocol version is invalid: {version}")


def _check_tunnel(ctx: Ctx, path: Path, tunnel: dict[str, Any] | None) -> None:
    if tunnel is None:
        return
    protocol = ctx.str_(tunnel, "protocol", path)
    if protocol not in ("", "CONNECT", "POST"):
        ctx.invalid(path.child("protocol"), protocol, 'tunnel protocol must be "CONNECT" or "POST"')
    target = ctx.str_(tunnel, "targetHost", path)
    if (err := fqdn_error(target)) and not is_ip(target):
        ctx.invalid(path.child("targetHost"), target,
                    f"tunnel target host must be valid FQDN or IP address: {err}; {target} is not a valid IP")
    port = ctx.int_(tunnel, "targetPort", path) or 0
    if err := port_error(port):
        ctx.invalid(path.child("targetPort"), port, f"tunnel target port is invalid: {err}")


def _check_outlier(ctx: Ctx, path: Path, od: dict[str, Any] | None) -> None:
    if od is None:
        return
    check_duration(ctx, path.child("baseEjectionTime"), od.get("baseEjectionTime"))
    check_duration(ctx, path.child("interval"), od.get("interval"))
    if ctx.int_(od, "consecutiveErrors", path):
        ctx.warn("outlier detection consecutive errors is deprecated, use consecutiveGatewayErrors or "
                 "consecutive5xxErrors instead")
    local = ctx.int_(od, "consecutiveLocalOriginFailures", path) or 0
    if local > 0 and not ctx.bool_(od, "splitExternalLocalOriginErrors", path):
        ctx.invalid(path.child("consecutiveLocalOriginFailures"), local,
                    "outlier detection consecutive local origin failures is specified, but split external "
                    "local origin errors is set to false")
    for key in ("maxEjectionPercent", "minHealthPercent"):
        check_percent(ctx, path.child(key), ctx.int_(od, key, path))


def _non_negative(ctx: Ctx, path: Path, obj: dict[str, Any], key: str, what: str) -> None:
    v = ctx.int_(obj, key, path)
    if v is not None and v < 0:
        ctx.invalid(path.child(key), v, f"{what} must be non-negative")


def _check_connection_pool(ctx: Ctx, path: Path, pool: dict[str, Any] | None) -> None:
    if pool is None:
        return
    http = ctx.obj(pool, "http", path)
    tcp = ctx.obj(pool, "tcp", path)
    if http is None and tcp is None:
        ctx.required(path, "connection pool must have at least one field")
        return
    if http is not None:
        p = path.child("http")
        _non_negative(ctx, p, http, "http1MaxPendingRequests", "http1 max pending requests")
        _non_negative(ctx, p, http, "http2MaxRequests", "http2 max requests")
        _non_negative(ctx, p, http, "maxRequestsPerConnection", "max requests per connection")
        _non_negative(ctx, p, http, "maxRetries", "max retries")
        _non_negative(ctx, p, http, "maxConcurrentStreams", "max concurrent streams")
        check_duration(ctx, p.child("idleTimeout"), http.get("idleTimeout"))
        upgrade = ctx.str_(http, "h2UpgradePolicy", p)
        if upgrade and upgrade not in H2_UPGRADE:
            ctx.not_supported(p.child("h2UpgradePolicy"), upgrade, H2_UPGRADE)
        if upgrade == "UPGRADE" and ctx.bool_(http, "useClientProtocol", p):
            ctx.invalid(p.child("useClientProtocol"), True,
                        "use client protocol must not be true when H2UpgradePolicy is UPGRADE")
    if tcp is not None:
        p = path.child("tcp")
        _non_negative(ctx, p, tcp, "maxConnections", "max connections")
        check_duration(ctx, p.child("connectTimeout"), tcp.get("connectTimeout"))
        check_duration(ctx, p.child("maxConnectionDuration"), tcp.get("maxConnectionDuration"))
        # 0s disables the idle timeout altogether
        check_duration(ctx, p.child("idleTimeout"), tcp.get("idleTimeout"), allow_zero=True)
        keepalive = ctx.obj(tcp, "tcpKeepalive", p)
        if keepalive is not None:
            check_duration(ctx, p.child("tcpKeepalive").child("time"), keepalive.get("time"))
            check_duration(ctx, p.child("tcpKeepalive").child("interval"), keepalive.get("interval"))


def _is_prime(n: int) -> bool:
    if 0 < n < 4:
        return True
    if n % 2 == 0:
        return False
    return all(n % f for f in range(3, math.isqrt(n) + 1, 2))


def _check_load_balancer(ctx: Ctx, path: Path, lb: dict[str, Any] | None, outlier: dict[str, Any] | None) -> None:
    if lb is None:
        return
    simple = ctx.str_(lb, "simple", path)
    if simple and simple not in LB_SIMPLE:
        ctx.not_supported(path.child("simple"), simple, LB_SIMPLE)
    ch = ctx.obj(lb, "consistentHash", path)
    if ch is not None:
        p = path.child("consistentHash")
        cookie = ctx.obj(ch, "httpCookie", p)
        if cookie is not None:
            cp = p.child("httpCookie")
            if not ctx.str_(cookie, "name", cp):
                ctx.required(cp.child("name"), "name required for HttpCookie")
            check_duration(ctx, cp.child("ttl"), cookie.get("ttl"), allow_zero=True)
            names: set[str] = set()
            for i, attr in enumerate(ctx.lst(cookie, "attributes", cp)):
                name = attr.get("name") if isinstance(attr, dict) else None
                ap = cp.child("attributes").index(i).child("name")
                if not name:
                    ctx.required(ap, "cookie attribute name cannot be empty")
                elif name in names:
                    ctx.invalid(ap, name, f"duplicate cookie attribute name: {name}")
                else:
                    names.add(name)
        ring = ctx.int_(ch, "minimumRingSize", p)
        if ring:
            ctx.warn("consistent hash MinimumRingSize is deprecated, use ConsistentHashLB's RingHash "
                     "configuration instead")
            if ch.get("ringHash") is not None or ch.get("maglev") is not None:
                ctx.forbidden(p.child("minimumRingSize"), "only one of MinimumRingSize or Maglev/Ringhash can be specified")
        maglev = ctx.obj(ch, "maglev", p)
        if maglev is not None:
            size = ctx.int_(maglev, "tableSize", p.child("maglev")) or 0
            tp = p.child("maglev").child("tableSize")
            if size == 0:
                ctx.required(tp, "tableSize must be set for maglev")
            if size >= 5000011:
                ctx.invalid(tp, size, "tableSize must be less than 5000011 for maglev")
            if not _is_prime(size):
                ctx.invalid(tp, size, "tableSize must be a prime number for maglev")
    if lb.get("localityLbSetting") is not None and lb.get("zoneAwareLbSetting") is not None:
        ctx.forbidden(path.child("zoneAwareLbSetting"), "only one of localityLbSetting and zoneAwareLbSetting can be set")
    _check_locality(ctx, path.child("localityLbSetting"), ctx.obj(lb, "localityLbSetting", path), outlier)
    warmup = ctx.obj(lb, "warmup", path)
    if warmup is not None:
        wp = path.child("warmup")
        if warmup.get("duration") is None:
            ctx.required(wp.child("duration"), "duration is required")
        else:
            check_duration(ctx, wp.child("duration"), warmup.get("duration"))
        minimum = ctx.loose_num(warmup, "minimumPercent", wp)
        if minimum is not None and minimum > 100:
            ctx.invalid(wp.child("minimumPercent"), minimum, "minimumPercent value should be less than or equal to 100")
        aggression = ctx.loose_num(warmup, "aggression", wp)
        if aggression is not None and aggression <= 0:
            ctx.invalid(wp.child("aggression"), aggression, "aggression should be greater than 0")
    check_duration(ctx, path.child("warmupDurationSecs"), lb.get("warmupDurationSecs"))


def _locality_error(localities: list[str]) -> str | None:
    """Localities are `region[/zone[/subzone]]` with at most one trailing `*`, and must not overlap."""
    taken: list[tuple[str, ...]] = []
    for loc in localities:
        stars = loc.count("*")
        if stars and (stars > 1 or not loc.endswith("*")):
            return f"locality {loc} wildcard '*' number can not exceed 1 and must be in the end"
        parts = tuple(loc.split("/", 2))
        if any(p == "" for p in parts):
            return f"locality {loc} must not contain empty region/zone/subzone info"
        for prev in taken:
            # overlap: one is a prefix of the other, or an earlier `*` at that level covers it
            n = min(len(prev), len(parts))
            same = all(a == b or a == "*" for a, b in zip(prev[:n], parts[:n], strict=True))
            if same and (len(prev) <= len(parts) or prev[:n] == parts[:n]):
                return f"locality {loc} overlap with previous specified ones"
        taken.append(parts)
    return None


def _check_locality(ctx: Ctx, path: Path, lb: dict[str, Any] | None, outlier: dict[str, Any] | None) -> None:
    if lb is None:
        return
    distribute = ctx.lst(lb, "distribute", path)
    failover = ctx.lst(lb, "failover", path)
    priority = ctx.str_list(lb, "failoverPriority", path)
    if distribute and failover:
        ctx.forbidden(path.child("failover"), "can not simultaneously specify 'distribute' and 'failover'")
        return
    if failover and priority:
        for i, label in enumerate(priority):
            if label in _TOPOLOGY_LABELS:
                ctx.forbidden(path.child("failoverPriority").index(i),
                              f"can not simultaneously set 'failover' and topology label '{label}' in 'failover_priority'")
                return
    sources: list[str] = []
    for i, d in enumerate(distribute):
        if not isinstance(d, dict):
            continue
        dp = path.child("distribute").index(i)
        sources.append(str(d.get("from", "")))
        to = ctx.obj(d, "to", dp) or {}
        total = 0
        for loc, weight in to.items():
            if not isinstance(weight, int) or isinstance(weight, bool) or not 1 <= weight <= 100:
                ctx.invalid(dp.child("to").key(loc), weight, "locality weight must be in range [1, 100]")
                return
            total += weight
        if total != 100:
            ctx.invalid(dp.child("to"), total, f"total locality weight {total} != 100")
            return
        if err := _locality_error(list(to)):
            ctx.invalid(dp.child("to"), list(to), err)
    if err := _locality_error(sources):
        ctx.invalid(path.child("distribute"), sources, err)
    if (failover or priority) and outlier is None:
        ctx.warn("outlier detection policy must be provided for failover")
    for i, f in enumerate(failover):
        if not isinstance(f, dict):
            continue
        fp = path.child("failover").index(i)
        src, dst = str(f.get("from", "")), str(f.get("to", ""))
        if src == dst:
            ctx.invalid(fp, f, "locality lb failover settings must specify different regions")
        if "/" in src or "/" in dst:
            ctx.invalid(fp, f, "locality lb failover only specify region")
        if "*" in src or "*" in dst:
            ctx.invalid(fp, f, "locality lb failover region should not contain '*' wildcard")


def _check_tls(ctx: Ctx, path: Path, tls: dict[str, Any] | None) -> None:
    """Client TLS towards the destination (Istio's agent.ValidateTLS)."""
    if tls is None:
        return
    mode = ctx.str_(tls, "mode", path)
    if mode and mode not in CLIENT_TLS_MODES:
        ctx.not_supported(path.child("mode"), mode, CLIENT_TLS_MODES)
    cred = ctx.str_(tls, "credentialName", path)
    if cred.startswith("configmap://"):
        ref = cred.removeprefix("configmap://")
        ns, slash, name = ref.partition("/")
        if not ref or (slash and not name):
            ctx.invalid(path.child("credentialName"), cred, "invalid configmap:// credentialName: invalid resource name")
        elif slash and ns != ctx.namespace or not ctx.namespace:
            ctx.invalid(path.child("credentialName"), cred,
                        "invalid configmap:// credentialName: namespace must match the configuration namespace "
                        f'"{ctx.namespace}"')
    ca = ctx.str_(tls, "caCertificates", path)
    sans = tls.get("subjectAltNames")
    if ctx.bool_(tls, "insecureSkipVerify", path):
        if mode == "SIMPLE" and (ca or cred or sans is not None):
            ctx.forbidden(path.child("insecureSkipVerify"),
                          "cannot specify CaCertificates or CredentialName or SubjectAltNames when "
                          "InsecureSkipVerify is set true")
        if mode == "MUTUAL" and (ca or sans is not None):
            ctx.forbidden(path.child("insecureSkipVerify"),
                          "cannot specify CaCertificates or SubjectAltNames when InsecureSkipVerify is set true")
    cert = ctx.str_(tls, "clientCertificate", path)
    key = ctx.str_(tls, "privateKey", path)
    if mode in ("SIMPLE", "MUTUAL") and cred:
        if cert or ca or key or ctx.str_(tls, "caCrl", path):
            ctx.forbidden(path.child("credentialName"),
                          "cannot specify client certificates or CA certificate or CA CRL If credentialName is set")
        return
    if mode == "MUTUAL":
        if not cert:
            ctx.required(path.child("clientCertificate"), "client certificate required for mutual tls")
        if not key:
            ctx.required(path.child("privateKey"), "private key required for mutual tls")


def _check_port_policies(ctx: Ctx, path: Path, policies: list[Any]) -> None:
    for i, pol in enumerate(policies):
        p = path.index(i)
        if not isinstance(pol, dict):
            ctx.required(p, "traffic policy may not be null")
            continue
        port = ctx.obj(pol, "port", p)
        if port is None:
            ctx.required(p.child("port"), "portTrafficPolicy must have valid port")
        else:
            number = ctx.int_(port, "number", p.child("port"))
            check_port(ctx, p.child("port").child("number"), number if number is not None else 0)
        if not any(pol.get(f) is not None for f in _PORT_POLICY_FIELDS):
            ctx.required(p, "port traffic policy must have at least one field")
            continue
        outlier = ctx.obj(pol, "outlierDetection", p)
        _check_outlier(ctx, p.child("outlierDetection"), outlier)
        _check_connection_pool(ctx, p.child("connectionPool"), ctx.obj(pol, "connectionPool", p))
        _check_load_balancer(ctx, p.child("loadBalancer"), ctx.obj(pol, "loadBalancer", p), outlier)
        _check_tls(ctx, p.child("tls"), ctx.obj(pol, "tls", p))
