"""Sidecar injection at admission, as Istio's webhook does: every new Pod gets an `istio-proxy` container.

Called by the API registry when a Pod is created, so the stored Pod already lists the sidecar (kubectl's
`-c istio-proxy` checks the container name against the spec, and `get pods` shows READY 2/2). The runtime
recognises the container by name and image and runs the real Envoy for it.
"""

from __future__ import annotations

import json

from sluice import mesh
from sluice.objects import Obj

__all__ = ["inject_sidecar", "wants_sidecar"]

_FALSE = ("false", "no", "n", "0", "off")


def wants_sidecar(pod: Obj) -> bool:
    meta = pod.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    labels = meta.get("labels") or {}
    value = str(annotations.get(mesh.INJECT_ANNOTATION, labels.get(mesh.INJECT_ANNOTATION, "true"))).lower()
    if value in _FALSE:
        return False
    containers = (pod.get("spec") or {}).get("containers") or []
    return not any(isinstance(c, dict) and c.get("name") == mesh.SIDECAR_CONTAINER for c in containers)


def inject_sidecar(pod: Obj) -> None:
    """Adds the sidecar container and Istio's injection labels and annotations, in place."""
    if not wants_sidecar(pod):
        return
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
    containers.append({
        "name": mesh.SIDECAR_CONTAINER,
        "image": mesh.PROXY_IMAGE,
        "args": ["proxy", "sidecar", "--domain", "$(POD_NAMESPACE).svc.cluster.local"],
        "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
                {"name": "POD_NAMESPACE",
                 "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}},
                {"name": "INSTANCE_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}}],
        "imagePullPolicy": "IfNotPresent",
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "resources": {},
    })
