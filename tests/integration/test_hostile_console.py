"""Hostile requests to a running daemon's console and Prometheus ports (issue 9, point 1).

Each test sends what a web page or a careless script could send (another origin, a text/plain body, a rebinding
`Host`, no or a wrong credential), checks the refusal, checks through the Kubernetes API server that nothing
changed, and then that the mesh still answers: an API server request and a console request with a good
credential. The console is logged into the way a user does it: the address `sluice console` prints.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from tests.conftest import Daemon, start_daemon, stop_daemon

NS = "default"
EVIL = "http://evil.example"
VS_GROUP = ("networking.istio.io", "v1", NS, "virtualservices")
DR_GROUP = ("networking.istio.io", "v1", NS, "destinationrules")
ABORT_RATINGS = {
    "apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "abort-ratings"},
    "spec": {"hosts": ["ratings"], "http": [{"fault": {"abort": {"httpStatus": 503, "percentage": {"value": 100}}},
                                             "route": [{"destination": {"host": "ratings"}}]}]}}


def _deployment(version: str) -> dict[str, Any]:
    labels = {"app": "reviews", "version": version}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": f"reviews-{version}"},
            "spec": {"replicas": 0, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "reviews", "image": "busybox",
                                                           "command": ["sleep", "3600"]}]}}}}


class Mesh:
    def __init__(self, d: Daemon) -> None:
        self.d = d
        run = json.loads((d.home / "daemon.json").read_text())
        self.console_port = int(run["console_port"])
        self.metrics_port = int(run["metrics_port"])
        self.api = config.new_client_from_config(str(d.kubeconfig))
        self.custom = client.CustomObjectsApi(self.api)
        self.core = client.CoreV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.console_port}"

    def send(self, method: str, path: str, headers: dict[str, str] | None = None, body: str | bytes | None = None,
             port: int | None = None) -> tuple[int, http.client.HTTPMessage, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", port or self.console_port, timeout=30)
        try:
            hdrs = {"Host": f"127.0.0.1:{port or self.console_port}", **(headers or {})}
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for k, v in hdrs.items():
                conn.putheader(k, v)
            data = body.encode() if isinstance(body, str) else body
            if data is not None:
                conn.putheader("Content-Length", str(len(data)))
            conn.endheaders(data)
            resp = conn.getresponse()
            return resp.status, resp.headers, resp.read()
        finally:
            conn.close()

    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.d.token}"}

    def login(self, page: str = "graph") -> tuple[dict[str, str], str]:
        """Open the address `sluice console` prints; return the session cookie (as a header) and the Set-Cookie."""
        cp = subprocess.run([sys.executable, "-m", "sluice.cli", "console", NS, "--page", page], env=self.d.env,
                            capture_output=True, text=True, timeout=60)
        assert cp.returncode == 0, cp.stderr
        url = urllib.parse.urlsplit(cp.stdout.strip())
        assert url.port == self.console_port and "token=" in url.query, cp.stdout
        status, headers, _ = self.send("GET", f"{url.path}?{url.query}")
        assert status == 302 and headers["Location"] == f"/{page}?namespace={NS}", headers
        raw = headers["Set-Cookie"]
        (name, morsel), = SimpleCookie(raw).items()
        return {"Cookie": f"{name}={morsel.value}"}, raw

    def objects(self, group: tuple[str, str, str, str]) -> list[str]:
        return [o["metadata"]["name"] for o in self.custom.list_namespaced_custom_object(*group)["items"]]

    def still_answers(self) -> None:
        """An API server request and a console request with a good credential both answer."""
        assert any(n.metadata.name == NS for n in self.core.list_namespace().items)
        status, _, body = self.send("GET", f"/api/namespaces/{NS}/services", self.bearer())
        assert status == 200, body
        assert "reviews" in [s["name"] for s in json.loads(body)["services"]]


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    d = start_daemon(tmp_path_factory.mktemp("hostile") / "home")
    m: Mesh | None = None
    try:
        m = Mesh(d)
        m.core.create_namespaced_service(NS, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "reviews"},
                                              "spec": {"selector": {"app": "reviews"},
                                                       "ports": [{"name": "http", "port": 9080}]}})
        for v in ("v1", "v2"):
            m.apps.create_namespaced_deployment(NS, _deployment(v))
        yield m
    finally:
        stop_daemon(m.d if m is not None else d)  # the restart test replaces the daemon


def _error(body: bytes) -> str:
    return str(json.loads(body)["error"])


def test_cross_origin_text_plain_post_creates_nothing(mesh: Mesh) -> None:
    cookie, _ = mesh.login()
    path = f"/api/namespaces/{NS}/istio/VirtualService"
    # What a page on evil.example can send without a preflight: a "simple" text/plain POST (with the user's
    # cookie, if the browser sent it, and without).
    for creds in (cookie, {}):
        status, _, body = mesh.send("POST", path, {**creds, "Origin": EVIL, "Content-Type": "text/plain"},
                                    json.dumps(ABORT_RATINGS))
        assert status == 403 and "cross-origin" in _error(body)
    status, _, body = mesh.send("POST", path, {**cookie, "Origin": mesh.origin, "Content-Type": "text/plain"},
                                json.dumps(ABORT_RATINGS))
    assert status == 415 and "Content-Type 'text/plain'" in _error(body)
    assert "abort-ratings" not in mesh.objects(VS_GROUP)
    mesh.still_answers()


def test_wizard_refuses_a_foreign_origin(mesh: Mesh) -> None:
    cookie, _ = mesh.login()
    path = f"/api/namespaces/{NS}/services/reviews/traffic-shifting"
    body = json.dumps({"workloads": [{"name": "reviews-v1", "weight": 0}, {"name": "reviews-v2", "weight": 100}]})
    for ctype in ("application/json", "text/plain"):
        status, _, answer = mesh.send("POST", path, {**cookie, "Origin": EVIL, "Content-Type": ctype}, body)
        assert status == 403, answer
    assert "reviews" not in mesh.objects(VS_GROUP) and "reviews" not in mesh.objects(DR_GROUP)
    mesh.still_answers()
    # The same request from the console's own page goes through: the refusal was the origin's.
    status, _, answer = mesh.send("POST", path, {**cookie, "Origin": mesh.origin,
                                                 "Content-Type": "application/json"}, body)
    assert status == 200, answer
    assert "reviews" in mesh.objects(VS_GROUP)
    status, _, _ = mesh.send("DELETE", path, {**cookie, "Origin": EVIL})
    assert status == 403 and "reviews" in mesh.objects(VS_GROUP)
    status, _, answer = mesh.send("DELETE", path, {**cookie, "Origin": mesh.origin})
    assert status == 200, answer
    assert "reviews" not in mesh.objects(VS_GROUP)
    mesh.still_answers()


def test_dns_rebinding_host_is_refused_on_the_console_and_the_prometheus_api(mesh: Mesh) -> None:
    cookie, _ = mesh.login()
    mesh.custom.create_namespaced_custom_object(*VS_GROUP, ABORT_RATINGS)
    try:
        path = f"/api/namespaces/{NS}/istio/VirtualService/abort-ratings"
        rebound = {"Host": f"attacker.example:{mesh.console_port}", "Origin": f"http://attacker.example:"
                   f"{mesh.console_port}"}
        for creds in (cookie, mesh.bearer()):
            for method, body in (("GET", None), ("PUT", json.dumps(ABORT_RATINGS)), ("DELETE", None)):
                headers = {**creds, **rebound, **({"Content-Type": "application/json"} if body else {})}
                status, _, answer = mesh.send(method, path, headers, body)
                assert status == 403 and "DNS-rebinding" in _error(answer), (method, answer)
                status, _, answer = mesh.send(method, path, {**headers, "Host": "attacker.example"}, body)
                assert status == 403, (method, answer)
        assert "abort-ratings" in mesh.objects(VS_GROUP)  # the DELETE did nothing
        q = "/api/v1/query?query=up"
        for path in (q, "/metrics", "/"):
            status, headers, answer = mesh.send("GET", path, {"Host": f"attacker.example:{mesh.metrics_port}"},
                                                port=mesh.metrics_port)
            assert status == 403 and b"DNS-rebinding" in answer, (path, answer)
            assert not [h for h in headers if h.lower().startswith("access-control-")]
        # Prometheus's open reads, under the port's own name.
        status, _, answer = mesh.send("GET", q, port=mesh.metrics_port)
        assert status == 200 and json.loads(answer)["status"] == "success"
        mesh.still_answers()
    finally:
        mesh.custom.delete_namespaced_custom_object(*VS_GROUP, "abort-ratings")


def test_no_credential_and_wrong_tokens_are_401(mesh: Mesh) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {mesh.d.token}"},
                    {"Cookie": f"sluice-console-{mesh.console_port}=1.2.3"}):
        status, hdrs, body = mesh.send("GET", f"/api/namespaces/{NS}/services", headers)
        assert status == 401 and _error(body), headers
        assert not [h for h in hdrs if h.lower().startswith("access-control-")]
    status, hdrs, body = mesh.send("GET", f"/graph?namespace={NS}")
    assert status == 401 and hdrs.get_content_type() == "text/html"
    assert b"login-token" in body and b'<div id="root">' not in body
    status, hdrs, body = mesh.send("GET", f"/graph?namespace={NS}&token=wrong")
    assert status == 401 and "Set-Cookie" not in hdrs and b"not valid" in body
    status, _, body = mesh.send("POST", "/login", {"Origin": mesh.origin, "Content-Type": "application/json"},
                                json.dumps({"token": "wrong"}))
    assert status == 401 and "not valid" in _error(body)
    status, _, body = mesh.send("POST", f"/api/namespaces/{NS}/istio/VirtualService",
                                {"Origin": mesh.origin, "Content-Type": "application/json"},
                                json.dumps(ABORT_RATINGS))
    assert status == 401
    assert "abort-ratings" not in mesh.objects(VS_GROUP)
    mesh.still_answers()


def test_the_session_cookie_is_httponly_samesite_strict_and_the_token_works_once(mesh: Mesh) -> None:
    cookie, raw = mesh.login("istio")
    attrs = [a.strip().lower() for a in raw.split(";")[1:]]
    assert "httponly" in attrs and "samesite=strict" in attrs and "path=/" in attrs
    assert raw.startswith(f"sluice-console-{mesh.console_port}=")
    status, _, body = mesh.send("GET", f"/api/namespaces/{NS}/services", cookie)
    assert status == 200, body
    status, _, body = mesh.send("GET", f"/istio?namespace={NS}", cookie)
    assert status == 200 and b'<div id="root"></div>' in body
    # The printed token was used up by the login above; `sluice console` prints the next one.
    token = (mesh.d.home / "console" / "login-token").read_text().strip()
    assert (mesh.d.home / "console" / "login-token").stat().st_mode & 0o077 == 0
    status, _, _ = mesh.send("GET", f"/graph?token={token}")
    assert status == 302
    status, _, body = mesh.send("GET", f"/graph?token={token}")
    assert status == 401 and b"used already" in body
    mesh.still_answers()


def test_the_kubeconfig_bearer_token_works_for_scripts(mesh: Mesh) -> None:
    path = f"/api/namespaces/{NS}/istio/VirtualService"
    status, _, body = mesh.send("POST", path, {**mesh.bearer(), "Content-Type": "application/json"},
                                json.dumps(ABORT_RATINGS))
    assert status == 201, body
    assert "abort-ratings" in mesh.objects(VS_GROUP)
    status, _, body = mesh.send("DELETE", f"{path}/abort-ratings", mesh.bearer())
    assert status == 200, body
    assert "abort-ratings" not in mesh.objects(VS_GROUP)
    mesh.still_answers()


def test_the_login_token_file_is_private(mesh: Mesh) -> None:
    d: Path = mesh.d.home / "console"
    assert d.stat().st_mode & 0o077 == 0
    for f in ("login-token", "session-key"):
        assert (d / f).stat().st_mode & 0o777 == 0o600


def test_sessions_survive_a_daemon_restart(mesh: Mesh) -> None:
    cookie, _ = mesh.login()
    old = mesh.d
    stop_daemon(old)
    mesh.d = start_daemon(old.home, port=old.api_port, xds_port=old.xds_port,
                          extra=["--console-port", str(mesh.console_port), "--metrics-port", str(mesh.metrics_port)])
    status, _, body = mesh.send("GET", f"/api/namespaces/{NS}/services", cookie)
    assert status == 200, body
    mesh.still_answers()
