"""API semantics seen from outside over HTTPS: auth, Status errors, optimistic concurrency, patch types,
namespaces, owner references, watch — with the official `kubernetes` Python client and raw HTTP."""

from __future__ import annotations

import json
import ssl
import threading
import urllib.error
import urllib.request
from typing import Any

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from tests.conftest import Daemon, wait_for

VS = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "VirtualService",
    "metadata": {"name": "reviews"},
    "spec": {"hosts": ["reviews"], "http": [{"route": [
        {"destination": {"host": "reviews", "subset": "v2"}, "weight": 90},
        {"destination": {"host": "reviews", "subset": "v3"}, "weight": 10}]}]},
}
ISTIO = ("networking.istio.io", "v1")


def _http(d: Daemon, method: str, path: str, body: bytes | None = None, ctype: str = "application/json",
          token: str | None = None) -> tuple[int, dict[str, Any]]:
    ctx = ssl.create_default_context(cafile=str(d.home / "pki" / "ca.crt"))
    req = urllib.request.Request(d.api_url + path, data=body, method=method)
    req.add_header("Authorization", f"Bearer {d.token if token is None else token}")
    if body is not None:
        req.add_header("Content-Type", ctype)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


@pytest.fixture(scope="module")
def api(sluice_daemon: Daemon) -> client.ApiClient:
    return config.new_client_from_config(str(sluice_daemon.kubeconfig))


@pytest.fixture(scope="module")
def ns(api: client.ApiClient) -> str:
    name = "semantics"
    client.CoreV1Api(api).create_namespace({"metadata": {"name": name}})
    return name


def test_token_required(sluice_daemon: Daemon) -> None:
    code, body = _http(sluice_daemon, "GET", "/api/v1/namespaces", token="wrong")
    assert code == 401
    assert body["reason"] == "Unauthorized"
    code, body = _http(sluice_daemon, "GET", "/api/v1/namespaces")
    assert code == 200
    assert {"default", "kube-system", "kube-public"} <= {i["metadata"]["name"] for i in body["items"]}


def test_python_client_crud_and_conflict(api: client.ApiClient, ns: str) -> None:
    co = client.CustomObjectsApi(api)
    created = co.create_namespaced_custom_object(*ISTIO, ns, "virtualservices", VS)
    meta = created["metadata"]
    assert meta["uid"] and meta["resourceVersion"] and meta["generation"] == 1 and meta["creationTimestamp"]
    with pytest.raises(ApiException) as e:
        co.create_namespaced_custom_object(*ISTIO, ns, "virtualservices", VS)
    assert e.value.status == 409 and json.loads(e.value.body)["reason"] == "AlreadyExists"

    # Served at every version from one stored object.
    old = co.get_namespaced_custom_object("networking.istio.io", "v1alpha3", ns, "virtualservices", "reviews")
    assert old["apiVersion"] == "networking.istio.io/v1alpha3" and old["metadata"]["uid"] == meta["uid"]

    stale = dict(created)
    patched = co.patch_namespaced_custom_object(*ISTIO, ns, "virtualservices", "reviews",
                                                {"metadata": {"labels": {"team": "a"}}})
    assert patched["metadata"]["generation"] == 1  # metadata-only change
    stale["spec"] = {**VS["spec"], "hosts": ["reviews", "reviews.semantics"]}
    with pytest.raises(ApiException) as e:
        co.replace_namespaced_custom_object(*ISTIO, ns, "virtualservices", "reviews", stale)
    assert e.value.status == 409 and json.loads(e.value.body)["reason"] == "Conflict"

    fresh = co.get_namespaced_custom_object(*ISTIO, ns, "virtualservices", "reviews")
    fresh["spec"]["http"][0]["route"][0]["weight"] = 80
    with pytest.raises(ApiException) as e:
        co.replace_namespaced_custom_object(*ISTIO, ns, "virtualservices", "reviews", fresh)
    status = json.loads(e.value.body)
    assert e.value.status == 422 and status["reason"] == "Invalid"
    assert status["details"]["causes"] == [{"reason": "FieldValueInvalid", "field": "spec.http[0].route",
                                            "message": "Invalid value: 90: total destination weight 90 != 100"}]
    assert co.get_namespaced_custom_object(*ISTIO, ns, "virtualservices", "reviews")["metadata"][
        "resourceVersion"] == fresh["metadata"]["resourceVersion"]

    fresh["spec"]["http"][0]["route"][1]["weight"] = 20
    updated = co.replace_namespaced_custom_object(*ISTIO, ns, "virtualservices", "reviews", fresh)
    assert updated["metadata"]["generation"] == 2


