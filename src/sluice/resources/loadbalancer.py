"""Sluice's load balancer: a Service of type LoadBalancer is served on the host's 127.0.0.1.

kind with cloud-provider-kind or `minikube tunnel` give a LoadBalancer Service an external address; Sluice gives
it `status.loadBalancer.ingress[0].ip: 127.0.0.1`, and the ingress gateway's Envoy (the pods such a Service
selects) listens there at the Service's ports.

A port the daemon cannot bind (below `net.ipv4.ip_unprivileged_port_start` without root), or one the
`gateway_ports` setting moves (`{80: 18080}`), is served at another host port. So that the Service keeps
saying where it answers (`kubectl get svc`, and Istio's `INGRESS_PORT=$(kubectl … -o
jsonpath='{.spec.ports[?(@.name=="http2")].port}')` recipe), the API server stores the moved number as the
Service's `port` when it is written; `targetPort` is untouched, and a Gateway server that names the port as
written (`number: 80`) still finds it (`PortMap.host`). Used by the API registry (on every Service write) and
by the xDS translation (which host port a gateway server listens on).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PortMap", "INGRESS_IP", "UNPRIVILEGED_OFFSET", "assign", "unprivileged_port_start"]

INGRESS_IP = "127.0.0.1"
UNPRIVILEGED_OFFSET = 8000  # without root, 80 → 8080 and 443 → 8443 (Istio's own targetPorts for them)


def unprivileged_port_start() -> int:
    """The lowest port this process may bind: 0 as root, else the kernel's ip_unprivileged_port_start."""
    if os.geteuid() == 0:
        return 0
    try:
        with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 1024


@dataclass(frozen=True)
class PortMap:
    """LoadBalancer Service port (as written) → the host port that serves it."""

    explicit: Mapping[int, int] = field(default_factory=dict)
    unprivileged_below: int = 0  # ports below this cannot be bound: they move by UNPRIVILEGED_OFFSET

    def host(self, port: int) -> int:
        if port in self.explicit:
            return int(self.explicit[port])
        return port + UNPRIVILEGED_OFFSET if port < self.unprivileged_below else port

    @classmethod
    def from_setting(cls, setting: Any) -> PortMap:
        """`gateway_ports` from config.yaml: a map of port → port, each 1-65535 (ValueError otherwise)."""
        explicit: dict[int, int] = {}
        if setting in (None, ""):
            setting = {}
        if not isinstance(setting, Mapping):
            raise ValueError(f"gateway_ports must be a map of service port to host port, got {setting!r}")
        for k, v in setting.items():
            try:
                port, host = int(k), int(v)
            except (TypeError, ValueError):
                raise ValueError(f"gateway_ports: {k!r}: {v!r} is not a port number pair") from None
            if not (1 <= port <= 65535 and 1 <= host <= 65535) or isinstance(v, bool):
                raise ValueError(f"gateway_ports: {k}: {v}: ports must be between 1 and 65535, inclusive")
            explicit[port] = host
        return cls(explicit, unprivileged_port_start())


def assign(svc: dict[str, Any], ports: PortMap) -> None:
    """On a Service write: a LoadBalancer's moved ports and its ingress address; `status.loadBalancer` as
    kube-apiserver keeps it (`{}`) for every other type."""
    spec = svc.get("spec")
    status = svc.get("status")
    if not isinstance(status, dict):
        status = svc["status"] = {}
    if not isinstance(spec, dict) or spec.get("type") != "LoadBalancer":
        status["loadBalancer"] = {}
        return
    out: list[Any] = []
    seen: dict[tuple[int, str], int] = {}
    for p in spec.get("ports") or []:
        if not isinstance(p, dict) or not isinstance(p.get("port"), int) or isinstance(p["port"], bool):
            out.append(p)
            continue
        written = p["port"]
        p["port"] = ports.host(written)
        key = (p["port"], str(p.get("protocol") or "TCP"))
        if key in seen and (written != p["port"] or seen[key] != p["port"]):
            # `kubectl apply` of the manifest as written (port 80) merges it beside the stored, moved entry
            # (18080): they are one port.
            continue
        seen[key] = written
        out.append(p)
    spec["ports"] = out
    status["loadBalancer"] = {"ingress": [{"ip": INGRESS_IP, "ipMode": "VIP"}]}
