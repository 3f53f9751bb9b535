"""The pure parts of `spec.workloadRef`: resolution, Argo's messages for bad references, and what `scaleDown`
does to the referenced Deployment pass by pass."""

from __future__ import annotations

from typing import Any

from sluice.rollouts import workloadref
from sluice.rollouts.status import pod_hash
from sluice.validation import argo_acted

REF = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "scaleDown": "onsuccess"}
TEMPLATE = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "main", "image": "b:1"}]}}


def deployment(template: dict[str, Any], generation: int = 3) -> dict[str, Any]:
    return {"metadata": {"name": "web", "generation": generation},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": template}}


def test_the_template_and_missing_selector_come_from_the_deployment() -> None:
    spec = {"replicas": 2, "workloadRef": REF, "strategy": {"canary": {}}}
    resolved = workloadref.resolve(spec, deployment(TEMPLATE))
    assert resolved["template"] == TEMPLATE and resolved["selector"] == {"matchLabels": {"app": "web"}}
    assert "template" not in spec and "selector" not in spec  # the Rollout itself is not changed
    own = workloadref.resolve({**spec, "selector": {"matchLabels": {"tier": "x"}}}, deployment(TEMPLATE))
    assert own["selector"] == {"matchLabels": {"tier": "x"}}  # the Rollout's own selector wins, as in Argo
    assert workloadref.generation(deployment(TEMPLATE, 7)) == "7"


def test_a_template_change_is_a_new_pod_hash() -> None:
    changed = {**TEMPLATE, "spec": {"containers": [{"name": "main", "image": "b:2"}]}}
    first = workloadref.resolve({"workloadRef": REF}, deployment(TEMPLATE))["template"]
    second = workloadref.resolve({"workloadRef": REF}, deployment(changed))["template"]
    assert pod_hash(first) != pod_hash(second)
    assert pod_hash(first) == pod_hash(workloadref.resolve({"workloadRef": REF}, deployment(TEMPLATE))["template"])


def test_bad_references_have_argos_messages() -> None:
    assert workloadref.resolve_error({"workloadRef": REF}) == ""
    assert workloadref.resolve_error({"workloadRef": REF, "template": TEMPLATE}) == \
        "template must be empty for workload reference rollout"
    assert workloadref.resolve_error({"workloadRef": {**REF, "apiVersion": "apps/v1", "kind": "StatefulSet"}}) == \
        "workload of type apps/StatefulSet is not supported"
    assert workloadref.resolve_error({"workloadRef": {"apiVersion": "v1", "kind": "Pod", "name": "p"}}) == \
        "workload of type /Pod is not supported"
    assert workloadref.not_found(REF, "shop") == 'deployments.apps "shop/web" not found'
    assert workloadref.kube_kind({**REF, "kind": "ReplicaSet"}) == "ReplicaSet"


def test_scale_down_modes() -> None:
    def target(mode: str, phase: str, ready: int, old: int = 0, new: int = 4, revision: int = 1,
               scaling_new: bool = True) -> int | None:
        return workloadref.deployment_target(mode, revision, phase, 4, ready, old, new, scaling_new=scaling_new)

    assert target("never", "Healthy", 4) is None
    assert target("onsuccess", "Progressing", 2) is None
    assert target("onsuccess", "Healthy", 4, scaling_new=False) == 0
    # progressively: the Deployment keeps what the Rollout's ready pods do not serve yet, then goes to 0
    assert target("progressively", "Progressing", 0) is None
    assert target("progressively", "Progressing", 1) == 3
    assert target("progressively", "Progressing", 4) == 0
    assert target("progressively", "Progressing", 0, old=4, new=2) == 4  # the Rollout shrank: scale back up
    assert target("progressively", "Healthy", 4) == 0
    assert target("progressively", "Healthy", 4, scaling_new=False) is None  # only where the new RS is sized
    # later revisions never touch the Deployment (Argo's migration is revision 1 only)
    assert target("onsuccess", "Healthy", 4, revision=2) is None
    assert target("progressively", "Progressing", 1, revision=2) is None
    assert workloadref.scale_down_mode({"name": "web"}) == "never"


def test_workload_ref_is_no_longer_warned_about() -> None:
    istio = {"virtualService": {"name": "web", "routes": ["primary"]},
             "destinationRule": {"name": "web", "canarySubsetName": "canary", "stableSubsetName": "stable"}}
    ro = {"spec": {"replicas": 2, "workloadRef": REF, "strategy": {"canary": {
        "trafficRouting": {"istio": istio}, "steps": [{"setWeight": 20}]}}}}
    assert argo_acted.not_acted_on("Rollout", ro) == []
