"""Istio's MeshConfig, the parts Sluice programs, read from the `mesh` key of ConfigMap `istio-system/istio`.

Istio keeps its mesh-wide settings there as MeshConfig YAML; istiod re-pushes every proxy when it changes.
Sluice reads `outboundTrafficPolicy.mode` (`ALLOW_ANY`, the default: unknown destinations pass through;
`REGISTRY_ONLY`: only services in the registry are reachable). `problems` reads the same text for the API
server, which returns them as warnings on the write (kubectl prints them), and the push logs them: a mesh
config that cannot be read leaves the defaults in force. Pure: called by `PushContext.build` and the API
server's admission.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["MeshConfig", "ALLOW_ANY", "REGISTRY_ONLY", "MESH_CONFIGMAP", "MESH_NAMESPACE", "parse_mesh_config",
           "mesh_config_from", "problems", "unapplied", "unapplied_what", "is_mesh_configmap"]

log = logging.getLogger(__name__)

ALLOW_ANY = "ALLOW_ANY"
REGISTRY_ONLY = "REGISTRY_ONLY"
_MODES = (REGISTRY_ONLY, ALLOW_ANY)  # the enum's order in Istio's mesh.proto
MESH_CONFIGMAP = "istio"
MESH_NAMESPACE = "istio-system"
_MAX_MESH = 1 << 20


@dataclass(frozen=True)
class MeshConfig:
    outbound_policy: str = ALLOW_ANY


def _decode(text: str) -> tuple[Any, str]:
    """The YAML document in `text` ({} for nothing), or the reason it cannot be read."""
    from sluice.kube.decoding import DecodeError, decode_yaml

    try:
        doc = decode_yaml(text, _MAX_MESH) if text.strip() else {}
    except DecodeError as e:
        return None, f"{e}"
    return ({} if doc is None else doc), ""


def parse_mesh_config(text: str) -> tuple[MeshConfig, list[str]]:
    """The MeshConfig in `text` (YAML) and what is wrong with it; on an error, the defaults."""
    doc, error = _decode(text)
    return _config_of(doc, error)


def _config_of(doc: Any, error: str) -> tuple[MeshConfig, list[str]]:
    if error:
        return MeshConfig(), [error]
    if not isinstance(doc, Mapping):
        return MeshConfig(), [f"cannot unmarshal {type(doc).__name__} into MeshConfig: expected an object"]
    policy = doc.get("outboundTrafficPolicy")
    if policy is None:
        return MeshConfig(), []
    if not isinstance(policy, Mapping):
        return MeshConfig(), ["outboundTrafficPolicy: expected an object"]
    mode: Any = policy.get("mode", ALLOW_ANY)
    if isinstance(mode, int) and not isinstance(mode, bool) and 0 <= mode < len(_MODES):
        mode = _MODES[mode]
    if mode not in _MODES:
        return MeshConfig(), [f'outboundTrafficPolicy.mode: unknown value "{mode}" for enum '
                              f'istio.mesh.v1alpha1.MeshConfig.OutboundTrafficPolicy.Mode (want one of '
                              f'{", ".join(_MODES)})']
    return MeshConfig(outbound_policy=str(mode)), []


# The MeshConfig settings Sluice acts on (the others are stored but not applied, said on write and by analyze).
_APPLIED = {"outboundTrafficPolicy": frozenset({"mode"})}
# Settings whose value here is what Sluice does anyway: every sidecar writes Istio's TEXT access log to its
# istio-proxy log (`kubectl logs -c istio-proxy`). Another value (e.g. "" to turn it off) is not applied.
_AS_SLUICE_DOES = {"accessLogFile": "/dev/stdout", "accessLogEncoding": "TEXT"}


def unapplied(text: str) -> list[str]:
    """The paths (`accessLogFile`, `outboundTrafficPolicy.egressProxy`) of the settings in mesh config `text` that
    Sluice stores but does not act on yet; empty for text that cannot be read (`parse_mesh_config` says why)."""
    return _unapplied_in(_decode(text)[0])


def _unapplied_in(doc: Any) -> list[str]:
    if not isinstance(doc, Mapping):
        return []
    out = []
    for key, value in doc.items():
        if key in _AS_SLUICE_DOES and value == _AS_SLUICE_DOES[key]:
            continue
        if key not in _APPLIED:
            out.append(str(key))
        elif isinstance(value, Mapping):
            out.extend(f"{key}.{sub}" for sub in value if sub not in _APPLIED[key])
    return out


def is_mesh_configmap(obj: Mapping[str, Any]) -> bool:
    meta = obj.get("metadata") or {}
    return (obj.get("kind") == "ConfigMap" and meta.get("name") == MESH_CONFIGMAP
            and meta.get("namespace") == MESH_NAMESPACE)


def problems(kind: str, obj: Mapping[str, Any]) -> list[str]:
    """Warnings for a write of the mesh ConfigMap whose `mesh` key cannot be read (empty for anything else)."""
    if kind != "ConfigMap" or not is_mesh_configmap({**obj, "kind": kind}):
        return []
    data = obj.get("data") or {}
    mesh = data.get("mesh") if isinstance(data, Mapping) else None
    if not isinstance(mesh, str):
        return []
    doc, error = _decode(mesh)  # once: the document may be up to the ConfigMap's size
    _, errors = _config_of(doc, error)
    return [f"ConfigMap {MESH_NAMESPACE}/{MESH_CONFIGMAP}: invalid mesh config in data.mesh, the mesh keeps its "
            f"defaults (outboundTrafficPolicy ALLOW_ANY): {e}" for e in errors] + [
        f"ConfigMap {MESH_NAMESPACE}/{MESH_CONFIGMAP} {unapplied_what(path)}" for path in _unapplied_in(doc)]


def unapplied_what(path: str) -> str:
    return f"data.mesh.{path} is stored but not applied: Sluice does not act on this mesh setting yet"


def mesh_config_from(configmaps: Iterable[Mapping[str, Any]]) -> MeshConfig:
    """The mesh config of the stored ConfigMaps (`istio-system/istio`, key `mesh`), else the defaults."""
    for cm in configmaps:
        if not is_mesh_configmap(cm):
            continue
        data = cm.get("data") or {}
        text = data.get("mesh") if isinstance(data, Mapping) else None
        if not isinstance(text, str):
            return MeshConfig()
        config, errors = parse_mesh_config(text)
        for e in errors:
            log.warning("ConfigMap %s/%s: invalid mesh config, using the defaults: %s", MESH_NAMESPACE,
                        MESH_CONFIGMAP, e)
        return config
    return MeshConfig()
