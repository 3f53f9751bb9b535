"""VirtualService analyzers: IST0101 (missing host, host+subset, mirror, gateway) and IST0109 (mesh host conflicts).

Run by `analyze` for `sluice analyze`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sluice.validation.analyze.index import Index, Obj
from sluice.validation.analyze.message import Message

__all__ = ["referenced_resources", "conflicting_mesh_hosts"]

_MESH = "mesh"


def _not_found(vs: Obj, reftype: str, value: str) -> Message:
    return Message("IST0101", "Error", "VirtualService", vs.namespace, vs.name,
                   f'Referenced {reftype} not found: "{value}"')


def _destinations(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for key in ("http", "tcp", "tls"):
        for rule in spec.get(key) or []:
            for rd in (rule.get("route") or []) if isinstance(rule, dict) else []:
                dest = rd.get("destination") if isinstance(rd, dict) else None
                if isinstance(dest, dict):
                    yield dest


def _mirrors(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for rule in spec.get("http") or []:
        if not isinstance(rule, dict):
            continue
        if isinstance(rule.get("mirror"), dict):
            yield rule["mirror"]
        for m in rule.get("mirrors") or []:
            if isinstance(m, dict) and isinstance(m.get("destination"), dict):
                yield m["destination"]


def _subsets(index: Index) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for dr in index.of_kind("DestinationRule"):
        host = dr.spec.get("host")
        if not isinstance(host, str):
            continue
        fq = index.fqdn(host, dr.namespace)
        for s in dr.spec.get("subsets") or []:
            if isinstance(s, dict) and isinstance(s.get("name"), str):
                out.add((fq, s["name"]))
    return out


def referenced_resources(index: Index, vs: Obj) -> list[Message]:
    """IST0101 for every destination host, subset and gateway a VirtualService names that does not exist."""
    out: list[Message] = []
    subsets = _subsets(index)
    for kind, dests in (("", _destinations(vs.spec)), ("mirror ", _mirrors(vs.spec))):
        for dest in dests:
            host = dest.get("host")
            if not isinstance(host, str) or not host:
                continue
            if index.service(host, vs.namespace) is None:
                out.append(_not_found(vs, f"{kind}host", host))
            subset = dest.get("subset")
            if isinstance(subset, str) and subset and (index.fqdn(host, vs.namespace), subset) not in subsets:
                reftype = "host+subset in destinationrule" if not kind else "mirror+subset in destinationrule"
                out.append(_not_found(vs, reftype, f"{host}+{subset}"))
    for gw in vs.spec.get("gateways") or []:
        if not isinstance(gw, str) or gw == _MESH:
            continue
        ns, slash, name = gw.partition("/")
        if not slash:
            # short name in the VirtualService's namespace, or the legacy `name.namespace` form
            name, _, legacy_ns = gw.partition(".")
            ns = legacy_ns.split(".")[0] if legacy_ns else vs.namespace
        if not index.exists("Gateway", ns, name):
            out.append(_not_found(vs, "gateway", gw))
    return out


def _mesh_bound(vs: Obj) -> bool:
    gateways = vs.spec.get("gateways") or []
    return not gateways or _MESH in gateways


def conflicting_mesh_hosts(index: Index) -> list[Message]:
    """IST0109: two VirtualServices bound to the mesh that claim the same host (visible in the same scope)."""
    scoped: dict[str, list[Obj]] = {}
    for vs in index.of_kind("VirtualService"):
        if not _mesh_bound(vs):
            continue
        export = [e for e in vs.spec.get("exportTo") or [] if isinstance(e, str)]
        scopes = {"*"} if not export or "*" in export else {vs.namespace if e == "." else e for e in export}
        for host in vs.spec.get("hosts") or []:
            if isinstance(host, str):
                for scope in scopes:
                    scoped.setdefault(f"{scope}/{index.fqdn(host, vs.namespace)}", []).append(vs)
    out: list[Message] = []
    reported: set[tuple[str, str]] = set()
    for key in sorted(scoped):
        scope, host = key.split("/", 1)
        group = list(scoped[key])
        if scope != "*":
            group += scoped.get(f"*/{host}", [])
        unique = {(v.namespace, v.name): v for v in group}
        if len(unique) < 2:
            continue
        names = ",".join(sorted(f"{ns}/{n}" for ns, n in unique))
        for ident, vs in sorted(unique.items()):
            if ident in reported:
                continue
            reported.add(ident)
            out.append(Message("IST0109", "Error", "VirtualService", vs.namespace, vs.name,
                               f"The VirtualServices {names} associated with mesh gateway define the same host "
                               f"{key} which can lead to undefined behavior. This can be fixed by merging the "
                               "conflicting VirtualServices into a single resource."))
    return out
