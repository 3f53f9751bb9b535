"""Argo Rollouts' kinds (argoproj.io/v1alpha1) served like the Istio kinds, through the real kubectl 1.35:
Argo's own Istio examples apply, list and describe; bad objects are rejected with Argo's messages; a
Rollout write names (a `Warning:`) the fields the rollouts controller does not act on."""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import TOOLS, Daemon, start_daemon, stop_daemon

DATA = Path(__file__).resolve().parent.parent / "data" / "argo"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = start_daemon(tmp_path_factory.mktemp("argo-home"), extra=["--no-runtime"])
    yield d
    stop_daemon(d)


def kubectl(daemon: Daemon, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(TOOLS / "kubectl-1.35"), f"--cache-dir={daemon.home}/kc", *args],
                          env=daemon.env, capture_output=True, text=True, input=input, timeout=60)


def ok(cp: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert cp.returncode == 0, (cp.args, cp.stdout, cp.stderr)
    return cp


def namespace(daemon: Daemon, name: str) -> str:
    ok(kubectl(daemon, "create", "namespace", name))
    return name


def docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((DATA / name).read_text()) if d]


def rollout_of(name: str) -> dict[str, Any]:
    return next(d for d in docs(name) if d["kind"] == "Rollout")


def test_api_resources_lists_the_argo_kinds(daemon: Daemon) -> None:
    out = ok(kubectl(daemon, "api-resources", "--api-group=argoproj.io")).stdout.splitlines()
    assert out[0].split() == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    rows = {line.split()[0]: line.split()[1:] for line in out[1:]}
    assert rows == {
        "analysisruns": ["ar", "argoproj.io/v1alpha1", "true", "AnalysisRun"],
        "analysistemplates": ["at", "argoproj.io/v1alpha1", "true", "AnalysisTemplate"],
        "clusteranalysistemplates": ["cat", "argoproj.io/v1alpha1", "false", "ClusterAnalysisTemplate"],
        "experiments": ["exp", "argoproj.io/v1alpha1", "true", "Experiment"],
        "rollouts": ["ro", "argoproj.io/v1alpha1", "true", "Rollout"],
    }


