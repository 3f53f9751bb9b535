"""Sidecar injection at admission, as Istio's webhook does: every new Pod gets an `istio-proxy` container, unless
the pod says `sidecar.istio.io/inject: "false"` or its namespace is labelled `istio-injection=disabled` (which no
pod overrides, as neither of Istio's webhooks selects such a namespace). Sluice injects the namespaces Istio
would leave alone for want of an `istio-injection=enabled` label: a local mesh is for meshed workloads.

Called by the API registry when a Pod is created, so the stored Pod already lists the sidecar (kubectl's
`-c istio-proxy` checks the container name against the spec, and `get pods` shows READY 2/2). The runtime
recognises the container by name and image and runs the real Envoy for it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sluice import mesh
from sluice.meshconfig import MeshConfig
from sluice.objects import Obj
from sluice.resources import appprobes, proxyconfig
from sluice.resources.proxyconfig import PROXY_CONFIG, proxy_config

__all__ = ["InjectionError", "NAMESPACE_LABEL", "WEBHOOK", "inject_sidecar", "status_probes", "wants_sidecar"]

_FALSE = ("false", "no", "n", "0", "off")
WEBHOOK = "namespace.sidecar-injector.istio.io"  # the name kube-apiserver quotes when the injector refuses
_READINESS = "readiness.status.sidecar.istio.io/"
# The injection template's defaults (values.global.proxy): readinessInitialDelaySeconds, readinessPeriodSeconds,
# readinessFailureThreshold, each overridden by its annotation; startupProbe.failureThreshold.
_READINESS_DEFAULTS = {"initialDelaySeconds": 0, "periodSeconds": 15, "failureThreshold": 4}
_STARTUP_FAILURE_THRESHOLD = 600


class InjectionError(ValueError):
    """Annotations Istio's injector refuses (`pkg/kube/inject/validate.go`); the message is its text."""


def _parse_uint(value: str, bits: int) -> str | None:
    """Go's strconv.ParseUint(value, 10, bits) error text, or None when it parses."""
    if not value or not value.isascii() or not value.isdigit():
        return f'strconv.ParseUint: parsing "{value}": invalid syntax'
    if int(value) > 2**bits - 1:
        return f'strconv.ParseUint: parsing "{value}": value out of range'
    return None


def _annotation_errors(annotations: dict[str, Any]) -> list[str]:
    errors = []
    for name in sorted(annotations):
        value = str(annotations[name])
        if name.startswith(_READINESS) and name[len(_READINESS):] in _READINESS_DEFAULTS:
            why = _parse_uint(value, 32)
        elif name == mesh.STATUS_PORT_ANNOTATION:
            why = _parse_uint(value.strip(), 16)
            why = why and f"excludeInboundPorts invalid: failed parsing port '{value}': {why}"
        elif name == PROXY_CONFIG:
            try:
                proxy_config({name: value})
                why = None
            except ValueError as e:
                why = f"failed to convert to apply proxy config: {e}"
        else:
            continue
        if why:
            errors.append(f"invalid value '{value}' for annotation '{name}': {why}")
    return errors


def _multierror(errors: list[str]) -> str:
    """hashicorp/go-multierror's text, as the injector returns it."""
    if len(errors) == 1:
        return f"1 error occurred:\n\t* {errors[0]}\n\n"
    points = "\n\t".join(f"* {e}" for e in errors)
    return f"{len(errors)} errors occurred:\n\t{points}\n\n"


def status_probes(annotations: dict[str, Any]) -> dict[str, Any]:
    """The injected proxy's startup and readiness probes on its status port (15021 `/healthz/ready`), as
    Istio's injection template writes them; none when `status.sidecar.istio.io/port` is "0"."""
    if str(annotations.get(mesh.STATUS_PORT_ANNOTATION, "")).strip() == "0":
        return {}
    get = {"httpGet": {"path": "/healthz/ready", "port": mesh.PROXY_HEALTH_PORT}}
    readiness = {k: int(str(annotations.get(_READINESS + k, default)))
                 for k, default in _READINESS_DEFAULTS.items()}
    return {"startupProbe": {**get, "initialDelaySeconds": 0, "periodSeconds": 1, "timeoutSeconds": 3,
                             "failureThreshold": _STARTUP_FAILURE_THRESHOLD},
            "readinessProbe": {**get, "initialDelaySeconds": readiness["initialDelaySeconds"],
                               "periodSeconds": readiness["periodSeconds"], "timeoutSeconds": 3,
                               "failureThreshold": readiness["failureThreshold"]}}


