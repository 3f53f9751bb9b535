"""Canary Rollouts under steady load (issue 13, point 8), gated by Sluice's statistical judge, in a real daemon
(loopback mode, real Envoy sidecars, Istio's metrics scraped every second) with the real kubectl.

The client is this test playing the sleep pod's app: one request after another through the sleep pod's sidecar,
each answer recorded with its time, status and the version that answered.

* A good v2 of Istio's helloworld walks 20 % → judge → 50 % → judge → 100 % with no failed request, and v1 is
  scaled down only once Istio's metrics and v1's sidecar log prove it idle over scaleDownDelaySeconds.
* A bad v2 of Bookinfo's ratings (its own `v-faulty` variant: half its answers are 503) is judged Failed at
  the first analysis step; the controller aborts within one analysis interval of that measurement, all traffic
  goes back to stable (the VirtualService and the sleep sidecar's routes), and the client's errors are those
  the analysis saw plus the ones sent while the rollback was on its way, none after.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from sluice.rollouts.analysis import parse_time, step
from tests.conftest import Daemon, start_daemon, stop_daemon, wait_for
from tests.e2e.mesh import Pod, pod, route_weights, via
from tests.integration.netns.test_istio_samples import SLEEP
from tests.integration.rollouts.helpers import (
    HELLOWORLD_ROUTING,
    NS,
    events,
    get,
    helloworld_rollout,
    kubectl,
    rollout_status,
    subset_setup,
    vs_weights,
)

pytestmark = pytest.mark.kubectl

INTERVAL_S = 5  # the judge's analysis interval
WINDOW_S = 4  # scaleDownDelaySeconds: how long v1 must have been idle

# Sluice's judge as an Argo metric-provider plugin, comparing the canary ReplicaSet's workload with the stable
# one's over the same requests (everything since the run started). A coarse bad boundary (5 points of error rate,
# as tests/integration/test_judge.py uses) so that an equal canary passes after about a hundred requests; the
# latency check is off: a cold canary process on a shared 2-core machine is slower for reasons no rollout is about.
# Argo ends the metric at its first Successful look (consecutiveSuccessLimit: 1; the test at the end), `count`
# bounds each step, and `inconclusiveLimit` one less than it means a step passes only if at least one look was
# Successful and none Failed.
LOOKS = 6
JUDGE = f"""
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {{name: judge}}
spec:
  args:
  - name: app
  - name: canary-hash
  - name: stable-hash
  metrics:
  - name: judge
    interval: {INTERVAL_S}s
    count: {LOOKS}
    failureLimit: 0
    consecutiveSuccessLimit: 1
    inconclusiveLimit: {LOOKS - 1}
    provider:
      plugin:
        sluice/judge:
          canary: destination_workload="{{{{args.app}}}}-{{{{args.canary-hash}}}}", destination_workload_namespace="{NS}"
          stable: destination_workload="{{{{args.app}}}}-{{{{args.stable-hash}}}}", destination_workload_namespace="{NS}"
          reporter: source
          minRequests: 20
          errorRate: {{detectIncrease: 0.05}}
          latency: false
"""


def judged_steps(app: str, weights: tuple[int, ...]) -> str:
    """`setWeight: W` then a judge analysis step, for each W (`strategy.canary.steps` items, indented six)."""
    out = ""
    for w in weights:
        out += f"""      - setWeight: {w}
      - analysis:
          templates: [{{templateName: judge}}]
          args:
          - {{name: app, value: {app}}}
          - name: canary-hash
            valueFrom: {{podTemplateHashValue: Latest}}
          - name: stable-hash
            valueFrom: {{podTemplateHashValue: Stable}}
