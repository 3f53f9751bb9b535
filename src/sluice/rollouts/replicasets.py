"""What a Rollout owns and how it reads them: ownership, revision annotations, ReplicaSet counts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["Obj", "REVISION", "DESIRED", "SCALE_DOWN_DEADLINE", "owned_by", "by_owner", "revision_of", "status_count",
           "spec_replicas", "owner_ref"]

Obj = dict[str, Any]
REVISION = "rollout.argoproj.io/revision"
DESIRED = "rollout.argoproj.io/desired-replicas"
SCALE_DOWN_DEADLINE = "scale-down-deadline"


def owned_by(obj: Mapping[str, Any], owner: Mapping[str, Any]) -> bool:
    uid = owner["metadata"].get("uid")
    return any(r.get("uid") == uid for r in obj["metadata"].get("ownerReferences") or [])


def by_owner(objs: Iterable[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """`objs` grouped by the uid of each owner they name (an object with two owners is in both groups)."""
    groups: dict[str, list[Any]] = {}
    for obj in objs:
        for ref in obj["metadata"].get("ownerReferences") or []:
            uid = ref.get("uid")
            if uid:
                groups.setdefault(str(uid), []).append(obj)
    return groups


def revision_of(obj: Mapping[str, Any]) -> int:
    try:
        return int((obj["metadata"].get("annotations") or {}).get(REVISION) or 0)
    except ValueError:
        return 0


def status_count(rs: Obj | None, key: str) -> int:
    return int(((rs or {}).get("status") or {}).get(key) or 0)


def spec_replicas(rs: Obj | None) -> int:
    return int(((rs or {}).get("spec") or {}).get("replicas") or 0)


def owner_ref(ro: Obj) -> Obj:
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": ro["metadata"]["name"],
            "uid": ro["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}
