"""The floor under config propagation on this machine: the least an ADS server can do to get a new route table
ACKed by N real Envoys.

N Envoys (the binary and command line Sluice's sidecars run with, `sluice.xds.envoy.envoy_command`) each hold
one listener whose HCM takes route table `8000` over ADS from a minimal `grpc.aio` server in this process, on
the daemon's event loop (uvloop). The server does nothing a control plane needs beyond that: no API, no store,
no translation, no identity check, no TLS; the route table is built and serialised once per write and every
stream gets the same bytes with its own nonce (as Sluice's cache does). A write is timed from building the new
table to the last Envoy's ACK of it; CPU per write is this process's threads (the server) and the Envoys'
(`/proc/*/task/*/schedstat`), their idle rate subtracted.

The route table is the one a Sluice sidecar gets for the propagation bench's `server` Service (its virtual
host, Istio's default retry policy, the timeout the bench changes, the passthrough host), within a few bytes
of it in size, so an Envoy's work per update is the same. What this leaves out of Sluice's path (TLS, the API
write, translation) only makes the floor lower.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from envoy.config.route.v3 import route_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2, json_format

from sluice.aio import run_server
from sluice.xds.envoy import envoy_command
from sluice.xds.translate import protos  # noqa: F401 - registers the retry predicate's type for the Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.envoy_pair import H2_OPTIONS  # noqa: E402
from bench.run import task_cpu_ns  # noqa: E402

__all__ = ["FloorResult", "route_table", "run_floor"]

ADS = "envoy.service.discovery.v3.AggregatedDiscoveryService"
RDS_TYPE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
_HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
_ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
_RETRY_ON = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"


def route_table(timeout_s: int) -> dict[str, Any]:
    """Route table `8000` as Sluice gives a sidecar for `server.bench` (one VirtualService with a timeout)."""
    host = "server.bench.svc.cluster.local"
    return {
        "name": "8000",
        "virtual_hosts": [
            {"name": f"{host}:8000",
             "domains": [host, f"{host}:8000", "server.bench", "server.bench:8000", "server.bench.svc",
                         "server.bench.svc:8000", "10.96.0.12", "10.96.0.12:8000"],
             "routes": [{"name": "default", "match": {"prefix": "/"},
                         "route": {"cluster": f"outbound|8000||{host}", "timeout": f"{timeout_s}s",
                                   "retry_policy": {"retry_on": _RETRY_ON, "num_retries": 2,
                                                    "retry_host_predicate": [{
                                                        "name": "envoy.retry_host_predicates.previous_hosts",
                                                        "typed_config": {"@type": "type.googleapis.com/envoy."
                                                                         "extensions.retry.host.previous_hosts."
                                                                         "v3.PreviousHostsPredicate"}}],
                                                    "host_selection_retry_max_attempts": "5",
                                                    "retriable_status_codes": [503]},
                                   "max_stream_duration": {"max_stream_duration": f"{timeout_s}s",
                                                           "grpc_timeout_header_max": f"{timeout_s}s"}},
                         "decorator": {"operation": f"{host}:8000/*"}}],
             "include_request_attempt_count": True},
            {"name": "allow_any", "domains": ["*"],
             "routes": [{"name": "allow_any", "match": {"prefix": "/"},
                         "route": {"cluster": "PassthroughCluster", "timeout": "0s",
                                   "max_stream_duration": {"max_stream_duration": "0s",
                                                           "grpc_timeout_header_max": "0s"}}}],
             "include_request_attempt_count": True}],
        "validate_clusters": False,
    }


def _bootstrap(index: int, ads_port: int) -> dict[str, Any]:
    xds = {"name": "xds-grpc", "type": "STATIC", "connect_timeout": "1s", "typed_extension_protocol_options": H2_OPTIONS,
           "load_assignment": {"cluster_name": "xds-grpc", "endpoints": [{"lb_endpoints": [{"endpoint": {
               "address": {"socket_address": {"address": "127.0.0.1", "port_value": ads_port}}}}]}]}}
    hcm = {"name": "envoy.filters.network.http_connection_manager",
           "typed_config": {"@type": _HCM, "stat_prefix": "floor",
                            "rds": {"route_config_name": "8000",
                                    "config_source": {"ads": {}, "resource_api_version": "V3"}},
                            "http_filters": [{"name": "envoy.filters.http.router",
                                              "typed_config": {"@type": _ROUTER}}]}}
    listener = {"name": "floor", "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                "filter_chains": [{"filters": [hcm]}]}
    return {"node": {"id": f"floor-{index}", "cluster": "floor"},
            "dynamic_resources": {"ads_config": {"api_type": "GRPC", "transport_api_version": "V3",
                                                 "set_node_on_first_message_only": True,
                                                 "grpc_services": [{"envoy_grpc": {"cluster_name": "xds-grpc"}}]}},
            "static_resources": {"clusters": [xds], "listeners": [listener]}}



@dataclass
class _Stream:
    context: Any
    nonce: str = ""  # the last response's
    acked: str = ""  # the last version ACKed


@dataclass
class FloorResult:
    samples: list[float]  # ms per write, build to last ACK
    server_ms: float  # CPU per write
    envoys_ms: float
    table_bytes: int


@dataclass
class _Server:
    version: int = 0
    table_bytes: int = 0
    body: bytes = b""
    streams: list[_Stream] = field(default_factory=list)
    waiting: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)
    nonces: int = 0

    def publish(self, timeout_s: int) -> None:
        msg = json_format.ParseDict(route_table(timeout_s), route_pb2.RouteConfiguration())
        packed = any_pb2.Any()
        packed.Pack(msg)
        self.version += 1
        self.table_bytes = msg.ByteSize()
        self.body = discovery_pb2.DiscoveryResponse(version_info=str(self.version), resources=[packed],
                                                    type_url=RDS_TYPE).SerializeToString()

    def response(self, st: _Stream) -> bytes:
        self.nonces += 1
        st.nonce = str(self.nonces)
        # fields append: the shared body plus this stream's nonce, as one serialised DiscoveryResponse
        return self.body + discovery_pb2.DiscoveryResponse(nonce=st.nonce).SerializeToString()

    async def stream(self, requests: Any, context: Any) -> None:
        st = _Stream(context)
        self.streams.append(st)
        try:
            while True:
                req = await context.read()
                if req is grpc.aio.EOF:
                    return
                if req.type_url != RDS_TYPE:
                    continue
                if not req.response_nonce:  # the first request: send what there is
                    await context.write(self.response(st))
                elif req.response_nonce == st.nonce and not req.HasField("error_detail"):
                    if st.acked != req.version_info:
                        st.acked = req.version_info
                        if req.version_info == str(self.version):
                            self.waiting -= 1
                            if self.waiting == 0:
                                self.done.set()
        finally:
            self.streams.remove(st)

    async def push(self) -> None:
        self.waiting = len(self.streams)
        self.done.clear()
        await asyncio.gather(*(st.context.write(self.response(st)) for st in list(self.streams)))


async def _run(n: int, writes: int, directory: Path) -> FloorResult:
    srv = _Server()
    srv.publish(1)
    server = grpc.aio.server(options=[("grpc.max_concurrent_streams", 1 << 20)])
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(ADS, {
        "StreamAggregatedResources": grpc.stream_stream_rpc_method_handler(
            srv.stream, request_deserializer=discovery_pb2.DiscoveryRequest.FromString,
            response_serializer=lambda b: b)})])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for i in range(n):
            path = directory / f"envoy-{i}.json"
            path.write_text(json.dumps(_bootstrap(i, port)))
            with open(directory / f"envoy-{i}.log", "wb") as out:
                procs.append(subprocess.Popen(envoy_command(path), stdout=out, stderr=subprocess.STDOUT,
                                              start_new_session=True))
        deadline = time.monotonic() + 60 + n
        while not (len(srv.streams) == n and all(st.acked == "1" for st in srv.streams)):
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError(f"floor: {len(srv.streams)} of {n} Envoys connected and ACKed "
                                   f"(logs in {directory})")
            await asyncio.sleep(0.05)
        pids = [p.pid for p in procs]

        def now() -> tuple[int, int]:
            return task_cpu_ns(os.getpid()), sum(task_cpu_ns(p) for p in pids)

        t0, (s0, e0) = time.perf_counter(), now()
        await asyncio.sleep(2.0)
        t1, (s1, e1) = time.perf_counter(), now()
        idle = ((s1 - s0) / (t1 - t0), (e1 - e0) / (t1 - t0))
        samples: list[float] = []
        wall = 0.0
        server_ns = envoy_ns = 0
        for i in range(writes):
            await asyncio.sleep(0.05)  # apart, like the API writes of the bench
            s0, e0 = now()
            t0 = time.perf_counter()
            srv.publish(100 + i)
            await srv.push()
            await asyncio.wait_for(srv.done.wait(), 30)
            t1 = time.perf_counter()
            s1, e1 = now()
            samples.append((t1 - t0) * 1000)
            wall += t1 - t0
            server_ns += s1 - s0
            envoy_ns += e1 - e0
        return FloorResult(samples, max(0.0, server_ns - idle[0] * wall) / writes / 1e6,
                           max(0.0, envoy_ns - idle[1] * wall) / writes / 1e6, srv.table_bytes)
    finally:
        for p in procs:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        await server.stop(None)


def run_floor(n: int, writes: int) -> FloorResult:
    """N Envoys on a minimal ADS server, `writes` route updates; everything it started is gone on return."""
    with tempfile.TemporaryDirectory(prefix="sluice-ads-floor-") as tmp:
        return run_server(_run(n, writes, Path(tmp)))  # on the daemon's loop (uvloop)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--envoys", type=int, default=10)
    parser.add_argument("--writes", type=int, default=30)
    a = parser.parse_args()
    r = run_floor(a.envoys, a.writes)
    s = sorted(r.samples)
    print(f"{a.envoys} Envoys, {a.writes} writes, table {r.table_bytes} B: p50 {s[len(s) // 2]:.1f} ms, "
          f"max {s[-1]:.1f} ms; server {r.server_ms:.1f} ms, Envoys {r.envoys_ms:.1f} ms CPU per write")
