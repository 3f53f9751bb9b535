"""A Rollout as the console shows it: status, steps (done, current, to come), revisions with their ReplicaSets
and AnalysisRuns (measured values and verdicts), and the canary weight over time, read from the controller's
`TrafficWeightUpdated` Events ("Traffic weight updated from A to B", reference/argo_rollouts.md §6). Pure: the
console passes the objects.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sluice.objects import mapping as _d
from sluice.rollouts.istio import HASH_LABEL
from sluice.rollouts.replicasets import REVISION, owned_by
from sluice.rollouts.status import step_text
from sluice.rollouts.view import current_set_weight

__all__ = ["step_text", "rollout_summary", "rollout_row", "weight_history", "rollout_services"]

_WEIGHT_EVENT = re.compile(r"Traffic weight updated (?:from \d+ )?to (\d+)")


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _events_for(events: Iterable[Mapping[str, Any]], kind: str, name: str) -> list[Mapping[str, Any]]:
    out = [e for e in events if _d(e.get("involvedObject")).get("kind") == kind
           and _d(e.get("involvedObject")).get("name") == name]
    return sorted(out, key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))


def weight_history(events: Iterable[Mapping[str, Any]], name: str) -> list[dict[str, Any]]:
    """[{time, weight}] from the Rollout's TrafficWeightUpdated Events, oldest first (a repeated Event counts
    once, at its last time)."""
    out = []
    for e in _events_for(events, "Rollout", name):
        m = _WEIGHT_EVENT.search(str(e.get("message") or ""))
        if e.get("reason") == "TrafficWeightUpdated" and m:
            out.append({"time": e.get("lastTimestamp") or e.get("eventTime"), "weight": int(m.group(1))})
    return out


def rollout_services(rollout: Mapping[str, Any]) -> dict[str, Any]:
    """The Services and Istio objects a canary drives: for the console's links and the graph's badge."""
    canary = _d(_d(_d(rollout.get("spec")).get("strategy")).get("canary"))
    istio = _d(_d(canary.get("trafficRouting")).get("istio"))
    vss = [_d(v) for v in istio.get("virtualServices") or []] + (
        [_d(istio.get("virtualService"))] if istio.get("virtualService") else [])
    return {"canaryService": canary.get("canaryService"), "stableService": canary.get("stableService"),
            "virtualServices": [str(v.get("name")) for v in vss if v.get("name")],
            "destinationRule": _d(istio.get("destinationRule")).get("name")}


def rollout_row(rollout: Mapping[str, Any]) -> dict[str, Any]:
    meta, spec, status = _d(rollout.get("metadata")), _d(rollout.get("spec")), _d(rollout.get("status"))
    strategy = _d(spec.get("strategy"))
    steps = _d(strategy.get("canary")).get("steps") or []
    weights = _d(_d(status.get("canary")).get("weights"))
    return {"name": meta.get("name"), "namespace": meta.get("namespace"),
            "phase": status.get("phase") or "Progressing", "message": status.get("message") or "",
            "strategy": "Canary" if "canary" in strategy else ("BlueGreen" if "blueGreen" in strategy else "unknown"),
            "currentStepIndex": status.get("currentStepIndex"), "stepCount": len(steps),
            "setWeight": current_set_weight(rollout),
            "actualWeight": _d(weights.get("canary")).get("weight"),
            "replicas": {"desired": int(spec.get("replicas", 1)), "ready": int(status.get("readyReplicas") or 0),
                         "available": int(status.get("availableReplicas") or 0),
                         "updated": int(status.get("updatedReplicas") or 0)},
            "stableRS": status.get("stableRS"), "currentPodHash": status.get("currentPodHash"),
            "aborted": bool(status.get("abort")), "paused": bool(spec.get("paused")) or bool(
                status.get("pauseConditions")),
            **rollout_services(rollout)}


def _run(run: Mapping[str, Any]) -> dict[str, Any]:
    meta, status = _d(run.get("metadata")), _d(run.get("status"))
    metrics = []
    for m in status.get("metricResults") or []:
        m = _d(m)
        metrics.append({"name": m.get("name"), "phase": m.get("phase"), "message": m.get("message") or "",
                        "count": m.get("count", 0), "successful": m.get("successful", 0),
                        "failed": m.get("failed", 0), "inconclusive": m.get("inconclusive", 0),
                        "error": m.get("error", 0),
                        "measurements": [{"phase": x.get("phase"), "value": x.get("value"),
                                          "message": x.get("message") or "", "startedAt": x.get("startedAt"),
                                          "finishedAt": x.get("finishedAt")}
                                         for x in map(_d, m.get("measurements") or [])]})
    return {"name": meta.get("name"), "phase": status.get("phase") or "Pending",
            "message": status.get("message") or "", "startedAt": status.get("startedAt"),
            "revision": _d(meta.get("annotations")).get(REVISION), "metrics": metrics}


def rollout_summary(rollout: Mapping[str, Any], replicasets: Sequence[Mapping[str, Any]],
                    pods: Sequence[Mapping[str, Any]], runs: Sequence[Mapping[str, Any]],
                    events: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    meta, spec, status = _d(rollout.get("metadata")), _d(rollout.get("spec")), _d(rollout.get("status"))
    steps = _d(_d(spec.get("strategy")).get("canary")).get("steps") or []
    index = status.get("currentStepIndex")
    done_all = index is not None and int(index) >= len(steps)
    step_rows = []
    for i, step in enumerate(steps):
        state = ("done" if done_all or (index is not None and i < int(index)) else
                 "current" if index is not None and i == int(index) else "pending")
        step_rows.append({"index": i, "text": step_text(_d(step)), "state": state})
    stable, canary = status.get("stableRS"), status.get("currentPodHash")
    rs_rows = []
    for rs in replicasets:
        if not owned_by(rs, rollout):
            continue
        rmeta, rspec, rstatus = _d(rs.get("metadata")), _d(rs.get("spec")), _d(rs.get("status"))
        h = _d(rmeta.get("labels")).get(HASH_LABEL)
        role = "stable" if h and h == stable else ("canary" if h and h == canary else "")
        rs_pods = [p for p in pods if owned_by(p, rs)]
        images = [str(_d(c).get("image")) for c in _d(_d(rspec.get("template")).get("spec")).get("containers") or []]
        rs_rows.append({"name": rmeta.get("name"), "revision": _d(rmeta.get("annotations")).get(REVISION),
                        "hash": h, "role": role, "replicas": int(rspec.get("replicas") or 0),
                        "ready": int(rstatus.get("readyReplicas") or 0), "images": images,
                        "pods": [str(_d(p.get("metadata")).get("name")) for p in rs_pods]})
    rs_rows.sort(key=lambda r: -_int(r["revision"]))
    run_rows = sorted((_run(r) for r in runs if owned_by(r, rollout)), key=lambda r: str(r["startedAt"] or ""),
                      reverse=True)
    recent = _events_for(events, "Rollout", str(meta.get("name")))[-20:]
    return {**rollout_row(rollout), "steps": step_rows, "replicaSets": rs_rows, "analysisRuns": run_rows,
            "weightHistory": weight_history(events, str(meta.get("name"))),
            "conditions": [dict(_d(c)) for c in status.get("conditions") or []],
            "events": [{"type": e.get("type"), "reason": e.get("reason"), "message": e.get("message"),
                        "time": e.get("lastTimestamp") or e.get("eventTime"), "count": e.get("count", 1)}
                       for e in reversed(recent)]}
