"""The environment of a container process, built as the kubelet builds it.

Called by the pod worker (`sluice.runtime.pod`) before each start. Layers, later ones winning: the daemon's
basic variables (`HOST_ENV`), sluice's pod variables (HOSTNAME, POD_*, and in loopback mode SLUICE_BIND and
the proxy variables), the image's own environment, then what the kubelet adds (`kubelet_env`): the service
environment variables (`service_env`, the docker-link style ones of `envvars.FromServices`), `envFrom`
(configMapRef with `prefix`; secretRef), and `env` in order (`value` with `$(VAR)` references to earlier
ones and to the service variables; `valueFrom` fieldRef, resourceFieldRef, configMapKeyRef, secretKeyRef).
Sluice has no Secret kind, so a required secret reference is the kubelet's "not found". Any error is an
`ImageError("CreateContainerConfigError")`, shown in the container's waiting state.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Iterable, Mapping
from fractions import Fraction
from typing import Any

from sluice import mesh
from sluice.dns.files import sandbox_hostname
from sluice.objects import Obj
from sluice.runtime.program import ImageError, Program
from sluice.runtime.quantity import QuantityError, node_allocatable, parse_quantity, resource_value

__all__ = ["container_env", "ContainerEnv", "kubelet_env", "service_env", "expand", "HOST_ENV", "ConfigMapLookup"]

# Passed through from the daemon so programs find their interpreter and libraries like a shell would.
HOST_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV")
_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.\-]*)\)")
_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['([^']+)'\]$")
# The names the kubelet takes from `envFrom` (IsEnvVarName); others are skipped with a warning event.
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
# The service holding the API server's address: every pod gets its variables, even without service links.
MASTER_NAMESPACE, MASTER_SERVICES = "default", ("kubernetes",)

ConfigMapLookup = Callable[[str, str], Obj | None]  # (namespace, name) -> ConfigMap or None
Warn = Callable[[str, str], None]  # (reason, message): a Warning event on the pod


def _config_error(message: str) -> ImageError:
    return ImageError("CreateContainerConfigError", message)


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: defined names are replaced, `$$` escapes, anything else stays."""
    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env.get(name, m.group(0))
    return _REF.sub(sub, text)


# ---------------------------------------------------------------------------------------------- services
def _ip_set(svc: Obj) -> str:
    ip = str((svc.get("spec") or {}).get("clusterIP") or "")
    return "" if ip in ("", "None") else ip


def _env_name(name: str) -> str:
    return name.replace("-", "_").upper()


def _host_port(ip: str, port: int) -> str:
    try:
        v6 = ipaddress.ip_address(ip).version == 6
    except ValueError:
        v6 = False
    return f"[{ip}]:{port}" if v6 else f"{ip}:{port}"


def service_env(services: Iterable[Obj], namespace: str, enable_service_links: bool = True) -> dict[str, str]:
    """The variables the kubelet injects for the Services a pod in `namespace` sees (`envvars.FromServices`).

    Every Service of the pod's namespace with a ClusterIP (headless and ExternalName ones have none) when
    `enable_service_links`, and always the `kubernetes` Service of `default` unless the namespace has its own
    Service of that name."""
    chosen: dict[str, Obj] = {}
    for svc in services:
        meta = svc.get("metadata") or {}
        name, ns = str(meta.get("name") or ""), str(meta.get("namespace") or "")
        if not name or not _ip_set(svc):
            continue
        if ns == MASTER_NAMESPACE and name in MASTER_SERVICES:
            chosen.setdefault(name, svc)
        elif ns == namespace and enable_service_links:
            chosen[name] = svc
    env: dict[str, str] = {}
    for name in sorted(chosen):
        svc = chosen[name]
        ip = _ip_set(svc)
        ports = [p for p in (svc.get("spec") or {}).get("ports") or [] if isinstance(p, dict) and "port" in p]
        if not ports:
            continue
        prefix = _env_name(name)
        env[f"{prefix}_SERVICE_HOST"] = ip
        env[f"{prefix}_SERVICE_PORT"] = str(ports[0]["port"])
        for p in ports:
            if p.get("name"):
                env[f"{prefix}_SERVICE_PORT_{_env_name(str(p['name']))}"] = str(p["port"])
        for i, p in enumerate(ports):
            proto = str(p.get("protocol") or "TCP")
            url = f"{proto.lower()}://{_host_port(ip, int(p['port']))}"
            if i == 0:
                env[f"{prefix}_PORT"] = url  # docker special-cases the first port
            pp = f"{prefix}_PORT_{p['port']}_{proto.upper()}"
            env.update({pp: url, f"{pp}_PROTO": proto.lower(), f"{pp}_PORT": str(p["port"]), f"{pp}_ADDR": ip})
    return env


