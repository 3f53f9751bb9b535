"""netns mode end to end with one real Envoy per test, inside a throw-away network namespace.

The namespace gets loopback, an `eth0` (one end of a veth pair, both inside) carrying the pod IPs (10.244.0.x, the test's "pods") and a
default route, so an app's connect() to a ClusterIP (10.96.x.y) has a route for nat OUTPUT to redirect. The
capture is istio-init's outbound rule in nftables: TCP from anything but gid 1337 (Envoy) and not to
127.0.0.0/8 → :15001. Envoy runs inside it with gid 1337 (`sluice.runtime.enter`), bootstrapped by
`proxy_bootstrap(network="netns")`, fed over a Unix socket by the real `XdsServer` + translation. The apps
(HTTP backends, a TCP echo, the client) are sockets this process makes inside the namespace
(`sluice.runtime.netns.dial`), so they are captured like any app. Each namespace is deleted afterwards,
which also removes its links and nft table.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from sluice import mesh
from sluice.runtime.netns.dial import open_connection, socket_in
from sluice.store.sqlite import Store
from sluice.telemetry import Collector
from sluice.xds.bootstrap import proxy_bootstrap
from sluice.xds.envoy import envoy_command
from sluice.xds.server import XdsServer
from sluice.xds.translate import MeshOptions
from tests.conftest import free_port

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("nft"),
    reason="needs root with `ip` and `nft` to make a network namespace")

NS = "netnstest"
TIMEOUT = 30.0
ALS_SOCKET = "xds-0.sock"  # the first server's socket (see `xds_for`): ALS is served beside ADS
CLIENT_IP, V2_IP, V3_IP, DB_IP, GW_IP = "10.244.0.5", "10.244.0.6", "10.244.0.7", "10.244.0.8", "10.244.0.9"
REVIEWS_VIP, DB_VIP = "10.96.0.13", "10.96.0.20"
ENVOY_GID = 1337
# istio-init's outbound capture (REDIRECT mode), the part this test needs.
CAPTURE_RULES = f"""
table inet sluice-test-capture {{
  chain output {{
    type nat hook output priority -100; policy accept;
    meta skgid {ENVOY_GID} return
    ip daddr 127.0.0.0/8 return
    meta l4proto tcp redirect to :15001
  }}
}}
"""


# istio-init's whole REDIRECT-mode rule set (reference: istio_capture_and_listeners.md §1.3/§1.8), for pods
# that talk to each other over a veth: inbound TCP → 15006 (but Istio's own ports), outbound → 15001.
ISTIO_RULES = f"""
table inet sluice-test-capture {{
  chain prerouting {{
    type nat hook prerouting priority -100; policy accept;
    tcp dport {{ 15008, 15090, 15021, 15020 }} return
    meta l4proto tcp redirect to :15006
  }}
  chain output {{
    type nat hook output priority -100; policy accept;
    oifname "lo" ip saddr 127.0.0.6 return
    oifname "lo" meta l4proto tcp ip daddr != 127.0.0.1 tcp dport != 15008 meta skgid {ENVOY_GID} redirect to :15006
    oifname "lo" meta skgid != {ENVOY_GID} return
    meta skgid {ENVOY_GID} return
    ip daddr 127.0.0.1 return
    meta l4proto tcp redirect to :15001
  }}
}}
"""


def _run(*argv: str, stdin: str | None = None) -> None:
    subprocess.run(argv, input=stdin, text=True, check=True, capture_output=True, timeout=30)


class Netns:
    """A network namespace with lo up and, optionally, nft capture rules; deleted by `close()`."""

    def __init__(self, capture: str | None = None) -> None:
        self.name = f"sluice-xt-{os.getpid()}-{random.randint(0, 1 << 30)}"
        self.path = f"/run/netns/{self.name}"
        _run("ip", "netns", "add", self.name)
        try:
            _run("ip", "-n", self.name, "link", "set", "lo", "up")
            if capture:
                _run("ip", "netns", "exec", self.name, "nft", "-f", "-", stdin=capture)
        except BaseException:
            self.close()
            raise

    def _eth0(self, ips: list[str]) -> None:
        for ip in ips:
            _run("ip", "-n", self.name, "addr", "add", f"{ip}/16", "dev", "eth0")
        _run("ip", "-n", self.name, "link", "set", "eth0", "up")
        _run("ip", "-n", self.name, "route", "add", "default", "dev", "eth0")

    def link(self, ips: list[str], peer: Netns | None = None, peer_ips: list[str] | None = None) -> Netns:
        """An eth0 holding `ips` and a default route; its veth peer is `peer`'s eth0 (holding `peer_ips`), or,
        without a peer, stays inside (there is no dummy module here)."""
        if peer is None:
            _run("ip", "-n", self.name, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0peer")
            _run("ip", "-n", self.name, "link", "set", "eth0peer", "up")
        else:
            _run("ip", "link", "add", "name", "eth0", "netns", self.name, "type", "veth",
                 "peer", "name", "eth0", "netns", peer.name)
            peer._eth0(peer_ips or [])
        self._eth0(ips)
        return self

    def close(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=30)


def _obj(kind: str, name: str, labels: dict[str, str] | None = None, **rest: Any) -> dict[str, Any]:
    api = {"VirtualService": "networking.istio.io/v1", "DestinationRule": "networking.istio.io/v1",
           "Gateway": "networking.istio.io/v1"}.get(kind, "v1")
    meta: dict[str, Any] = {"name": name} if kind == "Namespace" else {"name": name, "namespace": NS}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": api, "kind": kind, "metadata": meta, **rest}


def _pod(name: str, ip: str, labels: dict[str, str], args: list[str] | None = None) -> dict[str, Any]:
    pod = _obj("Pod", name, labels, spec={"containers": [
        {"name": "app", "image": "app", "ports": [{"containerPort": 9080}]},
        {"name": mesh.SIDECAR_CONTAINER, "image": mesh.PROXY_IMAGE, "args": args or ["proxy", "sidecar"]}]},
        status={"phase": "Running", "podIP": ip})
    # the clusters' stats these tests read, which Istio's inclusion list leaves out unless a pod asks for them
    pod["metadata"]["annotations"] = {"sidecar.istio.io/statsInclusionPrefixes": "cluster."}
    return pod


def _service(name: str, vip: str, port: int, port_name: str) -> dict[str, Any]:
    return _obj("Service", name, spec={"clusterIP": vip, "selector": {"app": name},
                                       "ports": [{"name": port_name, "port": port, "targetPort": port}]})


def _endpoints(name: str, port: int, *pods: tuple[str, str]) -> dict[str, Any]:
    return _obj("Endpoints", name, subsets=[{
        "addresses": [{"ip": ip, "targetRef": {"kind": "Pod", "namespace": NS, "name": pod}} for pod, ip in pods],
        "ports": [{"name": "p", "port": port}]}])


def _reviews_vs(v2: int, v3: int) -> dict[str, Any]:
    return _obj("VirtualService", "reviews", spec={"hosts": ["reviews"], "http": [{"route": [
        {"destination": {"host": "reviews", "subset": "v2"}, "weight": v2},
        {"destination": {"host": "reviews", "subset": "v3"}, "weight": v3}]}]})


class Envoy:
    """One Envoy in `netns` with gid 1337, bootstrapped for netns mode."""

    def __init__(self, tmp: Path, netns: Netns, pod: dict[str, Any], xds_socket: str, router: bool = False) -> None:
        ip = pod["status"]["podIP"]
        name = pod["metadata"]["name"]
        node_id = (mesh.router_node_id if router else mesh.sidecar_node_id)(ip, name, NS)
        boot = proxy_bootstrap(node_id=node_id, pod=pod, pod_ip=ip, xds_address=xds_socket,
                               cluster=f"{name}.{NS}", network="netns")
        path = tmp / f"{name}.json"
        path.write_text(json.dumps(boot))
        self.netns = netns
        self.log_path = tmp / f"{name}.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        argv = [sys.executable, "-m", "sluice.runtime.enter", "--netns", netns.path, "--gid", str(ENVOY_GID),
                "--", *envoy_command(path)]
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    async def admin(self, path: str, port: int = mesh.PROXY_ADMIN_PORT) -> tuple[int, str]:
        """GET on 127.0.0.1:<port> inside the pod's namespace (admin, or the 15021/15090 listeners)."""
        return await http_get(self.netns, "127.0.0.1", port, path, host="localhost")

    async def stat(self, name: str) -> int:
        _, body = await self.admin(f"/stats?filter=^{name}$")
        for line in body.splitlines():
            key, _, value = line.partition(": ")
            if key == name:
                return int(value)
        return 0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


