"""A ~1.5 MB VirtualService through a running daemon's console (issue 9, point 2): created, read and replaced
while a probe GETs the Kubernetes API every 100 ms. The console does the heavy part of each request (decoding,
admission, validation, the editor's YAML) in its worker processes, so every probe is answered; the console's
answers are the ones the event loop gives a small object (the YAML is the object's text in its own key order,
as the editor shows it) and agree with the API server. How fast the probes were answered is measured by
bench/push_stall_bench.py, not asserted here.
"""

from __future__ import annotations

import http.client
import json
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sluice.console.bodies import yaml_text
from tests.conftest import Daemon, child_processes, start_daemon, stop_daemon
from tests.integration.test_body_worker import big_vs as body_worker_vs

NS = "default"
CONSOLE_VS = f"/api/namespaces/{NS}/istio/virtualservices"
API_VS = f"/apis/networking.istio.io/v1/namespaces/{NS}/virtualservices"
WORKER = "sluice.console.worker"
PROBE_EVERY_S = 0.1


def big_vs(name: str, routes: int = 4150) -> dict[str, Any]:
    return body_worker_vs(name, NS, routes)


class Api:
    """The Kubernetes API over one kept-alive TLS connection (per thread that makes one)."""

    def __init__(self, d: Daemon) -> None:
        self.d = d
        self.ctx = ssl.create_default_context(cafile=str(d.home / "pki" / "ca.crt"))
        self.ctx.check_hostname = False

    def connect(self) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection("127.0.0.1", self.d.api_port, timeout=60, context=self.ctx)

    def get(self, conn: http.client.HTTPSConnection, path: str) -> tuple[int, bytes]:
        return self.send(conn, "GET", path)

    def send(self, conn: http.client.HTTPSConnection, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        headers = {"Authorization": f"Bearer {self.d.token}", "Content-Type": "application/json"}
        conn.request(method, path, body=None if body is None else json.dumps(body).encode(), headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()


class Probe:
    """GETs the API every 100 ms while the console works; every probe must be answered 200."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.codes: list[int] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        conn = self.api.connect()
        try:
            while True:  # at least one, however short the request
                try:
                    self.codes.append(self.api.get(conn, f"/api/v1/namespaces/{NS}")[0])
                except OSError:  # no answer within the client's timeout, or the connection dropped
                    self.codes.append(0)
                    conn.close()
                    conn = self.api.connect()
                if self.stop.wait(PROBE_EVERY_S):
                    return
        finally:
            conn.close()

    def __enter__(self) -> Probe:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(90)
        assert self.codes and set(self.codes) == {200}, self.codes


def console(d: Daemon, method: str, path: str, body: bytes | None = None,
            ctype: str = "application/json") -> tuple[int, Any]:
    """A console request as a script sends it: the kubeconfig's bearer token, no Origin."""
    port = json.loads((d.home / "daemon.json").read_text())["console_port"]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=180)
    try:
        headers = {"Authorization": f"Bearer {d.token}"}
        if body is not None:
            headers["Content-Type"] = ctype
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())  # key order kept: the YAML's is checked against it
    finally:
        conn.close()


def console_workers(d: Daemon) -> list[int]:
    """The daemon's console worker processes."""
    assert d.proc is not None
    return child_processes(d.proc.pid, WORKER)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    d = start_daemon(tmp_path / "home")
    try:
        yield d
    finally:
        stop_daemon(d)


def check_detail(answer: dict[str, Any], api: Api, name: str) -> dict[str, Any]:
    """The console's detail answer agrees with the API server and its YAML is the object's text."""
    obj = answer["object"]
    conn = api.connect()
    try:
        status, stored = api.get(conn, f"{API_VS}/{name}")
    finally:
        conn.close()
    assert status == 200
    assert obj == json.loads(stored)
    assert answer["yaml"] == yaml_text(obj)
    assert answer["yaml"].startswith("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n")
    meta = obj["metadata"]
    assert {k: answer[k] for k in ("kind", "apiVersion", "name", "namespace", "resourceVersion", "createdAt")} == {
        "kind": "VirtualService", "apiVersion": "networking.istio.io/v1", "name": name, "namespace": NS,
        "resourceVersion": meta["resourceVersion"], "createdAt": meta["creationTimestamp"]}
    assert answer["validation"] == {"checks": [], "errors": 0, "warnings": 0, "valid": True, "status": "Valid"}
    return obj


def test_a_large_virtual_service_through_the_console_while_the_api_answers(daemon: Daemon) -> None:
    api = Api(daemon)
    conn = api.connect()
    try:  # the Service the VirtualService routes to, so that the analyzers find nothing wrong
        status, text = api.send(conn, "POST", f"/api/v1/namespaces/{NS}/services", {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "details"},
            "spec": {"selector": {"app": "details"}, "ports": [{"name": "http", "port": 9080}]}})
        assert status == 201, text
    finally:
        conn.close()
    body = json.dumps(big_vs("details-big")).encode()
    assert 1.4e6 < len(body) < 1.7e6
    with Probe(api):
        status, created = console(daemon, "POST", CONSOLE_VS, body)
    assert status == 201, created
    obj = check_detail(created, api, "details-big")
    assert created["warnings"] == [] and len(obj["spec"]["http"]) == 4151 and obj["metadata"]["generation"] == 1
    assert console_workers(daemon), "the console's worker processes did the work"

    with Probe(api):
        status, got = console(daemon, "GET", f"{CONSOLE_VS}/details-big")
    assert status == 200, got
    assert "warnings" not in got
    assert check_detail(got, api, "details-big") == obj

    # an edit as the console's editor sends it: the YAML text it showed, changed
    edited = got["yaml"].replace("prefix: /api/v1/products/7/reviews\n", "prefix: /api/v1/products/7/ratings\n")
    assert edited != got["yaml"]
    with Probe(api):
        status, replaced = console(daemon, "PUT", f"{CONSOLE_VS}/details-big", edited.encode(), "application/yaml")
    assert status == 200, replaced
    new = check_detail(replaced, api, "details-big")
    assert new["metadata"]["generation"] == 2
    assert new["spec"]["http"][7]["match"][0]["uri"]["prefix"] == "/api/v1/products/7/ratings"
    assert new["spec"] == yaml.load(edited, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))["spec"]

    # a stale edit is the API server's Conflict, and nothing changes
    with Probe(api):
        status, refused = console(daemon, "PUT", f"{CONSOLE_VS}/details-big", got["yaml"].encode(),
                                  "application/yaml")
    assert status == 409 and refused["reason"] == "Conflict", refused
    assert check_detail(console(daemon, "GET", f"{CONSOLE_VS}/details-big")[1], api, "details-big") == new

    # the daemon's stop takes its console workers along
    workers = console_workers(daemon)
    stop_daemon(daemon)
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in workers):
        assert time.monotonic() < deadline, workers
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