# ---------------------------------------------------------------------------------------------- valueFrom
def _field(pod: Obj, ref: Obj, pod_ip: str, host_ip: str) -> str:
    path = str(ref.get("fieldPath") or "")
    version = str(ref.get("apiVersion") or "v1")
    if version != "v1":
        raise _config_error(f"unsupported pod version: {version}")
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
    raise _config_error(f"field label not supported: {path}")


def _resource(pod: Obj, container: Obj, ref: Obj, allocatable: Mapping[str, Fraction]) -> str:
    target = container
    other = str(ref.get("containerName") or "")
    if other:
        found = [c for c in (pod.get("spec") or {}).get("containers") or []
                 if isinstance(c, dict) and c.get("name") == other]
        if not found:
            raise _config_error(f'container "{other}" not found in pod for resourceFieldRef')
        target = found[0]
    try:
        divisor = parse_quantity(ref["divisor"]) if ref.get("divisor") not in (None, "", 0, "0") else None
        return resource_value(target.get("resources") or {}, str(ref.get("resource") or ""), divisor,
                              allocatable)
    except QuantityError as e:
        raise _config_error(str(e)) from None


def _secret(ref: Obj) -> None:
    """Sluice stores no Secrets: a required one is missing, as the kubelet reports it."""
    if not ref.get("optional"):
        raise _config_error(f'secret "{ref.get("name")}" not found (sluice has no Secret kind: use a ConfigMap)')


def _configmap_key(pod_ns: str, ref: Obj, configmaps: ConfigMapLookup) -> str | None:
    cm = configmaps(pod_ns, str(ref.get("name") or ""))
    if cm is None:
        if ref.get("optional"):
            return None
        raise _config_error(f'configmap "{ref.get("name")}" not found')
    value = (cm.get("data") or {}).get(str(ref.get("key") or ""))
    if value is None:
        if ref.get("optional"):
            return None
        raise _config_error(f"couldn't find key {ref.get('key')} in ConfigMap {pod_ns}/{ref.get('name')}")
    return str(value)


def _value_from(pod: Obj, container: Obj, src: Obj, name: str, pod_ip: str, host_ip: str,
                configmaps: ConfigMapLookup, allocatable: Mapping[str, Fraction]) -> str | None:
    ns = str((pod.get("metadata") or {}).get("namespace") or "default")
    if isinstance(src.get("fieldRef"), dict):
        return _field(pod, src["fieldRef"], pod_ip, host_ip)
    if isinstance(src.get("resourceFieldRef"), dict):
        return _resource(pod, container, src["resourceFieldRef"], allocatable)
    if isinstance(src.get("configMapKeyRef"), dict):
        return _configmap_key(ns, src["configMapKeyRef"], configmaps)
    if isinstance(src.get("secretKeyRef"), dict):
        _secret(src["secretKeyRef"])
        return None
    raise _config_error(f'env "{name}": valueFrom needs fieldRef, resourceFieldRef, configMapKeyRef or '
                        "secretKeyRef")


