"""A Rollout's AnalysisRuns, as Argo's `reconcileAnalysisRuns` handles them: built from the templates and the
Rollout's args, named `<rollout>-<hash>-<revision>[-<step>]`, their phase copied into the Rollout's status; a
failed or errored run aborts the rollout, an inconclusive one pauses it; terminated when they stop mattering."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sluice.rollouts import analysis
from sluice.rollouts.analysis import COMPLETED
from sluice.rollouts.istio import HASH_LABEL
from sluice.rollouts.replicasets import REVISION, Obj, owned_by, owner_ref

if TYPE_CHECKING:
    from sluice.rollouts.canary import RolloutPass

__all__ = ["step_analysis", "background_analysis", "terminate"]


def templates(p: RolloutPass, refs: list[Any]) -> list[Obj]:
    out: list[Obj] = []
    for ref in refs:
        if not isinstance(ref, dict):
            continue
        name = str(ref.get("templateName") or "")
        if ref.get("clusterScope"):
            t = p.kube.get("ClusterAnalysisTemplate", None, name)
            if t is None:
                raise ValueError(f"ClusterAnalysisTemplate '{name}' not found")
        else:
            t = p.kube.get("AnalysisTemplate", p.ns, name)
            if t is None:
                raise ValueError(f"AnalysisTemplate '{name}' not found")
        out.extend([*templates(p, (t.get("spec") or {}).get("templates") or []), t])
    return out


def arg_value(p: RolloutPass, value_from: Obj) -> str | None:
    which = value_from.get("podTemplateHashValue")
    if which == "Latest":
        return str(p.status.get("currentPodHash") or "")
    if which == "Stable":
        return str(p.status.get("stableRS") or "")
    path = str((value_from.get("fieldRef") or {}).get("fieldPath") or "")
    node: Any = p.ro
    for part in path.replace("[", ".").replace("]", "").replace("'", "").split("."):
        if not part:
            continue
        node = node.get(part) if isinstance(node, dict) else None
    return None if node is None else str(node)


def ensure_run(p: RolloutPass, base: str, ref: Obj, labels: Obj, key: str) -> Obj | None:
    """The AnalysisRun the Rollout's status names, or a new one built from the templates."""
    canary_status = p.status.setdefault("canary", {})
    current = canary_status.get(key) or {}
    if current.get("name"):
        run = p.kube.get("AnalysisRun", p.ns, str(current["name"]))
        if run is not None:
            return run
    try:
        spec = analysis.build_run(templates(p, ref.get("templates") or []), ref.get("args") or [],
                                  lambda v: arg_value(p, v), ref.get("dryRun"))
    except ValueError as e:
        p.abort(f"{'Step-based' if key.startswith('currentStep') else 'Background'} analysis phase "
                f"error/failed: {e}")
        return None
    meta_extra = ref.get("analysisRunMetadata") or {}
    name = base
    for suffix in range(100):
        name = base if suffix == 0 else f"{base}.{suffix}"
        if p.kube.get("AnalysisRun", p.ns, name) is None:
            break
    run = {"apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun",
           "metadata": {"name": name, "namespace": p.ns,
                        "labels": {**((p.spec.get("selector") or {}).get("matchLabels") or {}), **labels,
                                   **(meta_extra.get("labels") or {})},
                        "annotations": {REVISION: str(p.revision), **(meta_extra.get("annotations") or {})},
                        "ownerReferences": [owner_ref(p.ro)]},
           "spec": spec}
    created = p.kube.create("AnalysisRun", p.ns, run)
    canary_status[key] = {"name": name, "status": ""}
    p.after(0.0)
    return created


def run_status(p: RolloutPass, run: Obj, key: str, kind: str) -> str:
    phase = str((run.get("status") or {}).get("phase") or "")
    message = str((run.get("status") or {}).get("message") or "")
    canary_status = p.status.setdefault("canary", {})
    prev = (canary_status.get(key) or {}).get("status")
    entry: Obj = {"name": run["metadata"]["name"], "status": phase}
    if message:
        entry["message"] = message
    canary_status[key] = entry
    if phase and phase != prev:
        type_ = "Warning" if phase in ("Failed", "Error") else "Normal"
        p.event(f"AnalysisRun{phase}", f"{kind} Analysis Run '{run['metadata']['name']}' Status New: "
                                       f"'{phase}' Previous: '{prev or 'NoPreviousStatus'}'", type_)
    return phase


def step_analysis(p: RolloutPass, h: str, idx: int, ref: Obj) -> int:
    key = "currentStepAnalysisRunStatus"
    run = ensure_run(p, f"{p.name}-{h}-{p.revision}-{idx}", ref,
                          {HASH_LABEL: h, "rollout-type": "Step", "step-index": str(idx)}, key)
    if run is None:
        return idx
    phase = run_status(p, run, key, "Step")
    message = str((run.get("status") or {}).get("message") or phase)
    if phase == "Successful":
        p.status["canary"].pop(key, None)
        return p.complete_step(idx)
    if phase in ("Failed", "Error"):
        p.abort(f"Step-based analysis phase error/failed: {message}")
    elif phase == "Inconclusive" and not any(
            c.get("reason") == "InconclusiveAnalysisRun" for c in p.status.get("pauseConditions") or []):
        p.pause("InconclusiveAnalysisRun")
    return idx


def background_analysis(p: RolloutPass, h: str, idx: int) -> int:
    ref = p.canary.get("analysis")
    s = p.status
    if not isinstance(ref, dict) or s.get("abort") or idx < int(ref.get("startingStep") or 0):
        return idx
    key = "currentBackgroundAnalysisRunStatus"
    current = (s.get("canary") or {}).get(key) or {}
    if current.get("status") == "Inconclusive" and not any(
            c.get("reason") == "InconclusiveAnalysisRun" for c in s.get("pauseConditions") or []):
        s["canary"].pop(key)  # promoted past an inconclusive run: Argo starts a new one
    run = ensure_run(p, f"{p.name}-{h}-{p.revision}", ref, {HASH_LABEL: h, "rollout-type": "Background"},
                          key)
    if run is None:
        return idx
    phase = run_status(p, run, key, "Background")
    message = str((run.get("status") or {}).get("message") or phase)
    if phase in ("Failed", "Error"):
        p.abort(f"Background analysis phase error/failed: {message}")
    elif phase == "Inconclusive" and not any(
            c.get("reason") == "InconclusiveAnalysisRun" for c in s.get("pauseConditions") or []):
        p.pause("InconclusiveAnalysisRun")
    return idx


def terminate(p: RolloutPass, keep: set[str]) -> None:
    for run in p.kube.list("AnalysisRun", p.ns):
        if not owned_by(run, p.ro) or run["metadata"]["name"] in keep:
            continue
        if (run.get("status") or {}).get("phase") in COMPLETED or (run.get("spec") or {}).get("terminate"):
            continue
        p.kube.patch("AnalysisRun", p.ns, run["metadata"]["name"], {"spec": {"terminate": True}})
