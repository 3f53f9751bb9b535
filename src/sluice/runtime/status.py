"""Pod status from container statuses: phase, conditions, IPs, as kubelet computes them. Pure.

Called by the pod worker (`sluice.runtime.pod`) each time something changes. The phase follows kubelet's
`getPhase`; conditions keep their `lastTransitionTime` while their status does not change.
"""

from __future__ import annotations

import time

from sluice.objects import Obj

__all__ = ["pod_phase", "build_status", "now"]



def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def pod_phase(statuses: list[Obj], restart_policy: str) -> str:
    waiting = running = stopped = succeeded = 0
    for s in statuses:
        state = s.get("state") or {}
        last = (s.get("lastState") or {}).get("terminated")
        if "running" in state:
            running += 1
        elif "terminated" in state:
            stopped += 1
            succeeded += state["terminated"].get("exitCode") == 0
        elif last:  # waiting to restart after a termination
            stopped += 1
            succeeded += last.get("exitCode") == 0
        else:
            waiting += 1
    if waiting:
        return "Pending"
    if running:
        return "Running"
    if not stopped:
        return "Pending"
    if restart_policy == "Always":
        return "Running"
    if stopped == succeeded:
        return "Succeeded"
    if restart_policy == "Never":
        return "Failed"
    return "Running"


def _condition(kind: str, ok: bool, prev: dict[str, Obj], reason: str = "", message: str = "") -> Obj:
    status = "True" if ok else "False"
    old = prev.get(kind)
    since = old["lastTransitionTime"] if old and old.get("status") == status and old.get("lastTransitionTime") \
        else now()
    c: Obj = {"type": kind, "status": status, "lastProbeTime": None, "lastTransitionTime": since}
    if not ok and reason:
        c["reason"] = reason
        c["message"] = message
    return c


def build_status(*, statuses: list[Obj], restart_policy: str, pod_ip: str, host_ip: str, start_time: str,
                 previous: Obj | None, terminal_reason: str = "") -> Obj:
    statuses = sorted(statuses, key=lambda s: str(s.get("name")))  # kubelet sorts them by name
    phase = pod_phase(statuses, restart_policy)
    prev = {str(c.get("type")): c for c in (previous or {}).get("conditions") or [] if isinstance(c, dict)}
    unready = [str(s["name"]) for s in statuses if not s.get("ready")]
    ready = not unready and phase == "Running"
    if phase in ("Succeeded", "Failed"):
        reason, message = "PodCompleted", ""
    else:
        reason, message = "ContainersNotReady", f"containers with unready status: [{' '.join(unready)}]"
    conditions = [
        _condition("PodReadyToStartContainers", True, prev),
        _condition("Initialized", True, prev),
        _condition("Ready", ready, prev, reason, message),
        _condition("ContainersReady", ready, prev, reason, message),
        _condition("PodScheduled", True, prev),
    ]
    if phase in ("Succeeded", "Failed"):
        for c in conditions[2:4]:
            c.pop("message", None)
    out: Obj = {"phase": phase, "conditions": conditions, "hostIP": host_ip, "hostIPs": [{"ip": host_ip}],
                "podIP": pod_ip, "podIPs": [{"ip": pod_ip}], "startTime": start_time,
                "containerStatuses": statuses, "qosClass": (previous or {}).get("qosClass") or "BestEffort"}
    if terminal_reason:
        out["reason"] = terminal_reason
    return out
