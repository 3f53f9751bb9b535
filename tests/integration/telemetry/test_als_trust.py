"""Sidecars prove who they are (issue 9, point 5): a real daemon, real Envoys, forged gRPC streams.

The daemon (loopback mode, series limit 200 per workload) runs `client` and `web`, each with its sidecar.
A local process then tries what an attacker would over the xDS/ALS port: stream access logs without a
certificate, with the client pod's certificate while claiming to be the web pod, open an ADS stream the
same way, and flood its own workload with 2,000 forged response codes. Each is refused or bounded, counted
on `/metrics`, and the real sidecars' counts stay exact throughout.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.accesslog.v3 import als_pb2, als_pb2_grpc
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from sluice import mesh
from tests.conftest import TOOLS, Daemon, start_daemon, stop_daemon, wait_for

NS = "trust"
HTTP_SERIES = 67  # one HTTP label set as stored: istio_requests_total + 3 histograms × (20 buckets, _sum, _count)
LIMIT = 50 * HTTP_SERIES  # series per workload: 50 HTTP label sets
SERVER_NAME = "istiod.istio-system.svc"

MANIFEST = f"""
apiVersion: v1
kind: Namespace
metadata: {{name: {NS}, labels: {{istio-injection: enabled}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: {NS}}}
spec:
  selector: {{app: web}}
  ports: [{{name: http, port: 9080, targetPort: 9080}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web-v1, namespace: {NS}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web, version: v1}}}}
    spec:
      containers:
      - name: web
        image: docker.io/istio/examples-bookinfo-ratings-v1:1.20.2
        ports: [{{containerPort: 9080}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: client-v1, namespace: {NS}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: client}}}}
  template:
    metadata: {{labels: {{app: client, version: v1}}}}
    spec:
      containers:
      - name: client
        image: local/python
        command: ["{sys.executable}", "-c", "import time; time.sleep(10**6)"]
"""


@dataclass
class Pod:
    name: str
    uid: str
    ip: str
    dir: Path

    @property
    def node_id(self) -> str:
        return mesh.sidecar_node_id(self.ip, self.name, NS)

    def credentials(self) -> grpc.ChannelCredentials:
        """What this pod's sidecar presents: its certificate and key, and the daemon's CA."""
        return grpc.ssl_channel_credentials((self.dir / "ca.crt").read_bytes(), (self.dir / "proxy.key").read_bytes(),
                                            (self.dir / "proxy.crt").read_bytes())


@dataclass
class Mesh:
    daemon: Daemon
    metrics_url: str
    xds: str
    ca: bytes
    client: Pod
    web: Pod


def _kubectl(d: Daemon, *args: str, input: str | None = None) -> str:
    cp = subprocess.run([str(TOOLS / "kubectl-1.35"), *args], input=input, env=d.env, capture_output=True, text=True,
                        timeout=60)
    assert cp.returncode == 0, cp.stderr
    return cp.stdout


def _pods(d: Daemon) -> dict[str, Pod]:
    out: dict[str, Pod] = {}
    for p in json.loads(_kubectl(d, "get", "pods", "-n", NS, "-o", "json"))["items"]:
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
        if ready and p["metadata"].get("deletionTimestamp") is None:
            uid = p["metadata"]["uid"]
            out[p["metadata"]["labels"]["app"]] = Pod(p["metadata"]["name"], uid, p["status"]["podIP"],
                                                      d.home / "runtime" / "pods" / uid)
    return out


@pytest.fixture(scope="module")
def meshed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    d = start_daemon(tmp_path_factory.mktemp("trust-home"), network="loopback",
                     extra=["--telemetry-series-limit", str(LIMIT)])
    try:
        _kubectl(d, "apply", "-f", "-", input=MANIFEST)
        wait_for(lambda: set(_pods(d)) == {"client", "web"}, timeout=90, interval=0.3)
        pods = _pods(d)
        run = json.loads((d.home / "daemon.json").read_text())
        yield Mesh(d, f"http://127.0.0.1:{run['metrics_port']}/metrics", f"127.0.0.1:{d.xds_port}",
                   (d.home / "pki" / "ca.crt").read_bytes(), pods["client"], pods["web"])
    finally:
        stop_daemon(d)


# ---------------------------------------------------------------------------- reading /metrics
_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def scrape(m: Mesh) -> list[tuple[str, dict[str, str], float]]:
    with urllib.request.urlopen(m.metrics_url, timeout=10) as r:
        text = r.read().decode()
    out = []
    for line in text.splitlines():
        got = _LINE.match(line)
        if got:
            out.append((got[1], dict(_LABEL.findall(got[2] or "")), float(got[3])))
    return out


def total(m: Mesh, name: str, **labels: str) -> float:
    return sum(v for n, lbl, v in scrape(m) if n == name and all(lbl.get(k) == x for k, x in labels.items()))


def series(m: Mesh, name: str, **labels: str) -> list[dict[str, str]]:
    return [lbl for n, lbl, _ in scrape(m) if n == name and all(lbl.get(k) == x for k, x in labels.items())]


# ---------------------------------------------------------------------------- traffic
def _via_client(m: Mesh, path: str = "/ratings/0") -> int:
    """A request as the client app sends it: through its sidecar as an HTTP proxy."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": f"http://{m.client.ip}:15001"}))
    try:
        with opener.open(f"http://web:9080{path}", timeout=5) as r:
            r.read()
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)
    except OSError:
        return 0