def _env_from(pod_ns: str, sources: Any, configmaps: ConfigMapLookup, warn: Warn | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for src in sources if isinstance(sources, list) else []:
        if not isinstance(src, dict):
            continue
        prefix = str(src.get("prefix") or "")
        if isinstance(src.get("configMapRef"), dict):
            ref = src["configMapRef"]
            cm = configmaps(pod_ns, str(ref.get("name") or ""))
            if cm is None:
                if ref.get("optional"):
                    continue
                raise _config_error(f'configmap "{ref.get("name")}" not found')
            invalid = []
            for key, value in (cm.get("data") or {}).items():
                name = prefix + str(key)
                if _ENV_NAME.match(name) and name not in (".", "..") and not name.startswith(".."):
                    out[name] = str(value)
                else:
                    invalid.append(name)
            if invalid and warn is not None:
                warn("InvalidEnvironmentVariableNames",
                     f"Keys [{', '.join(sorted(invalid))}] from the EnvFrom configMap {pod_ns}/{ref.get('name')} were "
                     "skipped since they are considered invalid environment variable names.")
        elif isinstance(src.get("secretRef"), dict):
            _secret(src["secretRef"])
    return out


def kubelet_env(pod: Obj, container: Obj, *, pod_ip: str, host_ip: str, configmaps: ConfigMapLookup,
                services: Iterable[Obj] = (), allocatable: Mapping[str, Fraction] | None = None,
                warn: Warn | None = None) -> dict[str, str]:
    """What the kubelet puts into a container's environment (`makeEnvironmentVariables`)."""
    meta = pod.get("metadata") or {}
    ns = str(meta.get("namespace") or "default")
    links = (pod.get("spec") or {}).get("enableServiceLinks")
    svc_env = service_env(services, ns, links is not False)
    declared = _env_from(ns, container.get("envFrom"), configmaps, warn)
    alloc = allocatable if allocatable is not None else node_allocatable()
    for var in container.get("env") or []:
        if not isinstance(var, dict) or not var.get("name"):
            continue
        name = str(var["name"])
        if var.get("value") not in (None, ""):
            # `$(VAR)` sees the variables declared so far and the service variables.
            declared[name] = expand(str(var["value"]), {**svc_env, **declared})
        elif isinstance(var.get("valueFrom"), dict):
            value = _value_from(pod, container, var["valueFrom"], name, pod_ip, host_ip, configmaps, alloc)
            if value is None:
                continue  # an optional source that is missing
            declared[name] = value
        else:
            declared[name] = ""
    return {**svc_env, **declared}


class ContainerEnv(dict[str, str]):
    """A container's whole environment; `kubelet` is the part the kubelet made, which alone is what `$(VAR)`
    in `command` and `args` may refer to (not the image's or the runtime's variables)."""

    def __init__(self, env: dict[str, str], kubelet: dict[str, str]) -> None:
        super().__init__(env)
        self.kubelet = kubelet


def container_env(pod: Obj, container: Obj, program: Program, *, pod_ip: str, host_ip: str, has_sidecar: bool,
                  configmaps: ConfigMapLookup, services: Iterable[Obj] = (),
                  allocatable: Mapping[str, Fraction] | None = None, warn: Warn | None = None,
                  transparent: bool = False) -> ContainerEnv:
    """`transparent`: netns mode, where the pod has its own network and the sidecar captures traffic, so
    the app gets no proxy variables and may bind any address."""
    meta = pod.get("metadata") or {}
    env = {k: os.environ[k] for k in HOST_ENV if k in os.environ}
    try:
        hostname = sandbox_hostname(pod)  # what the runtime sets HOSTNAME to: the sandbox's hostname
    except ValueError:
        hostname = str(meta.get("name") or "")
    env.update({"HOSTNAME": hostname, "POD_NAME": str(meta.get("name") or ""),
                "POD_NAMESPACE": str(meta.get("namespace") or ""), "POD_IP": pod_ip})
    if program.builtin != "proxy" and transparent:
        env["SLUICE_BIND"] = "0.0.0.0"  # the built-in samples' listen address; any address works here
        env["SLUICE_NETWORK"] = "netns"  # e.g. lets the load generator send to Service names (contained)
    elif program.builtin != "proxy":
        app = mesh.app_ip(pod_ip) if has_sidecar else pod_ip
        env["SLUICE_BIND"] = app
        if has_sidecar:
            proxy = f"http://{pod_ip}:{mesh.PROXY_OUTBOUND_PORT}"
            no_proxy = f"localhost,127.0.0.1,{app}"
            env.update({"HTTP_PROXY": proxy, "http_proxy": proxy, "NO_PROXY": no_proxy, "no_proxy": no_proxy})
    env.update(program.env)
    kube = kubelet_env(pod, container, pod_ip=pod_ip, host_ip=host_ip, configmaps=configmaps, services=services,
                       allocatable=allocatable, warn=warn)
    env.update(kube)
    # Loopback mode's listen address is part of the pod's contract with its app (a command line names it as
    # `--bind $(SLUICE_BIND)`), so `$(VAR)` may refer to it like a variable the container declares.
    bind = {"SLUICE_BIND": env["SLUICE_BIND"]} if "SLUICE_BIND" in env else {}
    return ContainerEnv(env, {**bind, **kube})
