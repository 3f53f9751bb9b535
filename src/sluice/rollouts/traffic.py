"""A Rollout's traffic, as Argo's `reconcileTrafficRouting` and `reconcileStableAndCanaryService` write it:
the managed routes (removed when the rollout is promoted, aborted or has no canary pods; written by a current
`setHeaderRoute`/`setMirrorRoute` step), the stable/canary Service selectors (host-level), the DestinationRule
subsets' hash labels (subset-level), the weights of the VirtualServices' named routes, then
`status.canary.weights` and its Events."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from sluice.rollouts import istio
from sluice.rollouts.istio import HASH_LABEL, IstioConfig
from sluice.rollouts.replicasets import Obj, spec_replicas, status_count

if TYPE_CHECKING:
    from sluice.rollouts.canary import RolloutPass

__all__ = ["apply"]


def apply(p: RolloutPass, cfg: IstioConfig, weight: int, canary_hash: str, stable_hash: str, new: Obj,
          stable: Obj | None, remove_routes: bool = False, route_step: Obj | None = None) -> bool:
    """Managed routes, Services, DestinationRule hashes, VirtualService weights, then `status.canary.weights`.
    `remove_routes` takes every managed route out first; `route_step` (a current setHeaderRoute/setMirrorRoute
    step) is written once the stable side can take its share. False when the stable ReplicaSet cannot take its
    share yet (nothing but the removal is written then) or a routing object is missing."""
    tr = (p.canary.get("trafficRouting") or {}).get("istio") or {}
    if remove_routes:
        remove_managed(p, tr)
    if stable is not None and stable is not new:
        need = math.floor((100 - weight) * p.replicas / 100)
        if status_count(stable, "availableReplicas") < need:
            p.after(2.0)
            return False
    aborted = bool(p.status.get("abort"))
    if cfg.stable_service:
        switch_service(p, cfg.stable_service, stable_hash, stable)
    if cfg.canary_service:
        switch_service(p, cfg.canary_service, stable_hash if aborted else canary_hash,
                       stable if aborted else new)
    if route_step is not None and not write_step_route(p, cfg, tr, route_step):
        return False
    dr_ref = tr.get("destinationRule") or {}
    if dr_ref.get("name"):
        dr = _destination_rule(p, str(dr_ref["name"]))
        if dr is None:
            return False
        updated = istio.set_subset_hashes(dr, cfg, canary_hash, stable_hash, p.name)
        if updated is not None:
            pure_subset_mode = not cfg.canary_service and not cfg.stable_service
            if pure_subset_mode and not subsets_ready(p, canary_hash, stable_hash, new, stable, aborted):
                p.after(2.0)
                return False
            p.kube.update("DestinationRule", updated)
            p.event("UpdatedDestinationRule", f"DestinationRule {dr_ref['name']} subset updated "
                    f"({cfg.canary_subset}: {canary_hash}, {cfg.stable_subset}: {stable_hash})")
    for ns, name, routes in istio.vs_refs(tr, p.ns):
        vs = _virtual_service(p, ns, name)
        if vs is None:
            return False
        try:
            updated = istio.set_weights(vs, routes, weight, cfg, istio.managed_names(p.canary))
        except ValueError as e:
            p.event("TrafficRoutingError", str(e), "Warning")
            p.after(5.0)
            return False
        if updated is not None:
            p.kube.update("VirtualService", updated)
            p.event("Updated VirtualService", f"VirtualService `{name}` set to desiredWeight '{weight}'")
    weights: Obj = {"canary": {"weight": weight, "podTemplateHash": canary_hash},
                    "stable": {"weight": 100 - weight, "podTemplateHash": stable_hash}}
    if cfg.canary_service:
        weights["canary"]["serviceName"] = cfg.canary_service
    if cfg.stable_service:
        weights["stable"]["serviceName"] = cfg.stable_service
    canary_status = p.status.setdefault("canary", {})
    old = canary_status.get("weights")
    if old != weights:
        before = ((old or {}).get("canary") or {}).get("weight")
        text = "" if before == weight else (f"Traffic weight updated from {before} to {weight}"
                                            if before is not None else f"Traffic weight updated to {weight}")
        p.event("TrafficWeightUpdated", text)
        canary_status["weights"] = weights
    return True


def subsets_ready(p: RolloutPass, canary_hash: str, stable_hash: str, new: Obj, stable: Obj | None, aborted: bool) -> bool:
    """Argo delays a pure subset-mode DestinationRule switch until the ReplicaSets are fully available."""
    for rs in (new, stable):
        if rs is None or (aborted and rs is new):
            continue
        n = spec_replicas(rs)
        if n > 0 and status_count(rs, "availableReplicas") < n:
            return False
    return True


def switch_service(p: RolloutPass, name: str, target_hash: str, target: Obj | None) -> None:
    svc = p.kube.get("Service", p.ns, name)
    if svc is None:
        return
    selector = (svc.get("spec") or {}).get("selector") or {}
    old = selector.get(HASH_LABEL)
    if old == target_hash or target is None or status_count(target, "availableReplicas") == 0:
        return
    p.kube.patch("Service", p.ns, name, {
        "metadata": {"annotations": {istio.MANAGED_BY: p.name}},
        "spec": {"selector": {HASH_LABEL: target_hash}}})
    p.event("SwitchService", f"Switched selector for service '{name}' from '{old or ''}' to '{target_hash}'")


def step_routes(steps: list[Obj]) -> tuple[str, ...]:
    """The route names of every setHeaderRoute/setMirrorRoute step."""
    out = []
    for st in steps:
        for key in ("setHeaderRoute", "setMirrorRoute"):
            route = st.get(key)
            if isinstance(route, dict) and route.get("name"):
                out.append(str(route["name"]))
    return tuple(out)


def remove_managed(p: RolloutPass, tr: Obj) -> None:
    """Argo's RemoveManagedRoutes over every VirtualService (a missing one has nothing to remove)."""
    managed, named = istio.managed_names(p.canary), step_routes(p.steps)
    if not managed and not named:
        return
    for ns, name, _routes in istio.vs_refs(tr, p.ns):
        vs = p.kube.get("VirtualService", ns, name)
        if vs is None:
            continue
        updated = istio.remove_managed_routes(vs, managed, named)
        if updated is not None:
            p.kube.update("VirtualService", updated)
            p.event("Updated VirtualService", f"VirtualService `{name}` removed all managed routes.")


