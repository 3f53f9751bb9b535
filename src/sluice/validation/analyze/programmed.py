"""SLU0001 (FieldNotProgrammed): Istio config that Sluice stores but does not program into Envoy yet.

Istio has no such message (it programs every field it accepts), so the code is Sluice's own; Istio's IST
codes keep their meaning. The fields come from `sluice.validation.istio.programmed`, the same table the API
server's write warnings come from. Run by `analyze` for `sluice analyze`.
"""

from __future__ import annotations

from sluice import meshconfig
from sluice.resources import proxyconfig
from sluice.validation import pod_acted
from sluice.validation.analyze.index import Obj
from sluice.validation.analyze.message import Message
from sluice.validation.istio.programmed import unprogrammed

__all__ = ["not_programmed_messages", "mesh_config_messages", "proxy_config_messages", "pod_field_messages",
           "NOT_PROGRAMMED"]

NOT_PROGRAMMED = "SLU0001"


def not_programmed_messages(obj: Obj) -> list[Message]:
    return [Message(NOT_PROGRAMMED, "Warning", obj.kind, obj.namespace, obj.name, f"Field not programmed: {u.what}.")
            for u in unprogrammed(obj.kind, obj.raw)]


def mesh_config_messages(obj: Obj) -> list[Message]:
    """The mesh settings in ConfigMap `istio-system/istio` that Sluice stores but does not act on."""
    if not meshconfig.is_mesh_configmap({**obj.raw, "kind": obj.kind}):
        return []
    data = obj.raw.get("data") or {}
    text = data.get("mesh") if isinstance(data, dict) else None
    if not isinstance(text, str):
        return []
    return [Message(NOT_PROGRAMMED, "Warning", obj.kind, obj.namespace, obj.name,
                    f"Field not programmed: {meshconfig.unapplied_what(path)}.") for path in meshconfig.unapplied(text)]


def proxy_config_messages(obj: Obj) -> list[Message]:
    """The ProxyConfig fields of a pod's `proxy.istio.io/config` that Sluice stores but does not act on."""
    annotations = (obj.raw.get("metadata") or {}).get("annotations") or {}
    return [Message(NOT_PROGRAMMED, "Warning", obj.kind, obj.namespace, obj.name,
                    f"Field not programmed: {path} {proxyconfig.UNAPPLIED}.")
            for path in proxyconfig.unapplied(annotations)]


def pod_field_messages(obj: Obj) -> list[Message]:
    """The pod spec fields Sluice's runtime stores but does not act on: of a Deployment's template, and of a Pod
    no controller owns (a controller's pods carry their template's fields: said once, for the Deployment)."""
    if obj.kind == "Pod" and (obj.raw.get("metadata") or {}).get("ownerReferences"):
        return []
    return [Message(NOT_PROGRAMMED, "Warning", obj.kind, obj.namespace, obj.name,
                    f"Field not programmed: {pod_acted.what(paths, why)}.")
            for paths, why in pod_acted.unapplied(obj.kind, obj.raw)]
