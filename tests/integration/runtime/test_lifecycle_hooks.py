"""Container lifecycle hooks as the kubelet runs them: postStart before the container counts as running, preStop
before SIGTERM, a failed postStart kills the run (and says so in an event), a failed preStop is reported and the
container stopped anyway. Observed from outside: files the hooks and the app write, the pod's status, events."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from sluice.resources.kinds import by_kind
from tests.integration.runtime.harness import (
    POD,
    Cluster,
    listening,
    pod,
    server_container,
    wait_until,
)

EVENT = by_kind("", "Event")
assert EVENT is not None


def _events(cluster: Cluster, reason: str) -> list[dict[str, Any]]:
    items, _, _ = cluster.registry.list_objects(EVENT, "v1", "default")
    return [e for e in items if e.get("reason") == reason]


def _append(marker: Path, word: str) -> dict[str, Any]:
    return {"exec": {"command": ["sh", "-c", f"echo {word} >> {marker}"]}}


async def test_post_start_runs_before_running_and_pre_stop_before_sigterm(cluster: Cluster, tmp_path: Path) -> None:
    marker = tmp_path / "order.txt"
    slow_pre_stop = {"exec": {"command": ["sh", "-c", f"echo prestop >> {marker}; sleep 1; echo slept >> {marker}"]}}
    c = server_container(port=8091, env=[{"name": "MARKER", "value": str(marker)}],
                         lifecycle={"postStart": _append(marker, "poststart"), "preStop": slow_pre_stop})
    cluster.create(pod("hooked", [c], terminationGracePeriodSeconds=10))
    await wait_until(lambda: cluster.ready("hooked"))
    assert marker.read_text().split() == ["poststart"]
    ip = cluster.status("hooked")["podIP"]
    await wait_until(lambda: listening(ip, 8091))  # its SIGTERM handler is in place once it listens
    cluster.registry.delete(POD, "v1", "default", "hooked", {})
    await wait_until(lambda: cluster.get("hooked") is None, timeout=20)
    # the hook ran to its end before the app got SIGTERM
    lines = [line.split()[1] if line[0].isdigit() else line for line in marker.read_text().splitlines()]
    assert lines == ["poststart", "prestop", "slept", "SIGTERM"], lines


async def test_a_failed_post_start_kills_the_run_and_says_why(cluster: Cluster, tmp_path: Path) -> None:
    marker = tmp_path / "term.txt"
    c = server_container(port=8092, env=[{"name": "MARKER", "value": str(marker)}],
                         lifecycle={"postStart": {"exec": {"command": ["sh", "-c", "echo no way; exit 3"]}}})
    created = cluster.create(pod("poststart-fails", [c], terminationGracePeriodSeconds=2))
    uid = created["metadata"]["uid"]
    await wait_until(lambda: cluster.container("poststart-fails", "app").get("restartCount", 0) >= 1, timeout=30)
    assert not cluster.ready("poststart-fails")
    [event, *_] = _events(cluster, "FailedPostStartHook")
    assert event["type"] == "Warning" and event["involvedObject"]["name"] == "poststart-fails"
    assert event["message"] == (
        f'Exec lifecycle hook ([sh -c echo no way; exit 3]) for Container "app" in Pod '
        f'"poststart-fails_default({uid})" failed - error: command \'sh -c echo no way; exit 3\' exited with 3: '
        'no way\n, message: "no way\\n"')


async def test_a_failed_pre_stop_is_reported_and_the_container_stopped(cluster: Cluster, tmp_path: Path) -> None:
    marker = tmp_path / "term.txt"
    c = server_container(port=8093, env=[{"name": "MARKER", "value": str(marker)}],
                         lifecycle={"preStop": {"httpGet": {"path": "/bye", "port": 1}},  # nothing listens on 1
                                    "postStart": {"sleep": {"seconds": 1}}})
    cluster.create(pod("prestop-fails", [c], terminationGracePeriodSeconds=5))
    await wait_until(lambda: cluster.ready("prestop-fails"))
    await wait_until(lambda: listening(cluster.status("prestop-fails")["podIP"], 8093))
    cluster.registry.delete(POD, "v1", "default", "prestop-fails", {})
    await wait_until(lambda: cluster.get("prestop-fails") is None, timeout=20)
    assert "SIGTERM" in marker.read_text()
    [event] = _events(cluster, "FailedPreStopHook")
    assert event["message"].startswith('HTTP lifecycle hook (/bye) for Container "app" in Pod "prestop-fails_default(')
    assert "failed - error: Get \"http://" in event["message"] and ":1/bye\": dial tcp" in event["message"]


async def test_an_unsupported_handler_fails_as_the_kubelets_does(cluster: Cluster) -> None:
    c = {"name": "app", "image": "x", "command": [sys.executable, "-c", "import time; time.sleep(600)"],
         "lifecycle": {"postStart": {"tcpSocket": {"port": 8094}}}}
    cluster.create(pod("tcp-hook", [c], terminationGracePeriodSeconds=1))
    await wait_until(lambda: _events(cluster, "FailedPostStartHook"), timeout=30)
    assert _events(cluster, "FailedPostStartHook")[0]["message"].startswith("Cannot run handler: invalid handler: ")


async def test_a_post_start_hook_holds_the_next_container_back(cluster: Cluster, tmp_path: Path) -> None:
    """The kubelet starts a pod's containers in order and each postStart hook blocks the next container's start
    (what Istio's holdApplicationUntilProxyStarts relies on)."""
    marker = tmp_path / "order.txt"
    first = {"name": "first", "image": "x", "command": ["sleep", "600"],
             "lifecycle": {"postStart": {"exec": {"command": ["sh", "-c", f"sleep 1; echo hook >> {marker}"]}}}}
    second = {"name": "second", "image": "x", "command": ["sh", "-c", f"echo second >> {marker}; exec sleep 600"]}
    cluster.create(pod("ordered-start", [first, second], terminationGracePeriodSeconds=1))
    await wait_until(lambda: cluster.ready("ordered-start"), timeout=30)
    assert marker.read_text().split() == ["hook", "second"]