def _destination_rule(p: RolloutPass, name: str) -> Obj | None:
    """The DestinationRule the Rollout names; None (with a Warning Event, and another pass soon) when missing."""
    dr = p.kube.get("DestinationRule", p.ns, name)
    if dr is None:
        p.event("DestinationRuleNotFound", f"DestinationRule `{name}` not found", "Warning")
        p.after(5.0)
    return dr


def _virtual_service(p: RolloutPass, ns: str, name: str) -> Obj | None:
    """A VirtualService the Rollout names; None (with a Warning Event, and another pass soon) when missing."""
    vs = p.kube.get("VirtualService", ns, name)
    if vs is None:
        p.event("VirtualServiceNotFound", f"VirtualService `{name}` not found", "Warning")
        p.after(5.0)
    return vs


def write_step_route(p: RolloutPass, cfg: IstioConfig, tr: Obj, step: Obj) -> bool:
    """Argo's SetHeaderRoute/SetMirrorRoute: the step's route in every VirtualService, pointing at the canary
    Service (host-level) or the DestinationRule's host and canary subset (subset-level)."""
    key = "setHeaderRoute" if "setHeaderRoute" in step else "setMirrorRoute"
    route = step.get(key) or {}
    host, subset = cfg.canary_service, ""
    dr_ref = tr.get("destinationRule") or {}
    if dr_ref.get("name"):
        dr = _destination_rule(p, str(dr_ref["name"]))
        if dr is None:
            return False
        host = str((dr.get("spec") or {}).get("host") or "") or host
        subset = cfg.canary_subset
    managed = istio.managed_names(p.canary)
    edit = istio.set_header_route if key == "setHeaderRoute" else istio.set_mirror_route
    for ns, name, routes in istio.vs_refs(tr, p.ns):
        vs = _virtual_service(p, ns, name)
        if vs is None:
            return False
        try:
            updated = edit(vs, routes, managed, route, host, subset)
        except ValueError as e:
            p.event("TrafficRoutingError", str(e), "Warning")
            p.after(5.0)
            return False
        if updated != vs:  # Argo writes (and says so) every time; an unchanged object is not written again here
            p.kube.update("VirtualService", updated)
            word = "headerRoute" if key == "setHeaderRoute" else "mirrorRoute"
            p.event("Updated VirtualService", f"VirtualService `{name}` set {word} '{route.get('name')}'")
    p.routed_step = True
    return True
