"""gRPC and raw TCP through the mesh in netns mode: unmodified programs that ignore proxy variables are
captured by their sidecars, and Istio's metrics count them with the gRPC and TCP labels.

The servers and the client are plain grpcio / socket programs (no proxy settings, binding 0.0.0.0); the
client dials the Services' ClusterIPs directly. What is checked: the client's own output (every call
answered) and the metric values from the Prometheus API, for both reporters.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest

from tests.conftest import Daemon, start_daemon, stop_daemon, wait_for
from tests.integration.netns.kube import Kube

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="netns mode needs root")

CALLS = 25
CONNECTIONS = 7

GRPC_SERVER = r"""
import grpc, concurrent.futures
def echo(request, context):
    return b"echo:" + request
handler = grpc.method_handlers_generic_handler("demo.Echo", {
    "Say": grpc.unary_unary_rpc_method_handler(echo),
    "Fail": grpc.unary_unary_rpc_method_handler(lambda r, c: c.abort(grpc.StatusCode.NOT_FOUND, "no such thing")),
})
server = grpc.server(concurrent.futures.ThreadPoolExecutor(4))
server.add_generic_rpc_handlers((handler,))
server.add_insecure_port("0.0.0.0:50051")
server.start()
print("serving", flush=True)
server.wait_for_termination()
"""

TCP_SERVER = r"""
import socketserver
class Echo(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(b"hello " + line)
socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer(("0.0.0.0", 9000), Echo).serve_forever()
"""

CLIENT = r"""
import grpc, socket, sys, time
grpc_vip, tcp_vip, calls, conns = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
def wait(f):
    for _ in range(200):
        try:
            return f()
        except Exception as e:
            last = e
            time.sleep(0.1)
    raise last
channel = grpc.insecure_channel(f"{grpc_vip}:50051")
say = channel.unary_unary("/demo.Echo/Say")
fail = channel.unary_unary("/demo.Echo/Fail")
wait(lambda: say(b"warm-up", timeout=2))
ok = sum(say(b"x%d" % i, timeout=5) == b"echo:x%d" % i for i in range(calls))
try:
    fail(b"?", timeout=5)
except grpc.RpcError as e:
    print("FAIL", e.code().name, flush=True)
print("GRPC", ok, flush=True)
def echo_once(i):
    with socket.create_connection((tcp_vip, 9000), timeout=5) as s:
        s.sendall(b"n%d\n" % i)
        return s.makefile("rb").readline()
wait(lambda: echo_once(-1))
answers = sum(echo_once(i) == b"hello n%d\n" % i for i in range(conns))
print("TCP", answers, flush=True)
time.sleep(3600)
"""


def _deployment(name: str, code: str, port: int) -> dict[str, object]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": {"app": name}}, "template": {
                "metadata": {"labels": {"app": name, "version": "v1"}},
                "spec": {"containers": [{"name": name, "image": "python:3.11", "command": [sys.executable, "-c", code],
                                         "ports": [{"containerPort": port}],
                                         "readinessProbe": {"tcpSocket": {"port": port}, "periodSeconds": 1}}]}}}}


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, Kube, str]]:
    home = tmp_path_factory.mktemp("proto-home")
    (home / "config.yaml").write_text("scrape_interval: 0.5\n")
    d = start_daemon(home, network="netns")
    k = Kube(d)
    services = [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "grpc-echo"},
         "spec": {"selector": {"app": "grpc-echo"}, "ports": [{"name": "grpc", "port": 50051}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "tcp-echo"},
         "spec": {"selector": {"app": "tcp-echo"}, "ports": [{"name": "tcp", "port": 9000}]}},
    ]
    docs = [*services, _deployment("grpc-echo", GRPC_SERVER, 50051), _deployment("tcp-echo", TCP_SERVER, 9000)]
    k("apply", "-f", "-", input="\n---\n".join(json.dumps(o) for o in docs))
    k("wait", "--for=condition=Available", "deployment", "--all", "--timeout=90s")
    run = json.loads((home / "daemon.json").read_text())
    yield d, k, f"http://127.0.0.1:{run['metrics_port']}"
    stop_daemon(d)


def _value(prom: str, query: str) -> float:
    url = f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=10) as r:
        result = json.loads(r.read())["data"]["result"]
    return float(result[0]["value"][1]) if result else 0.0


def test_grpc_and_tcp_clients_are_captured_and_counted(mesh: tuple[Daemon, Kube, str]) -> None:
    _, k, prom = mesh
    grpc_vip = json.loads(k("get", "svc", "grpc-echo", "-o", "json"))["spec"]["clusterIP"]
    tcp_vip = json.loads(k("get", "svc", "tcp-echo", "-o", "json"))["spec"]["clusterIP"]
    client = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client", "labels": {"app": "client"}},
              "spec": {"containers": [{"name": "client", "image": "python:3.11", "command": [
                  sys.executable, "-c", CLIENT, grpc_vip, tcp_vip, str(CALLS), str(CONNECTIONS)]}]}}
    k("apply", "-f", "-", input=json.dumps(client))
    wait_for(lambda: "TCP " in k("logs", "client", "-c", "client", check=False), timeout=90)
    out = k("logs", "client", "-c", "client")
    assert f"GRPC {CALLS}" in out and "FAIL NOT_FOUND" in out and f"TCP {CONNECTIONS}" in out, out
    # The client's sidecar saw the calls (it is not bypassed), and both sides count them as gRPC.
    assert "outbound|50051||grpc-echo.default.svc.cluster.local" in k("logs", "client", "-c", "istio-proxy")
    base = 'source_workload="client",destination_workload="grpc-echo",request_protocol="grpc"'
    for reporter in ("source", "destination"):
        ok = f'sum(istio_requests_total{{reporter="{reporter}",{base},grpc_response_status="0"}})'
        wait_for(lambda ok=ok: _value(prom, ok) >= CALLS + 1, timeout=30)  # + the warm-up call
        failed = f'sum(istio_requests_total{{reporter="{reporter}",{base},grpc_response_status="5"}})'
        wait_for(lambda failed=failed: _value(prom, failed) == 1, timeout=30)
        tcp = f'reporter="{reporter}",source_workload="client",destination_workload="tcp-echo"'
        opened = f"sum(istio_tcp_connections_opened_total{{{tcp}}})"
        wait_for(lambda opened=opened: _value(prom, opened) >= CONNECTIONS + 1, timeout=30)
        closed = f"sum(istio_tcp_connections_closed_total{{{tcp}}})"
        wait_for(lambda closed=closed, opened=opened: _value(prom, closed) == _value(prom, opened), timeout=30)
        # Each connection sends "n<i>\n" and receives "hello n<i>\n": 6 more bytes back than sent.
        sent = _value(prom, f"sum(istio_tcp_sent_bytes_total{{{tcp}}})")
        received = _value(prom, f"sum(istio_tcp_received_bytes_total{{{tcp}}})")
        assert sent - received == 6 * (CONNECTIONS + 1), (reporter, sent, received)
