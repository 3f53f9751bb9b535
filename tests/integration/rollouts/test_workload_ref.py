"""A Deployment migrated to a Rollout through `spec.workloadRef`, in a real daemon with the real kubectl: the
Rollout's own ReplicaSets run the Deployment's Pod template, `scaleDown` decides what becomes of the Deployment
(never / onsuccess / progressively), a change to the Deployment's template is a canary revision that goes
through the steps, and a reference to a missing Deployment is InvalidSpec with Argo's message."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Daemon, start_daemon, stop_daemon, wait_for
from tests.integration.cli_helpers import Sluice, with_namespace
from tests.integration.rollouts.helpers import (
    NS,
    events,
    get,
    kubectl,
    promote,
    rollout_status,
    sleep_template,
    subset_canary,
    subset_setup,
    vs_weights,
)

pytestmark = pytest.mark.kubectl

STEPS = """      - setWeight: 50
      - pause: {}
      - setWeight: 100
"""


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = start_daemon(tmp_path_factory.mktemp("workload-ref-home"))
    kubectl(d, "create", "namespace", NS)
    yield d
    stop_daemon(d)


def deployment(app: str, replicas: int = 2) -> str:
    """The user's Deployment as it ran before the migration; pods are `sleep` processes without a sidecar."""
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {app}}}
spec:
  replicas: {replicas}
{sleep_template(app)}"""


def ref_rollout(app: str, scale_down: str, deployment_name: str | None = None) -> str:
    """Argo's "Reference Deployment From Rollout": no selector, no template, the subset-level Istio canary."""
    return f"""
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: {app}}}
spec:
  replicas: 2
  workloadRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {deployment_name or app}
    scaleDown: {scale_down}
{subset_canary(app, STEPS)}"""


def pods(d: Daemon, selector: str) -> list[dict[str, object]]:
    out = json.loads(kubectl(d, "get", "pods", "-l", selector, "-o", "json").stdout)
    return [p for p in out["items"] if not p["metadata"].get("deletionTimestamp")]


def env_of(rs: dict[str, object]) -> dict[str, str]:
    (container,) = rs["spec"]["template"]["spec"]["containers"]  # type: ignore[index]
    return {e["name"]: e["value"] for e in container.get("env") or []}


def deployment_replicas(d: Daemon, app: str) -> int:
    return int(get(d, "deployment", app)["spec"]["replicas"])


def migrate(d: Daemon, app: str, scale_down: str) -> str:
    """The Deployment running, then the Rollout that references it; the Rollout's stable hash once Healthy."""
    kubectl(d, "apply", "-f", "-", input=subset_setup(app) + "---" + deployment(app))
    wait_for(lambda: (get(d, "deployment", app).get("status") or {}).get("availableReplicas") == 2,
             timeout=60, interval=0.5)
    cp = kubectl(d, "apply", "-f", "-", input=ref_rollout(app, scale_down))
    assert "Warning" not in cp.stderr, cp.stderr  # workloadRef is acted on
    wait_for(lambda: rollout_status(d, app).get("phase") == "Healthy", timeout=60, interval=0.5)
    return str(rollout_status(d, app)["stableRS"])


