"""One pass over one canary Rollout, in the order of Argo's `rolloutCanary` (rollout/canary.go): the
ReplicaSet of the current template, abort/retry/promote bookkeeping, Services and Istio traffic, analysis,
scaling, pauses, step completion, promotion to stable, status with phase, conditions and Events.

Everything the controller knows is in the Rollout's status and the objects it owns, so a restarted
controller carries on where the last one stopped.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable

from sluice.client.errors import ApiError, ClientError
from sluice.client.prometheus import PromError
from sluice.rollouts import istio, runs, traffic, workloadref
from sluice.rollouts.analysis import parse_time, rfc3339
from sluice.rollouts.decommission import PROOF_ANNOTATION, SIDECAR, prove
from sluice.rollouts.istio import HASH_LABEL, IstioConfig
from sluice.rollouts.kube import UNCONFIGURED, Conflict, Kube
from sluice.rollouts.providers import PromQuery
from sluice.rollouts.replicasets import (
    DESIRED,
    REVISION,
    SCALE_DOWN_DEADLINE,
    Obj,
    owned_by,
    owner_ref,
    revision_of,
    spec_replicas,
    status_count,
)
from sluice.rollouts.status import (
    canary_replicas,
    condition,
    desired_weight,
    merge_diff,
    phase_and_message,
    pod_hash,
    set_condition,
    step_hash,
    step_text,
)
from sluice.validation import argo as argo_validation
from sluice.validation.argo import pause_seconds

__all__ = ["RolloutPass"]

log = logging.getLogger("sluice.rollouts")

# On an old ReplicaSet kept because it was not yet proven idle: since when (told once in an Event).
PROOF_PENDING = "sluice.dev/decommission-pending-since"
# The proof (or why it is still missing) in the Rollout's status, not only on the old ReplicaSet: a condition
# type of Sluice's own, since Argo's status has no field for it and its CRD schema keeps any condition type.
DECOMMISSIONED = "Decommissioned"
PROOF_RETRY_S = 10.0  # how soon the proof is asked again (at most: the window, if shorter)


class RolloutPass:
    """Reconcile `ro` once; `run()` returns the seconds after which it needs another pass (None: only on change)."""

    def __init__(self, kube: Kube, ro: Obj, query_for: Callable[[str], PromQuery], now: float | None = None,
                 replicasets: list[Obj] | None = None) -> None:
        self.kube = kube
        self.ro = ro
        self.query_for = query_for
        self.now = time.time() if now is None else now
        self.stamp = rfc3339(self.now)
        self.meta = ro["metadata"]
        self.ns = str(self.meta.get("namespace") or "default")
        self.name = str(self.meta["name"])
        self.spec: Obj = ro.get("spec") or {}
        self.old_status: Obj = copy.deepcopy(ro.get("status") or {})
        self.status: Obj = copy.deepcopy(self.old_status)
        self.canary: Obj = ((self.spec.get("strategy") or {}).get("canary") or {})
        self.steps: list[Obj] = [s for s in self.canary.get("steps") or [] if isinstance(s, dict)]
        self.replicas = int(self.spec.get("replicas", 1))
        self.requeue: list[float] = []
        self.set_this_pass: set[str] = set()
        self.revision = 0
        self.routed_step = False  # set by traffic.apply when it wrote the current step's managed route
        self.workload: Obj | None = None  # the workload `spec.workloadRef` names, once read
        # The ReplicaSets it owns, when the caller listed them for every Rollout at once (else read here).
        self.replicasets = replicasets

    # ------------------------------------------------------------------------------------- helpers
    def event(self, reason: str, message: str, type_: str = "Normal") -> None:
        self.kube.event(self.ro, type_, reason, message)

    def cond(self, type_: str, status: str, reason: str, message: str) -> None:
        self.set_this_pass.add(type_)
        self.status["conditions"] = set_condition(list(self.status.get("conditions") or []),
                                                  condition(type_, status, reason, message, self.stamp))

    def after(self, seconds: float) -> None:
        self.requeue.append(max(0.0, seconds))

    def istio_config(self) -> IstioConfig | None:
        tr = (self.canary.get("trafficRouting") or {}).get("istio")
        if not isinstance(tr, dict):
            return None
        dr = tr.get("destinationRule") or {}
        return IstioConfig(str(self.canary.get("canaryService") or ""), str(self.canary.get("stableService") or ""),
                           str(dr.get("canarySubsetName") or ""), str(dr.get("stableSubsetName") or ""),
                           tuple(str(x) for x in dr.get("additionalSubsetNames") or []))

    # ------------------------------------------------------------------------------------ the pass
    def run(self) -> float | None:
        if self.meta.get("deletionTimestamp") or not self.canary:
            return None  # blueGreen is not acted on (admission says so in a Warning)
        if "replicas" not in self.spec:  # Argo writes the default into the spec before anything else
            self.kube.patch("Rollout", self.ns, self.name, {"spec": {"replicas": 1}})
            return 0.0
        invalid = self.resolve_workload() or self.invalid_spec()
        if invalid:
            self.cond("InvalidSpec", "True", "InvalidSpec", f'The Rollout "{self.name}" is invalid: {invalid}')
            return self.finish([], None, 10.0)
        self.status["conditions"] = [c for c in self.status.get("conditions") or [] if c.get("type") != "InvalidSpec"]
        template = self.spec.get("template") or {}
        h = pod_hash(template, self.status.get("collisionCount"))
        rss = [rs for rs in (self.kube.list("ReplicaSet", self.ns) if self.replicasets is None else self.replicasets)
               if owned_by(rs, self.ro)]
        by_hash = {str((rs["metadata"].get("labels") or {}).get(HASH_LABEL)): rs for rs in rss}
        new = by_hash.get(h)
        max_rev = max((revision_of(rs) for rs in rss), default=0)
        if new is None:
            try:
                new = self.create_rs(template, h, max_rev + 1)
            except Conflict:  # the name is taken by a ReplicaSet that is not ours: a new hash, as Argo does
                taken = self.kube.get("ReplicaSet", self.ns, f"{self.name}-{h}")
                if taken is None or not owned_by(taken, self.ro):
                    self.status["collisionCount"] = int(self.status.get("collisionCount") or 0) + 1
                    return self.finish(rss, None, 0.0)
                new = taken
            rss.append(new)
        self.revision = revision_of(new)
        if (self.meta.get("annotations") or {}).get(REVISION) != str(self.revision):
            self.ro = self.kube.patch("Rollout", self.ns, self.name,
                                      {"metadata": {"annotations": {REVISION: str(self.revision)}}})
            self.meta = self.ro["metadata"]
        if self.status.get("currentPodHash") != h or self.status.get("currentStepHash") != step_hash(self.steps):
            return self.new_revision(h, new, rss, max_rev)
        stable_hash = str(self.status.get("stableRS") or "")
        if not stable_hash:
            return self.initial_deploy(h, new, rss)
        return self.progress(h, new, by_hash.get(stable_hash), rss)

    def resolve_workload(self) -> str:
        """Argo's templateref Resolve: with `spec.workloadRef`, this pass acts on the referenced workload's Pod
        template (and selector, if the Rollout has none); "" or why the reference cannot be resolved."""
        ref = self.spec.get("workloadRef")
        if not isinstance(ref, dict):
            self.status.pop("workloadObservedGeneration", None)
            return ""
        why = workloadref.resolve_error(self.spec)
        if why:
            return why
        workload = self.kube.get(workloadref.kube_kind(ref), self.ns, str(ref.get("name") or ""))
        if workload is None:
            return workloadref.not_found(ref, self.ns)
        self.workload = workload
        self.spec = workloadref.resolve(self.spec, workload)
        gen = workloadref.generation(workload)
        if (self.meta.get("annotations") or {}).get(workloadref.WORKLOAD_GENERATION) != gen:
            self.ro = self.kube.patch("Rollout", self.ns, self.name,
                                      {"metadata": {"annotations": {workloadref.WORKLOAD_GENERATION: gen}}})
            self.meta = self.ro["metadata"]
        return ""

    def invalid_spec(self) -> str:
        # Argo's own spec rules first (Sluice's admission runs them too, but a cluster may have no such admission)
        errors = argo_validation.validate("Rollout", self.ro).errors
        if not errors and self.workload is not None:  # the resolved template, as Argo validates it
            resolved = {**self.ro, "spec": {k: v for k, v in self.spec.items() if k != "workloadRef"}}
            errors = argo_validation.validate("Rollout", resolved).errors
        if errors:
            return str(errors[0])
        cfg = self.istio_config()
        if cfg is None:
            return ""
        tr = (self.canary.get("trafficRouting") or {}).get("istio") or {}
        if bool(tr.get("virtualService")) == bool(tr.get("virtualServices")):
            return ("spec.strategy.canary.trafficRouting.istio: Internal error: either VirtualService or "
                    "VirtualServices must be configured")
        if not cfg.canary_subset and not (cfg.canary_service and cfg.stable_service):
            return "spec.strategy.stableService: Invalid value: \"\": Canary service and Stable service must to be set to use Traffic Routing"
        for ns, name, routes in istio.vs_refs(tr, self.ns):
            vs = self.kube.get("VirtualService", ns, name)
            if vs is None:
                return (f'spec.strategy.canary.trafficRouting.istio.virtualService.name: Invalid value: "{name}": '
                        f'virtualservices.networking.istio.io "{name}" not found')
            try:
                for i in istio.route_indexes(vs, routes, istio.managed_names(self.canary)):
                    istio.check_route(((vs.get("spec") or {}).get("http") or [])[i], cfg)
            except ValueError as e:
                return f"Istio VirtualService has invalid HTTP routes. Error: {e}"
        for svc in (cfg.canary_service, cfg.stable_service):
            if svc and self.kube.get("Service", self.ns, svc) is None:
                field = "canaryService" if svc == cfg.canary_service else "stableService"
                return f'spec.strategy.canary.{field}: Invalid value: "{svc}": services "{svc}" not found'
        return ""

    def create_rs(self, template: Obj, h: str, revision: int) -> Obj:
        tmpl = copy.deepcopy(template)
        tmeta = tmpl.setdefault("metadata", {})
        tmeta["labels"] = {**(tmeta.get("labels") or {}), HASH_LABEL: h}
        selector = copy.deepcopy(self.spec.get("selector") or {})
        selector["matchLabels"] = {**(selector.get("matchLabels") or {}), HASH_LABEL: h}
        rs_name = f"{self.name}-{h}"
        rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
              "metadata": {"name": rs_name, "namespace": self.ns, "labels": dict(tmeta["labels"]),
                           "annotations": {REVISION: str(revision), DESIRED: str(self.replicas)},
                           "ownerReferences": [owner_ref(self.ro)]},
              "spec": {"replicas": 0, "selector": selector, "template": tmpl,
                       "minReadySeconds": int(self.spec.get("minReadySeconds") or 0)}}
        created = self.kube.create("ReplicaSet", self.ns, rs)
        self.event("RolloutUpdated", f"Rollout updated to revision {revision}")
        self.event("NewReplicaSetCreated", f"Created ReplicaSet {rs_name} (revision {revision})")
        self.cond("Progressing", "True", "NewReplicaSetCreated", f'Created new replica set "{rs_name}"')
        return created

    def new_revision(self, h: str, new: Obj, rss: list[Obj], max_rev: int) -> float | None:
        """Argo's resetRolloutStatus: a new template or new steps start the steps over."""
        s = self.status
        if revision_of(new) < max_rev and s.get("currentPodHash") != h:  # back to an older template: newest revision
            self.revision = max_rev + 1
            self.kube.patch("ReplicaSet", self.ns, new["metadata"]["name"],
                            {"metadata": {"annotations": {REVISION: str(self.revision)}}})
        for k in ("pauseConditions", "abort", "abortedAt", "controllerPause", "promoteFull"):
            s.pop(k, None)
        canary = s.setdefault("canary", {})
        canary.pop("currentStepAnalysisRunStatus", None)
        canary.pop("currentBackgroundAnalysisRunStatus", None)
        s["currentPodHash"] = h
        s["currentStepHash"] = step_hash(self.steps)
        if self.steps:
            s["currentStepIndex"] = 0
        else:
            s.pop("currentStepIndex", None)
        stable = s.get("stableRS")
        if stable and stable == h and self.steps:
            s["currentStepIndex"] = len(self.steps)
            self.event("SkipSteps", "Rollback to stable ReplicaSets")
        if stable and stable != h:
            self.cond("Completed", "False", "RolloutCompleted", "RolloutCompleted")
            self.event("RolloutNotCompleted", f"Rollout not completed, started update to revision {self.revision} ({h})")
        runs.terminate(self, keep=set())
        return self.finish(rss, new, 0.0)

    def initial_deploy(self, h: str, new: Obj, rss: list[Obj]) -> float | None:
        self.scale_new(new, self.replicas)
        s = self.status
        s["stableRS"] = h
        if self.steps:
            s["currentStepIndex"] = len(self.steps)
        cfg = self.istio_config()
        if cfg is not None:
            traffic.apply(self, cfg, 0, h, h, new, new, remove_routes=True)
        self.event("RolloutCompleted", f"Rollout completed update to revision {self.revision} ({h}): Initial deploy")
        self.cond("Completed", "True", "RolloutCompleted", "RolloutCompleted")
        return self.finish(rss, new, None)

    # ---------------------------------------------------------------------------- a canary update
    def progress(self, h: str, new: Obj, stable: Obj | None, rss: list[Obj]) -> float | None:
        s = self.status
        stable_hash = str(s["stableRS"])
        n = len(self.steps)
        if s.get("abort") and not s.get("abortedAt"):
            self.abort("")
        if not s.get("abort") and s.get("abortedAt"):
            s.pop("abortedAt", None)
            self.cond("Progressing", "Unknown", "RolloutRetry", "Retrying Rollout after abort")
        aborted = bool(s.get("abort"))
        if s.get("promoteFull") and not aborted:
            s.pop("pauseConditions", None)
            s.pop("controllerPause", None)
            if n:
                s["currentStepIndex"] = n
            runs.terminate(self, keep=set())
        promoted = stable_hash == h
        idx = min(int(s.get("currentStepIndex") or 0), n)
        # promote: the pause condition was removed by the user while the controller had paused
        if s.get("controllerPause") and not s.get("pauseConditions") and not aborted:
            s.pop("controllerPause", None)
            self.event("RolloutResumed", "Rollout is resumed")
            if idx < n and "pause" in self.steps[idx]:
                idx = self.complete_step(idx)
        halted = bool(self.spec.get("paused")) or any(
            c.get("reason") == "InconclusiveAnalysisRun" for c in s.get("pauseConditions") or [])
        # ------------------------------------------------------------------- desired sizes
        if promoted:
            want_new = self.replicas
        elif aborted:
            want_new = self.aborted_canary_size(new, stable)
        elif s.get("promoteFull"):
            want_new = self.replicas
        else:
            want_new = canary_replicas(self.steps, idx, self.replicas, desired_weight(self.steps, idx))
        # judged on the ReplicaSets as they are: traffic moves before this pass scales anything (Argo's order)
        at_desired = (spec_replicas(new) == want_new and status_count(new, "availableReplicas") >= want_new and
                      (promoted or stable is None or status_count(stable, "availableReplicas") >= self.replicas))
        if not at_desired:
            self.after(2.0)
        # ------------------------------------------------------------------- traffic
        cfg = self.istio_config()
        recorded = int((((s.get("canary") or {}).get("weights") or {}).get("canary") or {}).get("weight") or 0)
        if promoted or aborted or status_count(new, "availableReplicas") == 0:
            weight = 0
        elif s.get("promoteFull"):
            weight = recorded
        elif at_desired:
            weight = desired_weight(self.steps, idx)
        else:
            weight = desired_weight(self.steps, idx - 1) if idx > 0 else 0
        traffic_ok = True
        # Argo's reconcileTrafficRouting: no managed route while promoted, aborted, fully promoting or without
        # canary pods; a current setHeaderRoute/setMirrorRoute step (revision > 1) writes its route
        remove_routes = promoted or aborted or bool(s.get("promoteFull")) or status_count(new, "availableReplicas") == 0
        route_step = self.steps[idx] if (idx < n and not (promoted or aborted or s.get("promoteFull"))
                                         and self.revision > 1 and self.routes_step(self.steps[idx])) else None
        routed_idx = None
        if cfg is not None:
            traffic_ok = traffic.apply(self, cfg, weight, h, h if promoted else stable_hash, new, stable,
                                       remove_routes=remove_routes, route_step=route_step)
            routed_idx = idx if self.routed_step else None
        else:
            s.setdefault("canary", {})
        # ------------------------------------------------------------------- analysis
        if not promoted:
            idx = runs.background_analysis(self, h, idx)
        # ------------------------------------------------------------------- scaling
        # aborted by analysis in this pass: the next pass, at once, moves traffic first, then scales
        if bool(s.get("abort")) != aborted:
            self.after(0.0)
        if not halted and bool(s.get("abort")) == aborted:
            self.scale_new(new, want_new)
            if stable is not None and stable is not new:
                self.scale(stable, self.replicas)
            self.scale_down_others(rss, new, stable, promoted)
            self.cleanup_history(rss, new, stable)
        # ------------------------------------------------------------------- steps
        if not promoted and not aborted and not halted and traffic_ok and idx < n and not s.get("promoteFull"):
            idx = self.run_step(h, idx, at_desired, routed_idx)
        if n:
            s["currentStepIndex"] = idx if not s.get("abort") else s.get("currentStepIndex", 0)
        # ------------------------------------------------------------------- promotion
        done = (idx >= n or s.get("promoteFull")) and not s.get("abort") and not promoted
        if done and spec_replicas(new) >= self.replicas and status_count(new, "availableReplicas") >= self.replicas \
                and (s.get("promoteFull") or weight == 100 or cfg is None):
            reason = "Full promotion requested" if s.get("promoteFull") else f"Completed all {n} canary steps"
            s["stableRS"] = h
            s.pop("promoteFull", None)
            runs.terminate(self, keep=set())
            canary_status = s.setdefault("canary", {})
            canary_status.pop("currentBackgroundAnalysisRunStatus", None)
            self.event("RolloutCompleted", f"Rollout completed update to revision {self.revision} ({h}): {reason}")
            self.cond("Completed", "True", "RolloutCompleted", "RolloutCompleted")
            if stable is not None and stable is not new:
                self.mark_scale_down(stable)
            if cfg is not None:  # the stable side is the new ReplicaSet now: all traffic to it as stable
                traffic.apply(self, cfg, 0, h, h, new, new, remove_routes=True)
            self.after(0.0)
        return self.finish(rss, new, None)

    def progress_deadline(self, rs_name: str) -> None:
        """Argo's progress check for an update under way: any progress (replicas updated, ready or available,
        old ones going, the step or stable ReplicaSet moving) renews `Progressing` (its lastUpdateTime); none
        for `progressDeadlineSeconds` outside a pause, analysis or experiment step sets it False with
        `ProgressDeadlineExceeded` (phase Degraded), and with `progressDeadlineAbort` aborts the update."""
        s, old = self.status, self.old_status
        current = next((c for c in old.get("conditions") or [] if c.get("type") == "Progressing"), None)
        progressed = (
            s.get("updatedReplicas") != old.get("updatedReplicas")
            or int(s.get("replicas") or 0) - int(s.get("updatedReplicas") or 0)
            < int(old.get("replicas") or 0) - int(old.get("updatedReplicas") or 0)
            or int(s.get("readyReplicas") or 0) > int(old.get("readyReplicas") or 0)
            or int(s.get("availableReplicas") or 0) > int(old.get("availableReplicas") or 0)
            or s.get("stableRS") != old.get("stableRS")
            or (s.get("currentStepIndex") is not None and old.get("currentStepIndex") is not None
                and s.get("currentStepIndex") != old.get("currentStepIndex"))
            or s.get("currentStepHash") != old.get("currentStepHash"))
        message = f'ReplicaSet "{rs_name}" is progressing.'
        if current is None or progressed:
            # a renewed condition even when its text is the same: lastUpdateTime is when progress was last seen
            renewed = condition("Progressing", "True", "ReplicaSetUpdated", message, self.stamp)
            if current is not None and current.get("status") == "True":
                renewed["lastTransitionTime"] = current.get("lastTransitionTime", self.stamp)
            self.set_this_pass.add("Progressing")
            self.status["conditions"] = [c for c in s.get("conditions") or [] if c.get("type") != "Progressing"]
            self.status["conditions"].append(renewed)
            self.after(self.deadline_seconds() + 1.0)
            return
        idx = int(s.get("currentStepIndex") or 0)
        indefinite = idx < len(self.steps) and any(k in self.steps[idx] for k in ("pause", "analysis", "experiment"))
        if indefinite or current.get("reason") == "RolloutAborted":
            return
        since = parse_time(current.get("lastUpdateTime"))
        timed_out = current.get("reason") == "ProgressDeadlineExceeded" or (
            since is not None and since + self.deadline_seconds() < self.now)
        if not timed_out:
            if since is not None:
                self.after(since + self.deadline_seconds() - self.now + 1.0)
            return
        expired = f'ReplicaSet "{rs_name}" has timed out progressing.'
        changed = current.get("reason") != "ProgressDeadlineExceeded"
        self.cond("Progressing", "False", "ProgressDeadlineExceeded", expired)
        if self.spec.get("progressDeadlineAbort") and (changed or not s.get("abort")):
            self.abort(expired)
            self.after(0.0)

    def deadline_seconds(self) -> float:
        value = self.spec.get("progressDeadlineSeconds")
        return 600.0 if value is None else float(value)

    def aborted_canary_size(self, new: Obj, stable: Obj | None) -> int:
        """On abort the canary keeps its pods until stable is fully available, then for
        abortScaleDownDelaySeconds (30 by default; 0 = scale down at once)."""
        delay = self.delay_seconds("abortScaleDownDelaySeconds")
        if delay == 0 or self.istio_config() is None:
            return 0
        if stable is not None and status_count(stable, "availableReplicas") < self.replicas:
            return spec_replicas(new)
        deadline = parse_time((new["metadata"].get("annotations") or {}).get(SCALE_DOWN_DEADLINE))
        if deadline is None:
            if spec_replicas(new) == 0:
                return 0
            deadline = self.now + delay
            self.kube.patch("ReplicaSet", self.ns, new["metadata"]["name"],
                            {"metadata": {"annotations": {SCALE_DOWN_DEADLINE: rfc3339(deadline)}}})
        if self.now >= deadline:
            return 0
        self.after(deadline - self.now)
        return spec_replicas(new)

    def delay_seconds(self, key: str) -> int:
        """`scaleDownDelaySeconds` or `abortScaleDownDelaySeconds`: 30 when unset, as Argo's defaults."""
        delay = self.canary.get(key)
        return 30 if delay is None else int(delay)

    def mark_scale_down(self, rs: Obj) -> None:
        delay = self.delay_seconds("scaleDownDelaySeconds")
        if delay and self.istio_config() is not None:
            self.kube.patch("ReplicaSet", self.ns, rs["metadata"]["name"],
                            {"metadata": {"annotations": {SCALE_DOWN_DEADLINE: rfc3339(self.now + delay)}}})

    def scale_down_others(self, rss: list[Obj], new: Obj, stable: Obj | None, promoted: bool) -> None:
        for rs in rss:
            if rs is new or (rs is stable and not promoted) or spec_replicas(rs) == 0:
                continue
            deadline = parse_time((rs["metadata"].get("annotations") or {}).get(SCALE_DOWN_DEADLINE))
            if deadline is not None and deadline > self.now:
                self.after(deadline - self.now)
                continue
            if self.proven_idle(rs):
                self.scale(rs, 0)

    def decommission_window(self) -> int | None:
        """How long an old ReplicaSet must have received nothing before it is scaled down: scaleDownDelaySeconds
        (30 by default), when Istio routes the traffic. None (scaled down as Argo does, unproven) with a delay of
        0, which asks for exactly that, or without traffic routing, where its pods still serve the Service."""
        delay = self.delay_seconds("scaleDownDelaySeconds")
        return delay if delay > 0 and self.istio_config() is not None else None

    def proven_idle(self, rs: Obj) -> bool:
        """Whether `rs` may go: Istio's metrics for its workload and its pods' sidecar access logs show no
        request or connection over the window (`sluice.rollouts.decommission`). The proof is kept in the
        ReplicaSet's annotation and told in an Event; until then it stays, re-checked every few seconds."""
        window = self.decommission_window()
        if window is None:
            return True
        meta = rs["metadata"]
        name = str(meta["name"])
        h = (meta.get("labels") or {}).get(HASH_LABEL)
        try:
            pods = [p for p in self.kube.list("Pod", self.ns, label_selector=f"{HASH_LABEL}={h}")
                    if owned_by(p, rs)] if h else []
            proof = prove(self.ns, name, window, self.now, self.query_for(""), pods,
                          lambda pod: self.kube.container_log(self.ns, pod, SIDECAR, window))
        except PromError as e:
            if e.message == UNCONFIGURED:  # no Prometheus to ask: Argo's scale-down, said once
                message = f"ReplicaSet {name} scaled down without a proof that it is idle: {UNCONFIGURED}"
                self.cond(DECOMMISSIONED, "True", "DecommissionUnproven", message)
                self.event("DecommissionUnproven", message, "Warning")
                return True
            self.proof_pending(rs, window, f"Prometheus answered {e.error_type}: {e.message}")
            return False
        except (ApiError, ClientError) as e:
            self.proof_pending(rs, window, f"reading its pods or their logs failed: {e}")
            return False
        if not proof.idle:
            self.proof_pending(rs, window, proof.summary())
            return False
        self.patch_rs(rs, {"metadata": {"annotations": {PROOF_ANNOTATION: proof.annotation(), PROOF_PENDING: None}}})
        said = f"ReplicaSet {name} (revision {revision_of(rs)}): {proof.summary()}. {proof.details()}"
        self.cond(DECOMMISSIONED, "True", "DecommissionProven", said)
        self.event("DecommissionProven", said)
        return True

    def proof_pending(self, rs: Obj, window: int, why: str) -> None:
        self.after(min(float(window), PROOF_RETRY_S))
        name = str(rs["metadata"]["name"])
        message = f"ReplicaSet {name} (revision {revision_of(rs)}) is kept until it is proven idle: {why}"
        self.cond(DECOMMISSIONED, "False", "DecommissionPending", message)
        if (rs["metadata"].get("annotations") or {}).get(PROOF_PENDING):
            return
        self.patch_rs(rs, {"metadata": {"annotations": {PROOF_PENDING: rfc3339(self.now)}}})
        self.event("DecommissionPending", message)

    def cleanup_history(self, rss: list[Obj], new: Obj, stable: Obj | None) -> None:
        """Delete the oldest scaled-down ReplicaSets beyond revisionHistoryLimit (default 10)."""
        limit = int(self.spec.get("revisionHistoryLimit", 10))
        old = sorted((rs for rs in rss if rs is not new and rs is not stable and spec_replicas(rs) == 0
                      and status_count(rs, "replicas") == 0), key=revision_of)
        for rs in old[: max(0, len(old) - limit)]:
            self.kube.delete("ReplicaSet", self.ns, rs["metadata"]["name"])

    def scale_new(self, new: Obj, replicas: int) -> None:
        """Argo's reconcileNewReplicaSet: the new ReplicaSet to `replicas`, then a `progressively` workloadRef's
        Deployment to what the Rollout does not serve yet."""
        old_scale = spec_replicas(new)
        self.scale(new, replicas)
        self.scale_workload(old_scale, replicas, scaling_new=True)

    def scale_workload(self, old_scale: int, new_scale: int, *, scaling_new: bool) -> None:
        ref = self.spec.get("workloadRef")
        if self.workload is None or not isinstance(ref, dict) or workloadref.kube_kind(ref) != "Deployment":
            return
        target = workloadref.deployment_target(
            workloadref.scale_down_mode(ref), self.revision, str(self.old_status.get("phase") or ""), self.replicas,
            int(self.old_status.get("readyReplicas") or 0), old_scale, new_scale,
            scaling_new=scaling_new)
        if target is None or spec_replicas(self.workload) == target:
            return
        name = str(self.workload["metadata"]["name"])
        log.info("Scaling deployment %s to %d replicas", name, target)  # Argo records no Event for it
        self.workload = self.kube.patch("Deployment", self.ns, name, {"spec": {"replicas": target}})

    def patch_rs(self, rs: Obj, patch: Obj) -> None:
        """Patch the ReplicaSet and hold its new state in `rs` (the rest of the pass reads that object)."""
        updated = self.kube.patch("ReplicaSet", self.ns, rs["metadata"]["name"], patch)
        rs.clear()
        rs.update(updated)

    def scale(self, rs: Obj, replicas: int) -> None:
        current = spec_replicas(rs)
        if current == replicas:
            return
        patch: Obj = {"spec": {"replicas": replicas}, "metadata": {"annotations": {DESIRED: str(self.replicas)}}}
        if replicas == 0:
            patch["metadata"]["annotations"][SCALE_DOWN_DEADLINE] = None
        self.patch_rs(rs, patch)
        word = "up" if replicas > current else "down"
        self.event("ScalingReplicaSet", f"Scaled {word} ReplicaSet {rs['metadata']['name']} (revision {revision_of(rs)}) "
                                        f"from {current} to {replicas}")

    # ------------------------------------------------------------------------------------ steps
    def complete_step(self, idx: int) -> int:
        self.event("RolloutStepCompleted", f"Rollout step {idx + 1}/{len(self.steps)} completed "
                                           f"({step_text(self.steps[idx])})")
        self.after(0.0)
        return idx + 1

    def pause(self, reason: str) -> None:
        s = self.status
        s["pauseConditions"] = [*(s.get("pauseConditions") or []), {"reason": reason, "startTime": self.stamp}]
        s["controllerPause"] = True
        self.event("RolloutPaused", f"Rollout is paused ({reason})")
        self.cond("Paused", "True", "RolloutPaused", "Rollout is paused")
        self.cond("Progressing", "Unknown", "RolloutPaused", "Rollout is paused")

    def routes_step(self, st: Obj) -> bool:
        """A setHeaderRoute/setMirrorRoute step the Istio traffic router acts on."""
        return ("setHeaderRoute" in st or "setMirrorRoute" in st) and self.istio_config() is not None

    def run_step(self, h: str, idx: int, at_desired: bool, routed_idx: int | None = None) -> int:
        s = self.status
        st = self.steps[idx]
        if self.routes_step(st):  # done in the pass that wrote its route, as Argo's completedCurrentCanaryStep
            if routed_idx == idx:
                return self.complete_step(idx)
            self.after(1.0)
            return idx
        if "setWeight" in st or "setCanaryScale" in st:
            return self.complete_step(idx) if at_desired else idx
        if "pause" in st:
            pauses = s.get("pauseConditions") or []
            mine = [c for c in pauses if c.get("reason") == "CanaryPauseStep"]
            if not mine:
                if not s.get("controllerPause"):
                    self.pause("CanaryPauseStep")
                    mine = s["pauseConditions"][-1:]
                else:
                    return idx
            duration = (st.get("pause") or {}).get("duration")
            if duration is None:
                return idx
            started = parse_time(mine[0].get("startTime")) or self.now
            end = started + max(0, pause_seconds(duration))
            if self.now < end:
                self.after(end - self.now)
                return idx
            s["pauseConditions"] = [c for c in pauses if c.get("reason") != "CanaryPauseStep"] or None
            if s["pauseConditions"] is None:
                s.pop("pauseConditions")
            s.pop("controllerPause", None)
            self.event("RolloutResumed", "Rollout is resumed")
            self.cond("Paused", "False", "RolloutPaused", "Rollout is paused")
            return self.complete_step(idx)
        if "analysis" in st:
            return runs.step_analysis(self, h, idx, st.get("analysis") or {})
        # experiment, plugin (and route steps without Istio): not acted on by Sluice; the step passes
        self.event("StepNotSupported", f"Sluice does not act on step {idx + 1} ({step_text(st)}); skipped", "Warning")
        return self.complete_step(idx)

    def abort(self, detail: str) -> None:
        s = self.status
        s["abort"] = True
        s["abortedAt"] = self.stamp
        s.pop("pauseConditions", None)
        s.pop("controllerPause", None)
        if self.steps:
            s["currentStepIndex"] = len(self.steps) if s.get("stableRS") == s.get("currentPodHash") else 0
        canary_status = s.setdefault("canary", {})
        canary_status.pop("currentStepAnalysisRunStatus", None)
        canary_status.pop("currentBackgroundAnalysisRunStatus", None)
        runs.terminate(self, keep=set())
        message = f"Rollout aborted update to revision {self.revision}" + (f": {detail}" if detail else "")
        self.cond("Progressing", "False", "RolloutAborted", message)
        self.cond("Paused", "False", "RolloutPaused", "Rollout is paused")
        self.event("RolloutAborted", message, "Warning")
        self.after(0.0)

    # ------------------------------------------------------------------------------------- status
    def finish(self, rss: list[Obj], new: Obj | None, requeue: float | None) -> float | None:
        s = self.status
        if requeue is not None:
            self.after(requeue)
        live = [rs for rs in rss if rs]
        s["replicas"] = sum(status_count(rs, "replicas") for rs in live)
        s["updatedReplicas"] = status_count(new, "replicas")
        s["readyReplicas"] = sum(status_count(rs, "readyReplicas") for rs in live)
        s["availableReplicas"] = sum(status_count(rs, "availableReplicas") for rs in live)
        s["HPAReplicas"] = s["replicas"]
        match = (self.spec.get("selector") or {}).get("matchLabels") or {}
        s["selector"] = ",".join(f"{k}={v}" for k, v in sorted(match.items()))
        s["observedGeneration"] = str(self.meta.get("generation") or "")
        if self.workload is not None:
            s["workloadObservedGeneration"] = workloadref.generation(self.workload)
            if new is not None:  # Argo's syncRolloutStatusCanary ends every pass with `onsuccess`
                self.scale_workload(spec_replicas(new), spec_replicas(new), scaling_new=False)
        if new is not None:
            rs_name = new["metadata"]["name"]
            available = s["availableReplicas"] >= self.replicas
            self.cond("Available", "True" if available else "False", "AvailableReason",
                      "Rollout has minimum availability" if available else "Rollout does not have minimum availability")
            if not s.get("abort") and not s.get("pauseConditions") and "Progressing" not in self.set_this_pass:
                if s.get("stableRS") == s.get("currentPodHash"):
                    self.cond("Progressing", "True", "NewReplicaSetAvailable",
                              f'ReplicaSet "{rs_name}" has successfully progressed.')
                else:
                    self.progress_deadline(rs_name)
            if not s.get("pauseConditions") and not self.spec.get("paused") and any(
                    c.get("type") == "Paused" and c.get("status") == "True" for c in s.get("conditions") or []):
                self.cond("Paused", "False", "RolloutPaused", "Rollout is paused")
        phase, message = phase_and_message(self.spec, s)
        s["phase"] = phase
        if message:
            s["message"] = message
        else:
            s.pop("message", None)
        if not s.get("canary"):
            s.pop("canary", None)
        patch = merge_diff(self.old_status, s)
        if patch:
            self.kube.patch("Rollout", self.ns, self.name,
                            {"metadata": {"resourceVersion": self.meta.get("resourceVersion")}, "status": patch},
                            subresource="status")
        return min(self.requeue) if self.requeue else None