def _edge(m: Mesh, reporter: str) -> float:
    return total(m, "istio_requests_total", reporter=reporter, source_workload="client-v1",
                 destination_workload="web-v1", response_code="200")


def _send_and_count(m: Mesh, n: int) -> None:
    """n real requests count exactly n in each reporter's client → web 200 series."""
    before = {r: _edge(m, r) for r in ("source", "destination")}
    assert [_via_client(m) for _ in range(n)] == [200] * n
    wait_for(lambda: {r: _edge(m, r) - before[r] for r in before} == {"source": n, "destination": n},
             timeout=30, interval=0.2)


@pytest.fixture(scope="module")
def warm(meshed: Mesh) -> Mesh:
    """Routes and endpoints reach the client's sidecar asynchronously: wait until a request lands and both
    reporters counted it."""
    wait_for(lambda: _via_client(meshed) == 200, timeout=60, interval=0.3)
    wait_for(lambda: _edge(meshed, "source") > 0 and _edge(meshed, "destination") > 0, timeout=30, interval=0.2)
    return meshed


# ---------------------------------------------------------------------------- forging
def _entry(msg: als_pb2.StreamAccessLogsMessage, *, inbound: bool, peer_ip: str, code: int) -> None:
    e = msg.http_logs.log_entry.add()
    cp = e.common_properties
    if inbound:
        cp.upstream_cluster = "inbound|9080||"
        cp.downstream_remote_address.socket_address.address = peer_ip
        cp.downstream_remote_address.socket_address.port_value = 40000
    else:
        cp.upstream_cluster = f"outbound|9080||web.{NS}.svc.cluster.local"
        cp.upstream_remote_address.socket_address.address = peer_ip
        cp.upstream_remote_address.socket_address.port_value = 9080
    e.request.authority = "web:9080"
    e.response.response_code.value = code


def _messages(node_id: str, codes: list[int], *, inbound: bool, peer_ip: str,
              batch: int = 100) -> Iterator[als_pb2.StreamAccessLogsMessage]:
    for i in range(0, len(codes), batch):
        msg = als_pb2.StreamAccessLogsMessage()
        if i == 0:
            msg.identifier.node.id = node_id
            msg.identifier.log_name = "http_envoy_accesslog"
        for code in codes[i:i + batch]:
            _entry(msg, inbound=inbound, peer_ip=peer_ip, code=code)
        yield msg


def _als(m: Mesh, creds: grpc.ChannelCredentials | None, messages: Iterator[als_pb2.StreamAccessLogsMessage]) -> None:
    options = [("grpc.ssl_target_name_override", SERVER_NAME)]
    channel = (grpc.secure_channel(m.xds, creds, options=options) if creds is not None
               else grpc.insecure_channel(m.xds))
    with channel:
        als_pb2_grpc.AccessLogServiceStub(channel).StreamAccessLogs(messages, timeout=20)


