"""Chaos under steady load (issue 9, point 9): SIGKILL a sidecar's Envoy, then an app, and check what a
Kubernetes + Istio user expects.

The story's mesh (Bookinfo, reviews split 90:10 between v2 and v3) runs in netns mode when namespaces can be
made, loopback mode otherwise. A client plays sleep's app and asks for `http://reviews:9080/reviews/0` about
every 10 ms; another thread reads the API every 100 ms. Then, one after the other:

1. reviews-v2's Envoy (`istio-proxy`) is killed with SIGKILL,
2. reviews-v2's app (`reviews`) is killed with SIGKILL,

and each time the container is restarted (its restartCount goes up by one and `kubectl get pod` shows it) and
requests answered by v2 resume. Throughout, the API never fails to answer. Telemetry stays consistent:

- no sample of `istio_requests_total` ever decreases;
- `reporter="source"` (sleep's sidecar, never killed) ends at exactly the client's count for every response
  code: every answer the client got, 200s and the 503s of the restarts alike, is counted once;
- `reporter="destination"`, 200s: reviews-v3's sidecar (never killed) counts exactly the v3 answers the client
  got; reviews-v2's counts never exceed what the client got from v2, and may miss only requests its killed
  Envoy had served but not yet written out. That is fair to ask and no more: in Istio the destination
  counters *are* that Envoy's memory, so a SIGKILLed sidecar loses everything since Prometheus last scraped it
  (15 s by default). Here each request is counted from the Envoy's ALS stream or, failing that, from its
  access-log lines on disk, which Envoy flushes every 250 ms; so the loss is bounded by the v2 answers the
  client got in the last second before the kill (a margin of four flush periods).

Once the daemon stops, no Envoy or container shim of the mesh is left (the restarted ones included).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from kubernetes import client

from sluice.runtime import procs
from sluice.telemetry.catchup import GRACE_S
from tests.conftest import TOOLS, Daemon, stop_daemon, wait_for
from tests.e2e.mesh import Pod, api_client, pod, pod_ips, reviews_version, start_story_mesh, via
from tests.story import STORY_VS

NS = "tutorial"
URL = "http://reviews:9080/reviews/0"
SERIES = 'istio_requests_total{destination_service_name="reviews"}'
Q_SOURCE = ('sum by (response_code) (istio_requests_total{reporter="source", source_workload="sleep",'
            'destination_service_name="reviews"})')
Q_DEST = ('sum by (destination_workload) (istio_requests_total{reporter="destination", response_code="200",'
          'destination_service_name="reviews"})')
FLUSH_MARGIN_S = 1.0  # Envoy's access-log flush (250 ms) four times over


class Load:
    """sleep's app: one request after another through the mesh, each answer kept with its time."""

    def __init__(self, sleep: Pod) -> None:
        self.sleep = sleep
        self.answers: list[tuple[float, int, str]] = []  # (time, status, reviews version or "")
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + 300
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                code, body = via(self.sleep, URL, timeout=10)
                self.answers.append((time.time(), code, reviews_version(body) if code == 200 else ""))
            except OSError as e:
                self.errors.append(repr(e))
            time.sleep(0.01)

    def start(self) -> Load:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def answered_by(self, version: str, after: float = 0.0) -> int:
        return sum(1 for t, code, v in list(self.answers) if code == 200 and v == version and t > after)

    def codes(self) -> Counter[str]:
        return Counter(str(code) for _, code, _ in self.answers)


class ApiWatch:
    """`GET` on the API every 100 ms; every failure (an error or a non-200) is kept."""

    def __init__(self, d: Daemon) -> None:
        self.core = client.CoreV1Api(api_client(d))
        self.ok = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + 300
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                self.core.list_namespaced_pod(NS, _request_timeout=5)
                self.ok += 1
            except Exception as e:  # noqa: BLE001 - any failure is the finding
                self.failures.append(f"{time.time():.1f} {e!r}"[:300])
            time.sleep(0.1)

    def start(self) -> ApiWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


def _query(d: Daemon, path: str, **params: str) -> dict[str, Any]:
    run = json.loads((d.home / "daemon.json").read_text())
    url = f"http://127.0.0.1:{run['metrics_port']}/api/v1/{path}?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=10) as r:
        body = json.loads(r.read())
    assert body["status"] == "success", body
    return dict(body["data"])


def _by(d: Daemon, expr: str, label: str) -> dict[str, int]:
    return {s["metric"].get(label, ""): int(float(s["value"][1])) for s in _query(d, "query", query=expr)["result"]}


def _container(core: client.CoreV1Api, app: str, container: str) -> tuple[str, str, int]:
    """(pod name, uid, restartCount) of `container` in the pod labelled `app=…,version=v2`."""
    [p] = core.list_namespaced_pod(NS, label_selector=f"app={app},version=v2").items
    [status] = [c for c in p.status.container_statuses if c.name == container]
    return p.metadata.name, p.metadata.uid, int(status.restart_count)


