"""Kubernetes container semantics through a real daemon and the real kubectl: what a container's process sees."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.conftest import TOOLS, Daemon, Kubectl, wait_for

NS = "semantics"
# Prints what the process got: argv, working directory, environment.
SCRIPT = "import json, os, sys; print(json.dumps({'argv': sys.argv, 'cwd': os.getcwd(), 'env': dict(os.environ)}))"


@pytest.fixture(scope="module")
def kubectl(sluice_daemon: Daemon, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    binary = TOOLS / "kubectl-1.35"
    if not binary.exists():
        pytest.fail(f"{binary} is missing: run `make tools`")
    return Kubectl("1.35", binary, sluice_daemon, tmp_path_factory.mktemp("kcache-semantics"))


def manifest(workdir: Path) -> tuple[str, str]:
    docs = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"LEVEL": "debug", "1st": "x"}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "show", "labels": {"app": "show"}},
         "spec": {"restartPolicy": "Never", "containers": [
             # python's image has no ENTRYPOINT: `args` alone are the command line, `$(VAR)` expanded.
             {"name": "app", "image": "python:3.12-slim", "workingDir": str(workdir),
              "args": [sys.executable, "-c", SCRIPT, "$(GREETING)", "$(REVIEWS_SERVICE_HOST)", "$$(GREETING)"],
              "resources": {"limits": {"memory": "64Mi"}},
              "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}, {"configMapRef": {"name": "cfg"}}],
              "env": [{"name": "GREETING", "value": "hello-$(CFG_LEVEL)"},
                      {"name": "MY_POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                      {"name": "MY_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                      {"name": "MEM_MI", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory",
                                                                             "divisor": "1Mi"}}}]},
             # curl's image: `args` go to its entrypoint script, which runs curl.
             {"name": "curl", "image": "curlimages/curl:8.16.0", "args": ["--version"]},
             # an image sluice does not know: `args` alone cannot run.
             {"name": "web", "image": "nginx:1.25", "args": ["-g", "daemon off;"]}]}},
    ]
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "reviews"},
               "spec": {"selector": {"app": "reviews"}, "ports": [{"name": "http", "port": 9080}]}}
    return json.dumps(service), json.dumps({"apiVersion": "v1", "kind": "List", "items": docs})


def test_command_args_workdir_env_and_service_links(kubectl: Kubectl, tmp_path: Path) -> None:
    kubectl("create", "namespace", NS, check=True)
    service, rest = manifest(tmp_path)
    kubectl("apply", "-n", NS, "-f", "-", input=service, check=True)
    cluster_ip = kubectl("get", "-n", NS, "svc", "reviews", "-o", "jsonpath={.spec.clusterIP}", check=True).stdout
    assert cluster_ip
    kubectl("apply", "-n", NS, "-f", "-", input=rest, check=True)

    def log(container: str) -> str:
        cp = kubectl("logs", "-n", NS, "show", "-c", container)
        return cp.stdout if cp.returncode == 0 else ""

    wait_for(lambda: log("app").strip(), timeout=30)
    seen = json.loads(log("app"))
    assert seen["argv"][1:] == ["hello-debug", cluster_ip, "$(GREETING)"]
    assert seen["cwd"] == str(tmp_path)
    env = seen["env"]
    assert env["REVIEWS_SERVICE_HOST"] == cluster_ip and env["REVIEWS_SERVICE_PORT"] == "9080"
    assert env["REVIEWS_SERVICE_PORT_HTTP"] == "9080" and env["REVIEWS_PORT"] == f"tcp://{cluster_ip}:9080"
    assert env["REVIEWS_PORT_9080_TCP_ADDR"] == cluster_ip
    assert env["CFG_LEVEL"] == "debug" and env["GREETING"] == "hello-debug"
    assert env["MY_NS"] == NS and env["MEM_MI"] == "64"
    pod_ip = kubectl("get", "-n", NS, "pod", "show", "-o", "jsonpath={.status.podIP}", check=True).stdout
    assert env["MY_POD_IP"] == pod_ip

    assert env["CFG_1st"] == "x" and env["LEVEL"] == "debug" and "1st" not in env

    def events(reason: str) -> list[str]:
        items = json.loads(kubectl("get", "events", "-n", NS, "-o", "json", check=True).stdout)["items"]
        return [e["message"] for e in items if e.get("reason") == reason and e["type"] == "Warning"]

    wait_for(lambda: events("InvalidEnvironmentVariableNames"), timeout=30)
    assert events("InvalidEnvironmentVariableNames")[0] == (
        f"Keys [1st] from the EnvFrom configMap {NS}/cfg were skipped since they are considered invalid environment "
        "variable names.")

    wait_for(lambda: log("curl").startswith("curl "), timeout=30)

    def waiting(container: str) -> dict[str, str]:
        pod = json.loads(kubectl("get", "-n", NS, "pod", "show", "-o", "json", check=True).stdout)
        for st in (pod.get("status") or {}).get("containerStatuses") or []:
            if st["name"] == container:
                return dict((st.get("state") or {}).get("waiting") or {})
        return {}

    wait_for(lambda: waiting("web").get("reason") == "ErrImagePull", timeout=30)
    assert "ENTRYPOINT" in waiting("web")["message"] and "set command" in waiting("web")["message"]
    kubectl("delete", "namespace", NS, "--wait=false", check=True)


def test_handlers_are_validated_as_kube_apiserver_does(kubectl: Kubectl) -> None:
    """A probe or lifecycle handler with no handler type, two of them, or a preStop sleep longer than the grace
    period is refused with kube-apiserver's messages, and nothing is stored."""
    bad = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bad-hooks"}, "spec": {
        "terminationGracePeriodSeconds": 2, "containers": [{
            "name": "app", "image": "python:3.12-slim", "command": ["sleep", "60"],
            "lifecycle": {"postStart": {"exec": {"command": ["true"]}, "sleep": {"seconds": 1}},
                          "preStop": {"sleep": {"seconds": 5}}},
            "readinessProbe": {"periodSeconds": 1}}]}}
    cp = kubectl("apply", "-f", "-", input=json.dumps(bad))
    assert cp.returncode == 1
    for line in ('The Pod "bad-hooks" is invalid',
                 "spec.containers[0].lifecycle.postStart.sleep: Forbidden: may not specify more than 1 handler type",
                 "spec.containers[0].lifecycle.preStop.sleep: Invalid value: 5: must be non-negative and less than "
                 "terminationGracePeriodSeconds (2)",
                 "spec.containers[0].readinessProbe: Required value: must specify a handler type"):
        assert line in cp.stderr, cp.stderr
    assert kubectl("get", "pod", "bad-hooks").returncode == 1