def test_stream_without_a_certificate_is_refused(warm: Mesh) -> None:
    m = warm
    web_before = total(m, "istio_requests_total", destination_workload="web-v1")
    ghost = lambda: _messages(m.web.node_id, [200] * 500, inbound=True, peer_ip="127.9.9.9")  # noqa: E731
    # Plain text, and TLS with the right CA but no client certificate: neither gets a stream.
    for creds in (None, grpc.ssl_channel_credentials(m.ca)):
        with pytest.raises(grpc.RpcError) as err:
            _als(m, creds, ghost())
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    # ADS the same way.
    with grpc.insecure_channel(m.xds) as ch, pytest.raises(grpc.RpcError):
        list(ads_pb2_grpc.AggregatedDiscoveryServiceStub(ch).StreamAggregatedResources(iter([]), timeout=10))
    assert total(m, "istio_requests_total", destination_workload="web-v1") == web_before
    assert not series(m, "istio_requests_total", source_workload="unknown", destination_workload="web-v1",
                      response_code="200", reporter="destination")
    # Refused handshakes cost no log lines each (gRPC core would write one per connection).
    log = m.daemon.home / "test-daemon.log"
    lines = len(log.read_text().splitlines())
    for _ in range(50):
        with pytest.raises(grpc.RpcError):
            _als(m, None, ghost())
    assert len(log.read_text().splitlines()) - lines < 5
    _send_and_count(m, 10)


def test_certificate_of_one_pod_cannot_report_for_another(warm: Mesh) -> None:
    m = warm
    web_before = total(m, "istio_requests_total", destination_workload="web-v1")
    dropped = total(m, "sluice_als_entries_dropped_total", reason="identity_mismatch")
    refused = total(m, "sluice_als_streams_refused_total")
    # The client's certificate, the web pod's node id: entries about web's inbound traffic.
    _als(m, m.client.credentials(), _messages(m.web.node_id, [200] * 300, inbound=True, peer_ip=m.client.ip))
    assert total(m, "sluice_als_entries_dropped_total", reason="identity_mismatch") == dropped + 300
    assert total(m, "sluice_als_streams_refused_total") == refused + 1
    assert total(m, "istio_requests_total", destination_workload="web-v1") == web_before

    # ADS: the stream is closed with PERMISSION_DENIED and the web pod's config is not sent.
    xds_refused = total(m, "sluice_xds_streams_refused_total")
    first = discovery_pb2.DiscoveryRequest(type_url="type.googleapis.com/envoy.config.cluster.v3.Cluster",
                                           node=base_pb2.Node(id=m.web.node_id))
    with grpc.secure_channel(m.xds, m.client.credentials(),
                             options=[("grpc.ssl_target_name_override", SERVER_NAME)]) as ch:
        with pytest.raises(grpc.RpcError) as err:
            list(ads_pb2_grpc.AggregatedDiscoveryServiceStub(ch).StreamAggregatedResources(iter([first]), timeout=10))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "authorization failed" in (err.value.details() or "")
    assert total(m, "sluice_xds_streams_refused_total") == xds_refused + 1
    _send_and_count(m, 10)


def test_forged_response_codes_stop_at_the_series_limit(warm: Mesh) -> None:
    m = warm
    invalid = total(m, "sluice_als_entries_dropped_total", reason="invalid_label")
    exceeded = total(m, "sluice_telemetry_series_limit_exceeded_total", namespace=NS, workload="client-v1")
    own = lambda: series(m, "istio_requests_total", reporter="source", source_workload="client-v1")  # noqa: E731
    sets_before = len(own())
    # Codes the client already reported to web with exactly the forged labels (the real 200s) are its
    # own existing series: the forged entries just count there.
    had = {lbl["response_code"] for lbl in own() if lbl.get("destination_workload") == "web-v1"
           and lbl.get("response_flags") == "-" and lbl.get("request_protocol") == "http"}
    # 2,000 distinct codes from the client's own sidecar identity: 100…599 are HTTP status codes (500 of
    # them), the other 1,500 are not.
    codes = list(range(100, 2100))
    _als(m, m.client.credentials(), _messages(m.client.node_id, codes, inbound=False, peer_ip=m.web.ip))
    created = len(own()) - sets_before
    assert len(own()) * HTTP_SERIES <= LIMIT
    assert total(m, "sluice_als_entries_dropped_total", reason="invalid_label") - invalid == 1500
    over = total(m, "sluice_telemetry_series_limit_exceeded_total", namespace=NS, workload="client-v1") - exceeded
    assert created + over + len(had) == 500 and over > 0
    # Nothing of web's own telemetry moved by the flood, and the real sidecars still count exactly, even
    # the client's, which is at its limit: its existing series keep counting.
    _send_and_count(m, 20)
