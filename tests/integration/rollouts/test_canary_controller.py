"""The rollouts controller inside a real daemon drives Argo's canary over a real VirtualService and
DestinationRule, applied with the real kubectl: weights step by step, pause and promote, abort and retry,
and an AnalysisRun whose Prometheus query (the daemon's own Prometheus API) fails aborts the rollout."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sluice.daemon.state import Home
from tests.conftest import Daemon, start_daemon, stop_daemon, wait_for
from tests.integration.rollouts.helpers import (
    NS,
    events,
    get,
    host_setup,
    host_weights,
    kubectl,
    promote,
    rollout,
    rollout_status,
    selector_hash,
    status_patch,
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
    d = start_daemon(tmp_path_factory.mktemp("rollouts-home"))
    kubectl(d, "create", "namespace", NS)
    yield d
    stop_daemon(d)


def deployed(d: Daemon, app: str, steps: str, extra: str = "") -> str:
    """Apply the Istio objects and revision 1 of the Rollout; return the stable hash once it is Healthy."""
    kubectl(d, "apply", "-f", "-", input=subset_setup(app))
    cp = kubectl(d, "apply", "-f", "-", input=rollout(app, steps, "v1", extra))
    assert "Warning: Rollout" not in cp.stderr  # every field here is acted on
    wait_for(lambda: rollout_status(d, app).get("phase") == "Healthy", timeout=60)
    return str(rollout_status(d, app)["stableRS"])


def hash_labels(d: Daemon, app: str) -> dict[str, str]:
    dr = get(d, "destinationrule.networking.istio.io", app)
    return {s["name"]: s["labels"].get("rollouts-pod-template-hash") for s in dr["spec"]["subsets"]}


def test_steps_move_the_weights_and_promote_continues(daemon: Daemon) -> None:
    d = daemon
    v1 = deployed(d, "web", STEPS)
    rs = get(d, "replicaset", f"web-{v1}")
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", "rollouts-pod-template-hash": v1}
    assert rs["metadata"]["ownerReferences"][0]["kind"] == "Rollout"
    assert hash_labels(d, "web") == {"canary": v1, "stable": v1}
    assert vs_weights(d, "web") == {"stable": 100, "canary": 0}
    assert rollout_status(d, "web")["currentStepIndex"] == 5

    kubectl(d, "apply", "-f", "-", input=rollout("web", STEPS, "v2"))
    wait_for(lambda: rollout_status(d, "web").get("phase") == "Paused", timeout=60)
    st = rollout_status(d, "web")
    v2 = st["currentPodHash"]
    assert v2 != v1 and st["stableRS"] == v1 and st["currentStepIndex"] == 1
    assert st["message"] == "CanaryPauseStep" and st["pauseConditions"][0]["reason"] == "CanaryPauseStep"
    assert st["canary"]["weights"] == {"canary": {"weight": 20, "podTemplateHash": v2},
                                       "stable": {"weight": 80, "podTemplateHash": v1}}
    assert vs_weights(d, "web") == {"stable": 80, "canary": 20}
    assert hash_labels(d, "web") == {"canary": v2, "stable": v1}
    pods = kubectl(d, "get", "pods", "-l", f"rollouts-pod-template-hash={v2}", "-o", "name").stdout.split()
    assert len(pods) == 1  # ceil(20 % of 2)

    promote(d, "web")
    wait_for(lambda: rollout_status(d, "web").get("currentStepIndex") == 3
             and rollout_status(d, "web").get("phase") == "Paused", timeout=60)
    assert vs_weights(d, "web") == {"stable": 50, "canary": 50}

    promote(d, "web")
    wait_for(lambda: rollout_status(d, "web").get("stableRS") == v2
             and rollout_status(d, "web").get("phase") == "Healthy", timeout=60)
    assert vs_weights(d, "web") == {"stable": 100, "canary": 0}  # both subsets are v2 now
    assert hash_labels(d, "web") == {"canary": v2, "stable": v2}
    wait_for(lambda: get(d, "replicaset", f"web-{v1}")["spec"]["replicas"] == 0, timeout=60)
    seen = events(d, "web")
    for expected in [("RolloutStepCompleted", "Rollout step 1/5 completed (setWeight: 20)"),
                     ("RolloutPaused", "Rollout is paused (CanaryPauseStep)"),
                     ("RolloutResumed", "Rollout is resumed"),
                     ("Updated VirtualService", "VirtualService `web` set to desiredWeight '50'"),
                     ("Updated VirtualService", "VirtualService `web` set to desiredWeight '100'"),
                     ("RolloutCompleted", f"Rollout completed update to revision 2 ({v2}): Completed all 5 canary steps")]:
        assert expected in seen, (expected, seen)


def test_abort_puts_everything_on_stable_and_retry_starts_over(daemon: Daemon) -> None:
    d = daemon
    v1 = deployed(d, "shop", STEPS)
    kubectl(d, "apply", "-f", "-", input=rollout("shop", STEPS, "v2"))
    wait_for(lambda: rollout_status(d, "shop").get("phase") == "Paused", timeout=60)
    v2 = rollout_status(d, "shop")["currentPodHash"]
    assert vs_weights(d, "shop") == {"stable": 80, "canary": 20}

    status_patch(d, "shop", {"abort": True})  # kubectl argo rollouts abort shop
    wait_for(lambda: rollout_status(d, "shop").get("phase") == "Degraded", timeout=60)
    wait_for(lambda: get(d, "replicaset", f"shop-{v2}")["spec"]["replicas"] == 0, timeout=60)
    st = rollout_status(d, "shop")
    assert st["message"] == "RolloutAborted: Rollout aborted update to revision 2"
    assert st["currentStepIndex"] == 0 and st["stableRS"] == v1 and "pauseConditions" not in st
    assert st["canary"]["weights"]["canary"] == {"weight": 0, "podTemplateHash": v2}
    assert vs_weights(d, "shop") == {"stable": 100, "canary": 0}
    assert ("RolloutAborted", "Rollout aborted update to revision 2") in events(d, "shop")

    status_patch(d, "shop", {"abort": False})  # kubectl argo rollouts retry rollout shop
    wait_for(lambda: rollout_status(d, "shop").get("phase") == "Paused", timeout=60)
    assert rollout_status(d, "shop")["currentStepIndex"] == 1
    assert vs_weights(d, "shop") == {"stable": 80, "canary": 20}


def stuck_rollout(app: str, version: str, ready: bool, abort: bool) -> str:
    """`rollout()` with a 3 s progress deadline, and for `ready=False` pods whose readiness probe never passes."""
    text = rollout(app, "      - setWeight: 50\n      - pause: {}\n", version).replace(
        "spec:\n  replicas: 2\n", "spec:\n  replicas: 2\n  progressDeadlineSeconds: 3\n"
                                 f"  progressDeadlineAbort: {str(abort).lower()}\n", 1)
    if not ready:
        text = text.replace("        command: [sleep, infinity]\n", "        command: [sleep, infinity]\n"
                            "        readinessProbe: {exec: {command: [\"false\"]}, periodSeconds: 1}\n", 1)
    return text


def test_an_update_that_never_becomes_available_times_out_and_with_abort_goes_back(daemon: Daemon) -> None:
    d = daemon
    kubectl(d, "apply", "-f", "-", input=subset_setup("stuck"))
    cp = kubectl(d, "apply", "-f", "-", input=stuck_rollout("stuck", "v1", ready=True, abort=False))
    assert "Warning" not in cp.stderr  # progressDeadlineSeconds and progressDeadlineAbort are acted on
    wait_for(lambda: rollout_status(d, "stuck").get("phase") == "Healthy", timeout=60)
    v1 = rollout_status(d, "stuck")["stableRS"]

    kubectl(d, "apply", "-f", "-", input=stuck_rollout("stuck", "v2", ready=False, abort=False))
    wait_for(lambda: rollout_status(d, "stuck").get("phase") == "Degraded", timeout=60)
    st = rollout_status(d, "stuck")
    v2 = st["currentPodHash"]
    assert st["message"] == f'ProgressDeadlineExceeded: ReplicaSet "stuck-{v2}" has timed out progressing.'
    (progressing,) = [c for c in st["conditions"] if c["type"] == "Progressing"]
    assert (progressing["status"], progressing["reason"]) == ("False", "ProgressDeadlineExceeded")
    assert "abort" not in st and st["stableRS"] == v1  # without progressDeadlineAbort it only says so
    assert vs_weights(d, "stuck") == {"stable": 100, "canary": 0}  # no canary pod is available

    # progressDeadlineAbort set after the deadline passed aborts the update (Argo's evaluateProgressDeadlineAbort)
    kubectl(d, "apply", "-f", "-", input=stuck_rollout("stuck", "v2", ready=False, abort=True))
    expected = f'Rollout aborted update to revision 2: ReplicaSet "stuck-{v2}" has timed out progressing.'
    wait_for(lambda: rollout_status(d, "stuck").get("abort") is True, timeout=60)
    wait_for(lambda: rollout_status(d, "stuck").get("message") == f"RolloutAborted: {expected}", timeout=60)
    assert ("RolloutAborted", expected) in events(d, "stuck")
    wait_for(lambda: get(d, "replicaset", f"stuck-{v2}")["spec"]["replicas"] == 0, timeout=60)
    assert vs_weights(d, "stuck") == {"stable": 100, "canary": 0}


def test_failed_analysis_aborts_the_rollout(daemon: Daemon) -> None:
    d = daemon
    metrics_port = (Home(d.home).read_run() or {})["metrics_port"]
    kubectl(d, "apply", "-f", "-", input=f"""
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {{name: error-budget}}
spec:
  args:
  - name: errors
  metrics:
  - name: error-rate
    successCondition: len(result) > 0 && result[0] < 0.5
    provider:
      prometheus:
        address: http://127.0.0.1:{metrics_port}
        query: vector({{{{args.errors}}}})
