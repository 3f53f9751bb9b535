"""An in-process kubelet over a real Registry and SQLite store, with the real API server for logs.

Pods are created directly through the registry; their containers are real processes (`python -c` HTTP
servers, crashing commands, Envoy). Everything is observed from outside: the stored Pod status, HTTP
requests to the pod IPs, `GET pods/<name>/log` over HTTP, files the programs write.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from sluice.api.errors import ApiError
from sluice.api.registry import ApiOptions, Registry
from sluice.api.server import make_app
from sluice.daemon.state import Home
from sluice.resources.kinds import ResourceType, by_kind
from sluice.runtime.kubelet import Kubelet, KubeletOptions
from sluice.store.sqlite import Store
from tests.conftest import free_port

_POD = by_kind("", "Pod")
assert _POD is not None
POD: ResourceType = _POD
TOKEN = "t0k3n"

# An HTTP server on $SLUICE_BIND:<port>: answers "<hostname> <path>", 500 for /fail, 200 on /ready only while
# the file ./ready exists; on SIGTERM it appends a line to $MARKER (if set) and exits 0.
SERVER = r"""
import http.server, os, signal, sys, time, urllib.request
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/ready" and not os.path.exists("ready"):
            code = 503
        else:
            code = 500 if self.path == "/fail" else 200
        body = (os.environ["HOSTNAME"] + " " + self.path).encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        print("GET", self.path, flush=True)
    def log_message(self, *a):
        pass
def term(*_):
    marker = os.environ.get("MARKER")
    if marker:
        probe = os.environ.get("PROBE_URL")
        seen = ""
        if probe:
            try:
                seen = str(urllib.request.urlopen(probe, timeout=2).status)
            except Exception as e:
                seen = "error " + type(e).__name__
        with open(marker, "a") as f:
            f.write("%f SIGTERM %s\n" % (time.time(), seen))
    print("got SIGTERM", flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, term)
srv = http.server.HTTPServer((os.environ["SLUICE_BIND"], int(sys.argv[1])), H)
print("listening on", os.environ["SLUICE_BIND"], sys.argv[1], flush=True)
srv.serve_forever()
"""


def server_container(name: str = "app", port: int = 8080, **extra: Any) -> dict[str, Any]:
    c: dict[str, Any] = {"name": name, "image": "local/python", "command": [sys.executable, "-c", SERVER, str(port)],
                         "ports": [{"containerPort": port}]}
    c.update(extra)
    return c


def pod(name: str, containers: list[dict[str, Any]], *, sidecar: bool = False, **spec: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": {"app": name}}
    if not sidecar:
        meta["annotations"] = {"sidecar.istio.io/inject": "false"}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {"containers": containers, **spec}}


def http_get(url: str) -> tuple[int, str]:
    """Status and body of a GET, also for error statuses."""
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def listening(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


@dataclass
class Cluster:
    tmp: Path
    store: Store
    registry: Registry
    home: Home
    options: KubeletOptions
    kubelet: Kubelet
    server: TestServer
    http: ClientSession
    holder: dict[str, Kubelet]  # what the log route calls: swapped on a simulated daemon restart

    def create(self, obj: dict[str, Any], ns: str = "default") -> dict[str, Any]:
        return self.registry.create(POD, "v1", ns, obj).object

    def get(self, name: str, ns: str = "default") -> dict[str, Any] | None:
        try:
            return self.registry.get(POD, "v1", ns, name)
        except ApiError:
            return None

    def status(self, name: str, ns: str = "default") -> dict[str, Any]:
        p = self.get(name, ns)
        return (p or {}).get("status") or {}

    def container(self, name: str, container: str, ns: str = "default") -> dict[str, Any]:
        for s in self.status(name, ns).get("containerStatuses") or []:
            if s["name"] == container:
                return dict(s)
        return {}

    def ready(self, name: str, ns: str = "default") -> bool:
        return any(c["type"] == "Ready" and c["status"] == "True" for c in self.status(name, ns).get("conditions") or [])

    async def logs(self, name: str, ns: str = "default", **query: str) -> tuple[int, str]:
        url = self.server.make_url(f"/api/v1/namespaces/{ns}/pods/{name}/log")
        async with self.http.get(url, params=query, headers={"Authorization": f"Bearer {TOKEN}"}) as r:
            return r.status, await r.text()


async def wait_until(pred: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05) -> Any:
    """Poll until pred() is truthy; fail with the last value (never a timed assertion)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met in {timeout}s; last value: {last!r}")


async def start_cluster(tmp: Path, options: KubeletOptions | None = None) -> Cluster:
    store = Store(tmp / "db")
    registry = Registry(store, ApiOptions(graceful_pods=True))
    registry.ensure_namespace("default")
    home = Home(tmp / "home")
    home.root.mkdir(parents=True, exist_ok=True)
    opts = options or KubeletOptions(backoff_base=0.3, backoff_max=2.0, drain_seconds=0.2, down_grace_seconds=3)
    kubelet = Kubelet(registry, store, home.root, xds_address=("127.0.0.1", free_port()), options=opts)
    holder: dict[str, Kubelet] = {"k": kubelet}

    async def logs(request: Any, pod_obj: dict[str, Any], query: dict[str, str]) -> Any:
        return await holder["k"].log_source(request, pod_obj, query)

    server = TestServer(make_app(registry, TOKEN, logs=logs), host="127.0.0.1")
    await server.start_server()
    await kubelet.start()
    return Cluster(tmp, store, registry, home, opts, kubelet, server, ClientSession(), holder)


async def restart_kubelet(c: Cluster) -> Kubelet:
    """Stop the kubelet leaving pods running, then start a new one (a daemon restart)."""
    await c.kubelet.stop(stop_pods=False)
    k = Kubelet(c.registry, c.store, c.home.root, xds_address=("127.0.0.1", free_port()), options=c.options)
    c.kubelet = k
    c.holder["k"] = k
    await k.start()
    return k


async def stop_cluster(c: Cluster) -> None:
    await c.kubelet.stop(stop_pods=True)
    await c.http.close()
    await c.server.close()
    c.store.close()