"""
    return out


def helloworld(version: str) -> str:
    return helloworld_rollout(version, f"""      scaleDownDelaySeconds: {WINDOW_S}
      trafficRouting:
        istio:
          virtualService: {{name: helloworld, routes: [primary]}}
          destinationRule: {{name: helloworld, canarySubsetName: canary, stableSubsetName: stable}}
      steps:
{judged_steps("helloworld", (20, 50))}""")


RATINGS_ROUTING = subset_setup("ratings", 9080)


def ratings(service_version: str) -> str:
    """Bookinfo's ratings as a Rollout; `v-faulty` is the original's own test variant (half its answers 503)."""
    return f"""
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: ratings}}
spec:
  replicas: 1
  selector:
    matchLabels: {{app: ratings}}
  template:
    metadata:
      labels: {{app: ratings}}
    spec:
      containers:
      - name: ratings
        image: docker.io/istio/examples-bookinfo-ratings-v1:1.20.3
        env: [{{name: SERVICE_VERSION, value: "{service_version}"}}]
        ports: [{{containerPort: 9080}}]
  strategy:
    canary:
      trafficRouting:
        istio:
          virtualService: {{name: ratings, routes: [primary]}}
          destinationRule: {{name: ratings, canarySubsetName: canary, stableSubsetName: stable}}
      steps:
{judged_steps("ratings", (20,))}"""


@dataclass
class Answer:
    at: float  # unix time the answer came back
    code: int  # 0: no answer at all (connection error, timeout)
    body: str


@dataclass
class Client:
    """One request after another through the sleep pod's sidecar until stopped (at most 5 minutes)."""

    sleep: Pod
    url: str
    answers: list[Answer] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Client:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def _run(self) -> None:
        deadline = time.monotonic() + 300
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                code, body = via(self.sleep, self.url)
            except (OSError, urllib.error.URLError) as e:
                code, body = 0, repr(e).encode()
            self.answers.append(Answer(time.time(), code, body.decode(errors="replace")[:200]))
            self._stop.wait(0.005)

    def failed(self, since: float = 0.0) -> list[Answer]:
        return [a for a in list(self.answers) if a.code != 200 and a.at >= since]

    def count(self, since: float = 0.0) -> int:
        return sum(1 for a in list(self.answers) if a.at >= since)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    home = tmp_path_factory.mktemp("load-home")
    (home / "config.yaml").write_text("scrape_interval: 1\n")  # the judge sees the traffic of a second ago
    d = start_daemon(home, network="loopback")
    try:
        kubectl(d, "create", "namespace", NS)
        kubectl(d, "apply", "-f", "-", input="---\n".join([SLEEP, HELLOWORLD_ROUTING, RATINGS_ROUTING, JUDGE]))
        kubectl(d, "wait", "--for=condition=Available", "deployment/sleep", "--timeout=120s")
        yield d
    finally:
        stop_daemon(d)


def sleep_pod(d: Daemon) -> Pod:
    ip = kubectl(d, "get", "pods", "-l", "app=sleep", "-o", "jsonpath={.items[0].status.podIP}").stdout.strip()
    return pod(d, ip, namespace=NS)


def version(a: Answer) -> str:
    return a.body.split(",")[0].removeprefix("Hello version: ") if a.body.startswith("Hello version: ") else ""


def measurements(d: Daemon, run: str) -> list[dict[str, Any]]:
    return list(((get(d, "analysisrun", run).get("status") or {}).get("metricResults") or [{}])[0]
                 .get("measurements") or [])


def test_a_good_canary_reaches_all_traffic_without_a_failed_request(daemon: Daemon) -> None:
    d = daemon
    kubectl(d, "apply", "-f", "-", input=helloworld("v1"))
    wait_for(lambda: rollout_status(d, "helloworld").get("phase") == "Healthy", timeout=120)
    v1 = str(rollout_status(d, "helloworld")["stableRS"])
    sleep = sleep_pod(d)
    wait_for(lambda: via(sleep, "http://helloworld:5000/hello")[0] == 200, timeout=60, interval=0.5)

    with Client(sleep, "http://helloworld:5000/hello") as client:
        kubectl(d, "apply", "-f", "-", input=helloworld("v2"))
        wait_for(lambda: rollout_status(d, "helloworld").get("currentPodHash") != v1, timeout=30)
        v2 = str(rollout_status(d, "helloworld")["currentPodHash"])
        wait_for(lambda: rollout_status(d, "helloworld").get("stableRS") == v2
                 and rollout_status(d, "helloworld").get("phase") == "Healthy", timeout=150, interval=0.5)
        assert vs_weights(d, "helloworld") == {"stable": 100, "canary": 0}  # both subsets are v2 now
        # v1 goes once proven idle: the load keeps going all along, to v2 alone
        wait_for(lambda: get(d, "replicaset", f"helloworld-{v1}")["spec"]["replicas"] == 0, timeout=90,
                 interval=0.5)
        after_scale_down = time.time()
        wait_for(lambda: client.count(after_scale_down) >= 20, timeout=60, interval=0.2)

    answers = list(client.answers)
    assert client.failed() == [], client.failed()[:5]
    seen = {version(a) for a in answers}
    assert seen == {"v1", "v2"}, seen
    assert {version(a) for a in answers if a.at >= after_scale_down} == {"v2"}

    # both judge steps passed on the judge's own verdict (not an empty window)
    for index in (1, 3):
        ms = measurements(d, f"helloworld-{v2}-2-{index}")
        assert ms and ms[-1]["phase"] == "Successful", ms
        assert all(m["phase"] in ("Inconclusive", "Successful") for m in ms), ms
        judged = json.loads(ms[-1]["value"])["errorRate"]
        assert judged["canary"]["requests"] >= 20 and judged["canary"]["errors"] == 0, judged

    # the scale-down came with its proof: a window that began after v1's last answer to the client
    rs = get(d, "replicaset", f"helloworld-{v1}")
    proof = json.loads(rs["metadata"]["annotations"]["sluice.dev/decommission-proof"])
    assert proof["idle"] is True and proof["workload"] == f"helloworld-{v1}", proof
    assert proof["window"]["seconds"] == WINDOW_S
    last_v1 = max(a.at for a in answers if version(a) == "v1")
    start = parse_time(proof["window"]["start"])
    assert start is not None and start >= int(last_v1), (proof["window"], last_v1)
    assert all(m["value"] in (None, 0) for m in proof["metrics"]), proof
    assert [log["inboundLines"] for log in proof["accessLogs"]] == [0], proof
    seen_events = events(d, "helloworld")
    proven = [m for r, m in seen_events if r == "DecommissionProven"]
    assert len(proven) == 1 and proven[0].startswith(
        f"ReplicaSet helloworld-{v1} (revision 1): helloworld-{v1} received no requests or connections in the last "
        f"{WINDOW_S}s (Istio's metrics and the istio-proxy logs of 1 pod(s) agree). window "), proven
    assert ("ScalingReplicaSet", f"Scaled down ReplicaSet helloworld-{v1} (revision 1) from 1 to 0") in seen_events


