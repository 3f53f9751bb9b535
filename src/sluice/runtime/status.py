"""Pod status from container statuses: phase, conditions, IPs, as kubelet computes them. Pure.

Called by the pod worker (`sluice.runtime.pod`) each time something changes. The phase follows kubelet's
`getPhase`; conditions keep their `lastTransitionTime` while their status does not change.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from sluice.objects import Obj

__all__ = ["pod_phase", "build_status", "gate_problems", "now"]



def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _exit_code(s: Obj, key: str) -> int | None:
    """The exit code in `s[key]` ("state" or "lastState"), if that is a termination."""
    term = (s.get(key) or {}).get("terminated")
    return int(term.get("exitCode") or 0) if isinstance(term, dict) else None


def pod_phase(statuses: list[Obj], restart_policy: str, init_statuses: Sequence[Obj] = (),
              restartable: frozenset[str] = frozenset()) -> str:
    """kubelet's getPhase. `init_statuses`: the init containers' statuses, in spec order; `restartable`: the
    names of those with `restartPolicy: Always` (sidecars), which count with the regular containers."""
    pending_init = failed_init = pending_sidecars = 0
    waiting = running = stopped = succeeded = 0
    for s in init_statuses:
        state = s.get("state") or {}
        if s.get("name") in restartable:
            if "running" in state:
                running += 1
                pending_sidecars += not s.get("started")
            elif "waiting" in state:
                waiting += 1
                pending_sidecars += not s.get("lastState")
            continue  # a sidecar that terminated is not counted
        if "running" in state:
            pending_init += 1
        elif (code := _exit_code(s, "state")) is not None:
            failed_init += code != 0
        elif (code := _exit_code(s, "lastState")) is not None:
            failed_init += code != 0  # waiting to run again after a failure
        else:
            pending_init += 1
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
    if failed_init and restart_policy == "Never":
        return "Failed"
    if pending_init or (pending_sidecars and running + stopped == 0) or waiting:
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


def _initialized(init_statuses: Sequence[Obj], restartable: frozenset[str], phase: str,
                 prev: dict[str, Obj]) -> Obj:
    """kubelet's PodInitialized condition: every init container done (a sidecar: started)."""
    if not init_statuses:
        return _condition("Initialized", True, prev)
    if phase == "Succeeded":
        return {**_condition("Initialized", True, prev), "reason": "PodCompleted"}
    incomplete = [str(s.get("name")) for s in init_statuses
                  if not (s.get("started") if s.get("name") in restartable else s.get("ready"))]
    return _condition("Initialized", not incomplete, prev, "ContainersNotInitialized",
                      f"containers with incomplete status: [{' '.join(incomplete)}]")


_KUBELET_CONDITIONS = frozenset({"PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady",
                                 "PodScheduled"})


def gate_problems(readiness_gates: Sequence[str], conditions: dict[str, Obj]) -> list[str]:
    """kubelet's messages for the readiness gates whose condition (by type) is missing or not True."""
    out = []
    for gate in readiness_gates:
        c = conditions.get(gate)
        if c is None:
            out.append(f'corresponding condition of pod readiness gate "{gate}" does not exist.')
        elif c.get("status") != "True":
            out.append(f'the status of pod readiness gate "{gate}" is not "True", but {c.get("status")}')
    return out


def build_status(*, statuses: list[Obj], restart_policy: str, pod_ip: str, host_ip: str, start_time: str,
                 previous: Obj | None, terminal_reason: str = "", init_statuses: Sequence[Obj] = (),
                 restartable: frozenset[str] = frozenset(), readiness_gates: Sequence[str] = ()) -> Obj:
    """The pod's status from its containers' (`init_statuses` in spec order, `restartable` naming the init
    containers that are sidecars). Conditions others set (a readiness gate's) are kept, and the pod is Ready
    only once each of its `readiness_gates` is a condition with status True."""
    statuses = sorted(statuses, key=lambda s: str(s.get("name")))  # kubelet sorts them by name
    init_statuses = list(init_statuses)
    phase = pod_phase(statuses, restart_policy, init_statuses, restartable)
    prev = {str(c.get("type")): c for c in (previous or {}).get("conditions") or [] if isinstance(c, dict)}
    # a sidecar counts toward readiness as a regular container does (kubelet's ContainersReady)
    unready = [str(s["name"]) for s in init_statuses if s.get("name") in restartable and not s.get("ready")]
    unready += [str(s["name"]) for s in statuses if not s.get("ready")]
    ready = not unready and phase == "Running"
    if phase in ("Succeeded", "Failed"):
        reason, message = "PodCompleted", ""
    else:
        reason, message = "ContainersNotReady", f"containers with unready status: [{' '.join(unready)}]"
    gates = gate_problems(readiness_gates, prev) if ready else []
    conditions = [
        _condition("PodReadyToStartContainers", True, prev),
        _initialized(init_statuses, restartable, phase, prev),
        _condition("Ready", ready and not gates, prev, *(("ReadinessGatesNotReady", ", ".join(gates)) if gates
                                                        else (reason, message))),
        _condition("ContainersReady", ready, prev, reason, message),
        _condition("PodScheduled", True, prev),
    ]
    if phase in ("Succeeded", "Failed"):
        for c in conditions[2:4]:
            c.pop("message", None)
    conditions += [c for kind, c in prev.items() if kind not in _KUBELET_CONDITIONS]
    out: Obj = {"phase": phase, "conditions": conditions, "hostIP": host_ip, "hostIPs": [{"ip": host_ip}],
                "podIP": pod_ip, "podIPs": [{"ip": pod_ip}], "startTime": start_time,
                "containerStatuses": statuses, "qosClass": (previous or {}).get("qosClass") or "BestEffort"}
    if init_statuses:
        out["initContainerStatuses"] = init_statuses
    if terminal_reason:
        out["reason"] = terminal_reason
    return out
