"""Argo's condition language (the expr subset its docs use), the Prometheus result mapping, AnalysisRun
bookkeeping and the Istio weight edit, as pure functions."""

from __future__ import annotations

import math
from typing import Any

import pytest

from sluice.rollouts import analysis, istio
from sluice.rollouts.expr import ExprError, evaluate
from sluice.rollouts.providers import Measurement, assess, prometheus_result


@pytest.mark.parametrize(("expression", "result", "want"), [
    ("result[0] >= 0.95", [0.97], True),
    ("result[0] >= 0.95", [0.9], False),
    ("result >= 0.95", math.nan, False),
    ("isNaN(result) || result >= 0.95", math.nan, True),
    ("len(result) == 0 || result[0] < 0.5", [], True),
    ("all(result, {# < 0.5})", [0.1, 0.4], True),
    ("all(result, {# < 0.5})", [0.1, 0.6], False),
    ("any(result, {# > 1}) && !isInf(result[0])", [0.1, 2.0], True),
    ("result[0] > 1 and not (result[1] == 2)", [2, 3], True),
    ("asFloat(result) < 5", "4.5", True),
    ("result.code == 200 ? true : false", {"code": 200}, True),
    ("result[-1] == 3", [1, 2, 3], True),
    ("default(result, 0) == 0", None, True),
    ("isNil(result)", None, True),
])
def test_conditions_as_argo_docs_write_them(expression: str, result: Any, want: bool) -> None:
    assert evaluate(expression, {"result": result}) is want


@pytest.mark.parametrize("expression", ["result[3] > 1", "result > ", "__import__('os')", "len(1)", "result + true"])
def test_bad_conditions_are_errors_not_exceptions(expression: str) -> None:
    with pytest.raises(ExprError):
        evaluate(expression, {"result": [1.0]})


def test_outcome_table_and_value_text() -> None:
    result, value = prometheus_result([{"metric": {}, "value": [1, "0.95"]}, {"metric": {}, "value": [1, "1"]}])
    assert result == [0.95, 1.0] and value == "[0.95,1]"
    assert prometheus_result([1.0, "NaN"])[1] == "NaN"
    assert assess({"successCondition": "result[0] > 0.9"}, [0.95]) == "Successful"
    assert assess({"failureCondition": "result[0] > 0.9"}, [0.95]) == "Failed"
    both = {"successCondition": "result[0] > 0.99", "failureCondition": "result[0] < 0.5"}
    assert assess(both, [0.95]) == "Inconclusive"
    with pytest.raises(ExprError, match="metric result is nil or empty"):
        assess({"successCondition": "result[0] > 0"}, [])


def run(metric: dict[str, Any], args: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "r"}, "spec": {"metrics": [metric], "args": args or []}}


def test_failure_limit_count_interval_and_args() -> None:
    queries: list[str] = []

    def query_for(address: str) -> Any:
        def q(promql: str) -> list[Any]:
            queries.append(promql)
            return [{"metric": {}, "value": [0, "1"]}]
        return q

    metric = {"name": "m", "interval": "10s", "count": 3, "failureLimit": 1,
              "successCondition": "result[0] < 0.5",
              "provider": {"prometheus": {"address": "http://x", "query": "vector({{ args.v }})"}}}
    r = run(metric, [{"name": "v", "value": "1"}])
    s1 = analysis.step(r, 1000.0, query_for)
    assert s1.status["phase"] == "Running" and s1.next_s == 10.0 and queries == ["vector(1)"]
    r["status"] = s1.status
    assert analysis.step(r, 1005.0, query_for).status["metricResults"][0]["count"] == 1  # not due yet
    s2 = analysis.step(r, 1010.0, query_for)
    m = s2.status["metricResults"][0]
    assert s2.status["phase"] == "Failed" and m["failed"] == 2 and m["phase"] == "Failed"
    assert s2.status["message"] == 'Metric "m" assessed Failed due to failed (2) > failureLimit (1)'
    assert m["metadata"] == {"ResolvedPrometheusQuery": "vector(1)"}
    assert m["measurements"][-1]["value"] == "[1]"
    assert ("Warning", "AnalysisRunFailed", "Analysis Completed. Result: Failed") in s2.events


