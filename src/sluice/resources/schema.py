"""OpenAPI v3 schemas of every served kind, loaded from the YAML files in `schemas/`.

Each kind has one data file (`schemas/<kind>.yaml`) holding its top-level fields besides
`apiVersion`, `kind` and `metadata`; shared pieces live in `schemas/common.yaml` (core types,
ObjectMeta, PodSpec) and `schemas/istio_common.yaml` (networking.istio.io types). A node written as
`{$ref: Name}` is replaced by that definition (keys beside the `$ref`, such as a more specific
`description`, win), so the schemas returned here are self-contained trees without references.

Callers: the API server's write path (`sluice.validation.structural.check(schema_for(...), obj)`),
the OpenAPI documents (`sluice.api.openapi`) and anything that explains fields. The returned dicts
are cached and shared: treat them as read-only.
"""

from __future__ import annotations

import copy
import functools
from importlib import resources
from typing import Any

import yaml

from sluice.resources.kinds import ARGO_GROUP, ISTIO_GROUP, KINDS

__all__ = ["schema_for", "definition_name", "field_schema", "schema_kinds", "SchemaNotFound"]

Schema = dict[str, Any]


class SchemaNotFound(KeyError):
    """No schema file exists for the requested group and kind."""


_OBJECT_TOP = {
    "apiVersion": {
        "type": "string",
        "description": "The versioned schema of this object, e.g. v1, apps/v1 or networking.istio.io/v1.",
    },
    "kind": {
        "type": "string",
        "description": "The type of this object, in CamelCase, e.g. Deployment or VirtualService.",
    },
}
_OPEN_STATUS: Schema = {
    "type": "object",
    "description": "Observed state, written by the system.",
    "x-kubernetes-preserve-unknown-fields": True,
}


@functools.cache
def _load(name: str) -> dict[str, Any]:
    text = resources.files("sluice.resources").joinpath("schemas", name).read_text(encoding="utf-8")
    data = yaml.load(text, Loader=yaml.CSafeLoader)  # libyaml: ≈ 10× faster; these load at every start
    if not isinstance(data, dict):
        raise ValueError(f"schema file {name} is not a mapping")
    return data


def _file_for(kind: str) -> str:
    return f"{kind.lower()}.yaml"


def _resolve(node: Any, defs: dict[str, Any], stack: tuple[str, ...] = ()) -> Any:
    """Return a copy of `node` with every `$ref: Name` replaced by its (resolved) definition."""
    if isinstance(node, list):
        return [_resolve(n, defs, stack) for n in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str):
        if ref in stack:
            raise ValueError(f"recursive schema reference {' -> '.join((*stack, ref))}")
        if ref not in defs:
            raise ValueError(f"unknown schema reference {ref!r}")
        base = _resolve(defs[ref], defs, (*stack, ref))
        overrides = {k: _resolve(v, defs, stack) for k, v in node.items() if k != "$ref"}
        return {**base, **overrides}
    return {k: _resolve(v, defs, stack) for k, v in node.items()}


@functools.cache
def _built(group: str, kind: str) -> Schema:
    if not any(k.group == group and k.kind == kind for k in KINDS):
        raise SchemaNotFound(f"no served kind {kind!r} in group {group!r}")
    try:
        doc = _load(_file_for(kind))
    except FileNotFoundError as e:
        raise SchemaNotFound(f"no schema file for {kind}") from e
    defs: dict[str, Any] = dict(_load("common.yaml")["definitions"])
    if group == ISTIO_GROUP:
        defs.update(_load("istio_common.yaml")["definitions"])
    if group == ARGO_GROUP:
        defs.update(_load("argo_common.yaml")["definitions"])
    defs.update(doc.get("definitions") or {})
    props: dict[str, Any] = copy.deepcopy(_OBJECT_TOP)
    props["metadata"] = {**_resolve({"$ref": "ObjectMeta"}, defs),
                         "description": "Standard object metadata: name, namespace, labels, annotations, ..."}
    for name, sub in (doc.get("properties") or {}).items():
        props[name] = _resolve(sub, defs)
    props.setdefault("status", copy.deepcopy(_OPEN_STATUS))
    out: Schema = {"type": "object", "description": doc.get("description", kind), "properties": props}
    return out


def schema_for(group: str, kind: str) -> Schema:
    """The full-object OpenAPI v3 schema of `kind` in `group` ("" for core), shared by every served
    version. Raises `SchemaNotFound` for kinds that are not served. Cached; do not mutate."""
    return _built(group, kind)


def schema_kinds() -> list[tuple[str, str]]:
    """(group, kind) of every served kind, in the order of `kinds.KINDS`."""
    return [(k.group, k.kind) for k in KINDS]


def definition_name(group: str, version: str, kind: str) -> str:
    """The Kubernetes-style OpenAPI definition name: `io.k8s.api.core.v1.Pod`,
    `io.k8s.api.apps.v1.Deployment`, `io.istio.networking.v1beta1.VirtualService`."""
    if "." in group:  # a CRD group: its name reversed, as kube-apiserver publishes CRD schemas
        return f"{'.'.join(reversed(group.split('.')))}.{version}.{kind}"
    return f"io.k8s.api.{group or 'core'}.{version}.{kind}"


def field_schema(schema: Schema, path: str) -> Schema | None:
    """The sub-schema at a dotted field path (`spec.http.route`), stepping through array items the way
    `kubectl explain` does; None when the path leaves the schema."""
    node: Schema | None = schema
    for part in [p for p in path.split(".") if p]:
        while node is not None and node.get("type") == "array":
            node = node.get("items")
        if node is None:
            return None
        props = node.get("properties") or {}
        nxt = props.get(part)
        if not isinstance(nxt, dict):
            return None
        node = nxt
    return node