def test_patch_types(sluice_daemon: Daemon, ns: str) -> None:
    base = f"/apis/networking.istio.io/v1/namespaces/{ns}/virtualservices"
    body = json.dumps({**VS, "metadata": {"name": "patchme"}}).encode()
    assert _http(sluice_daemon, "POST", base, body)[0] == 201
    code, obj = _http(sluice_daemon, "PATCH", f"{base}/patchme",
                      json.dumps([{"op": "replace", "path": "/spec/hosts/0", "value": "reviews.semantics"}]).encode(),
                      "application/json-patch+json")
    assert code == 200 and obj["spec"]["hosts"] == ["reviews.semantics"]
    code, obj = _http(sluice_daemon, "PATCH", f"{base}/patchme", b'{"spec":{"hosts":["a"]}}',
                      "application/strategic-merge-patch+json")
    assert code == 415 and obj["reason"] == "UnsupportedMediaType"
    code, obj = _http(sluice_daemon, "PATCH", f"{base}/patchme",
                      json.dumps([{"op": "test", "path": "/spec/hosts/0", "value": "nope"}]).encode(),
                      "application/json-patch+json")
    assert code == 422


def test_bad_bodies_get_status_errors_and_change_nothing(sluice_daemon: Daemon, ns: str) -> None:
    base = f"/apis/networking.istio.io/v1/namespaces/{ns}/virtualservices"
    before = _http(sluice_daemon, "GET", base)[1]["items"]
    cases = [
        (b"{not json", "application/json", 400),
        (b"kind: [", "application/yaml", 400),
        (json.dumps({**VS, "kind": "DestinationRule"}).encode(), "application/json", 400),
        (json.dumps({**VS, "apiVersion": "networking.istio.io/v9"}).encode(), "application/json", 400),
        (json.dumps({**VS, "metadata": {"name": "Bad_Name"}}).encode(), "application/json", 422),
        (json.dumps({**VS, "metadata": {"name": "x"}, "spec": {"hosts": "reviews"}}).encode(), "application/json", 422),
        (b" " * (3 * 1024 * 1024 + 10), "application/json", 413),
    ]
    for body, ctype, want in cases:
        code, status = _http(sluice_daemon, "POST", base, body, ctype)
        assert code == want, (body[:80], status)
        assert status["kind"] == "Status" and status["code"] == want and status["message"]
    assert _http(sluice_daemon, "GET", base)[1]["items"] == before


def test_namespace_rules(sluice_daemon: Daemon) -> None:
    vs = json.dumps(VS).encode()
    code, status = _http(sluice_daemon, "POST", "/apis/networking.istio.io/v1/namespaces/nope/virtualservices", vs)
    assert code == 404 and status["message"] == 'namespaces "nope" not found'
    assert _http(sluice_daemon, "POST", "/api/v1/namespaces", b'{"metadata":{"name":"doomed"}}')[0] == 201
    assert _http(sluice_daemon, "POST", "/apis/networking.istio.io/v1/namespaces/doomed/virtualservices", vs)[0] == 201
    assert _http(sluice_daemon, "DELETE", "/api/v1/namespaces/doomed")[0] == 200
    assert _http(sluice_daemon, "GET", "/apis/networking.istio.io/v1/namespaces/doomed/virtualservices/reviews")[0] == 404
    code, status = _http(sluice_daemon, "DELETE", "/api/v1/namespaces/default")
    assert code == 403


def test_owner_references_cascade(api: client.ApiClient, ns: str) -> None:
    apps = client.AppsV1Api(api)
    core = client.CoreV1Api(api)
    dep = apps.create_namespaced_deployment(ns, {
        "metadata": {"name": "owner"},
        "spec": {"selector": {"matchLabels": {"app": "o"}},
                 "template": {"metadata": {"labels": {"app": "o"}},
                              "spec": {"containers": [{"name": "c", "image": "curlimages/curl"}]}}}})
    assert dep.spec.replicas == 1 and dep.spec.strategy.type == "RollingUpdate"
    ref = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "owner", "uid": dep.metadata.uid,
           "controller": True}
    core.create_namespaced_pod(ns, {"metadata": {"name": "owned", "labels": {"app": "o"}, "ownerReferences": [ref]},
                                    "spec": {"containers": [{"name": "c", "image": "curlimages/curl"}]}})
    scale = apps.patch_namespaced_deployment_scale("owner", ns, {"spec": {"replicas": 2}})
    assert scale.spec.replicas == 2
    apps.delete_namespaced_deployment("owner", ns, propagation_policy="Background")
    # Pods go gracefully: first marked for deletion, then removed once the kubelet has stopped them.

    def gone() -> bool:
        try:
            core.read_namespaced_pod("owned", ns)
        except ApiException as e:
            return e.status == 404
        return False

    wait_for(gone, timeout=30)