def _program_pid(d: Daemon, uid: str, container: str) -> int:
    """The pid of a container's program (not its shim), from the runtime's record of the current run, checked
    against the process's start time there (the program may be forked from the fork server, whose command line
    it then shows)."""
    files = d.home / "runtime" / "pods" / uid / "containers" / container
    attempt = int(json.loads((files / "state.json").read_text())["attempt"])
    pid, started = (files / f"{attempt}.pid").read_text().split()[:2]
    assert procs.ProcRef(int(pid), started).alive(), f"{container}'s recorded program {pid} is not running"
    return int(pid)


def _kubectl_restarts(d: Daemon, name: str, cache: Path) -> str:
    """The RESTARTS column of `kubectl get pod NAME` (what a user looks at)."""
    cp = subprocess.run([str(TOOLS / "kubectl-1.35"), f"--cache-dir={cache}", "-n", NS, "get", "pod", name,
                         "--no-headers"], env=d.env, capture_output=True, text=True, timeout=30)
    assert cp.returncode == 0, cp.stderr
    return cp.stdout.split()[3]  # "1" of "1 (2s ago)"


def _kill_and_recover(d: Daemon, core: client.CoreV1Api, load: Load, container: str, cache: Path) -> float:
    """SIGKILL reviews-v2's `container`; wait for its restart and for v2 answers after it. The kill's time."""
    name, uid, before = _container(core, "reviews", container)
    pid = _program_pid(d, uid, container)
    if container == "istio-proxy":
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        assert b"envoy" in cmdline, cmdline
    killed_at = time.time()
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: _container(core, "reviews", container)[2] == before + 1, timeout=30, interval=0.1)
    # kubectl's RESTARTS column: the pod's containers' restarts together ("2 (3s ago)").
    total = sum(c.restart_count for c in core.read_namespaced_pod(name, NS).status.container_statuses)
    assert _kubectl_restarts(d, name, cache) == str(total)
    restarted = time.time()
    wait_for(lambda: load.answered_by("v2", after=restarted) >= 5, timeout=30, interval=0.1)
    return killed_at


def _never_decreased(d: Daemon, start: float) -> None:
    end = time.time()
    data = _query(d, "query_range", query=SERIES, start=f"{start:.3f}", end=f"{end:.3f}", step="1")
    assert data["result"]
    for series in data["result"]:
        values = [float(v) for _, v in series["values"]]
        drops = [(a, b) for a, b in zip(values, values[1:], strict=False) if b < a]
        assert not drops, (series["metric"], drops)


def test_killed_sidecar_and_app_restart_under_load(tmp_path: Path) -> None:
    from sluice.runtime.netns.node import netns_available

    # netns unless it cannot be had or the run asks for loopback mode (`SLUICE_TEST_NETWORK=loopback`)
    network = "netns" if netns_available()[0] and os.environ.get("SLUICE_TEST_NETWORK") != "loopback" else "loopback"
    d = start_story_mesh(tmp_path, config="scrape_interval: 1\n", extra=[STORY_VS], network=network)
    load: Load | None = None
    api: ApiWatch | None = None
    try:
        core = client.CoreV1Api(api_client(d))
        sleep = pod(d, pod_ips(core, NS, "app=sleep")[0], core)
        began = time.time()
        api = ApiWatch(d).start()
        load = Load(sleep).start()
        wait_for(lambda: load is not None and load.answered_by("v2") >= 50 and load.answered_by("v3") >= 3,
                 timeout=60, interval=0.1)

        envoy_killed = _kill_and_recover(d, core, load, "istio-proxy", tmp_path / "kc")
        _kill_and_recover(d, core, load, "reviews", tmp_path / "kc")
        load.stop()
        stopped = time.time()
        api.stop()

        # The API answered every 100 ms read throughout.
        assert api.failures == [] and api.ok > 0, api.failures[:5]
        # Every request got an HTTP answer (a restart shows as the sidecar's own 503, never a broken connection).
        assert load.errors == [], load.errors[:5]
        codes = load.codes()
        v2, v3 = load.answered_by("v2"), load.answered_by("v3")
        in_flush = sum(1 for t, code, v in load.answers
                       if code == 200 and v == "v2" and envoy_killed - FLUSH_MARGIN_S <= t <= envoy_killed)

        # sleep's sidecar counts every answer, per code, exactly; reviews-v3's every 200 it served.
        def settled() -> bool:
            return _by(d, Q_SOURCE, "response_code") == dict(codes) and \
                _by(d, Q_DEST, "destination_workload").get("reviews-v3") == v3 and time.time() > stopped + GRACE_S + 3

        wait_for(settled, timeout=60, interval=0.5)
        dest = _by(d, Q_DEST, "destination_workload")
        lost = v2 - dest.get("reviews-v2", 0)
        assert 0 <= lost <= in_flush, (dest, {"v2": v2, "v3": v3, "in the last flush window": in_flush})
        _never_decreased(d, began)
    finally:
        if load is not None:
            load.stop()
        if api is not None:
            api.stop()
        stop_daemon(d)
    # Nothing outlives the daemon's stop: no Envoy (the restarted one included) and no container shim.
    left = [e.name for e in Path("/proc").iterdir() if e.name.isdigit() and _runs_from(e, d.home)]
    assert left == []


def _runs_from(proc: Path, home: Path) -> bool:
    try:
        return str(home).encode() in (proc / "cmdline").read_bytes()
    except OSError:
        return False

