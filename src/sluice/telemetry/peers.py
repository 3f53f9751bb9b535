"""Who is at the other end of a logged request: pods by IP and Services by name, kept from the store.

Istio learns a peer's identity through metadata exchange and endpoint metadata; here every pod has a
unique loopback IP and sidecars connect upstream from their pod IP, so an address is enough. The index
is fed by informers in `sluice.telemetry.collector` and read by `sluice.telemetry.als` on every new label
set (never per entry: the servicer caches resolved label sets and drops its caches when `generation`
changes). A deleted pod stays resolvable for a while, because its last access-log batches arrive after
the store has forgotten it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sluice import mesh
from sluice.objects import Obj
from sluice.xds.bootstrap import CLUSTER_ID, workload_name

__all__ = ["Workload", "ServiceInfo", "PodIndex", "workload_from_pod", "workload_from_node",
           "CANONICAL_NAME", "CANONICAL_REVISION"]

CANONICAL_NAME = "service.istio.io/canonical-name"
CANONICAL_REVISION = "service.istio.io/canonical-revision"


@dataclass(frozen=True, slots=True)
class Workload:
    """A pod as telemetry labels see it. Empty strings mean "not set" (the caller decides between
    Istio's `unknown`/`latest` and an empty value, which differ between the proxy itself and a peer)."""

    pod: str
    namespace: str
    ip: str
    workload: str
    app: str = ""
    version: str = ""
    canonical_service: str = ""
    canonical_revision: str = ""
    service_account: str = "default"
    cluster: str = CLUSTER_ID
    meshed: bool = True  # runs an Envoy that would do Istio's metadata exchange (sidecar or gateway)
    uid: str = ""  # the stored pod's UID (empty when read from a node)
    labels: Mapping[str, str] = field(default_factory=dict, compare=False)
    named_ports: Mapping[str, int] = field(default_factory=dict, compare=False)

    @property
    def principal(self) -> str:
        return f"spiffe://{mesh.CLUSTER_DOMAIN}/ns/{self.namespace}/sa/{self.service_account}"


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    name: str
    namespace: str
    hostname: str
    selector: Mapping[str, str]
    # (port, targetPort as int or name)
    ports: tuple[tuple[int, int | str], ...]

    def targets(self, port: int, named: Mapping[str, int]) -> bool:
        """Whether traffic for this Service reaches a pod on container `port`."""
        for _, target in self.ports:
            if target == port or (isinstance(target, str) and named.get(target) == port):
                return True
        return False


def _str_map(m: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in (m or {}).items()} if isinstance(m, dict) else {}


def _app(labels: Mapping[str, str]) -> str:
    return labels.get("app") or labels.get("app.kubernetes.io/name") or ""


def _version(labels: Mapping[str, str]) -> str:
    return labels.get("version") or labels.get("app.kubernetes.io/version") or ""


def workload_from_pod(pod: Obj, ip: str | None = None) -> Workload | None:
    """The workload of a stored Pod (at `ip`, default its status's podIP), or None while it has no IP."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    ip = ip or str((pod.get("status") or {}).get("podIP") or "")
    if not ip:
        return None
    labels = _str_map(meta.get("labels"))
    containers = [c for c in spec.get("containers") or [] if isinstance(c, dict)]
    named: dict[str, int] = {}
    for c in containers:
        for p in c.get("ports") or []:
            if isinstance(p, dict) and p.get("name") and p.get("containerPort"):
                named[str(p["name"])] = int(p["containerPort"])
    meshed = labels.get("istio") == "ingressgateway" or any(c.get("name") == mesh.SIDECAR_CONTAINER for c in containers)
    return Workload(
        pod=str(meta.get("name") or ""), namespace=str(meta.get("namespace") or "default"), ip=ip,
        workload=workload_name(pod), app=_app(labels), version=_version(labels),
        canonical_service=labels.get(CANONICAL_NAME, ""), canonical_revision=labels.get(CANONICAL_REVISION, ""),
        service_account=str(spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"),
        meshed=meshed, labels=labels, named_ports=named, uid=str(meta.get("uid") or ""))


def _field(fields: Any, key: str) -> str:
    return str(fields[key].string_value) if key in fields else ""


def workload_from_node(node: Any) -> tuple[str, Workload] | None:
    """(proxy type, workload) from the `envoy.config.core.v3.Node` of an ALS stream identifier.

    Istio's stats filter labels the proxy's own side from its node metadata (WORKLOAD_NAME, NAMESPACE,
    LABELS, CLUSTER_ID), which `sluice.xds.bootstrap` writes the way istio-agent does."""
    parsed = mesh.parse_node_id(str(node.id))
    if parsed is None:
        return None
    kind, ip, pod, namespace = parsed
    fields = node.metadata.fields
    labels: dict[str, str] = {}
    if "LABELS" in fields:
        labels = {str(k): str(v.string_value) for k, v in fields["LABELS"].struct_value.fields.items()}
    named: dict[str, int] = {}
    raw_ports = _field(fields, "POD_PORTS")
    if raw_ports:
        try:
            for p in json.loads(raw_ports):
                if isinstance(p, dict) and p.get("name") and p.get("containerPort"):
                    named[str(p["name"])] = int(p["containerPort"])
        except (ValueError, TypeError):
            pass  # a malformed hint only loses named-targetPort matching
    return kind, Workload(
        pod=_field(fields, "NAME") or pod, namespace=_field(fields, "NAMESPACE") or namespace, ip=ip,
        # Not the app/version fallbacks a peer gets: the filter reads exactly LABELS["app"/"version"].
        workload=_field(fields, "WORKLOAD_NAME"), app=labels.get("app", ""), version=labels.get("version", ""),
        canonical_service=labels.get(CANONICAL_NAME, ""), canonical_revision=labels.get(CANONICAL_REVISION, ""),
        service_account=_field(fields, "SERVICE_ACCOUNT") or "default", cluster=_field(fields, "CLUSTER_ID"),
        meshed=True, labels=labels, named_ports=named)


def service_from_obj(svc: Obj) -> ServiceInfo | None:
    meta = svc.get("metadata") or {}
    spec = svc.get("spec") or {}
    name, ns = str(meta.get("name") or ""), str(meta.get("namespace") or "default")
    if not name:
        return None
    ports: list[tuple[int, int | str]] = []
    for p in spec.get("ports") or []:
        if not isinstance(p, dict) or not p.get("port"):
            continue
        port = int(p["port"])
        target = p.get("targetPort") or port
        ports.append((port, int(target) if isinstance(target, int) or str(target).isdigit() else str(target)))
    return ServiceInfo(name, ns, mesh.fqdn(name, ns), _str_map(spec.get("selector")), tuple(ports))


class PodIndex:
    """Pod IP → Workload and namespace → Services. Not thread-safe: the daemon's event loop owns it."""

    def __init__(self, linger: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.linger = linger
        self._clock = clock
        self._by_ip: dict[str, Workload] = {}
        self._gone: dict[str, tuple[Workload, float]] = {}  # ip → (workload, forget after)
        self._services: dict[str, dict[str, ServiceInfo]] = {}
        self.generation = 0  # bumped on every change; resolved label sets older than this are stale

    # ------------------------------------------------------------------ updates
    def pod_event(self, typ: str, obj: Obj, prev: Obj | None) -> None:
        old = workload_from_pod(prev) if prev is not None else None
        new = workload_from_pod(obj) if typ != "DELETED" else None
        if old is not None and (new is None or new.ip != old.ip) and self._by_ip.get(old.ip) == old:
            del self._by_ip[old.ip]
            self._gone[old.ip] = (old, self._clock() + self.linger)
        if new is not None:
            self._by_ip[new.ip] = new
            self._gone.pop(new.ip, None)
        self._expire()
        self.generation += 1

    def service_event(self, typ: str, obj: Obj, prev: Obj | None) -> None:
        meta = obj.get("metadata") or {}
        ns, name = str(meta.get("namespace") or "default"), str(meta.get("name") or "")
        if typ == "DELETED":
            self._services.get(ns, {}).pop(name, None)
        else:
            info = service_from_obj(obj)
            if info is not None:
                self._services.setdefault(ns, {})[name] = info
        self.generation += 1

    def _expire(self) -> None:
        now = self._clock()
        for ip in [ip for ip, (_, until) in self._gone.items() if until <= now]:
            del self._gone[ip]

    # ------------------------------------------------------------------ lookups
    def pod(self, ip: str) -> Workload | None:
        w = self._by_ip.get(ip)
        if w is not None:
            return w
        gone = self._gone.get(ip)
        if gone is not None and gone[1] > self._clock():
            return gone[0]
        return None

    def inbound_service(self, own: Workload, port: int) -> ServiceInfo | None:
        """The Service an inbound request on `port` of this pod belongs to (Istio puts the first such
        Service into the inbound cluster's metadata; here: the first by name)."""
        labels = own.labels
        named = own.named_ports
        if not named:
            # A node's POD_PORTS may lack names the stored pod has.
            stored = self._by_ip.get(own.ip)
            named = stored.named_ports if stored is not None else {}
        for name in sorted(self._services.get(own.namespace, {})):
            svc = self._services[own.namespace][name]
            if svc.selector and all(labels.get(k) == v for k, v in svc.selector.items()) and svc.targets(port, named):
                return svc
        return None

    def service_by_host(self, host: str, namespace: str) -> ServiceInfo | None:
        """`reviews`, `reviews.tutorial`, `reviews.tutorial.svc[.cluster.local]` (port stripped by the
        caller) as the proxy in `namespace` would resolve it."""
        parts = host.lower().split(".")
        if len(parts) == 1:
            return self._services.get(namespace, {}).get(parts[0])
        suffix = parts[2:]
        if suffix and suffix != ["svc"] and suffix != ["svc", *mesh.CLUSTER_DOMAIN.split(".")]:
            return None
        return self._services.get(parts[1], {}).get(parts[0])