def test_a_bad_canary_is_rolled_back_within_one_interval(daemon: Daemon) -> None:
    d = daemon
    kubectl(d, "apply", "-f", "-", input=ratings("v1"))
    wait_for(lambda: rollout_status(d, "ratings").get("phase") == "Healthy", timeout=120)
    v1 = str(rollout_status(d, "ratings")["stableRS"])
    sleep = sleep_pod(d)
    url = "http://ratings:9080/ratings/0"
    wait_for(lambda: via(sleep, url)[0] == 200, timeout=60, interval=0.5)

    def on_stable() -> bool:
        held = route_weights(sleep, "ratings.")
        return vs_weights(d, "ratings") == {"stable": 100, "canary": 0} and held.get("canary", 0) == 0 \
            and held.get("stable") == 100

    with Client(sleep, url) as client:
        kubectl(d, "apply", "-f", "-", input=ratings("v-faulty"))
        wait_for(lambda: rollout_status(d, "ratings").get("currentPodHash") != v1, timeout=30)
        v2 = str(rollout_status(d, "ratings")["currentPodHash"])
        wait_for(lambda: rollout_status(d, "ratings").get("phase") == "Degraded", timeout=150, interval=0.5)
        wait_for(on_stable, timeout=30, interval=0.2)
        rolled_back = time.time()  # the sleep sidecar holds the all-stable route from here on
        wait_for(lambda: client.count(rolled_back) >= 200, timeout=60, interval=0.2)

    st = rollout_status(d, "ratings")
    assert st["stableRS"] == v1 and st["abort"] is True
    assert st["canary"]["weights"]["canary"]["weight"] == 0
    run = f"ratings-{v2}-2-1"
    assert get(d, "analysisrun", run)["status"]["phase"] == "Failed"
    ms = measurements(d, run)
    assert [m["phase"] for m in ms[:-1]] == ["Inconclusive"] * (len(ms) - 1) and ms[-1]["phase"] == "Failed", ms
    failing = ms[-1]
    assert st["message"].startswith("RolloutAborted: Rollout aborted update to revision 2: Step-based analysis "
                                    "phase error/failed: "), st["message"]

    # aborted within one analysis interval of the failing measurement (both stamped by the controller)
    measured, aborted = parse_time(failing["finishedAt"]), parse_time(st["abortedAt"])
    assert measured is not None and aborted is not None and aborted - measured <= INTERVAL_S, (failing, st)

    # the client's errors: the ones the analysis counted, plus those sent before the rollback reached the
    # sleep sidecar; none once it had
    failed = client.failed()
    assert failed and all(a.code == 503 for a in failed), failed[:5]
    assert client.failed(rolled_back) == [], client.failed(rolled_back)[:5]
    counted = int(json.loads(failing["value"])["errorRate"]["canary"]["errors"])
    # Errors old enough for the store to hold at the measurement were counted by it, except those in the first
    # sample of the canary's 503 series: `increase` never counts a counter's first sample (one scrape, 1 s).
    before = [a for a in failed if a.at < measured - 2]
    first_sample = [a for a in failed if a.at < failed[0].at + 2]
    assert len(before) <= counted + len(first_sample), (len(before), counted, len(first_sample), failing["value"])
    print(f"client: {client.count()} requests, {len(failed)} failed; the failing measurement counted {counted} "
          f"canary errors; {len(client.failed(measured))} failed after it, before the rollback reached the sidecar")


def test_the_first_successful_look_ends_a_metric_with_consecutive_success_limit_1() -> None:
    """Argo's assessMetricStatus: with consecutiveSuccessLimit set, the metric is Successful once that many
    consecutive measurements were; here the first of 20."""
    run = {"spec": {"metrics": [{
        "name": "up", "interval": "1m", "count": 20, "failureLimit": 0, "consecutiveSuccessLimit": 1,
        "inconclusiveLimit": 20, "successCondition": "result[0] == 1",
        "provider": {"prometheus": {"address": "http://prometheus.invalid", "query": "vector(1)"}}}]}}

    def query_for(address: str) -> Any:
        return lambda expr: [{"metric": {}, "value": [0, "1"]}]

    status = step(run, time.time(), query_for).status
    [result] = status["metricResults"]
    assert [m["phase"] for m in result["measurements"]] == ["Successful"], result
    assert result["phase"] == "Successful" and status["phase"] == "Successful", status
