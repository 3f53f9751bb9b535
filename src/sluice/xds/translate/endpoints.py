"""EDS: one ClusterLoadAssignment per outbound cluster (Istio's endpoint builder, the parts we need).

An endpoint is a pod IP and the Service's targetPort resolved against that pod's container ports: where
the destination sidecar's inbound listener (or, without a sidecar, the app itself) listens. A subset
cluster keeps only the endpoints whose pod labels match the DestinationRule subset's labels. A ServiceEntry of
resolution STATIC has its `endpoints` here (address, port by name, labels).
Called by `sluice.xds.translate.generate`, which shares the result among the proxies of a namespace that the
same DestinationRules select.
"""

from __future__ import annotations

from sluice import mesh

from .clusters import Labels, eds_service
from .push_context import Endpoint, PushContext, SidecarScope
from .spec import Obj, labels_match

__all__ = ["build_endpoints"]


def _assignment(name: str, endpoints: list[Endpoint]) -> Obj:
    lb = [{"endpoint": {"address": {"socket_address": {"address": e.ip, "port_value": e.port}}}}
          for e in endpoints]
    out: Obj = {"cluster_name": name}
    if lb:
        out["endpoints"] = [{"locality": {}, "lb_endpoints": lb}]
    return out


def _build(push: PushContext, namespace: str, labels: Labels, scope: SidecarScope | None) -> list[Obj]:
    out = []
    for svc in push.visible_services(namespace, scope):
        if not eds_service(push, svc):
            continue  # ORIGINAL_DST (headless, resolution NONE) or DNS clusters: no endpoints to push
        dr = push.destination_rule(svc.hostname, namespace, labels)
        subsets: list[tuple[str, dict[str, str]]] = []
        for s in (dr.spec.get("subsets") or []) if dr else []:
            if isinstance(s, dict) and s.get("name"):
                subsets.append((str(s["name"]), {str(k): str(v) for k, v in (s.get("labels") or {}).items()}))
        for sp in svc.ports:
            if sp.protocol == "UDP":
                continue
            eps = list(push.endpoints(svc.hostname, sp.port))
            out.append(_assignment(mesh.outbound_cluster(sp.port, "", svc.hostname), eps))
            seen: set[str] = set()
            for name, labels in subsets:
                if name in seen:
                    continue
                seen.add(name)
                out.append(_assignment(mesh.outbound_cluster(sp.port, name, svc.hostname),
                                       [e for e in eps if labels_match(labels, e.labels)]))
    return out


def build_endpoints(push: PushContext, namespace: str, labels: Labels, scope: SidecarScope | None) -> list[Obj]:
    """The ClusterLoadAssignments of every outbound cluster a proxy in `namespace` with `labels` (and the Sidecar
    `scope`) has."""
    return _build(push, namespace, labels, scope)
