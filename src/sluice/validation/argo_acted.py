"""Which fields of a Rollout and an AnalysisRun Sluice's rollouts controller (`sluice.rollouts`) acts on, and
which stored fields it does not (yet): the admission warnings for Argo's kinds, as `istio/programmed.py` is
for the Istio kinds. A field the table does not cover is named, at its shallowest uncovered path.

Path syntax: `a.b` covers the field and everything below it; `[]` any list item; `*` any map key.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = ["ACTED_ON", "not_acted_on", "warnings", "MAX_WARNINGS"]

MAX_WARNINGS = 20

_STEP_ANALYSIS = ("templates", "args", "dryRun", "analysisRunMetadata")
_ISTIO = ("virtualService.name", "virtualService.routes", "virtualServices[].name", "virtualServices[].routes",
          "destinationRule.name", "destinationRule.canarySubsetName", "destinationRule.stableSubsetName",
          "destinationRule.additionalSubsetNames")
_CANARY = (
    "canaryService", "stableService",
    "steps[].setWeight", "steps[].pause", "steps[].setCanaryScale", "steps[].setHeaderRoute", "steps[].setMirrorRoute",
    "trafficRouting.managedRoutes",
    *(f"steps[].analysis.{f}" for f in _STEP_ANALYSIS),
    *(f"trafficRouting.istio.{f}" for f in _ISTIO),
    *(f"analysis.{f}" for f in (*_STEP_ANALYSIS, "startingStep")),
    "scaleDownDelaySeconds", "abortScaleDownDelaySeconds",
)
_METRIC = ("name", "interval", "count", "initialDelay", "successCondition", "failureCondition", "failureLimit",
           "inconclusiveLimit", "consecutiveErrorLimit", "consecutiveSuccessLimit", "provider.prometheus.address",
           "provider.prometheus.query", "provider.plugin")

ACTED_ON: dict[str, tuple[str, ...]] = {
    "Rollout": ("spec.replicas", "spec.selector", "spec.template", "spec.workloadRef", "spec.minReadySeconds",
                "spec.paused", "spec.progressDeadlineSeconds", "spec.progressDeadlineAbort",
                *(f"spec.strategy.canary.{f}" for f in _CANARY)),
    "AnalysisRun": ("spec.args", "spec.dryRun", "spec.terminate", *(f"spec.metrics[].{f}" for f in _METRIC)),
}


def _split(path: str) -> list[str]:
    return [p for p in path.replace("[]", ".[]").split(".") if p]


def _tree(paths: tuple[str, ...]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for p in paths:
        node = root
        parts = _split(p)
        for part in parts[:-1]:
            nxt = node.setdefault(part, {})
            if nxt is True:
                break
            node = nxt
        else:
            node[parts[-1]] = True
    return root


_TREES = {kind: _tree(paths) for kind, paths in ACTED_ON.items()}


def _empty(value: Any) -> bool:
    return value is None or value is False or value == 0 or value == "" or value == [] or value == {}


def _walk(node: dict[str, Any], value: Any, shown: str) -> Iterator[str]:
    if _empty(value):
        return
    if isinstance(value, dict):
        for key, child in value.items():
            sub = node.get(str(key), node.get("*"))
            if sub is True:
                continue
            if sub is None:
                if not _empty(child):
                    yield f"{shown}.{key}"
                continue
            yield from _walk(sub, child, f"{shown}.{key}")
    elif isinstance(value, list):
        sub = node.get("[]")
        if sub is True:
            return
        for i, child in enumerate(value):
            if sub is None:
                if not _empty(child):
                    yield f"{shown}[{i}]"
                continue
            yield from _walk(sub, child, f"{shown}[{i}]")
    else:
        yield shown


def not_acted_on(kind: str, obj: dict[str, Any]) -> list[str]:
    tree = _TREES.get(kind)
    if tree is None:
        return []
    found = list(_walk(tree.get("spec") or {}, obj.get("spec"), "spec"))
    if kind == "Rollout":
        canary = ((obj.get("spec") or {}).get("strategy") or {}).get("canary") or {}
        if isinstance(canary, dict) and (canary.get("trafficRouting") or {}).get("istio"):
            # with traffic routing Argo sizes the canary from the weights: maxSurge/maxUnavailable play no part
            found = [p for p in found if p not in ("spec.strategy.canary.maxSurge",
                                                   "spec.strategy.canary.maxUnavailable")]
        elif isinstance(canary, dict) and canary:
            # the replica-weighted canary (no traffic router) keeps the stable ReplicaSet at full size here
            found.append("spec.strategy.canary without trafficRouting.istio")
    return found


def warnings(kind: str, name: str, obj: dict[str, Any]) -> list[str]:
    found = not_acted_on(kind, obj)
    out = [f'{kind} "{name}": {p} is stored but not acted on: Sluice\'s rollouts controller does not implement '
           "it yet" for p in found[:MAX_WARNINGS]]
    if len(found) > MAX_WARNINGS:
        out.append(f'{kind} "{name}": {len(found) - MAX_WARNINGS} more fields are stored but not acted on')
    return out
