"""The console's Rollout pages' API: the list, one Rollout's steps, revisions, analysis runs and weight history,
the buttons (the same patches `sluice rollouts promote|abort|retry|pause|resume` send), and the graph's badge on
the services a Rollout drives."""

from __future__ import annotations

import json
from typing import Any

from tests.unit.console.conftest import MakeClient
from tests.unit.console.fixtures import NS, VS_90_10, recorded
from tests.unit.console.mesh import Client, get_json

from sluice.api.registry import Registry
from sluice.console.graph import build_graph
from sluice.resources.kinds import by_kind
from sluice.rollouts.summary import rollout_summary, step_text, weight_history

RO = by_kind("argoproj.io", "Rollout")
ROLLOUT: dict[str, Any] = {
    "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": "reviews"},
    "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "reviews"}},
             "template": {"metadata": {"labels": {"app": "reviews"}},
                          "spec": {"containers": [{"name": "reviews", "image": "example/reviews:v3"}]}},
             "strategy": {"canary": {
                 "trafficRouting": {"istio": {"virtualService": {"name": "reviews", "routes": ["primary"]},
                                              "destinationRule": {"name": "reviews", "canarySubsetName": "canary",
                                                                  "stableSubsetName": "stable"}}},
                 "steps": [{"setWeight": 20}, {"pause": {}}, {"setWeight": 50}, {"pause": {"duration": "30s"}},
                           {"analysis": {"templates": [{"templateName": "success-rate"}]}},
                           {"setCanaryScale": {"weight": 60}}]}}}}


def _event(reason: str, message: str, t: str) -> dict[str, Any]:
    return {"involvedObject": {"kind": "Rollout", "name": "reviews"}, "reason": reason, "message": message,
            "lastTimestamp": t, "type": "Normal"}


def test_steps_read_as_argo_writes_them() -> None:
    steps = ROLLOUT["spec"]["strategy"]["canary"]["steps"]
    assert [step_text(s) for s in steps] == ["setWeight: 20", "pause", "setWeight: 50", "pause: 30s", "analysis",
                                            "setCanaryScale{weight: 60}"]


def test_weight_history_from_events() -> None:
    events = [_event("TrafficWeightUpdated", "Traffic weight updated from 20 to 50", "2026-12-03T10:02:00Z"),
              _event("RolloutPaused", "Rollout is paused (CanaryPauseStep)", "2026-12-03T10:01:00Z"),
              _event("TrafficWeightUpdated", "Traffic weight updated to 20", "2026-12-03T10:00:00Z")]
    assert weight_history(events, "reviews") == [{"time": "2026-12-03T10:00:00Z", "weight": 20},
                                                 {"time": "2026-12-03T10:02:00Z", "weight": 50}]
    assert weight_history(events, "other") == []


def test_summary_marks_done_current_and_pending_steps() -> None:
    ro = {**ROLLOUT, "metadata": {"name": "reviews", "namespace": NS, "uid": "u"},
          "status": {"currentStepIndex": 2, "phase": "Progressing", "stableRS": "aaa", "currentPodHash": "bbb",
                     "canary": {"weights": {"canary": {"weight": 20}}}}}
    run = {"metadata": {"name": "reviews-bbb-2-4", "ownerReferences": [{"uid": "u"}]},
           "status": {"phase": "Failed", "metricResults": [{"name": "success-rate", "phase": "Failed", "failed": 1,
                                                           "measurements": [{"phase": "Failed", "value": "[0.42]"}]}]}}
    s = rollout_summary(ro, [], [], [run], [])
    assert [x["state"] for x in s["steps"]] == ["done", "done", "current", "pending", "pending", "pending"]
    assert (s["setWeight"], s["actualWeight"], s["stepCount"]) == (50, 20, 6)
    assert s["analysisRuns"][0]["metrics"][0]["measurements"][0]["value"] == "[0.42]"
    assert s["virtualServices"] == ["reviews"] and s["destinationRule"] == "reviews"


async def test_list_detail_and_buttons(registry: Registry, make_client: MakeClient) -> None:
    assert RO is not None
    registry.create(RO, "v1alpha1", NS, ROLLOUT)
    c: Client = await make_client()
    listed = await get_json(c, f"/api/namespaces/{NS}/rollouts")
    assert [(r["name"], r["stepCount"], r["setWeight"]) for r in listed["rollouts"]] == [("reviews", 6, 100)]
    detail = await get_json(c, f"/api/namespaces/{NS}/rollouts/reviews")
    assert [s["text"] for s in detail["steps"]][:2] == ["setWeight: 20", "pause"]
    await get_json(c, f"/api/namespaces/{NS}/rollouts/nope", status=404)

    async def press(action: str, status: int = 200) -> Any:
        r = await c.post(f"/api/namespaces/{NS}/rollouts/reviews/{action}", data="{}",
                         headers={"Content-Type": "application/json"})
        body = await r.json()
        assert r.status == status, body
        return body

    assert (await press("abort"))["message"] == "rollout 'reviews' aborted"
    assert registry.get(RO, "v1alpha1", NS, "reviews")["status"]["abort"] is True
    assert (await press("retry"))["message"] == "rollout 'reviews' retried"
    assert registry.get(RO, "v1alpha1", NS, "reviews")["status"]["abort"] is False
    await press("pause")
    assert registry.get(RO, "v1alpha1", NS, "reviews")["spec"]["paused"] is True
    await press("promote")
    assert registry.get(RO, "v1alpha1", NS, "reviews")["spec"]["paused"] is False
    assert "unknown rollout action" in (await press("explode", 404))["error"]


def test_graph_badges_the_service_a_rollout_drives() -> None:
    ro = json.loads(json.dumps({**ROLLOUT, "metadata": {"name": "reviews", "namespace": NS}}))

    def nodes(**kw: Any) -> dict[str, dict[str, Any]]:
        g = build_graph(recorded(), graph_type="versionedApp", namespace=NS, window_s=60,
                        virtual_services=[VS_90_10], **kw)
        return {n["data"]["id"]: n["data"] for n in g["elements"]["nodes"]}

    badged = nodes(rollouts=[ro])
    assert badged["svc:default:reviews"]["hasRollout"] == ["reviews"]  # through its VirtualService
    assert "hasRollout" not in badged["svc:default:ratings"]
    host_level = json.loads(json.dumps(ro))
    host_level["spec"]["strategy"]["canary"] = {"canaryService": "ratings", "stableService": "ratings-stable"}
    assert nodes(rollouts=[host_level])["svc:default:ratings"]["hasRollout"] == ["reviews"]
    assert not any("hasRollout" in n for n in nodes().values())
