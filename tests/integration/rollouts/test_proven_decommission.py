"""Proven decommission in the rollouts controller (issue 13, point 5), in a real daemon (loopback mode, real Envoy
sidecars) with the real kubectl: after promotion the old ReplicaSet is scaled down only once Istio's metrics for its
workload and its pods' sidecar access logs show nothing over the window (scaleDownDelaySeconds).

Istio's helloworld v1 → v2 as a subset-level Rollout. A second Service, `helloworld-old`, selects the v1 pods only
(by their `rollouts-pod-template-hash`), the way a forgotten client keeps calling an old version behind the
rollout's back. While the sleep pod calls it, the promoted rollout keeps v1 past its delay and says why in an Event;
once the calls stop, v1 goes, with the proof in the ReplicaSet's annotation, the Rollout's `Decommissioned`
condition and a DecommissionProven Event."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator

import pytest

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

WINDOW_S = 4


def rollout(version: str) -> str:
    return helloworld_rollout(version, f"""      scaleDownDelaySeconds: {WINDOW_S}
      trafficRouting:
        istio:
          virtualService: {{name: helloworld, routes: [primary]}}
          destinationRule: {{name: helloworld, canarySubsetName: canary, stableSubsetName: stable}}
      steps:
      - setWeight: 50
      - pause: {{}}
""")


def old_service(h: str) -> str:
    return f"""
apiVersion: v1
kind: Service
metadata: {{name: helloworld-old}}
spec:
  selector: {{app: helloworld, rollouts-pod-template-hash: "{h}"}}
  ports: [{{name: http, port: 5000}}]
"""


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = start_daemon(tmp_path_factory.mktemp("decommission-home"), network="loopback")
    try:
        kubectl(d, "create", "namespace", NS)
        kubectl(d, "apply", "-f", "-", input=SLEEP + "---\n" + HELLOWORLD_ROUTING)
        yield d
    finally:
        stop_daemon(d)


def hello(d: Daemon, host: str) -> str:
    """The version that answered `curl http://HOST:5000/hello` from the sleep pod ("" on a failure)."""
    try:
        cp = kubectl(d, "exec", "deploy/sleep", "--", "curl", "-s", "--max-time", "5", f"http://{host}:5000/hello",
                     ok=False)
    except subprocess.TimeoutExpired:
        return ""
    out = cp.stdout
    return out.split(",")[0].removeprefix("Hello version: ") if out.startswith("Hello version: ") else ""


def replicas(d: Daemon, h: str) -> int:
    return int(get(d, "replicaset", f"helloworld-{h}")["spec"]["replicas"])


def test_the_old_version_goes_only_once_proven_idle(daemon: Daemon) -> None:
    d = daemon
    kubectl(d, "apply", "-f", "-", input=rollout("v1"))
    wait_for(lambda: rollout_status(d, "helloworld").get("phase") == "Healthy", timeout=120)
    kubectl(d, "wait", "--for=condition=Available", "deployment/sleep", "--timeout=120s")
    v1 = str(rollout_status(d, "helloworld")["stableRS"])
    kubectl(d, "apply", "-f", "-", input=old_service(v1))
    wait_for(lambda: hello(d, "helloworld-old") == "v1", timeout=60, interval=0.5)

    # a client of the old version only, calling it all along
    stop = threading.Event()
    answers: list[str] = []

    def call_old() -> None:
        while not stop.is_set():
            answers.append(hello(d, "helloworld-old"))

    caller = threading.Thread(target=call_old, daemon=True)
    caller.start()
    try:
        kubectl(d, "apply", "-f", "-", input=rollout("v2"))
        wait_for(lambda: rollout_status(d, "helloworld").get("phase") == "Paused", timeout=120)
        v2 = str(rollout_status(d, "helloworld")["currentPodHash"])
        promote(d, "helloworld")
        wait_for(lambda: rollout_status(d, "helloworld").get("stableRS") == v2
                 and rollout_status(d, "helloworld").get("phase") == "Healthy", timeout=120)
        wait_for(lambda: hello(d, "helloworld") == "v2", timeout=60, interval=0.5)

        # past scaleDownDelaySeconds, v1 still gets requests: it is kept, and an Event says why
        def pending() -> list[str]:
            return [m for r, m in events(d, "helloworld") if r == "DecommissionPending"]

        wait_for(pending, timeout=60, interval=0.5)
        [message] = pending()
        assert message.startswith(f"ReplicaSet helloworld-{v1} (revision 1) is kept until it is proven idle: "
                                  f"helloworld-{v1} is not idle over the last {WINDOW_S}s: "), message
        assert replicas(d, v1) == 1
        assert hello(d, "helloworld-old") == "v1"
        # the condition is written at the end of the pass that told the Event
        wait_for(lambda: decommissioned(d), timeout=30, interval=0.2)
        kept = decommissioned(d)
        assert (kept["status"], kept["reason"]) == ("False", "DecommissionPending"), kept
        assert kept["message"].startswith(f"ReplicaSet helloworld-{v1} (revision 1) is kept until"), kept
    finally:
        stop.set()
        caller.join(timeout=30)
    assert answers.count("v1") >= 2, answers

    # the calls stopped: once the window has passed with nothing in it, v1 goes, with the proof
    wait_for(lambda: replicas(d, v1) == 0, timeout=90, interval=0.5)
    rs = get(d, "replicaset", f"helloworld-{v1}")
    proof = json.loads(rs["metadata"]["annotations"]["sluice.dev/decommission-proof"])
    assert proof["idle"] is True and proof["workload"] == f"helloworld-{v1}" and proof["namespace"] == NS
    assert proof["window"]["seconds"] == WINDOW_S
    assert {m["what"] for m in proof["metrics"]} >= {"requests (increase of istio_requests_total)"}
    assert all(m["value"] in (None, 0) for m in proof["metrics"]), proof
    assert [log["inboundLines"] for log in proof["accessLogs"]] == [0], proof  # the v1 pod's sidecar agrees
    proven = [m for r, m in events(d, "helloworld") if r == "DecommissionProven"]
    assert len(proven) == 1 and proven[0].startswith(
        f"ReplicaSet helloworld-{v1} (revision 1): helloworld-{v1} received no requests or connections in the last "
        f"{WINDOW_S}s (Istio's metrics and the istio-proxy logs of 1 pod(s) agree). window "), proven
    # and the whole proof in the Rollout's status: the window, every query with its answer, the log's count
    wait_for(lambda: decommissioned(d).get("status") == "True", timeout=30, interval=0.2)
    done = decommissioned(d)
    assert (done["status"], done["reason"]) == ("True", "DecommissionProven"), done
    assert done["message"] == proven[0], done  # the Event tells the same proof
    assert f"({WINDOW_S}s)" in done["message"], done
    for m in proof["metrics"]:
        assert f"{m['query']} = {'no series' if m['value'] is None else 0}" in done["message"], done
    assert "istio-proxy log of helloworld-" in done["message"] and ": 0 inbound line(s)" in done["message"], done


def decommissioned(d: Daemon) -> dict[str, str]:
    """The Rollout's `Decommissioned` condition ({} while there is none)."""
    found = [c for c in rollout_status(d, "helloworld").get("conditions") or [] if c.get("type") == "Decommissioned"]
    return {k: str(found[0].get(k)) for k in ("status", "reason", "message")} if found else {}
