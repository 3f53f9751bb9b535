"""Push stalls: how the API answers while a large config push, a culprit search or a large YAML body is handled,
before (translation and decoding on the daemon's event loop) and after (off the loop).

A real daemon (loopback mode) runs the sleep sample and Bookinfo's details and ratings (three sidecars with
real Envoys). A probe fetches `GET /api/v1/namespaces/default` every 100 ms over one kept-alive connection,
while, one after the other:

* a ~1.85 MB valid VirtualService for `details` (5,300 HTTP routes with URI and header matches) is created as
  JSON, until every proxy holds (ACKed) a new route version;
* with 300 small VirtualServices stored, one whose route timeout cannot be translated is created, until it is
  listed in `/debug/rejectedz` and every proxy is synced again (the culprit search translates each object);
* a 3 MiB YAML VirtualService is posted with `dryRun=All` (decoding and validation only);
* through the console (its JSON API, with the kubeconfig's bearer token), a ~1.5 MB VirtualService is created as
  JSON, its detail (the editor's YAML) is read, and it is replaced with that YAML edited, as the editor sends it.

Usage: `python bench/push_stall_bench.py [--cases push,console] [--before-only] [BEFORE_SRC]`: BEFORE_SRC is the
`src/` of a checkout from before this work (`git worktree add /tmp/before <commit>`); without it only the "after"
rows run (`--before-only`: only the "before" rows). `push` is the first three cases, with the sidecars; with only
`console` no pod runs (nothing but the console's own work). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
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

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.run import exit_on_sigterm  # noqa: E402
from tests.conftest import TOOLS, Daemon, start_daemon, stop_daemon  # noqa: E402

SAMPLES = ROOT / "src" / "sluice" / "samples"
PROBE_EVERY_S = 0.1
PROBE_TIMEOUT_S = 10.0
CASE_TIMEOUT_S = 90.0
VS_PATH = "/apis/networking.istio.io/v1/namespaces/default/virtualservices"
CONSOLE_VS = "/api/namespaces/default/istio/virtualservices"
CASES = ("push", "console")


def big_virtual_service(name: str, host: str, routes: int) -> dict[str, Any]:
    http = [{"name": f"r{i}",
             "match": [{"uri": {"prefix": f"/api/v1/products/{i}/reviews"}, "headers": {"end-user": {"exact": f"u{i}"}}}],
             "route": [{"destination": {"host": host, "port": {"number": 9080}}, "weight": 80},
                       {"destination": {"host": host, "port": {"number": 9080}}, "weight": 20}],
             "timeout": "3s", "retries": {"attempts": 2, "perTryTimeout": "1s"}} for i in range(routes)]
    http.append({"route": [{"destination": {"host": host}}]})
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": name, "namespace": "default"}, "spec": {"hosts": [host], "http": http}}


def small_virtual_service(name: str, host: str, timeout: str = "5s") -> dict[str, Any]:
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"hosts": [host], "http": [{"route": [{"destination": {"host": "details"}}], "timeout": timeout}]}}


class Api:
    """Requests to the daemon's API over one kept-alive TLS connection per thread."""

    def __init__(self, d: Daemon) -> None:
        self.port = d.api_port
        self.headers = {"Authorization": f"Bearer {d.token}"}
        self.ctx = ssl.create_default_context()
        self.ctx.check_hostname = False
        self.ctx.verify_mode = ssl.CERT_NONE
        self.local = threading.local()

    def request(self, method: str, path: str, body: bytes | None = None, ctype: str = "application/json",
                timeout: float = 120) -> tuple[int, bytes]:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout,
                                                                 context=self.ctx)
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        try:
            conn.request(method, path, body=body, headers={**self.headers, "Content-Type": ctype})
            resp = conn.getresponse()
            return resp.status, resp.read()
        except Exception:
            conn.close()
            self.local.conn = None
            raise

    def json(self, path: str) -> Any:
        status, body = self.request("GET", path)
        assert status == 200, (status, body[:300])
        return json.loads(body)


def console_request(d: Daemon, method: str, path: str, body: bytes | None = None,
                    ctype: str = "application/json") -> tuple[int, bytes]:
    """A console request as a script sends it (the kubeconfig's bearer token), on a fresh connection."""
    port = json.loads((d.home / "daemon.json").read_text())["console_port"]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        conn.request(method, path, body=body, headers={"Authorization": f"Bearer {d.token}", "Content-Type": ctype})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


