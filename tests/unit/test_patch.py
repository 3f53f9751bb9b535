"""Patch formats: RFC 7386, Kubernetes strategic merge patch, RFC 6902, and apply/edit patch creation."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.api.patch import (
    PatchError,
    json_merge_patch,
    json_patch,
    strategic_merge_patch,
    supports_strategic_merge_patch,
    three_way_merge_patch,
    two_way_merge_patch,
)

# ---------------------------------------------------------------------------------------------
# RFC 7386 (the RFC's own appendix A examples)
# ---------------------------------------------------------------------------------------------

RFC7386_CASES = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch", "expected"), RFC7386_CASES)
def test_json_merge_patch_rfc_examples(target: Any, patch: Any, expected: Any) -> None:
    assert json_merge_patch(target, patch) == expected


def test_json_merge_patch_edits_a_virtual_service_weight() -> None:
    vs = {"spec": {"hosts": ["reviews"], "http": [{"route": [{"weight": 90}, {"weight": 10}]}]}}
    patch = {"spec": {"http": [{"route": [{"weight": 80}, {"weight": 20}]}]}}
    assert json_merge_patch(vs, patch) == {
        "spec": {"hosts": ["reviews"], "http": [{"route": [{"weight": 80}, {"weight": 20}]}]}
    }


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3),
    max_leaves=12,
)
json_objects = st.dictionaries(st.text(max_size=3), json_values, max_size=4)


@given(json_values, json_values)
def test_json_merge_patch_never_mutates_inputs(target: Any, patch: Any) -> None:
    t0, p0 = copy.deepcopy(target), copy.deepcopy(patch)
    result = json_merge_patch(target, patch)
    assert target == t0 and patch == p0
    if isinstance(result, (dict, list)) and result:
        assert result is not target and result is not patch


# Values a merge patch can express: no nulls inside objects (null means "delete").
def _no_null_members(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3)


patchable_values = st.recursive(st.booleans() | st.integers() | st.text(max_size=5), _no_null_members, max_leaves=12)
patchable_objects = st.dictionaries(st.text(max_size=3), patchable_values, max_size=4)


@given(patchable_objects, patchable_objects)
def test_two_way_patch_applied_to_original_gives_modified(a: dict[str, Any], b: dict[str, Any]) -> None:
    a0, b0 = copy.deepcopy(a), copy.deepcopy(b)
    patch = two_way_merge_patch(a, b)
    assert json_merge_patch(a, patch) == b
    assert a == a0 and b == b0


@given(patchable_objects)
def test_two_way_patch_of_identical_objects_is_empty(a: dict[str, Any]) -> None:
    assert two_way_merge_patch(a, copy.deepcopy(a)) == {}


@settings(max_examples=200)
@given(patchable_objects, patchable_objects, patchable_objects)
def test_three_way_patch_brings_user_fields_to_modified(
    original: dict[str, Any], modified: dict[str, Any], current: dict[str, Any]
) -> None:
    try:
        patch = three_way_merge_patch(original, modified, current)
    except PatchError:
        return  # apiVersion/kind/name changed, or a (rare) original-vs-current conflict
    result = json_merge_patch(current, patch)
    for key, value in modified.items():  # every field of the new configuration is applied...
        if not isinstance(value, dict):
            assert result[key] == value
    for key in original:  # ...and every top-level field the user removed is gone
        if key not in modified:
            assert key not in result


def test_two_way_patch_for_kubectl_edit_sends_the_list_whole() -> None:
    before = {"metadata": {"name": "reviews"}, "spec": {"http": [{"route": [{"weight": 90}, {"weight": 10}]}]}}
    after = {"metadata": {"name": "reviews"}, "spec": {"http": [{"route": [{"weight": 80}, {"weight": 10}]}]}}
    assert two_way_merge_patch(before, after) == {"spec": {"http": [{"route": [{"weight": 80}, {"weight": 10}]}]}}


# ---------------------------------------------------------------------------------------------
# 3-way merge patch (client-side apply)
# ---------------------------------------------------------------------------------------------

VS_V1 = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "VirtualService",
    "metadata": {"name": "reviews", "namespace": "default"},
    "spec": {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews", "subset": "v2"}}]}]},
}


def _live(config: dict[str, Any]) -> dict[str, Any]:
    live = copy.deepcopy(config)
    live["metadata"].update(uid="u-1", resourceVersion="7", creationTimestamp="2024-01-01T00:00:00Z", generation=1)
    live["status"] = {"observedGeneration": 1}
    return live


def test_three_way_unchanged_file_gives_empty_patch() -> None:
    assert three_way_merge_patch(VS_V1, copy.deepcopy(VS_V1), _live(VS_V1)) == {}


def test_three_way_keeps_server_fields_and_applies_changes() -> None:
    modified = copy.deepcopy(VS_V1)
    modified["spec"]["gateways"] = ["mesh"]
    modified["spec"]["http"][0]["route"][0]["destination"]["subset"] = "v3"
    current = _live(VS_V1)
    patch = three_way_merge_patch(VS_V1, modified, current)
    assert patch == {
        "spec": {"gateways": ["mesh"], "http": [{"route": [{"destination": {"host": "reviews", "subset": "v3"}}]}]}
    }
    result = json_merge_patch(current, patch)
    assert result["metadata"]["uid"] == "u-1" and result["status"] == {"observedGeneration": 1}
    assert result["spec"] == modified["spec"]


def test_three_way_deletes_only_fields_the_user_removed() -> None:
    original = copy.deepcopy(VS_V1)
    original["spec"]["gateways"] = ["mesh"]
    current = _live(original)
    current["metadata"]["labels"] = {"added-by": "someone-else"}
    modified = copy.deepcopy(VS_V1)  # gateways removed from the file
    patch = three_way_merge_patch(original, modified, current)
    assert patch == {"spec": {"gateways": None}}
    result = json_merge_patch(current, patch)
    assert "gateways" not in result["spec"]
    assert result["metadata"]["labels"] == {"added-by": "someone-else"}


def test_three_way_without_last_applied_annotation() -> None:
    current = _live(VS_V1)
    current["spec"]["tcp"] = [{"route": []}]  # set by someone else: kept, since original is unknown
    modified = copy.deepcopy(VS_V1)
    modified["metadata"]["annotations"] = {"kubectl.kubernetes.io/last-applied-configuration": "{}\n"}
    patch = three_way_merge_patch(None, modified, current)
    assert patch == {"metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}\n"}}}


def test_three_way_reverts_drift_on_fields_the_user_owns() -> None:
    current = _live(VS_V1)
    current["spec"]["hosts"] = ["ratings"]  # changed behind the user's back
    patch = three_way_merge_patch(VS_V1, copy.deepcopy(VS_V1), current)
    assert patch == {"spec": {"hosts": ["reviews"]}}


def test_three_way_refuses_to_change_name_or_kind() -> None:
    modified = copy.deepcopy(VS_V1)
    modified["metadata"]["name"] = "other"
    with pytest.raises(PatchError, match="At least one of apiVersion, kind and name was changed"):
        three_way_merge_patch(VS_V1, modified, _live(VS_V1))


def test_three_way_explicit_empty_map_is_a_value() -> None:
    modified = copy.deepcopy(VS_V1)
    modified["metadata"]["labels"] = {}
    assert three_way_merge_patch(VS_V1, modified, _live(VS_V1)) == {"metadata": {"labels": {}}}


# ---------------------------------------------------------------------------------------------
# Strategic merge patch
# ---------------------------------------------------------------------------------------------

DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "default", "annotations": {"owner": "team"}, "finalizers": ["a", "b"]},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "web"}},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {
                "containers": [
                    {
                        "name": "app",
                        "image": "nginx:1",
                        "args": ["-a", "-b"],
                        "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 9090, "name": "metrics"}],
                        "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                    },
                    {"name": "istio-proxy", "image": "envoy"},
                ],
                "volumes": [{"name": "data", "emptyDir": {}}],
                "tolerations": [{"key": "x", "operator": "Exists"}],
            },
        },
    },
    "status": {"conditions": [{"type": "Available", "status": "True"}, {"type": "Progressing", "status": "True"}]},
}


def _smp(patch: dict[str, Any], target: dict[str, Any] | None = None, kind: str = "Deployment") -> dict[str, Any]:
    return strategic_merge_patch(copy.deepcopy(target or DEPLOYMENT), patch, kind)


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    containers: list[dict[str, Any]] = obj["spec"]["template"]["spec"]["containers"]
    return containers


def test_kubectl_apply_image_change_body() -> None:
    """The exact body kubectl 1.20 and 1.35 send for `apply` after an image change."""
    body = json.loads(
        '{"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"…"}},'
        '"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"app"}],'
        '"containers":[{"image":"nginx:2","name":"app"}]}}}}'
    )
    result = _smp(body)
    assert [c["name"] for c in _containers(result)] == ["app", "istio-proxy"]
    app = _containers(result)[0]
    assert app["image"] == "nginx:2"
    assert app["ports"] == DEPLOYMENT["spec"]["template"]["spec"]["containers"][0]["ports"]  # type: ignore[index]
    assert result["metadata"]["annotations"] == {
        "owner": "team",
        "kubectl.kubernetes.io/last-applied-configuration": "…",
    }
    assert result["spec"]["replicas"] == 2


SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "svc1", "labels": {"app": "svc1"}},
    "spec": {
        "selector": {"app": "svc1"},
        "ports": [{"name": "80", "port": 82, "protocol": "TCP", "targetPort": 80}],
    },
}


def test_kubectl_edit_service_fixture() -> None:
    """kubectl's `testcase-list-errors/6.request` body: replace port 82 by 83, add a label."""
    body = json.loads(
        '{"metadata":{"labels":{"newvalue":"modified"}},"spec":{"$setElementOrder/ports":[{"port":83}],'
        '"ports":[{"name":"80","port":83,"protocol":"VHF","targetPort":81},{"$patch":"delete","port":82}]}}'
    )
    result = _smp(body, SERVICE, "Service")
    assert result["metadata"]["labels"] == {"app": "svc1", "newvalue": "modified"}
    assert result["spec"]["ports"] == [{"name": "80", "port": 83, "protocol": "VHF", "targetPort": 81}]
    assert result["spec"]["selector"] == {"app": "svc1"}


