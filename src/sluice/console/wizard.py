"""The traffic-shifting wizard (pure): weights per workload → the DestinationRule and VirtualService Kiali's
wizard writes, and back (the weights a service's current routing gives its workloads).

Role: a service's *versioned workloads* are the Deployments its selector picks whose pods carry a `version`
label. `parse_weights` checks a wizard request (integers 0..100 totalling 100, known workloads, each named
once); `destination_rule` and `virtual_service` build the objects as Kiali's wizard does
(`networking.istio.io/v1`, label `kiali_wizard: traffic_shifting`, one subset per version selecting
`version: <v>`, one HTTP route of weighted subset destinations, weight-0 destinations left out);
`current_weights` reads the weights back from the service's VirtualService (the one named after the
service, or else the only one whose hosts name it): its first HTTP route's subset destinations, mapped
through the DestinationRule's subset labels to workloads; without such a route, an even split.
No I/O: the handlers in `sluice.console.api` read and write the objects through the Registry.

Callers: `sluice.console.api` (`/api/namespaces/{ns}/services/{name}/traffic-shifting`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sluice.console.inventory import config_hosts, names_service, service_workloads, template_labels
from sluice.console.params import Fail

__all__ = [
    "WIZARD_LABEL", "TRAFFIC_SHIFTING", "API_VERSION", "Versioned", "fqdn", "versioned_workloads",
    "parse_weights", "even_split", "destination_rule", "virtual_service", "service_config", "current_weights",
    "is_wizard",
]

WIZARD_LABEL = "kiali_wizard"
TRAFFIC_SHIFTING = "traffic_shifting"
API_VERSION = "networking.istio.io/v1"

Obj = Mapping[str, Any]


@dataclass(frozen=True)
class Versioned:
    """A workload behind a service, with its pods' labels (`version` among them)."""

    name: str
    version: str
    labels: Mapping[str, str]


def fqdn(service: str, namespace: str) -> str:
    return f"{service}.{namespace}.svc.cluster.local"


