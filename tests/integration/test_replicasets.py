"""Deployment → ReplicaSet → Pod as Kubernetes has it, seen through the real kubectl 1.35 against a daemon without
a runtime (`--no-runtime`): the test plays the kubelet where readiness matters."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, config

from tests.conftest import TOOLS, Daemon, start_daemon, stop_daemon, wait_for

NS = "rsets"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = start_daemon(tmp_path_factory.mktemp("rs-home"), extra=["--no-runtime"])
    api = config.new_client_from_config(str(d.kubeconfig))
    client.CoreV1Api(api).create_namespace({"metadata": {"name": NS}})
    yield d
    stop_daemon(d)


@pytest.fixture(scope="module")
def api(daemon: Daemon) -> client.ApiClient:
    return config.new_client_from_config(str(daemon.kubeconfig))


def kubectl(daemon: Daemon, *args: str, input: str | None = None, ok: bool = True) -> subprocess.CompletedProcess[str]:
    cp = subprocess.run([str(TOOLS / "kubectl-1.35"), f"--cache-dir={daemon.home}/kc", "-n", NS, *args],
                        env=daemon.env, capture_output=True, text=True, input=input, timeout=60)
    if ok:
        assert cp.returncode == 0, (args, cp.stdout, cp.stderr)
    return cp


def deployment(name: str, replicas: int = 1, image: str = "curlimages/curl:8.16.0", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": {
        "replicas": replicas, "selector": {"matchLabels": {"app": name}},
        # maxUnavailable 1: rollouts progress without pods becoming ready (no kubelet here)
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}},
        "template": {"metadata": {"labels": {"app": name}},
                     "spec": {"containers": [{"name": "main", "image": image, "command": ["sleep", "infinity"]}]}},
        **spec}}


def live_pods(core: client.CoreV1Api, selector: str) -> list[Any]:
    return [p for p in core.list_namespaced_pod(NS, label_selector=selector).items
            if p.metadata.deletion_timestamp is None]


def replicasets(apps: client.AppsV1Api, app: str) -> list[Any]:
    return sorted(apps.list_namespaced_replica_set(NS, label_selector=f"app={app}").items,
                  key=lambda rs: int(rs.metadata.annotations["deployment.kubernetes.io/revision"]))


def image_of(apps: client.AppsV1Api, name: str) -> str:
    return str(apps.read_namespaced_deployment(name, NS).spec.template.spec.containers[0].image)


def rolled_out(apps: client.AppsV1Api, name: str, image: str) -> bool:
    """One ReplicaSet with the image holds all replicas; the others are scaled to zero."""
    d = apps.read_namespaced_deployment(name, NS)
    rss = replicasets(apps, name)
    return all((rs.spec.replicas == d.spec.replicas) == (rs.spec.template.spec.containers[0].image == image)
               for rs in rss) and (d.status.updated_replicas or 0) == d.spec.replicas


def test_deployment_owns_a_replicaset_that_owns_the_pods(daemon: Daemon, api: client.ApiClient) -> None:
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    d = apps.create_namespaced_deployment(NS, deployment("web", 2))
    wait_for(lambda: len(live_pods(core, "app=web")) == 2)
    (rs,) = replicasets(apps, "web")
    h = rs.metadata.labels["pod-template-hash"]
    assert rs.metadata.name == f"web-{h}"
    assert rs.spec.selector.match_labels == {"app": "web", "pod-template-hash": h}
    assert rs.spec.template.metadata.labels == {"app": "web", "pod-template-hash": h}
    owner = rs.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.uid, owner.controller) == ("Deployment", "web", d.metadata.uid, True)
    assert rs.metadata.annotations["deployment.kubernetes.io/revision"] == "1"
    wait_for(lambda: (apps.read_namespaced_deployment("web", NS).metadata.annotations or {}).get(
        "deployment.kubernetes.io/revision") == "1")
    for p in live_pods(core, "app=web"):
        assert p.metadata.name.startswith(f"web-{h}-") and len(p.metadata.name) == len(f"web-{h}-") + 5
        assert (p.metadata.owner_references[0].kind, p.metadata.owner_references[0].uid) == ("ReplicaSet",
                                                                                              rs.metadata.uid)
    wait_for(lambda: (apps.read_namespaced_replica_set(f"web-{h}", NS).status.replicas or 0) == 2)
    lines = kubectl(daemon, "get", "rs").stdout.splitlines()
    assert lines[0].split() == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    assert lines[1].split()[:4] == [f"web-{h}", "2", "2", "0"]
    wide = kubectl(daemon, "get", "replicasets", "-o", "wide").stdout.splitlines()
    assert wide[0].split()[5:] == ["CONTAINERS", "IMAGES", "SELECTOR"]
    assert f"app=web,pod-template-hash={h}" in wide[1]
    # kubectl scale goes through the Deployment's scale subresource; the ReplicaSet follows.
    assert kubectl(daemon, "scale", "deployment/web", "--replicas=3").stdout.strip() == "deployment.apps/web scaled"
    wait_for(lambda: len(live_pods(core, "app=web")) == 3)
    assert apps.read_namespaced_replica_set(f"web-{h}", NS).spec.replicas == 3
    described = kubectl(daemon, "describe", "deployment", "web").stdout
    assert f"NewReplicaSet:   web-{h} (3/3 replicas created)" in described


def test_rollout_history_and_undo(daemon: Daemon, api: client.ApiClient) -> None:
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(NS, deployment("hist"))
    wait_for(lambda: rolled_out(apps, "hist", "curlimages/curl:8.16.0"))
    kubectl(daemon, "set", "image", "deployment/hist", "main=curlimages/curl:8.17.0")
    # As the Kubernetes docs do it: the cause is annotated after the change; it lands on the current ReplicaSet.
    kubectl(daemon, "annotate", "deployment/hist", "kubernetes.io/change-cause=image 8.17.0")
    wait_for(lambda: rolled_out(apps, "hist", "curlimages/curl:8.17.0"))
    wait_for(lambda: replicasets(apps, "hist")[-1].metadata.annotations.get("kubernetes.io/change-cause"))
    out = kubectl(daemon, "rollout", "history", "deployment/hist").stdout
    rows = [line.split(None, 1) for line in out.splitlines()[2:] if line.strip()]
    assert out.splitlines()[0].rstrip() == "deployment.apps/hist" and out.splitlines()[1].split() == ["REVISION", "CHANGE-CAUSE"]
    assert rows == [["1", "<none>"], ["2", "image 8.17.0"]], out
    detail = kubectl(daemon, "rollout", "history", "deployment/hist", "--revision=1").stdout
    assert "curlimages/curl:8.16.0" in detail

    first = replicasets(apps, "hist")[0]
    cp = kubectl(daemon, "rollout", "undo", "deployment/hist")
    assert cp.stdout.strip() == "deployment.apps/hist rolled back"
    assert image_of(apps, "hist") == "curlimages/curl:8.16.0"
    wait_for(lambda: rolled_out(apps, "hist", "curlimages/curl:8.16.0"))
    # The old ReplicaSet came back under the next revision (no new one was made).
    rss = replicasets(apps, "hist")
    assert len(rss) == 2 and rss[-1].metadata.uid == first.metadata.uid
    assert rss[-1].metadata.annotations["deployment.kubernetes.io/revision"] == "3"
    assert rss[-1].metadata.annotations["deployment.kubernetes.io/revision-history"] == "1"
    wait_for(lambda: apps.read_namespaced_deployment("hist", NS).metadata.annotations.get(
        "deployment.kubernetes.io/revision") == "3")
    revisions = [line.split()[0] for line in kubectl(daemon, "rollout", "history", "deployment/hist").stdout
                 .splitlines()[2:] if line.strip()]
    assert revisions == ["2", "3"]
    cp = kubectl(daemon, "rollout", "undo", "deployment/hist", "--to-revision=3")
    assert "skipped rollback (current template already matches revision 3)" in cp.stdout + cp.stderr
    cp = kubectl(daemon, "rollout", "undo", "deployment/hist", "--to-revision=9", ok=False)
    assert cp.returncode != 0 and "unable to find specified revision 9 in history" in cp.stderr


def test_rollout_status_follows_the_replicasets(daemon: Daemon, api: client.ApiClient) -> None:
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    apps.create_namespaced_deployment(NS, deployment("st", 2, strategy={"type": "RollingUpdate", "rollingUpdate": {
        "maxSurge": 1, "maxUnavailable": 0}}))
    proc = subprocess.Popen([str(TOOLS / "kubectl-1.35"), f"--cache-dir={daemon.home}/kc", "-n", NS, "rollout",
                             "status", "deployment/st", "--timeout=60s"], env=daemon.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: len(live_pods(core, "app=st")) == 2)
    for p in live_pods(core, "app=st"):
        core.patch_namespaced_pod_status(p.metadata.name, NS, {"status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}})
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, (out, err)
    assert 'deployment "st" successfully rolled out' in out


def test_revision_history_limit_prunes_old_replicasets(daemon: Daemon, api: client.ApiClient) -> None:
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(NS, deployment("lim", revisionHistoryLimit=1))
    for tag in ("8.17.0", "8.18.0", "8.19.0"):
        wait_for(lambda: (apps.read_namespaced_deployment("lim", NS).status.updated_replicas or 0) == 1)
        apps.patch_namespaced_deployment("lim", NS, {"spec": {"template": {"spec": {"containers": [
            {"name": "main", "image": f"curlimages/curl:{tag}"}]}}}})
    wait_for(lambda: rolled_out(apps, "lim", "curlimages/curl:8.19.0"))
    wait_for(lambda: [rs.metadata.annotations["deployment.kubernetes.io/revision"]
                      for rs in replicasets(apps, "lim")] == ["3", "4"])


def test_bare_replicaset_scale_and_cascading_delete(daemon: Daemon, api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "bare", "labels": {"tier": "bare"}},
          "spec": {"replicas": 2, "selector": {"matchLabels": {"tier": "bare"}},
                   "template": {"metadata": {"labels": {"tier": "bare"}}, "spec": {"containers": [
                       {"name": "main", "image": "curlimages/curl:8.16.0"}]}}}}
    assert kubectl(daemon, "apply", "-f", "-", input=json.dumps(rs)).stdout.strip() == \
        "replicaset.apps/bare created"
    wait_for(lambda: len(live_pods(core, "tier=bare")) == 2)
    assert all(p.metadata.name.startswith("bare-") and p.metadata.owner_references[0].name == "bare"
               for p in live_pods(core, "tier=bare"))
    assert kubectl(daemon, "scale", "rs/bare", "--replicas=1").stdout.strip() == "replicaset.apps/bare scaled"
    wait_for(lambda: len(live_pods(core, "tier=bare")) == 1)
    kubectl(daemon, "delete", "rs", "bare")
    wait_for(lambda: not live_pods(core, "tier=bare"))
    bad = {**rs, "metadata": {"name": "bad"}, "spec": {**rs["spec"], "selector": {"matchLabels": {"tier": "x"}}}}
    cp = kubectl(daemon, "apply", "-f", "-", input=json.dumps(bad), ok=False)
    assert cp.returncode != 0 and "`selector` does not match template `labels`" in cp.stderr


def test_deleting_a_deployment_collects_its_replicasets_and_pods(daemon: Daemon, api: client.ApiClient) -> None:
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    apps.create_namespaced_deployment(NS, deployment("gc", 2))
    wait_for(lambda: len(live_pods(core, "app=gc")) == 2)
    kubectl(daemon, "delete", "deployment", "gc")
    wait_for(lambda: not replicasets(apps, "gc") and not live_pods(core, "app=gc"))
    apps.create_namespaced_deployment(NS, deployment("gc2", 1))
    wait_for(lambda: len(live_pods(core, "app=gc2")) == 1)
    kubectl(daemon, "delete", "deployment", "gc2", "--cascade=foreground")
    wait_for(lambda: not replicasets(apps, "gc2") and not live_pods(core, "app=gc2"))
    apps.create_namespaced_deployment(NS, deployment("gc3", 1))
    wait_for(lambda: len(live_pods(core, "app=gc3")) == 1)
    kubectl(daemon, "delete", "deployment", "gc3", "--cascade=orphan")
    (orphan,) = replicasets(apps, "gc3")
    assert not orphan.metadata.owner_references
    assert len(live_pods(core, "app=gc3")) == 1


def test_orphaned_replicaset_is_adopted_and_a_name_clash_gets_a_new_hash(daemon: Daemon,
                                                                          api: client.ApiClient) -> None:
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    apps.create_namespaced_deployment(NS, deployment("adopt", 2))
    wait_for(lambda: len(live_pods(core, "app=adopt")) == 2)
    pods = sorted(p.metadata.name for p in live_pods(core, "app=adopt"))
    kubectl(daemon, "delete", "deployment", "adopt", "--cascade=orphan")
    d = apps.create_namespaced_deployment(NS, deployment("adopt", 2))
    wait_for(lambda: [rs.metadata.owner_references[0].uid if rs.metadata.owner_references else None
                      for rs in replicasets(apps, "adopt")] == [d.metadata.uid])
    assert sorted(p.metadata.name for p in live_pods(core, "app=adopt")) == pods  # the same pods, none added
    # A bare ReplicaSet holding the name the Deployment would use: the Deployment counts a collision.
    (rs,) = replicasets(apps, "adopt")
    kubectl(daemon, "delete", "deployment", "adopt")
    wait_for(lambda: not replicasets(apps, "adopt"))
    squatter = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": rs.metadata.name},
                "spec": {"replicas": 0, "selector": {"matchLabels": {"squat": "yes"}}, "template": {
                    "metadata": {"labels": {"squat": "yes"}},
                    "spec": {"containers": [{"name": "main", "image": "curlimages/curl:8.16.0"}]}}}}
    apps.create_namespaced_replica_set(NS, squatter)
    apps.create_namespaced_deployment(NS, deployment("adopt", 1))
    wait_for(lambda: len(replicasets(apps, "adopt")) == 1 and len(live_pods(core, "app=adopt")) == 1)
    assert replicasets(apps, "adopt")[0].metadata.name != rs.metadata.name
    assert apps.read_namespaced_deployment("adopt", NS).status.collision_count == 1


def test_a_stalled_rollout_exceeds_its_progress_deadline(daemon: Daemon, api: client.ApiClient) -> None:
    apps = client.AppsV1Api(api)
    # No kubelet here: the pod never becomes ready, so nothing progresses after the ReplicaSet is made.
    apps.create_namespaced_deployment(NS, deployment("late", progressDeadlineSeconds=2, strategy={
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}))
    cp = kubectl(daemon, "rollout", "status", "deployment/late", "--timeout=60s", ok=False)
    assert cp.returncode != 0
    assert 'error: deployment "late" exceeded its progress deadline' in cp.stderr, (cp.stdout, cp.stderr)
    cond = {c.type: c for c in apps.read_namespaced_deployment("late", NS).status.conditions}["Progressing"]
    assert (cond.status, cond.reason) == ("False", "ProgressDeadlineExceeded")
    assert cond.message.startswith('ReplicaSet "late-') and cond.message.endswith('" has timed out progressing.')


def test_a_paused_deployment_scales_but_does_not_roll_out(daemon: Daemon, api: client.ApiClient) -> None:
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    apps.create_namespaced_deployment(NS, deployment("paused"))
    wait_for(lambda: len(live_pods(core, "app=paused")) == 1)
    assert kubectl(daemon, "rollout", "pause", "deployment/paused").stdout.strip() == "deployment.apps/paused paused"
    kubectl(daemon, "set", "image", "deployment/paused", "main=curlimages/curl:8.17.0")
    kubectl(daemon, "scale", "deployment/paused", "--replicas=2")
    wait_for(lambda: len(live_pods(core, "app=paused")) == 2)
    assert len(replicasets(apps, "paused")) == 1
    wait_for(lambda: {c.type: c.reason for c in apps.read_namespaced_deployment("paused", NS).status.conditions}
             .get("Progressing") == "DeploymentPaused")
    kubectl(daemon, "rollout", "resume", "deployment/paused")
    wait_for(lambda: rolled_out(apps, "paused", "curlimages/curl:8.17.0"))
