"""Argo's Istio traffic router (`rollout/trafficrouting/istio/istio.go`) as pure functions: the weights of the
named routes of the user's VirtualService, the `rollouts-pod-template-hash` labels of the DestinationRule's
canary/stable subsets. Everything else in the user's objects is left as it is.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

__all__ = ["IstioConfig", "route_indexes", "set_weights", "set_subset_hashes", "HASH_LABEL", "MANAGED_BY",
           "vs_refs"]

Obj = dict[str, Any]
HASH_LABEL = "rollouts-pod-template-hash"
MANAGED_BY = "argo-rollouts.argoproj.io/managed-by-rollouts"


@dataclass(frozen=True)
class IstioConfig:
    canary_service: str
    stable_service: str
    canary_subset: str
    stable_subset: str
    additional_subsets: tuple[str, ...] = ()


def vs_refs(istio: Obj, namespace: str) -> list[tuple[str, str, list[str]]]:
    """(namespace, name, routes) of every VirtualService the Rollout names; `name.ns` names another namespace."""
    refs = istio.get("virtualServices") or ([istio["virtualService"]] if istio.get("virtualService") else [])
    out = []
    for r in refs:
        if not isinstance(r, dict) or not r.get("name"):
            continue
        name = str(r["name"]).removesuffix(".cluster.local")
        ns = namespace
        if "." in name:
            name, ns = name.split(".", 1)[0], name.split(".", 1)[1].split(".")[0]
        out.append((ns, name, [str(x) for x in r.get("routes") or []]))
    return out


def route_indexes(vs: Obj, routes: list[str]) -> list[int]:
    """Indexes of `spec.http` the weights go into; ValueError with Argo's message when a route is missing."""
    http = (vs.get("spec") or {}).get("http") or []
    if not routes:
        if len(http) != 1:
            raise ValueError("spec.http[] should be set in VirtualService and it must have exactly one route when "
                             "omitting spec.strategy.canary.trafficRouting.istio.virtualService.routes")
        return [0]
    out = []
    names = [str((h or {}).get("name") or "") for h in http]
    for r in routes:
        if r not in names:
            raise ValueError(f"HTTP Route '{r}' is not found in the defined Virtual Service.")
        out.append(names.index(r))
    return out


def _host_key(dest: Obj) -> str:
    host = str(dest.get("host") or "")
    return "" if host.startswith(".") else host.split(".", 1)[0]


def check_route(route: Obj, cfg: IstioConfig) -> None:
    dests = [d.get("destination") or {} for d in route.get("route") or [] if isinstance(d, dict)]
    if cfg.canary_subset:
        subsets = {str(d.get("subset") or "") for d in dests}
        if cfg.canary_subset not in subsets:
            raise ValueError(f"Canary DestinationRule subset '{cfg.canary_subset}' not found in route")
        if cfg.stable_subset not in subsets:
            raise ValueError(f"Stable DestinationRule subset '{cfg.stable_subset}' not found in route")
    else:
        hosts = {_host_key(d) for d in dests}
        if cfg.canary_service not in hosts:
            raise ValueError(f"Canary Service '{cfg.canary_service}' not found in route")
        if cfg.stable_service not in hosts:
            raise ValueError(f"Stable Service '{cfg.stable_service}' not found in route")


def set_weights(vs: Obj, routes: list[str], canary_weight: int, cfg: IstioConfig) -> Obj | None:
    """The VirtualService with canary weight C and stable 100 - C (minus additional subsets) in the named
    routes, destinations that are neither removed, as Argo's processRoutes does; None when nothing changes."""
    out = copy.deepcopy(vs)
    http = (out.get("spec") or {}).get("http") or []
    changed = False
    for i in route_indexes(out, routes):
        route = http[i]
        check_route(route, cfg)
        dests = [d for d in route.get("route") or [] if isinstance(d, dict)]
        extra = sum(int(d.get("weight") or 0) for d in dests
                    if str((d.get("destination") or {}).get("subset") or "") in cfg.additional_subsets)
        stable = max(0, 100 - canary_weight - extra)
        kept = []
        for d in dests:
            dest = d.get("destination") or {}
            host, subset = _host_key(dest), str(dest.get("subset") or "")
            if (cfg.canary_service and host == cfg.canary_service) or (cfg.canary_subset and subset == cfg.canary_subset):
                want: int | None = canary_weight
            elif (cfg.stable_service and host == cfg.stable_service) or (cfg.stable_subset and subset == cfg.stable_subset):
                want = stable
            elif subset and subset in cfg.additional_subsets:
                want = None
            else:
                changed = True  # neither canary nor stable: Argo drops it from the managed route
                continue
            if want is not None and d.get("weight") != want:
                d["weight"] = want
                changed = True
            kept.append(d)
        route["route"] = kept
    return out if changed else None


def set_subset_hashes(dr: Obj, cfg: IstioConfig, canary_hash: str, stable_hash: str, rollout: str) -> Obj | None:
    """The DestinationRule with the hash label on the canary and stable subsets (other labels and fields kept,
    other subsets dropped, as Argo's UpdateHash) and the managed-by annotation; None when nothing changes."""
    out = copy.deepcopy(dr)
    spec = out.setdefault("spec", {})
    subsets = []
    for s in spec.get("subsets") or []:
        if not isinstance(s, dict):
            continue
        name = s.get("name")
        want = canary_hash if name == cfg.canary_subset else stable_hash if name == cfg.stable_subset else None
        if want is None:
            if name in cfg.additional_subsets:
                subsets.append(s)
            continue
        labels = dict(s.get("labels") or {})
        if want:
            labels[HASH_LABEL] = want
        else:
            labels.pop(HASH_LABEL, None)
        s["labels"] = labels
        subsets.append(s)
    spec["subsets"] = subsets
    meta = out.setdefault("metadata", {})
    meta["annotations"] = {**(meta.get("annotations") or {}), MANAGED_BY: rollout}
    return None if out == dr else out
