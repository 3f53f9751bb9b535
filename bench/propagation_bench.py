"""Config propagation: an API write of a VirtualService until every affected sidecar has ACKed the new routes.

A real daemon (loopback mode) runs N sidecar pods, each a real Envoy from the bootstrap Sluice generates,
programmed over xDS: in namespace `bench`, a `server` Deployment (1 pod) with a Service every namespace sees and
a `client` Deployment of N-2 pods; in namespace `solo`, a `solo` Deployment (1 pod) with a Service only its own
namespace sees (`networking.istio.io/exportTo: "."`). The apps are `sleep infinity` (the proxies are what is
measured). Two kinds of write, each repeated W times at every size:

* **every proxy**: the route timeout of the VirtualService for `server` (every sidecar routes to it);
* **one service's callers**: the route timeout of the VirtualService for `solo` (only `solo`'s sidecar sees it).

A sample is the time from sending the PATCH to the moment the daemon says every affected sidecar has ACKed the
config it holds for it, over one kept-alive HTTPS connection: one `/debug/syncz?until=synced` request per write
(with `?proxy=` for the one service's callers), answered when no change waits to be pushed and those sidecars are
synced; then, untimed, every one of them must show a new ACKed RDS version (else it waits on as below). With
`--watch after`, the first measurements' method: `?after=<generation>` answers each time the daemon's xDS status
changed (a push, an ACK) and the bench checks the rows of the sidecars not yet seen done itself — a request and an
answer per change seen, which at 100 sidecars costs the daemon it measures several milliseconds per write. For the
second kind it also checks that no other sidecar's RDS version moved.

After Sluice's daemon has stopped, the same sizes run on the floor (`bench/ads_floor.py`): as many Envoys with the
same command line on a minimal ADS server that does nothing but send a new 641-byte route table and count ACKs,
the least any Python control plane can take on this machine; the second table sets Sluice's figures beside it
(`--no-floor` skips it).

Usage: `python bench/propagation_bench.py [--sidecars 10,50,100,200] [--writes 30] [--watch until|after]
[--no-floor]`. Prints Markdown tables. Against an older checkout (`PYTHONPATH=<its src>`) it falls back to
`?after=`, or to polling every 2 ms where `/debug/syncz` has no long poll.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import platform
import shutil
import ssl
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.ads_floor import run_floor  # noqa: E402
from bench.run import exit_on_sigterm, task_cpu_ns  # noqa: E402
from tests.conftest import Daemon, start_daemon, stop_daemon  # noqa: E402

NS, SOLO = "bench", "solo"
WRITES: list[float] = []  # how long each PATCH itself took, ms
WATCHED = {"until": "the daemon asked once per write to answer when they are: `/debug/syncz?until=synced`",
           "after": "watched with `/debug/syncz?after=`, a long poll per status change"}
UNCHANGED: list[int] = []  # writes after which `until=synced` answered before every target held new routes


class Api:
    """One kept-alive HTTPS connection to the daemon's API."""

    def __init__(self, d: Daemon) -> None:
        ctx = ssl.create_default_context(cafile=str(d.home / "pki" / "ca.crt"))
        self._conn = http.client.HTTPSConnection("127.0.0.1", d.api_port, context=ctx, timeout=30)
        self._auth = f"Bearer {d.token}"

    def call(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> Any:
        return self.call_with_headers(method, path, body, content_type)[0]

    def call_with_headers(self, method: str, path: str, body: Any = None, content_type: str = "application/json"
                          ) -> tuple[Any, http.client.HTTPMessage]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": self._auth}
        if data is not None:
            headers["Content-Type"] = content_type
        self._conn.request(method, path, body=data, headers=headers)
        r = self._conn.getresponse()
        text = r.read()
        if r.status >= 300:
            raise RuntimeError(f"{method} {path}: {r.status} {text[:300]!r}")
        return (json.loads(text) if text else None), r.headers

    def close(self) -> None:
        self._conn.close()


def deployment(name: str, replicas: int) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"terminationGracePeriodSeconds": 1, "containers": [
                                      {"name": name, "image": "local", "command": ["sleep", "infinity"],
                                       "ports": [{"containerPort": 8000}]}]}}}}


def service(name: str, private: bool) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if private:
        meta["annotations"] = {"networking.istio.io/exportTo": "."}
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta,
            "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 8000}]}}


def virtual_service(host: str, timeout: int) -> dict[str, Any]:
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": host},
            "spec": {"hosts": [host], "http": [{"route": [{"destination": {"host": host}}], "timeout": f"{timeout}s"}]}}


