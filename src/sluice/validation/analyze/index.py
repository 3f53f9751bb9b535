"""Lookup tables over all known objects for the analyzers: services, service entries, rules, workloads.

Built once per `analyze` call; host names resolve the way the mesh resolves them (`reviews`,
`reviews.tutorial`, `reviews.tutorial.svc.cluster.local`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Obj", "Index", "CLUSTER_DOMAIN", "label_map", "selects"]

CLUSTER_DOMAIN = "svc.cluster.local"
_EXPORT_TO_ANNOTATION = "networking.istio.io/exportTo"


def _dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def label_map(v: Any) -> dict[str, str]:
    """A labels mapping as strings, whatever was stored."""
    return {str(k): str(x) for k, x in _dict(v).items() if isinstance(x, str | int | bool)}


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    """Whether a matchLabels-style selector selects `labels` (no selector selects everything)."""
    return all(labels.get(k) == v for k, v in selector.items())


@dataclass(frozen=True)
class Obj:
    """The parts of one object the analyzers read."""

    kind: str
    namespace: str
    name: str
    raw: dict[str, Any]

    @property
    def spec(self) -> dict[str, Any]:
        return _dict(self.raw.get("spec"))

    @property
    def metadata(self) -> dict[str, Any]:
        return _dict(self.raw.get("metadata"))

    @classmethod
    def of(cls, raw: dict[str, Any]) -> Obj:
        meta = _dict(raw.get("metadata"))
        return cls(str(raw.get("kind", "")), str(meta.get("namespace") or "default"), str(meta.get("name", "")), raw)


@dataclass
class Service:
    """A mesh service: a Kubernetes Service or one host of a ServiceEntry."""

    host: str  # FQDN, or a `*.` wildcard for ServiceEntries
    namespace: str
    visible_to: frozenset[str] | None  # None: every namespace
    selector: dict[str, str] | None  # labels of its pods; None for a ServiceEntry listing endpoints
    endpoint_labels: list[dict[str, str]] = field(default_factory=list)

    def visible(self, namespace: str) -> bool:
        return self.visible_to is None or namespace in self.visible_to


def _visibility(entries: list[str], own: str) -> frozenset[str] | None:
    if not entries or "*" in entries:
        return None
    return frozenset(own if e == "." else e for e in entries)


class Index:
    def __init__(self, objects: list[dict[str, Any]]) -> None:
        self.objects = [Obj.of(o) for o in objects if isinstance(o, dict)]
        self.services: list[Service] = []
        self.by_host: dict[str, Service] = {}
        self.wildcards: list[Service] = []
        self.workloads: dict[str, list[dict[str, str]]] = {}  # namespace -> label sets of pods
        templates: dict[str, list[dict[str, str]]] = {}
        for o in self.objects:
            if o.kind == "Service":
                anno = _dict(o.metadata.get("annotations")).get(_EXPORT_TO_ANNOTATION)
                entries = [e.strip() for e in anno.split(",")] if isinstance(anno, str) and anno else []
                selector = label_map(o.spec.get("selector"))
                self.services.append(Service(f"{o.name}.{o.namespace}.{CLUSTER_DOMAIN}", o.namespace,
                                             _visibility(entries, o.namespace), selector))
            elif o.kind == "ServiceEntry":
                self._add_service_entry(o)
            elif o.kind == "Pod":
                self.workloads.setdefault(o.namespace, []).append(label_map(o.metadata.get("labels")))
            elif o.kind == "Deployment":
                template = _dict(_dict(o.spec.get("template")).get("metadata"))
                templates.setdefault(o.namespace, []).append(label_map(template.get("labels")))
        # without pods (e.g. analyzing files), the Deployments' pod templates stand in for them
        for ns, labels in templates.items():
            self.workloads.setdefault(ns, labels)
        self.by_host = {s.host: s for s in self.services if not s.host.startswith("*")}
        self.wildcards = [s for s in self.services if s.host.startswith("*")]

    def _add_service_entry(self, o: Obj) -> None:
        spec = o.spec
        export = [str(e) for e in spec.get("exportTo") or [] if isinstance(e, str)]
        selector = label_map(_dict(spec.get("workloadSelector")).get("labels"))
        endpoints = [label_map(_dict(e).get("labels")) for e in spec.get("endpoints") or []]
        for h in spec.get("hosts") or []:
            if isinstance(h, str) and h:
                self.services.append(Service(self.fqdn(h, o.namespace, known_only=False), o.namespace,
                                             _visibility(export, o.namespace),
                                             selector if "workloadSelector" in spec else None, endpoints))

    def fqdn(self, host: str, namespace: str, *, known_only: bool = True) -> str:
        """Resolve a host as written in `namespace`: short names and `name.ns` become cluster FQDNs."""
        if host.startswith("*"):
            return host
        if "." not in host:
            return f"{host}.{namespace}.{CLUSTER_DOMAIN}"
        if known_only:
            for candidate in (f"{host}.{CLUSTER_DOMAIN}", f"{host}.cluster.local"):
                if candidate in self.by_host:
                    return candidate
        return host

    def service(self, host: str, namespace: str) -> Service | None:
        """The service a host written in `namespace` refers to, if one is visible there."""
        fq = self.fqdn(host, namespace)
        s = self.by_host.get(fq)
        if s is not None and s.visible(namespace):
            return s
        bare = fq.removeprefix("*")
        for w in self.wildcards:
            if w.visible(namespace) and bare.endswith(w.host[1:]):
                return w
        return None

    def of_kind(self, kind: str) -> list[Obj]:
        return [o for o in self.objects if o.kind == kind]

    def exists(self, kind: str, namespace: str, name: str) -> bool:
        return any(o.kind == kind and o.namespace == namespace and o.name == name for o in self.objects)
