"""Sidecars prove who they are, netns mode: pods in their own network namespaces reach xDS/ALS over the
daemon's Unix socket, and the socket demands the same client certificate as the TCP port.

A forged stream over the socket without a certificate gets nothing, one with the client pod's certificate
claiming the web pod is dropped and counted, and requests the client app sends (`kubectl exec`) are counted
exactly by both real sidecars, whose access logs travel over mutual TLS on the socket.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator

import grpc
import pytest

from tests.conftest import start_daemon, stop_daemon, wait_for
from tests.integration.telemetry.test_als_trust import (
    MANIFEST,
    NS,
    Mesh,
    _als,
    _kubectl,
    _messages,
    _pods,
    total,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="netns mode needs root")

GET = ("import sys, urllib.request\n"
       "for _ in range(int(sys.argv[1])):\n"
       "    assert urllib.request.urlopen('http://web:9080/ratings/0', timeout=5).status == 200\n")


@pytest.fixture(scope="module")
def netns_meshed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    d = start_daemon(tmp_path_factory.mktemp("trust-netns"), network="netns")
    try:
        _kubectl(d, "apply", "-f", "-", input=MANIFEST)
        wait_for(lambda: set(_pods(d)) == {"client", "web"}, timeout=90, interval=0.3)
        pods = _pods(d)
        run = json.loads((d.home / "daemon.json").read_text())
        yield Mesh(d, f"http://127.0.0.1:{run['metrics_port']}/metrics", f"unix:{d.home / 'xds.sock'}",
                   (d.home / "pki" / "ca.crt").read_bytes(), pods["client"], pods["web"])
    finally:
        stop_daemon(d)


def _edge(m: Mesh, reporter: str) -> float:
    return total(m, "istio_requests_total", reporter=reporter, source_workload="client-v1",
                 destination_workload="web-v1", response_code="200")


def _exec_requests(m: Mesh, n: int) -> None:
    _kubectl(m.daemon, "exec", "-n", NS, m.client.name, "-c", "client", "--", sys.executable, "-c", GET, str(n))


def test_socket_refuses_forged_streams_and_real_sidecars_count(netns_meshed: Mesh) -> None:
    m = netns_meshed
    # The routes reach the client's sidecar asynchronously: the first request may find none.
    wait_for(lambda: _try_exec(m), timeout=60, interval=0.5)
    wait_for(lambda: _edge(m, "source") > 0 and _edge(m, "destination") > 0, timeout=30, interval=0.2)

    web_before = total(m, "istio_requests_total", destination_workload="web-v1")
    for creds in (None, grpc.ssl_channel_credentials(m.ca)):
        with pytest.raises(grpc.RpcError) as err:
            _als(m, creds, _messages(m.web.node_id, [200] * 200, inbound=True, peer_ip="10.244.9.9"))
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    dropped = total(m, "sluice_als_entries_dropped_total", reason="identity_mismatch")
    _als(m, m.client.credentials(), _messages(m.web.node_id, [200] * 200, inbound=True, peer_ip=m.client.ip))
    assert total(m, "sluice_als_entries_dropped_total", reason="identity_mismatch") == dropped + 200
    assert total(m, "istio_requests_total", destination_workload="web-v1") == web_before

    before = {r: _edge(m, r) for r in ("source", "destination")}
    _exec_requests(m, 15)
    wait_for(lambda: {r: _edge(m, r) - before[r] for r in before} == {"source": 15, "destination": 15},
             timeout=30, interval=0.2)


def _try_exec(m: Mesh) -> bool:
    try:
        _exec_requests(m, 1)
        return True
    except AssertionError:
        return False