async def http_get(netns: Netns | None, ip: str, port: int, path: str = "/", *, host: str) -> tuple[int, str]:
    """A plain HTTP/1.1 GET from a socket made inside `netns` (so, for an app address, a captured one)."""
    reader, writer = await open_connection(netns.path if netns else None, ip, port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), TIMEOUT)
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in head.lower():
        body = _dechunk(body)
    return int(head.split(b" ", 2)[1]), body.decode(errors="replace")


def _dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size, _, rest = data.partition(b"\r\n")
        n = int(size.split(b";")[0], 16)
        if n == 0:
            break
        out, data = out + rest[:n], rest[n + 2:]
    return out


async def _until(pred: Any, what: str, timeout: float = TIMEOUT) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Any = None
    while loop.time() < deadline:
        try:
            last = await pred()
            if last:
                return last
        except (TimeoutError, OSError, IndexError, ValueError) as e:
            last = e
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what}: not met in {timeout}s (last: {last!r})")


async def _serve_http(netns: Netns, ip: str, port: int, answer: str) -> web.AppRunner:
    async def handle(request: web.Request) -> web.Response:
        return web.Response(text=answer)

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    sock = socket_in(netns.path)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((ip, port))
    await web.SockSite(runner, sock).start()
    return runner


async def _serve_echo(netns: Netns, ip: str, port: int) -> asyncio.Server:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read(1024)
        writer.write(data)
        await writer.drain()
        writer.close()

    sock = socket_in(netns.path)
    sock.bind((ip, port))
    return await asyncio.start_server(echo, sock=sock)


