"""The ReplicaSet controller: keeps `spec.replicas` pods of a ReplicaSet's template running.

Pods are created from the template with `generateName: <replicaset>-` (so a Deployment's pods are named
`<deployment>-<pod-template-hash>-<suffix>`) and a controller ownerReference to the ReplicaSet; surplus pods go
in kube's order (pending before running, not ready before ready, most recently ready and newest first).
Status (`replicas`, `fullyLabeledReplicas`, `readyReplicas`, `availableReplicas`, `observedGeneration`) is what
the Deployment controller and `kubectl get rs` read. Works the same for a ReplicaSet applied by hand.
Pods without a controller that match the selector (left by `kubectl delete rs --cascade=orphan`) are
adopted, as kube's controller does, instead of being duplicated.
"""

from __future__ import annotations

import copy
from collections.abc import Hashable, Mapping
from datetime import UTC, datetime
from typing import Any

from sluice.api.errors import ApiError
from sluice.api.registry import Registry
from sluice.controllers.events import EventRecorder
from sluice.controllers.queue import WorkQueue
from sluice.kube.informer import Informer
from sluice.kube.pods import pod_ready, timestamp
from sluice.kube.selectors import SelectorError, from_label_selector_dict
from sluice.objects import Obj
from sluice.resources.kinds import by_kind
from sluice.store import Store

__all__ = ["ReplicaSetController", "controller_uid", "active", "available", "owner_ref", "selects"]

_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


def _ready_since(pod: Obj) -> float | None:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready" and c.get("status") == "True":
            return timestamp(c.get("lastTransitionTime"))
    return None



def controller_uid(obj: Mapping[str, Any]) -> str | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if isinstance(ref, dict) and ref.get("controller"):
            return str(ref.get("uid"))
    return None


def owner_ref(owner: Obj, kind: str) -> Obj:
    m = owner["metadata"]
    return {"apiVersion": "apps/v1", "kind": kind, "name": m["name"], "uid": m["uid"], "controller": True,
            "blockOwnerDeletion": True}


def selects(owner: Obj, obj: Obj) -> bool:
    """`owner`'s spec.selector matches `obj`'s labels (an empty or invalid selector selects nothing)."""
    try:
        sel = from_label_selector_dict((owner.get("spec") or {}).get("selector"))
    except SelectorError:
        return False
    return not sel.empty and sel.matches((obj.get("metadata") or {}).get("labels") or {})


def active(pod: Mapping[str, Any]) -> bool:
    """Counted as a replica: not terminating and not finished (kube's FilterActivePods)."""
    phase = (pod.get("status") or {}).get("phase")
    return not (pod.get("metadata") or {}).get("deletionTimestamp") and phase not in ("Succeeded", "Failed")


def available(pod: Obj, min_ready_seconds: int, now: float) -> bool:
    if not pod_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    since = _ready_since(pod)
    return since is not None and since + min_ready_seconds <= now


def _deletion_rank(pod: Obj) -> tuple[int, int, float, float]:
    """Lower goes first when scaling down (kube's ActivePods ordering, without node assignment/restarts)."""
    phase = _PHASE_RANK.get(str((pod.get("status") or {}).get("phase")), 2)
    ready = pod_ready(pod)
    since = _ready_since(pod) or 0.0
    created = timestamp(pod["metadata"].get("creationTimestamp")) or 0.0
    return (phase, int(ready), -since, -created)


