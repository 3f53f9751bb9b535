"""Istio's app-probe rewrite at injection (pkg/kube/inject/app_probe.go) and what the kubelet reads back."""

from __future__ import annotations

import json
from typing import Any

from sluice.resources.appprobes import PROBERS_ENV, app_prober, rewrite


def _pod(annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "p", "annotations": annotations or {}}, "spec": {"containers": [{
        "name": "app", "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/ready", "port": "http", "scheme": "HTTPS",
                                       "httpHeaders": [{"name": "X", "value": "1"}]}, "timeoutSeconds": 2},
        "livenessProbe": {"grpc": {"port": 9000}, "periodSeconds": 3},
        "startupProbe": {"exec": {"command": ["true"]}}}]}}


def test_probes_are_rewritten_and_the_originals_handed_to_the_agent() -> None:
    pod, sidecar = _pod(), {"name": "istio-proxy", "env": []}
    rewrite(pod, sidecar)
    [app] = pod["spec"]["containers"]
    assert app["readinessProbe"] == {"httpGet": {"path": "/app-health/app/readyz", "port": 15020, "scheme": "HTTP",
                                                 "httpHeaders": [{"name": "X", "value": "1"}]}, "timeoutSeconds": 2}
    assert app["livenessProbe"] == {"httpGet": {"path": "/app-health/app/livez", "port": 15020}, "periodSeconds": 3}
    assert app["startupProbe"] == {"exec": {"command": ["true"]}}  # the agent runs no commands
    [env] = sidecar["env"]
    assert env["name"] == PROBERS_ENV
    table = json.loads(env["value"])
    assert table == {"/app-health/app/livez": {"grpc": {"port": 9000}},
                     "/app-health/app/readyz": {"httpGet": {"path": "/ready", "port": 8080, "scheme": "HTTPS",
                                                            "httpHeaders": [{"name": "X", "value": "1"}]},
                                                "timeoutSeconds": 2}}
    assert app_prober(pod, env["value"], app["readinessProbe"]) == table["/app-health/app/readyz"]
    assert app_prober(pod, env["value"], {"httpGet": {"path": "/ready", "port": 8080}}) is None


def test_the_annotation_turns_it_off_and_the_status_port_moves_it() -> None:
    for off in ("false", "0", "F"):
        pod, sidecar = _pod({"sidecar.istio.io/rewriteAppHTTPProbers": off}), {"name": "istio-proxy"}
        rewrite(pod, sidecar)
        assert pod == _pod({"sidecar.istio.io/rewriteAppHTTPProbers": off}) and "env" not in sidecar
    pod, sidecar = _pod({"status.sidecar.istio.io/port": "15999"}), {"name": "istio-proxy"}
    rewrite(pod, sidecar)
    probe = pod["spec"]["containers"][0]["readinessProbe"]
    assert probe["httpGet"]["port"] == 15999
    assert app_prober(pod, sidecar["env"][0]["value"], probe) is not None


def test_lifecycle_handlers_are_rewritten_to_the_agents_lifecycle_paths() -> None:
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{
        "name": "web", "ports": [{"name": "http", "containerPort": 8080}],
        "lifecycle": {"preStop": {"httpGet": {"path": "/drain", "port": "http"}},
                      "postStart": {"tcpSocket": {"port": 8080}}}}, {
        "name": "worker", "lifecycle": {"preStop": {"exec": {"command": ["sleep", "5"]}},
                                        "postStart": {"sleep": {"seconds": 1}}}}]}}
    sidecar: dict[str, Any] = {"name": "istio-proxy", "env": []}
    rewrite(pod, sidecar)
    web, worker = pod["spec"]["containers"]
    assert web["lifecycle"] == {"preStop": {"httpGet": {"path": "/app-lifecycle/web/prestopz", "port": 15020}},
                                "postStart": {"httpGet": {"path": "/app-lifecycle/web/poststartz", "port": 15020}}}
    assert worker["lifecycle"] == {"preStop": {"exec": {"command": ["sleep", "5"]}},
                                   "postStart": {"sleep": {"seconds": 1}}}  # nothing for the agent to do
    table = json.loads(sidecar["env"][0]["value"])
    assert table == {"/app-lifecycle/web/poststartz": {"tcpSocket": {"port": 8080}},
                     "/app-lifecycle/web/prestopz": {"httpGet": {"path": "/drain", "port": 8080}}}
    assert app_prober(pod, sidecar["env"][0]["value"], web["lifecycle"]["preStop"]) == {
        "httpGet": {"path": "/drain", "port": 8080}}
