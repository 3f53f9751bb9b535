"""`sluice rollouts get rollout` prints what `kubectl argo rollouts get rollout` prints: Argo's own verified sample
(get_test.go `TestGetCanaryRollout`, as reference/argo_rollouts.md §5.1 quotes it) rebuilt from objects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sluice.rollouts.view import rollout_view

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
CREATED = (NOW - timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _meta(name: str, uid: str, owner: str | None = None, **extra: Any) -> dict[str, Any]:
    m: dict[str, Any] = {"name": name, "namespace": "jesse-test", "uid": uid, "creationTimestamp": CREATED, **extra}
    if owner:
        m["ownerReferences"] = [{"uid": owner, "kind": "x", "name": "x", "apiVersion": "v1"}]
    return m


def _rs(h: str, revision: int, image: str, replicas: int, available: int) -> dict[str, Any]:
    return {"metadata": _meta(f"canary-demo-{h}", f"rs-{h}", "ro", labels={"rollouts-pod-template-hash": h},
                              annotations={"rollout.argoproj.io/revision": str(revision)}),
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "c", "image": image}]}}},
            "status": {"replicas": replicas, "availableReplicas": available}}


def _pod(h: str, suffix: str, reason: str | None) -> dict[str, Any]:
    state = {"waiting": {"reason": reason}} if reason else {"running": {"startedAt": CREATED}}
    return {"metadata": _meta(f"canary-demo-{h}-{suffix}", f"pod-{suffix}", f"rs-{h}"),
            "spec": {"containers": [{"name": "c"}]},
            "status": {"phase": "Pending" if reason else "Running",
                       "containerStatuses": [{"name": "c", "ready": not reason, "restartCount": 0, "state": state}]}}


def test_argo_sample() -> None:
    rollout = {
        "metadata": _meta("canary-demo", "ro"),
        "spec": {"replicas": 5, "strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}] * 4}}},
        "status": {"phase": "Degraded", "currentStepIndex": 0, "stableRS": "877894d5b",
                   "currentPodHash": "65fb5ffc84",
                   "message": 'ProgressDeadlineExceeded: ReplicaSet "canary-demo-65fb5ffc84" has timed out progressing.',
                   "canary": {"weights": {"canary": {"weight": 0}, "stable": {"weight": 100}}},
                   "replicas": 6, "updatedReplicas": 1, "readyReplicas": 5, "availableReplicas": 5}}
    replicasets = [_rs("65fb5ffc84", 31, "argoproj/rollouts-demo:does-not-exist", 1, 0),
                   _rs("877894d5b", 30, "argoproj/rollouts-demo:green", 5, 5),
                   _rs("859c99b45c", 29, "argoproj/rollouts-demo:blue", 0, 0)]
    pods = [_pod("65fb5ffc84", "9wf5r", "ImagePullBackOff"), _pod("877894d5b", "6jfpt", None),
            _pod("877894d5b", "kh7x4", None)]
    assert rollout_view(rollout, replicasets, pods, [], NOW) == """\
Name:            canary-demo
Namespace:       jesse-test
Status:          ✖ Degraded
Message:         ProgressDeadlineExceeded: ReplicaSet "canary-demo-65fb5ffc84" has timed out progressing.
Strategy:        Canary
  Step:          0/8
  SetWeight:     20
  ActualWeight:  0
Images:          argoproj/rollouts-demo:does-not-exist (canary)
                 argoproj/rollouts-demo:green (stable)
Replicas:
  Desired:       5
  Current:       6
  Updated:       1
  Ready:         5
  Available:     5

NAME                                     KIND        STATUS              AGE  INFO
⟳ canary-demo                            Rollout     ✖ Degraded          7d
├──# revision:31
│  └──⧉ canary-demo-65fb5ffc84           ReplicaSet  ◌ Progressing       7d   canary
│     └──□ canary-demo-65fb5ffc84-9wf5r  Pod         ⚠ ImagePullBackOff  7d   ready:0/1
├──# revision:30
│  └──⧉ canary-demo-877894d5b            ReplicaSet  ✔ Healthy           7d   stable
│     ├──□ canary-demo-877894d5b-6jfpt   Pod         ✔ Running           7d   ready:1/1
│     └──□ canary-demo-877894d5b-kh7x4   Pod         ✔ Running           7d   ready:1/1
└──# revision:29
   └──⧉ canary-demo-859c99b45c           ReplicaSet  • ScaledDown        7d""".splitlines()


def test_analysis_run_counts() -> None:
    rollout = {"metadata": _meta("r", "ro"), "spec": {"strategy": {"canary": {"steps": [{"setWeight": 50}]}}},
               "status": {"phase": "Degraded", "currentStepIndex": 0, "abort": True}}
    run = {"metadata": _meta("r-background-analysis-db976bc44-2", "ar", "ro",
                             annotations={"rollout.argoproj.io/revision": "2"}),
           "status": {"phase": "Failed", "metricResults": [{"name": "m", "failed": 1}]}}
    lines = rollout_view(rollout, [], [], [run], NOW)
    assert "  SetWeight:     0" in lines  # aborted
    assert lines[-1] == "   └──α r-background-analysis-db976bc44-2  AnalysisRun  ✖ Failed    7d   ✖ 1"