def ready_pods(api: Api, ns: str) -> int:
    pods = api.call("GET", f"/api/v1/namespaces/{ns}/pods")["items"]
    return sum(1 for p in pods if any(c.get("type") == "Ready" and c.get("status") == "True"
                                      for c in (p.get("status") or {}).get("conditions") or []))


def wait(cond: Any, timeout: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(interval)


def syncz(api: Api, proxies: set[str] | None = None) -> list[dict[str, Any]]:
    return watch_syncz(api, proxies, None)[0]


def watch_syncz(api: Api, proxies: set[str] | None, after: int | None
                ) -> tuple[list[dict[str, Any]], int | None]:
    """The sync state (of `proxies` only, if given); with `after`, once the daemon's status has changed since
    that generation (a long poll, so watching costs the daemon nothing while it pushes); and the generation
    (None from a daemon without long polls, e.g. an older checkout: then the caller polls)."""
    query = []
    if proxies is not None:
        query.append("proxy=" + ",".join(sorted(proxies)))
    if after is not None:
        query.append(f"after={after}")
    rows, headers = api.call_with_headers("GET", "/debug/syncz" + ("?" + "&".join(query) if query else ""))
    generation = headers.get("X-Sluice-Status-Generation")
    return list(rows), int(generation) if generation is not None else None


def synced(rows: list[dict[str, Any]]) -> bool:
    return all(t.get("state") == "SYNCED" for r in rows for t in r["types"].values())


def rds(rows: list[dict[str, Any]]) -> dict[str, str]:
    return {r["proxy"]: str(r["types"].get("RDS", {}).get("acked")) for r in rows}



class CpuMeter:
    """CPU spent by the daemon and by the sidecars' Envoys while writes propagate, idle work subtracted.

    Each write is metered from just before its PATCH to the daemon's answer, the Envoys' readiness probes and
    stats timers (measured beforehand over an idle window) taken out; what the bench's own status reads cost
    between writes is left out. Their sum over the number of cores is the shortest a push to all of them can
    take, however perfectly the work overlapped."""

    def __init__(self, daemon_pid: int, home: Path) -> None:
        self.daemon = daemon_pid
        self.envoys = [pid for pid in _pids_named("envoy") if str(home) in _cmdline(pid)]
        self.daemon_ns = self.envoy_ns = 0
        self.wall = 0.0
        t0, d0, e0 = time.perf_counter(), *self._now()
        time.sleep(2.0)
        t1, d1, e1 = time.perf_counter(), *self._now()
        self.idle = ((d1 - d0) / (t1 - t0), (e1 - e0) / (t1 - t0))  # ns per second

    def _now(self) -> tuple[int, int]:
        return task_cpu_ns(self.daemon), sum(task_cpu_ns(p) for p in self.envoys)

    def start(self) -> None:
        self._t, (self._d, self._e) = time.perf_counter(), self._now()

    def stop(self) -> None:
        wall = time.perf_counter() - self._t
        d, e = self._now()
        self.wall += wall
        self.daemon_ns += d - self._d
        self.envoy_ns += e - self._e

    def per_write(self, writes: int) -> tuple[float, float]:
        """(daemon ms, all Envoys ms) per write, idle work subtracted."""
        return (max(0.0, self.daemon_ns - self.idle[0] * self.wall) / writes / 1e6,
                max(0.0, self.envoy_ns - self.idle[1] * self.wall) / writes / 1e6)


def _pids_named(name: str) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as f:
                    if f.read().strip() == name:
                        out.append(int(entry))
            except OSError:
                pass
    return out


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def percentile(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, max(0, round(q * len(s) + 0.5) - 1))]  # nearest rank


