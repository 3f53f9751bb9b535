"""Cost of authenticated ALS: the daemon's CPU per 1000 rps for receiving access logs, plain text vs mutual
TLS with identity checks. Prints a Markdown section; runs in about 50 s.

1. *Receive path, A/B.* The collector's ALS service on a grpc.aio server in this process, fed by a child
   process over 127.0.0.1 with the messages two sidecars send for 1000 rps (2,000 entries/s in Envoy-sized
   batches of 34, over one stream per sidecar): first in plain text with the proxy named by its node id (as
   before issue 9), then over mutual TLS with a proxy certificate and the identity checks, as the daemon now
   runs it (label checks and the series limit run in both). CPU is this process's user+system time over
   the run; then the same unpaced, which leaves out the idle cost of a paced run.
2. *Real mesh.* A daemon with two sidecars at 1000 rps for 10 s through the client's sidecar (sluice's
   load generator): the daemon's CPU above its idle per 1000 rps — the same measure as the "Telemetry
   collector" line in docs/benchmarks.md (0.031 vCPU per 1000 rps at 1000 rps before TLS).
"""

from __future__ import annotations

import asyncio
import resource
import shutil
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.mesh_bench import SERVER, cpu_seconds, deployment, ready  # noqa: E402
from bench.run import exit_on_sigterm  # noqa: E402
from tests.conftest import free_port, start_daemon, stop_daemon, wait_for  # noqa: E402

from sluice import mesh  # noqa: E402
from sluice.load import LoadConfig  # noqa: E402
from sluice.load.runner import run_load  # noqa: E402

RATE = 1000
SECONDS = 6
BATCH = 34  # entries per ALS message: Envoy's 16 KiB buffer holds about this many
NS = "bench"

# The child: two streams (two sidecars), one batch per stream every BATCH/RATE s, for SECONDS.
CLIENT = r"""
import sys, time, threading, grpc
from envoy.service.accesslog.v3 import als_pb2, als_pb2_grpc
target, total, rate, batch, tls = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
def stream(node, inbound, peer, creds):
    opts = [("grpc.ssl_target_name_override", "istiod.istio-system.svc")]
    ch = grpc.secure_channel(target, creds, options=opts) if creds else grpc.insecure_channel(target)
    def msgs():
        first = True
        start = time.monotonic()
        n = 0
        while n < total:
            m = als_pb2.StreamAccessLogsMessage()
            if first:
                m.identifier.node.id = node
                first = False
            k = min(batch, total - n)
            for _ in range(k):
                e = m.http_logs.log_entry.add()
                cp = e.common_properties
                if inbound:
                    cp.upstream_cluster = "inbound|8000||"
                    cp.downstream_remote_address.socket_address.address = peer
                else:
                    cp.upstream_cluster = "outbound|8000||server.bench.svc.cluster.local"
                    cp.upstream_remote_address.socket_address.address = peer
                cp.duration.nanos = 700000
                cp.downstream_wire_bytes_received = 90
                cp.downstream_wire_bytes_sent = 1100
                e.response.response_code.value = 200
            yield m
            n += k
            if rate:
                time.sleep(max(0.0, start + n / rate - time.monotonic()))
    als_pb2_grpc.AccessLogServiceStub(ch).StreamAccessLogs(msgs(), timeout=120)
args = [a.split(",") for a in sys.argv[6:]]  # node,inbound,peer,certdir
def creds(d):
    if tls != "tls":
        return None
    r = lambda f: open(d + "/" + f, "rb").read()
    return grpc.ssl_channel_credentials(r("ca.crt"), r("proxy.key"), r("proxy.crt"))
ts = [threading.Thread(target=stream, args=(a[0], a[1] == "1", a[2], creds(a[3]))) for a in args]
[t.start() for t in ts]
[t.join() for t in ts]
"""


def _pod(name: str, ip: str, app: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS, "labels": {"app": app}},
            "spec": {"containers": [{"name": app, "image": "local", "command": ["true"]},
                                    {"name": mesh.SIDECAR_CONTAINER, "image": mesh.PROXY_IMAGE}]}}


