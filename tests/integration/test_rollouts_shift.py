"""`sluice rollouts shift`: the seed story as one command, on Istio's helloworld sample (loopback mode) with the
sleep pod sending traffic. A canary that fails every request is rolled back by the judge (all traffic on the old
subset again, exit 1); a shift without the judge walks the steps in the user's own VirtualService and then
decommissions the old version with its idle proof."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import TOOLS, start_daemon, stop_daemon, wait_for
from tests.integration.cli_helpers import Sluice
from tests.integration.netns.test_istio_samples import HELLOWORLD, SLEEP, Kube

ROUTING = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: helloworld
spec:
  host: helloworld
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
  - name: broken
    labels: {version: broken}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: helloworld
spec:
  hosts: [helloworld]
  http:
  - name: primary
    retries: {attempts: 0}
    route:
    - destination: {host: helloworld, subset: v1}
"""

# A canary that is Ready but answers nothing: its sidecar turns every request into a 503.
BROKEN = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: helloworld-broken
  labels: {app: helloworld, version: broken}
spec:
  replicas: 1
  selector:
    matchLabels: {app: helloworld, version: broken}
  template:
    metadata:
      labels: {app: helloworld, version: broken}
    spec:
      containers:
      - name: helloworld
        image: busybox
        command: ["sleep", "3600"]
        ports:
        - containerPort: 5000
"""

# Requests as fast as one client sends them, for at most ~3 minutes (the test stops it sooner).
TRAFFIC = "for i in $(seq 20000); do curl -s -o /dev/null http://helloworld:5000/hello; done"


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kube]:
    d = start_daemon(tmp_path_factory.mktemp("shift-home"), network="loopback")
    k = Kube(d)
    try:
        for manifest in (SLEEP, HELLOWORLD, BROKEN, ROUTING):
            k("apply", "-f", "-", input=manifest)
        k("wait", "--for=condition=Available", "deployment", "--all", "--timeout=180s")
        yield k
    finally:
        stop_daemon(d)


@pytest.fixture
def traffic(mesh: Kube) -> Iterator[None]:
    p = subprocess.Popen([str(TOOLS / "kubectl-1.35"), "exec", "deploy/sleep", "--", "sh", "-c", TRAFFIC],
                         env=mesh.d.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        p.kill()
        p.wait()


def _weights(k: Kube) -> dict[str, int]:
    vs = json.loads(k("get", "virtualservice", "helloworld", "-o", "json"))
    route: list[dict[str, Any]] = vs["spec"]["http"][0]["route"]
    return {d["destination"]["subset"]: int(d.get("weight", 100)) for d in route}


def test_a_failing_canary_is_rolled_back_by_the_judge(mesh: Kube, traffic: None) -> None:
    sluice = Sluice(mesh.d.env)
    cp = sluice("rollouts", "shift", "helloworld", "--from", "v1", "--to", "broken", "--steps", "20,100",
                "--interval", "2m", "--max-wait", "1m", "--no-decommission", timeout=240)
    assert cp.returncode == 1, cp.stdout + cp.stderr
    assert "Traceback" not in cp.stderr
    assert "step 1/2: 20% to broken, 80% to v1" in cp.stdout, cp.stdout
    assert "judge: Failed:" in cp.stdout, cp.stdout
    assert "error: rolled back: all of helloworld's traffic is on v1 again" in cp.stderr, cp.stderr
    assert _weights(mesh) == {"v1": 100, "broken": 0}
    assert json.loads(mesh("get", "deployment", "helloworld-v1", "-o", "json"))["spec"]["replicas"] == 1


def test_unjudged_shift_walks_the_steps_then_decommissions(mesh: Kube, traffic: None) -> None:
    sluice = Sluice(mesh.d.env)
    mesh("apply", "-f", "-", input=ROUTING)  # the route to v1 alone, as the story starts
    seen: list[dict[str, int]] = []
    out = sluice.ok("rollouts", "shift", "helloworld", "--from", "v1", "--to", "v2", "--steps", "50,100",
                    "--interval", "3s", "--no-judge", "--window", "10s")
    assert "step 1/2: 50% to v2, 50% to v1" in out and "step 2/2: 100% to v2, 0% to v1" in out, out
    assert "deployment.apps/helloworld-v1 scaled to 0" in out, out
    assert out.rstrip().endswith("done: all of helloworld's traffic goes to v2")
    seen.append(_weights(mesh))
    assert seen == [{"v1": 0, "v2": 100}]
    wait_for(lambda: json.loads(mesh("get", "deployment", "helloworld-v1", "-o", "json"))["status"].get(
        "replicas", 0) == 0, timeout=60)
    # requests keep being answered, all by v2
    out = mesh("exec", "deploy/sleep", "--", "curl", "-s", "http://helloworld:5000/hello")
    assert out.startswith("Hello version: v2"), out


def test_bad_arguments_are_refused_before_anything_changes(mesh: Kube) -> None:
    sluice = Sluice(mesh.d.env)
    before = _weights(mesh)
    for args, message in ((["--steps", "10,5"], "invalid --steps"),
                          (["--to", "v9"], "defines subset(s) v9"),):
        base = {"--from": "v2", "--to": "v1", "--steps": "50,100"}
        argv = ["rollouts", "shift", "helloworld"]
        for k, v in base.items():
            if k not in args:
                argv += [k, v]
        cp = sluice(*argv, *args)
        assert cp.returncode == 1 and message in cp.stderr, cp.stderr
        assert "Traceback" not in cp.stderr
    assert _weights(mesh) == before
