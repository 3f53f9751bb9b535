"""TCP and TLS traffic management with real Envoys in throw-away network namespaces (the harness of
test_xds_netns_envoy): a sidecar routing TLS by SNI without terminating it, a sidecar originating TLS
(SIMPLE, MUTUAL) for a plaintext client as a DestinationRule says, and a gateway's TCP server splitting
connections between subsets by a VirtualService's weights, counted by the real collector with Istio's labels.

TLS material is made with `openssl` as Istio's tasks make it; the TLS servers are sockets this process makes
inside the namespace.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from sluice.runtime.netns.dial import connect, open_connection, socket_in
from sluice.samples.tcpecho import handle as tcp_echo
from sluice.store.sqlite import Store
from sluice.telemetry import Collector
from sluice.xds.translate import MeshOptions
from tests.conftest import free_port
from tests.integration.xds.test_xds_netns_envoy import (  # noqa: F401  (sockdir, xds_for: fixtures)
    ALS_SOCKET,
    CAPTURE_RULES,
    CLIENT_IP,
    DB_IP,
    GW_IP,
    NS,
    TIMEOUT,
    V2_IP,
    V3_IP,
    Envoy,
    Netns,
    _endpoints,
    _obj,
    _ok,
    _pod,
    _service,
    _until,
    pytestmark,
    sockdir,
    xds_for,
)

SECURE_VIP, DB_VIP, DB_MTLS_VIP, ECHO_VIP = "10.96.0.32", "10.96.0.34", "10.96.0.36", "10.96.0.30"
SERVER_NAMES = ("a.secure.example", "b.secure.example", "db.example")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certs(d: Path) -> Path:
    """A CA, a server certificate for SERVER_NAMES and a client certificate (CN=sleep), as the tasks' openssl."""
    _openssl("req", "-x509", "-sha256", "-nodes", "-days", "1", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-subj", "/O=example Inc./CN=example.com", "-keyout", "ca.key",
             "-out", "ca.crt", cwd=d)
    (d / "san.ext").write_text("subjectAltName=" + ",".join(f"DNS:{n}" for n in SERVER_NAMES) + "\n")
    for name, cn, ext in (("server", "db.example", ["-extfile", "san.ext"]), ("client", "sleep", [])):
        _openssl("req", "-out", f"{name}.csr", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                 "-nodes", "-keyout", f"{name}.key", "-subj", f"/CN={cn}/O=example organization", cwd=d)
        _openssl("x509", "-req", "-sha256", "-days", "1", "-CA", "ca.crt", "-CAkey", "ca.key", "-set_serial",
                 str(int(time.time() * 1000)), "-in", f"{name}.csr", "-out", f"{name}.crt", *ext, cwd=d)
    for f in d.iterdir():
        f.chmod(0o644)  # Envoy reads them (as gid 1337)
    return d


