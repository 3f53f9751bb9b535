"""The OpenAPI documents kubectl reads: `/openapi/v2` (protobuf) and `/openapi/v3` (JSON).

Pure functions over `sluice.resources.kinds` and `sluice.resources.schema`; the API server serves
their output unchanged:

* `GET /openapi/v2` → `openapi_v2()` with Content-Type `OPENAPI_V2_CONTENT_TYPE`. kubectl 1.20-1.28
  need it for apply/edit/explain: definitions carry `x-kubernetes-group-version-kind`, PATCH
  operations carry the GVK and a `fieldValidation` parameter. The body is a gnostic
  `openapi.v2.Document` hand-encoded here (field numbers from google/gnostic
  `openapiv2/OpenAPIv2.proto`), so no protobuf dependency is needed.
* `GET /openapi/v3` → `openapi_v3_index()`; `GET /openapi/v3/<api/v1|apis/g/v>` →
  `openapi_v3_document(path)` with `OPENAPI_V3_CONTENT_TYPE`. kubectl ≥ 1.27 finds the PATCH
  operation for a GVK, sees `fieldValidation` and leaves unknown-field checks to the server.

Schemas in v2 are made kubectl-1.20-safe the way apiextensions does for CRDs: subtrees that keep
unknown fields and nullable fields lose their type (so the client never rejects what the server
accepts), int-or-string becomes `type: string, format: int-or-string`, numbers lose their type.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from typing import Any

import yaml

from sluice.resources.kinds import KINDS, ResourceType
from sluice.resources.schema import definition_name, schema_for

__all__ = [
    "OPENAPI_V2_CONTENT_TYPE",
    "OPENAPI_V3_CONTENT_TYPE",
    "patch_content_types",
    "openapi_v2",
    "openapi_v3_index",
    "openapi_v3_document",
    "openapi_v3_json",
    "gv_paths",
]

# Go's mime parser rejects the `@` of the official name (`…spec.v2@v1.0+protobuf`); see
# reference/kubectl_tested.md §0.2. The dotted form is accepted by every kubectl version.
OPENAPI_V2_CONTENT_TYPE = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
OPENAPI_V3_CONTENT_TYPE = "application/json"

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

_KUBE_VERSION = "v1.30.0"
_GVK = "x-kubernetes-group-version-kind"
_ACTION = "x-kubernetes-action"

Json = dict[str, Any]


def patch_content_types(kind: ResourceType) -> list[str]:
    """Patch media types the server accepts for `kind`: strategic merge only for built-in kinds."""
    types = [JSON_PATCH, MERGE_PATCH]
    if kind.builtin:
        types.append(STRATEGIC_MERGE_PATCH)
    return types


# --------------------------------------------------------------------------- group-versions

def _gv_key(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def gv_paths() -> list[str]:
    """Every served group-version as an OpenAPI v3 path key (`api/v1`, `apis/apps/v1`, ...)."""
    out: list[str] = []
    for k in KINDS:
        for v in k.versions:
            key = _gv_key(k.group, v)
            if key not in out:
                out.append(key)
    return out


def _parse_gv(path: str) -> tuple[str, str] | None:
    parts = path.strip("/").split("/")
    if len(parts) == 2 and parts[0] == "api":
        return "", parts[1]
    if len(parts) == 3 and parts[0] == "apis":
        return parts[1], parts[2]
    return None


def _kinds_in(group: str, version: str) -> list[ResourceType]:
    return [k for k in KINDS if k.group == group and version in k.versions]


def _gvk(k: ResourceType, version: str) -> Json:
    return {"group": k.group, "kind": k.kind, "version": version}


def _op_prefix(group: str, version: str) -> str:
    g = "".join(p[:1].upper() + p[1:] for p in (group or "core").split("."))
    return f"{g}{version[:1].upper()}{version[1:]}"


# --------------------------------------------------------------------------- OpenAPI v3

def _q(name: str, description: str, type_: str = "string") -> Json:
    return {"name": name, "in": "query", "description": description, "schema": {"type": type_, "uniqueItems": True}}


def _p(name: str, description: str) -> Json:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string", "uniqueItems": True}}


_PRETTY = _q("pretty", "If 'true', the output is pretty printed.")
_DRY_RUN = _q("dryRun", "When present (All), the change is validated but not persisted.")
_FIELD_MANAGER = _q("fieldManager", "Name of the actor making the change, for field ownership.")
_FIELD_VALIDATION = _q("fieldValidation",
                       "How unknown or duplicate fields are handled: Ignore, Warn or Strict. The server validates.")
_FORCE = _q("force", "Force an apply patch to take fields owned by other managers.", "boolean")
_LIST_PARAMS = [
    _q("allowWatchBookmarks", "Ask for BOOKMARK events on a watch.", "boolean"),
    _q("continue", "Continue token of a previous paged list."),
    _q("fieldSelector", "Select objects by fields, e.g. metadata.name=reviews."),
    _q("labelSelector", "Select objects by labels, e.g. app=reviews,version!=v2."),
    _q("limit", "Maximum number of objects to return.", "integer"),
    _q("resourceVersion", "Resource version to list or watch from."),
    _q("resourceVersionMatch", "How resourceVersion applies to a list (Exact or NotOlderThan)."),
    _q("sendInitialEvents", "Start a watch with the current objects, then a bookmark.", "boolean"),
    _q("timeoutSeconds", "Timeout of the list or watch call.", "integer"),
    _q("watch", "Stream changes instead of returning a list.", "boolean"),
]


def _ref(name: str) -> Json:
    return {"$ref": f"#/components/schemas/{name}"}


def _json_content(schema: Json) -> Json:
    return {"application/json": {"schema": schema}, "application/yaml": {"schema": schema}}


def _ok(schema: Json, code: str = "200") -> Json:
    return {code: {"description": "OK" if code == "200" else "Created", "content": _json_content(schema)},
            "401": {"description": "Unauthorized"}}


def _v3_kind_paths(k: ResourceType, version: str) -> dict[str, Json]:
    prefix = f"/apis/{k.group}/{version}" if k.group else f"/api/{version}"
    op = _op_prefix(k.group, version)
    scope = "Namespaced" if k.namespaced else ""
    gvk = _gvk(k, version)
    obj = _ref(definition_name(k.group, version, k.kind))
    lst = _ref(definition_name(k.group, version, f"{k.kind}List"))
    status = _ref("io.k8s.apimachinery.pkg.apis.meta.v1.Status")
    ns_params = [_p("namespace", "Object name and auth scope.")] if k.namespaced else []
    base = f"{prefix}/namespaces/{{namespace}}/{k.plural}" if k.namespaced else f"{prefix}/{k.plural}"

    def operation(verb: str, action: str, opid: str, responses: Json, params: list[Json],
                  body: Json | None = None) -> Json:
        o: Json = {"tags": [op[:1].lower() + op[1:]], "description": f"{verb} {k.kind}", "operationId": opid,
                   "parameters": params, "responses": responses, _ACTION: action, _GVK: dict(gvk)}
        if body is not None:
            o["requestBody"] = body
        return o

    write = [_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION]
    obj_body = {"content": {"*/*": {"schema": obj}}, "required": True}
    patch_body = {"content": {ct: {"schema": {"type": "object"}} for ct in patch_content_types(k)},
                  "required": True}
    paths: dict[str, Json] = {}
    paths[base] = {
        "get": operation("list or watch objects of kind", "list", f"list{op}{scope}{k.kind}", _ok(lst),
                         _LIST_PARAMS),
        "post": operation("create a", "post", f"create{op}{scope}{k.kind}",
                          {**_ok(obj), "201": {"description": "Created", "content": _json_content(obj)}},
                          write, obj_body),
        "delete": operation("delete collection of", "deletecollection", f"delete{op}Collection{scope}{k.kind}",
                            _ok(status), [_DRY_RUN, *_LIST_PARAMS]),
        "parameters": [*ns_params, _PRETTY],
    }
    item = {
        "get": operation("read the specified", "get", f"read{op}{scope}{k.kind}", _ok(obj), []),
        "put": operation("replace the specified", "put", f"replace{op}{scope}{k.kind}", _ok(obj), write, obj_body),
        "patch": operation("partially update the specified", "patch", f"patch{op}{scope}{k.kind}", _ok(obj),
                           [*write, _FORCE], patch_body),
        "delete": operation("delete a", "delete", f"delete{op}{scope}{k.kind}", _ok(status), [_DRY_RUN]),
        "parameters": [_p("name", f"Name of the {k.kind}."), *ns_params, _PRETTY],
    }
    paths[f"{base}/{{name}}"] = item
    if k.namespaced:
        paths[f"{prefix}/{k.plural}"] = {
            "get": operation("list or watch objects of kind", "list", f"list{op}{k.kind}ForAllNamespaces",
                             _ok(lst), _LIST_PARAMS),
            "parameters": [_PRETTY],
        }
    if "status" in k.subresources:
        paths[f"{base}/{{name}}/status"] = {
            "get": operation("read status of the specified", "get", f"read{op}{scope}{k.kind}Status", _ok(obj), []),
            "put": operation("replace status of the specified", "put", f"replace{op}{scope}{k.kind}Status",
                             _ok(obj), write, obj_body),
            "patch": operation("partially update status of the specified", "patch",
                               f"patch{op}{scope}{k.kind}Status", _ok(obj), [*write, _FORCE], patch_body),
            "parameters": item["parameters"],
        }
    if "log" in k.subresources:
        log_op = operation("read log of the specified", "get", f"read{op}{scope}{k.kind}Log",
                           {"200": {"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}}},
                           [_q("container", "The container to stream logs from."),
                            _q("follow", "Follow the log stream.", "boolean"),
                            _q("previous", "Logs of the previous terminated instance.", "boolean"),
                            _q("sinceSeconds", "Only lines newer than this many seconds.", "integer"),
                            _q("tailLines", "Only this many lines from the end.", "integer"),
                            _q("timestamps", "Prefix each line with its timestamp.", "boolean")])
        paths[f"{base}/{{name}}/log"] = {"get": log_op, "parameters": item["parameters"]}
    if "scale" in k.subresources:
        scale = _ref("io.k8s.api.autoscaling.v1.Scale")
        scale_gvk = {"group": "autoscaling", "kind": "Scale", "version": "v1"}
        get_s = operation("read scale of the specified", "get", f"read{op}{scope}{k.kind}Scale", _ok(scale), [])
        put_s = operation("replace scale of the specified", "put", f"replace{op}{scope}{k.kind}Scale", _ok(scale),
                          write, {"content": {"*/*": {"schema": scale}}, "required": True})
        patch_s = operation("partially update scale of the specified", "patch", f"patch{op}{scope}{k.kind}Scale",
                            _ok(scale), [*write, _FORCE], patch_body)
        for o in (get_s, put_s, patch_s):
            o[_GVK] = dict(scale_gvk)
        paths[f"{base}/{{name}}/scale"] = {"get": get_s, "put": put_s, "patch": patch_s,
                                           "parameters": item["parameters"]}
    return paths


_INT_OR_STRING_NAME = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
_INT_OR_STRING_SCHEMA: Json = {
    "type": "string",
    "format": "int-or-string",
    "description": "An integer or a string (a port name, a percentage such as 25%).",
}


def _v3_schema(node: Any) -> Any:
    """Served form of a schema. Int-or-string fields point at the shared IntOrString component the
    way kube-apiserver's documents do (`allOf: [$ref]`), which kubectl explain prints as
    <IntOrString>; the `x-kubernetes-int-or-string` marker stays for other readers."""
    if isinstance(node, list):
        return [_v3_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _v3_schema(v) for k, v in node.items()}
    if out.get("x-kubernetes-int-or-string") and "allOf" not in out:
        out["allOf"] = [_ref(_INT_OR_STRING_NAME)]
    return out


def _object_schema(k: ResourceType, version: str) -> Json:
    s: Json = _v3_schema(copy.deepcopy(schema_for(k.group, k.kind)))
    s[_GVK] = [_gvk(k, version)]
    return s


def _list_schema(k: ResourceType, version: str, item_name: str) -> Json:
    return {
        "type": "object",
        "description": f"A list of {k.kind} objects.",
        "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string", "description": "The versioned schema of this list."},
            "kind": {"type": "string", "description": f"Always {k.kind}List."},
            "metadata": {"type": "object", "description": "List metadata: resourceVersion and continue token.",
                         "properties": {"resourceVersion": {"type": "string"}, "continue": {"type": "string"},
                                        "remainingItemCount": {"type": "integer", "format": "int64"},
                                        "selfLink": {"type": "string"}}},
            "items": {"type": "array", "description": f"The {k.kind} objects.", "items": _ref(item_name)},
        },
        _GVK: [{"group": k.group, "kind": f"{k.kind}List", "version": version}],
    }


_STATUS_SCHEMA: Json = {
    "type": "object",
    "description": "The result of an operation that does not return an object, or an error.",
    "properties": {
        "apiVersion": {"type": "string"}, "kind": {"type": "string"},
        "metadata": {"type": "object", "properties": {"resourceVersion": {"type": "string"}}},
        "status": {"type": "string", "description": "Success or Failure."},
        "message": {"type": "string"}, "reason": {"type": "string"},
        "code": {"type": "integer", "format": "int32"},
        "details": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    },
    _GVK: [{"group": "", "kind": "Status", "version": "v1"}],
}

_SCALE_SCHEMA: Json = {
    "type": "object",
    "description": "The scale subresource: desired and observed replica counts.",
    "properties": {
        "apiVersion": {"type": "string"}, "kind": {"type": "string"},
        "metadata": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        "spec": {"type": "object", "properties": {"replicas": {"type": "integer", "format": "int32"}}},
        "status": {"type": "object", "properties": {"replicas": {"type": "integer", "format": "int32"},
                                                    "selector": {"type": "string"}}},
    },
    _GVK: [{"group": "autoscaling", "kind": "Scale", "version": "v1"}],
}


@functools.cache
def _v3_doc(group: str, version: str) -> Json | None:
    kinds = _kinds_in(group, version)
    if not kinds:
        return None
    paths: dict[str, Json] = {}
    schemas: dict[str, Json] = {}
    for k in kinds:
        paths.update(_v3_kind_paths(k, version))
        name = definition_name(k.group, version, k.kind)
        schemas[name] = _object_schema(k, version)
        list_name = definition_name(k.group, version, f"{k.kind}List")
        schemas[list_name] = _list_schema(k, version, name)
        if "scale" in k.subresources:
            schemas["io.k8s.api.autoscaling.v1.Scale"] = copy.deepcopy(_SCALE_SCHEMA)
    schemas["io.k8s.apimachinery.pkg.apis.meta.v1.Status"] = copy.deepcopy(_STATUS_SCHEMA)
    schemas[_INT_OR_STRING_NAME] = copy.deepcopy(_INT_OR_STRING_SCHEMA)
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": _KUBE_VERSION},
            "paths": paths, "components": {"schemas": schemas}}


def openapi_v3_document(path: str) -> Json | None:
    """The OpenAPI 3.0 document of one group-version (`api/v1`, `apis/networking.istio.io/v1beta1`),
    or None when that group-version is not served. Cached; do not mutate."""
    gv = _parse_gv(path.split("?", 1)[0])
    if gv is None:
        return None
    return _v3_doc(*gv)


@functools.cache
def _v3_bytes(group: str, version: str) -> bytes | None:
    doc = _v3_doc(group, version)
    return None if doc is None else json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def openapi_v3_json(path: str) -> bytes | None:
    """`openapi_v3_document(path)` serialised (compact, sorted keys); what the server sends."""
    gv = _parse_gv(path.split("?", 1)[0])
    return None if gv is None else _v3_bytes(*gv)


@functools.cache
def _v3_index() -> Json:
    paths: dict[str, Json] = {}
    for key in gv_paths():
        body = openapi_v3_json(key) or b""
        digest = hashlib.sha512(body).hexdigest().upper()
        paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest}"}
    return {"paths": paths}


def openapi_v3_index() -> Json:
    """`GET /openapi/v3`: every group-version with a URL carrying a hash of its document."""
    return copy.deepcopy(_v3_index())


# --------------------------------------------------------------------------- OpenAPI v2 (protobuf)

def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _ld(field: int, data: bytes | str) -> bytes:
    """A length-delimited field (string, bytes or embedded message)."""
    raw = data.encode() if isinstance(data, str) else data
    return _varint((field << 3) | 2) + _varint(len(raw)) + raw


def _bool(field: int, v: bool) -> bytes:
    return _varint(field << 3) + _varint(1 if v else 0)


def _named_any(name: str, value: Any) -> bytes:
    """NamedAny{name=1, value=2: Any{yaml=2}}."""
    text = yaml.safe_dump(value, default_flow_style=False, sort_keys=True)
    return _ld(1, name) + _ld(2, _ld(2, text))


def _v2_node(node: Json) -> Json:
    """A v3 schema node rewritten for v2 clients (see the module docstring)."""
    out: Json = {}
    if node.get("x-kubernetes-preserve-unknown-fields"):
        if "description" in node:
            out["description"] = node["description"]
        return out
    if node.get("x-kubernetes-int-or-string"):
        out = {"type": "string", "format": "int-or-string"}
        if "description" in node:
            out["description"] = node["description"]
        return out
    for key, value in node.items():
        if key in ("enum", "nullable", "anyOf", "minimum", "maximum"):
            continue
        if key == "properties":
            out[key] = {n: _v2_node(s) for n, s in value.items()}
        elif key in ("items",) or (key == "additionalProperties" and isinstance(value, dict)):
            out[key] = _v2_node(value)
        else:
            out[key] = value
    if out.get("type") == "number" or node.get("nullable"):
        out.pop("type", None)
    return out


def _pb_schema(s: Json) -> bytes:
    """Encode a (v2-shaped) schema dict as openapi.v2.Schema."""
    b = b""
    if "$ref" in s:
        b += _ld(1, s["$ref"])
    if "format" in s:
        b += _ld(2, s["format"])
    if "description" in s:
        b += _ld(4, s["description"])
    for r in s.get("required", []):
        b += _ld(19, r)
    ap = s.get("additionalProperties")
    if isinstance(ap, bool):
        b += _ld(21, _bool(2, ap))
    elif isinstance(ap, dict):
        b += _ld(21, _ld(1, _pb_schema(ap)))
    if "type" in s:
        b += _ld(22, _ld(1, s["type"]))
    if "items" in s:
        b += _ld(23, _ld(1, _pb_schema(s["items"])))
    if "properties" in s:
        props = b"".join(_ld(1, _ld(1, n) + _ld(2, _pb_schema(v))) for n, v in s["properties"].items())
        b += _ld(25, props)
    for key in sorted(s):
        if key.startswith("x-"):
            b += _ld(31, _named_any(key, s[key]))
    return b


def _pb_query_param(name: str, description: str, type_: str = "string") -> bytes:
    """ParametersItem{parameter=1: Parameter{non_body_parameter=2: NonBodyParameter{
    query_parameter_sub_schema=3: {in=2, description=3, name=4, type=6, unique_items=20}}}}."""
    sub = _ld(2, "query") + _ld(3, description) + _ld(4, name) + _ld(6, type_) + _bool(20, True)
    return _ld(1, _ld(2, _ld(3, sub)))


def _pb_path_param(name: str) -> bytes:
    """ParametersItem for a required path parameter (path_parameter_sub_schema=4)."""
    sub = _bool(1, True) + _ld(2, "path") + _ld(4, name) + _ld(5, "string") + _bool(19, True)
    return _ld(1, _ld(2, _ld(4, sub)))


_V2_PATCH_QUERY = (
    ("dryRun", "When present (All), validate without persisting.", "string"),
    ("fieldManager", "Name of the actor making the change.", "string"),
    ("fieldValidation", "Ignore, Warn or Strict handling of unknown fields.", "string"),
    ("force", "Force an apply patch.", "boolean"),
)


def _pb_patch_path(k: ResourceType, version: str) -> bytes:
    prefix = f"/apis/{k.group}/{version}" if k.group else f"/api/{version}"
    url = (f"{prefix}/namespaces/{{namespace}}/{k.plural}/{{name}}" if k.namespaced
           else f"{prefix}/{k.plural}/{{name}}")
    opid = f"patch{_op_prefix(k.group, version)}{'Namespaced' if k.namespaced else ''}{k.kind}"
    op = _ld(3, f"partially update the specified {k.kind}") + _ld(5, opid)
    op += _ld(6, "application/json") + _ld(6, "application/yaml")
    for ct in patch_content_types(k):
        op += _ld(7, ct)
    for name, desc, type_ in _V2_PATCH_QUERY:
        op += _ld(8, _pb_query_param(name, desc, type_))
    ref = "#/definitions/" + definition_name(k.group, version, k.kind)
    ok = _ld(1, _ld(1, "200") + _ld(2, _ld(1, _ld(1, "OK") + _ld(2, _ld(1, _ld(1, ref))))))
    op += _ld(9, ok)
    op += _ld(13, _named_any(_ACTION, "patch"))
    op += _ld(13, _named_any(_GVK, _gvk(k, version)))
    item = _ld(8, op)
    for name in ("name", "namespace") if k.namespaced else ("name",):
        item += _ld(9, _pb_path_param(name))
    return _ld(2, _ld(1, url) + _ld(2, item))


@functools.cache
def openapi_v2() -> bytes:
    """`GET /openapi/v2`: a gnostic `openapi.v2.Document` in protobuf wire format."""
    defs = b""
    paths = b""
    for k in KINDS:
        for v in k.versions:
            s = _v2_node(_object_schema(k, v))
            s[_GVK] = [_gvk(k, v)]
            defs += _ld(1, _ld(1, definition_name(k.group, v, k.kind)) + _ld(2, _pb_schema(s)))
            paths += _pb_patch_path(k, v)
    info = _ld(1, "Kubernetes") + _ld(2, _KUBE_VERSION)
    return _ld(1, "2.0") + _ld(2, info) + _ld(8, paths) + _ld(9, defs)
