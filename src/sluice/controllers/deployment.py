"""The Deployment controller: Deployment → Pods, directly (no ReplicaSets), with rolling updates.

Pods are named `<deployment>-<pod-template-hash>-<suffix>` and labelled with `pod-template-hash`, as the
ReplicaSet controller would name them, so `kubectl get pods -l app=reviews,version=v2` and `kubectl logs -l …`
behave as users expect. A template change rolls out honouring `maxSurge`/`maxUnavailable` (or `Recreate`);
status (`observedGeneration`, `replicas`, `updatedReplicas`, `readyReplicas`, `availableReplicas`, conditions)
is what `kubectl rollout status` and `get deployments` read. Runs in the daemon.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Hashable, Mapping
from datetime import UTC, datetime
from typing import Any

from sluice.api.errors import ApiError
from sluice.api.registry import Registry, now_rfc3339
from sluice.controllers.events import EventRecorder
from sluice.controllers.informer import Informer
from sluice.controllers.queue import WorkQueue
from sluice.resources.kinds import by_kind
from sluice.store.sqlite import Store

__all__ = ["DeploymentController", "template_hash", "resolve_fraction", "pod_ready"]

Obj = dict[str, Any]
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # kube's SafeEncodeString alphabet: no vowels, no look-alikes
HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"


def template_hash(template: Obj) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True, separators=(",", ":")).encode()).digest()
    n = int.from_bytes(digest[:8], "big")
    out = []
    for _ in range(10):
        n, r = divmod(n, len(_ALPHABET))
        out.append(_ALPHABET[r])
    return "".join(out)


def resolve_fraction(value: Any, total: int, round_up: bool) -> int:
    """maxSurge/maxUnavailable: an int, or a percentage of `total` (surge rounds up, unavailable down)."""
    if isinstance(value, int):
        return max(0, value)
    if isinstance(value, str) and value.endswith("%"):
        try:
            pct = float(value[:-1])
        except ValueError:
            return 0
        raw = pct * total / 100
        return max(0, math.ceil(raw) if round_up else math.floor(raw))
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return 0


def pod_ready(pod: Mapping[str, Any]) -> bool:
    """The pod's Ready condition is True (what both the Deployment and the Endpoints controller count)."""
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return False


def _ready_since(pod: Obj) -> float | None:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready" and c.get("status") == "True":
            ts = c.get("lastTransitionTime")
            if isinstance(ts, str):
                try:
                    return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
                except ValueError:
                    return None
    return None