@pytest.fixture
def sockdir() -> Iterator[str]:
    # Unix socket paths are limited to 108 bytes: keep it short.
    path = tempfile.mkdtemp(prefix="sx-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def xds_for(sockdir: str) -> AsyncIterator[Any]:
    servers: list[XdsServer] = []

    async def start(store: Store, options: MeshOptions, collector: Collector | None = None) -> str:
        path = f"{sockdir}/xds-{len(servers)}.sock"
        xds = XdsServer(store, address=("127.0.0.1", 0), options=options, debounce=0.05)
        # The sidecar reaches ADS (and ALS) over a Unix socket, as in netns mode; the TCP port stays unused.
        xds.add_servicer(lambda s: s.add_insecure_port(f"unix:{path}"))
        if collector is not None:
            xds.add_servicer(collector.register)
        await xds.start()
        servers.append(xds)
        return path

    yield start
    for xds in servers:
        await xds.stop()


async def test_captured_request_to_a_cluster_ip_follows_the_virtual_service(
        tmp_path: Path, xds_for: Any) -> None:
    netns = Netns(CAPTURE_RULES)
    store = Store(tmp_path / "store.db")
    runners: list[web.AppRunner] = []
    echo: asyncio.Server | None = None
    envoy: Envoy | None = None
    try:
        netns.link([CLIENT_IP, V2_IP, V3_IP, DB_IP])
        store.create("namespaces", _obj("Namespace", NS))
        sleep = _pod("sleep-1", CLIENT_IP, {"app": "sleep"})
        for obj in (sleep, _pod("reviews-v2-1", V2_IP, {"app": "reviews", "version": "v2"}),
                    _pod("reviews-v3-1", V3_IP, {"app": "reviews", "version": "v3"}),
                    _pod("mysql-1", DB_IP, {"app": "mysql"})):
            store.create("pods", obj)
        store.create("services", _service("reviews", REVIEWS_VIP, 9080, "http"))
        store.create("endpoints", _endpoints("reviews", 9080, ("reviews-v2-1", V2_IP), ("reviews-v3-1", V3_IP)))
        store.create("services", _service("mysql", DB_VIP, 3306, "tcp"))
        store.create("endpoints", _endpoints("mysql", 3306, ("mysql-1", DB_IP)))
        store.create("destinationrules.networking.istio.io", _obj("DestinationRule", "reviews", spec={
            "host": "reviews", "subsets": [{"name": "v2", "labels": {"version": "v2"}},
                                           {"name": "v3", "labels": {"version": "v3"}}]}))
        store.create("virtualservices.networking.istio.io", _reviews_vs(100, 0))
        runners = [await _serve_http(netns, V2_IP, 9080, "reviews-v2"),
                   await _serve_http(netns, V3_IP, 9080, "reviews-v3")]
        echo = await _serve_echo(netns, DB_IP, 3306)

        sock = await xds_for(store, MeshOptions(network="netns"))
        envoy = Envoy(tmp_path, netns, sleep, sock)

        # Envoy is up and configured: Istio's readiness and Prometheus listeners answer.
        assert await _until(lambda: _ok(envoy.admin("/healthz/ready", 15021)), "15021 /healthz/ready"), \
            envoy.log_path.read_text()
        status, body = await envoy.admin("/stats/prometheus", 15090)
        assert status == 200 and "envoy_server_live" in body
        _, dump = await envoy.admin("/config_dump?resource=dynamic_listeners")
        names = {item["name"] for item in json.loads(dump)["configs"]}
        assert {"virtualOutbound", "virtualInbound", "0.0.0.0_9080", f"{DB_VIP}_3306"} <= names, names

        # The app calls the ClusterIP; capture hands it to Envoy, the 100/0 VirtualService picks v2.
        async def answers(want: str, host: str) -> bool:
            got = [await http_get(netns, REVIEWS_VIP, 9080, host=host) for _ in range(10)]
            return all(g == (200, want) for g in got)

        assert await _until(lambda: answers("reviews-v2", "reviews:9080"), "all requests to v2")
        assert await answers("reviews-v2", f"{REVIEWS_VIP}:9080")  # the ClusterIP as Host works too
        assert await envoy.stat("cluster.outbound|9080|v2|reviews.netnstest.svc.cluster.local.upstream_rq_200") >= 20

        # Flip the weights: the same captured requests now reach v3.
        vs = store.get("virtualservices.networking.istio.io", NS, "reviews") or {}
        vs["spec"] = _reviews_vs(0, 100)["spec"]
        store.update("virtualservices.networking.istio.io", vs)
        assert await _until(lambda: answers("reviews-v3", "reviews"), "all requests to v3")

        # A TCP service: the per-VIP listener proxies it to outbound|3306||mysql...
        reader, writer = await open_connection(netns.path, DB_VIP, 3306)
        writer.write(b"ping")
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), TIMEOUT) == b"ping"
        writer.close()
        assert await _until(lambda: envoy.stat("cluster.outbound|3306||mysql.netnstest.svc.cluster.local."
                                               "upstream_cx_total"), "the TCP proxy's upstream connection")

        # An address no listener claims (a pod IP) passes through to where the app aimed.
        before = await envoy.stat("cluster.PassthroughCluster.upstream_cx_total")
        assert await http_get(netns, V2_IP, 9080, host="whatever") == (200, "reviews-v2")
        assert await envoy.stat("cluster.PassthroughCluster.upstream_cx_total") == before + 1
    finally:
        if envoy is not None:
            envoy.stop()
        for runner in runners:
            await runner.cleanup()
        if echo is not None:
            echo.close()
        store.close()
        netns.close()
    assert not Path(netns.path).exists()


