"""API server benchmarks: create/get/patch throughput and latency with the Python client and with kubectl,
watch fan-out latency to 100 watchers, and the daemon's RSS. Prints a Markdown section."""

from __future__ import annotations

import asyncio
import http.client
import json
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import exit_on_sigterm  # noqa: E402
from kubernetes import client, config  # noqa: E402
from tests.conftest import TOOLS, start_daemon, stop_daemon  # noqa: E402

N = 500
VS: dict[str, Any] = {
    "apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "x"},
    "spec": {"hosts": ["reviews"], "http": [{"route": [
        {"destination": {"host": "reviews", "subset": "v2"}, "weight": 90},
        {"destination": {"host": "reviews", "subset": "v3"}, "weight": 10}]}]},
}
G = ("networking.istio.io", "v1", "default", "virtualservices")


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def timed(fn: Any, n: int) -> tuple[float, list[float]]:
    lat = []
    t0 = time.perf_counter()
    for i in range(n):
        s = time.perf_counter()
        fn(i)
        lat.append((time.perf_counter() - s) * 1000)
    return n / (time.perf_counter() - t0), lat


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def raw_rows(url: str, token: str, ca: str) -> list[tuple[str, float, list[float]]]:
    """The same writes and reads as bare HTTPS requests on one kept-alive connection: the server's own share
    of the Python client's figures (that client spends about a millisecond per request on its side)."""
    host, _, port = url.removeprefix("https://").partition(":")
    conn = http.client.HTTPSConnection(host, int(port), context=ssl.create_default_context(cafile=ca))
    headers = {"Authorization": f"Bearer {token}"}
    path = f"/apis/{G[0]}/{G[1]}/namespaces/{G[2]}/{G[3]}"

    def call(method: str, where: str, body: Any = None, ctype: str = "application/json") -> None:
        conn.request(method, where, body=None if body is None else json.dumps(body),
                     headers={**headers, "Content-Type": ctype})
        r = conn.getresponse()
        r.read()
        assert r.status < 300, r.status

    rows = []
    rate, lat = timed(lambda i: call("POST", path, {**VS, "metadata": {"name": f"raw-{i}"}}), N)
    rows.append(("create VirtualService (validated), bare HTTPS", rate, lat))
    rate, lat = timed(lambda i: call("GET", f"{path}/raw-{i % N}"), N)
    rows.append(("get VirtualService, bare HTTPS", rate, lat))
    rate, lat = timed(lambda i: call("PATCH", f"{path}/raw-{i % N}", {"metadata": {"labels": {"n": str(i)}}},
                                     "application/merge-patch+json"), N)
    rows.append(("merge-patch VirtualService, bare HTTPS", rate, lat))
    for i in range(N):  # gone again: the client's run below starts from the same empty namespace
        call("DELETE", f"{path}/raw-{i}")
    conn.close()
    return rows


async def watch_fanout(url: str, token: str, ca: str, watchers: int, events: int) -> list[float]:
    import aiohttp

    ctx = ssl.create_default_context(cafile=ca)
    headers = {"Authorization": f"Bearer {token}"}
    lat: list[float] = []
    sent: dict[str, float] = {}
    ready = 0
    async with aiohttp.ClientSession(headers=headers, connector=aiohttp.TCPConnector(ssl=ctx, limit=0)) as s:
        async def one() -> None:
            nonlocal ready
            path = "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=0&timeoutSeconds=60"
            async with s.get(url + path) as r:
                ready += 1
                got = 0
                async for line in r.content:
                    ev = json.loads(line)
                    name = ev["object"]["metadata"]["name"]
                    if name in sent:
                        lat.append((time.perf_counter() - sent[name]) * 1000)
                        got += 1
                        if got == events:
                            return

        tasks = [asyncio.create_task(one()) for _ in range(watchers)]
        while ready < watchers:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        for i in range(events):
            name = f"fan-{i}"
            sent[name] = time.perf_counter()
            async with s.post(url + "/api/v1/namespaces/default/configmaps",
                              json={"metadata": {"name": name}, "data": {"i": str(i)}}) as r:
                assert r.status == 201
            await asyncio.sleep(0.05)
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
    return lat


def main() -> None:
    exit_on_sigterm()
    home = Path(tempfile.mkdtemp(prefix="sluice-bench-"))
    d = start_daemon(home)
    assert d.proc is not None
    try:
        rss0 = rss_mib(d.proc.pid)
        raw = raw_rows(d.api_url, d.token, str(d.home / "pki" / "ca.crt"))
        api = config.new_client_from_config(str(d.kubeconfig))
        co = client.CustomObjectsApi(api)
        rows = []
        rate, lat = timed(lambda i: co.create_namespaced_custom_object(*G, {**VS, "metadata": {"name": f"vs-{i}"}}), N)
        rows.append(("create VirtualService (validated)", rate, lat))
        rate, lat = timed(lambda i: co.get_namespaced_custom_object(*G, f"vs-{i % N}"), N)
        rows.append(("get VirtualService", rate, lat))
        rate, lat = timed(lambda i: co.patch_namespaced_custom_object(
            *G, f"vs-{i % N}", {"metadata": {"labels": {"n": str(i)}}}), N)
        rows.append(("merge-patch VirtualService", rate, lat))
        rate, lat = timed(lambda i: co.list_namespaced_custom_object(*G), 20)
        rows.append((f"list {N} VirtualServices", rate, lat))
        rss1 = rss_mib(d.proc.pid)

        kube = TOOLS / "kubectl-1.35"
        kcache = home / "kcache"
        env = d.env

        def kubectl(i: int) -> None:
            subprocess.run([str(kube), f"--cache-dir={kcache}", "get", "vs", f"vs-{i}", "-o", "name"], env=env,
                           check=True, capture_output=True)

        kubectl(0)  # warm the discovery cache, as a user's second command would be
        krate, klat = timed(kubectl, 20)
        fan = asyncio.run(watch_fanout(d.api_url, d.token, str(d.home / "pki" / "ca.crt"), 100, 20))
        rss2 = rss_mib(d.proc.pid)
    finally:
        stop_daemon(d)

    print("## API server (`bench/api_bench.py`)\n")
    print("One daemon, SQLite with synchronous commits (every write is fsynced before it is acknowledged); the\n"
          "official `kubernetes` Python client, one connection, sequential requests; and (run first, its objects\n"
          "deleted before the client's run) the same requests as bare HTTPS on one kept-alive connection\n"
          "(`http.client`), which leaves out the client's own per-request cost.\n")
    print("| operation | requests/s | p50 ms | p99 ms |")
    print("|---|---:|---:|---:|")
    for name, rate, lat in rows + raw:
        print(f"| {name} | {rate:,.0f} | {statistics.median(lat):.2f} | {pct(lat, 99):.2f} |")
    print(f"| `kubectl get vs NAME -o name` (1.35, warm cache; whole process) | {krate:,.1f} | "
          f"{statistics.median(klat):.1f} | {pct(klat, 99):.1f} |")
    print(f"\nWatch fan-out: 20 ConfigMap creates delivered to each of 100 concurrent watchers: "
          f"{len(fan)} deliveries, latency from POST to receipt p50 {statistics.median(fan):.1f} ms, "
          f"p99 {pct(fan, 99):.1f} ms.\n")
    print(f"Daemon RSS: {rss0:.0f} MiB at start, {rss1:.0f} MiB after {N} VirtualServices and the runs above, "
          f"{rss2:.0f} MiB with 100 watchers.")


if __name__ == "__main__":
    main()