class ReplicaSetController:
    def __init__(self, registry: Registry, store: Store, events: EventRecorder) -> None:
        self.registry = registry
        self.events = events
        self.rs_rt = by_kind("apps", "ReplicaSet")
        self.pod_rt = by_kind("", "Pod")
        self.replicasets = Informer(store, "replicasets.apps", self._on_replicaset)
        self.pods = Informer(store, "pods", self._on_pod)
        self.queue = WorkQueue("replicasets", self._reconcile_key)

    async def start(self) -> None:
        self.queue.start()
        self.replicasets.start()
        self.pods.start()

    async def stop(self) -> None:
        await self.replicasets.stop()
        await self.pods.stop()
        await self.queue.stop()

    def _on_replicaset(self, typ: str, obj: Obj, prev: Obj | None) -> None:
        m = obj["metadata"]
        self.queue.add((m.get("namespace", ""), m["name"]))

    def _on_pod(self, typ: str, obj: Obj, prev: Obj | None) -> None:
        for ref in obj["metadata"].get("ownerReferences") or []:
            if ref.get("kind") == "ReplicaSet" and ref.get("controller"):
                self.queue.add((obj["metadata"].get("namespace", ""), ref.get("name")))

    def owned_pods(self, rs: Obj) -> list[Obj]:
        """Every pod (terminating ones included) whose controller is `rs`."""
        uid = rs["metadata"].get("uid")
        return [p for p in self.pods.list(rs["metadata"].get("namespace", "")) if controller_uid(p) == uid]

    def _reconcile_key(self, key: Hashable) -> float | None:
        assert isinstance(key, tuple)
        ns, name = key
        rs = self.replicasets.get(ns, name)
        if rs is None or rs["metadata"].get("deletionTimestamp"):
            return None
        return self.reconcile(rs)

    def _adopt(self, rs: Obj) -> None:
        assert self.pod_rt is not None
        for p in self.pods.list(rs["metadata"].get("namespace", "")):
            if controller_uid(p) is not None or not active(p) or not selects(rs, p):
                continue
            cur = copy.deepcopy(p)
            cur["metadata"]["ownerReferences"] = [*(p["metadata"].get("ownerReferences") or []),
                                                  owner_ref(rs, "ReplicaSet")]
            try:
                res = self.registry.replace(self.pod_rt, "v1", p["metadata"].get("namespace"),
                                            p["metadata"]["name"], cur)
            except ApiError as e:
                if e.code not in (404, 409):
                    raise
                continue
            self.pods.remember(res.object)

    def reconcile(self, rs: Obj) -> float | None:
        spec = rs.get("spec") or {}
        desired = int(spec.get("replicas", 1))
        self._adopt(rs)
        live = [p for p in self.owned_pods(rs) if active(p)]
        if len(live) < desired:
            for _ in range(desired - len(live)):
                live.append(self._create(rs))
        elif len(live) > desired:
            doomed = sorted(live, key=_deletion_rank)[: len(live) - desired]
            for p in doomed:
                self._delete(rs, p)
            live = [p for p in live if p not in doomed]
        return self._update_status(rs, live)

    def _create(self, rs: Obj) -> Obj:
        assert self.pod_rt is not None
        m = rs["metadata"]
        tmpl = (rs.get("spec") or {}).get("template") or {}
        meta = copy.deepcopy(tmpl.get("metadata") or {})
        meta.pop("name", None)
        meta["generateName"] = f"{m['name']}-"
        meta["ownerReferences"] = [owner_ref(rs, "ReplicaSet")]
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": copy.deepcopy(tmpl.get("spec") or {})}
        try:
            res = self.registry.create(self.pod_rt, "v1", m.get("namespace"), pod)
        except ApiError as e:
            self.events.record(rs, "Warning", "FailedCreate", f"Error creating: {e.message}")
            raise
        self.pods.remember(res.object)
        self.events.record(rs, "Normal", "SuccessfulCreate", f"Created pod: {res.object['metadata']['name']}")
        return res.object

    def _delete(self, rs: Obj, p: Obj) -> None:
        assert self.pod_rt is not None
        ns, name = p["metadata"].get("namespace", ""), p["metadata"]["name"]
        try:
            gone = self.registry.delete(self.pod_rt, "v1", ns, name)
        except ApiError as e:
            if e.code != 404:
                raise
            return
        if gone["metadata"].get("deletionTimestamp"):
            self.pods.remember(gone)  # marked terminating: the kubelet finishes it
        else:
            self.pods.forget(ns, name)
        self.events.record(rs, "Normal", "SuccessfulDelete", f"Deleted pod: {name}")

    def _update_status(self, rs: Obj, live: list[Obj]) -> float | None:
        assert self.rs_rt is not None
        spec = rs.get("spec") or {}
        min_ready = int(spec.get("minReadySeconds") or 0)
        now = datetime.now(UTC).timestamp()
        tmpl_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        ready = [p for p in live if pod_ready(p)]
        avail = [p for p in ready if available(p, min_ready, now)]
        status: Obj = {
            "replicas": len(live),
            "fullyLabeledReplicas": sum(1 for p in live if all(
                (p["metadata"].get("labels") or {}).get(k) == v for k, v in tmpl_labels.items())),
            "readyReplicas": len(ready),
            "availableReplicas": len(avail),
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        for k in ("fullyLabeledReplicas", "readyReplicas", "availableReplicas"):
            if status[k] == 0:
                del status[k]
        # A ready pod becomes available minReadySeconds later: look again then.
        waits = [(_ready_since(p) or now) + min_ready - now for p in ready if p not in avail]
        requeue = max(0.05, min(waits)) if waits else None
        if (rs.get("status") or {}) == status:
            return requeue
        cur = copy.deepcopy(rs)
        cur["status"] = status
        ns, name = rs["metadata"].get("namespace", ""), rs["metadata"]["name"]
        try:
            res = self.registry.replace(self.rs_rt, "v1", ns, name, cur, subresource="status")
        except ApiError as e:
            if e.code not in (404, 409):
                raise
            return 0.05 if e.code == 409 else None
        self.replicasets.remember(res.object)
        return requeue