def measure(api: Api, poll: Api, host: str, ns: str, affected: set[str] | None, writes: int, start: int,
            watch: str = "until", meter: CpuMeter | None = None) -> tuple[list[float], int]:
    """Samples in ms, and how many sidecars outside `affected` saw their RDS version move (should be 0).

    `watch`: "until" asks the daemon once per write to answer when the proxies are synced
    (`/debug/syncz?until=synced`); "after" watches every status change (`?after=`) and checks the state itself,
    a request and an answer per change seen (the method of the first measurements; it costs the daemon more).

    Between writes only the targets' status is read (`?proxy=`): a status dump of every proxy before each write
    (what this bench did until 2026-12-04) costs the daemon a few milliseconds of CPU and garbage right before
    the write it precedes, and moved the one-service writes' p50 by 1–2 ms. The sidecars outside `affected`
    are read once before the first write and once after the last: any whose RDS version moved is a stray."""
    samples: list[float] = []
    path = f"/apis/networking.istio.io/v1/namespaces/{ns}/virtualservices/{host}"
    at_start = rds(syncz(poll))
    targets = set(at_start) if affected is None else affected
    for i in range(writes):
        metering = meter  # this write's, until the daemon says it is synced
        rows, generation = watch_syncz(poll, targets, None)
        before = rds(rows)
        if metering is not None:
            metering.start()
        t0 = time.perf_counter()
        api.call("PATCH", path, {"spec": virtual_service(host, start + i)["spec"]},
                 content_type="application/merge-patch+json")
        WRITES.append((time.perf_counter() - t0) * 1000)
        waiting = set(targets)  # only the proxies not yet seen done are asked about: answers stay small
        if watch == "until":
            query = "until=synced" + ("" if affected is None else "&proxy=" + ",".join(sorted(affected)))
            _, headers = poll.call_with_headers("GET", f"/debug/syncz?{query}")
            if headers.get("X-Sluice-Synced") == "true":
                done = time.perf_counter()
                if metering is not None:  # the check below is the bench's, not the push's
                    metering.stop()
                    metering = None
                # not timed: every target must hold a new route version (else the wait below finds when it does)
                rows = syncz(poll, waiting)
                waiting -= {r["proxy"] for r in rows if str(r["types"].get("RDS", {}).get("acked")) != before.get(r["proxy"])}
                if waiting:
                    UNCHANGED.append(len(waiting))
                    generation = None
        while waiting:
            polling = generation is None
            rows, generation = watch_syncz(poll, waiting, generation)
            waiting -= {r["proxy"] for r in rows if all(t.get("state") == "SYNCED" for t in r["types"].values())
                        and str(r["types"].get("RDS", {}).get("acked")) != before.get(r["proxy"])}
            if polling and waiting:
                time.sleep(0.002)
            done = time.perf_counter()
        if metering is not None:
            metering.stop()
        samples.append((done - t0) * 1000)
    at_end = rds(syncz(poll))
    return samples, sum(1 for p, v in at_end.items() if p not in targets and at_start.get(p) not in (None, v))