def watch(api: Api, action: Callable[[], str], done: Callable[[], bool]) -> tuple[str, list[float], int, float]:
    """Probe while `action()` runs and until `done()`; returns (action's outcome, probe latencies in ms,
    probes that failed, seconds until done)."""
    outcome: dict[str, Any] = {}
    stop = threading.Event()

    def run() -> None:
        t0 = time.monotonic()
        try:
            outcome["text"] = action()
        except Exception as e:  # noqa: BLE001
            outcome["text"] = f"failed: {e!r}"
        deadline = t0 + CASE_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                if done():
                    break
            except Exception:  # noqa: BLE001 - the status endpoint may time out while the daemon is stalled
                pass
            time.sleep(0.2)
        outcome["seconds"] = time.monotonic() - t0
        time.sleep(0.5)  # and a little after
        stop.set()

    lat: list[float] = []
    lost = 0
    probe = Api.__new__(Api)
    probe.__dict__.update(api.__dict__)
    probe.local = threading.local()
    for _ in range(5):  # warm the connection
        probe.request("GET", "/api/v1/namespaces/default", timeout=PROBE_TIMEOUT_S)
    th = threading.Thread(target=run, daemon=True)
    time.sleep(0.5)
    th.start()
    while not stop.is_set():
        t0 = time.monotonic()
        try:
            status, _ = probe.request("GET", "/api/v1/namespaces/default", timeout=PROBE_TIMEOUT_S)
            if status == 200:
                lat.append((time.monotonic() - t0) * 1000)
            else:
                lost += 1
        except OSError:
            lost += 1
        time.sleep(max(0.0, PROBE_EVERY_S - (time.monotonic() - t0)))
    th.join()
    return str(outcome.get("text")), lat, lost, float(outcome.get("seconds", 0.0))


def kubectl(d: Daemon, *args: str, input: str | None = None) -> str:
    cp = subprocess.run([str(TOOLS / "kubectl-1.35"), *args], input=input, env=d.env, capture_output=True, text=True,
                        timeout=120)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    return cp.stdout


def mesh_docs() -> str:
    docs = [doc for doc in yaml.safe_load_all((SAMPLES / "bookinfo.yaml").read_text()) if doc]
    keep = [doc for doc in docs if (doc["metadata"].get("labels") or {}).get("app") in ("details", "ratings")
            or doc["metadata"]["name"] in ("details", "ratings", "bookinfo-details", "bookinfo-ratings")]
    return yaml.safe_dump_all(keep)


def rds_versions(api: Api) -> dict[str, str]:
    return {row["proxy"]: (row["types"].get("RDS") or {}).get("acked") or "" for row in api.json("/debug/syncz")}


def all_synced(api: Api, proxies: int) -> bool:
    rows = api.json("/debug/syncz")
    return len(rows) == proxies and all(v["state"] == "SYNCED" for r in rows for v in r["types"].values())


def console_cases(d: Daemon, api: Api, record: Callable[[str, tuple[str, list[float], int, float]], None]) -> None:
    """Create, read and replace a ~1.5 MB VirtualService through the console."""
    body = json.dumps(big_virtual_service("details-console", "details", 4150)).encode()
    seen: dict[str, bytes] = {}

    def create() -> str:
        t0 = time.monotonic()
        status, answer = console_request(d, "POST", CONSOLE_VS, body)
        assert status == 201, answer[:300]
        return f"{status} after {time.monotonic() - t0:.1f} s"

    def read() -> str:
        t0 = time.monotonic()
        status, answer = console_request(d, "GET", f"{CONSOLE_VS}/details-console")
        assert status == 200, answer[:300]
        seen["yaml"] = json.loads(answer)["yaml"].encode()
        return f"{status} after {time.monotonic() - t0:.1f} s"

    def replace() -> str:
        edited = seen["yaml"].replace(b"prefix: /api/v1/products/7/reviews\n", b"prefix: /api/v1/products/7/ratings\n")
        assert edited != seen["yaml"]
        t0 = time.monotonic()
        status, answer = console_request(d, "PUT", f"{CONSOLE_VS}/details-console", edited, "application/yaml")
        assert status == 200, answer[:300]
        return f"{status} after {time.monotonic() - t0:.1f} s"

    record(f"console: create a {len(body) / 1e6:.2f} MB VirtualService (JSON)", watch(api, create, lambda: True))
    record("console: read its detail (the editor's YAML)", watch(api, read, lambda: True))
    record(f"console: replace it with that YAML ({len(seen.get('yaml', b'')) / 1e6:.2f} MB), edited",
           watch(api, replace, lambda: True))
    api.request("DELETE", f"{VS_PATH}/details-console")


