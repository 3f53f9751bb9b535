"""A large config push runs off the daemon's event loop (issue 9, point 2), against a real daemon with a real
Envoy sidecar.

A VirtualService of a few thousand routes (about a megabyte) takes seconds to translate. While it is pushed, the
API keeps answering, and the push completes: a request routed through the sidecar reaches the last of its routes.
The same object replaced with a YAML body of the same size, then patched with `kubectl patch` — decoded
and admitted off the loop too — is pushed after it, so the newest config is what the sidecar ends up with. How long the API waits meanwhile is measured in
`bench/push_stall_bench.py`, not here.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import TOOLS, Daemon, start_daemon, stop_daemon, wait_for

NS = "bigpush"
SAMPLES = Path(__file__).resolve().parents[2] / "src" / "sluice" / "samples"
VS_PATH = f"/apis/networking.istio.io/v1/namespaces/{NS}/virtualservices"
ROUTES = 3000
TIMEOUT = 120.0


def big_virtual_service(marker: str) -> dict[str, Any]:
    """Routes on `sleep` that never match, then one that answers `marker` for `x-big: last`."""
    http: list[dict[str, Any]] = [
        {"name": f"r{i}", "match": [{"uri": {"prefix": f"/api/v1/products/{i}/reviews"},
                                     "headers": {"end-user": {"exact": f"user-{i}"}}}],
         "route": [{"destination": {"host": "sleep"}, "weight": 80}, {"destination": {"host": "sleep"}, "weight": 20}],
         "timeout": "3s", "retries": {"attempts": 2, "perTryTimeout": "1s"}} for i in range(ROUTES)]
    http.append({"name": "last", "match": [{"headers": {"x-big": {"exact": "last"}}}],
                 "directResponse": {"status": 418, "body": {"string": marker}}})
    http.append({"route": [{"destination": {"host": "sleep"}}]})
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "sleep-big", "namespace": NS}, "spec": {"hosts": ["sleep"], "http": http}}


class Api:
    def __init__(self, d: Daemon) -> None:
        self.d = d
        self.ctx = ssl.create_default_context(cafile=str(d.home / "pki" / "ca.crt"))

    def call(self, method: str, path: str, body: bytes | None = None,
             ctype: str = "application/json") -> tuple[int, bytes]:
        req = urllib.request.Request(self.d.api_url + path, data=body, method=method,
                                     headers={"Authorization": f"Bearer {self.d.token}", "Content-Type": ctype})
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=TIMEOUT) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Api, str, Callable[..., str]]]:
    tmp = tmp_path_factory.mktemp("large-push")
    d = start_daemon(tmp / "home")

    def kubectl(*args: str, input: str | None = None) -> str:
        cp = subprocess.run([str(TOOLS / "kubectl-1.35"), f"--cache-dir={tmp / 'kc'}", "-n", NS, *args],
                            input=input, env=d.env, capture_output=True, text=True, timeout=TIMEOUT)
        assert cp.returncode == 0, f"kubectl {' '.join(args)}: {cp.stdout}{cp.stderr}"
        return cp.stdout

    try:
        kubectl("create", "namespace", NS)
        kubectl("apply", "-f", str(SAMPLES / "sleep.yaml"))

        def sleep_ip() -> str:
            pods = json.loads(kubectl("get", "pods", "-o", "json"))["items"]
            return next((str(p["status"]["podIP"]) for p in pods if (p.get("status") or {}).get("podIP")
                         and all(c.get("ready") for c in p["status"].get("containerStatuses") or [{}])), "")

        wait_for(sleep_ip, timeout=TIMEOUT, interval=0.25)
        yield Api(d), sleep_ip(), kubectl
    finally:
        stop_daemon(d)


def routed(sidecar_ip: str) -> tuple[int, str]:
    """`GET http://sleep/` with `x-big: last`, sent through the sleep pod's sidecar (its HTTP proxy port)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": f"http://{sidecar_ip}:15001"}))
    req = urllib.request.Request("http://sleep/", headers={"x-big": "last"})
    try:
        with opener.open(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return 0, str(e)


def test_the_api_answers_while_a_large_virtual_service_is_pushed(mesh: tuple[Api, str, Callable[..., str]],
                                                                tmp_path: Path) -> None:
    api, sidecar_ip, kubectl = mesh
    wait_for(lambda: routed(sidecar_ip)[0] not in (0, 418), timeout=TIMEOUT, interval=0.25)  # the sidecar serves

    answers: list[tuple[int, str]] = []  # (status, phase) of every API GET while the probe runs
    phase = ["before"]
    stop = threading.Event()

    def probe() -> None:
        while not stop.is_set():
            status, _ = api.call("GET", f"/api/v1/namespaces/{NS}")
            answers.append((status, phase[0]))

    th = threading.Thread(target=probe, daemon=True)
    th.start()
    try:
        wait_for(lambda: answers, timeout=TIMEOUT)
        status, body = api.call("POST", VS_PATH, json.dumps(big_virtual_service("first")).encode())
        assert status == 201, body[:500]
        phase[0] = "pushing"
        # The push reaches Envoy: the last of the routes answers.
        wait_for(lambda: routed(sidecar_ip) == (418, "first"), timeout=TIMEOUT, interval=0.1)
        phase[0] = "pushed"
        wait_for(lambda: any(p == "pushed" for _, p in answers), timeout=TIMEOUT)
    finally:
        stop.set()
        th.join(TIMEOUT)
    assert all(status == 200 for status, _ in answers), answers
    # The API answered between the create and the moment the sidecar served the new route.
    assert any(p == "pushing" for _, p in answers), answers

    # The same object as a ~1 MB YAML replace: decoded off the loop, pushed after the first config, and the
    # newer one is what the sidecar keeps.
    current = json.loads(api.call("GET", f"{VS_PATH}/sleep-big")[1])
    newer = big_virtual_service("second")
    newer["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
    body = yaml.safe_dump(newer).encode()
    assert len(body) > 1_000_000
    status, text = api.call("PUT", f"{VS_PATH}/sleep-big", body, "application/yaml")
    assert status == 200, text[:500]
    wait_for(lambda: routed(sidecar_ip) == (418, "second"), timeout=TIMEOUT, interval=0.1)
    assert api.call("GET", f"/api/v1/namespaces/{NS}")[0] == 200

    # A third version as a ~1 MB merge patch (`kubectl patch`; client-side apply cannot carry an object this
    # large in its annotation), applied and admitted off the loop too.
    patch_file = tmp_path / "patch.json"
    patch_file.write_text(json.dumps({"spec": big_virtual_service("third")["spec"]}))
    kubectl("patch", "virtualservice", "sleep-big", "--type", "merge", "--patch-file", str(patch_file))
    wait_for(lambda: routed(sidecar_ip) == (418, "third"), timeout=TIMEOUT, interval=0.1)
    assert json.loads(kubectl("get", "virtualservice", "sleep-big", "-o", "json"))["spec"]["http"][-2][
        "directResponse"]["body"]["string"] == "third"
