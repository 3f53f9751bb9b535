"""Controllers seen from outside, with the API server alone (`--no-runtime`): the test plays the kubelet by
writing pod status, so rollouts can be stepped through deterministically."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from tests.conftest import TOOLS, Daemon, start_daemon, stop_daemon, wait_for

NS = "ctl"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = start_daemon(tmp_path_factory.mktemp("ctl-home"), extra=["--no-runtime"])
    api = config.new_client_from_config(str(d.kubeconfig))
    client.CoreV1Api(api).create_namespace({"metadata": {"name": NS}})
    yield d
    stop_daemon(d)


@pytest.fixture(scope="module")
def api(daemon: Daemon) -> client.ApiClient:
    return config.new_client_from_config(str(daemon.kubeconfig))


def deployment(name: str, replicas: int, image: str = "curlimages/curl:8.16.0", **strategy: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "replicas": replicas, "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name, "version": "v1"}},
                     "spec": {"containers": [{"name": "main", "image": image, "command": ["sleep", "infinity"],
                                              "ports": [{"containerPort": 9080, "name": "http"}]}]}}}
    if strategy:
        spec["strategy"] = {"type": "RollingUpdate", "rollingUpdate": strategy}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": spec}


def pods_of(core: client.CoreV1Api, app: str) -> list[Any]:
    return [p for p in core.list_namespaced_pod(NS, label_selector=f"app={app}").items
            if p.metadata.deletion_timestamp is None]


_ips: dict[str, str] = {}


def make_ready(core: client.CoreV1Api, pod: Any) -> None:
    """What the kubelet reports for a running, ready pod."""
    ip = _ips.setdefault(pod.metadata.name, f"127.1.9.{len(_ips) + 2}")
    body = core.read_namespaced_pod(pod.metadata.name, NS).to_dict()
    status = {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
              "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
    core.patch_namespaced_pod_status(pod.metadata.name, NS, {"status": status})
    assert body["metadata"]["name"] == pod.metadata.name


def test_deployment_creates_pods_and_reports_status(api: client.ApiClient) -> None:
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    apps.create_namespaced_deployment(NS, deployment("web", 3))
    wait_for(lambda: len(pods_of(core, "web")) == 3)
    pods = pods_of(core, "web")
    hashes = {p.metadata.labels["pod-template-hash"] for p in pods}
    assert len(hashes) == 1
    h = hashes.pop()
    for p in pods:
        assert p.metadata.name.startswith(f"web-{h}-")
        owner = p.metadata.owner_references[0]
        assert (owner.kind, owner.name, owner.controller) == ("ReplicaSet", f"web-{h}", True)
    for p in pods:
        make_ready(core, p)
    wait_for(lambda: (apps.read_namespaced_deployment("web", NS).status.available_replicas or 0) == 3)
    st = apps.read_namespaced_deployment("web", NS).status
    assert (st.observed_generation, st.replicas, st.updated_replicas, st.ready_replicas) == (1, 3, 3, 3)
    assert {c.type: c.status for c in st.conditions} == {"Available": "True", "Progressing": "True"}


def test_rolling_update_honours_surge_and_unavailable(api: client.ApiClient) -> None:
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    apps.create_namespaced_deployment(NS, deployment("roll", 4, maxSurge=1, maxUnavailable=1))
    wait_for(lambda: len(pods_of(core, "roll")) == 4)
    for p in pods_of(core, "roll"):
        make_ready(core, p)
    wait_for(lambda: (apps.read_namespaced_deployment("roll", NS).status.ready_replicas or 0) == 4)
    old_hash = pods_of(core, "roll")[0].metadata.labels["pod-template-hash"]
    apps.patch_namespaced_deployment("roll", NS, {"spec": {"template": {"spec": {"containers": [
        {"name": "main", "image": "curlimages/curl:8.17.0"}]}}}})
    seen_max_total = 0
    seen_min_ready = 4
    for _ in range(60):
        pods = pods_of(core, "roll")
        ready = [p for p in pods if any(c.type == "Ready" and c.status == "True"
                                        for c in (p.status.conditions or []))]
        # What the Deployment controller bounds, as Kubernetes's does: its ReplicaSets' replicas. A pod an old
        # ReplicaSet was just scaled down from can outlive that by the ReplicaSet controller's reaction time,
        # beside one the new ReplicaSet already made (so up to 6 pods here, briefly, in Kubernetes too).
        seen_max_total = max(seen_max_total, sum(
            rs.spec.replicas or 0 for rs in apps.list_namespaced_replica_set(NS, label_selector="app=roll").items))
        seen_min_ready = min(seen_min_ready, len(ready))
        new = [p for p in pods if p.metadata.labels["pod-template-hash"] != old_hash]
        if len(new) == 4 and len(pods) == 4 and len(ready) == 4:
            break
        for p in new:
            if p not in ready:
                make_ready(core, p)
        names = sorted(p.metadata.name for p in pods)
        try:  # until the controller reacts (new pods or fewer old ones)
            wait_for(lambda names=names: sorted(p.metadata.name for p in pods_of(core, "roll")) != names, timeout=3)
        except AssertionError:
            pass
    else:
        raise AssertionError("rollout did not finish")
    assert seen_max_total <= 5  # replicas + maxSurge
    assert seen_min_ready >= 3  # replicas - maxUnavailable
    d = apps.read_namespaced_deployment("roll", NS)
    wait_for(lambda: apps.read_namespaced_deployment("roll", NS).status.updated_replicas == 4)
    assert d.metadata.generation == 2


def test_rollout_status_with_real_kubectl(daemon: Daemon, api: client.ApiClient) -> None:
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    apps.create_namespaced_deployment(NS, deployment("rs", 2))
    wait_for(lambda: len(pods_of(core, "rs")) == 2)
    procs = {v: subprocess.Popen([str(TOOLS / f"kubectl-{v}"), f"--cache-dir={daemon.home}/kc-{v}", "-n", NS,
                                  "rollout", "status", "deployment/rs", "--timeout=60s"], env=daemon.env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for v in ("1.35", "1.20")}
    for p in pods_of(core, "rs"):
        make_ready(core, p)
    for v, proc in procs.items():
        out, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, (v, out, err)
        assert 'deployment "rs" successfully rolled out' in out, (v, out)


def test_service_gets_cluster_ip_and_endpoints_of_ready_pods(api: client.ApiClient) -> None:
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    core.create_namespaced_service(NS, {"metadata": {"name": "ep"}, "spec": {
        "selector": {"app": "ep"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}})
    svc = core.read_namespaced_service("ep", NS)
    assert svc.spec.cluster_ip.startswith("10.96.")
    apps.create_namespaced_deployment(NS, deployment("ep", 2))
    wait_for(lambda: len(pods_of(core, "ep")) == 2)
    first, second = pods_of(core, "ep")
    make_ready(core, first)

    def addresses() -> list[tuple[str, int]]:
        try:
            ep = core.read_namespaced_endpoints("ep", NS)
        except client.ApiException:
            return []
        return sorted((a.ip, s.ports[0].port) for s in ep.subsets or [] for a in s.addresses or [])

    wait_for(lambda: addresses() == [(_ips[first.metadata.name], 9080)])
    make_ready(core, second)
    wait_for(lambda: len(addresses()) == 2)
    # A terminating pod leaves the endpoints; the deployment replaces it.
    core.delete_namespaced_pod(first.metadata.name, NS)
    wait_for(lambda: addresses() == [(_ips[second.metadata.name], 9080)])
    wait_for(lambda: len(pods_of(core, "ep")) == 2)


def test_external_name_services_are_validated_and_a_type_change_drops_the_address(daemon: Daemon) -> None:
    kube = [str(TOOLS / "kubectl-1.35"), f"--cache-dir={daemon.home}/kc", "-n", NS]

    def apply(spec: str) -> subprocess.CompletedProcess[str]:
        body = f"apiVersion: v1\nkind: Service\nmetadata:\n  name: ext\nspec:\n{spec}"
        return subprocess.run([*kube, "apply", "-f", "-"], input=body, env=daemon.env, capture_output=True, text=True)

    cp = apply("  type: ExternalName\n  externalName: Not_A.Name\n")
    assert cp.returncode == 1 and ('The Service "ext" is invalid: spec.externalName: Invalid value: "Not_A.Name": '
                                   "a lowercase RFC 1123 subdomain must consist of") in cp.stderr, cp.stderr
    cp = apply("  type: ExternalName\n")
    assert cp.returncode == 1 and "spec.externalName: Required value" in cp.stderr, cp.stderr
    cp = apply("  type: ExternalName\n  externalName: example.com\n  clusterIP: 10.96.200.1\n")
    assert cp.returncode == 1 and "spec.clusterIPs: Forbidden: may not be set for ExternalName services" in cp.stderr
    # a ClusterIP Service turned ExternalName by `apply` loses its address, as kube's dropTypeDependentFields does
    assert apply("  ports:\n  - port: 80\n").returncode == 0
    cp = apply("  type: ExternalName\n  externalName: example.com.\n  ports:\n  - port: 80\n")
    assert cp.returncode == 0, cp.stderr
    row = subprocess.run([*kube, "get", "svc", "ext", "--no-headers"], env=daemon.env, capture_output=True,
                         text=True).stdout.split()
    assert row[1:5] == ["ExternalName", "<none>", "example.com.", "80/TCP"], row


def test_events_show_in_describe(daemon: Daemon, api: client.ApiClient) -> None:
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(NS, deployment("ev", 1))
    kube = TOOLS / "kubectl-1.35"

    def described() -> str:
        return subprocess.run([str(kube), f"--cache-dir={daemon.home}/kc", "-n", NS, "describe", "deployment", "ev"],
                              env=daemon.env, capture_output=True, text=True).stdout

    wait_for(lambda: "ScalingReplicaSet" in described())
    assert "Scaled up replica set ev-" in described()
    events = json.loads(subprocess.run([str(kube), f"--cache-dir={daemon.home}/kc", "-n", NS, "get", "events",
                                        "-o", "json"], env=daemon.env, capture_output=True, text=True).stdout)
    assert any(e["involvedObject"]["name"] == "ev" for e in events["items"])
    assert Path(daemon.home).exists()
