"""setHeaderRoute and setMirrorRoute steps in a real daemon (loopback mode, real Envoy sidecars), applied with the
real kubectl: Istio's helloworld v1 → v2 as a subset-level Rollout, the sleep pod's curl as the client.

While the steps are current, a request carrying `x-canary: yes` is answered by v2 and every other request by v1
(canary weight 0), each of those is also mirrored to v2 (its sidecar logs the `-shadow` authority); a header step
without `match` takes its route out; promotion removes every managed route, and so does an abort."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.conftest import Daemon, start_daemon, stop_daemon, wait_for
from tests.integration.netns.test_istio_samples import SLEEP
from tests.integration.rollouts.helpers import (
    HELLOWORLD_ROUTING,
    NS,
    events,
    get,
    helloworld_rollout,
    kubectl,
    promote,
    rollout_status,
)

pytestmark = pytest.mark.kubectl


def rollout(version: str) -> str:
    return helloworld_rollout(version, """      scaleDownDelaySeconds: 0
      abortScaleDownDelaySeconds: 0
      trafficRouting:
        managedRoutes:
        - name: header-route
        - name: mirror-route
        istio:
          virtualService: {name: helloworld, routes: [primary]}
          destinationRule: {name: helloworld, canarySubsetName: canary, stableSubsetName: stable}
      steps:
      - setCanaryScale: {replicas: 1}
      - setHeaderRoute:
          name: header-route
          match:
          - headerName: x-canary
            headerValue: {exact: "yes"}
      - setMirrorRoute:
          name: mirror-route
          percentage: 100
          match:
          - path: {prefix: /hello}
      - pause: {}
      - setHeaderRoute: {name: header-route}
      - pause: {}
