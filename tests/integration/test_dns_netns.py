"""The DNS server on sockets made inside a network namespace, asked by programs in that namespace through the
C library's resolver with the resolv.conf a pod gets (`ip netns exec` binds /etc/netns/NAME/resolv.conf)."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from sluice.dns.files import resolv_conf
from sluice.dns.names import build_table
from sluice.dns.server import DnsServer
from sluice.runtime.netns.dial import socket_in
from tests.unit.cluster_dns.cluster import objects

NAME = f"sluice-dnstest-{os.getpid()}"
ETC = Path("/etc/netns") / NAME


@pytest.fixture
def netns() -> Iterator[str]:
    """A throw-away network namespace with loopback up, and its resolv.conf (both removed afterwards)."""
    made = subprocess.run(["ip", "netns", "add", NAME], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot make a network namespace here (loopback mode machines): {made.stderr.strip()}")
    parent_made = not ETC.parent.exists()
    try:
        subprocess.run(["ip", "-n", NAME, "link", "set", "lo", "up"], check=True)
        ETC.mkdir(parents=True)
        (ETC / "resolv.conf").write_text(resolv_conf("tutorial", "127.0.0.1"))
        yield f"/run/netns/{NAME}"
    finally:
        shutil.rmtree(ETC, ignore_errors=True)
        if parent_made and ETC.parent.exists() and not any(ETC.parent.iterdir()):
            ETC.parent.rmdir()
        subprocess.run(["ip", "netns", "del", NAME], capture_output=True)


@pytest.fixture
async def server(netns: str) -> AsyncIterator[DnsServer]:
    udp = socket_in(netns, socket.AF_INET, socket.SOCK_DGRAM)
    tcp = socket_in(netns, socket.AF_INET, socket.SOCK_STREAM)
    udp.bind(("127.0.0.1", 53))
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind(("127.0.0.1", 53))
    table = build_table(**objects())  # type: ignore[arg-type]
    s = DnsServer(lambda: table)
    await s.start(udp=[udp], tcp=[tcp])
    yield s
    await s.stop()


async def in_netns(*argv: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec("ip", "netns", "exec", NAME, *argv, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    return int(proc.returncode or 0), out.decode()


# Python's getaddrinfo is the C library's: what an unmodified app in the pod does.
LOOKUP = ("import socket, sys\n"
          "try:\n"
          "    print(sorted({a[4][0] for a in socket.getaddrinfo(sys.argv[1], 80, socket.AF_INET)}))\n"
          "except socket.gaierror as e:\n"
          "    print('error', e.errno == socket.EAI_NONAME)\n")


async def test_pod_resolver_uses_search_domains(server: DnsServer) -> None:
    for name in ("reviews", "reviews.tutorial", "reviews.tutorial.svc", "reviews.tutorial.svc.cluster.local"):
        code, out = await in_netns(sys.executable, "-c", LOOKUP, name)
        assert (code, out.strip()) == (0, "['10.96.0.12']"), name
    code, out = await in_netns(sys.executable, "-c", LOOKUP, "db")
    assert out.strip() == "['10.244.0.7', '10.244.0.8']"
    code, out = await in_netns(sys.executable, "-c", LOOKUP, "nope")
    assert out.strip() == "error True"  # "Name or service not known", not a timeout
    code, out = await in_netns("dig", "+short", "+tcp", "@127.0.0.1", "_http._tcp.reviews.tutorial.svc.cluster.local",
                               "SRV")
    assert out.strip() == "0 100 9080 reviews.tutorial.svc.cluster.local."
