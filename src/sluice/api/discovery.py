"""Legacy discovery documents (`/api`, `/apis`, `/api/v1`, `/apis/<g>/<v>`) and `/version`.

Served as plain `application/json`: kubectl then parses them as legacy discovery (A1.1 of the reference),
which every kubectl from 1.20 on understands.
"""

from __future__ import annotations

from typing import Any

from sluice import __version__
from sluice.resources.kinds import KINDS, ResourceType

__all__ = ["version_info", "api_versions", "api_group_list", "resource_list", "group_versions"]

KUBE_MAJOR, KUBE_MINOR = "1", "35"


def version_info() -> dict[str, str]:
    return {
        "major": KUBE_MAJOR, "minor": KUBE_MINOR, "gitVersion": f"v{KUBE_MAJOR}.{KUBE_MINOR}.0-sluice.{__version__}",
        "gitCommit": "sluice", "gitTreeState": "clean", "buildDate": "2026-11-28T00:00:00Z",
        "goVersion": "python", "compiler": "sluice", "platform": "linux/amd64",
    }


def group_versions() -> dict[str, list[str]]:
    """Group → served versions, preferred first, in discovery order (core group under "")."""
    out: dict[str, list[str]] = {}
    for k in KINDS:
        vs = out.setdefault(k.group, [])
        for v in k.versions:
            if v not in vs:
                vs.append(v)
    return out


def api_versions(server_address: str) -> dict[str, Any]:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]}


def api_group_list() -> dict[str, Any]:
    groups = []
    for g, versions in group_versions().items():
        if not g:
            continue
        gvs = [{"groupVersion": f"{g}/{v}", "version": v} for v in versions]
        groups.append({"name": g, "versions": gvs, "preferredVersion": gvs[0]})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(group: str) -> dict[str, Any] | None:
    for g in api_group_list()["groups"]:
        if g["name"] == group:
            return {"kind": "APIGroup", "apiVersion": "v1", **g}
    return None


def _resource(k: ResourceType) -> list[dict[str, Any]]:
    main: dict[str, Any] = {"name": k.plural, "singularName": k.singular, "namespaced": k.namespaced,
                            "kind": k.kind, "verbs": list(k.verbs)}
    if k.short_names:
        main["shortNames"] = list(k.short_names)
    if k.categories:
        main["categories"] = list(k.categories)
    out = [main]
    for sub in k.subresources:
        if sub == "status":
            out.append({"name": f"{k.plural}/status", "singularName": "", "namespaced": k.namespaced,
                        "kind": k.kind, "verbs": ["get", "patch", "update"]})
        elif sub == "scale":
            out.append({"name": f"{k.plural}/scale", "singularName": "", "namespaced": k.namespaced,
                        "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]})
        elif sub == "log":
            out.append({"name": f"{k.plural}/log", "singularName": "", "namespaced": k.namespaced,
                        "kind": k.kind, "verbs": ["get"]})
        elif sub in ("exec", "attach", "portforward"):
            kind = {"exec": "PodExecOptions", "attach": "PodAttachOptions", "portforward": "PodPortForwardOptions"}
            out.append({"name": f"{k.plural}/{sub}", "singularName": "", "namespaced": k.namespaced,
                        "kind": kind[sub], "verbs": ["create", "get"]})
    return out


def resource_list(group: str, version: str) -> dict[str, Any] | None:
    kinds = [k for k in KINDS if k.group == group and version in k.versions]
    if not kinds:
        return None
    resources = [r for k in kinds for r in _resource(k)]
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}
