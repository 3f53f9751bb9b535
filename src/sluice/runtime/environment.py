"""The environment of a container process: mesh variables, the image's, then the container's `env`.

Called by the pod worker (`sluice.runtime.pod`) before each start. Resolves `value` (with `$(VAR)`
references), `valueFrom.fieldRef` (the downward API fields kubelet supports) and `valueFrom.configMapKeyRef`;
anything else is an `ImageError("CreateContainerConfigError")`, shown in the container's waiting state.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

from sluice import mesh
from sluice.runtime.images import ImageError, Program

__all__ = ["container_env", "expand", "HOST_ENV"]

# Passed through from the daemon so programs find their interpreter and libraries like a shell would.
HOST_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV")
_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.\-]*)\)")
_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['([^']+)'\]$")

ConfigMapLookup = Callable[[str, str], dict[str, Any] | None]  # (namespace, name) -> ConfigMap or None


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: defined names are replaced, `$$` escapes, anything else stays."""
    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env.get(name, m.group(0))
    return _REF.sub(sub, text)


def _field(pod: dict[str, Any], path: str, pod_ip: str, host_ip: str) -> str:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    simple = {
        "metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"), "spec.nodeName": spec.get("nodeName") or "sluice",
        "spec.serviceAccountName": spec.get("serviceAccountName") or "default",
        "status.podIP": pod_ip, "status.podIPs": pod_ip, "status.hostIP": host_ip, "status.hostIPs": host_ip,
    }
    if path in simple:
        return str(simple[path] or "")
    m = _SUBSCRIPT.match(path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    raise ImageError("CreateContainerConfigError", f'unsupported fieldRef fieldPath "{path}"')


def _value_from(pod: dict[str, Any], src: dict[str, Any], name: str, pod_ip: str, host_ip: str,
                configmaps: ConfigMapLookup) -> str | None:
    if isinstance(src.get("fieldRef"), dict):
        return _field(pod, str(src["fieldRef"].get("fieldPath") or ""), pod_ip, host_ip)
    ref = src.get("configMapKeyRef")
    if isinstance(ref, dict):
        ns = str((pod.get("metadata") or {}).get("namespace") or "default")
        cm = configmaps(ns, str(ref.get("name") or ""))
        value = ((cm or {}).get("data") or {}).get(str(ref.get("key") or ""))
        if value is None:
            if ref.get("optional"):
                return None
            what = f'configmap "{ref.get("name")}"' if cm is None else \
                f'couldn\'t find key {ref.get("key")} in ConfigMap {ns}/{ref.get("name")}'
            raise ImageError("CreateContainerConfigError", what + (" not found" if cm is None else ""))
        return str(value)
    raise ImageError("CreateContainerConfigError",
                     f'env "{name}": only value, valueFrom.fieldRef and valueFrom.configMapKeyRef are supported')


def container_env(pod: dict[str, Any], container: dict[str, Any], program: Program, *, pod_ip: str,
                  host_ip: str, has_sidecar: bool, configmaps: ConfigMapLookup,
                  transparent: bool = False) -> dict[str, str]:
    """`transparent`: netns mode, where the pod has its own network and the sidecar captures traffic, so
    the app gets no proxy variables and may bind any address."""
    meta = pod.get("metadata") or {}
    env = {k: os.environ[k] for k in HOST_ENV if k in os.environ}
    env.update({"HOSTNAME": str(meta.get("name") or ""), "POD_NAME": str(meta.get("name") or ""),
                "POD_NAMESPACE": str(meta.get("namespace") or ""), "POD_IP": pod_ip})
    if program.builtin != "proxy" and transparent:
        env["SLUICE_BIND"] = "0.0.0.0"  # the built-in samples' listen address; any address works here
    elif program.builtin != "proxy":
        app = mesh.app_ip(pod_ip) if has_sidecar else pod_ip
        env["SLUICE_BIND"] = app
        if has_sidecar:
            proxy = f"http://{pod_ip}:{mesh.PROXY_OUTBOUND_PORT}"
            no_proxy = f"localhost,127.0.0.1,{app}"
            env.update({"HTTP_PROXY": proxy, "http_proxy": proxy, "NO_PROXY": no_proxy, "no_proxy": no_proxy})
    env.update(program.env)
    for var in container.get("env") or []:
        if not isinstance(var, dict) or not var.get("name"):
            continue
        name = str(var["name"])
        if isinstance(var.get("valueFrom"), dict):
            value = _value_from(pod, var["valueFrom"], name, pod_ip, host_ip, configmaps)
            if value is not None:
                env[name] = value
        else:
            env[name] = expand(str(var.get("value") or ""), env)
    return env