def test_subset_level_example_applies_without_warnings(daemon: Daemon) -> None:
    ns = namespace(daemon, "subset")
    cp = ok(kubectl(daemon, "apply", "-n", ns, "-f", str(DATA / "istio-subset-split.yaml")))
    assert cp.stdout.split("\n")[:4] == [
        "service/istio-subset-split created",
        "virtualservice.networking.istio.io/istio-subset-split-vsvc created",
        "destinationrule.networking.istio.io/istio-subset-split-destrule created",
        "rollout.argoproj.io/istio-subset-split created",
    ]
    # the rollouts controller acts on every field of Argo's example; the runtime names its pods' resource requests
    assert [w for w in cp.stderr.splitlines() if w.startswith("Warning: Rollout")] == [
        'Warning: Rollout "istio-subset-split": spec.template.spec.containers[0].resources is stored but not applied: '
        "Sluice neither reserves nor limits CPU and memory"]
    lines = ok(kubectl(daemon, "get", "-n", ns, "ro")).stdout.splitlines()
    assert lines[0].split() == ["NAME", "DESIRED", "CURRENT", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert lines[1].split()[0] == "istio-subset-split"
    obj = json.loads(ok(kubectl(daemon, "get", "-n", ns, "rollout", "istio-subset-split", "-o", "json")).stdout)
    canary = obj["spec"]["strategy"]["canary"]
    assert canary["steps"] == [{"setWeight": 10}, {"pause": {}}]
    assert canary["trafficRouting"]["istio"]["destinationRule"] == {
        "name": "istio-subset-split-destrule", "canarySubsetName": "canary", "stableSubsetName": "stable"}
    described = ok(kubectl(daemon, "describe", "-n", ns, "rollouts.argoproj.io", "istio-subset-split")).stdout
    assert "Kind:         Rollout" in described and "Set Weight:  10" in described
    # Applying the same file again is unchanged and still says so.
    cp = ok(kubectl(daemon, "apply", "-n", ns, "-f", str(DATA / "istio-subset-split.yaml")))
    assert "rollout.argoproj.io/istio-subset-split unchanged" in cp.stdout


def test_host_level_and_mirror_examples_apply(daemon: Daemon) -> None:
    for name in ("istio-host-split.yaml", "istio-mirror.yaml"):
        ns = namespace(daemon, name.removesuffix(".yaml"))
        cp = ok(kubectl(daemon, "apply", "-n", ns, "-f", str(DATA / name)))
        assert "rollout.argoproj.io/istio-host-split created" in cp.stdout
        # managedRoutes and setMirrorRoute are acted on too (the pods' resource requests are the runtime's to name)
        assert "not acted on" not in cp.stderr, cp.stderr
    obj = json.loads(ok(kubectl(daemon, "get", "-n", "istio-mirror", "ro", "istio-host-split", "-o", "json")).stdout)
    steps = obj["spec"]["strategy"]["canary"]["steps"]
    assert steps[1]["setMirrorRoute"]["match"][0]["path"] == {"prefix": "/color"}


def test_analysis_templates_are_served(daemon: Daemon) -> None:
    ns = namespace(daemon, "analysis")
    cp = ok(kubectl(daemon, "apply", "-n", ns, "-f", str(DATA / "analysis-success-rate.yaml")))
    assert cp.stdout.strip() == "analysistemplate.argoproj.io/success-rate created"
    assert "Warning" not in cp.stderr  # a template is only read by Rollouts: nothing to act on
    lines = ok(kubectl(daemon, "get", "-n", ns, "at")).stdout.splitlines()
    assert lines[0].split() == ["NAME", "AGE"] and lines[1].split()[0] == "success-rate"
    metric = json.loads(ok(kubectl(daemon, "get", "-n", ns, "at", "success-rate", "-o", "json")).stdout)[
        "spec"]["metrics"][0]
    assert "{{args.service-name}}" in metric["provider"]["prometheus"]["query"]
    assert metric["provider"]["prometheus"]["address"] == "http://prometheus.example.com:9090"
    cluster = {**docs("analysis-success-rate.yaml")[0], "kind": "ClusterAnalysisTemplate"}
    cp = ok(kubectl(daemon, "apply", "-f", "-", input=json.dumps(cluster)))
    assert cp.stdout.strip() == "clusteranalysistemplate.argoproj.io/success-rate created"
    assert ok(kubectl(daemon, "get", "cat", "-o", "name")).stdout.split() == [
        "clusteranalysistemplate.argoproj.io/success-rate"]
    run = {"apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun", "metadata": {"name": "once"},
           "spec": {"metrics": [{"name": "m", "provider": {"prometheus": {"query": "vector(1)"}}}]}}
    cp = ok(kubectl(daemon, "apply", "-n", ns, "-f", "-", input=json.dumps(run)))
    assert "Warning" not in cp.stderr  # the rollouts controller runs it
    assert ok(kubectl(daemon, "get", "-n", ns, "ar")).stdout.splitlines()[0].split() == ["NAME", "STATUS", "AGE"]


def _rollout_with(change: Any, base: str = "istio-host-split.yaml") -> dict[str, Any]:
    ro = copy.deepcopy(rollout_of(base))
    ro["metadata"]["name"] = "bad"
    change(ro["spec"], ro["spec"]["strategy"]["canary"])
    return ro


def _set(d: dict[str, Any], **kv: Any) -> None:
    d.update(kv)


BAD_ROLLOUTS = [
    (lambda s, c: c["steps"].__setitem__(0, {"setWeight": 150}),
     "spec.strategy.steps[0].setWeight: Invalid value: 150: SetWeight needs to be between 0 and 100"),
    (lambda s, c: c["steps"].__setitem__(1, {"pause": {"duration": "ten minutes"}}),
     "spec.strategy.steps[1].pause.duration: Invalid value: -1: Duration needs to be greater than 0"),
    (lambda s, c: c["steps"].append({}),
     "spec.strategy.steps[2]: Invalid value: \"step.Experiment: true step.Pause: true step.SetWeight: true "
     "step.Analysis: true step.SetCanaryScale: true step.SetHeaderRoute: true step.SetMirrorRoute: true "
     "step.Plugin: true\": Step must have one of the following set: experiment, setWeight, setCanaryScale, "
     "plugin or pause"),
    (lambda s, c: c.pop("canaryService"),
     'spec.strategy.canaryService: Invalid value: "": Canary service and Stable service must to be set to use '
     "Traffic Routing"),
    (lambda s, c: _set(c, maxSurge=0, maxUnavailable="0%"),
     "spec.strategy.maxSurge: Invalid value: 0: MaxSurge and MaxUnavailable both can not be zero"),
    (lambda s, c: _set(c, stableService="istio-host-split-canary"),
     "This rollout uses the same service for the stable and canary services, but two different services are "
     "required."),
    (lambda s, c: c["steps"].append({"setHeaderRoute": {"name": "h", "match": [
        {"headerName": "x", "headerValue": {"exact": "a", "regex": "b"}}]}}),
     "Rollout has missing field 'spec.strategy.canary.trafficRouting.managedRoutes'"),
    (lambda s, c: (c["trafficRouting"].__setitem__("managedRoutes", [{"name": "other"}]),
                   c["steps"].append({"setMirrorRoute": {"name": "mirror"}})),
     'spec.strategy.steps[2].setMirrorRoute: Invalid value: "mirror": Steps define a route that does not exist in '
     "spec.strategy.canary.trafficRouting.managedRoutes"),
    (lambda s, c: (c["trafficRouting"].__setitem__("managedRoutes", [{"name": "h"}]),
                   c["steps"].append({"setHeaderRoute": {"name": "h", "match": [
                       {"headerName": "x", "headerValue": {"exact": "a", "regex": "b"}}]}})),
     "spec.strategy.steps[2].setHeaderRoute.match[0]: Invalid value: "),
    (lambda s, c: c["trafficRouting"]["istio"].__setitem__("virtualServices", [{"name": "v"}]),
     "spec.strategy.canary.trafficRouting.istio: Internal error: either VirtualService or VirtualServices must be "
     "configured"),
    (lambda s, c: s.pop("selector"), "spec.selector: Required value: Rollout has missing field '.spec.selector'"),
    (lambda s, c: s["strategy"].pop("canary"),
     "spec.strategy.strategy: Required value: Rollout has missing field '.spec.strategy.canary or "
     ".spec.strategy.blueGreen'"),
    (lambda s, c: c["steps"].append({"analysis": {"templates": [{"templateName": "success-rate"}], "args": [
        {"name": "service-name", "valueFrom": {"fieldRef": {"fieldPath": "metadata.creationTimestamp"}}}]}}),
     "spec.strategy.steps[2].analyses: Invalid value: "),
    (lambda s, c: _set(s, workloadRef={"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}),
     "spec.template: Internal error: template must be empty for workload reference rollout"),
    (lambda s, c: _set(s, progressDeadlineSeconds=10, minReadySeconds=10),
     "spec.progressDeadlineSeconds: Invalid value: 10: must be greater than minReadySeconds"),
    (lambda s, c: _set(c, scaleDownDelaySeconds=5, dynamicStableScale=True),
     "spec.strategy.dynamicStableScale: Invalid value: true: Canary dynamicStableScale cannot be used with "
     "scaleDownDelaySeconds"),
]


@pytest.mark.parametrize(("change", "message"), BAD_ROLLOUTS)
def test_bad_rollouts_are_rejected_with_argos_messages(daemon: Daemon, change: Any, message: str) -> None:
    cp = kubectl(daemon, "apply", "-n", "default", "-f", "-", input=json.dumps(_rollout_with(change)))
    assert cp.returncode != 0
    assert 'The Rollout "bad" is invalid' in cp.stderr and message in cp.stderr, cp.stderr
    assert "Warning" not in cp.stderr


def test_workload_ref_rollout_needs_no_selector_or_template(daemon: Daemon) -> None:
    ro = rollout_of("istio-host-split.yaml")
    ro["metadata"]["name"] = "by-ref"
    del ro["spec"]["selector"], ro["spec"]["template"]
    ro["spec"]["workloadRef"] = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "scaleDown": "never"}
    cp = ok(kubectl(daemon, "apply", "-n", "default", "-f", "-", input=json.dumps(ro)))
    assert cp.stdout.strip() == "rollout.argoproj.io/by-ref created"
    assert "Warning" not in cp.stderr  # the rollouts controller acts on workloadRef


def test_bad_subset_rule_and_pod_template(daemon: Daemon) -> None:
    ro = rollout_of("istio-subset-split.yaml")
    del ro["spec"]["strategy"]["canary"]["trafficRouting"]["istio"]["destinationRule"]["stableSubsetName"]
    cp = kubectl(daemon, "apply", "-n", "default", "-f", "-", input=json.dumps(ro))
    assert cp.returncode != 0
    assert "spec.strategy.canary.trafficRouting.istio.destinationRule.stableSubsetName: Required value" in cp.stderr
    ro = rollout_of("istio-subset-split.yaml")
    ro["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    cp = kubectl(daemon, "apply", "-n", "default", "-f", "-", input=json.dumps(ro))
    assert cp.returncode != 0 and "`selector` does not match template `labels`" in cp.stderr


def _template_with(**metric: Any) -> dict[str, Any]:
    t = copy.deepcopy(docs("analysis-success-rate.yaml")[0])
    t["spec"]["metrics"][0].update(metric)
    return {k: v for k, v in t.items()}


BAD_TEMPLATES = [
    ({"count": 3, "interval": None}, "spec.metrics[0].interval: Required value: interval must be specified when "
                                     "count > 1"),
    ({"interval": "5x"}, 'spec.metrics[0].interval: Invalid value: "5x": invalid interval string: time: unknown unit '
                         '"x" in duration "5x"'),
    ({"initialDelay": "10"}, 'invalid startDelay string: time: missing unit in duration "10"'),
    ({"count": 2, "inconclusiveLimit": 3, "failureLimit": 0}, "count must be >= inconclusiveLimit"),
    ({"count": 2, "failureLimit": 3}, "count (2) must be >= failureLimit + consecutiveSuccessLimit (3 + 0) if both "
                                      ">= 0"),
    ({"failureLimit": -2}, "spec.metrics[0].failureLimit: Invalid value: -2: failureLimit must be >= 0, or -1 to be "
                           "disabled"),
    ({"consecutiveErrorLimit": -1}, "consecutiveErrorLimit must be >= 0"),
    ({"provider": {}}, "spec.metrics[0].provider: Required value: no provider specified"),
    ({"provider": {"prometheus": {"query": "up"}, "web": {"url": "http://x"}}}, "multiple providers specified"),
]


@pytest.mark.parametrize(("metric", "message"), BAD_TEMPLATES)
def test_bad_analysis_templates_are_rejected_with_argos_messages(daemon: Daemon, metric: dict[str, Any],
                                                                 message: str) -> None:
    t = _template_with(**metric)
    t["spec"]["metrics"][0] = {k: v for k, v in t["spec"]["metrics"][0].items() if v is not None}
    cp = kubectl(daemon, "apply", "-n", "default", "-f", "-", input=json.dumps(t))
    assert cp.returncode != 0
    assert 'The AnalysisTemplate "success-rate" is invalid' in cp.stderr and message in cp.stderr, cp.stderr