""")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = start_daemon(tmp_path_factory.mktemp("managed-routes-home"), network="loopback")
    try:
        kubectl(d, "create", "namespace", NS)
        kubectl(d, "apply", "-f", "-", input=SLEEP + "---\n" + HELLOWORLD_ROUTING)
        yield d
    finally:
        stop_daemon(d)


def http_routes(d: Daemon) -> list[dict[str, Any]]:
    return list(get(d, "virtualservice.networking.istio.io", "helloworld")["spec"]["http"])


def route_names(d: Daemon) -> list[str]:
    return [h.get("name", "") for h in http_routes(d)]


def hello(d: Daemon, *headers: str) -> str:
    """The version that answered `curl http://helloworld:5000/hello` from the sleep pod ("" on a failure)."""
    argv = ["exec", "deploy/sleep", "--", "curl", "-s", "--max-time", "5"]
    for h in headers:
        argv += ["-H", h]
    try:
        cp = kubectl(d, *argv, "http://helloworld:5000/hello", ok=False)
    except subprocess.TimeoutExpired:
        return ""
    out = cp.stdout
    return out.split(",")[0].removeprefix("Hello version: ") if out.startswith("Hello version: ") else ""


def canary_pod(d: Daemon, h: str) -> str:
    out = kubectl(d, "get", "pods", "-l", f"rollouts-pod-template-hash={h}", "-o", "name").stdout.split()
    assert len(out) == 1, out
    return out[0]


def test_header_and_mirror_routes_reach_the_canary_and_go_at_promotion(daemon: Daemon) -> None:
    d = daemon
    cp = kubectl(d, "apply", "-f", "-", input=rollout("v1"))
    assert "Warning: Rollout" not in cp.stderr, cp.stderr  # managedRoutes and the route steps are acted on
    wait_for(lambda: rollout_status(d, "helloworld").get("phase") == "Healthy", timeout=120)
    kubectl(d, "wait", "--for=condition=Available", "deployment/sleep", "--timeout=120s")
    wait_for(lambda: hello(d) == "v1", timeout=60, interval=0.5)
    assert route_names(d) == ["primary"]  # nothing managed for an initial deploy

    kubectl(d, "apply", "-f", "-", input=rollout("v2"))
    wait_for(lambda: rollout_status(d, "helloworld").get("currentStepIndex") == 3
             and rollout_status(d, "helloworld").get("phase") == "Paused", timeout=120)
    st = rollout_status(d, "helloworld")
    v2 = st["currentPodHash"]
    assert st["canary"]["weights"]["canary"]["weight"] == 0  # all unmatched traffic stays on stable
    http = http_routes(d)
    assert [h.get("name") for h in http] == ["header-route", "mirror-route", "primary"]  # managedRoutes order
    assert http[0] == {"name": "header-route", "match": [{"headers": {"x-canary": {"exact": "yes"}}}],
                       "route": [{"destination": {"host": "helloworld", "subset": "canary"}, "weight": 100}]}
    assert http[1]["match"] == [{"uri": {"prefix": "/hello"}}]
    assert http[1]["mirror"] == {"host": "helloworld", "subset": "canary"}
    assert http[1]["mirrorPercentage"] == {"value": 100}
    assert http[1]["route"] == [{"destination": {"host": "helloworld", "subset": "stable"}, "weight": 100},
                                {"destination": {"host": "helloworld", "subset": "canary"}}]
    seen = events(d, "helloworld")
    for expected in [("Updated VirtualService", "VirtualService `helloworld` set headerRoute 'header-route'"),
                     ("Updated VirtualService", "VirtualService `helloworld` set mirrorRoute 'mirror-route'"),
                     ("RolloutStepCompleted", "Rollout step 2/6 completed (setHeaderRoute: header-route)"),
                     ("RolloutStepCompleted", "Rollout step 3/6 completed (setMirrorRoute: mirror-route)")]:
        assert expected in seen, (expected, seen)

    # through Envoy: the header reaches the canary, everything else the stable subset (weight 0 to canary) ...
    wait_for(lambda: hello(d, "x-canary: yes") == "v2", timeout=60, interval=0.5)
    assert [hello(d) for _ in range(5)] == ["v1"] * 5
    assert [hello(d, "x-canary: no") for _ in range(3)] == ["v1"] * 3
    # ... and those unmatched requests are mirrored to the canary: its sidecar sees the shadow authority
    pod = canary_pod(d, v2)
    wait_for(lambda: "helloworld-shadow" in kubectl(d, "logs", pod, "-c", "istio-proxy").stdout, timeout=30,
             interval=0.5)

    promote(d, "helloworld")  # the header step without `match` takes its route out
    wait_for(lambda: rollout_status(d, "helloworld").get("currentStepIndex") == 5
             and rollout_status(d, "helloworld").get("phase") == "Paused", timeout=60)
    assert route_names(d) == ["mirror-route", "primary"]
    wait_for(lambda: hello(d, "x-canary: yes") == "v1", timeout=60, interval=0.5)

    promote(d, "helloworld")
    wait_for(lambda: rollout_status(d, "helloworld").get("stableRS") == v2
             and rollout_status(d, "helloworld").get("phase") == "Healthy", timeout=120)
    wait_for(lambda: route_names(d) == ["primary"], timeout=30)
    assert ("Updated VirtualService", "VirtualService `helloworld` removed all managed routes.") \
        in events(d, "helloworld")
    wait_for(lambda: hello(d) == "v2", timeout=60, interval=0.5)
    assert hello(d, "x-canary: yes") == "v2"


def test_abort_removes_the_managed_routes(daemon: Daemon) -> None:
    d = daemon
    kubectl(d, "apply", "-f", "-", input=rollout("v2"))  # v2 stable (the test above ends there, or an initial deploy)
    wait_for(lambda: rollout_status(d, "helloworld").get("phase") == "Healthy"
             and rollout_status(d, "helloworld").get("stableRS") == rollout_status(d, "helloworld").get(
                 "currentPodHash"), timeout=120)
    kubectl(d, "apply", "-f", "-", input=rollout("v1"))
    wait_for(lambda: rollout_status(d, "helloworld").get("currentStepIndex") == 3
             and rollout_status(d, "helloworld").get("phase") == "Paused", timeout=120)
    assert route_names(d) == ["header-route", "mirror-route", "primary"]
    wait_for(lambda: hello(d, "x-canary: yes") == "v1", timeout=60, interval=0.5)

    kubectl(d, "patch", "rollout", "helloworld", "--subresource=status", "--type=merge", "-p",
            '{"status": {"abort": true}}')  # kubectl argo rollouts abort helloworld
    wait_for(lambda: rollout_status(d, "helloworld").get("phase") == "Degraded", timeout=60)
    wait_for(lambda: route_names(d) == ["primary"], timeout=30)
    wait_for(lambda: hello(d, "x-canary: yes") == "v2", timeout=60, interval=0.5)
    assert [hello(d) for _ in range(3)] == ["v2"] * 3


def test_without_admission_the_controller_reports_the_route_errors_as_invalid_spec(daemon: Daemon) -> None:
    """The controller against a cluster whose API server stores the Rollout as written (a real Argo CRD has no
    such admission as Sluice's): the same Argo message, as the InvalidSpec text it puts in the status."""
    from sluice.rollouts.canary import RolloutPass
    from sluice.rollouts.kube import Kube
    from sluice.rollouts.providers import PromQuery

    def no_prometheus(address: str) -> PromQuery:
        raise AssertionError(f"no query expected ({address})")

    ro = yaml.safe_load(rollout("v1"))
    ro["metadata"]["namespace"] = NS
    canary = ro["spec"]["strategy"]["canary"]
    kube = Kube.from_kubeconfig(str(daemon.home / "kubeconfig"))
    try:
        del canary["trafficRouting"]["managedRoutes"]
        assert RolloutPass(kube, ro, no_prometheus).invalid_spec() == (
            "spec.strategy.trafficRouting.managedRoutes: Required value: Rollout has missing field "
            "'spec.strategy.canary.trafficRouting.managedRoutes'")
        canary["trafficRouting"]["managedRoutes"] = [{"name": "header-route"}]
        assert RolloutPass(kube, ro, no_prometheus).invalid_spec() == (
            'spec.strategy.steps[2].setMirrorRoute: Invalid value: "mirror-route": Steps define a route that does '
            "not exist in spec.strategy.canary.trafficRouting.managedRoutes")
        canary["trafficRouting"]["managedRoutes"] = [{"name": "header-route"}, {"name": "mirror-route"}]
        assert RolloutPass(kube, ro, no_prometheus).invalid_spec() == ""
    finally:
        kube.close()
