"""A small cluster's objects for the DNS tests (unit and integration)."""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]
NS = "tutorial"


def _meta(name: str, ns: str = NS, **extra: Any) -> Obj:
    return {"name": name, "namespace": ns, **extra}


def _pod(name: str, ip: str, ready: bool = True, **spec: Any) -> Obj:
    return {"metadata": _meta(name, labels={"app": "db"}), "spec": {"containers": [{"name": "c"}], **spec},
            "status": {"podIP": ip, "podIPs": [{"ip": ip}], "phase": "Running"}}


def _addr(pod: str, ip: str) -> Obj:
    return {"ip": ip, "targetRef": {"kind": "Pod", "namespace": NS, "name": pod}}


NAMESPACES = [{"metadata": {"name": n}} for n in ("default", NS, "empty")]
SERVICES = [
    {"metadata": _meta("reviews"), "spec": {"clusterIP": "10.96.0.12", "clusterIPs": ["10.96.0.12"], "ports": [
        {"name": "http", "port": 9080, "protocol": "TCP", "targetPort": 9080},
        {"name": "grpc", "port": 9090, "protocol": "TCP"}, {"port": 7000, "protocol": "UDP"}]}},
    {"metadata": _meta("db"), "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}},
    {"metadata": _meta("lonely"), "spec": {"clusterIP": "None", "ports": [{"port": 80}]}},
    {"metadata": _meta("ext"), "spec": {"type": "ExternalName", "externalName": "reviews.tutorial.svc.cluster.local"}},
]
PODS = [_pod("db-0", "10.244.0.7", hostname="db-0", subdomain="db"), _pod("db-1", "10.244.0.8"),
        _pod("db-2", "10.244.0.9", ready=False)]
ENDPOINTS = [
    {"metadata": _meta("db"), "subsets": [{
        "addresses": [_addr("db-0", "10.244.0.7"), _addr("db-1", "10.244.0.8")],
        "notReadyAddresses": [_addr("db-2", "10.244.0.9")],
        "ports": [{"name": "pg", "port": 15432, "protocol": "TCP"}]}]},
    {"metadata": _meta("reviews"), "subsets": [{"addresses": [{"ip": "10.244.0.20"}],
                                                 "ports": [{"name": "http", "port": 9080}]}]},
]
SERVICE_ENTRIES = [
    {"metadata": _meta("external-db"), "spec": {"hosts": ["mysql.example.internal", "*.wild.example"],
                                                  "addresses": ["240.240.0.5", "240.241.0.0/16"],
                                                  "ports": [{"number": 3306, "name": "tcp", "protocol": "TCP"}]}},
    {"metadata": _meta("no-address"), "spec": {"hosts": ["api.example.com"], "resolution": "DNS"}},
    {"metadata": {**_meta("opted-out"), "labels": {"networking.istio.io/enable-autoallocate-ip": "false"}},
     "spec": {"hosts": ["optout.example.com"], "resolution": "DNS"}},
    {"metadata": _meta("passthrough"), "spec": {"hosts": ["none.example.com"], "resolution": "NONE"}},
]


def objects() -> dict[str, list[Obj]]:
    return {"namespaces": NAMESPACES, "services": SERVICES, "endpoints": ENDPOINTS, "pods": PODS,
            "service_entries": SERVICE_ENTRIES}
