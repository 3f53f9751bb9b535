"""DestinationRule traffic policies → Envoy cluster settings and route hash policies.

Used by `clusters` (load balancer, circuit breakers, outlier detection, connection settings) and by
`httproute` (consistent-hash policies live on routes in Envoy). A subset's policy overrides the rule's
top-level one field by field, and `portLevelSettings` override both for their port, as Istio merges them.
`tls` is merged here and applied by `cluster_tls` (SIMPLE / MUTUAL origination; there is no mesh mTLS yet,
so ISTIO_MUTUAL and DISABLE both mean plaintext).
"""

from __future__ import annotations

from typing import Any

from .push_context import IstioConfig
from .spec import Obj, duration, sub

__all__ = ["effective_policy", "apply_policy", "hash_policy", "default_circuit_breakers"]

_KEYS = ("loadBalancer", "connectionPool", "outlierDetection", "tls")
_UNLIMITED = 4294967295  # Istio lifts Envoy's default thresholds (1024) unless the DR sets them


def _port_settings(policy: Obj, port: int) -> Obj:
    for pls in policy.get("portLevelSettings") or []:
        if isinstance(pls, dict) and int((pls.get("port") or {}).get("number") or 0) == port:
            return pls
    return {}


def effective_policy(dr: IstioConfig | None, subset: str, port: int) -> Obj:
    """The loadBalancer / connectionPool / outlierDetection / tls that apply to one cluster."""
    if dr is None:
        return {}
    out: Obj = {}
    layers: list[Any] = [dr.spec.get("trafficPolicy")]
    if subset:
        for s in dr.spec.get("subsets") or []:
            if isinstance(s, dict) and s.get("name") == subset:
                layers.append(s.get("trafficPolicy"))
    for policy in layers:
        if not isinstance(policy, dict):
            continue
        for layer in (policy, _port_settings(policy, port)):
            for key in _KEYS:
                if isinstance(layer.get(key), dict):
                    out[key] = layer[key]
    return out


def default_circuit_breakers() -> Obj:
    return {"thresholds": [{"max_connections": _UNLIMITED, "max_pending_requests": _UNLIMITED,
                            "max_requests": _UNLIMITED, "max_retries": _UNLIMITED, "track_remaining": True}]}


def apply_policy(cluster: Obj, policy: Obj, http_options: Obj) -> None:
    """Write a policy's effects into a cluster dict; `http_options` is the cluster's
    `HttpProtocolOptions.common_http_protocol_options`, filled in place."""
    _apply_load_balancer(cluster, policy.get("loadBalancer") or {})
    _apply_connection_pool(cluster, policy.get("connectionPool") or {}, http_options)
    outlier = policy.get("outlierDetection")
    if isinstance(outlier, dict):
        _apply_outlier(cluster, outlier)


def _apply_load_balancer(cluster: Obj, lb: Obj) -> None:
    cluster["lb_policy"] = "LEAST_REQUEST"  # Istio's default since 1.14 (Envoy's is ROUND_ROBIN)
    simple = str(lb.get("simple") or "")
    if simple == "ROUND_ROBIN":
        cluster["lb_policy"] = "ROUND_ROBIN"
    elif simple == "RANDOM":
        cluster["lb_policy"] = "RANDOM"
    # LEAST_CONN / LEAST_REQUEST keep the default; PASSTHROUGH needs ORIGINAL_DST, unusable behind an
    # HTTP proxy, so it keeps the default too.
    ch = lb.get("consistentHash")
    if isinstance(ch, dict):
        if isinstance(ch.get("maglev"), dict):
            cluster["lb_policy"] = "MAGLEV"
            size = ch["maglev"].get("tableSize")
            if size:
                cluster["maglev_lb_config"] = {"table_size": int(size)}
        else:
            cluster["lb_policy"] = "RING_HASH"
            size = sub(ch, "ringHash").get("minimumRingSize") or ch.get("minimumRingSize")
            if size:
                cluster["ring_hash_lb_config"] = {"minimum_ring_size": int(size)}