""")
    steps = """      - setWeight: 20
      - analysis:
          templates: [{templateName: error-budget}]
          args: [{name: errors, value: "1"}]
      - setWeight: 100
"""
    v1 = deployed(d, "cart", steps)
    kubectl(d, "apply", "-f", "-", input=rollout("cart", steps, "v2"))
    wait_for(lambda: rollout_status(d, "cart").get("phase") == "Degraded", timeout=90)
    st = rollout_status(d, "cart")
    v2 = st["currentPodHash"]
    run_name = f"cart-{v2}-2-1"
    assert st["message"] == ("RolloutAborted: Rollout aborted update to revision 2: Step-based analysis phase "
                             "error/failed: Metric \"error-rate\" assessed Failed due to failed (1) > failureLimit (0)")
    assert st["stableRS"] == v1
    wait_for(lambda: vs_weights(d, "cart") == {"stable": 100, "canary": 0}, timeout=60)
    run = get(d, "analysisrun", run_name)
    assert run["metadata"]["labels"]["rollout-type"] == "Step"
    assert run["status"]["phase"] == "Failed"
    (m,) = run["status"]["metricResults"]
    assert m["phase"] == "Failed" and m["failed"] == 1
    assert m["measurements"][0]["value"] == "[1]"
    assert m["metadata"]["ResolvedPrometheusQuery"] == "vector(1)"
    assert ("AnalysisRunFailed", f"Step Analysis Run '{run_name}' Status New: 'Failed' Previous: 'NoPreviousStatus'") \
        in events(d, "cart") or any(r == "AnalysisRunFailed" for r, _ in events(d, "cart"))


def host_rollout(app: str, version: str, metrics_port: int) -> str:
    return f"""
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: {app}}}
spec:
  replicas: 2
  selector:
    matchLabels: {{app: {app}}}
  template:
    metadata:
      labels: {{app: {app}}}
      annotations: {{sidecar.istio.io/inject: "false"}}
    spec:
      containers:
      - name: main
        image: busybox:1.36
        command: [sleep, infinity]
        env: [{{name: VERSION, value: {version}}}]
  strategy:
    canary:
      canaryService: {app}-canary
      stableService: {app}-stable
      scaleDownDelaySeconds: 0
      trafficRouting:
        istio:
          virtualServices:
          - name: {app}-vsvc
            routes: [primary]
      analysis:
        templates: [{{templateName: always-fine}}]
        args: [{{name: port, value: "{metrics_port}"}}]
      steps:
      - setCanaryScale: {{replicas: 2}}
      - setWeight: 25
      - pause: {{duration: 1s}}
      - setWeight: 60
      - pause: {{}}