def test_onsuccess_migration_then_a_deployment_template_change_is_a_canary(daemon: Daemon) -> None:
    d = daemon
    kept = migrate(d, "kept", "never")  # first, so the passes that scale `web` below have seen it Healthy
    v1 = migrate(d, "web", "onsuccess")
    # onsuccess: the Deployment goes to 0 once the Rollout is Healthy (a new generation of it, observed too)
    wait_for(lambda: deployment_replicas(d, "web") == 0, timeout=60, interval=0.5)
    generation = str(get(d, "deployment", "web")["metadata"]["generation"])
    # the status and the annotation are two writes of the controller: wait for both
    wait_for(lambda: (lambda ro: (ro.get("status") or {}).get("workloadObservedGeneration") == generation
                      and (ro["metadata"].get("annotations") or {}).get("rollout.argoproj.io/workload-generation")
                      == generation)(get(d, "rollout", "web")), timeout=60, interval=0.5)
    ro = get(d, "rollout", "web")
    assert ro["status"]["selector"] == "app=web"  # the Deployment's selector, the Rollout has none
    assert "template" not in ro["spec"] and "selector" not in ro["spec"]  # resolved, never written back
    rs = get(d, "replicaset", f"web-{v1}")
    assert rs["metadata"]["ownerReferences"][0]["kind"] == "Rollout"
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", "rollouts-pod-template-hash": v1}
    assert env_of(rs) == {"VERSION": "v1"}
    assert len(pods(d, f"rollouts-pod-template-hash={v1}")) == 2

    # the Deployment's own pods are gone, the Rollout's serve
    wait_for(lambda: len(pods(d, "app=web")) == 2, timeout=60, interval=0.5)
    assert all("rollouts-pod-template-hash" in p["metadata"]["labels"]  # type: ignore[index,operator]
               for p in pods(d, "app=web"))
    # never: the Deployment kept its pods, though the passes above saw its Rollout Healthy
    assert rollout_status(d, "kept")["stableRS"] == kept
    assert deployment_replicas(d, "kept") == 2

    # the update is made to the Deployment's template, as Argo's migration guide says
    kubectl(d, "set", "env", "deployment/web", "VERSION=v2")
    wait_for(lambda: rollout_status(d, "web").get("phase") == "Paused", timeout=60, interval=0.5)
    st = rollout_status(d, "web")
    v2 = st["currentPodHash"]
    assert v2 != v1 and st["stableRS"] == v1 and st["currentStepIndex"] == 1
    assert st["workloadObservedGeneration"] == str(get(d, "deployment", "web")["metadata"]["generation"])
    assert st["workloadObservedGeneration"] != generation
    assert st["canary"]["weights"]["canary"] == {"weight": 50, "podTemplateHash": v2}
    assert vs_weights(d, "web") == {"stable": 50, "canary": 50}
    new_rs = get(d, "replicaset", f"web-{v2}")
    assert env_of(new_rs) == {"VERSION": "v2"}
    assert new_rs["metadata"]["annotations"]["rollout.argoproj.io/revision"] == "2"

    promote(d, "web")
    wait_for(lambda: rollout_status(d, "web").get("stableRS") == v2
             and rollout_status(d, "web").get("phase") == "Healthy", timeout=60, interval=0.5)
    assert vs_weights(d, "web") == {"stable": 100, "canary": 0}
    wait_for(lambda: get(d, "replicaset", f"web-{v1}")["spec"]["replicas"] == 0, timeout=60, interval=0.5)
    assert deployment_replicas(d, "web") == 0  # the Deployment only holds the template now
    seen = events(d, "web")
    for expected in [("RolloutCompleted", f"Rollout completed update to revision 1 ({v1}): Initial deploy"),
                     ("RolloutCompleted", f"Rollout completed update to revision 2 ({v2}): Completed all 3 canary steps")]:
        assert expected in seen, (expected, seen)


