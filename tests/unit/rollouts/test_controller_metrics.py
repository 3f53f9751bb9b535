"""Argo's controller metrics from Rollouts and AnalysisRuns as Argo's collectors compute them
(controller/metrics/rollouts.go, analysis.go, client.go), rendered in the text format."""

from __future__ import annotations

import re
import subprocess
from typing import Any

from tests.conftest import TOOLS

from sluice.metrics.exposition import render
from sluice.rollouts.metrics import ControllerMetrics, families, metric_type, phase_of, strategy_and_router


def rollout(reason: str = "", invalid: bool = False, routing: dict[str, Any] | None = None) -> dict[str, Any]:
    conditions = [{"type": "Progressing", "status": "True", "reason": reason}] if reason else []
    if invalid:
        conditions.append({"type": "InvalidSpec", "status": "True", "reason": "InvalidSpec"})
    return {"kind": "Rollout", "metadata": {"namespace": "shop", "name": "reviews"},
            "spec": {"replicas": 3, "strategy": {"canary": {"trafficRouting": routing or {"istio": {}}}}},
            "status": {"replicas": 4, "availableReplicas": 3, "updatedReplicas": 1, "conditions": conditions}}


def test_the_phase_is_argos_calculated_phase() -> None:
    assert phase_of(rollout()) == "Progressing"
    assert phase_of(rollout("NewReplicaSetAvailable")) == "Completed"
    assert phase_of(rollout("RolloutPaused")) == "Paused"
    assert phase_of(rollout("RolloutAborted")) == "Abort"
    assert phase_of(rollout("ProgressDeadlineExceeded")) == "Timeout"
    assert phase_of(rollout("ReplicaSetCreateError")) == "Error"
    assert phase_of(rollout("NewReplicaSetAvailable", invalid=True)) == "InvalidSpec"


def test_strategy_router_and_provider_types() -> None:
    assert strategy_and_router(rollout()) == ("canary", "Istio")
    assert strategy_and_router(rollout(routing={"nginx": {}})) == ("canary", "Nginx")
    assert strategy_and_router({"spec": {"strategy": {"blueGreen": {}}}}) == ("blueGreen", "")
    assert strategy_and_router({"spec": {}}) == ("none", "")
    assert metric_type({"provider": {"prometheus": {"query": "x"}}}) == "Prometheus"
    assert metric_type({"provider": {"plugin": {"sluice/judge": {}}}}) == "RPCPlugin"
    assert metric_type({"provider": {}}) == "Unknown Provider"


def test_the_exposition() -> None:
    counters = ControllerMetrics()
    counters.reconciled("Rollout", "shop", "reviews", 0.004)
    counters.reconciled("Rollout", "shop", "reviews", 0.3, error=True)
    counters.event(rollout(), "Normal", "RolloutPaused")
    counters.event({"kind": "AnalysisRun", "metadata": {"namespace": "shop", "name": "r"}}, "Normal", "x")
    counters.request("rollouts", "shop", "reviews", "Get", 200)
    counters.request("rollouts", "shop", "", "List", 200)
    counters.request("replicasets", "shop", "reviews-abc", "Patch", 200)
    run = {"metadata": {"namespace": "shop", "name": "reviews-abc-2"},
           "spec": {"metrics": [{"name": "judge", "provider": {"plugin": {"sluice/judge": {}}}},
                                {"name": "errors", "provider": {"prometheus": {"query": "x"}}}],
                    "dryRun": [{"metricName": "errors"}]},
           "status": {"phase": "Running", "metricResults": [{"name": "judge", "phase": "Inconclusive"}]}}
    template = {"metadata": {"namespace": "shop", "name": "judge"},
                "spec": {"metrics": [{"name": "judge", "provider": {"plugin": {"sluice/judge": {}}}}]}}
    text = render(families(counters, [rollout("RolloutPaused")], [run], [template]))
    lines = set(text.splitlines())
    for line in [
        'rollout_info{name="reviews",namespace="shop",phase="Paused",strategy="canary",traffic_router="Istio"} 1',
        'rollout_info_replicas_available{name="reviews",namespace="shop"} 3',
        'rollout_info_replicas_unavailable{name="reviews",namespace="shop"} 1',
        'rollout_info_replicas_desired{name="reviews",namespace="shop"} 3',
        'rollout_info_replicas_updated{name="reviews",namespace="shop"} 1',
        'rollout_phase{name="reviews",namespace="shop",phase="Paused",strategy="canary"} 1',
        'rollout_phase{name="reviews",namespace="shop",phase="Completed",strategy="canary"} 0',
        'rollout_reconcile_bucket{le="0.01",name="reviews",namespace="shop"} 1',
        'rollout_reconcile_bucket{le="0.25",name="reviews",namespace="shop"} 1',
        'rollout_reconcile_bucket{le="0.5",name="reviews",namespace="shop"} 2',
        'rollout_reconcile_count{name="reviews",namespace="shop"} 2',
        'rollout_reconcile_error{name="reviews",namespace="shop"} 1',
        'rollout_events_total{name="reviews",namespace="shop",reason="RolloutPaused",type="Normal"} 1',
        'analysis_run_info{name="reviews-abc-2",namespace="shop",phase="Running"} 1',
        'analysis_run_phase{name="reviews-abc-2",namespace="shop",phase="Running"} 1',
        'analysis_run_metric_type{metric="judge",name="reviews-abc-2",namespace="shop",type="RPCPlugin"} 1',
        'analysis_run_metric_phase{dry_run="false",metric="judge",name="reviews-abc-2",namespace="shop",'
        'phase="Inconclusive",type="RPCPlugin"} 1',
        'analysis_run_metric_phase{dry_run="true",metric="errors",name="reviews-abc-2",namespace="shop",'
        'phase="Pending",type="Prometheus"} 1',
        'analysis_template_info{name="judge",namespace="shop"} 1',
        'analysis_template_metric_info{metric="judge",name="judge",namespace="shop",type="RPCPlugin"} 1',
        'controller_clientset_k8s_request_total{kind="rollouts",name="reviews",namespace="shop",status_code="200",'
        'verb="Get"} 1',
        'controller_clientset_k8s_request_total{kind="rollouts",name="N/A",namespace="shop",status_code="200",'
        'verb="List"} 1',
        'controller_clientset_k8s_request_total{kind="replicasets",name="N/A",namespace="shop",status_code="200",'
        'verb="Patch"} 1',
        "# TYPE rollout_reconcile histogram",
    ]:
        assert line in lines, (line, text)
    assert 'reason="x"' not in text  # events of other kinds are not rollout events
    assert re.search(r'^argo_rollouts_controller_info\{version="sluice-[^"]+"\} 1$', text, re.M)
    # Prometheus's own parser accepts it (promtool's lint only names Argo's counters without `_total`)
    cp = subprocess.run([str(TOOLS / "promtool"), "check", "metrics"], input=text, capture_output=True, text=True,
                        timeout=30)
    problems = [ln for ln in (cp.stdout + cp.stderr).splitlines() if ln.strip()]
    assert all('counter metrics should have "_total" suffix' in ln for ln in problems), problems