def run_cases(name: str, src: Path, cases: tuple[str, ...] = CASES) -> list[str]:
    os.environ["PYTHONPATH"] = str(src)
    rows: list[str] = []
    with tempfile.TemporaryDirectory(prefix="push-stall-") as tmp:
        # BENCH_KEEP=<dir>: keep the daemon's home (and its log) there to look into
        home = Path(os.environ["BENCH_KEEP"]) / name if os.environ.get("BENCH_KEEP") else Path(tmp) / "home"
        d = start_daemon(home)
        try:
            api = Api(d)
            if "push" in cases:
                kubectl(d, "apply", "-f", str(SAMPLES / "sleep.yaml"))
                kubectl(d, "apply", "-f", "-", input=mesh_docs())
                deadline = time.monotonic() + 90
                while not (all_synced(api, 3)):
                    assert time.monotonic() < deadline, api.json("/debug/syncz")
                    time.sleep(0.5)

            def record(label: str, result: tuple[str, list[float], int, float]) -> None:
                text, lat, lost, secs = result
                lat = lat + [PROBE_TIMEOUT_S * 1000] * lost  # an unanswered probe counts as the client's timeout
                p99 = f"{_pct(lat, 0.99):.0f}" if lat else "–"
                rows.append(f"| {label} | {name} | {text} | {secs:.1f} | {len(lat) - lost} / {len(lat)} | "
                            f"{statistics.median(lat):.0f} | {p99} | {max(lat):.0f} |")
                print(rows[-1], file=sys.stderr, flush=True)

            if "console" in cases:
                console_cases(d, api, record)
            if "push" not in cases:
                return rows

            # (a) a large valid VirtualService, until every proxy holds a new route version
            big = json.dumps(big_virtual_service("details-big", "details", 5300)).encode()
            before = rds_versions(api)

            def create_big() -> str:
                t0 = time.monotonic()
                status, _ = api.request("POST", VS_PATH, big)
                return f"{status} after {time.monotonic() - t0:.1f} s"

            def pushed() -> bool:
                now = rds_versions(api)
                return len(now) == 3 and all(now[p] != before.get(p) for p in now) and all_synced(api, 3)

            record(f"create a {len(big) / 1e6:.2f} MB VirtualService (JSON), until pushed", watch(api, create_big, pushed))
            api.request("DELETE", f"{VS_PATH}/details-big")

            # (b) one object that fails translation among 300
            for i in range(300):
                body = json.dumps(small_virtual_service(f"vs-{i}", f"h{i}.example.com")).encode()
                status, text = api.request("POST", VS_PATH, body)
                assert status == 201, text
            deadline = time.monotonic() + 90
            time.sleep(1.5)
            while not all_synced(api, 3):
                assert time.monotonic() < deadline
                time.sleep(0.5)

            def create_broken() -> str:
                t0 = time.monotonic()
                status, _ = api.request("POST", VS_PATH, json.dumps(
                    small_virtual_service("ratings-broken", "ratings", "400000000000s")).encode())
                return f"{status} after {time.monotonic() - t0:.1f} s"

            def rejected() -> bool:
                return bool(api.json("/debug/rejectedz")) and all_synced(api, 3)

            record("create a VirtualService that fails translation, among 300, until rejected",
                   watch(api, create_broken, rejected))

            # (c) a 3 MiB YAML body, decoded and validated only
            doc = big_virtual_service("details-yaml", "details", 7400)
            body = yaml.dump(doc, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper)).encode()
            assert len(body) < 3 * 1024 * 1024, len(body)

            def post_yaml() -> str:
                t0 = time.monotonic()
                status, _ = api.request("POST", VS_PATH + "?dryRun=All", body, "application/yaml")
                return f"{status} after {time.monotonic() - t0:.1f} s"

            record(f"POST a {len(body) / 2**20:.2f} MiB YAML VirtualService (dryRun)",
                   watch(api, post_yaml, lambda: True))
        finally:
            stop_daemon(d)
    return rows


def main() -> None:
    exit_on_sigterm()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("before_src", nargs="?", help="the src/ of a checkout from before this work")
    p.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}")
    p.add_argument("--before-only", action="store_true", help="only the rows of BEFORE_SRC")
    a = p.parse_args()
    cases = tuple(c for c in a.cases.split(",") if c)
    if not cases or set(cases) - set(CASES):
        p.error(f"--cases: want some of {', '.join(CASES)}")
    versions = [] if a.before_only else [("after", ROOT / "src")]
    if a.before_src:
        versions.insert(0, ("before", Path(a.before_src).resolve()))
    elif a.before_only:
        p.error("--before-only needs BEFORE_SRC")
    rows: list[str] = []
    for name, src in versions:
        rows += run_cases(name, src, cases)
    load = os.getloadavg()[0]
    print("## Push stalls (`bench/push_stall_bench.py`)\n")
    print("A real daemon (loopback mode) runs the sleep sample and Bookinfo's details and ratings (three Envoy "
          "sidecars). A probe fetches `GET /api/v1/namespaces/default` every 100 ms over one kept-alive TLS "
          "connection (an unanswered probe counts as its 10 s client timeout) while, one after the other: a 1.93 MB "
          "VirtualService (5,300 HTTP routes) is created as JSON until every sidecar has ACKed it; with 300 small "
          "VirtualServices stored, one that cannot be translated is created until it is rejected and every "
          "sidecar is synced; a 2.90 MiB YAML VirtualService is posted with `dryRun=All` (decoded and admitted in "
          "a worker process); through the console, a 1.51 MB VirtualService is created as JSON, its detail (with "
          "the editor's YAML) is read, and it is replaced with that YAML, edited (the console cases alone run no "
          f"pods). Cases run: {', '.join(cases)}. Load average at the end: {load:.1f}.\n")
    print("| while | daemon | the request's answer | s until done | probes answered | probe p50 ms | "
          "probe p99 ms | probe max ms |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    print("\n".join(sorted(rows, key=lambda r: r.split("|")[1])))


if __name__ == "__main__":
    main()
