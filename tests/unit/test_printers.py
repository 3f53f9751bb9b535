"""`kubectl get` tables: columns and cells as kube-apiserver and the Istio CRDs render them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sluice.resources.printers import columns, human_duration, row_cells, table

NOW = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)


def ago(seconds: float) -> str:
    return (NOW - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


# duration.HumanDuration cases (apimachinery duration_test.go and the reference's rules)
@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-2, "<invalid>"),
        (-1.5, "0s"),
        (0, "0s"),
        (1, "1s"),
        (119, "119s"),
        (120, "2m"),
        (125, "2m5s"),
        (599, "9m59s"),
        (600, "10m"),
        (3 * 3600 - 1, "179m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 60, "3h1m"),
        (8 * 3600 - 1, "7h59m"),
        (8 * 3600, "8h"),
        (48 * 3600 - 1, "47h"),
        (48 * 3600, "2d"),
        (48 * 3600 + 3600, "2d1h"),
        (8 * 86400 - 1, "7d23h"),
        (8 * 86400, "8d"),
        (2 * 365 * 86400 - 1, "729d"),
        (2 * 365 * 86400, "2y"),
        (2 * 365 * 86400 + 86400, "2y1d"),
        (8 * 365 * 86400 - 1, "7y364d"),
        (8 * 365 * 86400, "8y"),
    ],
)
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


@given(st.floats(min_value=0, max_value=1e10))
def test_human_duration_is_short(seconds: float) -> None:
    assert 2 <= len(human_duration(seconds)) <= 8


def _names(kind: str, wide: bool = True) -> list[str]:
    return [c["name"] for c in columns(kind) if wide or c["priority"] == 0]


@pytest.mark.parametrize(
    ("kind", "normal", "wide_only"),
    [
        ("VirtualService", ["Name", "Gateways", "Hosts", "Age"], []),
        ("DestinationRule", ["Name", "Host", "Age"], []),
        ("Gateway", ["Name", "Age"], []),
        ("ServiceEntry", ["Name", "Hosts", "Location", "Resolution", "Age"], []),
        ("Pod", ["Name", "Ready", "Status", "Restarts", "Age"], ["IP", "Node", "Nominated Node", "Readiness Gates"]),
        ("Deployment", ["Name", "Ready", "Up-to-date", "Available", "Age"], ["Containers", "Images", "Selector"]),
        ("Service", ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age"], ["Selector"]),
        ("Endpoints", ["Name", "Endpoints", "Age"], []),
        ("Namespace", ["Name", "Status", "Age"], []),
        ("ServiceAccount", ["Name", "Secrets", "Age"], []),
        ("ConfigMap", ["Name", "Data", "Age"], []),
        ("Event", ["Last Seen", "Type", "Reason", "Object", "Message"], ["Subobject", "Source", "First Seen", "Count", "Name"]),
        ("Scale", ["Name", "Desired", "Available", "Age"], []),
    ],
)
def test_columns(kind: str, normal: list[str], wide_only: list[str]) -> None:
    assert _names(kind, wide=False) == normal
    assert [n for n in _names(kind) if n not in normal] == wide_only
    for col in columns(kind):
        assert set(col) == {"name", "type", "format", "description", "priority"}
        assert col["description"]
    assert columns(kind) is not columns(kind)


def test_name_column_has_name_format_and_crd_age_is_date() -> None:
    assert columns("Pod")[0]["format"] == "name"
    assert columns("VirtualService")[-1]["type"] == "date"
    assert columns("virtualservice") == columns("VirtualService")


def _vs(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": name, "namespace": "default", "uid": "u", "creationTimestamp": ago(0), "labels": {"a": "b"}},
        "spec": spec,
    }


def test_virtual_service_table_matches_the_kubectl_tested_shape() -> None:
    objs = [_vs("reviews", hosts=["reviews"], gateways=["mesh"]), _vs("nogw", hosts=["ratings", "details"])]
    t = table("VirtualService", objs, now=NOW, resource_version="105")
    assert t["kind"] == "Table" and t["apiVersion"] == "meta.k8s.io/v1"
    assert t["metadata"] == {"resourceVersion": "105"}
    assert t["rows"][0]["cells"] == ["reviews", '["mesh"]', '["reviews"]', "0s"]
    assert t["rows"][1]["cells"] == ["nogw", None, '["ratings","details"]', "0s"]
    assert t["rows"][0]["object"] == {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": objs[0]["metadata"],
    }


def test_include_object_and_continue() -> None:
    obj = _vs("reviews", hosts=["reviews"])
    assert table("VirtualService", [obj], now=NOW, resource_version="1", include_object="Object")["rows"][0]["object"] == obj
    t = table("VirtualService", [obj], now=NOW, resource_version="1", include_object="None", continue_token="c1")
    assert "object" not in t["rows"][0]
    assert t["metadata"] == {"resourceVersion": "1", "continue": "c1"}
    assert table("VirtualService", [], now=NOW, resource_version="1")["rows"] == []
    with pytest.raises(ValueError):
        table("VirtualService", [obj], now=NOW, resource_version="1", include_object="Everything")


def test_istio_crd_cells() -> None:
    dr = {"metadata": {"name": "reviews", "creationTimestamp": ago(3 * 86400 + 5 * 3600)}, "spec": {"host": "reviews"}}
    assert row_cells("DestinationRule", dr, now=NOW) == ["reviews", "reviews", "3d5h"]
    se = {"metadata": {"name": "httpbin", "creationTimestamp": ago(90)},
          "spec": {"hosts": ["httpbin.org"], "location": "MESH_EXTERNAL", "resolution": "DNS"}}
    assert row_cells("ServiceEntry", se, now=NOW) == ["httpbin", '["httpbin.org"]', "MESH_EXTERNAL", "DNS", "90s"]
    gw = {"metadata": {"name": "bookinfo-gateway", "creationTimestamp": ago(600)}, "spec": {}}
    assert row_cells("Gateway", gw, now=NOW) == ["bookinfo-gateway", "10m"]
    assert row_cells("Gateway", {"metadata": {"name": "x"}}, now=NOW) == ["x", None]


def _pod(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "reviews-v3-abc", "namespace": "default", "creationTimestamp": ago(300)},
        "spec": {"containers": [{"name": "reviews"}, {"name": "istio-proxy"}], "nodeName": "sluice"},
        "status": status,
    }


RUNNING = {"running": {"startedAt": ago(290)}}


def _cs(name: str, ready: bool = True, restarts: int = 0, state: Any = None, last: Any = None) -> dict[str, Any]:
    return {"name": name, "ready": ready, "restartCount": restarts, "state": state or RUNNING, "lastState": last or {}}


@pytest.mark.parametrize(
    ("status", "ready", "reason", "restarts"),
    [
        ({"phase": "Running", "podIPs": [{"ip": "127.0.0.5"}],
          "containerStatuses": [_cs("reviews"), _cs("istio-proxy")]}, "2/2", "Running", "0"),
        ({"phase": "Pending"}, "0/2", "Pending", "0"),
        ({"phase": "Pending", "containerStatuses": [
            _cs("reviews", False, state={"waiting": {"reason": "ErrImagePull", "message": "no such image"}}),
            _cs("istio-proxy")]}, "1/2", "ErrImagePull", "0"),
        ({"phase": "Running", "containerStatuses": [
            _cs("reviews", False, 5, {"waiting": {"reason": "CrashLoopBackOff"}},
                {"terminated": {"exitCode": 1, "finishedAt": ago(3 * 60)}}),
            _cs("istio-proxy")]}, "1/2", "CrashLoopBackOff", "5 (3m ago)"),
        ({"phase": "Succeeded", "containerStatuses": [
            _cs("reviews", False, state={"terminated": {"exitCode": 0, "reason": "Completed"}}),
            _cs("istio-proxy", False, state={"terminated": {"exitCode": 0, "reason": "Completed"}})]},
         "0/2", "Completed", "0"),
        ({"phase": "Running", "containerStatuses": [
            _cs("reviews", False, state={"terminated": {"exitCode": 137, "signal": 9}}), _cs("istio-proxy")]},
         "1/2", "Signal:9", "0"),
        ({"phase": "Running", "containerStatuses": [
            _cs("reviews", False, state={"terminated": {"exitCode": 2}}), _cs("istio-proxy")]}, "1/2", "ExitCode:2", "0"),
        ({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}], "containerStatuses": [
            _cs("reviews", False, state={"terminated": {"exitCode": 0, "reason": "Completed"}}), _cs("istio-proxy")]},
         "1/2", "Running", "0"),
        ({"phase": "Running", "containerStatuses": [
            _cs("reviews", False, state={"terminated": {"exitCode": 0, "reason": "Completed"}}), _cs("istio-proxy")]},
         "1/2", "NotReady", "0"),
        ({"phase": "Failed", "reason": "Evicted"}, "0/2", "Evicted", "0"),
    ],
)
def test_pod_status_column(status: dict[str, Any], ready: str, reason: str, restarts: str) -> None:
    cells = row_cells("Pod", _pod(**status), now=NOW)
    assert cells[1:5] == [ready, reason, restarts, "5m"]


def test_pod_wide_cells_and_terminating() -> None:
    pod = _pod(phase="Running", podIPs=[{"ip": "127.0.0.5"}], containerStatuses=[_cs("reviews"), _cs("istio-proxy")])
    assert row_cells("Pod", pod, now=NOW)[5:] == ["127.0.0.5", "sluice", "<none>", "<none>"]
    pod["metadata"]["deletionTimestamp"] = ago(1)
    assert row_cells("Pod", pod, now=NOW)[2] == "Terminating"
    bare = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}, "status": {"podIP": "127.0.0.9"}}
    assert row_cells("Pod", bare, now=NOW) == ["p", "0/1", "", "0", "<unknown>", "127.0.0.9", "<none>", "<none>", "<none>"]


def test_pod_readiness_gates() -> None:
    pod = _pod(phase="Running", conditions=[{"type": "www.example.com/feature-1", "status": "True"}])
    pod["spec"]["readinessGates"] = [{"conditionType": "www.example.com/feature-1"}, {"conditionType": "other"}]
    assert row_cells("Pod", pod, now=NOW)[8] == "1/2"


def test_pod_init_containers() -> None:
    pod = _pod(phase="Pending", initContainerStatuses=[
        {"name": "init", "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}])
    pod["spec"]["initContainers"] = [{"name": "init"}, {"name": "init2"}]
    assert row_cells("Pod", pod, now=NOW)[2] == "Init:0/2"
    pod["status"]["initContainerStatuses"][0]["state"] = {"terminated": {"exitCode": 1, "reason": "Error"}}
    assert row_cells("Pod", pod, now=NOW)[2] == "Init:Error"
    pod["status"]["initContainerStatuses"][0]["state"] = {"waiting": {"reason": "CrashLoopBackOff"}}
    assert row_cells("Pod", pod, now=NOW)[2] == "Init:CrashLoopBackOff"


def test_pod_row_conditions_for_finished_pods() -> None:
    t = table("Pod", [_pod(phase="Succeeded"), _pod(phase="Running")], now=NOW, resource_version="3")
    assert t["rows"][0]["conditions"] == [
        {"type": "Completed", "status": "True", "reason": "Succeeded", "message": "The pod has completed successfully."}
    ]
    assert "conditions" not in t["rows"][1]


def test_deployment_cells() -> None:
    dep = {
        "metadata": {"name": "reviews-v2", "creationTimestamp": ago(7200)},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "reviews", "version": "v2"}},
            "template": {"spec": {"containers": [{"name": "reviews", "image": "docker.io/istio/examples-bookinfo-reviews-v2:1.20.2"}]}},
        },
        "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
    }
    assert row_cells("Deployment", dep, now=NOW) == [
        "reviews-v2", "2/3", 3, 2, "120m", "reviews", "docker.io/istio/examples-bookinfo-reviews-v2:1.20.2",
        "app=reviews,version=v2",
    ]
    dep["status"] = {}
    del dep["spec"]["replicas"]
    assert row_cells("Deployment", dep, now=NOW)[1:4] == ["0/1", 0, 0]


def test_service_cells() -> None:
    svc = {
        "metadata": {"name": "reviews", "creationTimestamp": ago(60)},
        "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.12", "clusterIPs": ["10.96.0.12"],
                 "ports": [{"port": 9080, "protocol": "TCP", "name": "http"}], "selector": {"app": "reviews"}},
    }
    assert row_cells("Service", svc, now=NOW) == ["reviews", "ClusterIP", "10.96.0.12", "<none>", "9080/TCP", "60s", "app=reviews"]
    svc["spec"].update(type="NodePort", ports=[{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}])
    svc["spec"].pop("selector")
    assert row_cells("Service", svc, now=NOW)[3:] == ["<none>", "80:30080/TCP,53/UDP", "60s", "<none>"]
    svc["spec"]["type"] = "LoadBalancer"
    assert row_cells("Service", svc, now=NOW)[3] == "<pending>"
    svc["status"] = {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}
    assert row_cells("Service", svc, now=NOW)[3] == "1.2.3.4"
    ext = {"metadata": {"name": "e"}, "spec": {"type": "ExternalName", "externalName": "example.com"}}
    assert row_cells("Service", ext, now=NOW)[1:5] == ["ExternalName", "<none>", "example.com", "<none>"]


def test_endpoints_cells() -> None:
    def eps(*subsets: Any) -> dict[str, Any]:
        return {"metadata": {"name": "reviews", "creationTimestamp": ago(5)}, "subsets": list(subsets)}

    one = {"addresses": [{"ip": "127.0.0.5"}, {"ip": "127.0.0.6"}], "ports": [{"port": 9080, "name": "http"}]}
    assert row_cells("Endpoints", eps(one), now=NOW) == ["reviews", "127.0.0.5:9080,127.0.0.6:9080", "5s"]
    many = {"addresses": [{"ip": f"127.0.0.{i}"} for i in range(5, 10)], "ports": [{"port": 9080}]}
    assert row_cells("Endpoints", eps(many), now=NOW)[1] == "127.0.0.5:9080,127.0.0.6:9080,127.0.0.7:9080 + 2 more..."
    assert row_cells("Endpoints", eps(), now=NOW)[1] == "<none>"
    headless = {"addresses": [{"ip": "::1"}], "ports": [{"port": 80}]}
    assert row_cells("Endpoints", eps(headless, {"addresses": [{"ip": "127.0.0.1"}]}), now=NOW)[1] == "[::1]:80,127.0.0.1"


def test_namespace_service_account_config_map_scale_cells() -> None:
    meta = {"name": "x", "creationTimestamp": ago(30)}
    assert row_cells("Namespace", {"metadata": meta, "status": {"phase": "Active"}}, now=NOW) == ["x", "Active", "30s"]
    assert row_cells("ServiceAccount", {"metadata": meta, "secrets": [{"name": "a"}]}, now=NOW) == ["x", 1, "30s"]
    assert row_cells("ServiceAccount", {"metadata": meta}, now=NOW) == ["x", 0, "30s"]
    cm = {"metadata": meta, "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}}
    assert row_cells("ConfigMap", cm, now=NOW) == ["x", 3, "30s"]
    scale = {"metadata": meta, "spec": {"replicas": 3}, "status": {"replicas": 1}}
    assert row_cells("Scale", scale, now=NOW) == ["x", 3, 1, "30s"]


def test_event_cells() -> None:
    event = {
        "metadata": {"name": "reviews-v2.17a", "creationTimestamp": ago(120)},
        "involvedObject": {"kind": "Pod", "name": "reviews-v2-abc", "fieldPath": "spec.containers{reviews}"},
        "reason": "Pulled",
        "message": "Container image already present \n",
        "type": "Normal",
        "source": {"component": "kubelet", "host": "sluice"},
        "firstTimestamp": ago(120),
        "lastTimestamp": ago(60),
        "count": 2,
    }
    assert row_cells("Event", event, now=NOW) == [
        "60s", "Normal", "Pulled", "pod/reviews-v2-abc", "spec.containers{reviews}", "kubelet, sluice",
        "Container image already present", "2m", 2, "reviews-v2.17a",
    ]
    new_style = {"metadata": {"name": "e"}, "involvedObject": {"kind": "Deployment"}, "eventTime": "2024-06-01T11:58:59.876543Z",
                 "reportingComponent": "deployment-controller", "type": "Normal", "reason": "ScalingReplicaSet"}
    assert row_cells("Event", new_style, now=NOW) == [
        "60s", "Normal", "ScalingReplicaSet", "deployment", "", "deployment-controller", "", "60s", 1, "e",
    ]


@pytest.mark.parametrize("kind", ["Pod", "Deployment", "Service", "Endpoints", "Namespace", "ServiceAccount",
                                  "ConfigMap", "Event", "Scale", "VirtualService", "DestinationRule", "Gateway",
                                  "ServiceEntry", "Widget"])
def test_every_row_has_one_cell_per_column_even_for_empty_objects(kind: str) -> None:
    t = table(kind, [{}, {"metadata": {"name": "n"}}], now=NOW, resource_version="9")
    for row in t["rows"]:
        assert len(row["cells"]) == len(t["columnDefinitions"])
