"""Mutating admission: what the API server adds to particular kinds on write, kept out of the generic registry
(kube-apiserver runs these as admission plugins and registry strategies; Istio's sidecar injector is a mutating
webhook).

* `SidecarInjector`: a new Pod gets the `istio-proxy` container (`sluice.resources.injection`).
* `ServiceAllocator`: a new Service gets a ClusterIP from 10.96.0.0/16 (kube-apiserver's default service CIDR)
  and a LoadBalancer Service its 127.0.0.1 ingress and host ports (`sluice.resources.loadbalancer`), on create
  and on update.

A mutator whose work reads stored state (`reads_store`) makes writes of its kinds run on the event loop, where
the read and the commit cannot interleave with another write.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from sluice.api.errors import ApiError
from sluice.meshconfig import MeshConfig
from sluice.objects import Obj
from sluice.resources import injection, loadbalancer

__all__ = ["Mutator", "SidecarInjector", "ServiceAllocator", "on_loop_kinds"]




class Mutator(Protocol):
    kinds: frozenset[str]
    reads_store: bool

    def on_create(self, obj: Obj) -> None:
        """Change a new object before it is admitted and stored."""
        ...

    def on_update(self, new: Obj, current: Obj) -> None:
        """Change an updated object (not a status update) before it is admitted and stored."""
        ...


class SidecarInjector:
    """`mesh_config`: the mesh config in force (its `defaultConfig` applies to every pod injected), as Istio's
    webhook reads it from its mesh watcher; a ConfigMap write racing a Pod create may go either way there too.
    It reads the store, so a large Pod body is admitted on the loop (a body worker has no store)."""

    kinds = frozenset({"Pod"})
    reads_store = True

    def __init__(self, mesh_config: Callable[[], MeshConfig] = MeshConfig,
                 namespace_labels: Callable[[str], Mapping[str, str]] = lambda _: {}) -> None:
        self._mesh_config = mesh_config
        self._namespace_labels = namespace_labels

    def on_create(self, obj: Obj) -> None:
        namespace = str((obj.get("metadata") or {}).get("namespace") or "default")
        try:
            injection.inject_sidecar(obj, self._mesh_config(), self._namespace_labels(namespace))
        except injection.InjectionError as e:
            # kube-apiserver's answer when a mutating webhook refuses (webhook/errors.ToStatusErr): 400, no reason
            raise ApiError(400, "", f'admission webhook "{injection.WEBHOOK}" denied the request: {e}') from None

    def on_update(self, new: Obj, current: Obj) -> None:
        pass  # injection happens at creation only, as Istio's webhook does


def _drop_type_dependent_fields(new: Obj, current: Obj) -> None:
    """kube's dropTypeDependentFields for a Service turned ExternalName: the addresses it had (carried over
    unchanged by an apply or a patch) go; ones the update sets itself stay, for validation to refuse."""
    spec, old = new.get("spec"), current.get("spec")
    if not isinstance(spec, dict) or not isinstance(old, dict):
        return
    if spec.get("type") != "ExternalName" or old.get("type", "ClusterIP") == "ExternalName":
        return
    for key in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
        if key in spec and spec[key] == old.get(key):
            del spec[key]


class ServiceAllocator:
    kinds = frozenset({"Service"})
    reads_store = True

    def __init__(self, services: Callable[[], Iterable[Obj]], gateway_ports: loadbalancer.PortMap) -> None:
        self._services = services
        self._gateway_ports = gateway_ports

    def on_create(self, obj: Obj) -> None:
        self._allocate_cluster_ip(obj)
        loadbalancer.assign(obj, self._gateway_ports)

    def on_update(self, new: Obj, current: Obj) -> None:
        _drop_type_dependent_fields(new, current)
        loadbalancer.assign(new, self._gateway_ports)

    def _allocate_cluster_ip(self, svc: Obj) -> None:
        spec = svc.get("spec")
        if not isinstance(spec, dict) or spec.get("type") == "ExternalName":
            return
        if spec.get("clusterIP"):
            if spec["clusterIP"] != "None":
                spec.setdefault("clusterIPs", [spec["clusterIP"]])
            return
        used = {str((s.get("spec") or {}).get("clusterIP")) for s in self._services()}
        # 10.96.0.0/16, as a default kube-apiserver service CIDR; .1 is the "kubernetes" service's.
        for n in range(10, 65534):
            ip = f"10.96.{n >> 8}.{n & 255}"
            if ip not in used and ip != "10.96.0.10":  # kube-dns's address: the pods' nameserver
                spec["clusterIP"] = ip
                spec["clusterIPs"] = [ip]
                spec.setdefault("ipFamilies", ["IPv4"])
                spec.setdefault("ipFamilyPolicy", "SingleStack")
                spec.setdefault("internalTrafficPolicy", "Cluster")
                return
        raise ApiError(500, "InternalError", "Internal error occurred: no ClusterIP left in 10.96.0.0/16")


def on_loop_kinds(mutators: Iterable[Mutator]) -> frozenset[str]:
    """The kinds whose writes must run on the event loop (a mutator of theirs reads stored state)."""
    return frozenset(k for m in mutators if m.reads_store for k in m.kinds)
