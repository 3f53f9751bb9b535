"""Argo's Istio traffic router (`rollout/trafficrouting/istio/istio.go`) as pure functions: the weights of the
named routes of the user's VirtualService, the `rollouts-pod-template-hash` labels of the DestinationRule's
canary/stable subsets, and the managed routes of `setHeaderRoute`/`setMirrorRoute` steps (added ahead of the
user's routes in `managedRoutes` order, removed at the end). Everything else in the user's objects is left as it is.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

__all__ = ["IstioConfig", "route_indexes", "set_weights", "set_subset_hashes", "HASH_LABEL", "MANAGED_BY",
           "vs_refs", "set_header_route", "set_mirror_route", "remove_managed_routes", "order_routes",
           "managed_names"]

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


def managed_names(canary: Obj) -> tuple[str, ...]:
    """`spec.strategy.canary.trafficRouting.managedRoutes[].name`, in precedence order."""
    routes = (canary.get("trafficRouting") or {}).get("managedRoutes") or []
    return tuple(str(r["name"]) for r in routes if isinstance(r, dict) and r.get("name"))


def _name(route: Any) -> str:
    return str(route.get("name") or "") if isinstance(route, dict) else ""


def route_indexes(vs: Obj, routes: list[str], managed: tuple[str, ...] = ()) -> list[int]:
    """Indexes of `spec.http` the weights go into; ValueError with Argo's message when a route is missing.
    Without route names the VirtualService must have one route besides the managed ones (ValidateHTTPRoutes)."""
    http = (vs.get("spec") or {}).get("http") or []
    if not routes:
        own = [i for i, h in enumerate(http) if _name(h) not in managed or not _name(h)]
        if len(http) == 1:
            return [0]
        if len(own) != 1:
            raise ValueError("spec.http[] should be set in VirtualService and it must have exactly one route when "
                             "omitting spec.strategy.canary.trafficRouting.istio.virtualService.routes")
        return own
    out = []
    names = [_name(h) for h in http]
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


def set_weights(vs: Obj, routes: list[str], canary_weight: int, cfg: IstioConfig,
                managed: tuple[str, ...] = ()) -> Obj | None:
    """The VirtualService with canary weight C and stable 100 - C (minus additional subsets) in the named
    routes, destinations that are neither removed, as Argo's processRoutes does; None when nothing changes.
    Mirror routes named in `managedRoutes` follow the weights too, and a changed object has its managed
    routes first (Argo's orderRoutes)."""
    out = copy.deepcopy(vs)
    http = (out.get("spec") or {}).get("http") or []
    changed = False
    indexes = route_indexes(out, routes, managed)
    for i in indexes:
        check_route(http[i], cfg)
    indexes += [i for i, h in enumerate(http) if i not in indexes and isinstance(h, dict) and h.get("mirror")
                and _name(h) and _name(h) in managed]
    for i in indexes:
        route = http[i]
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
            # a missing weight is 0, as in Argo's typed route (an omitted zero is not a change)
            if want is not None and int(d.get("weight") or 0) != want:
                d["weight"] = want
                changed = True
            kept.append(d)
        route["route"] = kept
    if not changed:
        return None
    if managed:
        out["spec"]["http"] = order_routes(http, managed)
    return out


# ------------------------------------------------------------------------------------ managed routes
def order_routes(http: list[Any], managed: tuple[str, ...]) -> list[Any]:
    """Argo's orderRoutes: the managed routes first, in `managedRoutes` order, then every other route in the
    order it had."""
    first = [r for name in managed for r in http if _name(r) == name]
    return first + [r for r in http if not _name(r) or _name(r) not in managed]


def _without(http: list[Any], name: str) -> list[Any]:
    return [r for r in http if _name(r) != name]


def _canary_destination(host: str, subset: str, port: Any) -> Obj:
    dest: Obj = {"host": host}
    if subset:
        dest["subset"] = subset
    if isinstance(port, int) and not isinstance(port, bool) and port > 0:
        dest["port"] = {"number": port}
    return dest


def _weighted_route(vs: Obj, routes: list[str], managed: tuple[str, ...]) -> list[Obj]:
    """The destinations of the first route setWeight writes (Argo's getVirtualServiceSetWeightRoute)."""
    http = (vs.get("spec") or {}).get("http") or []
    indexes = route_indexes(vs, routes, managed)
    return [d for d in http[indexes[0]].get("route") or [] if isinstance(d, dict)] if indexes else []


def _first_port(dests: list[Obj]) -> Any:
    return (((dests[0].get("destination") or {}).get("port") or {}).get("number")) if dests else None


def _string_match(m: Any) -> Obj:
    """An Argo StringMatch as Istio writes it: only the non-empty ones of exact, regex, prefix."""
    m = m if isinstance(m, dict) else {}
    return {k: str(m[k]) for k in ("exact", "regex", "prefix") if m.get(k)}


def _with_http(vs: Obj, http: list[Any], managed: tuple[str, ...]) -> Obj:
    out = copy.deepcopy(vs)
    out.setdefault("spec", {})["http"] = order_routes(http, managed) if managed else http
    return out


def set_header_route(vs: Obj, routes: list[str], managed: tuple[str, ...], step: Obj, host: str,
                     subset: str) -> Obj:
    """The VirtualService after a `setHeaderRoute` step (Argo's SetHeaderRoute): the route of that name replaced by
    one whose matches (OR-ed, one per header) send 100 % to the canary host/subset, on the port of the weighted
    route's first destination; a step without `match` only removes the route."""
    name = str(step.get("name") or "")
    http = _without(list((vs.get("spec") or {}).get("http") or []), name)
    matches = [m for m in step.get("match") or [] if isinstance(m, dict)]
    if step.get("match") is not None:
        port = _first_port(_weighted_route(vs, routes, managed))
        http.append({
            "name": name,
            "match": [{"headers": {str(m.get("headerName") or ""): _string_match(m.get("headerValue"))}}
                      for m in matches],
            "route": [{"destination": _canary_destination(host, subset, port), "weight": 100}],
        })
    return _with_http(vs, http, managed)


def set_mirror_route(vs: Obj, routes: list[str], managed: tuple[str, ...], step: Obj, host: str,
                     subset: str) -> Obj:
    """The VirtualService after a `setMirrorRoute` step (Argo's SetMirrorRoute): the route of that name replaced by
    one, put first, whose matches (method, uri from `path`, headers) keep the weighted route's destinations and
    weights and mirror `percentage` % (100 when unset) to the canary; a step without `match` only removes it."""
    name = str(step.get("name") or "")
    http = _without(list((vs.get("spec") or {}).get("http") or []), name)
    if step.get("match") is not None:
        weighted = _weighted_route(vs, routes, managed)
        matches = []
        for m in step.get("match") or []:
            m = m if isinstance(m, dict) else {}
            match: Obj = {}
            if m.get("method") is not None:
                match["method"] = _string_match(m["method"])
            if m.get("path") is not None:
                match["uri"] = _string_match(m["path"])
            if m.get("headers"):
                match["headers"] = {str(k): _string_match(v) for k, v in dict(m["headers"]).items()}
            matches.append(match)
        route = []
        for d in weighted:  # the typed copy Argo makes: host, subset, port number and a non-zero weight
            src = d.get("destination") or {}
            entry: Obj = {"destination": _canary_destination(str(src.get("host") or ""), str(src.get("subset") or ""),
                                                             ((src.get("port") or {}).get("number")))}
            if int(d.get("weight") or 0):
                entry["weight"] = int(d.get("weight") or 0)
            route.append(entry)
        percentage = step.get("percentage")
        http.insert(0, {
            "name": name,
            "match": matches,
            "route": route,
            "mirror": _canary_destination(host, subset, _first_port(weighted)),
            "mirrorPercentage": {"value": 100 if percentage is None else int(percentage)},
        })
    return _with_http(vs, http, managed)


def remove_managed_routes(vs: Obj, managed: tuple[str, ...], step_routes: tuple[str, ...]) -> Obj | None:
    """The VirtualService without the routes the steps name and the `managedRoutes` (Argo's RemoveManagedRoutes);
    None when it has none of them."""
    http = list((vs.get("spec") or {}).get("http") or [])
    names = set(managed) | set(step_routes)
    kept = [r for r in http if not _name(r) or _name(r) not in names]
    if len(kept) == len(http):
        return None
    out = copy.deepcopy(vs)
    out["spec"]["http"] = kept
    return out


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
