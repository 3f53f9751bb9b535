"""Pod readiness gates, through a real daemon and the real kubectl: a pod whose containers are ready stays unready
until another writer sets each gate's condition True on its status (`kubectl patch --subresource=status`), with
the kubelet's reason and messages, and the conditions that writer set are kept by the kubelet's own writes."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from tests.conftest import TOOLS, Daemon, Kubectl, wait_for

NS = "readiness-gates"
GATE = "www.example.com/feature-1"


@pytest.fixture(scope="module")
def kubectl(sluice_daemon: Daemon, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    k = Kubectl("1.35", TOOLS / "kubectl-1.35", sluice_daemon, tmp_path_factory.mktemp("kcache-gates"))
    k("create", "namespace", NS)
    return k


def _conditions(kubectl: Kubectl) -> dict[str, dict[str, Any]]:
    pod = json.loads(kubectl("get", "pod", "-n", NS, "gated", "-o", "json", check=True).stdout)
    return {c["type"]: c for c in pod["status"].get("conditions") or []}


def _set_gate(kubectl: Kubectl, status: str, op: str) -> None:
    patch = [{"op": op, "path": "/status/conditions/-", "value": {"type": GATE, "status": status}}]
    if op == "replace":
        index = list(_conditions(kubectl)).index(GATE)
        patch = [{"op": "replace", "path": f"/status/conditions/{index}/status", "value": status}]
    kubectl("patch", "pod", "-n", NS, "gated", "--subresource=status", "--type=json", "-p", json.dumps(patch),
            check=True)


def test_a_pod_is_ready_once_its_readiness_gates_are(kubectl: Kubectl) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "gated", "annotations": {"sidecar.istio.io/inject": "false"}},
           "spec": {"readinessGates": [{"conditionType": GATE}], "terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "app", "image": "busybox:1.36", "command": ["sleep", "3600"]}]}}
    cp = kubectl("apply", "-n", NS, "-f", "-", input=yaml.safe_dump(pod), check=True)
    assert "Warning" not in cp.stderr, cp.stderr  # acted on: not named as stored-only
    try:
        wait_for(lambda: _conditions(kubectl).get("ContainersReady", {}).get("status") == "True", timeout=30)
        ready = _conditions(kubectl)["Ready"]
        assert (ready["status"], ready["reason"], ready["message"]) == (
            "False", "ReadinessGatesNotReady", f'corresponding condition of pod readiness gate "{GATE}" does not exist.')

        _set_gate(kubectl, "True", "add")
        wait_for(lambda: _conditions(kubectl)["Ready"]["status"] == "True", timeout=30)
        assert _conditions(kubectl)[GATE]["status"] == "True"  # kept through the kubelet's own write

        _set_gate(kubectl, "False", "replace")
        wait_for(lambda: _conditions(kubectl)["Ready"]["status"] == "False", timeout=30)
        assert _conditions(kubectl)["Ready"]["message"] == (
            f'the status of pod readiness gate "{GATE}" is not "True", but False')
    finally:
        kubectl("delete", "pod", "-n", NS, "gated", "--wait=false")