@pytest.mark.parametrize(("values", "failure_limit", "phases", "want"), [
    (["1", "0", "0"], 2, ["Failed", "Successful", "Successful"], "Successful"),  # 2 in a row end it early
    (["1", "0", "1", "0"], 2, ["Failed", "Successful", "Failed", "Successful"], "Inconclusive"),  # count, no run of 2
    (["1", "0", "1", "0"], -1, ["Failed", "Successful", "Failed", "Successful"], "Failed"),  # only the limit counts
])
def test_consecutive_success_limit(values: list[str], failure_limit: int, phases: list[str], want: str) -> None:
    """Argo's assessMetricStatus: Successful once consecutiveSuccessLimit Successful looks came in a row; at
    `count` without that, Inconclusive (Failed when failureLimit is disabled)."""
    answers = iter(values)

    def query_for(address: str) -> Any:
        return lambda promql: [{"metric": {}, "value": [0, next(answers)]}]

    metric = {"name": "m", "interval": "10s", "count": 4, "failureLimit": failure_limit, "consecutiveSuccessLimit": 2,
              "inconclusiveLimit": 0, "successCondition": "result[0] < 0.5",
              "provider": {"prometheus": {"address": "http://x", "query": "q"}}}
    r = run(metric, [])
    t = 1000.0
    for _ in range(4):
        out = analysis.step(r, t, query_for)
        r["status"] = out.status
        if out.status["phase"] in analysis.COMPLETED:
            break
        t += 10.0
    m = r["status"]["metricResults"][0]
    assert [x["phase"] for x in m["measurements"]] == phases
    assert m["phase"] == want and r["status"]["phase"] == want


def test_unresolved_arg_and_dry_run() -> None:
    metric = {"name": "m", "provider": {"prometheus": {"query": "{{args.nope}}"}}}
    s = analysis.step(run(metric), 0.0, lambda a: lambda q: [])
    assert s.status["phase"] == "Error"
    assert s.status["message"] == "Unable to resolve metric arguments: failed to resolve {{args.nope}}"
    failing = {"name": "m", "successCondition": "false", "provider": {"prometheus": {"query": "x"}}}
    r = run(failing)
    r["spec"]["dryRun"] = [{"metricName": ".*"}]
    s = analysis.step(r, 0.0, lambda a: lambda q: [{"value": [0, "1"]}])
    assert s.status["phase"] == "Successful" and s.status["dryRunSummary"]["failed"] == 1


def test_plugin_provider_by_name() -> None:
    from sluice.rollouts import providers

    seen: list[Any] = []
    providers.PLUGINS["test/echo"] = lambda cfg, q: (seen.append(cfg), Measurement("Successful", "7", ""))[1]
    providers.CONFIG_FOR_RUN["test/echo"] = lambda cfg, started: {**cfg, "since": started}
    try:
        metric = {"name": "j", "provider": {"plugin": {"test/echo": {"service": "{{args.svc}}"}}}}
        s = analysis.step(run(metric, [{"name": "svc", "value": "reviews"}]), 0.0, lambda a: lambda q: [])
        assert s.status["phase"] == "Successful"
        assert seen == [{"service": "reviews", "since": "1970-01-01T00:00:00Z"}]
        assert s.status["metricResults"][0]["measurements"][0]["value"] == "7"
    finally:
        del providers.PLUGINS["test/echo"], providers.CONFIG_FOR_RUN["test/echo"]


