"""Which proxies a config change can affect, and which of their xDS types (Istio's `ProxyNeedsPush` and
`ConfigsUpdated`): the pusher generates only those, so a change to one service's routes costs its callers'
translation, not the whole mesh's.

It answers from the objects that changed (each as it was before and after) and the push contexts before and
after the change, and is conservative: whatever it cannot place exactly is pushed to every proxy, every type.
The rules follow what the builders read:
- a mesh-bound VirtualService reaches the sidecars that see its hosts' services (a Service's exportTo; with any
  Sidecar in the mesh, every proxy, every type: a scoped proxy's clusters follow its VirtualServices), since
  routes, and in netns mode the listeners, are built per visible service; a host that names no service (or a
  wildcard) reaches every sidecar; every gateway-bound one the routers. For sidecars it moves RDS, and in netns
  mode LDS (TCP/TLS routes and sniffed ports live on the capture listeners); clusters and endpoints come from
  Services, DestinationRules and ServiceEntries, and loopback mode's listeners from the pod and its Services;
- an Endpoints change of a Service with a ClusterIP moves EDS only (a headless Service's endpoints are listener
  addresses in netns mode: everything);
- a Pod change reaches its own proxy (every type) and every proxy's EDS (a subset selects pods by labels);
  with a ServiceEntry `workloadSelector` (pods as its endpoints, in DNS clusters too) everything;
- anything else (Services, DestinationRules, ServiceEntries, Gateways, Namespaces, the mesh ConfigMap,
  Secrets), and any change that alters the set of namespaces (hosts resolve against it): everything.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sluice import mesh

from .model import ADS_ORDER, TYPE_ENDPOINT, TYPE_LISTENER, TYPE_ROUTE
from .push_context import PushContext, Service
from .spec import resolve_host

__all__ = ["PushScope", "EVERYTHING", "affected"]

Change = tuple[dict[str, Any] | None, dict[str, Any] | None]  # (before, after); None: absent


@dataclass(frozen=True)
class PushScope:
    """What a set of changes can affect."""

    everything: bool = False
    namespaces: frozenset[str] = frozenset()  # sidecars in these namespaces: every type
    all_sidecars: bool = False
    sidecar_types: tuple[str, ...] = ADS_ORDER  # what those sidecars get
    routers: bool = False  # every router (gateway): every type
    pods: frozenset[tuple[str, str]] = frozenset()  # these pods' proxies (namespace, name): every type
    endpoints: bool = False  # every proxy: EDS
    why: tuple[str, ...] = field(default=(), compare=False)

    def types_for(self, proxy_type: str, namespace: str, pod: str) -> tuple[str, ...]:
        """The xDS types to generate for one proxy: every type, EDS alone, or none."""
        if self.everything or (namespace, pod) in self.pods:
            return ADS_ORDER
        types: set[str] = set()
        if proxy_type == "router":
            if self.routers:
                return ADS_ORDER
        elif self.all_sidecars or namespace in self.namespaces:
            types.update(self.sidecar_types)
        if self.endpoints:
            types.add(TYPE_ENDPOINT)
        return tuple(t for t in ADS_ORDER if t in types)


EVERYTHING = PushScope(everything=True)


def _meta(obj: dict[str, Any] | None) -> dict[str, Any]:
    meta = (obj or {}).get("metadata")
    return meta if isinstance(meta, dict) else {}


def _visible_namespaces(services: Iterable[Service]) -> frozenset[str] | None:
    """The namespaces that see any of `services`; None for every namespace."""
    out: set[str] = set()
    for svc in services:
        if "*" in svc.export_to:
            return None
        out.update(svc.namespace if e == "." else e for e in svc.export_to)
    return frozenset(out)


def _virtual_service(objs: list[dict[str, Any]], pushes: tuple[PushContext, PushContext]
                     ) -> tuple[bool, bool, frozenset[str] | None]:
    """(reaches routers, reaches sidecars, the namespaces of those sidecars or None for all)."""
    routers = sidecars = False
    services: list[Service] = []
    for obj in objs:
        spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
        assert isinstance(spec, dict)
        namespace = str(_meta(obj).get("namespace") or "default")
        gateways = [str(g) for g in spec.get("gateways") or []]
        if gateways:
            routers = True
        if gateways and "mesh" not in gateways:
            continue
        sidecars = True
        for raw in spec.get("hosts") or []:
            for push in pushes:
                host = resolve_host(str(raw), namespace, push.namespaces)
                svc = push.services_by_host.get(host)
                if svc is None:  # a wildcard, or a host that names no service: every sidecar has it
                    return routers, True, None
                services.append(svc)
    return routers, sidecars, _visible_namespaces(services) if sidecars else frozenset()


def affected(changes: Iterable[Change], before: PushContext | None, after: PushContext) -> PushScope:
    """The proxies and types `changes` (each object before and after) can affect, from `before` to `after`."""
    if before is None:
        return PushScope(everything=True, why=("no earlier push",))
    if before.namespaces != after.namespaces or before.options != after.options:
        return PushScope(everything=True, why=("the namespaces changed",))
    pushes = (before, after)
    namespaces: set[str] = set()
    pods: set[tuple[str, str]] = set()
    all_sidecars = routers = endpoints = False
    selects_pods = before.selects_pods or after.selects_pods
    for old, new in changes:
        obj = new if new is not None else old
        if obj is None:
            continue
        kind = str(obj.get("kind") or "")
        meta = _meta(obj)
        name, namespace = str(meta.get("name") or ""), str(meta.get("namespace") or "default")
        if kind == "VirtualService" and (before.sidecars or after.sidecars):
            # a Sidecar-scoped proxy's clusters include its VirtualServices' destinations: CDS/EDS may move too
            return PushScope(everything=True, why=(f"{kind} {namespace}/{name} with Sidecars in the mesh",))
        if kind == "VirtualService":
            to_routers, to_sidecars, where = _virtual_service([o for o in (old, new) if o is not None], pushes)
            routers |= to_routers
            if to_sidecars:
                if where is None:
                    all_sidecars = True
                else:
                    namespaces.update(where)
        elif kind == "Endpoints":
            host = mesh.fqdn(name, namespace)
            svcs = [p.services_by_host.get(host) for p in pushes]
            if any(s is None or s.external for s in svcs):
                continue  # not a Service's (no builder reads it): nothing to push
            if any(s is not None and not s.cluster_ip for s in svcs):
                return PushScope(everything=True, why=(f"endpoints of headless {host}",))
            endpoints = True
        elif kind == "Pod":
            if selects_pods:
                return PushScope(everything=True, why=("a ServiceEntry selects pods",))
            pods.add((namespace, name))
            endpoints = True
        else:
            return PushScope(everything=True, why=(f"{kind} {namespace}/{name}",))
    sidecar_types = (TYPE_LISTENER, TYPE_ROUTE) if after.options.network == "netns" else (TYPE_ROUTE,)
    return PushScope(namespaces=frozenset(namespaces), all_sidecars=all_sidecars, sidecar_types=sidecar_types,
                     routers=routers, pods=frozenset(pods), endpoints=endpoints)