"""


def test_host_level_split_with_background_analysis_and_manual_pause(daemon: Daemon) -> None:
    d = daemon
    port = (Home(d.home).read_run() or {})["metrics_port"]
    kubectl(d, "apply", "-f", "-", input="""
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: always-fine}
spec:
  args: [{name: port}]
  metrics:
  - name: zero-errors
    interval: 1s
    successCondition: result[0] == 0
    provider:
      prometheus:
        address: http://127.0.0.1:{{args.port}}
        query: vector(0)
""")
    kubectl(d, "apply", "-f", "-", input=host_setup("hl"))
    cp = kubectl(d, "apply", "-f", "-", input=host_rollout("hl", "v1", port))
    assert "Warning: Rollout" not in cp.stderr
    wait_for(lambda: rollout_status(d, "hl").get("phase") == "Healthy", timeout=60)
    v1 = rollout_status(d, "hl")["stableRS"]
    wait_for(lambda: selector_hash(d, "hl-stable") == v1 and selector_hash(d, "hl-canary") == v1, timeout=30)
    assert kubectl(d, "get", "analysisrun", "-o", "name").stdout.count("hl-") == 0  # none for an initial deploy

    kubectl(d, "apply", "-f", "-", input=host_rollout("hl", "v2", port))
    wait_for(lambda: rollout_status(d, "hl").get("currentStepIndex") == 4
             and rollout_status(d, "hl").get("phase") == "Paused", timeout=60)
    st = rollout_status(d, "hl")
    v2 = st["currentPodHash"]
    assert host_weights(d, "hl") == {"hl-stable": 40, "hl-canary": 60}
    assert st["canary"]["weights"] == {
        "canary": {"weight": 60, "podTemplateHash": v2, "serviceName": "hl-canary"},
        "stable": {"weight": 40, "podTemplateHash": v1, "serviceName": "hl-stable"}}
    assert selector_hash(d, "hl-stable") == v1 and selector_hash(d, "hl-canary") == v2
    assert get(d, "replicaset", f"hl-{v2}")["spec"]["replicas"] == 2  # setCanaryScale, not ceil(60 % of 2)
    assert ("RolloutStepCompleted", "Rollout step 3/5 completed (pause: 1s)") in events(d, "hl")
    background = st["canary"]["currentBackgroundAnalysisRunStatus"]
    assert background["name"] == f"hl-{v2}-2"
    wait_for(lambda: len((get(d, "analysisrun", f"hl-{v2}-2").get("status") or {})
                         .get("metricResults", [{}])[0].get("measurements") or []) >= 2, timeout=30)
    run = get(d, "analysisrun", f"hl-{v2}-2")
    assert run["metadata"]["labels"]["rollout-type"] == "Background"
    assert run["status"]["phase"] == "Running"
    assert run["status"]["metricResults"][0]["measurements"][0]["value"] == "[0]"

    kubectl(d, "patch", "rollout", "hl", "--type=merge", "-p", '{"spec":{"paused":true}}')  # argo rollouts pause
    wait_for(lambda: rollout_status(d, "hl").get("message") == "manually paused", timeout=30)
    # `kubectl argo rollouts promote`: unpause the spec, then clear the pause condition
    kubectl(d, "patch", "rollout", "hl", "--type=merge", "-p", '{"spec":{"paused":false}}')
    promote(d, "hl")
    wait_for(lambda: rollout_status(d, "hl").get("stableRS") == v2
             and rollout_status(d, "hl").get("phase") == "Healthy", timeout=60)
    assert host_weights(d, "hl") == {"hl-stable": 100, "hl-canary": 0}
    wait_for(lambda: selector_hash(d, "hl-stable") == v2, timeout=30)
    assert selector_hash(d, "hl-canary") == v2
    wait_for(lambda: (get(d, "analysisrun", f"hl-{v2}-2").get("status") or {}).get("phase") == "Successful",
             timeout=30)
    assert get(d, "analysisrun", f"hl-{v2}-2")["spec"]["terminate"] is True
    assert "currentBackgroundAnalysisRunStatus" not in rollout_status(d, "hl").get("canary", {})


def test_inconclusive_analysis_pauses_then_promote_and_full_promote(daemon: Daemon) -> None:
    d = daemon
    port = (Home(d.home).read_run() or {})["metrics_port"]
    kubectl(d, "apply", "-f", "-", input=f"""
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {{name: undecided}}
spec:
  metrics:
  - name: between
    successCondition: result[0] > 5
    failureCondition: result[0] < 0
    provider:
      prometheus: {{address: "http://127.0.0.1:{port}", query: vector(1)}}
