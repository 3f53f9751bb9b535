"""What `kubectl argo rollouts get rollout NAME` prints: the header block and the tree of revisions, ReplicaSets,
pods and AnalysisRuns (Argo's `get_rollout.go` layout: labels padded to 17 columns, a tabwriter table with
2-space padding, its icons and INFO texts; reference/argo_rollouts.md §5.1). Pure: the caller passes the objects
and `now`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sluice.objects import mapping as _d
from sluice.resources.printers import human_duration, parse_time, row_cells
from sluice.rollouts.istio import HASH_LABEL
from sluice.rollouts.replicasets import owned_by, revision_of
from sluice.rollouts.status import desired_weight

__all__ = ["rollout_view", "header_lines", "tree_lines", "list_lines", "current_set_weight", "PHASE_ICONS"]

PHASE_ICONS = {"Progressing": "◌", "Paused": "॥", "Healthy": "✔", "Degraded": "✖", "Error": "⚠",
               "InvalidSpec": "⚠", "Unknown": "?"}
_RS_ICONS = {"Healthy": "✔", "Progressing": "◌", "ScaledDown": "•", "ReplicaFailure": "✖"}
_RUN_ICONS = {"Successful": "✔", "Running": "◌", "Pending": "◷", "Inconclusive": "?", "Failed": "✖", "Error": "⚠"}
_LABEL_WIDTH = 17


def _age(obj: Mapping[str, Any], now: datetime) -> str:
    created = parse_time(_d(obj.get("metadata")).get("creationTimestamp"))
    return human_duration((now - created).total_seconds()) if created else "<unknown>"


def _pod_icon(status: str) -> str:
    if status in ("Running", "Completed"):
        return "✔"
    if status in ("Pending", "ContainerCreating", "PodInitializing", "Terminating") or status.startswith("Init:"):
        return "◌"
    if status in ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "Unknown"):
        return "⚠"
    return "✖"


def _rs_status(rs: Mapping[str, Any]) -> str:
    spec, status = _d(rs.get("spec")), _d(rs.get("status"))
    want = int(spec.get("replicas") or 0)
    if want == 0:
        return "ScaledDown"
    if any(_d(c).get("type") == "ReplicaFailure" and _d(c).get("status") == "True"
           for c in status.get("conditions") or []):
        return "ReplicaFailure"
    return "Healthy" if int(status.get("availableReplicas") or 0) >= want else "Progressing"


def _run_info(run: Mapping[str, Any]) -> str:
    counts = {"successful": 0, "failed": 0, "inconclusive": 0, "error": 0}
    for m in _d(run.get("status")).get("metricResults") or []:
        for k in counts:
            counts[k] += int(_d(m).get(k) or 0)
    parts = [f"{icon} {counts[k]}" for k, icon in (("successful", "✔"), ("failed", "✖"), ("inconclusive", "?"),
                                                     ("error", "⚠")) if counts[k]]
    return ",".join(parts)


@dataclass
class _Node:
    icon: str
    name: str
    kind: str = ""
    status: str = ""
    age: str = ""
    info: str = ""
    children: list[_Node] = field(default_factory=list)


def _tree(rollout: Mapping[str, Any], replicasets: Iterable[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]],
          runs: Iterable[Mapping[str, Any]], now: datetime) -> _Node:
    meta, status = _d(rollout.get("metadata")), _d(rollout.get("status"))
    phase = str(status.get("phase") or "Progressing")
    root = _Node("⟳", str(meta.get("name")), "Rollout", f"{PHASE_ICONS.get(phase, '?')} {phase}", _age(rollout, now))
    stable, canary = status.get("stableRS"), status.get("currentPodHash")
    pods = list(pods)
    revisions: dict[int, _Node] = {}
    for rs in sorted((r for r in replicasets if owned_by(r, rollout)), key=lambda r: _age_key(r)):
        rmeta = _d(rs.get("metadata"))
        h = _d(rmeta.get("labels")).get(HASH_LABEL)
        info = ",".join(x for x, on in (("stable", h and h == stable), ("canary", h and h == canary and h != stable))
                        if on)
        st = _rs_status(rs)
        node = _Node("⧉", str(rmeta.get("name")), "ReplicaSet", f"{_RS_ICONS[st]} {st}", _age(rs, now), info)
        for pod in sorted((p for p in pods if owned_by(p, rs)), key=_age_key):
            cells = row_cells("Pod", pod, now=now)  # NAME READY STATUS RESTARTS AGE, as kubectl get pods
            pod_info = f"ready:{cells[1]}" + (f",restarts:{cells[3]}" if str(cells[3]) not in ("0", "") else "")
            node.children.append(_Node("□", str(cells[0]), "Pod", f"{_pod_icon(str(cells[2]))} {cells[2]}",
                                       _age(pod, now), pod_info))
        rev = revision_of(rs)
        revisions.setdefault(rev, _Node("#", f"revision:{rev}")).children.append(node)
    for run in sorted((r for r in runs if owned_by(r, rollout)), key=_age_key):
        run_phase = str(_d(run.get("status")).get("phase") or "Pending")
        rev = revision_of(run)
        revisions.setdefault(rev, _Node("#", f"revision:{rev}")).children.append(
            _Node("α", str(_d(run.get("metadata")).get("name")), "AnalysisRun",
                  f"{_RUN_ICONS.get(run_phase, '?')} {run_phase}", _age(run, now), _run_info(run)))
    root.children = [revisions[r] for r in sorted(revisions, reverse=True)]
    return root


def _age_key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = _d(obj.get("metadata"))
    return str(meta.get("creationTimestamp") or ""), str(meta.get("name") or "")


def _rows(node: _Node, lead: str, branch: str, out: list[list[str]]) -> None:
    out.append([f"{lead}{branch}{node.icon} {node.name}", node.kind, node.status, node.age, node.info])
    below = lead + ("" if not branch else ("│  " if branch == "├──" else "   "))
    for i, child in enumerate(node.children):
        _rows(child, below, "└──" if i == len(node.children) - 1 else "├──", out)


def tree_lines(rollout: Mapping[str, Any], replicasets: Iterable[Mapping[str, Any]],
               pods: Iterable[Mapping[str, Any]], runs: Iterable[Mapping[str, Any]], now: datetime) -> list[str]:
    rows: list[list[str]] = [["NAME", "KIND", "STATUS", "AGE", "INFO"]]
    _rows(_tree(rollout, replicasets, pods, runs, now), "", "", rows)
    widths = [max(len(r[i]) for r in rows if any(r[1:]) or i == 0) + 2 for i in range(4)]
    out = []
    for r in rows:
        if not any(r[1:]):  # a revision line: one cell
            out.append(r[0])
            continue
        out.append("".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + r[4])
    return [line.rstrip() for line in out]


def _label(name: str, value: str = "") -> str:
    return f"{name}:".ljust(_LABEL_WIDTH) + value if value != "" else f"{name}:"


def header_lines(rollout: Mapping[str, Any], replicasets: Sequence[Mapping[str, Any]]) -> list[str]:
    meta, spec, status = _d(rollout.get("metadata")), _d(rollout.get("spec")), _d(rollout.get("status"))
    phase = str(status.get("phase") or "Progressing")
    out = [_label("Name", str(meta.get("name"))), _label("Namespace", str(meta.get("namespace"))),
           _label("Status", f"{PHASE_ICONS.get(phase, '?')} {phase}")]
    if status.get("message"):
        out.append(_label("Message", str(status["message"])))
    canary = _d(_d(spec.get("strategy")).get("canary"))
    steps = canary.get("steps") or []
    out.append(_label("Strategy", "Canary" if "canary" in _d(spec.get("strategy")) else "BlueGreen"))
    if "canary" in _d(spec.get("strategy")):
        index = status.get("currentStepIndex")
        out.append(_label("  Step", f"{index}/{len(steps)}" if index is not None and steps else ""))
        weights = _d(_d(status.get("canary")).get("weights"))
        done = index is not None and int(index) >= len(steps)
        set_weight = current_set_weight(rollout)
        actual = _d(weights.get("canary")).get("weight")
        out.append(_label("  SetWeight", str(set_weight)))
        out.append(_label("  ActualWeight", str(100 if done else int(actual or 0))))
    out.append(_label("Images", ""))
    images = _images(rollout, replicasets)
    if images:
        out[-1] = _label("Images", images[0])
        out.extend(" " * _LABEL_WIDTH + i for i in images[1:])
    out.append("Replicas:")
    out.append(_label("  Desired", str(int(spec.get("replicas", 1)))))
    for name, key in (("Current", "replicas"), ("Updated", "updatedReplicas"), ("Ready", "readyReplicas"),
                      ("Available", "availableReplicas")):
        out.append(_label(f"  {name}", str(int(status.get(key) or 0))))
    return out


def current_set_weight(rollout: Mapping[str, Any]) -> int:
    """Argo's `GetCurrentSetWeight`: 0 when aborted, 100 after the last step, else the last `setWeight` at or
    before the current step."""
    status = _d(rollout.get("status"))
    steps = _d(_d(_d(rollout.get("spec")).get("strategy")).get("canary")).get("steps") or []
    index = status.get("currentStepIndex")
    if status.get("abort"):
        return 0
    return 100 if index is None else desired_weight(steps, int(index))


def list_lines(rollouts: Sequence[Mapping[str, Any]], all_namespaces: bool = False) -> list[str]:
    """`kubectl argo rollouts list rollouts`: its fixed-width cells (list/rollloutinfo.go) through a tabwriter."""
    head = ["NAME", "STRATEGY", "STATUS", "STEP", "SET-WEIGHT", "READY", "DESIRED", "UP-TO-DATE", "AVAILABLE"]
    rows = [["NAMESPACE", *head] if all_namespaces else head]
    pads = [10, 9, 12, 4, 10, 5, 7, 10, 9]
    for ro in rollouts:
        meta, spec, status = _d(ro.get("metadata")), _d(ro.get("spec")), _d(ro.get("status"))
        strategy = _d(spec.get("strategy"))
        steps = _d(strategy.get("canary")).get("steps") or []
        index = status.get("currentStepIndex")
        cells = [str(meta.get("name")), "Canary" if "canary" in strategy else
                 ("BlueGreen" if "blueGreen" in strategy else "unknown"), str(status.get("phase") or "Progressing"),
                 f"{index}/{len(steps)}" if "canary" in strategy and index is not None and steps else "-",
                 str(current_set_weight(ro)) if "canary" in strategy else "-",
                 f"{int(status.get('readyReplicas') or 0)}/{int(status.get('replicas') or 0)}",
                 str(int(spec.get("replicas", 1))), str(int(status.get("updatedReplicas") or 0)),
                 str(int(status.get("availableReplicas") or 0))]
        cells = [c.ljust(p) for c, p in zip(cells, pads, strict=True)]
        rows.append([str(meta.get("namespace")).ljust(9), *cells] if all_namespaces else cells)
    widths = [max(len(r[i]) for r in rows) + 2 for i in range(len(rows[0]) - 1)]
    return ["".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + r[-1] for r in rows]


def _images(rollout: Mapping[str, Any], replicasets: Sequence[Mapping[str, Any]]) -> list[str]:
    status = _d(rollout.get("status"))
    tags: dict[str, set[str]] = {}
    for rs in replicasets:
        if not owned_by(rs, rollout) or int(_d(rs.get("spec")).get("replicas") or 0) == 0:
            continue
        h = _d(_d(rs.get("metadata")).get("labels")).get(HASH_LABEL)
        tag = "stable" if h == status.get("stableRS") else ("canary" if h == status.get("currentPodHash") else "")
        for c in _d(_d(_d(rs.get("spec")).get("template")).get("spec")).get("containers") or []:
            tags.setdefault(str(_d(c).get("image")), set()).update({tag} if tag else set())
    return [f"{image} ({', '.join(sorted(t, key=lambda x: x != 'canary'))})" if t else image
            for image, t in sorted(tags.items())]


def rollout_view(rollout: Mapping[str, Any], replicasets: Sequence[Mapping[str, Any]],
                 pods: Sequence[Mapping[str, Any]], runs: Sequence[Mapping[str, Any]], now: datetime) -> list[str]:
    """The whole `get rollout` output: header, a blank line, the tree."""
    return [*header_lines(rollout, replicasets), "", *tree_lines(rollout, replicasets, pods, runs, now)]