def test_merge_list_merges_by_key_and_keeps_server_only_items() -> None:
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "env": [{"name": "B", "value": "3"}]}]}}}}
    app = _containers(_smp(patch))[0]
    assert app["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}]
    assert app["image"] == "nginx:1"


@pytest.mark.parametrize(
    ("container_patch", "field", "expected"),
    [
        ({"ports": [{"containerPort": 80, "protocol": "TCP"}]}, "ports",
         [{"containerPort": 80, "name": "http", "protocol": "TCP"}, {"containerPort": 9090, "name": "metrics"}]),
        # a new item without $setElementOrder goes first, as apimachinery's mergeSortedSlice puts it
        ({"ports": [{"containerPort": 8080}]}, "ports",
         [{"containerPort": 8080}, {"containerPort": 80, "name": "http"}, {"containerPort": 9090, "name": "metrics"}]),
        ({"ports": [{"containerPort": 9090, "$patch": "delete"}]}, "ports", [{"containerPort": 80, "name": "http"}]),
        ({"env": [{"name": "A", "$patch": "delete"}]}, "env", [{"name": "B", "value": "2"}]),
        ({"env": [{"name": "C", "value": "3"}, {"$patch": "replace"}]}, "env", [{"name": "C", "value": "3"}]),
        ({"env": [{"name": "A", "value": None}]}, "env", [{"name": "A"}, {"name": "B", "value": "2"}]),
        ({"args": ["-c"]}, "args", ["-c"]),  # not a merge list: replaced
        ({"volumeMounts": [{"mountPath": "/d", "name": "data"}]}, "volumeMounts", [{"mountPath": "/d", "name": "data"}]),
        ({"$setElementOrder/env": [{"name": "B"}, {"name": "A"}]}, "env",
         [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}]),
        ({"$setElementOrder/env": [{"name": "B"}, {"name": "C"}, {"name": "A"}], "env": [{"name": "C", "value": "3"}]},
         "env", [{"name": "B", "value": "2"}, {"name": "C", "value": "3"}, {"name": "A", "value": "1"}]),
    ],
)
def test_container_list_strategies(container_patch: dict[str, Any], field: str, expected: Any) -> None:
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", **container_patch}]}}}}
    assert _containers(_smp(patch))[0][field] == expected


