"""The cluster DNS server on real sockets (127.0.0.1, a free port), asked by the real `dig` and by dnspython's
resolver reading the resolv.conf a pod gets."""

from __future__ import annotations

import asyncio
import shutil
import socket
import struct
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import dns.asyncresolver
import dns.message
import dns.rcode
import dns.resolver
import pytest

from sluice.dns.answer import forwarder
from sluice.dns.files import resolv_conf
from sluice.dns.names import build_table
from sluice.dns.server import DnsServer, Limits
from sluice.dns.watch import NameWatcher
from sluice.store.sqlite import Store
from tests.unit.cluster_dns.cluster import objects

DIG = shutil.which("dig")


@dataclass
class Served:
    server: DnsServer
    port: int


def _sockets() -> tuple[socket.socket, socket.socket, int]:
    """A UDP and a TCP socket bound to the same free port on 127.0.0.1."""
    for _ in range(20):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 0))
        port = int(udp.getsockname()[1])
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            tcp.bind(("127.0.0.1", port))
            return udp, tcp, port
        except OSError:
            udp.close()
            tcp.close()
    raise RuntimeError("no free port for UDP and TCP")


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    table = build_table(**objects(), serial=1700000000)  # type: ignore[arg-type]
    server = DnsServer(lambda: table, limits=Limits(max_tcp=4, tcp_idle=0.5))
    udp, tcp, port = _sockets()
    await server.start(udp=[udp], tcp=[tcp])
    yield Served(server, port)
    await server.stop()


