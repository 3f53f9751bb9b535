"""`sluice rollouts controller` run outside the daemon (a daemon started with --no-rollouts-controller, reached
only through its kubeconfig): killed mid-rollout and started again, it carries on from the Rollout's status."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from sluice.daemon.state import Home
from tests.conftest import Daemon, start_daemon, stop_daemon, wait_for
from tests.integration.rollouts.helpers import (
    NS,
    events,
    get,
    kubectl,
    promote,
    rollout,
    rollout_status,
    subset_setup,
    vs_weights,
)

pytestmark = pytest.mark.kubectl

STEPS = """      - setWeight: 20
      - pause: {}
      - setWeight: 50
      - pause: {}
      - setWeight: 100
"""


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = start_daemon(tmp_path_factory.mktemp("rollouts-restart"), extra=["--no-rollouts-controller"])
    kubectl(d, "create", "namespace", NS)
    yield d
    stop_daemon(d)


def controller(d: Daemon) -> subprocess.Popen[bytes]:
    metrics = (Home(d.home).read_run() or {})["metrics_port"]
    log = open(d.home / "controller.log", "ab")  # noqa: SIM115 - handed to the child
    return subprocess.Popen([sys.executable, "-m", "sluice.cli", "rollouts", "controller", "--kubeconfig",
                             str(d.kubeconfig), "--prometheus-url", f"http://127.0.0.1:{metrics}", "--resync", "5"],
                            env=d.env, stdout=log, stderr=subprocess.STDOUT)


def test_a_restarted_controller_resumes_from_the_status(daemon: Daemon) -> None:
    d = daemon
    kubectl(d, "apply", "-f", "-", input=subset_setup("api"))
    kubectl(d, "apply", "-f", "-", input=rollout("api", STEPS, "v1"))
    first = controller(d)
    try:
        wait_for(lambda: rollout_status(d, "api").get("phase") == "Healthy", timeout=60)
        kubectl(d, "apply", "-f", "-", input=rollout("api", STEPS, "v2"))
        wait_for(lambda: rollout_status(d, "api").get("phase") == "Paused", timeout=60)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    v2 = rollout_status(d, "api")["currentPodHash"]
    assert vs_weights(d, "api") == {"stable": 80, "canary": 20}
    promote(d, "api")  # while no controller runs

    second = controller(d)
    try:
        wait_for(lambda: rollout_status(d, "api").get("currentStepIndex") == 3
                 and rollout_status(d, "api").get("phase") == "Paused", timeout=60)
        assert vs_weights(d, "api") == {"stable": 50, "canary": 50}
        st = rollout_status(d, "api")
        assert st["currentPodHash"] == v2 and st["canary"]["weights"]["canary"]["weight"] == 50
        rss = json.loads(kubectl(d, "get", "rs", "-l", "app=api", "-o", "json").stdout)["items"]
        assert sorted(rs["metadata"]["annotations"]["rollout.argoproj.io/revision"] for rs in rss) == ["1", "2"]
        assert get(d, "rollout", "api")["metadata"]["annotations"]["rollout.argoproj.io/revision"] == "2"
        created = [m for r, m in events(d, "api") if r == "NewReplicaSetCreated"]
        assert len(created) == 2, created
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(20) == 0  # stops cleanly on SIGTERM