@pytest.mark.parametrize(
    ("spec_patch", "field", "expected"),
    [
        ({"tolerations": [{"key": "y", "operator": "Exists"}]}, "tolerations", [{"key": "y", "operator": "Exists"}]),
        ({"volumes": [{"name": "cfg", "configMap": {"name": "c"}}]}, "volumes",
         [{"name": "cfg", "configMap": {"name": "c"}}, {"name": "data", "emptyDir": {}}]),
        ({"volumes": [{"name": "data", "$retainKeys": ["name", "hostPath"], "hostPath": {"path": "/x"}}]}, "volumes",
         [{"name": "data", "hostPath": {"path": "/x"}}]),
        ({"containers": [{"name": "sidecar", "image": "s"}]}, "containers",
         [{"name": "sidecar", "image": "s"}, *DEPLOYMENT["spec"]["template"]["spec"]["containers"]]),  # type: ignore[index]
        ({"containers": [{"name": "istio-proxy", "$patch": "delete"}]}, "containers",
         [DEPLOYMENT["spec"]["template"]["spec"]["containers"][0]]),  # type: ignore[index]
        ({"imagePullSecrets": [{"name": "a"}]}, "imagePullSecrets", [{"name": "a"}]),
        ({"hostAliases": [{"ip": "1.2.3.4", "hostnames": ["x"]}]}, "hostAliases", [{"ip": "1.2.3.4", "hostnames": ["x"]}]),
    ],
)
def test_pod_spec_list_strategies(spec_patch: dict[str, Any], field: str, expected: Any) -> None:
    result = _smp({"spec": {"template": {"spec": spec_patch}}})
    assert result["spec"]["template"]["spec"][field] == expected