def test_watch_sees_added_modified_deleted(api: client.ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api)
    seen: list[tuple[str, str]] = []
    rv = core.list_namespaced_config_map(ns).metadata.resource_version

    def consume() -> None:
        w = watch.Watch()
        for ev in w.stream(core.list_namespaced_config_map, ns, resource_version=rv, timeout_seconds=20):
            seen.append((ev["type"], ev["object"].metadata.name))
            if ev["type"] == "DELETED":
                w.stop()

    t = threading.Thread(target=consume)
    t.start()
    core.create_namespaced_config_map(ns, {"metadata": {"name": "cm"}, "data": {"a": "1"}})
    core.patch_namespaced_config_map("cm", ns, {"data": {"a": "2"}})
    core.delete_namespaced_config_map("cm", ns)
    t.join(30)
    assert seen == [("ADDED", "cm"), ("MODIFIED", "cm"), ("DELETED", "cm")]


def test_list_selectors_and_paging(api: client.ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api)
    for i, app in enumerate(["a", "b", "c", "a"]):
        core.create_namespaced_config_map(ns, {"metadata": {"name": f"sel-{i}", "labels": {"app": app}}})
    names = [c.metadata.name for c in core.list_namespaced_config_map(ns, label_selector="app in (a,c)").items]
    assert names == ["sel-0", "sel-2", "sel-3"]
    names = [c.metadata.name for c in core.list_namespaced_config_map(ns, label_selector="app!=a,app").items]
    assert names == ["sel-1", "sel-2"]
    names = [c.metadata.name for c in core.list_namespaced_config_map(ns, field_selector="metadata.name=sel-1").items]
    assert names == ["sel-1"]
    page = core.list_namespaced_config_map(ns, label_selector="app", limit=3)
    assert len(page.items) == 3 and page.metadata._continue
    rest = core.list_namespaced_config_map(ns, label_selector="app", limit=3, _continue=page.metadata._continue)
    assert [c.metadata.name for c in page.items + rest.items] == ["sel-0", "sel-1", "sel-2", "sel-3"]


def test_status_only_through_status_subresource(sluice_daemon: Daemon, ns: str) -> None:
    base = f"/apis/apps/v1/namespaces/{ns}/deployments"
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "st"},
           "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "st"}},
                    "template": {"metadata": {"labels": {"app": "st"}},
                                 "spec": {"containers": [{"name": "c", "image": "curlimages/curl"}]}}},
           "status": {"replicas": 7}}
    code, obj = _http(sluice_daemon, "POST", base, json.dumps(dep).encode())
    assert code == 201 and "replicas" not in obj.get("status", {})

    def put(path: str, change: Any) -> dict[str, Any]:
        # The deployment controller writes status too: re-read and retry on 409, as every client does.
        for _ in range(20):
            cur = _http(sluice_daemon, "GET", f"{base}/st")[1]
            change(cur)
            code, out = _http(sluice_daemon, "PUT", path, json.dumps(cur).encode())
            if code != 409:
                assert code == 200, out
                return out
        raise AssertionError("conflicts did not settle")

    obj = put(f"{base}/st", lambda o: o.update(status={"replicas": 3}))
    assert obj.get("status", {}).get("replicas") is None

    def status_and_spec(o: dict[str, Any]) -> None:
        o["status"] = {"replicas": 3, "observedGeneration": 1}
        o["spec"]["replicas"] = 5

    obj = put(f"{base}/st/status", status_and_spec)
    assert obj["status"]["replicas"] == 3
    assert obj["spec"]["replicas"] == 0 and obj["metadata"]["generation"] == 1  # spec untouched by /status


def test_field_validation_modes(sluice_daemon: Daemon, ns: str) -> None:
    base = f"/apis/networking.istio.io/v1/namespaces/{ns}/virtualservices"
    vs = {**VS, "metadata": {"name": "fv"}, "spec": {**VS["spec"], "bogusField": 1}}
    code, status = _http(sluice_daemon, "POST", base + "?fieldValidation=Strict", json.dumps(vs).encode())
    assert code == 400
    assert status["message"] == ('VirtualService in version "v1" cannot be handled as a VirtualService: '
                                 'strict decoding error: unknown field "spec.bogusField"')
    ctx = ssl.create_default_context(cafile=str(sluice_daemon.home / "pki" / "ca.crt"))
    req = urllib.request.Request(sluice_daemon.api_url + base + "?fieldValidation=Warn", json.dumps(vs).encode(),
                                 {"Authorization": f"Bearer {sluice_daemon.token}",
                                  "Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, context=ctx) as r:
        assert r.status == 201
        assert r.headers.get_all("Warning") == ['299 - "unknown field \\"spec.bogusField\\""']
        assert "bogusField" not in json.loads(r.read())["spec"]  # pruned, as kube-apiserver does
    wrong = {**VS, "metadata": {"name": "wrongtype"}}
    wrong["spec"] = {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews"},
                                                                "weight": "ninety"}]}]}
    code, status = _http(sluice_daemon, "POST", base, json.dumps(wrong).encode())
    assert code == 422
    assert status["details"]["causes"][0]["field"] == "spec.http[0].route[0].weight"
