"""The OpenAPI documents kubectl reads (`sluice.api.openapi`): v2 protobuf and v3 JSON."""

from __future__ import annotations

import json
from typing import Any

import yaml

from sluice.api import openapi
from sluice.resources.kinds import KINDS

# ---------------------------------------------------------------- a tiny protobuf decoder


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def fields(buf: bytes) -> list[tuple[int, Any]]:
    """Decode one message into (field number, varint int | raw bytes) pairs."""
    out: list[tuple[int, Any]] = []
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            v, i = _varint(buf, i)
            out.append((num, v))
        elif wire == 2:
            ln, i = _varint(buf, i)
            out.append((num, buf[i:i + ln]))
            i += ln
        else:
            raise AssertionError(f"unexpected wire type {wire}")
    return out


def get(buf: bytes, num: int) -> list[Any]:
    return [v for n, v in fields(buf) if n == num]


def schema_props(schema: bytes) -> dict[str, bytes]:
    """openapi.v2.Schema.properties (25) → {name: Schema bytes}."""
    out = {}
    for props in get(schema, 25):
        for named in get(props, 1):
            out[get(named, 1)[0].decode()] = get(named, 2)[0]
    return out


def vendor(schema: bytes, field: int = 31) -> dict[str, Any]:
    out = {}
    for named in get(schema, field):
        any_ = get(named, 2)[0]
        out[get(named, 1)[0].decode()] = yaml.safe_load(get(any_, 2)[0].decode())
    return out


def definitions() -> dict[str, bytes]:
    doc = openapi.openapi_v2()
    assert get(doc, 1) == [b"2.0"]
    out = {}
    for defs in get(doc, 9):
        for named in get(defs, 1):
            out[get(named, 1)[0].decode()] = get(named, 2)[0]
    return out


# ---------------------------------------------------------------- v2


def test_v2_has_every_kind_and_version_with_gvk() -> None:
    defs = definitions()
    for k in KINDS:
        for v in k.versions:
            prefix = ".".join(reversed(k.group.split("."))) if "." in k.group else f"io.k8s.api.{k.group or 'core'}"
            name = f"{prefix}.{v}.{k.kind}"
            assert name in defs, name
            assert vendor(defs[name])["x-kubernetes-group-version-kind"] == [
                {"group": k.group, "kind": k.kind, "version": v}]


def test_v2_explain_can_descend_to_http_route() -> None:
    vs = definitions()["io.istio.networking.v1.VirtualService"]
    http = schema_props(schema_props(vs)["spec"])["http"]
    assert get(get(http, 22)[0], 1) == [b"array"]
    item = get(get(http, 23)[0], 1)[0]
    route = schema_props(item)["route"]
    route_item = get(get(route, 23)[0], 1)[0]
    weight = schema_props(route_item)["weight"]
    assert get(get(weight, 22)[0], 1) == [b"integer"]
    assert get(weight, 4)[0]  # description


def test_v2_int_or_string_and_open_subtrees() -> None:
    dep = definitions()["io.k8s.api.apps.v1.Deployment"]
    ru = schema_props(schema_props(schema_props(dep)["spec"])["strategy"])["rollingUpdate"]
    surge = schema_props(ru)["maxSurge"]
    assert get(get(surge, 22)[0], 1) == [b"string"] and get(surge, 2) == [b"int-or-string"]
    # preserve-unknown-fields subtrees carry no type, so kubectl 1.20 treats them as arbitrary
    pod_spec = schema_props(schema_props(schema_props(schema_props(dep)["spec"])["template"])["spec"])
    assert get(pod_spec["affinity"], 22) == [] and get(pod_spec["affinity"], 25) == []
    containers = pod_spec["containers"]
    assert vendor(containers)["x-kubernetes-patch-merge-key"] == "name"


