"""The Istio config list's validation status, as the console shows it (pure: objects in, summaries out).

Role: `validations` runs the write-time validator (`sluice.validation.istio`) and the analyzers
(`sluice.validation.analyze`, the same as `sluice analyze`) over the stored objects and gives each Istio
config object Kiali's validation summary (`status`, `valid`, `errors`, `warnings`, `checks`).
`config_item` is one row of the config list.

Callers: `sluice.console.api` (namespaces overview, config list and detail).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sluice.validation.analyze import analyze
from sluice.validation.istio import validate

__all__ = ["ISTIO_CONFIG_KINDS", "ANALYZE_KINDS", "EMPTY_VALIDATION", "ConfigKey", "key_of", "validations",
           "config_item"]

ISTIO_CONFIG_KINDS: tuple[str, ...] = ("VirtualService", "DestinationRule", "Gateway", "ServiceEntry", "Sidecar")
# Objects the analyzers need to resolve references (hosts, subsets, gateways), as (group, kind).
ANALYZE_KINDS: tuple[tuple[str, str], ...] = (
    ("", "Service"), ("", "Pod"), ("apps", "Deployment"), ("", "Namespace"),
    *(("networking.istio.io", k) for k in ISTIO_CONFIG_KINDS),
)
EMPTY_VALIDATION: Mapping[str, Any] = {"checks": [], "errors": 0, "warnings": 0, "valid": True, "status": "Valid"}

ConfigKey = tuple[str, str, str]  # (kind, namespace, name)

_LEVEL = {"Error": "error", "Warning": "warning", "Info": "info"}


def key_of(obj: Mapping[str, Any]) -> ConfigKey:
    """(kind, namespace, name) of a stored object."""
    meta = obj.get("metadata") or {}
    return str(obj.get("kind")), str(meta.get("namespace") or ""), str(meta.get("name"))


def validations(everything: Sequence[dict[str, Any]], ns: str | None
                ) -> tuple[list[dict[str, Any]], dict[ConfigKey, dict[str, Any]]]:
    """The Istio config objects (in `ns`, or all) among `everything`, and their validation by key."""
    configs = [o for o in everything if o.get("kind") in ISTIO_CONFIG_KINDS
               and (ns is None or (o.get("metadata") or {}).get("namespace") == ns)]
    result: dict[ConfigKey, dict[str, Any]] = {}
    for obj in configs:
        key = key_of(obj)
        v = validate(key[0], obj)
        checks: list[dict[str, Any]] = [
            {"code": "IST0106", "severity": "error", "message": e.message, "path": e.field} for e in v.errors]
        checks.extend({"code": "IST0133", "severity": "warning", "message": w, "path": ""} for w in v.warnings)
        result[key] = {"checks": checks}
    for m in analyze(list(everything), namespaces={ns} if ns is not None else None):
        if m.code in ("IST0106", "IST0133"):  # the validator's own findings, already listed with paths
            continue
        entry = result.get((m.kind, m.namespace, m.name))
        if entry is not None:
            entry["checks"].append({"code": m.code, "severity": _LEVEL.get(m.level, "info"), "message": m.text,
                                    "path": ""})
    for entry in result.values():
        checks = entry["checks"]
        entry["errors"] = sum(1 for c in checks if c["severity"] == "error")
        entry["warnings"] = sum(1 for c in checks if c["severity"] == "warning")
        entry["valid"] = entry["errors"] == 0
        entry["status"] = "NotValid" if entry["errors"] else ("Warning" if entry["warnings"] else "Valid")
    return configs, result


def config_item(obj: Mapping[str, Any], validation: Mapping[str, Any]) -> dict[str, Any]:
    """One row of the Istio config list."""
    meta = obj.get("metadata") or {}
    return {"kind": obj.get("kind"), "apiVersion": obj.get("apiVersion"), "name": meta.get("name"),
            "namespace": meta.get("namespace"), "resourceVersion": meta.get("resourceVersion"),
            "createdAt": meta.get("creationTimestamp"), "labels": meta.get("labels") or {},
            "validation": dict(validation)}
