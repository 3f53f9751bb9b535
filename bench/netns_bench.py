"""Pod networking benchmarks: added latency of the sidecar pair in netns mode (transparent capture) and in
loopback mode (HTTP_PROXY) against the direct path, pod start time, `sluice demo` ready time, memory per
pod. Prints a Markdown section.

The same small asyncio server and the same load generator (`python -m sluice.load`, 4 keep-alive connections
at a fixed rate) are used everywhere. In netns mode the load generator runs inside the client pod (started
with `kubectl exec`), as an app there would: *direct* = a pod without sidecar → the server pod's IP;
*mesh* = a pod with a sidecar → `http://server:8000/` (captured on both sides). In loopback mode it runs on
the host: *direct* = the server's address, *mesh* = through the client's sidecar as HTTP proxy. Runs are
interleaved (direct, mesh, direct, mesh, …) and the median of the repetitions is reported.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.mesh_bench import PAYLOAD, SERVER, deployment, envoy_pids, ready, rss_mib  # noqa: E402
from bench.run import exit_on_sigterm  # noqa: E402
from kubernetes import client, config  # noqa: E402
from tests.conftest import TOOLS, Daemon, free_port, start_daemon, stop_daemon, wait_for  # noqa: E402

NS = "bench"
RATE = 500
SECONDS = 10
REPEATS = 3


def kubectl(d: Daemon, *args: str, timeout: float = 120) -> str:
    cp = subprocess.run([str(TOOLS / "kubectl-1.35"), "-n", NS, *args], env=d.env, capture_output=True, text=True,
                        timeout=timeout)
    if cp.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {cp.stderr}")
    return cp.stdout


def load(d: Daemon, url: str, *, via_pod: str | None = None, proxy: str | None = None,
         warm_up: bool = False) -> dict[str, Any]:
    pace = ["--rate", "0", "--requests", "20"] if warm_up else ["--rate", str(RATE), "--duration", f"{SECONDS}s"]
    argv = [sys.executable, "-m", "sluice.load", url, *pace, "--concurrency", "4", "--timeout", "5", "-o", "json"]
    if proxy:
        argv += ["--proxy", proxy]
    if via_pod:
        out = kubectl(d, "exec", f"deploy/{via_pod}", "-c", via_pod, "--", *argv, timeout=SECONDS + 60)
    else:
        out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=SECONDS + 60).stdout
    return dict(json.loads(out))


def start_mesh(home: Path, network: str) -> tuple[Daemon, client.CoreV1Api, client.AppsV1Api]:
    d = start_daemon(home, network=network)
    api = config.new_client_from_config(str(d.kubeconfig))
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    core.create_namespace({"metadata": {"name": NS}})
    apps.create_namespaced_deployment(NS, deployment("server", 1, [sys.executable, "-c", SERVER], port=8000))
    apps.create_namespaced_deployment(NS, deployment("direct", 1, [sys.executable, "-c", SERVER], sidecar=False,
                                                     port=8000))
    apps.create_namespaced_deployment(NS, deployment("client", 1, ["sleep", "infinity"]))
    apps.create_namespaced_deployment(NS, deployment("plain", 1, ["sleep", "infinity"], sidecar=False))
    core.create_namespaced_service(NS, {"metadata": {"name": "server"}, "spec": {
        "selector": {"app": "server"}, "ports": [{"name": "http", "port": 8000}]}})
    wait_for(lambda: ready(apps), timeout=120, interval=0.2)
    return d, core, apps


def pod_start_seconds(d: Daemon, sidecar: bool, n: int = 5) -> float:
    """`kubectl apply` of a pod → its Ready condition (kubectl wait), median of n."""
    samples = []
    for i in range(n):
        name = f"start-{'sc' if sidecar else 'plain'}-{i}"
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "annotations": {} if sidecar else {
            "sidecar.istio.io/inject": "false"}}, "spec": {"terminationGracePeriodSeconds": 0, "containers": [
                {"name": "app", "image": "local", "command": [sys.executable, "-c", SERVER],
                 "ports": [{"containerPort": 8000}], "readinessProbe": {"tcpSocket": {"port": 8000},
                                                                       "periodSeconds": 1}}]}}
        t0 = time.perf_counter()
        subprocess.run([str(TOOLS / "kubectl-1.35"), "-n", NS, "apply", "-f", "-"], input=json.dumps(pod),
                       env=d.env, check=True, capture_output=True, text=True)
        kubectl(d, "wait", "--for=condition=Ready", f"pod/{name}", "--timeout=60s")
        samples.append(time.perf_counter() - t0)
        kubectl(d, "delete", "pod", name, "--wait=false")
    return statistics.median(samples)


def pod_memory(d: Daemon, core: client.CoreV1Api) -> tuple[float, float]:
    """(sidecar Envoy RSS, app process RSS) medians in MiB for the pods of this daemon."""
    envoys = [rss_mib(p) for p in envoy_pids(d.home).values()]
    apps = []
    for e in Path("/proc").iterdir():
        if not e.name.isdigit():
            continue
        try:
            cmd = (e / "cmdline").read_bytes()
            env = (e / "environ").read_bytes()
        except OSError:
            continue
        if b"asyncio" in cmd and str(d.home).encode() not in cmd and f"SLUICE_HOME={d.home}".encode() not in env \
                and b"HOSTNAME=server-" in env:
            apps.append(rss_mib(int(e.name)))
    return statistics.median(envoys), statistics.median(apps) if apps else 0.0


def main() -> None:
    exit_on_sigterm()
    tmp = Path(tempfile.mkdtemp(prefix="sluice-netns-bench-"))
    atexit.register(shutil.rmtree, tmp, True)  # after the daemons' `finally`, also when stopped early
    rows: list[str] = []
    starts: dict[str, tuple[float, float]] = {}
    memory: dict[str, tuple[float, float]] = {}
    for network in ("netns", "loopback"):
        d, core, _ = start_mesh(tmp / network, network)
        try:
            ips = {p.metadata.labels["app"]: p.status.pod_ip for p in core.list_namespaced_pod(NS).items}
            if network == "netns":
                direct_args: dict[str, Any] = {"via_pod": "plain"}
                mesh_args: dict[str, Any] = {"via_pod": "client"}
            else:
                direct_args = {}
                mesh_args = {"proxy": f"http://{ips['client']}:15001"}
            def warm(d: Daemon = d, args: dict[str, Any] = mesh_args) -> bool:
                return bool(load(d, "http://server:8000/", warm_up=True, **args)["statusCodes"] == {"200": 20})

            wait_for(warm, timeout=60, interval=0.5)
            direct, mesh = [], []
            for _ in range(REPEATS):
                direct.append(load(d, f"http://{ips['direct']}:8000/", **direct_args))
                mesh.append(load(d, "http://server:8000/", **mesh_args))

            def med(runs: list[dict[str, Any]], key: str) -> float:
                return statistics.median(r["latencyMs"][key] for r in runs)

            def spread(runs: list[dict[str, Any]], key: str) -> str:
                values = [r["latencyMs"][key] for r in runs]
                return f"{min(values):.2f}–{max(values):.2f}"

            errors = sum(sum(r["errors"].values()) for r in direct + mesh)
            rows.append(
                f"| {network} | {med(direct, 'p50'):.2f} / {med(direct, 'p90'):.2f} / {med(direct, 'p99'):.2f} | "
                f"{med(mesh, 'p50'):.2f} / {med(mesh, 'p90'):.2f} / {med(mesh, 'p99'):.2f} | "
                f"{med(mesh, 'p50') - med(direct, 'p50'):.2f} / {med(mesh, 'p90') - med(direct, 'p90'):.2f} / "
                f"{med(mesh, 'p99') - med(direct, 'p99'):.2f} | {spread(mesh, 'p50')} | "
                f"{statistics.median(r['achievedRps'] for r in mesh):,.0f} | {errors} |")
            memory[network] = pod_memory(d, core)
            starts[network] = (pod_start_seconds(d, sidecar=False), pod_start_seconds(d, sidecar=True))
        finally:
            stop_daemon(d)
    demo: dict[str, float] = {}
    sluice = str(Path(sys.executable).parent / "sluice")
    for network in ("netns", "loopback"):
        home = tmp / f"demo-{network}"
        home.mkdir()
        (home / "config.yaml").write_text(f"network: {network}\n" + "".join(
            f"{k}: {free_port()}\n" for k in ("api_port", "xds_port", "metrics_port", "console_port")))
        env = {**os.environ, "SLUICE_HOME": str(home)}
        t0 = time.perf_counter()
        subprocess.run([sluice, "demo"], env=env, check=True, capture_output=True)
        demo[network] = time.perf_counter() - t0
        subprocess.run([sluice, "down"], env=env, check=True, capture_output=True)
    out = ["## Pod networking (`bench/netns_bench.py`)\n",
           f"A {PAYLOAD}-byte response from a small asyncio server; sluice's load generator, 4 keep-alive "
           f"connections at {RATE} rps for {SECONDS} s, {REPEATS} interleaved direct/mesh repetitions per mode "
           "(medians; the spread is the mesh p50's range). *netns*: the load generator runs inside a pod "
           "(`kubectl exec`); direct = a pod without sidecar → the server pod's IP, mesh = a pod with a sidecar "
           "→ `http://server:8000/`, captured by istio-init's rules on both sides. *loopback*: from the host; "
           "direct = the server's address, mesh = through the client sidecar as HTTP proxy.\n",
           "| mode | direct p50 / p90 / p99 ms | mesh p50 / p90 / p99 ms | added p50 / p90 / p99 ms | "
           "mesh p50 spread ms | achieved rps (mesh) | errors |", "|---|---|---|---|---|---:|---:|", *rows, "",
           "| mode | pod start to Ready, no sidecar (s) | with sidecar (s) | sidecar Envoy RSS (MiB) | "
           "app RSS (MiB) | `sluice demo` to all pods ready (s) |", "|---|---:|---:|---:|---:|---:|"]
    for network in ("netns", "loopback"):
        s, m = starts[network], memory[network]
        out.append(f"| {network} | {s[0]:.2f} | {s[1]:.2f} | {m[0]:.0f} | {m[1]:.0f} | {demo[network]:.1f} |")
    out.append("\nPod start: `kubectl apply` of one pod to `kubectl wait --for=condition=Ready` returning (median of "
               "5; the readiness probe period is 1 s). netns adds the namespace, veth and nft setup to each start.")
    print("\n".join(out))


if __name__ == "__main__":
    main()
