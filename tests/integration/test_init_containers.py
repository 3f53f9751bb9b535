"""Init containers as the kubelet runs them, through a real daemon and the real kubectl: in order, each to
completion before the next and before the containers; restarted on failure, or failing the pod under
restartPolicy Never; a sidecar (an init container with restartPolicy Always) kept running beside the app and
stopped once a pod that runs to completion is done. Seen from outside: the pod's status and `kubectl get`'s
STATUS column, `kubectl logs -c`, and the order in which the containers wrote to a file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import TOOLS, Kubectl, start_daemon, stop_daemon, wait_for
from tests.integration.cli_helpers import Sluice

NS = "init-containers"
NO_SIDECAR = {"sidecar.istio.io/inject": "false"}


@pytest.fixture(scope="module", params=["loopback", "netns"])
def kubectl(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kubectl]:
    d = start_daemon(tmp_path_factory.mktemp("init-home"), network=request.param)
    try:
        k = Kubectl("1.35", TOOLS / "kubectl-1.35", d, tmp_path_factory.mktemp("kcache-init"))
        k("create", "namespace", NS)
        yield k
    finally:
        stop_daemon(d)


def _sh(name: str, script: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": "busybox:1.36", "command": ["sh", "-c", script], **extra}


def _pod(name: str, inits: list[dict[str, Any]], apps: list[dict[str, Any]], policy: str = "Always",
         annotations: dict[str, str] | None = None) -> str:
    return yaml.safe_dump({"apiVersion": "v1", "kind": "Pod",
                           "metadata": {"name": name, "annotations": NO_SIDECAR if annotations is None else annotations},
                           "spec": {"restartPolicy": policy, "terminationGracePeriodSeconds": 2,
                                    "initContainers": inits, "containers": apps}})


def _get(kubectl: Kubectl, name: str) -> dict[str, Any]:
    return dict(json.loads(kubectl("get", "pod", "-n", NS, name, "-o", "json", check=True).stdout))


def _status_column(kubectl: Kubectl, name: str) -> str:
    return str(kubectl("get", "pod", "-n", NS, name, "--no-headers", check=True).stdout.split()[2])


def _condition(pod: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in pod["status"]["conditions"] if c["type"] == kind)


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def test_init_containers_run_in_order_to_completion_before_the_app(kubectl: Kubectl, tmp_path: Path) -> None:
    marker, gate = tmp_path / "order", tmp_path / "gate"
    pod = _pod("ordered", [
        _sh("first", f"echo first >> {marker}; echo hello from first"),
        _sh("second", f"echo second >> {marker}; while [ ! -f {gate} ]; do sleep 0.1; done"),
    ], [_sh("app", f"echo app >> {marker}; exec sleep 3600")], annotations={})  # with Istio's sidecar
    kubectl("apply", "-n", NS, "-f", "-", input=pod, check=True)
    try:
        # the second is still running (its gate is closed): the pod is initialising, the app waits
        def second_running() -> bool:
            st = _get(kubectl, "ordered")["status"].get("initContainerStatuses") or []
            return len(st) == 2 and "terminated" in st[0]["state"] and "running" in st[1]["state"]

        wait_for(second_running, timeout=30)
        wait_for(lambda: _lines(marker) == ["first", "second"], timeout=30)
        p = _get(kubectl, "ordered")
        assert p["status"]["phase"] == "Pending"
        init = _condition(p, "Initialized")
        assert (init["status"], init["reason"], init["message"]) == (
            "False", "ContainersNotInitialized", "containers with incomplete status: [second]")
        first, second = p["status"]["initContainerStatuses"]
        assert first["state"]["terminated"]["reason"] == "Completed" and first["ready"] is True
        assert "running" in second["state"] and second["ready"] is False
        # the injected proxy too: init containers run before it, as they do in Istio (without its CNI)
        assert {c["name"]: c["state"] for c in p["status"]["containerStatuses"]} == {
            "app": {"waiting": {"reason": "PodInitializing"}}, "istio-proxy": {"waiting": {"reason": "PodInitializing"}}}
        assert _status_column(kubectl, "ordered") == "Init:1/2"
        assert kubectl("logs", "-n", NS, "ordered", "-c", "first", check=True).stdout == "hello from first\n"
        assert _lines(marker) == ["first", "second"]

        gate.touch()
        wait_for(lambda: _condition(_get(kubectl, "ordered"), "Ready")["status"] == "True", timeout=30)
        wait_for(lambda: len(_lines(marker)) == 3, timeout=30)  # ready once running: its first line may follow
        assert _lines(marker) == ["first", "second", "app"]
        p = _get(kubectl, "ordered")
        assert _condition(p, "Initialized")["status"] == "True" and p["status"]["phase"] == "Running"
        assert [s["state"]["terminated"]["exitCode"] for s in p["status"]["initContainerStatuses"]] == [0, 0]
        assert _status_column(kubectl, "ordered") == "Running"
        # kubectl describe, and sluice's, list them first with how they ended
        for out in (kubectl("describe", "pod", "-n", NS, "ordered", check=True).stdout,
                    Sluice(kubectl.daemon.env).ok("describe", "pod", "-n", NS, "ordered")):
            init = out[out.index("Init Containers:"):out.index("\nContainers:")]
            assert [line.strip() for line in init.splitlines() if line.startswith("  ") and line.strip().endswith(":")
                    and not line.startswith("   ")] == ["first:", "second:"], init
            assert [" ".join(line.split()) for line in init.splitlines() if "Exit Code" in line or "Reason" in line
                    ] == ["Reason: Completed", "Exit Code: 0"] * 2, init
    finally:
        kubectl("delete", "pod", "-n", NS, "ordered", "--wait=false")


def test_a_failed_init_container_is_retried_or_fails_the_pod(kubectl: Kubectl, tmp_path: Path) -> None:
    marker = tmp_path / "app-ran"
    app = _sh("app", f"touch {marker}; exec sleep 3600")
    kubectl("apply", "-n", NS, "-f", "-", input=_pod("init-fails-never", [_sh("setup", "echo no; exit 3")], [app],
                                                      policy="Never"), check=True)
    kubectl("apply", "-n", NS, "-f", "-", input=_pod("init-fails-always", [_sh("setup", "exit 4")], [app]),
            check=True)
    try:
        # restartPolicy Never: the pod fails with its init container, and the app never starts
        wait_for(lambda: _get(kubectl, "init-fails-never")["status"]["phase"] == "Failed", timeout=30)
        p = _get(kubectl, "init-fails-never")
        [setup] = p["status"]["initContainerStatuses"]
        assert setup["state"]["terminated"]["exitCode"] == 3 and setup["restartCount"] == 0
        assert _condition(p, "Initialized")["status"] == "False"
        assert _status_column(kubectl, "init-fails-never") == "Init:Error"
        # otherwise it is run again (the kubelet's back-off), and the pod stays Pending meanwhile
        wait_for(lambda: _get(kubectl, "init-fails-always")["status"]["initContainerStatuses"][0]["restartCount"] >= 1,
                 timeout=30)
        p = _get(kubectl, "init-fails-always")
        assert p["status"]["phase"] == "Pending"
        assert p["status"]["containerStatuses"][0]["state"] == {"waiting": {"reason": "PodInitializing"}}
        assert not marker.exists()
    finally:
        kubectl("delete", "pod", "-n", NS, "init-fails-never", "init-fails-always", "--wait=false")


def test_a_sidecar_init_container_runs_beside_the_app_and_stops_when_it_is_done(kubectl: Kubectl,
                                                                                tmp_path: Path) -> None:
    marker = tmp_path / "order"
    side = _sh("side", f"echo side-up >> {marker}; trap 'echo side-down >> {marker}; exit 0' TERM; "
                       "while true; do sleep 0.1; done", restartPolicy="Always")
    after = _sh("after-side", f"echo after-side >> {marker}")
    app = _sh("app", f"echo app >> {marker}; sleep 1; echo app-done >> {marker}")
    kubectl("apply", "-n", NS, "-f", "-", input=_pod("with-side", [side, after], [app], policy="Never"), check=True)
    try:
        wait_for(lambda: _get(kubectl, "with-side")["status"]["phase"] == "Succeeded", timeout=60)
        # the sidecar started first and kept running through the rest; stopped once the app was done
        assert _lines(marker) == ["side-up", "after-side", "app", "app-done", "side-down"]
        p = _get(kubectl, "with-side")
        assert _condition(p, "Initialized")["status"] == "True"
        assert [s["name"] for s in p["status"]["initContainerStatuses"]] == ["side", "after-side"]
    finally:
        kubectl("delete", "pod", "-n", NS, "with-side", "--wait=false")


def test_init_containers_are_validated_as_kube_apiserver_does(kubectl: Kubectl) -> None:
    probe = {"exec": {"command": ["true"]}}
    cp = kubectl("apply", "-n", NS, "-f", "-", input=_pod("bad", [
        _sh("probed", "true", readinessProbe=probe), _sh("app", "true", restartPolicy="OnFailure")],
        [_sh("app", "true")]))
    assert cp.returncode == 1
    assert cp.stderr.strip() == (
        'The Pod "bad" is invalid: \n'
        "* spec.initContainers[0].readinessProbe: Forbidden: may not be set for init containers without "
        "restartPolicy=Always\n"
        '* spec.initContainers[1].restartPolicy: Unsupported value: "OnFailure": supported values: "Always"\n'
        '* spec.containers[0].name: Duplicate value: "app"')
    # a sidecar may have probes
    cp = kubectl("apply", "-n", NS, "-f", "-", input=_pod("probed-side", [
        _sh("side", "exec sleep 3600", restartPolicy="Always", readinessProbe=probe)], [_sh("app", "exec sleep 3600")]))
    assert cp.returncode == 0, cp.stderr
    kubectl("delete", "pod", "-n", NS, "probed-side", "--wait=false")