def test_set_image_and_undo_change_the_deployment(daemon: Daemon, tmp_path: Path) -> None:
    """`sluice rollouts set image|undo` on a workloadRef Rollout edit the Deployment, where its template lives
    (as `kubectl argo rollouts` does since v1.2), and the Rollout takes each change as a new revision."""
    d = daemon
    sl = Sluice(with_namespace(d.env, d.kubeconfig, NS, tmp_path / "kubeconfig"))
    v1 = migrate(d, "cli", "onsuccess")

    def image() -> str:
        return str(get(d, "deployment", "cli")["spec"]["template"]["spec"]["containers"][0]["image"])

    assert sl.ok("rollouts", "set", "image", "cli", "main=busybox:1.37") == 'deployment "cli" image updated\n'
    assert image() == "busybox:1.37"
    assert "template" not in get(d, "rollout", "cli")["spec"]  # the Rollout itself is not edited
    wait_for(lambda: rollout_status(d, "cli").get("phase") == "Paused", timeout=60, interval=0.5)
    v2 = str(rollout_status(d, "cli")["currentPodHash"])
    assert v2 != v1
    rs = get(d, "replicaset", f"cli-{v2}")
    assert rs["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox:1.37"

    promote(d, "cli")
    wait_for(lambda: rollout_status(d, "cli").get("stableRS") == v2
             and rollout_status(d, "cli").get("phase") == "Healthy", timeout=60, interval=0.5)
    assert sl.ok("rollouts", "undo", "cli") == "rollout 'cli' undo\n"
    assert image() == "busybox:1.36"
    # revision 1's template again: its pod hash, going through the steps as any new revision
    wait_for(lambda: rollout_status(d, "cli").get("currentPodHash") == v1, timeout=60, interval=0.5)
    assert "template" not in get(d, "rollout", "cli")["spec"]
    cp = sl("rollouts", "set", "image", "cli", "nosuch=busybox:1.37")
    assert cp.returncode != 0 and 'unable to find container named "nosuch"' in cp.stderr, cp.stderr


def test_progressively_hands_the_pods_over(daemon: Daemon) -> None:
    d = daemon
    v1 = migrate(d, "shop", "progressively")
    wait_for(lambda: deployment_replicas(d, "shop") == 0, timeout=60, interval=0.5)
    wait_for(lambda: len(pods(d, "app=shop")) == 2, timeout=60, interval=0.5)
    assert len(pods(d, f"rollouts-pod-template-hash={v1}")) == 2


def test_a_missing_deployment_is_invalid_spec_until_it_exists(daemon: Daemon) -> None:
    d = daemon
    kubectl(d, "apply", "-f", "-", input=subset_setup("ghost"))
    kubectl(d, "apply", "-f", "-", input=ref_rollout("ghost", "onsuccess"))

    def invalid() -> str:
        conds = rollout_status(d, "ghost").get("conditions") or []
        return next((c["message"] for c in conds if c["type"] == "InvalidSpec"), "")
    wait_for(invalid, timeout=60, interval=0.5)
    assert invalid() == f'The Rollout "ghost" is invalid: deployments.apps "{NS}/ghost" not found'
    assert rollout_status(d, "ghost")["phase"] == "Degraded"

    kubectl(d, "apply", "-f", "-", input=deployment("ghost"))
    wait_for(lambda: rollout_status(d, "ghost").get("phase") == "Healthy", timeout=60, interval=0.5)
    assert invalid() == ""
    wait_for(lambda: deployment_replicas(d, "ghost") == 0, timeout=60, interval=0.5)


def test_the_resolved_template_is_validated_as_argo_does(daemon: Daemon) -> None:
    """A Rollout's own selector must match the referenced Deployment's template labels."""
    d = daemon
    kubectl(d, "apply", "-f", "-", input=subset_setup("odd") + "---" + deployment("odd"))
    ro = ref_rollout("odd", "never").replace("  workloadRef:", "  selector:\n    matchLabels: {app: other}\n"
                                                               "  workloadRef:")
    kubectl(d, "apply", "-f", "-", input=ro)

    def invalid() -> str:
        conds = rollout_status(d, "odd").get("conditions") or []
        return next((c["message"] for c in conds if c["type"] == "InvalidSpec"), "")
    wait_for(invalid, timeout=60, interval=0.5)
    assert invalid().startswith('The Rollout "odd" is invalid: spec.template.metadata.labels: Invalid value: ')
    assert invalid().endswith("`selector` does not match template `labels`")
    assert not kubectl(d, "get", "replicasets", "-l", "rollouts-pod-template-hash", "-o", "name").stdout.count("odd-")
