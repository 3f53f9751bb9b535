"""Pure pieces of a Rollout's state as Argo computes them: the pod-template and step hashes, the weight and
canary size a step asks for, the phase and message (`CalculateRolloutPhase`), conditions, merge patches.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from sluice.validation.argo import pause_seconds

__all__ = ["pod_hash", "step_hash", "desired_weight", "canary_replicas", "phase_and_message", "set_condition",
           "merge_diff", "step_text", "condition"]

Obj = dict[str, Any]
_SAFE = "bcdfghjklmnpqrstvwxz2456789"  # apimachinery rand.SafeEncodeString's alphabet


def _fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def _safe(text: str) -> str:
    return "".join(_SAFE[ord(c) % len(_SAFE)] for c in text)


def pod_hash(template: Any, collision_count: int | None = None) -> str:
    """FNV-32a over the template's JSON (+ the collision count), SafeEncoded, as Argo's ComputePodTemplateHash;
    the bytes are Python's canonical JSON, not Go's, so the value is stable but not Argo's own."""
    data = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    if collision_count:
        data += int(collision_count).to_bytes(8, "little")
    return _safe(str(_fnv32a(data)))


def step_hash(steps: Any) -> str:
    return _safe(str(_fnv32a(json.dumps(steps or [], sort_keys=True, separators=(",", ":")).encode())))


def desired_weight(steps: Sequence[Any], index: int) -> int:
    """The most recent setWeight at or before `index` (0 before any); 100 after the last step."""
    if index >= len(steps):
        return 100
    for s in reversed(steps[: index + 1]):
        if isinstance(s, dict) and isinstance(s.get("setWeight"), int):
            return int(s["setWeight"])
    return 0


def _canary_scale(steps: list[Obj], index: int) -> Obj | None:
    """The setCanaryScale in effect at `index` (none after matchTrafficWeight or past the last step)."""
    if index >= len(steps):
        return None
    for s in reversed(steps[: index + 1]):
        scale = s.get("setCanaryScale") if isinstance(s, dict) else None
        if isinstance(scale, dict):
            return None if scale.get("matchTrafficWeight") else scale
    return None


def canary_replicas(steps: list[Obj], index: int, replicas: int, weight: int) -> int:
    scale = _canary_scale(steps, index)
    if scale is not None:
        if isinstance(scale.get("replicas"), int):
            return int(scale["replicas"])
        if isinstance(scale.get("weight"), int):
            return math.ceil(int(scale["weight"]) * replicas / 100)
    return math.ceil(weight * replicas / 100)


def step_text(s: Mapping[str, Any]) -> str:
    """Argo's CanaryStepString, used in RolloutStepCompleted messages."""
    if "setWeight" in s:
        return f"setWeight: {s['setWeight']}"
    if "pause" in s:
        d = (s.get("pause") or {}).get("duration")
        return "pause" if d is None else f"pause: {d if isinstance(d, str) else f'{pause_seconds(d)}s'}"
    if "analysis" in s:
        return "analysis"
    if "experiment" in s:
        return "experiment"
    if "setCanaryScale" in s:
        sc = s.get("setCanaryScale") or {}
        if "replicas" in sc:
            return f"setCanaryScale{{replicas: {sc['replicas']}}}"
        if sc.get("matchTrafficWeight"):
            return "setCanaryScale{matchTrafficWeight: true}"
        return f"setCanaryScale{{weight: {sc.get('weight')}}}"
    if "setHeaderRoute" in s:
        return f"setHeaderRoute: {(s.get('setHeaderRoute') or {}).get('name')}"
    if "setMirrorRoute" in s:
        return f"setMirrorRoute: {(s.get('setMirrorRoute') or {}).get('name')}"
    if "plugin" in s:
        return f"plugin: {(s.get('plugin') or {}).get('name')}"
    return "unknown"


def condition(type_: str, status: str, reason: str, message: str, now: str) -> Obj:
    return {"type": type_, "status": status, "reason": reason, "message": message,
            "lastUpdateTime": now, "lastTransitionTime": now}


def set_condition(conditions: list[Obj], new: Obj) -> list[Obj]:
    """Replace the condition of that type; keep lastTransitionTime when the status did not change and the
    whole condition when nothing changed (no churn in the object)."""
    out = []
    placed = False
    for c in conditions:
        if c.get("type") == new["type"]:
            placed = True
            if all(c.get(k) == new[k] for k in ("status", "reason", "message")):
                out.append(c)
                continue
            if c.get("status") == new["status"]:
                new = {**new, "lastTransitionTime": c.get("lastTransitionTime", new["lastTransitionTime"])}
            out.append(new)
        else:
            out.append(c)
    if not placed:
        out.append(new)
    return out


def phase_and_message(spec: Obj, status: Obj) -> tuple[str, str]:
    """Argo's CalculateRolloutPhase (first match wins)."""
    for c in status.get("conditions") or []:
        if c.get("type") == "InvalidSpec" and c.get("status") == "True":
            return "Degraded", f"InvalidSpec: {c.get('message')}"
    for c in status.get("conditions") or []:
        if c.get("reason") in ("RolloutAborted", "ProgressDeadlineExceeded"):
            return "Degraded", f"{c.get('reason')}: {c.get('message')}"
    if spec.get("paused"):
        return "Paused", "manually paused"
    pauses = status.get("pauseConditions") or []
    if pauses:
        return "Paused", str(pauses[0].get("reason"))
    replicas = int(spec.get("replicas", 1))
    if int(status.get("updatedReplicas") or 0) < replicas:
        return "Progressing", "more replicas need to be updated"
    if int(status.get("availableReplicas") or 0) < int(status.get("updatedReplicas") or 0):
        return "Progressing", "updated replicas are still becoming available"
    if not status.get("stableRS") or status.get("stableRS") != status.get("currentPodHash"):
        return "Progressing", "waiting for all steps to complete"
    return "Healthy", ""


def merge_diff(old: Any, new: Any) -> Any:
    """The JSON merge patch (RFC 7386) that turns `old` into `new`."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return copy.deepcopy(new)
    patch: Obj = {}
    for k in old:
        if k not in new:
            patch[k] = None
    for k, v in new.items():
        if k not in old:
            patch[k] = copy.deepcopy(v)
        elif old[k] != v:
            patch[k] = merge_diff(old[k], v) if isinstance(v, dict) and isinstance(old[k], dict) else copy.deepcopy(v)
    return patch