async def _ok(call: Any) -> bool:
    status, _ = await call
    return bool(status == 200)


async def test_gateway_listens_in_the_host_namespace(tmp_path: Path, xds_for: Any) -> None:
    """A gateway's Envoy runs in its own pod namespace and listens there; `host_netns` opens the same listeners
    in the host's."""
    netns = Netns()
    store = Store(tmp_path / "store.db")
    port = free_port()
    envoy: Envoy | None = None
    runner: web.AppRunner | None = None
    try:
        netns.link([GW_IP, V2_IP])
        store.create("namespaces", _obj("Namespace", NS))
        gw = _pod("istio-ingressgateway-1", GW_IP, {"istio": "ingressgateway"}, ["proxy", "router"])
        store.create("pods", gw)
        store.create("pods", _pod("productpage-1", V2_IP, {"app": "productpage"}))
        store.create("services", _service("productpage", "10.96.0.14", 9080, "http"))
        store.create("endpoints", _endpoints("productpage", 9080, ("productpage-1", V2_IP)))
        store.create("gateways.networking.istio.io", _obj("Gateway", "gw", spec={
            "selector": {"istio": "ingressgateway"},
            "servers": [{"port": {"number": port, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}]}))
        store.create("virtualservices.networking.istio.io", _obj("VirtualService", "pp", spec={
            "hosts": ["*"], "gateways": ["gw"], "http": [{"route": [{"destination": {"host": "productpage"}}]}]}))
        runner = await _serve_http(netns, V2_IP, 9080, "productpage")
        # This test process stands for the host: its namespace is where the listener must appear.
        sock = await xds_for(store, MeshOptions(network="netns", host_netns=f"/proc/{os.getpid()}/ns/net"))
        envoy = Envoy(tmp_path, netns, gw, sock, router=True)

        assert await _until(lambda: http_get(None, "127.0.0.1", port, "/productpage", host="bookinfo"),
                            "the gateway on the host's 127.0.0.1") == (200, "productpage"), envoy.log_path.read_text()
        # ...and in its own pod, at its pod IP, where pods reach it through its Service (as on Kubernetes)
        assert await http_get(netns, GW_IP, port, "/productpage", host="bookinfo") == (200, "productpage")
    finally:
        if envoy is not None:
            envoy.stop()
        if runner is not None:
            await runner.cleanup()
        store.close()
        netns.close()


# A gRPC echo (no protos: the method takes and returns raw bytes) and a client making N calls; each runs as
# its own process inside a pod's namespace (gRPC makes its sockets on its own threads).
GRPC_SERVER = """
import sys, time, grpc
from concurrent import futures
server = grpc.server(futures.ThreadPoolExecutor(2))
server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
    "echo.Echo", {"Say": grpc.unary_unary_rpc_method_handler(lambda req, ctx: req)}),))
server.add_insecure_port(sys.argv[1])
server.start()
server.wait_for_termination()
"""
GRPC_CLIENT = """
import sys, grpc
with grpc.insecure_channel(sys.argv[1]) as ch:
    say = ch.unary_unary("/echo.Echo/Say")
    print(",".join(say(b"hi-%d" % i, timeout=10).decode() for i in range(int(sys.argv[2]))))
"""


async def _listening(netns: Netns, ip: str, port: int) -> bool:
    _, writer = await open_connection(netns.path, ip, port)
    writer.close()
    return True


def _in_netns(netns: Netns, *program: str) -> list[str]:
    return [sys.executable, "-m", "sluice.runtime.enter", "--netns", netns.path, "--", *program]


def _series(collector: Collector, name: str, reporter: str) -> dict[tuple[str, str], float]:
    """(source_workload, destination_workload) → value of one Istio metric for one reporter."""
    out: dict[tuple[str, str], float] = {}
    for labels, value in collector.registry.samples():
        d = dict(labels)
        if d["__name__"] == name and d["reporter"] == reporter:
            key = (d["source_workload"], d["destination_workload"])
            out[key] = out.get(key, 0) + value
    return out


async def test_two_captured_pods_report_both_sides(tmp_path: Path, sockdir: str, xds_for: Any) -> None:
    """Two pods, each in its own namespace with istio-init's full rules, joined by a veth. The client's
    requests to a ClusterIP are counted once per reporter by the real collector, fed over the Unix socket:
    outbound by the client's sidecar (`source`), inbound through virtualInbound by the server's
    (`destination`, the caller's pod IP resolved to its workload), for HTTP, gRPC and TCP alike."""
    client_ns, server_ns = Netns(ISTIO_RULES), Netns(ISTIO_RULES)
    store = Store(tmp_path / "store.db")
    collector = Collector(store)
    envoys: list[Envoy] = []
    runner: web.AppRunner | None = None
    echo: asyncio.Server | None = None
    grpc_server: subprocess.Popen[bytes] | None = None
    n = 7
    try:
        client_ns.link([CLIENT_IP], server_ns, [V2_IP])
        store.create("namespaces", _obj("Namespace", NS))
        client = _pod("productpage-1", CLIENT_IP, {"app": "productpage", "version": "v1"})
        server = _pod("reviews-1", V2_IP, {"app": "reviews", "version": "v2"})
        store.create("pods", client)
        store.create("pods", server)
        store.create("services", _service("reviews", REVIEWS_VIP, 9080, "http"))
        store.create("endpoints", _endpoints("reviews", 9080, ("reviews-1", V2_IP)))
        store.create("services", _obj("Service", "db", spec={"clusterIP": DB_VIP, "selector": {"app": "reviews"},
                                                              "ports": [{"name": "tcp", "port": 3306}]}))
        store.create("endpoints", _endpoints("db", 3306, ("reviews-1", V2_IP)))
        store.create("services", _obj("Service", "echo", spec={"clusterIP": "10.96.0.21", "selector": {"app": "reviews"},
                                                                "ports": [{"name": "grpc", "port": 7070}]}))
        store.create("endpoints", _endpoints("echo", 7070, ("reviews-1", V2_IP)))
        # The app listens on its pod IP; its sidecar's inbound side reaches it from 127.0.0.6.
        runner = await _serve_http(server_ns, V2_IP, 9080, "reviews")
        echo = await _serve_echo(server_ns, V2_IP, 3306)
        grpc_server = subprocess.Popen(_in_netns(server_ns, sys.executable, "-c", GRPC_SERVER, f"{V2_IP}:7070"))
        await collector.start()
        sock = await xds_for(store, MeshOptions(network="netns", als_address=f"{sockdir}/{ALS_SOCKET}"), collector)
        envoys = [Envoy(tmp_path, client_ns, client, sock), Envoy(tmp_path, server_ns, server, sock)]
        for envoy in envoys:
            assert await _until(lambda e=envoy: _ok(e.admin("/healthz/ready", 15021)), "ready"), \
                envoy.log_path.read_text()

        assert await _until(lambda: http_get(client_ns, REVIEWS_VIP, 9080, host="reviews"),
                            "the first request") == (200, "reviews")
        for _ in range(n - 1):
            assert await http_get(client_ns, REVIEWS_VIP, 9080, host="reviews:9080") == (200, "reviews")
        reader, writer = await open_connection(client_ns.path, DB_VIP, 3306)
        writer.write(b"ping")
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), TIMEOUT) == b"ping"
        writer.close()

        # gRPC over the declared `grpc` port: h2c sniffed on 0.0.0.0_7070, HTTP/2 to the server's sidecar.
        # (An app calling its own pod IP is not captured: this waits for the server itself.)
        assert await _until(lambda: _listening(server_ns, V2_IP, 7070), "the gRPC server")
        calls = await asyncio.to_thread(subprocess.run, _in_netns(
            client_ns, sys.executable, "-c", GRPC_CLIENT, "10.96.0.21:7070", "3"),
            capture_output=True, text=True, timeout=TIMEOUT)
        assert calls.stdout.strip() == "hi-0,hi-1,hi-2", calls.stderr[-3000:]

        pair = ("productpage-1", "reviews-1")
        want = {"source": {pair: n + 3}, "destination": {pair: n + 3}}

        async def counted() -> bool:
            return {r: _series(collector, "istio_requests_total", r) for r in want} == want

        assert await _until(counted, f"{n} requests in each reporter"), \
            {r: _series(collector, "istio_requests_total", r) for r in want}

        async def tcp_counted() -> bool:
            return all(_series(collector, "istio_tcp_connections_opened_total", r) == {pair: 1} for r in want)

        assert await _until(tcp_counted, "one TCP connection in each reporter"), \
            {r: _series(collector, "istio_tcp_connections_opened_total", r) for r in want}
        grpc_ok = [dict(lbl) for lbl, v in collector.registry.samples()
                   if dict(lbl)["__name__"] == "istio_requests_total" and dict(lbl)["request_protocol"] == "grpc"]
        assert sorted((d["reporter"], d["grpc_response_status"], d["destination_service_name"]) for d in grpc_ok) == [
            ("destination", "0", "echo"), ("source", "0", "echo")], grpc_ok
        # the server's sidecar handled them on virtualInbound's chain for the port, not the passthrough
        assert await envoys[1].stat("cluster.inbound|9080||.upstream_rq_200") == n
        assert await envoys[1].stat("cluster.InboundPassthroughCluster.upstream_cx_total") == 0
    finally:
        for envoy in envoys:
            envoy.stop()
        if grpc_server is not None:
            grpc_server.kill()
            grpc_server.wait()
        if runner is not None:
            await runner.cleanup()
        if echo is not None:
            echo.close()
        await collector.stop()
        store.close()
        client_ns.close()
        server_ns.close()