def test_v2_patch_paths_carry_gvk_field_validation_and_consumes() -> None:
    doc = openapi.openapi_v2()
    paths = {get(np, 1)[0].decode(): get(np, 2)[0] for p in get(doc, 8) for np in get(p, 2)}
    vs = paths["/apis/networking.istio.io/v1/namespaces/{namespace}/virtualservices/{name}"]
    op = get(vs, 8)[0]
    assert vendor(op, 13)["x-kubernetes-group-version-kind"] == {
        "group": "networking.istio.io", "kind": "VirtualService", "version": "v1"}
    names = [get(get(get(get(p, 1)[0], 2)[0], 3)[0], 4)[0].decode() for p in get(op, 8)]
    assert "fieldValidation" in names
    consumes = [c.decode() for c in get(op, 7)]
    assert "application/merge-patch+json" in consumes
    assert "application/strategic-merge-patch+json" not in consumes
    dep = get(paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"], 8)[0]
    assert "application/strategic-merge-patch+json" in [c.decode() for c in get(dep, 7)]
    assert "/api/v1/namespaces/{name}" in paths


# ---------------------------------------------------------------- v3


def test_v3_index_lists_every_group_version_with_stable_hash() -> None:
    idx = openapi.openapi_v3_index()
    assert set(idx["paths"]) == {"api/v1", "apis/apps/v1", "apis/networking.istio.io/v1",
                                 "apis/networking.istio.io/v1beta1", "apis/networking.istio.io/v1alpha3",
                                 "apis/argoproj.io/v1alpha1"}
    url = idx["paths"]["apis/apps/v1"]["serverRelativeURL"]
    assert url.startswith("/openapi/v3/apis/apps/v1?hash=")
    assert openapi.openapi_v3_index() == idx


def _patch_ops(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p: item["patch"] for p, item in doc["paths"].items() if "patch" in item}


def test_v3_documents_have_patch_gvk_and_field_validation() -> None:
    for k in KINDS:
        for v in k.versions:
            key = f"apis/{k.group}/{v}" if k.group else f"api/{v}"
            doc = openapi.openapi_v3_document(key)
            assert doc is not None
            base = f"/{key}/namespaces/{{namespace}}/{k.plural}" if k.namespaced else f"/{key}/{k.plural}"
            op = _patch_ops(doc)[f"{base}/{{name}}"]
            assert op["x-kubernetes-group-version-kind"] == {"group": k.group, "kind": k.kind, "version": v}
            assert {"name": "fieldValidation", "in": "query"}.items() <= next(
                p for p in op["parameters"] if p["name"] == "fieldValidation").items()
            content = set(op["requestBody"]["content"])
            assert {"application/json-patch+json", "application/merge-patch+json"} <= content
            assert ("application/strategic-merge-patch+json" in content) == k.builtin
            prefix = ".".join(reversed(k.group.split("."))) if "." in k.group else f"io.k8s.api.{k.group or 'core'}"
            schema = doc["components"]["schemas"][f"{prefix}.{v}.{k.kind}"]
            assert schema["x-kubernetes-group-version-kind"] == [{"group": k.group, "kind": k.kind, "version": v}]
            ops = {m for item in doc["paths"].values() for m in item if m != "parameters"}
            assert ops >= {"get", "post", "put", "patch", "delete"}
            ids = [o["operationId"] for item in doc["paths"].values() for m, o in item.items() if m != "parameters"]
            assert len(ids) == len(set(ids))


def test_v3_vs_schema_explains_route() -> None:
    doc = openapi.openapi_v3_document("apis/networking.istio.io/v1beta1")
    assert doc is not None
    vs = doc["components"]["schemas"]["io.istio.networking.v1beta1.VirtualService"]
    route = vs["properties"]["spec"]["properties"]["http"]["items"]["properties"]["route"]
    assert route["items"]["properties"]["weight"]["type"] == "integer"
    assert route["items"]["properties"]["destination"]["properties"]["host"]["type"] == "string"


def test_v3_unknown_group_version_and_json_bytes() -> None:
    assert openapi.openapi_v3_document("apis/nope/v1") is None
    assert openapi.openapi_v3_document("apis/apps/v2") is None
    body = openapi.openapi_v3_json("api/v1?hash=x")
    assert body is not None and json.loads(body) == openapi.openapi_v3_document("api/v1")


def test_content_types() -> None:
    assert "@" not in openapi.OPENAPI_V2_CONTENT_TYPE
    assert openapi.OPENAPI_V2_CONTENT_TYPE == "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
    assert openapi.OPENAPI_V3_CONTENT_TYPE == "application/json"
