"""What `kubectl argo rollouts promote|abort|retry|pause` change in a Rollout, as merge patches (Argo's
`pkg/kubectl-argo-rollouts/cmd/*`; reference/argo_rollouts.md §2.11–2.12, §5.2). Pure: the CLI
(`sluice rollouts …`) and the console's buttons send the same patches.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sluice.objects import mapping as _d

__all__ = ["Patch", "promote", "abort", "retry", "pause", "resume", "ACTIONS"]


@dataclass(frozen=True)
class Patch:
    """One merge patch, to the Rollout (`subresource` None) or to its `status` subresource."""

    body: dict[str, Any]
    subresource: str | None = None


def promote(rollout: Mapping[str, Any], full: bool = False) -> list[Patch]:
    """Unpause; then clear the pause conditions (a paused step completes), or skip the current step when nothing
    waits on a pause; `full` skips every remaining step (`status.promoteFull`)."""
    spec, status = _d(rollout.get("spec")), _d(rollout.get("status"))
    out = [Patch({"spec": {"paused": False}})] if spec.get("paused") else []
    if full:
        if status.get("currentPodHash") != status.get("stableRS"):
            out.append(Patch({"status": {"promoteFull": True}}, "status"))
        return out
    body: dict[str, Any] = {"pauseConditions": None}
    steps = _d(_d(spec.get("strategy")).get("canary")).get("steps") or []
    index = status.get("currentStepIndex")
    inconclusive = bool(status.get("controllerPause")) and any(
        _d(c).get("reason") == "InconclusiveAnalysisRun" for c in status.get("pauseConditions") or [])
    if inconclusive:
        body["controllerPause"] = False
    if (inconclusive or not status.get("pauseConditions")) and index is not None and int(index) < len(steps):
        body["currentStepIndex"] = int(index) + 1
    out.append(Patch({"status": body}, "status"))
    return out


def abort(rollout: Mapping[str, Any]) -> list[Patch]:
    return [Patch({"status": {"abort": True}}, "status")]


def retry(rollout: Mapping[str, Any]) -> list[Patch]:
    return [Patch({"status": {"abort": False}}, "status")]


def pause(rollout: Mapping[str, Any]) -> list[Patch]:
    return [Patch({"spec": {"paused": True}})]


def resume(rollout: Mapping[str, Any]) -> list[Patch]:
    return [Patch({"spec": {"paused": False}})]


# name → (patches, what kubectl argo rollouts prints after it: `rollout 'NAME' <word>`)
ACTIONS = {"promote": (promote, "promoted"), "abort": (abort, "aborted"), "retry": (retry, "retried"),
           "pause": (pause, "paused"), "resume": (resume, "resumed")}
