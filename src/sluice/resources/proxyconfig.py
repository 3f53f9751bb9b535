"""A pod's proxy settings from its annotations, as istio-agent reads them into the proxy's bootstrap.

Sluice acts on the stats a proxy keeps (Istio's `stats_matcher`, pkg/bootstrap/config.go `getStatsOptions` and
the envoy_bootstrap.json template): Envoy creates only the stats whose names match the inclusion list, every
other one is a no-op, so a sidecar keeps Istio's own metrics, the cluster manager's, listener manager's, server's
and xDS cluster's stats, and what the pod asks for more with the `sidecar.istio.io/statsInclusion{Prefixes,
Suffixes,Regexps}` annotations (comma-separated; an annotation replaces, never merges with, the same list of the
`proxy.istio.io/config` annotation's `proxyStatsMatcher`). Istio's samples ask so: fortio's Deployment adds
`cluster.outbound` for the circuit-breaking task's `pilot-agent request GET stats`.

Pure: read by the injector (`sluice.resources.injection`, which refuses a `proxy.istio.io/config` that does not
parse, as Istio's does) and by the bootstrap (`sluice.xds.bootstrap`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["PROXY_CONFIG", "UNAPPLIED", "hold_application", "proxy_config", "stats_matcher", "unapplied"]

PROXY_CONFIG = "proxy.istio.io/config"
_MAX_CONFIG = 64 << 10
UNAPPLIED = ("is stored but not applied: of a pod's ProxyConfig Sluice acts on proxyStatsMatcher and "
             "holdApplicationUntilProxyStarts only")
_APPLIED = ("proxyStatsMatcher", "holdApplicationUntilProxyStarts")
_ANNOTATION = "sidecar.istio.io/statsInclusion"
# pkg/bootstrap/config.go: required by the agent's readiness check and its own telemetry
REQUIRED_PREFIXES = ("cluster_manager", "listener_manager", "server", "cluster.xds-grpc", "wasm")
RBAC_SUFFIXES = ("rbac.allowed", "rbac.denied", "shadow_allowed", "shadow_denied")
REQUIRED_REGEXPS = (r"vhost\..*\.route\..*",)  # a VirtualService route's stat_prefix
_LISTS = {"Prefixes": "inclusionPrefixes", "Suffixes": "inclusionSuffixes", "Regexps": "inclusionRegexps"}


def proxy_config(annotations: Mapping[str, Any]) -> dict[str, Any]:
    """The `proxy.istio.io/config` annotation's ProxyConfig ({} without one). Raises ValueError with what is
    wrong: not YAML, not an object, a `proxyStatsMatcher` list that is not a list of strings."""
    from sluice.kube.decoding import DecodeError, decode_yaml

    text = str(annotations.get(PROXY_CONFIG, "") or "")
    if not text.strip():
        return {}
    try:
        doc = decode_yaml(text, _MAX_CONFIG)
    except DecodeError as e:
        raise ValueError(str(e)) from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ValueError(f"cannot unmarshal {type(doc).__name__} into ProxyConfig: expected an object")
    matcher = _field(doc, "proxyStatsMatcher")
    if matcher is not None and not isinstance(matcher, dict):
        raise ValueError("proxyStatsMatcher: expected an object")
    for key in _LISTS.values():
        value = _field(matcher or {}, key)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise ValueError(f"proxyStatsMatcher.{key}: expected a list of strings")
    hold = _field(doc, "holdApplicationUntilProxyStarts")
    if hold is not None and not isinstance(hold, bool):
        raise ValueError("holdApplicationUntilProxyStarts: expected a boolean")
    return doc


def hold_application(annotations: Mapping[str, Any], default: bool = False) -> bool:
    """Whether the pod's ProxyConfig asks for `holdApplicationUntilProxyStarts` (the injector then puts the proxy
    first, with a postStart hook that waits for it to be ready); `default`, the mesh's `defaultConfig` value,
    where the annotation does not set it (Istio merges the annotation over it). Unparsable: refused at admission."""
    try:
        hold = _field(proxy_config(annotations), "holdApplicationUntilProxyStarts")
    except ValueError:
        return default
    return hold if isinstance(hold, bool) else default


def _proto_name(name: str) -> str:
    """A field's proto name from its JSON name (`proxyStatsMatcher` → `proxy_stats_matcher`)."""
    return re.sub(r"[A-Z]", lambda m: "_" + m.group().lower(), name)


def _field(message: Mapping[str, Any], name: str) -> Any:
    """A ProxyConfig field by its JSON name or, as protobuf's JSON parser also reads it, its proto name."""
    return message.get(name, message.get(_proto_name(name)))


def unapplied(annotations: Mapping[str, Any]) -> list[str]:
    """What a pod's `proxy.istio.io/config` sets that Sluice stores but does not act on (every ProxyConfig field
    but `proxyStatsMatcher` and `holdApplicationUntilProxyStarts`), each as
    `metadata.annotations[proxy.istio.io/config].<field>`; for the API server's write warnings and `sluice analyze`."""
    try:
        config = proxy_config(annotations)
    except ValueError:
        return []  # refused at admission; an older stored pod's is not this check's to report
    applied = {*_APPLIED, *map(_proto_name, _APPLIED)}
    return [f"metadata.annotations[{PROXY_CONFIG}].{key}" for key in config if key not in applied]


def _matcher_list(config: Mapping[str, Any], key: str) -> list[str] | None:
    value = _field(_field(config, "proxyStatsMatcher") or {}, key)
    return [str(v) for v in value] if isinstance(value, list) else None


def stats_matcher(annotations: Mapping[str, Any], pod_ips: Sequence[str]) -> dict[str, Any]:
    """Envoy's bootstrap `stats_config.stats_matcher` for a proxy with these pod annotations and IPs. A
    `proxy.istio.io/config` that does not parse counts as none (the injector refuses it at admission)."""
    try:
        config = proxy_config(annotations)
    except ValueError:
        config = {}

    def option(kind: str, required: Sequence[str]) -> list[str]:
        annotated = str(annotations.get(_ANNOTATION + kind, "") or "")
        chosen = annotated.split(",") if annotated else (_matcher_list(config, _LISTS[kind]) or [])
        out: list[str] = []
        for pattern in [*chosen, *required]:
            if "{pod_ip}" in pattern:  # `http.{pod_ip}_`: the inbound listener's downstream stats, per pod IP
                out.extend(pattern.replace("{pod_ip}", ip) for ip in pod_ips)
            else:
                out.append(pattern)
        return out

    patterns: list[dict[str, Any]] = [{"prefix": "reporter="}]
    patterns += [{"prefix": p} for p in option("Prefixes", REQUIRED_PREFIXES)]
    patterns += [{"suffix": s} for s in option("Suffixes", RBAC_SUFFIXES)]
    patterns += [{"safe_regex": {"regex": r}} for r in option("Regexps", REQUIRED_REGEXPS)]
    patterns += [{"prefix": "component"}, {"prefix": "istio"}]
    return {"inclusion_list": {"patterns": patterns}}