async def dig(served: Served, *args: str) -> str:
    if DIG is None:
        pytest.fail("dig is missing: run `make tools` (scripts/install-dnsutils.sh)")
    proc = await asyncio.create_subprocess_exec(
        str(DIG), "@127.0.0.1", "-p", str(served.port), "+tries=1", "+time=2", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err.decode()
    return out.decode()


def resolver(served: Served, tmp_path: Path, namespace: str = "tutorial") -> dns.asyncresolver.Resolver:
    conf = tmp_path / "resolv.conf"
    conf.write_text(resolv_conf(namespace, "127.0.0.1"))
    r = dns.asyncresolver.Resolver(filename=str(conf))
    r.port = served.port
    r.lifetime = 5.0
    return r


async def test_dig_service_headless_and_tcp(served: Served) -> None:
    out = await dig(served, "reviews.tutorial.svc.cluster.local")
    lines = [" ".join(line.split()) for line in out.splitlines()]
    assert "status: NOERROR" in out and "aa" in out.split("flags:")[1].split(";")[0].split()
    assert "reviews.tutorial.svc.cluster.local. 30 IN A 10.96.0.12" in lines
    assert (await dig(served, "+short", "reviews.tutorial.svc.cluster.local")).split() == ["10.96.0.12"]
    assert sorted((await dig(served, "+short", "db.tutorial.svc.cluster.local")).split()) == ["10.244.0.7",
                                                                                             "10.244.0.8"]
    assert (await dig(served, "+short", "+tcp", "db-0.db.tutorial.svc.cluster.local")).split() == ["10.244.0.7"]
    assert (await dig(served, "+short", "10-244-0-7.tutorial.pod.cluster.local")).split() == ["10.244.0.7"]
    assert (await dig(served, "+short", "mysql.example.internal")).split() == ["240.240.0.5"]
    assert (await dig(served, "+short", "-x", "10.96.0.12")).split() == ["reviews.tutorial.svc.cluster.local."]


async def test_dig_search_domain_form(served: Served) -> None:
    out = await dig(served, "+short", "+search", "+ndots=5", "+domain=tutorial.svc.cluster.local", "reviews")
    assert out.split() == ["10.96.0.12"]


async def test_dig_srv(served: Served) -> None:
    out = await dig(served, "+noall", "+answer", "+additional", "SRV", "_pg._tcp.db.tutorial.svc.cluster.local")
    lines = sorted(" ".join(line.split()) for line in out.splitlines() if line.strip())
    assert lines == [
        "10-244-0-8.db.tutorial.svc.cluster.local. 30 IN A 10.244.0.8",
        "_pg._tcp.db.tutorial.svc.cluster.local. 30 IN SRV 0 50 15432 10-244-0-8.db.tutorial.svc.cluster.local.",
        "_pg._tcp.db.tutorial.svc.cluster.local. 30 IN SRV 0 50 15432 db-0.db.tutorial.svc.cluster.local.",
        "db-0.db.tutorial.svc.cluster.local. 30 IN A 10.244.0.7",
    ]
    out = await dig(served, "+short", "SRV", "_http._tcp.reviews.tutorial.svc.cluster.local")
    assert out.strip() == "0 100 9080 reviews.tutorial.svc.cluster.local."


async def test_dig_nxdomain_has_the_soa_and_comes_at_once(served: Served) -> None:
    # One try, no retry: a missing answer would fail the command instead of showing NXDOMAIN.
    out = await dig(served, "nope.tutorial.svc.cluster.local")
    assert "status: NXDOMAIN" in out
    authority = out.split("AUTHORITY SECTION:")[1].strip().splitlines()[0].split()
    assert authority == ["cluster.local.", "30", "IN", "SOA", "ns.dns.cluster.local.", "hostmaster.cluster.local.",
                         "1700000000", "7200", "1800", "86400", "30"]
    assert "status: NOERROR" in await dig(served, "AAAA", "reviews.tutorial.svc.cluster.local")
    assert "status: NXDOMAIN" in await dig(served, "example.org")  # outside the cluster: the default upstream


async def test_resolver_search_forms_headless_and_unknown(served: Served, tmp_path: Path) -> None:
    r = resolver(served, tmp_path)
    for name in ("reviews", "reviews.tutorial", "reviews.tutorial.svc", "reviews.tutorial.svc.cluster.local",
                 "reviews.tutorial.svc.cluster.local."):
        answer = await r.resolve(name, "A", search=True)
        assert [a.to_text() for a in answer] == ["10.96.0.12"], name
    answer = await r.resolve("db", "A", search=True)
    assert sorted(a.to_text() for a in answer) == ["10.244.0.7", "10.244.0.8"]
    other_ns = resolver(served, tmp_path, namespace="default")
    with pytest.raises(dns.resolver.NXDOMAIN):  # a short name only resolves in its own namespace
        await other_ns.resolve("reviews", "A", search=True)
    assert [a.to_text() for a in await other_ns.resolve("reviews.tutorial", "A", search=True)] == ["10.96.0.12"]
    # Unknown names fail with NXDOMAIN (every search form, then the name itself), not a timeout.
    with pytest.raises(dns.resolver.NXDOMAIN):
        await r.resolve("nope", "A", search=True)
    with pytest.raises(dns.resolver.NXDOMAIN):
        await r.resolve("www.example.org", "A", search=True)
    with pytest.raises(dns.resolver.NoAnswer):
        await r.resolve("reviews", "AAAA", search=True)


async def _udp_exchange(port: int, payload: bytes) -> bytes:
    loop = asyncio.get_running_loop()
    got: asyncio.Future[bytes] = loop.create_future()

    class Proto(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: object) -> None:
            if not got.done():
                got.set_result(data)

    transport, _ = await loop.create_datagram_endpoint(Proto, remote_addr=("127.0.0.1", port))
    try:
        transport.sendto(payload)
        return await asyncio.wait_for(got, 5)
    finally:
        transport.close()


async def test_malformed_packets_get_formerr_and_the_server_carries_on(served: Served) -> None:
    garbage = struct.pack("!HHHHHH", 0xBEEF, 0x0100, 1, 0, 0, 0) + b"\x07reviews\xff\xff"
    reply = dns.message.from_wire(await _udp_exchange(served.port, garbage))
    assert reply.id == 0xBEEF and reply.rcode() == dns.rcode.FORMERR
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(struct.pack("!H", len(garbage)) + garbage)
    (length,) = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), 5))
    assert dns.message.from_wire(await reader.readexactly(length)).rcode() == dns.rcode.FORMERR
    writer.close()
    assert (await dig(served, "+short", "reviews.tutorial.svc.cluster.local")).split() == ["10.96.0.12"]