async def serve_tls(netns: Netns, ip: str, port: int, name: str, certs: Path,
                    require_client: bool = False) -> asyncio.Server:
    """Answers each line with `<name> <SNI the client sent> <client certificate CN or -> <line>`."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certs / "server.crt", certs / "server.key")
    if require_client:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(certs / "ca.crt")
    snis: dict[int, str] = {}
    ctx.sni_callback = lambda obj, sni, _ctx: snis.__setitem__(id(obj), sni or "-")  # type: ignore[assignment,func-returns-value]

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ssl_obj = writer.get_extra_info("ssl_object")
        peer = writer.get_extra_info("peercert") or {}
        cn = next((v for rdn in peer.get("subject", ()) for k, v in rdn if k == "commonName"), "-")
        try:
            line = await reader.readline()
            writer.write(f"{name} {snis.get(id(ssl_obj), '-')} {cn} ".encode() + line)
            await writer.drain()
        finally:
            writer.close()

    sock = socket_in(netns.path)
    sock.bind((ip, port))
    return await asyncio.start_server(answer, sock=sock, ssl=ctx)


async def tls_call(netns: Netns, ip: str, port: int, sni: str, certs: Path) -> str:
    """A TLS client inside `netns` (so captured), verifying the server end to end: a terminated and re-opened
    connection would fail here."""
    ctx = ssl.create_default_context(cafile=str(certs / "ca.crt"))
    sock = await connect(netns.path, ip, port)
    reader, writer = await asyncio.open_connection(sock=sock, ssl=ctx, server_hostname=sni)
    try:
        writer.write(b"hi\n")
        await writer.drain()
        return (await asyncio.wait_for(reader.readline(), TIMEOUT)).decode()
    finally:
        writer.close()


async def line_call(netns: Netns | None, ip: str, port: int, line: str = "hi") -> str:
    reader, writer = await open_connection(netns.path if netns else None, ip, port)
    try:
        writer.write(line.encode() + b"\n")
        await writer.drain()
        return (await asyncio.wait_for(reader.readline(), TIMEOUT)).decode()
    finally:
        writer.close()


async def test_sidecar_routes_tls_by_sni_and_originates_tls(tmp_path: Path, xds_for: Any) -> None:  # noqa: F811
    (tmp_path / "certs").mkdir()
    certs = make_certs(tmp_path / "certs")
    netns = Netns(CAPTURE_RULES)
    store = Store(tmp_path / "store.db")
    servers: list[asyncio.Server] = []
    envoy: Envoy | None = None
    try:
        netns.link([CLIENT_IP, V2_IP, V3_IP, DB_IP])
        store.create("namespaces", _obj("Namespace", NS))
        sleep = _pod("sleep-1", CLIENT_IP, {"app": "sleep"})
        for obj in (sleep, _pod("secure-v1", V2_IP, {"app": "secure", "version": "v1"}),
                    _pod("secure-v2", V3_IP, {"app": "secure", "version": "v2"}), _pod("db-1", DB_IP, {"app": "db"})):
            store.create("pods", obj)
        store.create("services", _service("secure", SECURE_VIP, 443, "https"))
        store.create("endpoints", _endpoints("secure", 443, ("secure-v1", V2_IP), ("secure-v2", V3_IP)))
        store.create("destinationrules.networking.istio.io", _obj("DestinationRule", "secure", spec={
            "host": "secure", "subsets": [{"name": "v1", "labels": {"version": "v1"}},
                                          {"name": "v2", "labels": {"version": "v2"}}]}))
        store.create("virtualservices.networking.istio.io", _obj("VirtualService", "secure", spec={
            "hosts": ["secure", "*.secure.example"], "tls": [
                {"match": [{"port": 443, "sniHosts": ["a.secure.example"]}],
                 "route": [{"destination": {"host": "secure", "subset": "v1"}}]},
                {"match": [{"port": 443, "sniHosts": ["b.secure.example"]}],
                 "route": [{"destination": {"host": "secure", "subset": "v2"}}]}]}))
        # TLS origination: the app speaks plaintext to db:5432 / db-mtls:5433, the sidecar speaks TLS to the pod.
        store.create("services", _service("db", DB_VIP, 5432, "tcp-db"))
        store.create("endpoints", _endpoints("db", 5432, ("db-1", DB_IP)))
        store.create("services", _service("db-mtls", DB_MTLS_VIP, 5433, "tcp-db"))
        store.create("endpoints", _endpoints("db-mtls", 5433, ("db-1", DB_IP)))
        store.create("destinationrules.networking.istio.io", _obj("DestinationRule", "db", spec={
            "host": "db", "trafficPolicy": {"tls": {"mode": "SIMPLE", "sni": "db.example",
                                                    "caCertificates": str(certs / "ca.crt")}}}))
        store.create("destinationrules.networking.istio.io", _obj("DestinationRule", "db-mtls", spec={
            "host": "db-mtls", "trafficPolicy": {"tls": {
                "mode": "MUTUAL", "sni": "db.example", "caCertificates": str(certs / "ca.crt"),
                "clientCertificate": str(certs / "client.crt"), "privateKey": str(certs / "client.key")}}}))
        servers = [await serve_tls(netns, V2_IP, 443, "secure-v1", certs),
                   await serve_tls(netns, V3_IP, 443, "secure-v2", certs),
                   await serve_tls(netns, DB_IP, 5432, "db", certs),
                   await serve_tls(netns, DB_IP, 5433, "db-mtls", certs, require_client=True)]
        sock = await xds_for(store, MeshOptions(network="netns"))
        envoy = Envoy(tmp_path, netns, sleep, sock)
        assert await _until(lambda: _ok(envoy.admin("/healthz/ready", 15021)), "ready"), envoy.log_path.read_text()

        # SNI picks the subset; the client still verifies the pod's own certificate (passthrough, not terminated)
        assert await _until(lambda: tls_call(netns, SECURE_VIP, 443, "a.secure.example", certs),
                            "TLS by SNI") == "secure-v1 a.secure.example - hi\n", envoy.log_path.read_text()
        assert await tls_call(netns, SECURE_VIP, 443, "b.secure.example", certs) == "secure-v2 b.secure.example - hi\n"
        assert await envoy.stat("cluster.outbound|443|v2|secure.netnstest.svc.cluster.local.upstream_cx_total") == 1
        # origination: SIMPLE sends the DestinationRule's SNI and verifies the server against caCertificates...
        assert await line_call(netns, DB_VIP, 5432) == "db db.example - hi\n"
        # ...and MUTUAL presents the client certificate the server requires
        assert await line_call(netns, DB_MTLS_VIP, 5433) == "db-mtls db.example sleep hi\n", envoy.log_path.read_text()
    finally:
        if envoy is not None:
            envoy.stop()
        for s in servers:
            s.close()
        store.close()
        netns.close()


def _tcp_opened(collector: Collector) -> dict[tuple[str, str, str], float]:
    """(source_workload, destination_version, destination_service_name) → connections opened, source reporter."""
    out: dict[tuple[str, str, str], float] = {}
    for labels, value in collector.registry.samples():
        d = dict(labels)
        if d["__name__"] == "istio_tcp_connections_opened_total" and d["reporter"] == "source":
            key = (d["source_workload"], d["destination_version"], d["destination_service_name"])
            out[key] = out.get(key, 0) + value
    return out


def _tcp_vs(port: int, v1: int, v2: int) -> dict[str, Any]:
    route = [{"destination": {"host": "tcp-echo", "port": {"number": 9000}, "subset": s}, "weight": w}
             for s, w in (("v1", v1), ("v2", v2)) if w]
    return _obj("VirtualService", "tcp-echo", spec={"hosts": ["*"], "gateways": ["tcp-echo-gateway"],
                                                     "tcp": [{"match": [{"port": port}], "route": route}]})


async def test_gateway_tcp_server_shifts_connections_and_reports_istio_tcp_metrics(
        tmp_path: Path, sockdir: str, xds_for: Any) -> None:  # noqa: F811
    netns = Netns()
    store = Store(tmp_path / "store.db")
    collector = Collector(store)
    port = free_port()
    servers: list[asyncio.Server] = []
    envoy: Envoy | None = None
    try:
        netns.link([GW_IP, V2_IP, V3_IP])
        store.create("namespaces", _obj("Namespace", NS))
        gw = _pod("istio-ingressgateway-1", GW_IP, {"istio": "ingressgateway"}, ["proxy", "router"])
        for obj in (gw, _pod("tcp-echo-v1", V2_IP, {"app": "tcp-echo", "version": "v1"}),
                    _pod("tcp-echo-v2", V3_IP, {"app": "tcp-echo", "version": "v2"})):
            store.create("pods", obj)
        store.create("services", _service("tcp-echo", ECHO_VIP, 9000, "tcp"))
        store.create("endpoints", _endpoints("tcp-echo", 9000, ("tcp-echo-v1", V2_IP), ("tcp-echo-v2", V3_IP)))
        store.create("destinationrules.networking.istio.io", _obj("DestinationRule", "tcp-echo-destination", spec={
            "host": "tcp-echo", "subsets": [{"name": "v1", "labels": {"version": "v1"}},
                                            {"name": "v2", "labels": {"version": "v2"}}]}))
        store.create("gateways.networking.istio.io", _obj("Gateway", "tcp-echo-gateway", spec={
            "selector": {"istio": "ingressgateway"},
            "servers": [{"port": {"number": port, "name": "tcp", "protocol": "TCP"}, "hosts": ["*"]}]}))
        store.create("virtualservices.networking.istio.io", _tcp_vs(port, 100, 0))
        for ip, prefix in ((V2_IP, "one"), (V3_IP, "two")):
            sock = socket_in(netns.path)
            sock.bind((ip, 9000))
            servers.append(await asyncio.start_server(lambda r, w, p=prefix: tcp_echo(p, r, w), sock=sock))
        await collector.start()
        xds = await xds_for(store, MeshOptions(network="netns", als_address=f"{sockdir}/{ALS_SOCKET}",
                                               host_netns=f"/proc/{os.getpid()}/ns/net"), collector)
        envoy = Envoy(tmp_path, netns, gw, xds, router=True)

        replies: list[str] = []  # every reply through the gateway, to compare with the metrics

        async def call(line: str) -> str:
            reply = await line_call(None, "127.0.0.1", port, line)
            replies.append(reply)
            return reply

        # all to v1 (tcp-echo-all-v1.yaml), through the listener the gateway opened on the host's 127.0.0.1
        first = await _until(lambda: call("hello"), "the gateway's TCP listener")
        assert first == "one hello\n", envoy.log_path.read_text()
        assert {await call("hello") for _ in range(19)} == {"one hello\n"}

        # 80/20 (tcp-echo-20-v2.yaml): once a "two" shows the new weights are in, n fresh connections split
        vs = store.get("virtualservices.networking.istio.io", NS, "tcp-echo") or {}
        vs["spec"] = _tcp_vs(port, 80, 20)["spec"]
        store.update("virtualservices.networking.istio.io", vs)
        assert await _until(lambda: _is(call("x"), "two x\n"), "a v2 reply")
        n = 200
        got = [await call("x") for _ in range(n)]
        assert set(got) <= {"one x\n", "two x\n"}
        twos = got.count("two x\n")
        # binomial(200, 0.2): mean 40, sd ≈ 5.7; ±4 sd is a 1-in-15000 flake
        assert 17 <= twos <= 63, twos

        # istio_tcp_connections_opened_total, reporter="source" (the gateway): one per connection, labelled
        # with the version of the pod each went to
        want = {("istio-ingressgateway-1", "v1", "tcp-echo"): sum(r.startswith("one") for r in replies),
                ("istio-ingressgateway-1", "v2", "tcp-echo"): sum(r.startswith("two") for r in replies)}

        async def counted() -> bool:
            return _tcp_opened(collector) == want
        assert await _until(counted, "every connection counted"), (_tcp_opened(collector), want)
    finally:
        if envoy is not None:
            envoy.stop()
        for s in servers:
            s.close()
        await collector.stop()
        store.close()
        netns.close()


async def _is(call: Any, want: str) -> bool:
    return bool(await call == want)


async def test_gateway_passes_tls_through_by_sni(tmp_path: Path, xds_for: Any) -> None:  # noqa: F811
    """A PASSTHROUGH server: the gateway reads the SNI, never the bytes; the client verifies the pod's own
    certificate through it, and an SNI no route names is closed."""
    (tmp_path / "certs").mkdir()
    certs = make_certs(tmp_path / "certs")
    netns = Netns()
    store = Store(tmp_path / "store.db")
    port = free_port()
    servers: list[asyncio.Server] = []
    envoy: Envoy | None = None
    try:
        netns.link([GW_IP, V2_IP, V3_IP])
        store.create("namespaces", _obj("Namespace", NS))
        gw = _pod("istio-ingressgateway-1", GW_IP, {"istio": "ingressgateway"}, ["proxy", "router"])
        for obj in (gw, _pod("secure-v1", V2_IP, {"app": "secure", "version": "v1"}),
                    _pod("secure-v2", V3_IP, {"app": "secure", "version": "v2"})):
            store.create("pods", obj)
        store.create("services", _service("secure", SECURE_VIP, 443, "https"))
        store.create("endpoints", _endpoints("secure", 443, ("secure-v1", V2_IP), ("secure-v2", V3_IP)))
        store.create("destinationrules.networking.istio.io", _obj("DestinationRule", "secure", spec={
            "host": "secure", "subsets": [{"name": "v1", "labels": {"version": "v1"}},
                                          {"name": "v2", "labels": {"version": "v2"}}]}))
        store.create("gateways.networking.istio.io", _obj("Gateway", "secure-gateway", spec={
            "selector": {"istio": "ingressgateway"},
            "servers": [{"port": {"number": port, "name": "tls", "protocol": "TLS"}, "tls": {"mode": "PASSTHROUGH"},
                         "hosts": ["*.secure.example"]}]}))
        store.create("virtualservices.networking.istio.io", _obj("VirtualService", "secure", spec={
            "hosts": ["*.secure.example"], "gateways": ["secure-gateway"], "tls": [
                {"match": [{"port": port, "sniHosts": ["a.secure.example"]}],
                 "route": [{"destination": {"host": "secure", "subset": "v1"}}]},
                {"match": [{"port": port, "sniHosts": ["b.secure.example"]}],
                 "route": [{"destination": {"host": "secure", "subset": "v2"}}]}]}))
        servers = [await serve_tls(netns, V2_IP, 443, "secure-v1", certs),
                   await serve_tls(netns, V3_IP, 443, "secure-v2", certs)]
        sock = await xds_for(store, MeshOptions(network="netns", host_netns=f"/proc/{os.getpid()}/ns/net"))
        envoy = Envoy(tmp_path, netns, gw, sock, router=True)

        async def call(sni: str) -> str:
            ctx = ssl.create_default_context(cafile=str(certs / "ca.crt"))
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=sni)
            try:
                writer.write(b"hi\n")
                await writer.drain()
                return (await asyncio.wait_for(reader.readline(), TIMEOUT)).decode()
            finally:
                writer.close()

        assert await _until(lambda: call("a.secure.example"), "the passthrough listener") == \
            "secure-v1 a.secure.example - hi\n", envoy.log_path.read_text()
        assert await call("b.secure.example") == "secure-v2 b.secure.example - hi\n"
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await call("c.secure.example")
    finally:
        if envoy is not None:
            envoy.stop()
        for s in servers:
            s.close()
        store.close()
        netns.close()
