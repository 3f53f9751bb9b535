"""The Deployment controller: Deployment → ReplicaSets (one per pod-template revision) → Pods, as kube has it.

Each template revision gets a ReplicaSet named `<deployment>-<pod-template-hash>` with the hash in its labels,
selector and pod template, a controller ownerReference to the Deployment and the annotations kubectl reads
(`deployment.kubernetes.io/revision`, copied `kubernetes.io/change-cause`, ...). The ReplicaSet controller
(started with this one, sharing its caches) keeps each ReplicaSet's pods. A template change rolls out by
scaling the new ReplicaSet up and the old ones down within `maxSurge`/`maxUnavailable`, with kube's
arithmetic (`Recreate`: old ones to zero, pods gone, then the new one up); a template equal to an old
ReplicaSet's (`kubectl rollout undo`) reuses it under a new revision. Old ReplicaSets beyond
`revisionHistoryLimit` are deleted. Status is summed from the ReplicaSets, as `kubectl rollout status` reads it.
Deleting a Deployment cascades through ownerReferences (the API registry's garbage collection).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Hashable
from datetime import UTC, datetime
from typing import Any

from sluice.api.errors import ApiError
from sluice.api.registry import Registry, now_rfc3339
from sluice.controllers.events import EventRecorder
from sluice.controllers.queue import WorkQueue
from sluice.controllers.replicaset import (
    ReplicaSetController,
    active,
    controller_uid,
    owner_ref,
    selects,
)
from sluice.kube.informer import Informer
from sluice.kube.pods import timestamp
from sluice.objects import Obj
from sluice.resources.kinds import by_kind
from sluice.store import Store

__all__ = ["DeploymentController", "template_hash", "resolve_fraction", "comparable_template"]

_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # kube's SafeEncodeString alphabet: no vowels, no look-alikes
HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED = "deployment.kubernetes.io/desired-replicas"
MAX = "deployment.kubernetes.io/max-replicas"
# Deployment annotations that are not copied onto its ReplicaSets (kube's skipCopyAnnotation).
_NOT_COPIED = frozenset({"kubectl.kubernetes.io/last-applied-configuration", REVISION, REVISION_HISTORY, DESIRED,
                         MAX, "deprecated.deployment.rollback.to"})


def _pruned(value: Any) -> Any:
    """Drop nulls and empty maps/lists: a template read back by a typed client (`kubectl rollout undo` sends
    `creationTimestamp: null`, `resources: {}`) compares equal to the stored one, as kube's semantic DeepEqual."""
    if isinstance(value, dict):
        out = {k: _pruned(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value


def comparable_template(template: Any) -> Any:
    """The template without the pod-template-hash label, normalised for equality (kube's EqualIgnoreHash)."""
    t = copy.deepcopy(template) if isinstance(template, dict) else {}
    labels = (t.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH_LABEL, None)
    return _pruned(t)


def template_hash(template: Obj, collision_count: int = 0) -> str:
    canonical = json.dumps(comparable_template(template), sort_keys=True, separators=(",", ":"))
    if collision_count:  # kube mixes status.collisionCount in, so a name clash gives a new name
        canonical += f"#{collision_count}"
    n = int.from_bytes(hashlib.sha256(canonical.encode()).digest()[:8], "big")
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



def _revision(rs: Obj) -> int:
    try:
        return int((rs["metadata"].get("annotations") or {}).get(REVISION) or 0)
    except ValueError:
        return 0


def _replicas(rs: Obj) -> int:
    return int((rs.get("spec") or {}).get("replicas", 1))


def _status(rs: Obj, key: str) -> int:
    return int((rs.get("status") or {}).get(key) or 0)


def _fenceposts(spec: Obj, desired: int) -> tuple[int, int]:
    ru = (spec.get("strategy") or {}).get("rollingUpdate") or {}
    surge = resolve_fraction(ru.get("maxSurge", "25%"), desired, True)
    unavailable = resolve_fraction(ru.get("maxUnavailable", "25%"), desired, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1  # kube's ResolveFenceposts: a rollout must be able to progress
    return surge, unavailable


class DeploymentController:
    def __init__(self, registry: Registry, store: Store, events: EventRecorder) -> None:
        self.registry = registry
        self.events = events
        self.deploy_rt = by_kind("apps", "Deployment")
        self.rs_rt = by_kind("apps", "ReplicaSet")
        self.rsc = ReplicaSetController(registry, store, EventRecorder(registry, "replicaset-controller"))
        self.replicasets = self.rsc.replicasets  # one cache of ReplicaSets and pods for both controllers
        self.replicasets.handlers.append(self._on_replicaset)
        self.deployments = Informer(store, "deployments.apps", self._on_deployment)
        self.queue = WorkQueue("deployments", self._reconcile_key)

    async def start(self) -> None:
        self.queue.start()
        self.deployments.start()
        await self.rsc.start()

    async def stop(self) -> None:
        await self.rsc.stop()
        await self.deployments.stop()
        await self.queue.stop()

    def _on_deployment(self, typ: str, obj: Obj, prev: Obj | None) -> None:
        m = obj["metadata"]
        self.queue.add((m.get("namespace", ""), m["name"]))

    def _on_replicaset(self, typ: str, obj: Obj, prev: Obj | None) -> None:
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

    def owned(self, d: Obj) -> list[Obj]:
        uid = d["metadata"].get("uid")
        return [rs for rs in self.replicasets.list(d["metadata"].get("namespace", ""))
                if controller_uid(rs) == uid and not rs["metadata"].get("deletionTimestamp")]

    def _adopt(self, d: Obj) -> None:
        """ReplicaSets without a controller that the selector matches (`--cascade=orphan` leftovers) become
        the Deployment's again, as kube's controller adopts them."""
        for rs in self.replicasets.list(d["metadata"].get("namespace", "")):
            if controller_uid(rs) is None and not rs["metadata"].get("deletionTimestamp") and selects(d, rs):
                cur = copy.deepcopy(rs)
                cur["metadata"]["ownerReferences"] = [*(rs["metadata"].get("ownerReferences") or []),
                                                      owner_ref(d, "Deployment")]
                try:
                    self._write_rs(cur)
                except ApiError as e:
                    if e.code not in (404, 409):
                        raise

    # ------------------------------------------------------------------ sync
    def reconcile(self, d: Obj) -> float | None:
        spec = d.get("spec") or {}
        desired = int(spec.get("replicas", 1))
        self._adopt(d)
        all_rs = self.owned(d)
        want = comparable_template(spec.get("template") or {})
        new = next((rs for rs in all_rs if comparable_template((rs.get("spec") or {}).get("template")) == want), None)
        old = sorted((rs for rs in all_rs if rs is not new), key=lambda rs: rs["metadata"].get("creationTimestamp", ""))
        created = False
        if not spec.get("paused"):
            if new is None:
                try:
                    new = self._create_rs(d, all_rs, self._initial_new_replicas(d, old))
                except ApiError as e:
                    if e.code != 409:
                        raise
                    return 0.05  # name clash: collisionCount went up, the next pass uses a new hash
                created = True
            else:
                new = self._sync_rs_metadata(d, new, all_rs)
            if (spec.get("strategy") or {}).get("type") == "Recreate":
                self._recreate(d, new, old, desired)
            else:
                new = self._scale_new(d, new, old, desired)
                old = self._scale_old(d, new, old, desired)
            self._sync_revision(d, new)
            self._cleanup(d, old)
        else:
            # Paused (`kubectl rollout pause`): no new revision rolls out, but scaling still applies to the one
            # active (or else the latest) ReplicaSet, as kube's FindActiveOrLatest.
            active_rs = [rs for rs in all_rs if _replicas(rs)]
            target = active_rs[0] if len(active_rs) == 1 else None
            if not active_rs and all_rs:
                target = max(all_rs, key=_revision)
            if target is not None:
                surge, _ = _fenceposts(spec, desired)
                scaled = self._scale(d, target, desired, desired + surge)
                new = scaled if target is new else new
        return self._update_status(d, new, self.owned(d), created)

    def _initial_new_replicas(self, d: Obj, old: list[Obj]) -> int:
        spec = d.get("spec") or {}
        desired = int(spec.get("replicas", 1))
        if (spec.get("strategy") or {}).get("type") == "Recreate":
            return 0 if any(_replicas(rs) or _status(rs, "replicas") for rs in old) else desired
        surge, _ = _fenceposts(spec, desired)
        current = sum(_replicas(rs) for rs in old)
        return max(0, min(desired, desired + surge - current))

    def _create_rs(self, d: Obj, all_rs: list[Obj], replicas: int) -> Obj:
        assert self.rs_rt is not None
        m = d["metadata"]
        spec = d.get("spec") or {}
        tmpl = copy.deepcopy(spec.get("template") or {})
        collisions = int((d.get("status") or {}).get("collisionCount") or 0)
        h = template_hash(tmpl, collisions)
        tmpl.setdefault("metadata", {})["labels"] = {**(tmpl["metadata"].get("labels") or {}), HASH_LABEL: h}
        selector = copy.deepcopy(spec.get("selector") or {})
        selector["matchLabels"] = {**(selector.get("matchLabels") or {}), HASH_LABEL: h}
        revision = max((_revision(rs) for rs in all_rs), default=0) + 1
        surge, _ = _fenceposts(spec, int(spec.get("replicas", 1)))
        annotations = {k: v for k, v in (m.get("annotations") or {}).items() if k not in _NOT_COPIED}
        annotations.update({REVISION: str(revision), DESIRED: str(spec.get("replicas", 1)),
                            MAX: str(int(spec.get("replicas", 1)) + surge)})
        rs: Obj = {
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": f"{m['name']}-{h}", "namespace": m.get("namespace"),
                         "labels": dict(tmpl["metadata"]["labels"]), "annotations": annotations,
                         "ownerReferences": [owner_ref(d, "Deployment")]},
            "spec": {"replicas": replicas, "minReadySeconds": int(spec.get("minReadySeconds") or 0),
                     "selector": selector, "template": tmpl},
        }
        try:
            res = self.registry.create(self.rs_rt, "v1", m.get("namespace"), rs)
        except ApiError as e:
            if e.code == 409:  # another object has the name: count a collision (a new hash) and go again
                self._write_status(d, {**(d.get("status") or {}), "collisionCount": collisions + 1})
                raise
            self.events.record(d, "Warning", "FailedCreate", f"Failed to create new replica set "
                               f"\"{rs['metadata']['name']}\": {e.message}")
            raise
        self.replicasets.remember(res.object)
        self.events.record(d, "Normal", "ScalingReplicaSet",
                           f"Scaled up replica set {res.object['metadata']['name']} from 0 to {replicas}")
        return res.object

    def _write_rs(self, rs: Obj) -> Obj:
        assert self.rs_rt is not None
        m = rs["metadata"]
        res = self.registry.replace(self.rs_rt, "v1", m.get("namespace"), m["name"], rs)
        self.replicasets.remember(res.object)
        return res.object

    def _sync_rs_metadata(self, d: Obj, new: Obj, all_rs: list[Obj]) -> Obj:
        """The current ReplicaSet carries the Deployment's annotations; an old template coming back (rollback)
        gets the next revision, and its earlier ones go to revision-history."""
        spec = d.get("spec") or {}
        ann = dict(new["metadata"].get("annotations") or {})
        want = {k: v for k, v in (d["metadata"].get("annotations") or {}).items() if k not in _NOT_COPIED}
        changed = {k: v for k, v in want.items() if ann.get(k) != v}
        ann.update(changed)
        top = max((_revision(rs) for rs in all_rs), default=0)
        if _revision(new) < top:
            history = [x for x in (ann.get(REVISION_HISTORY) or "").split(",") if x]
            ann[REVISION_HISTORY] = ",".join([*history, str(_revision(new))])
            ann[REVISION] = str(top + 1)
            changed[REVISION] = ann[REVISION]
        min_ready = int(spec.get("minReadySeconds") or 0)
        if not changed and int((new.get("spec") or {}).get("minReadySeconds") or 0) == min_ready:
            return new
        cur = copy.deepcopy(new)
        cur["metadata"]["annotations"] = ann
        cur["spec"]["minReadySeconds"] = min_ready
        return self._write_rs(cur)

    def _scale(self, d: Obj, rs: Obj, replicas: int, max_replicas: int) -> Obj:
        before = _replicas(rs)
        if before == replicas:
            return rs
        cur = copy.deepcopy(rs)
        cur["spec"]["replicas"] = replicas
        ann = cur["metadata"].setdefault("annotations", {})
        ann[DESIRED] = str((d.get("spec") or {}).get("replicas", 1))
        ann[MAX] = str(max_replicas)
        out = self._write_rs(cur)
        direction = "up" if replicas > before else "down"
        self.events.record(d, "Normal", "ScalingReplicaSet",
                           f"Scaled {direction} replica set {rs['metadata']['name']} from {before} to {replicas}")
        return out

    def _scale_new(self, d: Obj, new: Obj, old: list[Obj], desired: int) -> Obj:
        """kube's reconcileNewReplicaSet: up to desired, never above desired + maxSurge pods in total."""
        surge, _ = _fenceposts(d.get("spec") or {}, desired)
        cur = _replicas(new)
        if cur == desired:
            return new
        if cur > desired:
            return self._scale(d, new, desired, desired + surge)
        total = cur + sum(_replicas(rs) for rs in old)
        room = desired + surge - total
        if room <= 0:
            return new
        return self._scale(d, new, cur + min(room, desired - cur), desired + surge)

    def _scale_old(self, d: Obj, new: Obj, old: list[Obj], desired: int) -> list[Obj]:
        """kube's reconcileOldReplicaSets: first what is not available anyway, then available old pods while
        at least desired - maxUnavailable stay available (counting the new ReplicaSet's unavailable pods)."""
        if not any(_replicas(rs) for rs in old):
            return old
        surge, unavailable = _fenceposts(d.get("spec") or {}, desired)
        all_rs = [new, *old]
        min_available = desired - unavailable
        new_unavailable = _replicas(new) - _status(new, "availableReplicas")
        budget = sum(_replicas(rs) for rs in all_rs) - min_available - new_unavailable
        if budget <= 0:
            return old
        out: list[Obj] = []
        for rs in old:  # unhealthy replicas first, oldest ReplicaSet first
            n = _replicas(rs)
            cut = min(budget, max(0, n - _status(rs, "availableReplicas")))
            if cut > 0:
                rs = self._scale(d, rs, n - cut, desired + surge)
                budget -= cut
            out.append(rs)
        available = sum(min(_status(rs, "availableReplicas"), _replicas(rs)) for rs in [new, *out])
        can_cut = available - min_available
        result: list[Obj] = []
        for rs in out:
            n = _replicas(rs)
            cut = min(n, can_cut)
            if cut > 0:
                rs = self._scale(d, rs, n - cut, desired + surge)
                can_cut -= cut
            result.append(rs)
        return result

    def _recreate(self, d: Obj, new: Obj, old: list[Obj], desired: int) -> None:
        for i, rs in enumerate(old):
            old[i] = self._scale(d, rs, 0, desired)
        old_uids = {rs["metadata"].get("uid") for rs in old}
        running = [p for p in self.rsc.pods.list(d["metadata"].get("namespace", ""))
                   if controller_uid(p) in old_uids and (active(p) or p["metadata"].get("deletionTimestamp"))]
        if not running:
            self._scale(d, new, desired, desired)

    def _sync_revision(self, d: Obj, new: Obj) -> None:
        assert self.deploy_rt is not None
        rev = (new["metadata"].get("annotations") or {}).get(REVISION)
        if not rev or (d["metadata"].get("annotations") or {}).get(REVISION) == rev:
            return
        cur = copy.deepcopy(d)
        cur["metadata"].setdefault("annotations", {})[REVISION] = rev
        try:
            res = self.registry.replace(self.deploy_rt, "v1", d["metadata"].get("namespace"),
                                        d["metadata"]["name"], cur)
        except ApiError as e:
            if e.code not in (404, 409):
                raise
            self.queue.add((d["metadata"].get("namespace", ""), d["metadata"]["name"]), 0.05)
            return
        self.deployments.remember(res.object)
        d["metadata"] = res.object["metadata"]

    def _cleanup(self, d: Obj, old: list[Obj]) -> None:
        """Delete the oldest idle ReplicaSets beyond revisionHistoryLimit (kube's cleanupDeployment)."""
        assert self.rs_rt is not None
        limit = int((d.get("spec") or {}).get("revisionHistoryLimit", 10))
        idle = sorted((rs for rs in old if _replicas(rs) == 0 and _status(rs, "replicas") == 0), key=_revision)
        for rs in idle[: max(0, len(idle) - limit)]:
            m = rs["metadata"]
            try:
                self.registry.delete(self.rs_rt, "v1", m.get("namespace"), m["name"])
            except ApiError as e:
                if e.code != 404:
                    raise
            self.replicasets.forget(m.get("namespace", ""), m["name"])

    # ------------------------------------------------------------------ status
    def _update_status(self, d: Obj, new: Obj | None, all_rs: list[Obj], created: bool) -> float | None:
        """Write the status summed from the ReplicaSets; returns when to look again for the progress deadline."""
        assert self.deploy_rt is not None
        spec = d.get("spec") or {}
        desired = int(spec.get("replicas", 1))
        _, max_unavailable = _fenceposts(spec, desired)
        total_spec = sum(_replicas(rs) for rs in all_rs)
        replicas = sum(_status(rs, "replicas") for rs in all_rs)
        updated = _status(new, "replicas") if new is not None else 0
        ready = sum(_status(rs, "readyReplicas") for rs in all_rs)
        available = sum(_status(rs, "availableReplicas") for rs in all_rs)
        complete = updated == desired == replicas and available == desired and new is not None \
            and _replicas(new) == desired
        old_status = d.get("status") or {}
        old_conditions = {c.get("type"): c for c in old_status.get("conditions") or []}
        ts = now_rfc3339()

        def condition(type_: str, status: str, reason: str, message: str) -> Obj:
            prev = old_conditions.get(type_) or {}
            changed = prev.get("status") != status
            return {"type": type_, "status": status, "reason": reason, "message": message,
                    "lastUpdateTime": ts if changed or prev.get("reason") != reason else prev.get("lastUpdateTime", ts),
                    "lastTransitionTime": ts if changed else prev.get("lastTransitionTime", ts)}

        is_available = available >= desired - max_unavailable
        rs_name = new["metadata"]["name"] if new is not None else d["metadata"]["name"]
        prev_progress = old_conditions.get("Progressing") or {}
        # kube's DeploymentProgressing: more updated/ready/available pods, or fewer old ones.
        progressed = created or updated > int(old_status.get("updatedReplicas") or 0) \
            or ready > int(old_status.get("readyReplicas") or 0) \
            or available > int(old_status.get("availableReplicas") or 0) \
            or replicas - updated < int(old_status.get("replicas") or 0) - int(old_status.get("updatedReplicas") or 0)
        requeue: float | None = None
        progress_status = "True"
        refresh = progressed
        if complete:
            progressing = ("NewReplicaSetAvailable", f'ReplicaSet "{rs_name}" has successfully progressed.')
        elif spec.get("paused"):
            progress_status, progressing = "Unknown", ("DeploymentPaused", "Deployment is paused")
        elif created:
            progressing = ("NewReplicaSetCreated", f'Created new replica set "{rs_name}"')
        elif progressed or not prev_progress or prev_progress.get("reason") in ("DeploymentPaused",
                                                                                "NewReplicaSetAvailable"):
            progressing, refresh = ("ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.'), True
        else:
            progressing = (str(prev_progress.get("reason")), str(prev_progress.get("message")))
            progress_status = str(prev_progress.get("status"))
            since = timestamp(prev_progress.get("lastUpdateTime"))
            deadline = int(spec.get("progressDeadlineSeconds") or 600)
            if progress_status == "True" and since is not None:
                left = since + deadline - datetime.now(UTC).timestamp()
                if left <= 0:
                    progress_status = "False"
                    progressing = ("ProgressDeadlineExceeded", f'ReplicaSet "{rs_name}" has timed out progressing.')
                else:
                    requeue = left + 0.5

        def progressing_condition() -> Obj:
            cond = condition("Progressing", progress_status, *progressing)
            if refresh:
                cond["lastUpdateTime"] = ts
            return cond

        status: Obj = {
            "observedGeneration": d["metadata"].get("generation", 1),
            "replicas": replicas,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": available,
            "conditions": [
                condition("Available", "True" if is_available else "False",
                          "MinimumReplicasAvailable" if is_available else "MinimumReplicasUnavailable",
                          "Deployment has minimum availability." if is_available
                          else "Deployment does not have minimum availability."),
                progressing_condition(),
            ],
        }
        if total_spec - available > 0:
            status["unavailableReplicas"] = total_spec - available
        if old_status.get("collisionCount"):
            status["collisionCount"] = old_status["collisionCount"]
        for k in ("readyReplicas", "availableReplicas", "updatedReplicas", "replicas"):
            if status[k] == 0:
                del status[k]
        cmp_old = {k: v for k, v in old_status.items() if k != "conditions"}
        cmp_new = {k: v for k, v in status.items() if k != "conditions"}
        same_conditions = [(c["type"], c["status"], c["reason"]) for c in status["conditions"]] == \
            [(c.get("type"), c.get("status"), c.get("reason")) for c in old_status.get("conditions") or []]
        if cmp_old == cmp_new and same_conditions:
            return requeue
        self._write_status(d, status)
        return requeue

    def _write_status(self, d: Obj, status: Obj) -> None:
        assert self.deploy_rt is not None
        cur = copy.deepcopy(d)
        cur["status"] = status
        name = d["metadata"]["name"]
        try:
            res = self.registry.replace(self.deploy_rt, "v1", d["metadata"].get("namespace"), name, cur,
                                        subresource="status")
        except ApiError as e:
            if e.code not in (404, 409):
                raise
            self.queue.add((d["metadata"].get("namespace", ""), name), 0.05)
            return
        self.deployments.remember(res.object)