def _apply_connection_pool(cluster: Obj, pool: Obj, http_options: Obj) -> None:
    threshold = cluster["circuit_breakers"]["thresholds"][0]
    tcp, http = sub(pool, "tcp"), sub(pool, "http")
    if tcp.get("maxConnections"):
        threshold["max_connections"] = int(tcp["maxConnections"])
    if (d := duration(tcp.get("connectTimeout"))) is not None:
        cluster["connect_timeout"] = d
    if (d := duration(tcp.get("maxConnectionDuration"))) is not None:
        http_options["max_connection_duration"] = d
    if (d := duration(tcp.get("idleTimeout"))) is not None:
        http_options["idle_timeout"] = d
    keepalive = tcp.get("tcpKeepalive")
    if isinstance(keepalive, dict):
        ka: Obj = {}
        if keepalive.get("probes"):
            ka["keepalive_probes"] = int(keepalive["probes"])
        for key, field in (("time", "keepalive_time"), ("interval", "keepalive_interval")):
            if (d := duration(keepalive.get(key))) is not None:
                ka[field] = max(1, int(float(d[:-1])))
        cluster["upstream_connection_options"] = {"tcp_keepalive": ka}
    if http.get("http1MaxPendingRequests"):
        threshold["max_pending_requests"] = int(http["http1MaxPendingRequests"])
    if http.get("http2MaxRequests"):
        threshold["max_requests"] = int(http["http2MaxRequests"])
    if http.get("maxRetries"):
        threshold["max_retries"] = int(http["maxRetries"])
    if (d := duration(http.get("idleTimeout"))) is not None:
        http_options["idle_timeout"] = d
    if http.get("maxRequestsPerConnection"):
        http_options["max_requests_per_connection"] = int(http["maxRequestsPerConnection"])


def _apply_outlier(cluster: Obj, od: Obj) -> None:
    out: Obj = {"enforcing_success_rate": 0}  # Istio disables success-rate ejection
    five = od.get("consecutive5xxErrors", od.get("consecutiveErrors"))
    if five is not None:
        out["consecutive_5xx"] = int(five)
        out["enforcing_consecutive_5xx"] = 100 if int(five) > 0 else 0
    gateway = od.get("consecutiveGatewayErrors")
    if gateway is not None:
        out["consecutive_gateway_failure"] = int(gateway)
        out["enforcing_consecutive_gateway_failure"] = 100 if int(gateway) > 0 else 0
    if (d := duration(od.get("interval"))) is not None:
        out["interval"] = d
    if (d := duration(od.get("baseEjectionTime"))) is not None:
        out["base_ejection_time"] = d
    if od.get("maxEjectionPercent"):
        out["max_ejection_percent"] = int(od["maxEjectionPercent"])
    if od.get("splitExternalLocalOriginErrors"):
        out["split_external_local_origin_errors"] = True
        if od.get("consecutiveLocalOriginFailures"):
            out["consecutive_local_origin_failure"] = int(od["consecutiveLocalOriginFailures"])
            out["enforcing_consecutive_local_origin_failure"] = 100
        out["enforcing_local_origin_success_rate"] = 0
    cluster["outlier_detection"] = out
    # Istio turns the panic threshold off (0) unless minHealthPercent says otherwise: with few pods per
    # service, Envoy's default 50% would send traffic to ejected hosts.
    cluster.setdefault("common_lb_config", {})["healthy_panic_threshold"] = {
        "value": float(od.get("minHealthPercent") or 0)}


def _consistent_hash(dr: IstioConfig | None, subset: str, port: int) -> Obj | None:
    """Istio's pick for route hashing: subset port-level, subset, rule port-level, rule top level. Unlike
    the cluster policy, a subset's non-hash load balancer does not hide the rule's hash (it is moot there)."""
    if dr is None:
        return None
    top = sub(dr.spec, "trafficPolicy")
    subset_policy: Obj = {}
    for s in dr.spec.get("subsets") or [] if subset else []:
        if isinstance(s, dict) and s.get("name") == subset:
            subset_policy = sub(s, "trafficPolicy")
    for layer in (_port_settings(subset_policy, port), subset_policy, _port_settings(top, port), top):
        ch = sub(layer, "loadBalancer").get("consistentHash")
        if isinstance(ch, dict):
            return ch
    return None


def hash_policy(dr: IstioConfig | None, subset: str, port: int) -> Obj | None:
    """The route hash policy for a destination whose cluster hashes consistently, or None."""
    ch = _consistent_hash(dr, subset, port)
    if ch is None:
        return None
    if ch.get("httpHeaderName"):
        return {"header": {"header_name": str(ch["httpHeaderName"])}}
    cookie = ch.get("httpCookie")
    if isinstance(cookie, dict) and cookie.get("name"):
        out: Obj = {"name": str(cookie["name"])}
        if cookie.get("path"):
            out["path"] = str(cookie["path"])
        if (d := duration(cookie.get("ttl"))) is not None:
            out["ttl"] = d
        return {"cookie": out}
    if ch.get("useSourceIp"):
        return {"connection_properties": {"source_ip": True}}
    if ch.get("httpQueryParameterName"):
        return {"query_parameter": {"name": str(ch["httpQueryParameterName"])}}
    return None
