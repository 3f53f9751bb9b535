"""The rollouts controller (issue 13, point 9): how fast a failing analysis puts all traffic back on stable, and
what the controller costs in CPU per 100 Rollouts.

**Rollback.** A real daemon (loopback mode) with the `sleep` pod (a real Envoy sidecar) and a subset-level canary
Rollout of `bapp` (pods are `sleep infinity` without a sidecar: only the caller's routes matter) whose steps are
`setWeight: 50` then an analysis whose Prometheus query (`vector(1)`, the daemon's own Prometheus API) meets its
failureCondition at the first measurement. Each repetition applies a new template and records, on one clock:

* t0: the AnalysisRun watch delivers the run's status with the Failed measurement (the controller's own write);
* t1: the VirtualService watch delivers `primary` with the canary's weight 0;
* t2: the sleep sidecar's Envoy (its admin `config_dump`, polled every few ms) holds a route with no weight on
  the canary subset: it applied, so ACKed, the controller's rollback.

**CPU per 100 Rollouts.** A second daemon runs without its in-process controller; the controller runs as its own
process (`sluice rollouts controller`, the same code the daemon runs in a thread, `--resync 5`), so its CPU is
read alone from /proc/<pid>/stat (utime+stime) next to the daemon's (the API server answering it). Windows: a
steady 30 s with no Rollouts, creating 100 one-replica Rollouts (no traffic routing, steps `setWeight: 50`,
`pause: {}`; `sleep infinity` pods without sidecars) until all are Healthy, a steady 30 s with the 100, and a new
template for all 100 until all are Paused at their pause step.

Usage: `python bench/rollouts_bench.py [--repeat 5] [--rollouts 100]`. Prints a Markdown section.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.run import exit_on_sigterm  # noqa: E402
from tests.conftest import TOOLS, Daemon, start_daemon, stop_daemon  # noqa: E402
from tests.e2e.mesh import pod, route_weights  # noqa: E402
from tests.integration.netns.test_istio_samples import SLEEP  # noqa: E402
from tests.integration.rollouts.helpers import subset_setup  # noqa: E402

NS = "bench"
TICK = os.sysconf("SC_CLK_TCK")


def kubectl(d: Daemon, *args: str, input: str | None = None) -> str:
    cp = subprocess.run([str(TOOLS / "kubectl-1.35"), f"--cache-dir={d.home}/kc", "-n", NS, *args], env=d.env,
                        capture_output=True, text=True, input=input, timeout=120)
    if cp.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {cp.stderr}")
    return cp.stdout


def wait(pred: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(interval)
    raise RuntimeError(f"timed out waiting for {what}")


def cpu_s(pid: int) -> float:
    """utime + stime of process `pid` (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


class Watch(threading.Thread):
    """A watch of one resource list over HTTPS; every event's object with the time it arrived."""

    def __init__(self, d: Daemon, path: str) -> None:
        super().__init__(daemon=True)
        ctx = ssl.create_default_context(cafile=str(d.home / "pki" / "ca.crt"))
        self.conn = http.client.HTTPSConnection("127.0.0.1", d.api_port, context=ctx)
        self.conn.request("GET", f"{path}?watch=true&timeoutSeconds=900", headers={"Authorization": f"Bearer {d.token}"})
        self.response = self.conn.getresponse()
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.start()

    def run(self) -> None:
        try:
            while line := self.response.readline():
                self.events.append((time.perf_counter(), json.loads(line)["object"]))
        except (OSError, ValueError, http.client.HTTPException):
            return

    def first(self, after: float, pred: Callable[[dict[str, Any]], bool]) -> float | None:
        for t, obj in list(self.events):
            if t >= after and pred(obj):
                return t
        return None

    def close(self) -> None:
        # shut the socket down first: closing the response would wait for the reader's buffer lock
        if self.conn.sock is not None:
            try:
                self.conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.join(5)
        self.conn.close()


ROUTING = subset_setup("bapp")


def failing_template(metrics_port: int) -> str:
    return f"""
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {{name: fails}}
spec:
  metrics:
  - name: errors
    failureCondition: result[0] == 1
    provider:
      prometheus: {{address: "http://127.0.0.1:{metrics_port}", query: vector(1)}}
"""


def pods_template(app: str, rev: int) -> str:
    return f"""  template:
    metadata:
      labels: {{app: {app}}}
      annotations: {{sidecar.istio.io/inject: "false"}}
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: main
        image: busybox:1.36
        command: [sleep, infinity]
        env: [{{name: REV, value: "{rev}"}}]
"""


def bapp(rev: int) -> str:
    return f"""
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: bapp}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: bapp}}}}
{pods_template("bapp", rev)}  strategy:
    canary:
      abortScaleDownDelaySeconds: 0
      trafficRouting:
        istio:
          virtualService: {{name: bapp, routes: [primary]}}
          destinationRule: {{name: bapp, canarySubsetName: canary, stableSubsetName: stable}}
      steps:
      - setWeight: 50
      - analysis: {{templates: [{{templateName: fails}}]}}
"""


def rollout_phase(d: Daemon, name: str) -> str:
    doc = json.loads(kubectl(d, "get", "rollout", name, "-o", "json"))
    return str((doc.get("status") or {}).get("phase") or "")


def canary_weight(vs: dict[str, Any]) -> int | None:
    for http_route in (vs.get("spec") or {}).get("http") or []:
        if http_route.get("name") == "primary":
            return sum(int(r.get("weight", 0)) for r in http_route.get("route") or []
                       if (r.get("destination") or {}).get("subset") == "canary")
    return None


def rollback(tmp: Path, repeat: int) -> list[tuple[float, float]]:
    """(t1 − t0, t2 − t0) in ms for each repetition."""
    home = tmp / "rollback"
    home.mkdir()
    d = start_daemon(home, network="loopback")
    samples: list[tuple[float, float]] = []
    try:
        metrics_port = int(json.loads((d.home / "daemon.json").read_text())["metrics_port"])
        kubectl(d, "create", "namespace", NS)
        kubectl(d, "apply", "-f", "-", input="---\n".join([SLEEP, ROUTING, failing_template(metrics_port), bapp(1)]))
        kubectl(d, "wait", "--for=condition=Available", "deployment/sleep", "--timeout=120s")
        wait(lambda: rollout_phase(d, "bapp") == "Healthy", 120, "bapp Healthy")
        ip = kubectl(d, "get", "pods", "-l", "app=sleep", "-o", "jsonpath={.items[0].status.podIP}").strip()
        sleep = pod(d, ip, namespace=NS)
        wait(lambda: route_weights(sleep, "bapp.").get("stable") == 100, 60, "the sleep sidecar's bapp route")
        runs = Watch(d, f"/apis/argoproj.io/v1alpha1/namespaces/{NS}/analysisruns")
        vss = Watch(d, f"/apis/networking.istio.io/v1alpha3/namespaces/{NS}/virtualservices")
        try:
            for rev in range(2, repeat + 2):
                began = time.perf_counter()
                kubectl(d, "apply", "-f", "-", input=bapp(rev))
                saw_canary = False
                t0 = t2 = None
                deadline = time.monotonic() + 90
                while t2 is None and time.monotonic() < deadline:
                    held = route_weights(sleep, "bapp.")
                    now = time.perf_counter()
                    saw_canary = saw_canary or held.get("canary", 0) > 0
                    t0 = t0 or runs.first(began, lambda r: (r.get("status") or {}).get("phase") == "Failed")
                    if t0 is not None and saw_canary and held.get("canary", 0) == 0 and now > t0:
                        t2 = now
                    time.sleep(0.003)
                if t0 is None or t2 is None:
                    raise RuntimeError(f"repetition {rev}: no failing run or no rollback seen (canary seen: {saw_canary})")
                t1 = vss.first(t0, lambda vs: canary_weight(vs) == 0)
                if t1 is None:
                    raise RuntimeError(f"repetition {rev}: the VirtualService was not seen back on stable")
                samples.append(((t1 - t0) * 1000, (t2 - t0) * 1000))
                wait(lambda: rollout_phase(d, "bapp") == "Degraded", 60, "bapp Degraded")
        finally:
            runs.close()
            vss.close()
    finally:
        stop_daemon(d)
    return samples


def many(n: int, rev: int) -> str:
    docs = []
    for i in range(n):
        app = f"r{i:03d}"
        docs.append(f"""
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: {app}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {app}}}}}
{pods_template(app, rev)}  strategy:
    canary:
      steps:
      - setWeight: 50
      - pause: {{}}
""")
    return "---".join(docs)


def phases(d: Daemon) -> dict[str, int]:
    out: dict[str, int] = {}
    for ro in json.loads(kubectl(d, "get", "rollouts", "-o", "json"))["items"]:
        phase = str((ro.get("status") or {}).get("phase") or "")
        out[phase] = out.get(phase, 0) + 1
    return out


def versions(d: Daemon) -> dict[str, str]:
    """kind/name → resourceVersion of every Rollout and ReplicaSet."""
    items = json.loads(kubectl(d, "get", "rollouts,replicasets", "-o", "json"))["items"]
    return {f"{o['kind']}/{o['metadata']['name']}": str(o["metadata"]["resourceVersion"]) for o in items}


def cpu_per_rollouts(tmp: Path, n: int, window: float) -> list[tuple[str, float, float, float]]:
    """(what, wall s, controller CPU s, daemon CPU s) for each phase."""
    home = tmp / "cpu"
    home.mkdir()
    d = start_daemon(home, network="loopback", extra=["--no-rollouts-controller"])
    rows: list[tuple[str, float, float, float]] = []
    controller = None
    try:
        assert d.proc is not None
        metrics_port = int(json.loads((d.home / "daemon.json").read_text())["metrics_port"])
        log = open(d.home / "controller.log", "ab")  # noqa: SIM115 - handed to the child
        controller = subprocess.Popen([sys.executable, "-m", "sluice.cli", "rollouts", "controller", "--kubeconfig",
                                       str(d.kubeconfig), "--prometheus-url", f"http://127.0.0.1:{metrics_port}",
                                       "--resync", "5"], env=d.env, stdout=log, stderr=subprocess.STDOUT)
        kubectl(d, "create", "namespace", NS)
        time.sleep(5)  # the controller's start-up (imports, first connection) is not what is measured

        def measured(what: str, action: Callable[[], None]) -> None:
            assert controller is not None and d.proc is not None
            c0, d0, w0 = cpu_s(controller.pid), cpu_s(d.proc.pid), time.monotonic()
            action()
            rows.append((what, time.monotonic() - w0, cpu_s(controller.pid) - c0, cpu_s(d.proc.pid) - d0))

        measured(f"steady, no Rollouts ({window:.0f} s)", lambda: time.sleep(window))

        def create() -> None:
            kubectl(d, "apply", "-f", "-", input=many(n, 1))
            wait(lambda: phases(d).get("Healthy") == n, 300, f"{n} Rollouts Healthy", interval=2)

        measured(f"create {n} Rollouts until all Healthy", create)
        before = versions(d)
        measured(f"steady, {n} Healthy Rollouts ({window:.0f} s)", lambda: time.sleep(window))
        changed = sum(1 for k, v in versions(d).items() if before.get(k) != v)
        rows.append((f"(Rollout or ReplicaSet objects written during that steady window: {changed})", 0, 0, 0))

        def update() -> None:
            kubectl(d, "apply", "-f", "-", input=many(n, 2))
            wait(lambda: phases(d).get("Paused") == n, 300, f"{n} Rollouts Paused", interval=2)

        measured(f"new template for all {n}, until all Paused at `pause: {{}}`", update)
    finally:
        if controller is not None:
            controller.terminate()
            try:
                controller.wait(10)
            except subprocess.TimeoutExpired:
                controller.kill()
                controller.wait()
        stop_daemon(d)
    return rows


def main() -> int:
    exit_on_sigterm()
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--rollouts", type=int, default=100)
    ap.add_argument("--window", type=float, default=30.0)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="rollouts-bench-"))
    load_before = os.getloadavg()[0]
    try:
        samples = rollback(tmp, a.repeat)
        rows = cpu_per_rollouts(tmp, a.rollouts, a.window)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("## Rollouts controller (`bench/rollouts_bench.py`)\n")
    print(f"Load average before the run {load_before:.1f}, after {os.getloadavg()[0]:.1f} "
          "(the machine is shared: other work runs at the same time).\n")
    print(f"**From a failing analysis measurement to all traffic on stable** ({len(samples)} repetitions; one "
          "canary Rollout at `setWeight: 50`, a Prometheus analysis failing at its first measurement; t0 is the "
          "AnalysisRun watch delivering the Failed measurement):\n")
    print("| until | median | min | max |\n|---|---|---|---|")
    for label, idx in (("VirtualService written (its watch delivers the canary at weight 0)", 0),
                       ("the caller's sidecar holds the all-stable route (Envoy's config_dump)", 1)):
        xs = [s[idx] for s in samples]
        print(f"| {label} | {statistics.median(xs):.0f} ms | {min(xs):.0f} ms | {max(xs):.0f} ms |")
    print(f"\n**Controller CPU per {a.rollouts} Rollouts** (`sluice rollouts controller --resync 5` as its own "
          "process next to a daemon run with `--no-rollouts-controller`; CPU = utime+stime from /proc/<pid>/stat; "
          "the daemon column is the API server answering the controller, the pods' own processes are not in it):\n")
    print("| phase | wall | controller CPU | controller % of a core | daemon CPU |\n|---|---|---|---|---|")
    for what, wall, ctl, dmn in rows:
        if not wall:
            print(f"| {what} | | | | |")
            continue
        print(f"| {what} | {wall:.1f} s | {ctl:.2f} s | {100 * ctl / wall:.1f} % | {dmn:.2f} s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