def _self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def _receive(tmp: Path, tls: bool, rate: int = RATE, per_stream: int = RATE * SECONDS) -> tuple[float, int]:
    """(CPU seconds of this process per 1000 requests — 2000 entries —, entries counted) for one run of the
    receive path: two streams of `per_stream` entries at `rate` entries/s each (0: as fast as they go)."""
    from sluice.api.registry import ApiOptions, Registry
    from sluice.daemon.pki import ProxyCa
    from sluice.resources.kinds import by_kind
    from sluice.store.sqlite import Store
    from sluice.telemetry import Collector
    from sluice.xds.identity import ProxyIdentity
    from sluice.xds.server import XdsServer

    store = Store(tmp / f"db-{tls}-{rate}")
    registry = Registry(store, ApiOptions())
    registry.ensure_namespace(NS)
    pod_rt = by_kind("", "Pod")
    assert pod_rt is not None
    ips = {"client": "127.1.9.1", "server": "127.1.9.2"}
    pods = {a: registry.create(pod_rt, "v1", NS, _pod(f"{a}-0", ip, a)).object for a, ip in ips.items()}
    ca = ProxyCa(tmp / "pki")
    dirs = {}
    for a, p in pods.items():
        d = tmp / f"pod-{a}"
        ca.issue(ProxyIdentity("sidecar", ips[a], p["metadata"]["name"], NS, p["metadata"]["uid"], "default"), d)
        dirs[a] = d
    port = free_port()
    xds = XdsServer(store, address=("127.0.0.1", port), tls=ca.server_credentials() if tls else None)
    collector = Collector(store, require_identity=tls)
    xds.add_servicer(collector.register)
    await xds.start()
    await collector.start()
    try:
        streams = [f"{mesh.sidecar_node_id(ips['client'], 'client-0', NS)},0,{ips['server']},{dirs['client']}",
                   f"{mesh.sidecar_node_id(ips['server'], 'server-0', NS)},1,{ips['client']},{dirs['server']}"]
        c0 = _self_cpu()
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", CLIENT, f"127.0.0.1:{port}", str(per_stream), str(rate), str(BATCH),
            "tls" if tls else "plain", *streams)
        await child.wait()
        cpu = _self_cpu() - c0
        counted = int(sum(c.value for c in collector.metrics.requests_total.cells.values()))
        # Two entries per request (one per reporter): 1000 requests are 2000 entries.
        return cpu / per_stream * 1000, counted
    finally:
        await collector.stop()
        await xds.stop()
        store.close()


def _mesh(tmp: Path) -> tuple[float, float]:
    from kubernetes import client, config

    d = start_daemon(tmp / "home", network="loopback")
    try:
        api = config.new_client_from_config(str(d.kubeconfig))
        core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
        core.create_namespace({"metadata": {"name": NS}})
        apps.create_namespaced_deployment(NS, deployment("server", 1, [sys.executable, "-c", SERVER], port=8000))
        apps.create_namespaced_deployment(NS, deployment("client", 1, ["sleep", "infinity"]))
        core.create_namespaced_service(NS, {"metadata": {"name": "server"}, "spec": {
            "selector": {"app": "server"}, "ports": [{"name": "http", "port": 8000}]}})
        wait_for(lambda: ready(apps), timeout=120, interval=0.2)
        ips = {p.metadata.labels["app"]: p.status.pod_ip for p in core.list_namespaced_pod(NS).items}
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": f"http://{ips['client']}:15001"}))

        def answers() -> bool:
            try:
                return bool(opener.open("http://server:8000/", timeout=2).status == 200)
            except OSError:
                return False

        wait_for(answers, timeout=60)
        assert d.proc is not None
        pid = d.proc.pid
        i0, ti = cpu_seconds(pid), time.perf_counter()
        time.sleep(3)
        idle = (cpu_seconds(pid) - i0) / (time.perf_counter() - ti)
        d0 = cpu_seconds(pid)
        res = asyncio.run(run_load(LoadConfig("http://server:8000/", rate=RATE, concurrency=4, duration=10,
                                              proxy=f"http://{ips['client']}:15001", timeout=5)))
        per = ((cpu_seconds(pid) - d0) / res.elapsed - idle) / res.achieved_rps * 1000
        return per, res.achieved_rps
    finally:
        stop_daemon(d)


def main() -> None:
    exit_on_sigterm()
    tmp = Path(tempfile.mkdtemp(prefix="sluice-als-bench-"))
    plain, n_plain = asyncio.run(_receive(tmp, tls=False))
    mtls, n_tls = asyncio.run(_receive(tmp, tls=True))
    fast = 40_000  # per stream, unpaced: the per-entry cost without the idle cost of a paced run
    plain_fast, _ = asyncio.run(_receive(tmp, tls=False, rate=0, per_stream=fast))
    mtls_fast, _ = asyncio.run(_receive(tmp, tls=True, rate=0, per_stream=fast))
    mesh_cpu, rps = _mesh(tmp) if "--no-mesh" not in sys.argv else (0.0, 0.0)
    expected = 2 * RATE * SECONDS
    print("## Authenticated ALS (`bench/als_trust_bench.py`)\n")
    print(f"Receive path alone (the collector's ALS service on a gRPC server, fed by another process with two "
          f"sidecars' access logs for {RATE} rps: {2 * RATE} entries/s in batches of {BATCH}, {SECONDS} s; "
          f"CPU of the receiving process):\n")
    print("| ALS | vCPU per 1000 rps | entries counted |")
    print("|---|---:|---:|")
    print(f"| plain text, node id trusted (before) | {plain:.3f} | {n_plain:,} of {expected:,} |")
    print(f"| mutual TLS, identity from the certificate | {mtls:.3f} | "
          f"{n_tls:,} of {expected:,} |")
    print(f"\nUnpaced ({2 * fast:,} entries as fast as one sender process sends them): {plain_fast:.3f} CPU s per "
          f"1000 requests in plain text, {mtls_fast:.3f} over mutual TLS "
          f"({(mtls_fast - plain_fast) / plain_fast * 100:+.0f} %).")
    print(f"\nReal mesh (daemon with two sidecars over mutual TLS, {rps:,.0f} rps through the client's sidecar for "
          f"10 s): telemetry collector {mesh_cpu:.3f} vCPU per 1000 rps above the daemon's idle (before TLS: "
          f"0.031 at 1000 rps, see the data-plane section).")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