def machine() -> str:
    model = ""
    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{platform.node()}, {os.cpu_count()} cores ({model or platform.machine()}), {platform.system()} " \
           f"{platform.release()}, Python {platform.python_version()}"


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sidecars", default="10,50,100,200", help="comma-separated sidecar counts")
    parser.add_argument("--writes", type=int, default=30, help="writes per kind and size (≥ 30 for a p99)")
    parser.add_argument("--watch", choices=("until", "after"), default="until",
                        help="until: one `/debug/syncz?until=synced` per write (the default); after: a long poll "
                             "per status change, the state checked here (the first measurements' method)")
    parser.add_argument("--no-floor", dest="floor", action="store_false",
                        help="skip the minimal ADS server's run at the same sizes")
    args = parser.parse_args()
    sizes = [int(n) for n in args.sidecars.split(",") if n.strip()]
    if any(n < 3 for n in sizes):
        parser.error("every size needs at least 3 sidecars (server, solo, a client)")

    load_before = "/".join(f"{x:.2f}" for x in os.getloadavg())
    home = Path(tempfile.mkdtemp(prefix="sluice-prop-bench-"))
    d = start_daemon(home / "home")
    api, poll = Api(d), Api(d)
    rows: list[str] = []
    ours: dict[int, tuple[float, float, float, float]] = {}  # size: every-proxy p50, p99, daemon and Envoys' CPU
    try:
        for ns in (NS, SOLO):
            api.call("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        api.call("POST", f"/api/v1/namespaces/{NS}/services", service("server", private=False))
        api.call("POST", f"/api/v1/namespaces/{SOLO}/services", service("solo", private=True))
        api.call("POST", f"/apis/apps/v1/namespaces/{NS}/deployments", deployment("server", 1))
        api.call("POST", f"/apis/apps/v1/namespaces/{NS}/deployments", deployment("client", 1))
        api.call("POST", f"/apis/apps/v1/namespaces/{SOLO}/deployments", deployment("solo", 1))
        api.call("POST", f"/apis/networking.istio.io/v1/namespaces/{NS}/virtualservices", virtual_service("server", 1))
        api.call("POST", f"/apis/networking.istio.io/v1/namespaces/{SOLO}/virtualservices", virtual_service("solo", 1))
        for n in sizes:
            api.call("PATCH", f"/apis/apps/v1/namespaces/{NS}/deployments/client", {"spec": {"replicas": n - 2}},
                     content_type="application/merge-patch+json")
            wait(lambda n=n: ready_pods(api, NS) + ready_pods(api, SOLO) == n, 60 + 3 * n, f"{n} pods ready", 0.5)
            wait(lambda n=n: len(r := syncz(poll)) == n and synced(r), 60 + n, f"{n} sidecars synced")
            solo = {r["proxy"] for r in syncz(poll) if r["namespace"] == SOLO}
            assert d.proc is not None
            meter = CpuMeter(d.proc.pid, home)
            every, strays_a = measure(api, poll, "server", NS, None, args.writes, 100, args.watch, meter)
            daemon_ms, envoys_ms = meter.per_write(args.writes)
            one, strays = measure(api, poll, "solo", SOLO, solo, args.writes, 100, args.watch)
            ours[n] = (percentile(every, 0.5), percentile(every, 0.99), daemon_ms, envoys_ms)
            rows.append(f"| {n} | {percentile(every, 0.5):.1f} | {percentile(every, 0.99):.1f} | "
                        f"{percentile(one, 0.5):.1f} | {percentile(one, 0.99):.1f} | {len(solo)} | {strays} | "
                        f"{daemon_ms:.1f} | {envoys_ms:.1f} ({envoys_ms * 1000 / max(1, len(meter.envoys)):.0f} µs "
                        f"each) | {(daemon_ms + envoys_ms) / (os.cpu_count() or 1):.1f} |")
            print(f"# {n} sidecars done; the PATCH alone p50 {percentile(WRITES, 0.5):.1f} ms, "
                  f"p99 {percentile(WRITES, 0.99):.1f} ms", file=sys.stderr, flush=True)
            WRITES.clear()
    finally:
        api.close()
        poll.close()
        stop_daemon(d)
        shutil.rmtree(home, ignore_errors=True)

    floor_rows: list[str] = []
    for n in sizes if args.floor else []:
        f = run_floor(n, args.writes)
        p50, p99 = percentile(f.samples, 0.5), percentile(f.samples, 0.99)
        s50, s99, sd, se = ours[n]
        floor_rows.append(f"| {n} | {p50:.1f} | {p99:.1f} | {f.server_ms:.1f} | {f.envoys_ms:.1f} "
                          f"({f.envoys_ms * 1000 / n:.0f} µs each) | {f.envoys_ms / (os.cpu_count() or 1):.1f} | "
                          f"{s50:.1f} / {s99:.1f} | {s50 / p50:.2f}× / {s99 / p99:.2f}× | {sd:.1f} / {se:.1f} |")
        print(f"# floor at {n} Envoys done (route table {f.table_bytes} bytes)", file=sys.stderr, flush=True)

    load_after = "/".join(f"{x:.2f}" for x in os.getloadavg())
    if UNCHANGED:
        print(f"# {len(UNCHANGED)} writes answered synced before every target held new routes", file=sys.stderr)
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print("## Config propagation (`bench/propagation_bench.py`)\n")
    print(f"{now}; {machine()}; daemon in loopback mode, every sidecar a real Envoy. A VirtualService route "
          f"timeout PATCHed through the API until every affected sidecar has ACKed the new routes "
          f"({WATCHED[args.watch]}, over one kept-alive connection); {args.writes} writes "
          f"per kind and size; load average {load_before} before, {load_after} after. *Every proxy*: the routes of a Service every namespace sees. *One service's "
          "callers*: the routes of a Service exported to its own namespace only (its one sidecar there); "
          "*others moved*: sidecars outside it whose RDS version changed between the first write and the end "
          "of the last (0 expected); between writes only the targets' status is read. *CPU per write*: for the "
          "every-proxy writes, from just before the PATCH to the daemon's answer, the daemon's threads and all "
          "Envoys' (`/proc/*/task/*/schedstat`), their idle rate measured over 2 s beforehand subtracted; *floor*: "
          f"their sum over the {os.cpu_count()} cores, the shortest such a push could take with perfect "
          "overlap.\n")
    print("| sidecars | every proxy p50 ms | every proxy p99 ms | one service's callers p50 ms | "
          "one service's callers p99 ms | callers | others moved | daemon CPU ms per write | Envoys' CPU ms per "
          "write | CPU floor ms |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))
    if floor_rows:
        print("\n*The floor* (`bench/ads_floor.py`, after the daemon stopped): as many Envoys, the same command "
              "line, on a minimal `grpc.aio` ADS server in the bench's process (no API, store, translation, TLS or "
              "identity; one serialised route table per write, every stream the same bytes with its own nonce), "
              "from building the new table to the last ACK; CPU the same way. *Envoys alone*: their CPU over the "
              "cores, the wall time their share takes even if the server cost nothing.\n")
        print("| Envoys | floor p50 ms | floor p99 ms | server CPU ms per write | Envoys' CPU ms per write | "
              "Envoys alone ms | Sluice every proxy p50 / p99 ms | Sluice / floor p50 / p99 | Sluice daemon / "
              "Envoys CPU ms |")
        print("|---:|---:|---:|---:|---:|---:|---|---|---|")
        print("\n".join(floor_rows))


if __name__ == "__main__":
    main()
