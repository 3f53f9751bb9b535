"""Which pod `sluice exec|port-forward TARGET` talks to: kubectl's `AttachablePodForObject`.

`POD`, `pod/NAME`: that pod. `TYPE/NAME` (deploy, rs, sts, ds, job, svc, …): the object's selector, then the
"most active" matching pod (scheduled, Running before Pending, Ready, longest ready, fewest restarts, oldest).
"""

from __future__ import annotations

from typing import Any

from sluice.cli.context import Session
from sluice.cli.errors import CliError

__all__ = ["attachable_pod", "rank"]

_PHASE = {"Running": 0, "Unknown": 1, "Pending": 2}


def _ready_since(pod: dict[str, Any]) -> str | None:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready" and c.get("status") == "True":
            return str(c.get("lastTransitionTime") or "")
    return None


def rank(pod: dict[str, Any]) -> tuple[Any, ...]:
    """Sort key: the most active pod first (kubectl's reversed `ActivePods` order)."""
    status = pod.get("status") or {}
    meta = pod.get("metadata") or {}
    ready = _ready_since(pod)
    restarts = sum(int(c.get("restartCount") or 0) for c in status.get("containerStatuses") or [])
    return (not (pod.get("spec") or {}).get("nodeName"), _PHASE.get(str(status.get("phase")), 3),
            ready is None, bool(meta.get("deletionTimestamp")), ready or "", restarts,
            str(meta.get("creationTimestamp") or ""))


def _selector(kind: str, obj: dict[str, Any], name: str) -> str:
    spec = obj.get("spec") or {}
    if kind == "Service":
        sel = spec.get("selector") or {}
        if not sel:
            raise CliError(f"cannot attach to *v1.Service: invalid service '{name}': "
                           "Service is defined without a selector")
        return ",".join(f"{k}={v}" for k, v in sorted(sel.items()))
    sel = spec.get("selector")
    if kind not in ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "ReplicationController") \
            or not isinstance(sel, dict):
        raise CliError(f"cannot attach to *v1.{kind}: selector for *v1.{kind} not implemented")
    if kind == "ReplicationController":
        return ",".join(f"{k}={v}" for k, v in sorted(sel.items()))
    parts = [f"{k}={v}" for k, v in sorted((sel.get("matchLabels") or {}).items())]
    for e in sel.get("matchExpressions") or []:
        values = ",".join(str(v) for v in e.get("values") or [])
        op = str(e.get("operator"))
        if op == "In":
            parts.append(f"{e.get('key')} in ({values})")
        elif op == "NotIn":
            parts.append(f"{e.get('key')} notin ({values})")
        elif op == "Exists":
            parts.append(str(e.get("key")))
        elif op == "DoesNotExist":
            parts.append(f"!{e.get('key')}")
    return ",".join(parts)


def attachable_pod(s: Session, ref: str, namespace: str) -> dict[str, Any]:
    pods_info = s.client.resolve("pods")
    type_, _, name = ref.rpartition("/")
    if not name:
        raise CliError(f"arguments in resource/name form must have a single resource and name: {ref!r}")
    if not type_:
        return s.client.get(pods_info, name, namespace)
    info = s.client.resolve(type_)
    if info.kind == "Pod":
        return s.client.get(pods_info, name, namespace)
    obj = s.client.get(info, name, namespace)
    selector = _selector(info.kind, obj, name)
    pods = s.client.list(pods_info, namespace, label_selector=selector).get("items") or []
    if not pods:
        raise CliError(f"no pods found for {info.kind.lower()}/{name} (selector {selector})")
    best: dict[str, Any] = sorted(pods, key=rank)[0]
    return best