def _meta(obj: Obj) -> dict[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def versioned_workloads(service: Obj, deployments: Sequence[Obj]) -> list[Versioned]:
    """The workloads the service selects that carry a `version` label, by name."""
    out = []
    for dep in service_workloads(service, deployments):
        labels = template_labels(dep)
        if labels.get("version"):
            out.append(Versioned(str(_meta(dep).get("name")), labels["version"], labels))
    return out


def parse_weights(body: Any, workloads: Sequence[Versioned], service: str) -> dict[str, int]:
    """Weights by workload name (every versioned workload; unnamed ones get 0) from a wizard request body
    `{"workloads": [{"name", "weight"}]}`; anything else is a `Fail(400)` saying what and where."""
    if not isinstance(body, dict) or not isinstance(body.get("workloads"), list):
        raise Fail(400, 'the body must be an object {"workloads": [{"name": <workload>, "weight": <0..100>}, ...]}')
    known = {w.name: w for w in workloads}
    weights = dict.fromkeys(known, 0)
    seen: set[str] = set()
    for i, entry in enumerate(body["workloads"]):
        where = f"workloads[{i}]"
        if not isinstance(entry, dict):
            raise Fail(400, f"{where} must be an object with name and weight")
        name, weight = entry.get("name"), entry.get("weight")
        if not isinstance(name, str) or not name:
            raise Fail(400, f"{where}.name must be a workload name")
        if name not in known:
            raise Fail(400, f"{where}.name: {name!r} is not a versioned workload of service {service!r} "
                            f"(those are: {', '.join(sorted(known)) or 'none'})")
        if name in seen:
            raise Fail(400, f"{where}.name: workload {name!r} is listed twice")
        seen.add(name)
        if isinstance(weight, bool) or not isinstance(weight, int):
            raise Fail(400, f"{where}.weight ({name}) must be an integer from 0 to 100, not {weight!r}")
        if not 0 <= weight <= 100:
            raise Fail(400, f"{where}.weight ({name}) must be from 0 to 100, not {weight}")
        weights[name] = weight
    total = sum(weights.values())
    if total != 100:
        raise Fail(400, f"the weights total {total}, not 100")
    by_version: dict[str, str] = {}
    for name, weight in weights.items():
        version = known[name].version
        if weight and version in by_version:
            raise Fail(400, f"workloads {by_version[version]!r} and {name!r} share version {version!r}: the wizard "
                            "routes by version, so only one of them can take traffic")
        if weight:
            by_version[version] = name
    return weights


def even_split(count: int) -> list[int]:
    """`count` integer weights as even as can be, totalling 100 (the first ones take the remainder)."""
    if count <= 0:
        return []
    base, extra = divmod(100, count)
    return [base + (1 if i < extra else 0) for i in range(count)]


def _labels() -> dict[str, str]:
    return {WIZARD_LABEL: TRAFFIC_SHIFTING}


def _versions(workloads: Sequence[Versioned]) -> list[str]:
    out: list[str] = []
    for w in workloads:
        if w.version not in out:
            out.append(w.version)
    return out


def destination_rule(service: str, namespace: str, workloads: Sequence[Versioned]) -> dict[str, Any]:
    """Kiali's wizard DestinationRule: one subset per version of the service's workloads."""
    return {
        "apiVersion": API_VERSION, "kind": "DestinationRule",
        "metadata": {"name": service, "namespace": namespace, "labels": _labels()},
        "spec": {"host": fqdn(service, namespace),
                 "subsets": [{"name": v, "labels": {"version": v}} for v in _versions(workloads)]},
    }


def virtual_service(service: str, namespace: str, workloads: Sequence[Versioned],
                    weights: Mapping[str, int]) -> dict[str, Any]:
    """Kiali's wizard VirtualService: one HTTP route over the subsets with a weight above 0."""
    route = [{"destination": {"host": fqdn(service, namespace), "subset": w.version}, "weight": weights[w.name]}
             for w in workloads if weights.get(w.name, 0) > 0]
    return {
        "apiVersion": API_VERSION, "kind": "VirtualService",
        "metadata": {"name": service, "namespace": namespace, "labels": _labels()},
        "spec": {"hosts": [service], "http": [{"route": route}]},
    }


def is_wizard(obj: Obj | None) -> bool:
    labels = _meta(obj).get("labels") if obj is not None else None
    return isinstance(labels, dict) and WIZARD_LABEL in labels


def _names(obj: Obj, service: str, namespace: str) -> bool:
    obj_ns = str(_meta(obj).get("namespace") or "")
    return any(names_service(h, service, namespace, obj_ns) for h in config_hosts(obj))


def service_config(configs: Sequence[Obj], service: str, namespace: str) -> Obj | None:
    """The object (of one kind) that routes the service: the one in its namespace named after it whose hosts
    name it, or else the only one whose hosts name it; None when there is none or several."""
    mine = [c for c in configs if _meta(c).get("namespace") == namespace and _names(c, service, namespace)]
    for c in mine:
        if _meta(c).get("name") == service:
            return c
    return mine[0] if len(mine) == 1 else None


def _weights_from_route(vs: Obj, dr: Obj | None, workloads: Sequence[Versioned], service: str,
                        namespace: str) -> dict[str, int] | None:
    http = [r for r in _list((vs.get("spec") or {}).get("http")) if isinstance(r, dict)]
    if not http:
        return None
    dests = [d for d in _list(http[0].get("route")) if isinstance(d, dict) and isinstance(d.get("destination"), dict)]
    subsets = {}
    if dr is not None:
        for s in _list((dr.get("spec") or {}).get("subsets")):
            if isinstance(s, dict) and isinstance(s.get("name"), str):
                labels = s.get("labels")
                subsets[s["name"]] = {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}
    vs_ns = str(_meta(vs).get("namespace") or "")
    weights = {w.name: 0 for w in workloads}
    mapped = False
    for d in dests:
        dest = d["destination"]
        subset = dest.get("subset")
        if not isinstance(subset, str) or not names_service(str(dest.get("host") or ""), service, namespace, vs_ns):
            continue
        labels = subsets.get(subset)
        if not labels:
            continue
        weight = d.get("weight")
        if not isinstance(weight, int) or isinstance(weight, bool):
            weight = 100 if len(dests) == 1 else 0
        for w in workloads:  # the first workload the subset selects takes its weight
            if all(w.labels.get(k) == v for k, v in labels.items()):
                weights[w.name] += weight
                mapped = True
                break
    return weights if mapped else None


def current_weights(service: Obj, workloads: Sequence[Versioned], virtual_services: Sequence[Obj],
                    destination_rules: Sequence[Obj]) -> dict[str, Any]:
    """The wizard's view of a service: its versioned workloads with their current weights, and the
    VirtualService and DestinationRule that route it."""
    meta = _meta(service)
    name, ns = str(meta.get("name")), str(meta.get("namespace") or "")
    vs = service_config(virtual_services, name, ns)
    dr = service_config(destination_rules, name, ns)
    weights = _weights_from_route(vs, dr, workloads, name, ns) if vs is not None else None
    if weights is None:
        weights = dict(zip((w.name for w in workloads), even_split(len(workloads)), strict=True))
    return {
        "service": name, "namespace": ns, "host": fqdn(name, ns),
        "workloads": [{"name": w.name, "version": w.version, "weight": weights[w.name]} for w in workloads],
        "virtualService": _meta(vs).get("name") if vs is not None else None,
        "destinationRule": _meta(dr).get("name") if dr is not None else None,
        "wizard": is_wizard(vs) or is_wizard(dr),
    }