def test_weights_go_into_the_named_routes_only() -> None:
    vs = {"spec": {"http": [
        {"name": "primary", "route": [{"destination": {"host": "web", "subset": "stable"}, "weight": 100},
                                      {"destination": {"host": "web", "subset": "canary"}, "weight": 0}]},
        {"name": "other", "route": [{"destination": {"host": "web", "subset": "stable"}, "weight": 100}]}]}}
    cfg = istio.IstioConfig("", "", "canary", "stable")
    out = istio.set_weights(vs, ["primary"], 20, cfg)
    assert out is not None
    assert [d["weight"] for d in out["spec"]["http"][0]["route"]] == [80, 20]
    assert out["spec"]["http"][1] == vs["spec"]["http"][1]
    assert istio.set_weights(out, ["primary"], 20, cfg) is None
    with pytest.raises(ValueError, match="HTTP Route 'nope' is not found in the defined Virtual Service."):
        istio.set_weights(vs, ["nope"], 20, cfg)
    dr = {"metadata": {"name": "web"}, "spec": {"host": "web", "subsets": [
        {"name": "stable", "labels": {"app": "web"}}, {"name": "canary", "labels": {"app": "web"}}]}}
    new = istio.set_subset_hashes(dr, cfg, "c123", "s456", "web")
    assert new is not None
    assert [s["labels"] for s in new["spec"]["subsets"]] == [
        {"app": "web", "rollouts-pod-template-hash": "s456"}, {"app": "web", "rollouts-pod-template-hash": "c123"}]


def test_warnings_name_only_what_the_controller_leaves_out() -> None:
    from sluice.validation import argo_acted

    ro = {"spec": {"replicas": 2, "selector": {}, "template": {}, "strategy": {"canary": {
        "maxSurge": "25%",
        "trafficRouting": {"istio": {"virtualService": {"name": "vs", "routes": ["primary"],
                                                        "tlsRoutes": [{"port": 443}]}}},
        "steps": [{"setWeight": 20}, {"pause": {"duration": "1m"}}, {"experiment": {"templates": []}},
                  {"setHeaderRoute": {"name": "h"}}]}}}}
    assert argo_acted.not_acted_on("Rollout", ro) == [
        "spec.strategy.canary.trafficRouting.istio.virtualService.tlsRoutes",
        "spec.strategy.canary.steps[2].experiment",
    ]  # maxSurge plays no part with traffic routing; setHeaderRoute is acted on
    run = {"spec": {"metrics": [{"name": "m", "consecutiveSuccessLimit": 2,
                                 "provider": {"prometheus": {"query": "q", "timeout": 40}}}]}}
    assert argo_acted.not_acted_on("AnalysisRun", run) == [
        "spec.metrics[0].provider.prometheus.timeout"]  # consecutiveSuccessLimit is acted on


def test_step_weights_sizes_phase_and_patches() -> None:
    from sluice.rollouts.status import (
        canary_replicas,
        desired_weight,
        merge_diff,
        phase_and_message,
        step_text,
    )

    steps: list[dict[str, Any]] = [{"setWeight": 20}, {"pause": {}}, {"setCanaryScale": {"replicas": 3}},
                                   {"setWeight": 50}, {"pause": {"duration": 30}}]
    assert [desired_weight(steps, i) for i in range(6)] == [20, 20, 20, 50, 50, 100]
    assert canary_replicas(steps, 0, 5, 20) == 1 and canary_replicas(steps, 3, 5, 50) == 3
    assert canary_replicas(steps, 5, 5, 100) == 5  # past the last step the canary takes all replicas
    assert step_text(steps[4]) == "pause: 30s" and step_text(steps[2]) == "setCanaryScale{replicas: 3}"
    spec = {"replicas": 2}
    aborted = {"conditions": [{"type": "Progressing", "reason": "RolloutAborted", "message": "Rollout aborted update to revision 2"}]}
    assert phase_and_message(spec, aborted) == ("Degraded", "RolloutAborted: Rollout aborted update to revision 2")
    assert phase_and_message({**spec, "paused": True}, {}) == ("Paused", "manually paused")
    assert phase_and_message(spec, {"pauseConditions": [{"reason": "CanaryPauseStep"}]}) == ("Paused", "CanaryPauseStep")
    assert phase_and_message(spec, {"updatedReplicas": 1}) == ("Progressing", "more replicas need to be updated")
    done = {"updatedReplicas": 2, "availableReplicas": 2, "stableRS": "a", "currentPodHash": "a"}
    assert phase_and_message(spec, done) == ("Healthy", "")
    assert merge_diff({"a": 1, "b": {"c": 1, "d": 2}}, {"b": {"c": 1, "d": 3}, "e": [1]}) == \
        {"a": None, "b": {"d": 3}, "e": [1]}