""")
    steps = """      - setWeight: 20
      - analysis:
          templates: [{templateName: undecided}]
      - setWeight: 60
      - pause: {}
      - setWeight: 80
      - pause: {}
"""
    deployed(d, "mail", steps)
    kubectl(d, "apply", "-f", "-", input=rollout("mail", steps, "v2"))
    wait_for(lambda: rollout_status(d, "mail").get("message") == "InconclusiveAnalysisRun", timeout=60)
    st = rollout_status(d, "mail")
    v2 = st["currentPodHash"]
    assert st["phase"] == "Paused" and st["currentStepIndex"] == 1
    assert [c["reason"] for c in st["pauseConditions"]] == ["InconclusiveAnalysisRun"]
    assert get(d, "analysisrun", f"mail-{v2}-2-1")["status"]["phase"] == "Inconclusive"
    # `kubectl argo rollouts promote` on an inconclusive step: past it
    status_patch(d, "mail", {"pauseConditions": None, "controllerPause": False, "currentStepIndex": 2})
    wait_for(lambda: rollout_status(d, "mail").get("currentStepIndex") == 3
             and rollout_status(d, "mail").get("message") == "CanaryPauseStep", timeout=60)
    assert vs_weights(d, "mail") == {"stable": 40, "canary": 60}

    status_patch(d, "mail", {"promoteFull": True})  # kubectl argo rollouts promote --full
    wait_for(lambda: rollout_status(d, "mail").get("stableRS") == v2
             and rollout_status(d, "mail").get("phase") == "Healthy", timeout=60)
    assert vs_weights(d, "mail") == {"stable": 100, "canary": 0}
    assert hash_labels(d, "mail") == {"canary": v2, "stable": v2}
    assert ("RolloutCompleted", f"Rollout completed update to revision 2 ({v2}): Full promotion requested") \
        in events(d, "mail")
    assert "promoteFull" not in rollout_status(d, "mail")


def test_a_route_missing_from_the_virtualservice_is_an_invalid_spec(daemon: Daemon) -> None:
    d = daemon
    kubectl(d, "apply", "-f", "-", input=subset_setup("lost"))
    kubectl(d, "apply", "-f", "-", input=rollout("lost", STEPS).replace("routes: [primary]", "routes: [missing]"))
    wait_for(lambda: rollout_status(d, "lost").get("phase") == "Degraded", timeout=30)
    assert rollout_status(d, "lost")["message"] == (
        "InvalidSpec: The Rollout \"lost\" is invalid: Istio VirtualService has invalid HTTP routes. "
        "Error: HTTP Route 'missing' is not found in the defined Virtual Service.")
    assert kubectl(d, "get", "rs", "-l", "app=lost", "-o", "name").stdout.strip() == ""
    kubectl(d, "apply", "-f", "-", input=rollout("lost", STEPS))  # fixed: the condition goes, the rollout runs
    wait_for(lambda: rollout_status(d, "lost").get("phase") == "Healthy", timeout=60)
    assert not [c for c in rollout_status(d, "lost")["conditions"] if c["type"] == "InvalidSpec"]
    v1 = rollout_status(d, "lost")["stableRS"]
    assert hash_labels(d, "lost") == {"canary": v1, "stable": v1}
    kubectl(d, "delete", "rollout", "lost")  # Argo releases the DestinationRule it managed
    wait_for(lambda: hash_labels(d, "lost") == {"canary": None, "stable": None}, timeout=30)
    dr = get(d, "destinationrule.networking.istio.io", "lost")
    assert "argo-rollouts.argoproj.io/managed-by-rollouts" not in (dr["metadata"].get("annotations") or {})


def test_the_controllers_metrics_on_the_daemons_metrics_port(daemon: Daemon) -> None:
    """Argo's controller metrics on the daemon's /metrics and, as scraped, in its PromQL store."""
    import json
    import urllib.parse
    import urllib.request

    d = daemon
    deployed(d, "metered", STEPS)
    port = (Home(d.home).read_run() or {})["metrics_port"]

    def metrics() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            return str(r.read().decode())

    expected = {
        'rollout_info{name="metered",namespace="rollouts",phase="Completed",strategy="canary",traffic_router="Istio"} 1',
        'rollout_info_replicas_available{name="metered",namespace="rollouts"} 2',
        'rollout_events_total{name="metered",namespace="rollouts",reason="RolloutCompleted",type="Normal"} 1',
    }
    # the metrics follow the controller's passes: the last ones may still be under way
    wait_for(lambda: expected <= set(metrics().splitlines()), timeout=30, interval=0.5)

    def stored() -> list[object]:
        q = urllib.parse.quote('rollout_info{name="metered",phase="Completed"}')
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/query?query={q}", timeout=10) as r:
            return list(json.loads(r.read())["data"]["result"])

    wait_for(stored, timeout=30, interval=0.5)