def test_deployment_strategy_retain_keys_switches_to_recreate() -> None:
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
    assert _smp(patch)["spec"]["strategy"] == {"type": "Recreate"}


def test_retain_keys_rejects_fields_not_listed() -> None:
    with pytest.raises(PatchError, match="retainKeys"):
        _smp({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": {}}}})


def test_metadata_finalizers_merge_as_a_set_and_delete_from_primitive_list() -> None:
    result = _smp({"metadata": {"finalizers": ["b", "c"]}})
    assert result["metadata"]["finalizers"] == ["a", "b", "c"]
    result = _smp({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}})
    assert result["metadata"]["finalizers"] == ["b"]
    result = _smp({"metadata": {"$deleteFromPrimitiveList/nosuch": ["a"]}})
    assert "nosuch" not in result["metadata"]


def test_owner_references_merge_by_uid() -> None:
    target = {"metadata": {"name": "p", "ownerReferences": [{"uid": "1", "name": "rs-a"}]}}
    result = _smp({"metadata": {"ownerReferences": [{"uid": "2", "name": "rs-b"}]}}, target, "Pod")
    assert [o["uid"] for o in result["metadata"]["ownerReferences"]] == ["2", "1"]


def test_status_conditions_merge_by_type() -> None:
    patch = {"status": {"conditions": [{"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"}]}}
    result = _smp(patch)
    assert result["status"]["conditions"] == [
        {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"},
        {"type": "Progressing", "status": "True"},
    ]


def test_service_ports_merge_by_port_and_endpoints_subsets_replace() -> None:
    result = _smp({"spec": {"ports": [{"port": 9080, "name": "http"}]}}, SERVICE, "Service")
    assert [p["port"] for p in result["spec"]["ports"]] == [9080, 82]
    endpoints = {"metadata": {"name": "e"}, "subsets": [{"addresses": [{"ip": "127.0.0.5"}]}]}
    result = _smp({"subsets": [{"addresses": [{"ip": "127.0.0.6"}]}]}, endpoints, "Endpoints")
    assert result["subsets"] == [{"addresses": [{"ip": "127.0.0.6"}]}]


def test_service_account_secrets_merge_by_name() -> None:
    sa = {"metadata": {"name": "default"}, "secrets": [{"name": "tok-1"}]}
    assert _smp({"secrets": [{"name": "tok-2"}]}, sa, "ServiceAccount")["secrets"] == [{"name": "tok-2"}, {"name": "tok-1"}]


def test_map_directives() -> None:
    assert _smp({"metadata": {"annotations": {"$patch": "replace", "new": "1"}}})["metadata"]["annotations"] == {"new": "1"}
    assert _smp({"metadata": {"annotations": {"$patch": "delete"}}})["metadata"]["annotations"] == {}
    assert "labels" not in _smp({"metadata": {"labels": {"$patch": "delete"}}})["metadata"]
    assert _smp({"metadata": {"annotations": {"$patch": "merge", "x": "y"}}})["metadata"]["annotations"] == {
        "owner": "team",
        "x": "y",
    }
    assert _smp({"$patch": "replace", "kind": "Deployment"}) == {"kind": "Deployment"}


def test_null_deletes_and_unknown_directives_are_ignored() -> None:
    result = _smp({"metadata": {"annotations": None}, "spec": {"replicas": None, "$unknown": 1}})
    assert "annotations" not in result["metadata"] and "replicas" not in result["spec"]
    assert "$unknown" not in result["spec"]


def test_new_subtree_with_directives_and_nulls_is_cleaned() -> None:
    pod: dict[str, Any] = {"metadata": {"name": "p"}}
    patch = {"spec": {"$setElementOrder/containers": [{"name": "a"}], "containers": [{"name": "a", "x": None}]}}
    assert _smp(patch, pod, "Pod")["spec"] == {"containers": [{"name": "a"}]}


def test_strategic_merge_patch_does_not_mutate_inputs() -> None:
    target, patch = copy.deepcopy(DEPLOYMENT), {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "x"}]}}}}
    t0, p0 = copy.deepcopy(target), copy.deepcopy(patch)
    strategic_merge_patch(target, patch, "Deployment")
    assert target == t0 and patch == p0


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ([{"op": "add"}], "must be a JSON object"),
        ("x", "must be a JSON object"),
        ({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}, "does not contain declared merge key: name"),
        ({"spec": {"template": {"spec": {"containers": [{"name": "app", "$patch": "bogus"}]}}}}, "unknown patch type: bogus"),
        ({"metadata": {"$patch": "bogus"}}, "unknown patch type"),
        ({"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "istio-proxy"}, {"name": "app"}],
                                        "containers": [{"name": "app"}, {"name": "istio-proxy"}]}}}}, "doesn't match"),
        ({"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}}, "primitive list"),
        ({"metadata": {"finalizers": [["a"]]}}, "lists of lists"),
    ],
)
def test_strategic_merge_patch_errors(patch: Any, message: str) -> None:
    with pytest.raises(PatchError, match=message):
        strategic_merge_patch(copy.deepcopy(DEPLOYMENT), patch, "Deployment")