class DeploymentController:
    def __init__(self, registry: Registry, store: Store, events: EventRecorder) -> None:
        self.registry = registry
        self.events = events
        self.deploy_rt = by_kind("apps", "Deployment")
        self.pod_rt = by_kind("", "Pod")
        self.deployments = Informer(store, "deployments.apps", self._on_deployment)
        self.pods = Informer(store, "pods", self._on_pod)
        self.queue = WorkQueue("deployments", self._reconcile_key)

    async def start(self) -> None:
        self.queue.start()
        self.deployments.start()
        self.pods.start()

    async def stop(self) -> None:
        await self.deployments.stop()
        await self.pods.stop()
        await self.queue.stop()

    def _on_deployment(self, typ: str, obj: Obj, prev: Obj | None) -> None:
        m = obj["metadata"]
        self.queue.add((m.get("namespace", ""), m["name"]))

    def _on_pod(self, typ: str, obj: Obj, prev: Obj | None) -> None:
        for ref in obj["metadata"].get("ownerReferences") or []:
            if ref.get("kind") == "Deployment" and ref.get("controller"):
                self.queue.add((obj["metadata"].get("namespace", ""), ref.get("name")))

    def _reconcile_key(self, key: Hashable) -> float | None:
        assert isinstance(key, tuple)
        ns, name = key
        d = self.deployments.get(ns, name)
        if d is None or d["metadata"].get("deletionTimestamp"):
            return None
        return self.reconcile(d)

    def _owned(self, d: Obj) -> list[Obj]:
        uid = d["metadata"].get("uid")
        ns = d["metadata"].get("namespace", "")
        return [p for p in self.pods.list(ns)
                if any(r.get("uid") == uid for r in p["metadata"].get("ownerReferences") or [])]

    def reconcile(self, d: Obj) -> float | None:
        assert self.pod_rt is not None
        spec = d.get("spec") or {}
        desired = int(spec.get("replicas", 1))
        tmpl = spec.get("template") or {}
        h = template_hash(tmpl)
        owned = self._owned(d)
        live = [p for p in owned if not p["metadata"].get("deletionTimestamp")]
        terminating = [p for p in owned if p["metadata"].get("deletionTimestamp")]
        new = [p for p in live if (p["metadata"].get("labels") or {}).get(HASH_LABEL) == h]
        old = [p for p in live if p not in new]
        strategy = spec.get("strategy") or {}
        requeue: float | None = None
        if strategy.get("type") == "Recreate":
            if old:
                for p in old:
                    self._delete(d, p)
                requeue = 0.5
            elif not terminating and len(new) < desired:
                for _ in range(desired - len(new)):
                    self._create(d, tmpl, h)
        else:
            ru = strategy.get("rollingUpdate") or {}
            surge = resolve_fraction(ru.get("maxSurge", "25%"), desired, True)
            unavailable = resolve_fraction(ru.get("maxUnavailable", "25%"), desired, False)
            if surge == 0 and unavailable == 0:
                unavailable = 1
            total = len(live)
            if len(new) < desired:
                room = desired + surge - total
                for _ in range(max(0, min(desired - len(new), room))):
                    self._create(d, tmpl, h)
                    total += 1
            # Scale down: first what isn't ready (it serves nothing), then ready old pods while enough stay up.
            min_available = desired - unavailable
            ready_count = sum(1 for p in live if pod_ready(p))
            excess_new = sorted(new, key=lambda p: (pod_ready(p), p["metadata"]["name"]))[:max(0, len(new) - desired)]
            for p in [*sorted(old, key=lambda p: (pod_ready(p), p["metadata"]["name"])), *excess_new]:
                if not pod_ready(p):
                    self._delete(d, p)
                elif ready_count - 1 >= min_available or (not new and desired == 0):
                    self._delete(d, p)
                    ready_count -= 1
            if old or len(new) != desired:
                requeue = 1.0
        self._update_status(d, h)
        return requeue

    def _create(self, d: Obj, tmpl: Obj, h: str) -> None:
        assert self.pod_rt is not None
        m = d["metadata"]
        meta = copy.deepcopy(tmpl.get("metadata") or {})
        meta.pop("name", None)
        meta["generateName"] = f"{m['name']}-{h}-"
        meta["labels"] = {**(meta.get("labels") or {}), HASH_LABEL: h}
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "Deployment", "name": m["name"],
                                    "uid": m["uid"], "controller": True, "blockOwnerDeletion": True}]
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": copy.deepcopy(tmpl.get("spec") or {})}
        try:
            res = self.registry.create(self.pod_rt, "v1", m.get("namespace"), pod)
        except ApiError as e:
            self.events.record(d, "Warning", "FailedCreate", f"Error creating: {e.message}")
            raise
        self.events.record(d, "Normal", "SuccessfulCreate", f"Created pod: {res.object['metadata']['name']}")

    def _delete(self, d: Obj, p: Obj) -> None:
        assert self.pod_rt is not None
        try:
            self.registry.delete(self.pod_rt, "v1", p["metadata"].get("namespace"), p["metadata"]["name"])
        except ApiError as e:
            if e.code != 404:
                raise
            return
        self.events.record(d, "Normal", "SuccessfulDelete", f"Deleted pod: {p['metadata']['name']}")

    def _update_status(self, d: Obj, h: str) -> None:
        assert self.deploy_rt is not None
        spec = d.get("spec") or {}
        desired = int(spec.get("replicas", 1))
        owned = [p for p in self._owned(d) if not p["metadata"].get("deletionTimestamp")]
        new = [p for p in owned if (p["metadata"].get("labels") or {}).get(HASH_LABEL) == h]
        ready = [p for p in owned if pod_ready(p)]
        min_ready = int(spec.get("minReadySeconds") or 0)
        now = datetime.now(UTC).timestamp()
        available = [p for p in ready if min_ready == 0 or (_ready_since(p) or now) + min_ready <= now]
        ru = (spec.get("strategy") or {}).get("rollingUpdate") or {}
        max_unavailable = resolve_fraction(ru.get("maxUnavailable", "25%"), desired, False)
        complete = len(new) == desired == len(owned) and len([p for p in new if p in available]) == desired
        old_status = d.get("status") or {}
        old_conditions = {c.get("type"): c for c in old_status.get("conditions") or []}
        ts = now_rfc3339()

        def condition(type_: str, status: str, reason: str, message: str) -> Obj:
            prev = old_conditions.get(type_) or {}
            changed = prev.get("status") != status
            return {"type": type_, "status": status, "reason": reason, "message": message,
                    "lastUpdateTime": ts if changed or prev.get("reason") != reason else prev.get("lastUpdateTime", ts),
                    "lastTransitionTime": ts if changed else prev.get("lastTransitionTime", ts)}

        is_available = len(available) >= desired - max_unavailable
        name = d["metadata"]["name"]
        status: Obj = {
            "observedGeneration": d["metadata"].get("generation", 1),
            "replicas": len(owned),
            "updatedReplicas": len(new),
            "readyReplicas": len(ready),
            "availableReplicas": len(available),
            "conditions": [
                condition("Available", "True" if is_available else "False",
                          "MinimumReplicasAvailable" if is_available else "MinimumReplicasUnavailable",
                          "Deployment has minimum availability." if is_available
                          else "Deployment does not have minimum availability."),
                condition("Progressing", "True", "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
                          f'ReplicaSet "{name}-{h}" has successfully progressed.' if complete
                          else f'ReplicaSet "{name}-{h}" is progressing.'),
            ],
        }
        if desired - len(available) > 0:
            status["unavailableReplicas"] = desired - len(available)
        for k in ("readyReplicas", "availableReplicas", "updatedReplicas", "replicas"):
            if status[k] == 0:
                del status[k]
        cmp_old = {k: v for k, v in old_status.items() if k != "conditions"}
        cmp_new = {k: v for k, v in status.items() if k != "conditions"}
        same_conditions = [(c["type"], c["status"], c["reason"]) for c in status["conditions"]] == \
            [(c.get("type"), c.get("status"), c.get("reason")) for c in old_status.get("conditions") or []]
        if cmp_old == cmp_new and same_conditions:
            return
        cur = copy.deepcopy(d)
        cur["status"] = status
        try:
            self.registry.replace(self.deploy_rt, "v1", d["metadata"].get("namespace"), name, cur,
                                  subresource="status")
        except ApiError as e:
            if e.code not in (404, 409):
                raise
            self.queue.add((d["metadata"].get("namespace", ""), name), 0.05)
