"""Istio's rewrite of an injected pod's app probes (`sidecar.istio.io/rewriteAppHTTPProbers`, on by default).

The injector (pkg/kube/inject/app_probe.go) turns every httpGet, tcpSocket and grpc probe of the app containers
into an httpGet on the agent's status port, `/app-health/<container>/{readyz,livez,startupz}` (an HTTPS scheme
becomes HTTP: the agent speaks HTTPS to the app), and hands the originals to the agent in the `istio-proxy`
container's `ISTIO_KUBE_APP_PROBERS` (JSON by path, named ports resolved to numbers). The kubelet asks the agent,
and the agent runs the original probe from inside the pod, so a probe still passes where the mesh would stand in
the kubelet's way. Lifecycle handlers (`preStop`, `postStart`) with an httpGet or tcpSocket are rewritten the same
way, to `/app-lifecycle/<container>/{prestopz,poststartz}`. Sluice has no agent on the status port: its kubelet
reads the same table (`app_prober`) and runs the original itself, from inside the pod as the agent does.

Pure: `rewrite` is called by the injector (`sluice.resources.injection`), `app_prober` by the kubelet's probes.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from sluice import mesh

__all__ = ["PROBERS_ENV", "REWRITE_ANNOTATION", "rewrite", "app_prober"]

PROBERS_ENV = "ISTIO_KUBE_APP_PROBERS"
REWRITE_ANNOTATION = "sidecar.istio.io/rewriteAppHTTPProbers"
_KINDS = (("readinessProbe", "readyz"), ("livenessProbe", "livez"), ("startupProbe", "startupz"))
_HOOKS = (("preStop", "prestopz"), ("postStart", "poststartz"))
_GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def _wanted(annotations: Mapping[str, Any]) -> bool:
    value = annotations.get(REWRITE_ANNOTATION)
    if value is None:
        return True
    value = str(value)
    return value in _GO_TRUE or value not in _GO_FALSE  # strconv.ParseBool; what it cannot read keeps the default


def _status_port(annotations: Mapping[str, Any]) -> int:
    value = str(annotations.get(mesh.STATUS_PORT_ANNOTATION, "") or "").strip()
    return int(value) if value.isdigit() else mesh.AGENT_STATUS_PORT


def _prober(probe: Any, ports: Mapping[str, int]) -> dict[str, Any] | None:
    """DumpAppProbers' entry for one probe: its action (a named port resolved) and timeout; None when the agent
    cannot run it (an exec probe, a port name the container does not declare, or already rewritten)."""
    if not isinstance(probe, dict):
        return None
    for kind in ("httpGet", "tcpSocket", "grpc"):
        action = probe.get(kind)
        if not isinstance(action, dict):
            continue
        action = copy.deepcopy(action)
        if kind != "grpc":
            port = action.get("port")
            if isinstance(port, str) and not port.isdigit():
                if port not in ports:
                    return None
                action["port"] = ports[port]
            elif str(port) == str(mesh.AGENT_STATUS_PORT):
                return None
        out: dict[str, Any] = {kind: action}
        if probe.get("timeoutSeconds"):
            out["timeoutSeconds"] = probe["timeoutSeconds"]
        return out
    return None


def _take(probe: Any, ports: Mapping[str, int], path: str, port: int, table: dict[str, dict[str, Any]]
          ) -> dict[str, Any] | None:
    """A probe or handler the agent takes over: its original in `table` at `path`, and the httpGet on the
    agent's status port that replaces it (None: it stays as it is)."""
    entry = _prober(probe, ports)
    if entry is None or not isinstance(probe, dict):
        return None
    table[path] = entry
    rewritten = {k: v for k, v in probe.items() if k not in ("httpGet", "tcpSocket", "grpc")}
    get = copy.deepcopy(probe.get("httpGet") or {})
    get.update({"path": path, "port": port})
    if get.get("scheme") == "HTTPS":
        get["scheme"] = "HTTP"
    rewritten["httpGet"] = get
    return rewritten


def rewrite(pod: dict[str, Any], sidecar: dict[str, Any]) -> None:
    """Rewrite the app containers' probes and lifecycle handlers of `pod` in place and give `sidecar` (its
    istio-proxy container, not yet in the pod's list) the `ISTIO_KUBE_APP_PROBERS` table, as Istio's injector
    does; nothing without a probe or handler to take."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    port = _status_port(annotations)
    if not _wanted(annotations) or port == 0:  # no agent status server to answer them
        return
    spec = pod.get("spec") or {}
    table: dict[str, dict[str, Any]] = {}
    for key in ("initContainers", "containers"):
        for c in spec.get(key) or []:
            if not isinstance(c, dict):
                continue
            ports = {str(p["name"]): int(p["containerPort"]) for p in c.get("ports") or []
                     if isinstance(p, dict) and p.get("name") and isinstance(p.get("containerPort"), int)}
            for field, suffix in _KINDS:
                rewritten = _take(c.get(field), ports, f"/app-health/{c.get('name')}/{suffix}", port, table)
                if rewritten is not None:
                    c[field] = rewritten
            lifecycle = c.get("lifecycle")
            for field, suffix in _HOOKS if isinstance(lifecycle, dict) else ():
                h = lifecycle.get(field) if isinstance(lifecycle, dict) else None
                if not isinstance(h, dict) or not isinstance(h.get("httpGet") or h.get("tcpSocket"), dict):
                    continue  # exec and sleep handlers run as they are
                rewritten = _take(h, ports, f"/app-lifecycle/{c.get('name')}/{suffix}", port, table)
                if rewritten is not None and isinstance(lifecycle, dict):
                    lifecycle[field] = rewritten
    if table:
        env = sidecar.setdefault("env", [])
        env.append({"name": PROBERS_ENV, "value": json.dumps(dict(sorted(table.items())), separators=(",", ":"))})


def app_prober(pod: Mapping[str, Any], probers: str, probe: Mapping[str, Any]) -> dict[str, Any] | None:
    """The original probe behind a rewritten one (`{"httpGet"|"tcpSocket"|"grpc": …, "timeoutSeconds": …}`), when
    `probe` asks the agent's status port for one of the paths in `probers` (the sidecar's `ISTIO_KUBE_APP_PROBERS`)."""
    get = probe.get("httpGet")
    if not isinstance(get, dict) or not probers:
        return None
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    if str(get.get("port")) != str(_status_port(annotations)):
        return None
    try:
        table = json.loads(probers)
    except ValueError:
        return None
    entry = table.get(str(get.get("path") or "")) if isinstance(table, dict) else None
    return entry if isinstance(entry, dict) else None