def test_unknown_kind_gets_plain_merge_semantics() -> None:
    target = {"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b"}]}}
    result = strategic_merge_patch(target, {"spec": {"containers": [{"name": "a", "image": "2"}]}}, "Widget")
    assert result["spec"]["containers"] == [{"name": "a", "image": "2"}]
    assert supports_strategic_merge_patch("Deployment") and not supports_strategic_merge_patch("VirtualService")


# ---------------------------------------------------------------------------------------------
# RFC 6902 (cases from the RFC's appendix A)
# ---------------------------------------------------------------------------------------------

JSON_PATCH_CASES = [
    ({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}], {"baz": "qux", "foo": "bar"}),
    ({"foo": ["bar", "baz"]}, [{"op": "add", "path": "/foo/1", "value": "qux"}], {"foo": ["bar", "qux", "baz"]}),
    ({"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}], {"foo": "bar"}),
    ({"foo": ["bar", "qux", "baz"]}, [{"op": "remove", "path": "/foo/1"}], {"foo": ["bar", "baz"]}),
    ({"baz": "qux", "foo": "bar"}, [{"op": "replace", "path": "/baz", "value": "boo"}], {"baz": "boo", "foo": "bar"}),
    (
        {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
        [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
        {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}},
    ),
    ({"foo": ["all", "grass", "cows", "eat"]}, [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
     {"foo": ["all", "cows", "eat", "grass"]}),
    ({"baz": "qux", "foo": ["a", 2, "c"]},
     [{"op": "test", "path": "/baz", "value": "qux"}, {"op": "test", "path": "/foo/1", "value": 2}],
     {"baz": "qux", "foo": ["a", 2, "c"]}),
    ({"foo": "bar"}, [{"op": "add", "path": "/child", "value": {"grandchild": {}}}], {"foo": "bar", "child": {"grandchild": {}}}),
    ({"foo": ["bar"]}, [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}], {"foo": ["bar", ["abc", "def"]]}),
    ({"a/b": 1, "m~n": 2}, [{"op": "copy", "from": "/a~1b", "path": "/m~0n"}], {"a/b": 1, "m~n": 1}),
    ({"a": 1}, [{"op": "replace", "path": "", "value": [1]}], [1]),
    ({"spec": {"replicas": 1}}, [{"op": "replace", "path": "/spec/replicas", "value": 3}], {"spec": {"replicas": 3}}),
]


@pytest.mark.parametrize(("target", "ops", "expected"), JSON_PATCH_CASES)
def test_json_patch(target: Any, ops: Any, expected: Any) -> None:
    t0 = copy.deepcopy(target)
    assert json_patch(target, ops) == expected
    assert target == t0


@pytest.mark.parametrize(
    ("target", "ops", "message"),
    [
        ({"baz": "qux"}, [{"op": "test", "path": "/baz", "value": "bar"}], "failed"),
        ({"foo": "bar"}, [{"op": "add", "path": "/baz/bat", "value": "qux"}], "not found"),
        ({"foo": "bar"}, [{"op": "remove", "path": "/nope"}], "not found"),
        ({"foo": [1]}, [{"op": "add", "path": "/foo/5", "value": 1}], "out of bounds"),
        ({"foo": [1]}, [{"op": "replace", "path": "/foo/01", "value": 1}], "invalid array index"),
        ({"foo": 1}, [{"op": "add", "path": "foo", "value": 1}], "must be empty or start with '/'"),
        ({"foo": 1}, [{"op": "jump", "path": "/foo"}], "unsupported op"),
        ({"foo": 1}, [{"op": "add", "path": "/x"}], "needs a 'value'"),
        ({"foo": 1}, {"op": "add"}, "array of operations"),
        ({"a": {"b": 1}}, [{"op": "move", "from": "/a", "path": "/a/b/c"}], "own children"),
        ({"foo": 1}, [{"op": "test", "path": "/foo", "value": True}], "failed"),
    ],
)
def test_json_patch_errors(target: Any, ops: Any, message: str) -> None:
    with pytest.raises(PatchError, match=message):
        json_patch(target, ops)


def test_json_patch_is_atomic() -> None:
    target = {"a": 1}
    with pytest.raises(PatchError):
        json_patch(target, [{"op": "replace", "path": "/a", "value": 2}, {"op": "remove", "path": "/missing"}])
    assert target == {"a": 1}


def test_order_follows_apimachinery_precedence() -> None:
    """`$setElementOrder` > order in the patch > order in the live list (apimachinery's own cases)."""
    target = {"metadata": {"ownerReferences": [{"uid": "1"}, {"uid": "2", "v": "b"}, {"uid": "3"}]}}
    patch = {"metadata": {"ownerReferences": [{"uid": "3", "v": "c"}, {"uid": "1", "v": "a"}]}}
    result = strategic_merge_patch(target, patch, "Pod")
    assert result["metadata"]["ownerReferences"] == [{"uid": "2", "v": "b"}, {"uid": "3", "v": "c"}, {"uid": "1", "v": "a"}]
    target = {"metadata": {"finalizers": ["1", "2", "3"]}}
    result = strategic_merge_patch(target, {"metadata": {"finalizers": ["3", "1", "2"]}}, "Pod")
    assert result["metadata"]["finalizers"] == ["3", "1", "2"]
    result = strategic_merge_patch({"metadata": {"finalizers": ["1", "2"]}}, {"metadata": {"finalizers": ["2", "3"]}}, "Pod")
    assert result["metadata"]["finalizers"] == ["1", "2", "3"]
    order = {"metadata": {"$setElementOrder/ownerReferences": [{"uid": "3"}, {"uid": "2"}, {"uid": "1"}]}}
    result = strategic_merge_patch(target | {"metadata": {"ownerReferences": [{"uid": "1"}, {"uid": "3"}]}}, order, "Pod")
    assert result["metadata"]["ownerReferences"] == [{"uid": "3"}, {"uid": "1"}]