NAMESPACE_LABEL = "istio-injection"


def wants_sidecar(pod: Obj, namespace_labels: Mapping[str, str] | None = None) -> bool:
    if (namespace_labels or {}).get(NAMESPACE_LABEL) == "disabled":
        return False
    meta = pod.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    labels = meta.get("labels") or {}
    value = str(annotations.get(mesh.INJECT_ANNOTATION, labels.get(mesh.INJECT_ANNOTATION, "true"))).lower()
    if value in _FALSE:
        return False
    containers = (pod.get("spec") or {}).get("containers") or []
    return not any(isinstance(c, dict) and c.get("name") == mesh.SIDECAR_CONTAINER for c in containers)


def inject_sidecar(pod: Obj, mesh_config: MeshConfig | None = None,
                   namespace_labels: Mapping[str, str] | None = None) -> None:
    """Adds the sidecar container and Istio's injection labels and annotations, in place, under `mesh_config`
    (the mesh's `defaultConfig`; Sluice's defaults without one), unless the pod or its namespace (`namespace_labels`)
    opts out. Raises InjectionError, changing nothing, for the annotations Istio's injector refuses."""
    if not wants_sidecar(pod, namespace_labels):
        return
    errors = _annotation_errors((pod.get("metadata") or {}).get("annotations") or {})
    if errors:
        raise InjectionError(_multierror(errors))
    meta = pod.setdefault("metadata", {})
    spec = pod.setdefault("spec", {})
    containers = spec.setdefault("containers", [])
    app_names = [c.get("name") for c in containers if isinstance(c, dict)]
    labels = meta.setdefault("labels", {})
    # Istio's injector sets the canonical service labels the metrics are keyed on.
    labels.setdefault("security.istio.io/tlsMode", "istio")
    labels.setdefault("service.istio.io/canonical-name",
                      labels.get("app.kubernetes.io/name") or labels.get("app") or str(meta.get("generateName") or
                                                                                      meta.get("name") or "").rstrip("-"))
    labels.setdefault("service.istio.io/canonical-revision",
                      labels.get("app.kubernetes.io/version") or labels.get("version") or "latest")
    annotations = meta.setdefault("annotations", {})
    if app_names:
        annotations.setdefault("kubectl.kubernetes.io/default-container", str(app_names[0]))
        annotations.setdefault("kubectl.kubernetes.io/default-logs-container", str(app_names[0]))
    annotations["sidecar.istio.io/status"] = json.dumps(
        {"containers": [mesh.SIDECAR_CONTAINER], "initContainers": None, "volumes": None,
         "imagePullSecrets": None, "revision": "default"}, separators=(",", ":"))
    sidecar: dict[str, Any] = {
        "name": mesh.SIDECAR_CONTAINER,
        "image": mesh.PROXY_IMAGE,
        "args": ["proxy", "sidecar", "--domain", "$(POD_NAMESPACE).svc.cluster.local"],
        "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
                {"name": "POD_NAMESPACE",
                 "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}},
                {"name": "INSTANCE_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}}],
        "imagePullPolicy": "IfNotPresent",
        # Envoy's Prometheus listener (the bootstrap's, on every sidecar), declared as Istio's injector declares it
        "ports": [{"containerPort": mesh.PROMETHEUS_PORT, "name": "http-envoy-prom", "protocol": "TCP"}],
        **status_probes(annotations),
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "resources": {},
    }
    appprobes.rewrite(pod, sidecar)  # the app containers' probes go through the agent's status port
    if proxyconfig.hold_application(annotations, (mesh_config or MeshConfig()).hold_application):
        # Istio's template and reorderPod: the proxy first, and no app starts before its postStart hook (which
        # waits for Envoy to be ready) has finished
        sidecar["lifecycle"] = {"postStart": {"exec": {"command": ["pilot-agent", "wait"]}}}
        containers.insert(0, sidecar)
    else:
        containers.append(sidecar)
