"""The daemon's lifecycle from outside: `sluice up/down/status`, stale pid files, and kill -9 durability."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port, move_gateway_ports, start_daemon, stop_daemon, wait_for
from tests.integration.test_api_semantics import VS, _http

SLUICE = str(Path(sys.executable).parent / "sluice")


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)
    except OSError:
        return 0


def _sluice(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SLUICE_HOME": str(home)}
    return subprocess.run([SLUICE, *args], env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)


def _other_ports() -> list[str]:
    """Free ports for the daemon's xDS, metrics and console listeners, so tests never meet a running demo."""
    return ["--xds-port", str(free_port()), "--metrics-port", str(free_port()), "--console-port", str(free_port())]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_kill_9_loses_no_acknowledged_write(tmp_path: Path) -> None:
    d = start_daemon(tmp_path / "home")
    try:
        names = []
        for i in range(40):
            body = json.dumps({**VS, "metadata": {"name": f"vs-{i}"}}).encode()
            code, obj = _http(d, "POST", "/apis/networking.istio.io/v1/namespaces/default/virtualservices", body)
            assert code == 201, obj
            names.append(obj["metadata"]["name"])
        code, last = _http(d, "PATCH", "/apis/networking.istio.io/v1/namespaces/default/virtualservices/vs-0",
                           b'{"metadata":{"labels":{"acked":"yes"}}}', "application/merge-patch+json")
        assert code == 200
    finally:
        assert d.proc is not None
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait()
    d2 = start_daemon(tmp_path / "home", port=d.api_port)
    try:
        code, listed = _http(d2, "GET", "/apis/networking.istio.io/v1/namespaces/default/virtualservices")
        assert code == 200
        assert sorted(i["metadata"]["name"] for i in listed["items"]) == sorted(names)
        vs0 = next(i for i in listed["items"] if i["metadata"]["name"] == "vs-0")
        assert vs0["metadata"]["labels"] == {"acked": "yes"}
        # The global revision continues after the restart.
        assert int(listed["metadata"]["resourceVersion"]) >= int(last["metadata"]["resourceVersion"])
    finally:
        stop_daemon(d2)


@pytest.mark.skipif(not Path(SLUICE).exists(), reason="the sluice console script is not installed")
def test_up_status_down(tmp_path: Path) -> None:
    home = tmp_path / "home"
    port = free_port()
    cp = _sluice(home, "up", "--api-port", str(port), *_other_ports())
    assert cp.returncode == 0, cp.stderr
    assert f"https://127.0.0.1:{port}" in cp.stdout
    try:
        assert (home / "kubeconfig").exists() and (home / "pki" / "ca.crt").exists()
        cp = _sluice(home, "up", "--api-port", str(port), *_other_ports())
        assert cp.returncode == 0 and "already running" in cp.stdout
        cp = _sluice(home, "status")
        assert cp.returncode == 0, cp.stdout + cp.stderr
        assert "API server" in cp.stdout and "ready" in cp.stdout
        assert any(line.split()[:1] == ["console"] and line.split()[1].startswith("http://127.0.0.1:")
                   and "token=" in line.split()[1] for line in cp.stdout.splitlines()), cp.stdout
    finally:
        cp = _sluice(home, "down")
    assert cp.returncode == 0 and "stopped" in cp.stdout
    assert not _listening(port)
    assert _sluice(home, "status").returncode != 0
    assert "not running" in _sluice(home, "down").stdout
    cp = _sluice(home, "console")
    assert cp.returncode == 1 and "sluice is not running" in cp.stderr


@pytest.mark.skipif(not Path(SLUICE).exists(), reason="the sluice console script is not installed")
def test_stale_pid_file_is_handled(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    (home / "daemon.pid").write_text(str(dead.pid))
    port = free_port()
    cp = _sluice(home, "up", "--api-port", str(port), *_other_ports())
    try:
        assert cp.returncode == 0, cp.stdout + cp.stderr
        assert "already running" not in cp.stdout
        assert _listening(port)
    finally:
        _sluice(home, "down")


def test_relative_weights_mesh_setting(tmp_path: Path) -> None:
    """`relative_weights: true` in SLUICE_HOME/config.yaml switches to Istio >= 1.15 weight semantics."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.yaml").write_text("relative_weights: true\n")
    d = start_daemon(home)
    try:
        vs = json.loads(json.dumps(VS))
        vs["spec"]["http"][0]["route"][0]["weight"] = 80
        code, obj = _http(d, "POST", "/apis/networking.istio.io/v1/namespaces/default/virtualservices",
                          json.dumps(vs).encode())
        assert code == 201, obj
        vs["metadata"]["name"] = "zero"
        for r in vs["spec"]["http"][0]["route"]:
            r["weight"] = 0
        code, obj = _http(d, "POST", "/apis/networking.istio.io/v1/namespaces/default/virtualservices",
                          json.dumps(vs).encode())
        assert code == 422 and "total destination weight = 0" in obj["message"]
    finally:
        stop_daemon(d)


@pytest.mark.skipif(not Path(SLUICE).exists(), reason="the sluice console script is not installed")
def test_demo_is_idempotent(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    ports = {k: free_port() for k in ("api_port", "xds_port", "metrics_port", "console_port")}
    (home / "config.yaml").write_text("".join(f"{k}: {v}\n" for k, v in ports.items()))
    gateway = move_gateway_ports(home)  # Istio's 80, 443, ... move to free ports: the test never binds them
    console = f"http://127.0.0.1:{ports['console_port']}/graph?namespace=tutorial"
    try:
        cp = _sluice(home, "demo")
        assert cp.returncode == 0, cp.stdout + cp.stderr
        assert console + "&token=" in cp.stdout
        productpage = f"http://127.0.0.1:{gateway[80]}/productpage"
        assert productpage in cp.stdout
        wait_for(lambda: _status(productpage) == 200, timeout=30)
        assert "namespace/tutorial created" in cp.stdout
        assert "virtualservice.networking.istio.io/reviews created" in cp.stdout
        assert "deployment.apps/reviews-v3 created" in cp.stdout
        cp = _sluice(home, "demo")
        assert cp.returncode == 0, cp.stdout + cp.stderr
        assert "already running" in cp.stdout and "virtualservice.networking.istio.io/reviews unchanged" in cp.stdout
        assert cp.stderr == ""
        cp = _sluice(home, "get", "vs", "-n", "tutorial")
        assert cp.stdout.splitlines()[0].split() == ["NAME", "GATEWAYS", "HOSTS", "AGE"]
        # The ingress gateway serves Bookinfo's productpage to a browser on 127.0.0.1 at its Service's http2 port.
        with urllib.request.urlopen(productpage, timeout=10) as r:
            page = r.read().decode()
        assert "<title>Simple Bookstore App</title>" in page and "Reviews served by:" in page
        cp = _sluice(home, "get", "pods", "-n", "tutorial", "-l", "app=traffic-generator")
        assert "Running" in cp.stdout
        # `sluice console` names the console with a login token; opening it logs in and serves the built UI.
        cp = _sluice(home, "console")
        url = cp.stdout.strip()
        assert cp.returncode == 0 and url.startswith(console + "&token="), cp.stdout + cp.stderr
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        with browser.open(url, timeout=10) as r:
            html = r.read().decode()
            assert r.url == console  # redirected to the same page without the token
        assert '<div id="root"></div>' in html and "<title>Sluice console</title>" in html
    finally:
        _sluice(home, "down")