async def test_tcp_connections_are_bounded(served: Served) -> None:
    conns = [await asyncio.open_connection("127.0.0.1", served.port) for _ in range(4)]
    await asyncio.sleep(0)  # let the server accept them
    extra_reader, extra_writer = await asyncio.open_connection("127.0.0.1", served.port)
    assert await asyncio.wait_for(extra_reader.read(1), 5) == b""  # over the limit: closed at once
    # Idle connections are closed after the idle time (0.5 s here); a too-long length closes one at once.
    for reader, _ in conns[:3]:
        assert await asyncio.wait_for(reader.read(1), 5) == b""
    reader, writer = conns[3]
    writer.write(struct.pack("!H", 60000))
    assert await asyncio.wait_for(reader.read(1), 5) == b""
    for _, w in [*conns, (extra_reader, extra_writer)]:
        w.close()


async def test_answers_follow_the_store(tmp_path: Path) -> None:
    """The server on a `NameWatcher`: a Service applied to the store resolves, deleted it is NXDOMAIN."""
    store = Store(tmp_path / "store.db")
    store.create("namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "tutorial"}})
    watcher = NameWatcher(store)
    watcher.start()
    await watcher.wait_synced()
    server = DnsServer(watcher.table)
    udp, tcp, port = _sockets()
    await server.start(udp=[udp], tcp=[tcp])
    served = Served(server, port)
    name = "ratings.tutorial.svc.cluster.local"
    try:
        assert "status: NXDOMAIN" in await dig(served, name)
        store.create("services", {"apiVersion": "v1", "kind": "Service",
                                  "metadata": {"name": "ratings", "namespace": "tutorial"},
                                  "spec": {"clusterIP": "10.96.0.44", "ports": [{"name": "http", "port": 9080}]}})
        await _until(lambda: watcher.table().lookup(name) is not None)
        assert (await dig(served, "+short", name)).split() == ["10.96.0.44"]
        store.delete("services", "tutorial", "ratings")
        await _until(lambda: watcher.table().lookup(name) is None)
        assert "status: NXDOMAIN" in await dig(served, name)
    finally:
        await server.stop()
        await watcher.stop()
        store.close()


async def _until(pred: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred():
        assert asyncio.get_running_loop().time() < deadline, "condition not met"
        await asyncio.sleep(0.02)


async def test_truncated_udp_answers_are_retried_over_tcp_by_dig(tmp_path: Path) -> None:
    many = {"metadata": {"name": "big", "namespace": "tutorial"}, "spec": {"clusterIP": "None", "ports": []}}
    ep = {"metadata": {"name": "big", "namespace": "tutorial"},
          "subsets": [{"addresses": [{"ip": f"10.244.1.{i}"} for i in range(1, 200)], "ports": []}]}
    table = build_table(services=[many], endpoints=[ep])
    server = DnsServer(lambda: table)
    udp, tcp, port = _sockets()
    await server.start(udp=[udp], tcp=[tcp])
    try:
        out = await dig(Served(server, port), "+bufsize=512", "big.tutorial.svc.cluster.local")
        assert "Truncated, retrying in TCP mode" in out and "(TCP)" in out
        answers = [line for line in out.splitlines() if " IN A " in " ".join(line.split())]
        assert len(answers) == 199
    finally:
        await server.stop()


async def test_forwarder_asks_another_server(served: Served) -> None:
    """Names outside the cluster go to a real resolver when one is configured (here: another instance)."""
    outer = DnsServer(lambda: build_table(), upstream=forwarder([("127.0.0.1", served.port)]))
    udp, tcp, port = _sockets()
    await outer.start(udp=[udp], tcp=[tcp])
    try:
        relay = Served(outer, port)
        assert (await dig(relay, "+short", "mysql.example.internal")).split() == ["240.240.0.5"]
        assert "status: NXDOMAIN" in await dig(relay, "nothing.example.org")
        dead = DnsServer(lambda: build_table(), upstream=forwarder([("127.0.0.1", free_udp_port())], timeout=0.2),
                         limits=Limits(upstream_timeout=1.0))
        udp2, tcp2, port2 = _sockets()
        await dead.start(udp=[udp2], tcp=[tcp2])
        try:
            assert "status: SERVFAIL" in await dig(Served(dead, port2), "example.org")
        finally:
            await dead.stop()
    finally:
        await outer.stop()


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
