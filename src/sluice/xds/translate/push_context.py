"""PushContext: one consistent, read-only index over the mesh config, built once per push.

The ADS server builds it from every stored Namespace, Service, Endpoints, Pod, Secret, VirtualService,
DestinationRule, Gateway and ServiceEntry, then calls `generate(proxy, push)` for each proxy it pushes to.
Builders only read it. Work that is the same for many proxies (clusters, endpoints, the sidecar route
table of one namespace and label set) is memoised on the context, so it is done once per push.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import threading
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sluice import mesh
from sluice.autoallocate import auto_addresses
from sluice.meshconfig import REGISTRY_ONLY, MeshConfig, mesh_config_from

from .model import MeshOptions, Proxy
from .spec import Obj, gateway_ref, host_covers, labels_match, port_protocol, protocol_by_name, resolve_host

__all__ = ["PushContext", "Service", "ServicePort", "Endpoint", "Alias", "SidecarScope", "IstioConfig", "ROOT_NAMESPACE",
           "CLIENT_SIDE_LB", "PASSTHROUGH_RESOLUTION", "DNS_LB", "DNS_ROUND_ROBIN_LB", "resolve_aliases"]

EXPORT_TO_ANNOTATION = "networking.istio.io/exportTo"
ROOT_NAMESPACE = "istio-system"  # Istio's default root namespace: its DestinationRules apply mesh-wide
_T = TypeVar("_T")


@dataclass(frozen=True)
class ServicePort:
    name: str
    port: int
    target_port: int | str
    protocol: str  # Istio protocol name: HTTP, HTTP2, GRPC, TCP, ... or UNKNOWN (sniffed)


# Istio's model.Resolution: how a service's endpoints are found. Kubernetes Services are ClientSideLB (EDS),
# headless ones Passthrough; a ServiceEntry says it with `resolution` (STATIC, NONE, DNS, DNS_ROUND_ROBIN).
CLIENT_SIDE_LB = "ClientSideLB"
PASSTHROUGH_RESOLUTION = "Passthrough"
DNS_LB = "DNSLB"
DNS_ROUND_ROBIN_LB = "DNSRoundRobinLB"
_RESOLUTIONS = {"STATIC": CLIENT_SIDE_LB, "NONE": PASSTHROUGH_RESOLUTION, "DNS": DNS_LB,
                "DNS_ROUND_ROBIN": DNS_ROUND_ROBIN_LB}


@dataclass(frozen=True)
class Service:
    """A Kubernetes Service, or one host of a ServiceEntry (Istio's model.Service: its name is the host,
    its namespace the ServiceEntry's)."""

    name: str
    namespace: str
    hostname: str
    cluster_ip: str
    ports: tuple[ServicePort, ...]
    selector: Mapping[str, str]
    registry: str = "Kubernetes"  # or "External": a ServiceEntry host
    resolution: str = CLIENT_SIDE_LB
    mesh_external: bool = False
    # ServiceEntry `addresses` (IPs; a /32 as its IP) or the auto-allocated one; cluster_ip is the first IP
    addresses: tuple[str, ...] = ()
    export_to: frozenset[str] = frozenset({"*"})
    config_name: str = ""  # the ServiceEntry's name
    # Istio's Attributes.Aliases: the ExternalName Services that resolve to this host, (namespace, hostname) sorted
    aliases: tuple[tuple[str, str], ...] = ()

    @property
    def external(self) -> bool:
        return self.registry == "External"

    @property
    def passthrough(self) -> bool:
        """Sent to the address the app dialled (ORIGINAL_DST, no endpoints): a headless Service (netns mode
        decides that in the builders) or a ServiceEntry of resolution NONE."""
        return self.resolution == PASSTHROUGH_RESOLUTION

    @property
    def dns(self) -> bool:
        return self.resolution in (DNS_LB, DNS_ROUND_ROBIN_LB)

    def visible_to(self, namespace: str) -> bool:
        """Istio's exportTo: `*` everywhere, `.` its own namespace, else the namespaces named."""
        return ("*" in self.export_to or namespace in self.export_to
                or ("." in self.export_to and namespace == self.namespace))

    @property
    def default_port(self) -> int:
        """The port whose virtual host also answers port-less names (`Host: reviews`): 80, else the first."""
        numbers = [p.port for p in self.ports]
        return 80 if 80 in numbers else numbers[0]


@dataclass(frozen=True)
class Alias:
    """An ExternalName Service (Istio's `model.Alias` resolution): no listener, cluster or route of its own. Its
    names answer on the virtual hosts (and SNI matches) of the service whose host its `externalName` is, and a
    route to it goes to that service's cluster; for any other name it is only the cluster DNS's CNAME."""

    name: str
    namespace: str
    hostname: str
    target: str  # spec.externalName, lowercased, without a final dot
    ports: tuple[ServicePort, ...]


def resolve_aliases(aliases: Collection[Alias]) -> dict[str, tuple[tuple[str, str], ...]]:
    """Concrete host → the aliases that end at it, (namespace, hostname) sorted (Istio's resolveServiceAliases):
    a chain of ExternalNames is followed to its end; one that loops back resolves to nothing (its DNS name is
    NXDOMAIN on Kubernetes)."""
    raw = {a.hostname: a.target for a in aliases}
    out: dict[str, list[tuple[str, str]]] = {}
    for a in aliases:
        target, seen = a.target, {a.hostname}
        while target in raw:
            if target in seen:
                break
            seen.add(target)
            target = raw[target]
        else:
            out.setdefault(target, []).append((a.namespace, a.hostname))
    return {host: tuple(sorted(names)) for host, names in out.items()}


@dataclass(frozen=True)
class SidecarScope:
    """The Sidecar that scopes a sidecar proxy (Istio's SidecarScope, the parts Sluice programs): the services and
    mesh VirtualServices its egress hosts select, and its outbound traffic policy."""

    name: str
    namespace: str
    selector: Mapping[str, str] | None  # workloadSelector.labels; None: the namespace's (or the mesh's) default
    # (namespace, dnsName) of every egress listener's hosts: namespace `*` any, `.` the proxy's, `~` none
    hosts: tuple[tuple[str, str], ...] = (("*", "*"),)
    outbound_mode: str = ""  # REGISTRY_ONLY or ALLOW_ANY; "": the mesh's

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def _selects(self, namespace: str, hosts: Iterable[str], proxy_namespace: str) -> bool:
        """An egress host `ns/dnsName` selects config of namespace `ns` (`*` any, `.` the proxy's) one of whose
        `hosts` the name covers or is covered by (wildcards either side)."""
        return any((ns == "*" or namespace == (proxy_namespace if ns == "." else ns))
                   and any(host_covers(name, h) or host_covers(h, name) for h in hosts)
                   for ns, name in self.hosts)

    def selects_service(self, svc: Service, proxy_namespace: str) -> bool:
        return self._selects(svc.namespace, (svc.hostname,), proxy_namespace)

    def selects_virtual_service(self, vs: IstioConfig, proxy_namespace: str) -> bool:
        return self._selects(vs.namespace, vs.hosts, proxy_namespace)


def destination_hosts(vs: IstioConfig, namespaces: frozenset[str]) -> set[str]:
    """The hosts a VirtualService's routes and mirrors send to, as FQDNs."""
    out: set[str] = set()
    for key in ("http", "tcp", "tls"):
        for rule in vs.spec.get(key) or []:
            if not isinstance(rule, dict):
                continue
            dests = [r.get("destination") for r in rule.get("route") or [] if isinstance(r, dict)]
            dests += [rule.get("mirror")] + [m.get("destination") for m in rule.get("mirrors") or []
                                             if isinstance(m, dict)]
            out.update(resolve_host(str(d["host"]), vs.namespace, namespaces)
                       for d in dests if isinstance(d, dict) and d.get("host"))
    return out


def _sidecar_scope(obj: Obj) -> SidecarScope | None:
    """A stored Sidecar as Istio reads it: every egress listener's hosts (none: `*/*`), its outbound mode."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return None
    meta = _meta(obj)
    selector: dict[str, str] | None = None  # a selector without labels selects the whole namespace, as none does
    raw_selector = spec.get("workloadSelector")
    if isinstance(raw_selector, dict) and isinstance(raw_selector.get("labels"), dict):
        selector = {str(k): str(v) for k, v in raw_selector["labels"].items()} or None
    hosts: list[tuple[str, str]] = []
    egress = [e for e in spec.get("egress") or [] if isinstance(e, dict)]
    for listener in egress:
        for raw in listener.get("hosts") or []:
            ns, slash, name = str(raw).strip().lower().partition("/")
            if slash:
                hosts.append((ns, name))
    policy = spec.get("outboundTrafficPolicy")
    mode = str(policy.get("mode") or "REGISTRY_ONLY") if isinstance(policy, dict) else ""
    return SidecarScope(name=str(meta.get("name") or ""), namespace=str(meta.get("namespace") or "default"),
                        selector=selector, hosts=tuple(hosts) if egress else (("*", "*"),), outbound_mode=mode)


@dataclass(frozen=True)
class Endpoint:
    ip: str
    port: int
    labels: Mapping[str, str]
    pod: str = ""


@dataclass(frozen=True)
class IstioConfig:
    """A stored VirtualService, DestinationRule or Gateway with its hosts already resolved to FQDNs."""

    kind: str
    name: str
    namespace: str
    spec: Obj
    hosts: tuple[str, ...] = ()
    gateways: tuple[str, ...] = ()  # VirtualService only: `mesh` or `<ns>/<name>`

    @functools.cached_property
    def workload_selector(self) -> dict[str, str] | None:
        """DestinationRule only: its `workloadSelector.matchLabels` ({} selects every workload), None without one.
        Worked out once per push: every proxy's generation asks."""
        selector = self.spec.get("workloadSelector")
        if not isinstance(selector, dict):
            return None
        match = selector.get("matchLabels")
        return {str(k): str(v) for k, v in match.items()} if isinstance(match, dict) else {}

    @functools.cached_property
    def export_to(self) -> frozenset[str]:
        """DestinationRule only: its `exportTo` as Istio's setDestinationRules reads it; a rule with a
        `workloadSelector` is private to its namespace (`.`) whatever it says. Empty: the mesh's default (`*`)."""
        if self.workload_selector is not None:
            return frozenset({"."})
        return frozenset(str(e) for e in self.spec.get("exportTo") or [] if isinstance(e, str))

    @property
    def config_path(self) -> str:
        """Istio's route/cluster metadata pointer to the config object."""
        kind = {"VirtualService": "virtual-service", "DestinationRule": "destination-rule",
                "Gateway": "gateway"}.get(self.kind, self.kind.lower())
        return f"/apis/networking.istio.io/v1/namespaces/{self.namespace}/{kind}/{self.name}"

    @property
    def mesh_bound(self) -> bool:
        return not self.gateways or "mesh" in self.gateways

    @functools.cached_property
    def vs_export_to(self) -> frozenset[str]:
        """VirtualService only: the namespaces it is exported to, `*` for all (Istio's initVirtualServices: `.`
        is its own namespace; none given: the mesh's default, `*`)."""
        export = frozenset(self.namespace if e == "." else e for e in self.spec.get("exportTo") or []
                           if isinstance(e, str))
        return export or frozenset({"*"})


@dataclass
class _Memo:
    lock: threading.Lock = field(default_factory=threading.Lock)
    values: dict[Any, Any] = field(default_factory=dict)


def _merge_into(entry: IstioConfig, rule: IstioConfig) -> IstioConfig:
    """`entry` with the subsets of `rule` whose names it lacks, and `rule`'s top-level traffic policy when it has
    none; its own name, namespace and selector stay."""
    spec = dict(entry.spec)
    subsets = list(spec.get("subsets") or [])
    names = {s.get("name") for s in subsets if isinstance(s, dict)}
    for sub in rule.spec.get("subsets") or []:
        if isinstance(sub, dict) and sub.get("name") not in names:
            names.add(sub.get("name"))
            subsets.append(sub)
    if spec.get("trafficPolicy") is None and rule.spec.get("trafficPolicy") is not None:
        spec["trafficPolicy"] = rule.spec["trafficPolicy"]
    if subsets:
        spec["subsets"] = subsets
    return dataclasses.replace(entry, spec=spec)


def _consolidated(rules: list[IstioConfig]) -> tuple[IstioConfig, ...]:
    """The rules of one namespace for one host (those of one of `PushContext`'s indexes), consolidated as Istio's
    setDestinationRules and mergeDestinationRule do (1.24: selecting rules first, then oldest first; rules whose
    exportTo differ kept apart).

    A rule is merged only into entries with the same exportTo, or whose exportTo its own contains (then it also
    stays an entry of its own); of those, not into ones whose selector differs from its own (both having one).
    Rules without a selector become one entry, as do rules with the same selector. A rule without a selector whose
    exportTo is a selecting entry's (`.`) is merged into it and, as in Istio, makes no entry of its own; one
    exported further lends it its subsets and policy and stays an entry too. `PushContext.destination_rule`
    picks among the entries."""
    entries: list[IstioConfig] = []
    for rule in sorted(rules, key=lambda r: r.workload_selector is None):  # stable: oldest first within each
        separate = True
        for i, entry in enumerate(entries):
            if rule.export_to == entry.export_to:
                separate = False
            elif not (entry.export_to and rule.export_to >= entry.export_to):
                separate = True
                continue
            else:
                separate = True
            mine, theirs = rule.workload_selector, entry.workload_selector
            both_select = mine is not None and theirs is not None
            if both_select and mine != theirs:
                separate = True  # Istio resets it here, whatever an earlier entry decided
                continue
            if (mine is None and theirs is None) or both_select:
                separate = False
            entries[i] = _merge_into(entry, rule)
        if separate:
            entries.append(rule)
    return tuple(entries)


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _order_key(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    """Istio's conflict order: oldest first, then namespace/name."""
    meta = _meta(obj)
    return (str(meta.get("creationTimestamp") or ""), str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def _labels(obj: Mapping[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in (_meta(obj).get("labels") or {}).items()}


class PushContext:
    """Read-only indexes over one view of the config (Istio's model.PushContext, the parts we need)."""

    version: str
    options: MeshOptions

    def __init__(self, *, version: str, options: MeshOptions, namespaces: frozenset[str],
                 services: tuple[Service, ...], endpoints: dict[tuple[str, int], tuple[Endpoint, ...]],
                 virtual_services: tuple[IstioConfig, ...], destination_rules: tuple[IstioConfig, ...],
                 gateways: tuple[IstioConfig, ...], mesh_config: MeshConfig | None = None,
                 secrets: Mapping[tuple[str, str], Mapping[str, Any]] | None = None,
                 selects_pods: bool = False, aliases: Iterable[Alias] = (),
                 sidecars: Iterable[SidecarScope] = ()) -> None:
        self.version = version
        self.sidecars = tuple(sidecars)  # oldest first
        self.selects_pods = selects_pods  # a ServiceEntry's endpoints are the pods its workloadSelector selects
        self.options = options
        self.mesh_config = mesh_config or MeshConfig()
        self.namespaces = namespaces
        self.aliases_by_host = {a.hostname: a for a in aliases}
        chains = resolve_aliases(self.aliases_by_host.values())
        if chains:
            services = tuple(dataclasses.replace(s, aliases=chains[s.hostname]) if s.hostname in chains else s
                             for s in services)
        self.services = services
        self.services_by_host: dict[str, Service] = {}
        for s in services:
            self.services_by_host.setdefault(s.hostname, s)
        self._endpoints = endpoints
        self.virtual_services = virtual_services
        self.destination_rules = destination_rules
        # Istio's destinationRuleIndex: per namespace, the rules its own proxies see (`namespaceLocal`) and those
        # exported beyond it (`exportedByNamespace`); the root namespace's private ones for its own proxies.
        self._dr_local: dict[str, list[IstioConfig]] = {}
        self._dr_exported: dict[str, list[IstioConfig]] = {}
        self._dr_root_private: list[IstioConfig] = []
        for dr in destination_rules:
            if not dr.hosts:
                continue
            ns, export = dr.namespace, dr.export_to
            if not export or "*" in export or "." in export or ns in export:
                self._dr_local.setdefault(ns, []).append(dr)
            if not (len(export) == 1 and ("." in export or ns in export)):
                self._dr_exported.setdefault(ns, []).append(dr)
            elif ns == ROOT_NAMESPACE:
                self._dr_root_private.append(dr)
        self.gateways = gateways
        self._secrets = secrets or {}
        self._memo = _Memo()

    # --- building -----------------------------------------------------------------------------------

    @classmethod
    def build(cls, objects: Iterable[dict[str, Any]], *, version: str, options: MeshOptions) -> PushContext:
        by_kind: dict[str, list[Obj]] = {}
        for obj in objects:
            if isinstance(obj, dict) and isinstance(obj.get("kind"), str):
                by_kind.setdefault(obj["kind"], []).append(obj)
        for items in by_kind.values():
            items.sort(key=_order_key)
        namespaces = {str(_meta(o).get("name")) for o in by_kind.get("Namespace", [])}
        for kind in ("Service", "Pod", "VirtualService", "DestinationRule", "Gateway", "ServiceEntry", "Sidecar"):
            namespaces.update(str(_meta(o).get("namespace") or "default") for o in by_kind.get(kind, []))
        ns_set = frozenset(namespaces)

        netns = options.network == "netns"
        kube_services = [s for o in by_kind.get("Service", []) if (s := _service(o, netns)) is not None]
        aliases = [a for o in by_kind.get("Service", []) if (a := _alias(o)) is not None]
        # A ServiceEntry host that is a Kubernetes Service's in the same namespace only decorates it in Istio: the
        # Service wins. In another namespace both exist, and each proxy sees the one of its own namespace first
        # (`visible_services`): Istio's egress TLS origination task points a ServiceEntry in `default` at a
        # Service of `mesh-external` this way.
        kube_hosts = {(s.hostname, s.namespace) for s in kube_services}
        taken: set[str] = set()
        entries = by_kind.get("ServiceEntry", [])
        auto = auto_addresses(entries)
        external: list[Service] = []
        endpoints: dict[tuple[str, int], tuple[Endpoint, ...]] = {}
        all_pods = by_kind.get("Pod", [])
        for o in entries:
            for svc, eps in _service_entry(o, auto, all_pods):
                if svc.hostname in taken or (svc.hostname, svc.namespace) in kube_hosts:
                    continue
                taken.add(svc.hostname)
                external.append(svc)
                endpoints.update(((svc.hostname, port), e) for port, e in eps.items())
        services = tuple(sorted(kube_services + external, key=lambda s: s.hostname))
        pods = {(str(_meta(p).get("namespace") or "default"), str(_meta(p).get("name"))): p
                for p in by_kind.get("Pod", [])}
        endpoints_objs = {(str(_meta(e).get("namespace") or "default"), str(_meta(e).get("name"))): e
                          for e in by_kind.get("Endpoints", [])}
        for svc in kube_services:
            ep_obj = endpoints_objs.get((svc.namespace, svc.name))
            for sp in svc.ports:
                endpoints[(svc.hostname, sp.port)] = _endpoints_for(svc, sp, ep_obj, pods)

        def istio(kind: str) -> tuple[IstioConfig, ...]:
            return tuple(_istio_config(o, ns_set) for o in by_kind.get(kind, []) if isinstance(o.get("spec"), dict))

        # only what a gateway's credentialName reads: type and data (values stay base64, never logged)
        secrets: dict[tuple[str, str], Mapping[str, Any]] = {(str(_meta(o).get("namespace") or "default"), str(_meta(o).get("name"))):
                   {"type": o.get("type"), "data": o.get("data") if isinstance(o.get("data"), dict) else {}}
                   for o in by_kind.get("Secret", [])}
        return cls(version=version, options=options, namespaces=ns_set, services=services, endpoints=endpoints,
                   virtual_services=istio("VirtualService"), destination_rules=istio("DestinationRule"),
                   gateways=istio("Gateway"), mesh_config=mesh_config_from(by_kind.get("ConfigMap", [])),
                   secrets=secrets, selects_pods=any(
                       isinstance(o.get("spec"), dict) and isinstance(o["spec"].get("workloadSelector"), dict)
                       for o in entries), aliases=aliases,
                   sidecars=[sc for o in by_kind.get("Sidecar", []) if (sc := _sidecar_scope(o)) is not None])

    def _mesh_virtual_services(self, namespace: str, scope: SidecarScope | None) -> tuple[IstioConfig, ...]:
        """The mesh-bound VirtualServices a sidecar in `namespace` sees (exportTo, then its Sidecar's egress hosts)."""
        seen = self.virtual_services_for(namespace, "mesh")
        if scope is None:
            return seen
        return self.memo(("mesh-vs-scoped", namespace, scope.key),
                         lambda: tuple(vs for vs in seen if scope.selects_virtual_service(vs, namespace)))

    def _index_mesh_virtual_services(self, namespace: str, scope: SidecarScope | None = None) -> dict[str, IstioConfig]:
        """Service hostname → the one mesh-bound VirtualService that routes it for a sidecar in `namespace`
        (exact host beats wildcard, the most specific wildcard beats a broader one, the first in
        `virtual_services_for`'s order wins a tie)."""
        exact: dict[str, IstioConfig] = {}
        wildcard: dict[str, tuple[int, IstioConfig]] = {}
        for vs in self._mesh_virtual_services(namespace, scope):
            for h in vs.hosts:
                if not h.startswith("*"):
                    if h in self.services_by_host:
                        exact.setdefault(h, vs)
                    continue
                for svc in self.services:
                    if host_covers(h, svc.hostname):
                        best = wildcard.get(svc.hostname)
                        if best is None or len(h) > best[0]:
                            wildcard[svc.hostname] = (len(h), vs)
        out = {h: vs for h, (_, vs) in wildcard.items()}
        out.update(exact)
        return out

    # --- queries ------------------------------------------------------------------------------------

    def memo(self, key: Any, build: Callable[[], _T]) -> _T:
        """The value `build()` returns, computed once per push for `key` (pushes run in worker threads)."""
        with self._memo.lock:
            if key in self._memo.values:
                return self._memo.values[key]  # type: ignore[no-any-return]
        value = build()
        with self._memo.lock:
            return self._memo.values.setdefault(key, value)  # type: ignore[no-any-return]

    def sidecar_scope(self, namespace: str, labels: Mapping[str, str]) -> SidecarScope | None:
        """The Sidecar that scopes a sidecar proxy of `namespace` with `labels` (Istio's getSidecarScope): the oldest
        of its namespace whose workloadSelector selects it, else the oldest of its namespace without one, else the
        oldest without one in the root namespace (the mesh's default); None: no Sidecar, everything visible."""
        if not self.sidecars:
            return None

        def build() -> SidecarScope | None:
            own = [sc for sc in self.sidecars if sc.namespace == namespace]
            for sc in own:
                if sc.selector and labels_match(sc.selector, labels):
                    return sc
            for sc in (*own, *(sc for sc in self.sidecars if sc.namespace == ROOT_NAMESPACE)):
                if not sc.selector:
                    return sc
            return None
        return self.memo(("sidecar-scope", namespace, tuple(sorted(labels.items()))), build)

    def _scoped_services(self, namespace: str, scope: SidecarScope) -> tuple[Service, ...]:
        """What the egress hosts select, plus the destinations of the VirtualServices they select (Istio's
        collectImportedServices: a route may lead to a host the hosts leave out)."""
        visible = self.visible_services(namespace)
        chosen = {s.hostname for s in visible if scope.selects_service(s, namespace)}
        for vs in self._mesh_virtual_services(namespace, scope):
            chosen.update(destination_hosts(vs, self.namespaces))
        return tuple(s for s in visible if s.hostname in chosen)

    def scope_of(self, proxy: Proxy) -> SidecarScope | None:
        """A sidecar's Sidecar scope (gateways have none)."""
        return self.sidecar_scope(proxy.namespace, proxy.labels) if proxy.type == "sidecar" else None

    def visible_services(self, namespace: str, scope: SidecarScope | None = None) -> tuple[Service, ...]:
        """The services a proxy in `namespace` knows (exportTo, then the egress hosts of the Sidecar `scope`), one
        per hostname: where several share one (a ServiceEntry naming a Kubernetes Service's host, as Istio's egress
        TLS origination task does), the one in the proxy's own namespace, else the first (Istio's SidecarScope
        rule)."""
        if scope is not None:
            return self.memo(("visible", namespace, scope.key), lambda: self._scoped_services(namespace, scope))

        def build() -> tuple[Service, ...]:
            visible = [s for s in self.services if s.visible_to(namespace)]
            chosen: dict[str, Service] = {}
            for s in visible:
                have = chosen.get(s.hostname)
                if have is None or (have.namespace != namespace and s.namespace == namespace):
                    chosen[s.hostname] = s
            return tuple(s for s in visible if chosen[s.hostname] is s)
        return self.memo(("visible", namespace), build)

    @property
    def registry_only(self) -> bool:
        return self.mesh_config.outbound_policy == REGISTRY_ONLY

    def registry_only_for(self, scope: SidecarScope | None) -> bool:
        """The outbound traffic policy of a proxy: its Sidecar's, else the mesh's."""
        if scope is not None and scope.outbound_mode:
            return scope.outbound_mode == REGISTRY_ONLY
        return self.registry_only

    def endpoints(self, hostname: str, port: int) -> tuple[Endpoint, ...]:
        return self._endpoints.get((hostname, port), ())

    def virtual_services_for(self, namespace: str, gateway: str) -> tuple[IstioConfig, ...]:
        """Istio's VirtualServicesForGateway: the VirtualServices bound to `gateway` (`mesh`: the sidecars, else
        `<ns>/<name>`) that a proxy in `namespace` sees by their exportTo: its own namespace's first, then those
        exported to it by name, then the public ones, each oldest first."""
        def build() -> tuple[IstioConfig, ...]:
            own: list[IstioConfig] = []
            named: list[IstioConfig] = []
            public: list[IstioConfig] = []
            for vs in self.virtual_services:
                if not (vs.mesh_bound if gateway == "mesh" else gateway in vs.gateways):
                    continue
                export = vs.vs_export_to
                if "*" in export:
                    public.append(vs)
                elif namespace in export:
                    (own if vs.namespace == namespace else named).append(vs)
            return (*own, *named, *public)
        return self.memo(("virtual-services", namespace, gateway), build)

    def mesh_virtual_service(self, hostname: str, namespace: str,
                             scope: SidecarScope | None = None) -> IstioConfig | None:
        """The VirtualService that routes `hostname` for a sidecar in `namespace` (scoped by its Sidecar)."""
        index = self.memo(("mesh-virtual-services", namespace, scope.key if scope else ""),
                          functools.partial(self._index_mesh_virtual_services, namespace, scope))
        return index.get(hostname)

    def mesh_virtual_service_extra_hosts(self, namespace: str,
                                         scope: SidecarScope | None = None) -> list[tuple[str, IstioConfig]]:
        """Non-wildcard hosts of the mesh VirtualServices a sidecar in `namespace` sees that name no Service (e.g.
        `bookinfo.com`)."""
        seen: set[str] = set()
        out: list[tuple[str, IstioConfig]] = []
        for vs in self._mesh_virtual_services(namespace, scope):
            for h in vs.hosts:
                if h.startswith("*") or h in self.services_by_host or h in seen:
                    continue
                if any(host_covers(h, s.hostname) for s in self.services):
                    continue
                seen.add(h)
                out.append((h, vs))
        return out

    def destination_rule(self, hostname: str, proxy_namespace: str,
                         labels: Mapping[str, str] | None = None) -> IstioConfig | None:
        """Istio's PushContext.destinationRule and SidecarScope.DestinationRule: the rules the client's namespace
        sees (for a client in the root namespace: the root's private rules), else the rules the service's namespace
        exports to the client's, else those the root namespace exports to it; in the first with a rule for the
        host (the exact host beats a wildcard, then the longest wildcard), its rules consolidated
        (`_consolidated`) and one entry picked: a selecting entry of the client's own namespace that selects it
        (`labels`: the proxy's), else the entry without a selector, else none (a namespace whose rules for the
        host all select other workloads yields none)."""
        if proxy_namespace != ROOT_NAMESPACE:
            entries = self._dr_entries("local", proxy_namespace, self._dr_local.get(proxy_namespace), hostname)
        else:
            entries = self._dr_entries("root-private", ROOT_NAMESPACE, self._dr_root_private, hostname)
        if entries is None:
            svc = self.services_by_host.get(hostname)
            for ns in ((svc.namespace,) if svc else ()) + (ROOT_NAMESPACE,):
                found = self._dr_entries("exported", ns, self._dr_exported.get(ns), hostname)
                visible = tuple(e for e in found or () if not e.export_to or "*" in e.export_to
                                or proxy_namespace in e.export_to)
                if visible:
                    entries = visible
                    break
        if entries is None:
            return None
        catch_all = None
        for entry in entries:
            if entry.workload_selector is None:
                catch_all = entry
            elif (entry.namespace == proxy_namespace and labels is not None
                  and labels_match(entry.workload_selector, labels)):
                return entry
        return catch_all

    def _dr_entries(self, index: str, namespace: str, rules: list[IstioConfig] | None,
                    hostname: str) -> tuple[IstioConfig, ...] | None:
        """The consolidated entries of one index's rules for the most specific host covering `hostname` (Istio's
        MostSpecificHostMatch), None when none covers it; consolidated once per push, not at every lookup."""
        matches = [dr for dr in rules or () if host_covers(dr.hosts[0], hostname)]
        if not matches:
            return None
        host = max(matches, key=lambda dr: (not dr.hosts[0].startswith("*"), len(dr.hosts[0]))).hosts[0]
        return self.memo(("destination-rules", index, namespace, host),
                         functools.partial(_consolidated, [dr for dr in matches if dr.hosts[0] == host]))

    def rules_selecting(self, namespace: str, labels: Mapping[str, str]) -> tuple[str, ...]:
        """The DestinationRules of `namespace` whose `workloadSelector` selects `labels`: with the namespace, all
        that decides which rules a proxy's clusters and endpoints follow (so proxies alike share them)."""
        return tuple(dr.name for dr in self._dr_local.get(namespace, ())
                     if dr.workload_selector is not None and labels_match(dr.workload_selector, labels))

    def gateways_for(self, labels: Mapping[str, str]) -> list[IstioConfig]:
        out = []
        for gw in self.gateways:
            selector = gw.spec.get("selector") or {}
            if isinstance(selector, dict) and labels_match({str(k): str(v) for k, v in selector.items()}, labels):
                out.append(gw)
        return out

    def secret(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        """A Secret's `type` and base64 `data`, for a gateway's `credentialName`."""
        return self._secrets.get((namespace, name))

    def gateway_virtual_services(self, gateway: str, namespace: str) -> tuple[IstioConfig, ...]:
        """The VirtualServices bound to `gateway` that a gateway proxy in `namespace` sees (`virtual_services_for`)."""
        return self.virtual_services_for(namespace, gateway)

    def services_selecting(self, namespace: str, labels: Mapping[str, str]) -> list[Service]:
        return [s for s in self.services
                if s.namespace == namespace and s.selector and labels_match(s.selector, labels)]


# Istio's ConvertProtocol: a port whose name/appProtocol says nothing is sniffed, except these well-known
# server-first ports (SMTP, DNS, MySQL, MongoDB), which are TCP: a sniffer would wait for the client forever.
_WELL_KNOWN_TCP_PORTS = frozenset({25, 53, 3306, 27017})


def _service(obj: Obj, netns: bool = False) -> Service | None:
    """A stored Service; `netns`: with Istio's well-known TCP ports (loopback mode has no sniffing, its
    unnamed ports are HTTP through the proxy)."""
    meta = _meta(obj)
    spec = obj.get("spec") or {}
    if not isinstance(spec, dict) or spec.get("type") == "ExternalName":
        return None
    name, namespace = str(meta.get("name") or ""), str(meta.get("namespace") or "default")
    ports: list[ServicePort] = []
    for p in spec.get("ports") or []:
        if not isinstance(p, dict) or not p.get("port"):
            continue
        target = str(p.get("targetPort") or p["port"])
        target_port: int | str = int(target) if target.isdigit() else target
        protocol = port_protocol(p)
        if netns and protocol == "UNKNOWN" and int(p["port"]) in _WELL_KNOWN_TCP_PORTS:
            protocol = "TCP"
        ports.append(ServicePort(str(p.get("name") or ""), int(p["port"]), target_port, protocol))
    if not name or not ports:
        return None
    cluster_ip = str(spec.get("clusterIP") or "")
    # Istio's `networking.istio.io/exportTo` annotation: the namespaces that see the Service (`.`, `*`, names)
    export = frozenset(e.strip() for e in str((meta.get("annotations") or {}).get(EXPORT_TO_ANNOTATION) or "")
                       .split(",") if e.strip()) or frozenset({"*"})
    return Service(name=name, namespace=namespace, hostname=mesh.fqdn(name, namespace),
                   cluster_ip="" if cluster_ip in ("None", "") else cluster_ip, ports=tuple(ports),
                   selector={str(k): str(v) for k, v in (spec.get("selector") or {}).items()}, export_to=export)


def _alias(obj: Obj) -> Alias | None:
    """A stored ExternalName Service with a name to point at (Istio's ConvertService: resolution Alias)."""
    spec = obj.get("spec")
    if not isinstance(spec, dict) or spec.get("type") != "ExternalName" or not spec.get("externalName"):
        return None
    meta = _meta(obj)
    name, namespace = str(meta.get("name") or ""), str(meta.get("namespace") or "default")
    if not name:
        return None
    ports = tuple(ServicePort(str(p.get("name") or ""), int(p["port"]), int(p["port"]), port_protocol(p))
                  for p in spec.get("ports") or [] if isinstance(p, dict) and p.get("port"))
    return Alias(name=name, namespace=namespace, hostname=mesh.fqdn(name, namespace),
                 target=str(spec["externalName"]).strip().rstrip(".").lower(), ports=ports)


def _ip_addresses(values: Any) -> list[str]:
    """ServiceEntry `addresses` that are one address (a /32 or /128 is its IP); ranges are not VIPs to listen on."""
    out = []
    for raw in values or []:
        text = str(raw)
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            continue
        if net.num_addresses == 1:
            out.append(str(net.network_address))
    return out


def _selected_pods(selector: Mapping[str, Any], namespace: str, pods: Iterable[Obj]) -> list[Obj]:
    """The running pods of the ServiceEntry's namespace its `workloadSelector` selects."""
    labels = {str(k): str(v) for k, v in (selector.get("labels") or {}).items()}
    return [p for p in pods if str(_meta(p).get("namespace") or "default") == namespace
            and (p.get("status") or {}).get("podIP") and labels_match(labels, _labels(p))]


def _pod_port(pod: Obj, name: str) -> int | None:
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in (c.get("ports") or []) if isinstance(c, dict) else []:
            if isinstance(p, dict) and name and p.get("name") == name and p.get("containerPort"):
                return int(p["containerPort"])
    return None


def _service_entry(obj: Obj, auto: Mapping[str, str],
                   pods: Iterable[Obj] = ()) -> list[tuple[Service, dict[int, tuple[Endpoint, ...]]]]:
    """One Service per host of a ServiceEntry (Istio's convertServices) and its endpoints per port
    (convertServiceEntryToInstances: an endpoint's port is its `ports[<port name>]`, else the port's
    `targetPort`, else its number; DNS resolution without endpoints resolves the host itself; a
    `workloadSelector` makes the pods it selects the endpoints, a pod's port the container port named as the
    ServiceEntry's)."""
    meta = _meta(obj)
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return []
    name, namespace = str(meta.get("name") or ""), str(meta.get("namespace") or "default")
    resolution = _RESOLUTIONS.get(str(spec.get("resolution") or "NONE"), PASSTHROUGH_RESOLUTION)
    ports: list[ServicePort] = []
    for p in spec.get("ports") or []:
        if isinstance(p, dict) and p.get("number"):
            number = int(p["number"])
            ports.append(ServicePort(str(p.get("name") or ""), number, int(p.get("targetPort") or number),
                                     protocol_by_name(str(p.get("protocol") or ""))))
    if not ports:
        return []
    addresses = _ip_addresses(spec.get("addresses"))
    export = frozenset(str(e) for e in spec.get("exportTo") or []) or frozenset({"*"})
    selector = spec.get("workloadSelector") if isinstance(spec.get("workloadSelector"), dict) else None
    raw_endpoints = [e for e in spec.get("endpoints") or [] if isinstance(e, dict) and e.get("address")]
    out = []
    for raw_host in spec.get("hosts") or []:
        host = str(raw_host).strip().rstrip(".").lower()  # as written: Istio resolves no ServiceEntry host
        if not host or host == "*":
            continue
        vips = addresses or ([auto[host]] if host in auto else [])
        svc = Service(name=host, namespace=namespace, hostname=host, cluster_ip=vips[0] if vips else "",
                      ports=tuple(ports), selector={}, registry="External", resolution=resolution,
                      mesh_external=str(spec.get("location") or "MESH_EXTERNAL") != "MESH_INTERNAL",
                      addresses=tuple(vips), export_to=export, config_name=name)
        eps: dict[int, tuple[Endpoint, ...]] = {}
        if selector is not None and resolution != PASSTHROUGH_RESOLUTION:
            selected = _selected_pods(selector, namespace, pods)
            for sp in ports:
                eps[sp.port] = tuple(sorted(
                    (Endpoint(ip=str(p["status"]["podIP"]), port=_pod_port(p, sp.name) or int(sp.target_port),
                              labels=_labels(p), pod=str(_meta(p).get("name") or "")) for p in selected),
                    key=lambda e: (e.ip, e.port)))
        elif resolution != PASSTHROUGH_RESOLUTION:
            for sp in ports:
                if raw_endpoints:
                    found: dict[tuple[str, int], Endpoint] = {}
                    for e in raw_endpoints:
                        port_map = e["ports"] if isinstance(e.get("ports"), dict) else {}
                        port = int(port_map.get(sp.name) or sp.target_port)
                        address = str(e["address"])
                        found.setdefault((address, port), Endpoint(
                            ip=address, port=port, labels={str(k): str(v) for k, v in (e.get("labels") or {}).items()}))
                    eps[sp.port] = tuple(found.values())
                elif resolution != CLIENT_SIDE_LB and "*" not in host:
                    eps[sp.port] = (Endpoint(ip=host, port=int(sp.target_port), labels={}),)
        out.append((svc, eps))
    return out


def _container_port(pod: Obj | None, target: int | str) -> int | None:
    """A Service targetPort resolved against a pod's container ports (names are resolved per pod)."""
    if isinstance(target, int):
        return target
    if pod is None:
        return None
    for c in (pod.get("spec") or {}).get("containers") or []:
        if not isinstance(c, dict) or c.get("name") == mesh.SIDECAR_CONTAINER:
            continue
        for p in c.get("ports") or []:
            if isinstance(p, dict) and p.get("name") == target and p.get("containerPort"):
                return int(p["containerPort"])
    return None


def _endpoints_for(svc: Service, sp: ServicePort, ep_obj: Obj | None,
                   pods: Mapping[tuple[str, str], Obj]) -> tuple[Endpoint, ...]:
    if ep_obj is None:
        return ()
    out: dict[tuple[str, int], Endpoint] = {}
    for subset in ep_obj.get("subsets") or []:
        if not isinstance(subset, dict):
            continue
        subset_ports = [p for p in subset.get("ports") or [] if isinstance(p, dict) and p.get("port")]
        named = next((int(p["port"]) for p in subset_ports if str(p.get("name") or "") == sp.name), None)
        if named is None and len(subset_ports) == 1 and len(svc.ports) == 1:
            named = int(subset_ports[0]["port"])
        for addr in subset.get("addresses") or []:
            if not isinstance(addr, dict) or not addr.get("ip"):
                continue
            ref = addr.get("targetRef") or {}
            pod = None
            if isinstance(ref, dict) and ref.get("kind", "Pod") == "Pod" and ref.get("name"):
                pod = pods.get((str(ref.get("namespace") or svc.namespace), str(ref["name"])))
            port = _container_port(pod, sp.target_port) or named
            if port is None:
                continue
            ip = str(addr["ip"])
            out[(ip, port)] = Endpoint(ip=ip, port=port, labels=_labels(pod) if pod else {},
                                       pod=str(_meta(pod).get("name")) if pod else "")
    return tuple(out[k] for k in sorted(out))


def _istio_config(obj: Obj, namespaces: frozenset[str]) -> IstioConfig:
    meta = _meta(obj)
    kind = str(obj.get("kind"))
    name, namespace = str(meta.get("name") or ""), str(meta.get("namespace") or "default")
    spec: Obj = obj.get("spec") or {}
    hosts: tuple[str, ...] = ()
    gateways: tuple[str, ...] = ()
    if kind == "VirtualService":
        hosts = tuple(resolve_host(str(h), namespace, namespaces) for h in spec.get("hosts") or [])
        gateways = tuple(gateway_ref(str(g), namespace) for g in spec.get("gateways") or [])
    elif kind == "DestinationRule" and spec.get("host"):
        hosts = (resolve_host(str(spec["host"]), namespace, namespaces),)
    return IstioConfig(kind=kind, name=name, namespace=namespace, spec=spec, hosts=hosts, gateways=gateways)
