"""A Rollout's `spec.workloadRef`, as Argo resolves and honours it.

Argo (rollout/templateref.go) takes the Pod template, and the selector when the Rollout names none, from the
referenced workload on every pass, without writing them into the Rollout: a change to the workload's template
is a new revision of the Rollout. The workload's `metadata.generation` is kept in the Rollout's
`rollout.argoproj.io/workload-generation` annotation and, once acted on, in `status.workloadObservedGeneration`.
`scaleDown` (rollout/replicaset.go, rollout/sync.go, rollout/scale_utils.go) only ever concerns revision 1, the
migration: `never` leaves the Deployment alone, `onsuccess` scales it to 0 once the Rollout is Healthy,
`progressively` keeps it at `replicas - readyReplicas` of the Rollout until then, and 0 after.

Pure functions; `sluice.rollouts.canary` does the reading and writing.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["WORKLOAD_GENERATION", "NEVER", "ONSUCCESS", "PROGRESSIVELY", "group_kind", "resolve_error",
           "not_found", "kube_kind", "resolve", "generation", "scale_down_mode", "deployment_target", "template_is_empty"]

Obj = dict[str, Any]
WORKLOAD_GENERATION = "rollout.argoproj.io/workload-generation"
NEVER, ONSUCCESS, PROGRESSIVELY = "never", "onsuccess", "progressively"

# Argo's infoByGroupKind without PodTemplate (not served here): where a kind keeps its template and selector,
# and the Kube kind name and plural that reads it
_KINDS: dict[tuple[str, str], tuple[str, str]] = {
    ("apps", "Deployment"): ("Deployment", "deployments"),
    ("apps", "ReplicaSet"): ("ReplicaSet", "replicasets"),
}


def group_kind(ref: Obj) -> tuple[str, str]:
    """(group, kind) of `apiVersion`/`kind`, as schema.FromAPIVersionAndKind splits them."""
    api_version = str(ref.get("apiVersion") or "")
    group = api_version.split("/", 1)[0] if "/" in api_version else ""
    return group, str(ref.get("kind") or "")


def template_is_empty(template: Any) -> bool:
    """Argo's EmptyTemplate: no metadata and no spec worth the name."""
    if not isinstance(template, dict):
        return True
    return not template.get("spec") and not template.get("metadata")


def resolve_error(spec: Obj) -> str:
    """Why `spec.workloadRef` cannot be read at all (before any API call), in Argo's words; "" if it can."""
    if not template_is_empty(spec.get("template")):
        return "template must be empty for workload reference rollout"
    group, kind = group_kind(spec.get("workloadRef") or {})
    if (group, kind) not in _KINDS:
        return f"workload of type {group}/{kind} is not supported"
    return ""


def kube_kind(ref: Obj) -> str:
    """The kind name `sluice.rollouts.kube.Kube` reads the referenced workload with."""
    return _KINDS[group_kind(ref)][0]


def not_found(ref: Obj, namespace: str) -> str:
    """Argo's informer lister is asked for "namespace/name", so its NotFound names both."""
    group, kind = group_kind(ref)
    plural = _KINDS[(group, kind)][1]
    return f'{plural}.{group} "{namespace}/{ref.get("name") or ""}" not found'


def resolve(spec: Obj, workload: Obj) -> Obj:
    """The Rollout's spec as Argo acts on it: the workload's Pod template, and its selector if the Rollout has
    none. `spec` is not changed."""
    out = copy.deepcopy(spec)
    wspec = workload.get("spec") or {}
    template = wspec.get("template")
    if isinstance(template, dict):
        out["template"] = copy.deepcopy(template)
    if out.get("selector") is None and isinstance(wspec.get("selector"), dict):
        out["selector"] = copy.deepcopy(wspec["selector"])
    return out


def generation(workload: Obj) -> str:
    return str(int((workload.get("metadata") or {}).get("generation") or 0))


def scale_down_mode(ref: Obj) -> str:
    """`scaleDown` as Argo compares it (exact strings); unset is `never`."""
    return str(ref.get("scaleDown") or NEVER)


def deployment_target(mode: str, revision: int, phase: str, replicas: int, ready: int, old_scale: int,
                      new_scale: int, *, scaling_new: bool) -> int | None:
    """The Deployment's replicas after a pass, or None to leave it as it is.

    `phase` and `ready` are the Rollout's status as the pass found it (Argo reads `c.rollout.Status`);
    `scaling_new` is whether the pass reconciled the new ReplicaSet's size (`reconcileNewReplicaSet`), where
    Argo's `progressively` acts, from `old_scale` to `new_scale` replicas. `onsuccess` acts at the end of every
    pass (`syncRolloutStatusCanary`). Only revision 1, the migration, is concerned."""
    if revision != 1:
        return None
    if mode == ONSUCCESS:
        return 0 if phase == "Healthy" else None
    if mode == PROGRESSIVELY and scaling_new:
        if phase == "Healthy":
            return 0
        if ready > 0 or old_scale > new_scale:
            return max(0, replicas - ready)
    return None
