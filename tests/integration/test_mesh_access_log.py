"""The mesh config's access-log settings reach running sidecars, as istiod's do: `accessLogFile: ""` (Istio's
default profile) turns the `istio-proxy` log off, `accessLogEncoding: JSON` gives Istio's JSON lines, and Istio's
metrics (from the gRPC access-log stream) count every request either way. Istio's httpbin and sleep samples,
loopback mode; the ConfigMap is written with the real kubectl."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator

import pytest

from tests.conftest import start_daemon, stop_daemon, wait_for
from tests.integration.cli_helpers import Sluice
from tests.integration.netns.test_istio_samples import HTTPBIN, SLEEP, Kube

MESH = """
apiVersion: v1
kind: ConfigMap
metadata:
  name: istio
  namespace: istio-system
data:
  mesh: |-
%s
"""
# Istio's EnvoyJSONLogFormatIstio keys
JSON_KEYS = {
    "start_time", "route_name", "method", "path", "protocol", "response_code", "response_flags",
    "response_code_details", "connection_termination_details", "bytes_received", "bytes_sent", "duration",
    "upstream_service_time", "x_forwarded_for", "user_agent", "request_id", "authority", "upstream_host",
    "upstream_cluster", "upstream_local_address", "downstream_local_address", "downstream_remote_address",
    "requested_server_name", "upstream_transport_failure_reason"}
COUNT = ('sum(istio_requests_total{reporter="%s",source_workload="sleep",destination_workload="httpbin",'
         'response_code="200"})')


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Kube, Sluice]]:
    d = start_daemon(tmp_path_factory.mktemp("access-log-home"), network="loopback")
    k = Kube(d)
    try:
        for manifest in (SLEEP, HTTPBIN):
            k("apply", "-f", "-", input=manifest)
        k("create", "namespace", "istio-system")
        k("wait", "--for=condition=Available", "deployment", "--all", "--timeout=180s")
        yield k, Sluice(d.env)
    finally:
        stop_daemon(d)


def _pods(k: Kube) -> list[str]:
    return [k("get", "pod", "-l", f"app={app}", "-o", "jsonpath={.items[0].metadata.name}") for app in ("sleep",
                                                                                                        "httpbin")]


def _file_loggers(sl: Sluice, pod: str) -> list[dict[str, object]]:
    """The file access loggers the pod's Envoy holds on its listeners (what istioctl proxy-config shows)."""
    text = sl.ok("proxy-config", "listeners", pod, "-o", "json")
    found: list[dict[str, object]] = []

    def walk(v: object) -> None:
        if isinstance(v, dict):
            if str(v.get("@type", "")).endswith("access_loggers.file.v3.FileAccessLog"):
                found.append(v)
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
    walk(json.loads(text))
    return found


def _applied(k: Kube, sl: Sluice, mesh_yaml: str, want: str) -> None:
    """Write the mesh config (no warning: every setting is applied) and wait until both sidecars hold it."""
    cp = k.run("apply", "-f", "-", input=MESH % "\n".join("    " + line for line in mesh_yaml.splitlines()))
    assert cp.returncode == 0 and cp.stderr == "", cp.stderr

    def held() -> bool:
        for pod in _pods(k):
            loggers = _file_loggers(sl, pod)
            if want == "off" and loggers:
                return False
            if want != "off" and (not loggers or not all(want in json.dumps(lg) for lg in loggers)):
                return False
        return True
    wait_for(held, timeout=60, interval=0.3)


def _count(sl: Sluice, reporter: str) -> float:
    out = json.loads(sl.ok("query", COUNT % reporter, "-o", "json"))
    result = out.get("result") or out.get("data", {}).get("result") or []
    return float(result[0]["value"][1]) if result else 0.0


def _request(k: Kube, sl: Sluice) -> str:
    """One request from sleep to httpbin with its own x-request-id; waits until Istio's metrics counted it on
    both sides (ALS, flushed every second), so that any access-log line for it has been written (the file log
    flushes every 250 ms)."""
    before = {r: _count(sl, r) for r in ("source", "destination")}
    rid = str(uuid.uuid4())
    k("exec", "deploy/sleep", "-c", "sleep", "--", "curl", "-sf", "-o", "/dev/null", "-H", f"x-request-id: {rid}",
      "http://httpbin:8000/status/200")
    wait_for(lambda: all(_count(sl, r) > before[r] for r in before), timeout=60, interval=0.5)
    return rid


def _lines(k: Kube, app: str, rid: str) -> list[str]:
    return [line for line in k("logs", "-l", f"app={app}", "-c", "istio-proxy", "--tail=-1").splitlines()
            if rid in line]


def _settles(k: Kube, sl: Sluice, check: Callable[[str], bool]) -> None:
    """Requests until one passes `check` (given its request id): connections opened under the old listener config
    keep it until Envoy's drain (2 s here) closes them, in Istio as here."""
    wait_for(lambda: check(_request(k, sl)), timeout=60, interval=0.2)


def _json_lines(k: Kube, app: str, rid: str) -> list[dict[str, object]]:
    out = []
    for line in _lines(k, app, rid):
        try:
            out.append(json.loads(line))
        except ValueError:
            return []  # a TEXT line from a connection opened before the change
    return out


def test_access_log_follows_the_mesh_config(mesh: tuple[Kube, Sluice]) -> None:
    k, sl = mesh
    # Sluice's default (no mesh config): Istio's TEXT line on both sides
    rid = _request(k, sl)
    for app in ("sleep", "httpbin"):
        wait_for(lambda app=app: _lines(k, app, rid), timeout=10)  # type: ignore[misc]
        [line] = _lines(k, app, rid)
        assert '"GET /status/200 HTTP/1.1" 200 ' in line

    # Istio's default profile: no access log, while Istio's metrics still count every request
    _applied(k, sl, 'accessLogFile: ""', "off")
    _settles(k, sl, lambda rid: _lines(k, "sleep", rid) == [] and _lines(k, "httpbin", rid) == [])

    # JSON encoding: Istio's JSON line on both sides
    _applied(k, sl, "accessLogFile: /dev/stdout\naccessLogEncoding: JSON", "json_format")
    found: dict[str, dict[str, object]] = {}

    def json_on_both(rid: str) -> bool:
        for app in ("sleep", "httpbin"):
            entries = _json_lines(k, app, rid)
            if len(entries) != 1:
                return False
            found[app] = entries[0]
        return True
    _settles(k, sl, json_on_both)
    for app, cluster in (("sleep", "outbound|8000||httpbin.default.svc.cluster.local"), ("httpbin", "inbound|")):
        entry = found[app]
        assert set(entry) == JSON_KEYS
        assert (entry["method"], entry["path"], int(str(entry["response_code"]))) == ("GET", "/status/200", 200)
        assert str(entry["upstream_cluster"]).startswith(cluster)

    # a custom TEXT format
    _applied(k, sl, "accessLogFormat: 'custom %REQ(X-REQUEST-ID)% %RESPONSE_CODE%'", "custom %REQ")

    def custom(rid: str) -> bool:
        return _lines(k, "httpbin", rid) == [f"custom {rid} 200"]
    _settles(k, sl, custom)

    # the ConfigMap gone: Sluice's default again
    k("delete", "configmap", "istio", "-n", "istio-system")

    def back() -> bool:
        return all(lg and all("%UPSTREAM_CLUSTER_RAW%" in json.dumps(x) for x in lg)
                   for lg in (_file_loggers(sl, p) for p in _pods(k)))
    wait_for(back, timeout=60, interval=0.3)
