"""The fields of a pod spec that Sluice stores but does not act on: the admission warnings for Pods and the pod
templates of the workload kinds, and `sluice analyze`'s messages, as `argo_acted` is for Argo's kinds and
`istio/programmed` for Istio's.

Sluice's kubelet runs a pod's containers as local processes on its one node: each pod gets its own network
namespace (in netns mode), its DNS files and hostname, its environment, probes, hooks, restarts and logs, but
no file system, user, cgroup or scheduler of its own. The fields below are those that would change what a
workload does on Kubernetes; each is named once it holds something other than its default, grouped by what
Sluice leaves out. Fields with no effect without an image registry or other nodes (`imagePullPolicy`,
`imagePullSecrets`, tolerations, priorities) are not named. Pure.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["POD_TEMPLATES", "unapplied", "warnings", "what"]

_FILES = "Sluice runs containers on the host's file system, so volumes are not mounted"
_USER = "containers run as Sluice's own user and with its privileges"
_RESOURCES = "Sluice neither reserves nor limits CPU and memory"
_SCHEDULING = "Sluice runs every pod on its one node, without a scheduler"
_HOST = "each pod has its own network namespace; processes and IPC are the host's, and host ports are not mapped"
_OTHER = "Sluice does not act on this field yet"

# Pod spec fields (top level): the reason each is not applied, and the value Sluice behaves as (the API server's
# default, on every pod: named only with another value; None: named whenever set).
_POD_FIELDS: dict[str, tuple[str, Any]] = {
    "volumes": (_FILES, None), "securityContext": (_USER, None), "hostUsers": (_USER, None),
    "resources": (_RESOURCES, None), "overhead": (_RESOURCES, None), "resourceClaims": (_RESOURCES, None),
    "nodeSelector": (_SCHEDULING, None), "affinity": (_SCHEDULING, None),
    "topologySpreadConstraints": (_SCHEDULING, None), "schedulingGates": (_SCHEDULING, None),
    "runtimeClassName": (_SCHEDULING, None), "schedulerName": (_SCHEDULING, "default-scheduler"),
    "hostNetwork": (_HOST, None), "hostPID": (_HOST, None), "hostIPC": (_HOST, None),
    "shareProcessNamespace": (_HOST, None), "activeDeadlineSeconds": (_OTHER, None),
    "ephemeralContainers": (_OTHER, None), "hostnameOverride": (_OTHER, None),
    "automountServiceAccountToken": ("no service account token is mounted", None),
}
# A container's fields, the same way.
_CONTAINER_FIELDS: dict[str, tuple[str, Any]] = {
    "volumeMounts": (_FILES, None), "volumeDevices": (_FILES, None), "securityContext": (_USER, None),
    "resources": (_RESOURCES, None), "resizePolicy": (_RESOURCES, None),
    "terminationMessagePath": ("the termination message is not read from a file", "/dev/termination-log"),
    "terminationMessagePolicy": ("the termination message is not read from a file or the log", "File"),
}

# Where each workload kind keeps its pod template.
POD_TEMPLATES: dict[str, tuple[str, ...]] = {
    "Pod": (), "Deployment": ("spec", "template"), "ReplicaSet": ("spec", "template"),
    "Rollout": ("spec", "template"),
}


def _set(value: Any) -> bool:
    return value not in (None, False, 0, "", [], {})


def _named(obj: Mapping[str, Any], table: dict[str, tuple[str, Any]], at: str) -> Iterator[tuple[str, str]]:
    for key, (why, default) in table.items():
        value = obj.get(key)
        if _set(value) and value != default:
            yield at + key, why


def _fields(spec: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(path under the pod spec, reason) of each field set that Sluice does not act on."""
    yield from _named(spec, _POD_FIELDS, "")
    for group in ("initContainers", "containers"):
        items = spec.get(group)
        for i, c in enumerate(items if isinstance(items, list) else []):
            if not isinstance(c, Mapping):
                continue
            yield from _named(c, _CONTAINER_FIELDS, f"{group}[{i}].")
            lifecycle = c.get("lifecycle")
            if isinstance(lifecycle, Mapping) and _set(lifecycle.get("stopSignal")):
                yield f"{group}[{i}].lifecycle.stopSignal", "containers are stopped with SIGTERM"
            ports = c.get("ports")
            for j, p in enumerate(ports if isinstance(ports, list) else []):
                if isinstance(p, Mapping) and _set(p.get("hostPort")):
                    yield f"{group}[{i}].ports[{j}].hostPort", _HOST


def unapplied(kind: str, obj: Mapping[str, Any]) -> list[tuple[list[str], str]]:
    """The stored-but-not-applied fields of `obj`'s pod spec (a Pod's, a workload's template's), as full paths
    grouped by reason, in the order first met; empty for other kinds."""
    where = POD_TEMPLATES.get(kind)
    if where is None:
        return []
    node: Any = obj
    for key in where:
        node = node.get(key) if isinstance(node, Mapping) else None
    spec = node.get("spec") if isinstance(node, Mapping) else None
    if not isinstance(spec, Mapping):
        return []
    prefix = ".".join((*where, "spec"))
    groups: dict[str, list[str]] = {}
    for path, why in _fields(spec):
        groups.setdefault(why, []).append(f"{prefix}.{path}")
    return [(paths, why) for why, paths in groups.items()]


def warnings(kind: str, obj: Mapping[str, Any]) -> list[str]:
    """One write warning per reason: `Deployment "web": spec.template.spec.volumes, … are stored but not applied:
    …` (kubectl prints a file's warnings without saying which object each is about)."""
    name = str((obj.get("metadata") or {}).get("name") or "")
    return [f'{kind} "{name}": {what(paths, why)}' for paths, why in unapplied(kind, obj)]


def what(paths: list[str], why: str) -> str:
    return f"{', '.join(paths)} {'is' if len(paths) == 1 else 'are'} stored but not applied: {why}"
