"""Data-plane benchmarks: added latency of two sidecars, Envoy CPU and memory per 1000 rps, config
propagation to 10/50/100 sidecars, and `sluice demo` to all pods ready. Prints a Markdown section.

Everything runs on this machine's 2 cores: the load generator (Python), both Envoys and the server share them,
so absolute numbers are pessimistic next to Istio's published ones, which use separate nodes.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import ssl
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kubernetes import client, config  # noqa: E402
from tests.conftest import Daemon, free_port, start_daemon, stop_daemon, wait_for  # noqa: E402

from sluice.load import LoadConfig  # noqa: E402
from sluice.load.runner import run_load  # noqa: E402

NS = "bench"
PAYLOAD = 1024
SERVER = (
    "import asyncio,os\n"
    f"BODY=b'x'*{PAYLOAD}\n"
    "RESP=b'HTTP/1.1 200 OK\\r\\ncontent-length: %d\\r\\ncontent-type: text/plain\\r\\n\\r\\n' % len(BODY) + BODY\n"
    "async def handle(r,w):\n"
    "    try:\n"
    "        while True:\n"
    "            head=await r.readuntil(b'\\r\\n\\r\\n')\n"
    "            w.write(RESP)\n"
    "            await w.drain()\n"
    "    except Exception:\n"
    "        w.close()\n"
    "async def main():\n"
    "    s=await asyncio.start_server(handle,os.environ['SLUICE_BIND'],8000)\n"
    "    await s.serve_forever()\n"
    "asyncio.run(main())\n")


def deployment(name: str, replicas: int, command: list[str], sidecar: bool = True, port: int | None = None
               ) -> dict[str, Any]:
    meta: dict[str, Any] = {"labels": {"app": name}}
    if not sidecar:
        meta["annotations"] = {"sidecar.istio.io/inject": "false"}
    c: dict[str, Any] = {"name": name, "image": "local", "command": command}
    if port:
        c["ports"] = [{"containerPort": port}]
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": meta, "spec": {"terminationGracePeriodSeconds": 1,
                                                             "containers": [c]}}}}


def ready(apps: client.AppsV1Api) -> bool:
    items = apps.list_namespaced_deployment(NS).items
    return all((d.status.available_replicas or 0) == d.spec.replicas for d in items)


def envoy_pids(home: Path) -> dict[str, int]:
    """Pod name → Envoy pid, from /proc (the sidecar is the envoy process whose bootstrap is in the pod dir)."""
    out: dict[str, int] = {}
    for e in Path("/proc").iterdir():
        if not e.name.isdigit():
            continue
        try:
            cmd = (e / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmd and cmd[0].endswith(b"envoy") and str(home).encode() in b" ".join(cmd):
            cfg = next((c.decode() for c in cmd if c.endswith(b".json")), "")
            try:
                node = json.loads(Path(cfg).read_text())["node"]["id"]
            except (OSError, ValueError, KeyError):
                continue
            out[node.split("~")[2].rsplit(".", 1)[0]] = int(e.name)
    return out


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def private_mib(pid: int) -> float:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0.0
    kb = sum(int(line.split()[1]) for line in text.splitlines() if line.startswith(("Private_Clean", "Private_Dirty")))
    return kb / 1024


def syncz(d: Daemon) -> list[dict[str, Any]]:
    ctx = ssl.create_default_context(cafile=str(d.home / "pki" / "ca.crt"))
    req = urllib.request.Request(d.api_url + "/debug/syncz", headers={"Authorization": f"Bearer {d.token}"})
    with urllib.request.urlopen(req, context=ctx, timeout=5) as r:
        return list(json.loads(r.read()))


def all_acked(d: Daemon, n: int) -> bool:
    rows = syncz(d)
    return len(rows) >= n and all(t.get("state") == "SYNCED" for r in rows for t in r["types"].values())


def rds_acked(d: Daemon) -> dict[str, str]:
    return {r["proxy"]: str(r["types"].get("RDS", {}).get("acked")) for r in syncz(d)}


async def latency(url: str, rate: float, proxy: str | None, seconds: float) -> Any:
    return await run_load(LoadConfig(url, rate=rate, concurrency=4, duration=seconds, proxy=proxy, timeout=5))


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="sluice-mesh-bench-"))
    d = start_daemon(home / "home")
    out: list[str] = []
    try:
        api = config.new_client_from_config(str(d.kubeconfig))
        core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
        core.create_namespace({"metadata": {"name": NS}})
        apps.create_namespaced_deployment(NS, deployment("server", 1, [sys.executable, "-c", SERVER], port=8000))
        apps.create_namespaced_deployment(NS, deployment("client", 1, ["sleep", "infinity"]))
        apps.create_namespaced_deployment(NS, deployment("direct", 1, [sys.executable, "-c", SERVER], sidecar=False,
                                                         port=8000))
        core.create_namespaced_service(NS, {"metadata": {"name": "server"}, "spec": {
            "selector": {"app": "server"}, "ports": [{"name": "http", "port": 8000}]}})
        wait_for(lambda: ready(apps), timeout=120, interval=0.2)
        ips = {p.metadata.labels["app"]: p.status.pod_ip for p in core.list_namespaced_pod(NS).items}
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": f"http://{ips['client']}:15001"}))

        def answers() -> bool:
            try:
                return bool(opener.open("http://server:8000/", timeout=2).status == 200)
            except OSError:  # 503 until the endpoints reach the client's sidecar
                return False

        wait_for(answers, timeout=60)
        envoys = envoy_pids(d.home)
        out.append("## Data plane (`bench/mesh_bench.py`)\n")
        out.append(f"A {PAYLOAD}-byte response from a small asyncio server; 4 keep-alive connections from sluice's "
                   "load generator at a fixed rate for 20 s. *Direct*: client → server. *Mesh*: client → client "
                   "sidecar (HTTP proxy) → server sidecar → server. Added latency = mesh − direct at the same "
                   "percentile. Envoy CPU is both sidecars' user+system time over the run (1 worker each).\n")
        out.append("| rate | direct p50 / p90 / p99 ms | mesh p50 / p90 / p99 ms | added p50 / p90 / p99 ms | "
                   "achieved rps (mesh) | sidecar vCPU per 1000 rps (both) |")
        out.append("|---:|---|---|---|---:|---:|")
        assert d.proc is not None
        daemon_pid = d.proc.pid
        idle0, t_idle = cpu_seconds(daemon_pid), time.perf_counter()
        time.sleep(5)
        daemon_idle = (cpu_seconds(daemon_pid) - idle0) / (time.perf_counter() - t_idle)
        collector_cpu: dict[int, float] = {}
        for rate in (500, 1000):
            direct = asyncio.run(latency(f"http://{ips['direct']}:8000/", rate, None, 20))
            pair = [envoys[n] for n in envoys if n.startswith(("client-", "server-"))]
            cpu0 = sum(cpu_seconds(p) for p in pair)
            d0 = cpu_seconds(daemon_pid)
            mesh = asyncio.run(latency("http://server:8000/", rate, f"http://{ips['client']}:15001", 20))
            cpu = (sum(cpu_seconds(p) for p in pair) - cpu0) / mesh.elapsed
            collector_cpu[rate] = ((cpu_seconds(daemon_pid) - d0) / mesh.elapsed - daemon_idle) \
                / mesh.achieved_rps * 1000
            a, m = direct.latency, mesh.latency
            out.append(f"| {rate} | {a.p50:.2f} / {a.p90:.2f} / {a.p99:.2f} | {m.p50:.2f} / {m.p90:.2f} / "
                       f"{m.p99:.2f} | {m.p50 - a.p50:.2f} / {m.p90 - a.p90:.2f} / {m.p99 - a.p99:.2f} | "
                       f"{mesh.achieved_rps:,.0f} | {cpu / mesh.achieved_rps * 1000:.2f} |")
        out.append(f"\nTelemetry collector (the daemon's CPU above its idle {daemon_idle:.3f} vCPU, receiving both "
                   "sidecars' access logs over gRPC ALS and updating Istio's metrics; two entries per request): "
                   + ", ".join(f"{v:.3f} vCPU per 1000 rps at {r} rps" for r, v in collector_cpu.items()) + ".")
        rss = [rss_mib(p) for p in envoys.values()]
        priv = [private_mib(p) for p in envoys.values()]
        out.append(f"\nIstio 1.24 publishes 0.20 vCPU and 60 MB per sidecar per 1000 rps, and (1.20) 0.228 ms p90 / "
                   f"0.298 ms p99 added. Sluice sidecar memory after the runs: RSS {statistics.median(rss):.0f} MiB "
                   f"(median of {len(rss)}), of which {statistics.median(priv):.0f} MiB private; daemon RSS "
                   f"{rss_mib(d.proc.pid) if d.proc else 0:.0f} MiB.\n")

        # Config propagation: API write → every affected sidecar ACKed (polled on /debug/syncz).
        out.append("Config propagation: a VirtualService change (its route timeout) written through the API until every "
                   "sidecar in the mesh has ACKed the new routes (`/debug/syncz` polled every 2 ms; 15 writes).\n")
        out.append("| sidecars | p50 ms | p99 ms |")
        out.append("|---:|---:|---:|")
        for n in (10, 50, 100):
            apps.patch_namespaced_deployment_scale("client", NS, {"spec": {"replicas": n - 1}})
            wait_for(lambda: ready(apps), timeout=600, interval=0.5)
            wait_for(lambda n=n: all_acked(d, n), timeout=120, interval=0.2)
            co = client.CustomObjectsApi(api)
            samples = []
            for i in range(15):
                vs = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                      "metadata": {"name": "server"},
                      "spec": {"hosts": ["server"], "http": [{"route": [{"destination": {"host": "server"}}],
                                                              "timeout": f"{10 + i}s"}]}}
                before = rds_acked(d)
                t0 = time.perf_counter()
                if i == 0:
                    co.create_namespaced_custom_object("networking.istio.io", "v1", NS, "virtualservices", vs)
                else:
                    co.patch_namespaced_custom_object("networking.istio.io", "v1", NS, "virtualservices", "server",
                                                      {"spec": vs["spec"]})
                while True:
                    now = rds_acked(d)
                    if all(now.get(p) != v for p, v in before.items()) and all_acked(d, n):
                        break
                    time.sleep(0.002)
                samples.append((time.perf_counter() - t0) * 1000)
            co.delete_namespaced_custom_object("networking.istio.io", "v1", NS, "virtualservices", "server")
            samples.sort()
            out.append(f"| {n} | {statistics.median(samples):.0f} | {samples[-1]:.0f} |")
        rss = [rss_mib(p) for p in envoy_pids(d.home).values()]
        out.append(f"\nWith 100 sidecars running: daemon RSS {rss_mib(d.proc.pid) if d.proc else 0:.0f} MiB, "
                   f"sidecar RSS median {statistics.median(rss):.0f} MiB.\n")
    finally:
        stop_daemon(d)

    # `sluice demo` to all pods ready, on a warm machine (venv and packages installed).
    demo_home = home / "demo"
    demo_home.mkdir()
    (demo_home / "config.yaml").write_text(
        "".join(f"{k}: {free_port()}\n" for k in ("api_port", "xds_port", "metrics_port", "console_port")))
    env = {**os.environ, "SLUICE_HOME": str(demo_home)}
    sluice = str(Path(sys.executable).parent / "sluice")
    import subprocess

    t0 = time.perf_counter()
    subprocess.run([sluice, "demo"], env=env, check=True, capture_output=True)
    took = time.perf_counter() - t0
    subprocess.run([sluice, "down"], env=env, check=True, capture_output=True)
    out.append(f"`sluice demo` from a stopped daemon to all 9 Bookinfo/sleep/gateway/generator pods ready: "
               f"{took:.1f} s.")
    shutil.rmtree(home, ignore_errors=True)
    print("\n".join(out))


if __name__ == "__main__":
    main()
