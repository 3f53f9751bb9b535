"""Large request bodies are decoded and admitted in a worker process (issue 9, point 2): the API keeps answering
meanwhile, the answers are the ones a small body gets, a worker killed mid-decode costs that request only, a
full pool answers 429, and the daemon's stop leaves no worker behind.

One daemon with a pool of one worker and no backlog (`SLUICE_BODY_WORKERS=1`, `SLUICE_BODY_BACKLOG=0`), so
that a second large body while one is decoded is refused.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import TOOLS, Daemon, child_processes, start_daemon, stop_daemon
from tests.integration.test_bounded_input import _Poller, laughs_vs

BASE = "/apis/networking.istio.io/v1/namespaces/default/virtualservices"
WORKER = "sluice.api.body_worker"
LARGE = 64 * 1024  # bodies over this go to the worker


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    saved = {k: os.environ.get(k) for k in ("SLUICE_BODY_WORKERS", "SLUICE_BODY_BACKLOG")}
    os.environ.update({"SLUICE_BODY_WORKERS": "1", "SLUICE_BODY_BACKLOG": "0"})
    try:
        d = start_daemon(tmp_path_factory.mktemp("body-worker-home"), extra=["--no-runtime"])
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    yield d
    stop_daemon(d)


def _req(d: Daemon, method: str, path: str, body: bytes | None = None, ctype: str = "application/json",
         timeout: float = 180) -> tuple[int, dict[str, Any], dict[str, str]]:
    ctx = ssl.create_default_context(cafile=str(d.home / "pki" / "ca.crt"))
    req = urllib.request.Request(d.api_url + path, data=body, method=method)
    req.add_header("Authorization", f"Bearer {d.token}")
    if body is not None:
        req.add_header("Content-Type", ctype)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"{}"), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}"), dict(e.headers)


def _workers(d: Daemon) -> list[int]:
    """The daemon's worker processes."""
    assert d.proc is not None
    return child_processes(d.proc.pid, WORKER)


def _bytes_read(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar")


def _wait(cond: Any, what: str, deadline_s: float = 60) -> Any:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def big_vs(name: str, namespace: str, routes: int) -> dict[str, Any]:
    """A VirtualService of `routes` header-matched HTTP routes (about 360 bytes of JSON each) and a default."""
    http = [{"name": f"r{i}",
             "match": [{"uri": {"prefix": f"/api/v1/products/{i}/reviews"}, "headers": {"end-user": {"exact": f"u{i}"}}}],
             "route": [{"destination": {"host": "details", "port": {"number": 9080}}, "weight": 80},
                       {"destination": {"host": "details", "port": {"number": 9080}}, "weight": 20}],
             "timeout": "3s", "retries": {"attempts": 2, "perTryTimeout": "1s"}} for i in range(routes)]
    http.append({"route": [{"destination": {"host": "details"}}]})
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": name, "namespace": namespace}, "spec": {"hosts": ["details"], "http": http}}


def big_vs_yaml(name: str, routes: int = 7400) -> bytes:
    doc = big_vs(name, "default", routes)
    return yaml.dump(doc, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper)).encode()


def _idle_worker(d: Daemon) -> int:
    """A worker that has finished a job (started by a large body if none runs), and how much it has read."""
    if not _workers(d):
        body = json.dumps({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                           "metadata": {"name": "warm"},
                           "spec": {"hosts": ["warm"], "http": [{"route": [{"destination": {"host": "warm"}}]}]}}
                          ).encode() + b" " * LARGE
        assert _req(d, "POST", BASE + "?dryRun=All", body)[0] == 201
    (pid,) = _workers(d)
    return pid


class _Background:
    """A request sent from a thread; `result` once it has been answered."""

    def __init__(self, d: Daemon, method: str, path: str, body: bytes, ctype: str) -> None:
        self.result: tuple[int, dict[str, Any], dict[str, str]] | None = None
        self.thread = threading.Thread(target=self._run, args=(d, method, path, body, ctype), daemon=True)
        self.thread.start()

    def _run(self, *args: Any) -> None:
        try:
            self.result = _req(*args)
        except OSError as e:  # the connection closed without an answer
            self.result = (0, {"error": str(e)}, {})

    def join(self) -> tuple[int, dict[str, Any], dict[str, str]]:
        self.thread.join(240)
        assert self.result is not None, "answered"
        return self.result


def _in_worker(d: Daemon, method: str, path: str, body: bytes, ctype: str) -> tuple[int, _Background]:
    """Send `body` and wait until the (single, idle) worker has read all of it: it is decoding now."""
    pid = _idle_worker(d)
    before = _bytes_read(pid)
    bg = _Background(d, method, path, body, ctype)
    _wait(lambda: _bytes_read(pid) >= before + len(body) or bg.result is not None, "the worker to read the body")
    assert bg.result is None, "still decoding"
    return pid, bg


def test_a_29_mib_yaml_body_is_admitted_while_the_api_answers(daemon: Daemon) -> None:
    body = big_vs_yaml("details-yaml")
    assert 2.8 * 2**20 < len(body) < 3 * 2**20
    with _Poller(daemon):  # every GET while it is decoded is answered 200
        code, obj, _ = _req(daemon, "POST", BASE + "?dryRun=All", body, "application/yaml")
    assert code == 201, obj
    assert obj["kind"] == "VirtualService" and obj["apiVersion"] == "networking.istio.io/v1"
    assert obj["metadata"]["name"] == "details-yaml" and obj["metadata"]["uid"]
    assert len(obj["spec"]["http"]) == 7401
    assert _workers(daemon), "decoded in a worker process"
    assert _req(daemon, "GET", f"{BASE}/details-yaml")[0] == 404, "a dry run stores nothing"


def _padded_yaml(text: str) -> bytes:
    return (text + "#" + "x" * LARGE + "\n").encode()


def _padded_json(text: str) -> bytes:
    return (text + " " * LARGE).encode()


VS_JSON = ('{"apiVersion":"networking.istio.io/v1","kind":"VirtualService","metadata":{"name":"%s"},'
           '"spec":{"hosts":["reviews"],"http":[%s]}}')


@pytest.mark.parametrize(("text", "ctype"), [
    (laughs_vs("bomb"), "application/yaml"),  # alias bomb: 400 naming the limit
    ("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: wide}\nspec:\n"
     "  hosts: [reviews]\n  s: &s " + "x" * 400_000 + "\n  l: [" + ", ".join(["*s"] * 10) + "]\n",
     "application/yaml"),  # expands past 3 MiB: 413
    ('{"apiVersion":"networking.istio.io/v1","kind":"VirtualService","metadata":{"name":"deep"},'
     '"spec":{"hosts":["r"],"x":' + "[" * 5000 + "]" * 5000 + "}}", "application/json"),  # JSON depth
    ("a: [" * 200 + "]" * 200 + "\n", "application/yaml"),  # YAML depth
    (VS_JSON % ("nan", '{"fault":{"abort":{"httpStatus":500,"percentage":{"value":NaN}}},'
                       '"route":[{"destination":{"host":"ratings"}}]}'), "application/json"),
    ('{"apiVersion": "networking.istio.io/v1", "kind" "VirtualService"}', "application/json"),  # malformed
    ("apiVersion: v1\nkind: a: b\n", "application/yaml"),  # malformed YAML
    (VS_JSON % ("weights", '{"route":[{"destination":{"host":"a"},"weight":80},'
                           '{"destination":{"host":"b"},"weight":10}]}'), "application/json"),  # Istio: 422
    (VS_JSON % ("unknown", '{"route":[{"destination":{"host":"a"}}],"bogus":1}'), "application/json"),  # strict
    ('{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}', "application/json"),  # wrong kind
    ('["a list"]', "application/json"),
])
def test_a_large_body_gets_the_answer_a_small_one_gets(daemon: Daemon, text: str, ctype: str) -> None:
    small = text.encode()
    large = _padded_yaml(text) if ctype == "application/yaml" else _padded_json(text)
    if len(small) > LARGE:  # already large: compare with the answer the issue asks for
        code, status, _ = _req(daemon, "POST", BASE, large, ctype)
        assert code == 413 and status["message"] == "Request entity too large: limit is 3145728", status
        return
    want = _req(daemon, "POST", BASE, small, ctype)[:2]
    assert want[0] in (400, 413, 422), want
    assert _req(daemon, "POST", BASE, large, ctype)[:2] == want


def test_alias_bomb_in_a_large_body_names_the_limit(daemon: Daemon) -> None:
    code, status, _ = _req(daemon, "POST", BASE, _padded_yaml(laughs_vs("bomb")), "application/yaml")
    assert code == 400 and "excessive aliasing" in status["message"] and "10000" in status["message"], status


def test_large_patches_and_puts_answer_as_small_ones(daemon: Daemon) -> None:
    obj = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "target"},
           "spec": {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews"}}]}]}}
    assert _req(daemon, "POST", BASE, json.dumps(obj).encode())[0] == 201
    merge = "application/merge-patch+json"
    for patch in ['{"spec": {"hosts" ["x"]}}', '{"spec": {"http": [{"route": [{"destination": {"host": "a"}, '
                  '"weight": 80}, {"destination": {"host": "b"}, "weight": 10}]}]}}',
                  '{"spec": {"hosts": [1e999]}}', "[1, 2]"]:
        want = _req(daemon, "PATCH", f"{BASE}/target", patch.encode(), merge)[:2]
        assert want[0] in (400, 422), want
        assert _req(daemon, "PATCH", f"{BASE}/target", _padded_json(patch), merge)[:2] == want
    # kube-apiserver's order: an object that does not exist is a 404 before the patch is even decoded
    for body in (b"{", _padded_json("{")):
        code, status, _ = _req(daemon, "PATCH", f"{BASE}/absent", body, merge)
        assert code == 404 and status["message"] == 'virtualservices.networking.istio.io "absent" not found', status
    # a valid large patch and PUT are applied and stored
    code, patched, _ = _req(daemon, "PATCH", f"{BASE}/target", _padded_json('{"metadata": {"labels": {"v": "2"}}}'),
                            merge)
    assert code == 200 and patched["metadata"]["labels"] == {"v": "2"}, patched
    assert _req(daemon, "GET", f"{BASE}/target")[1] == patched
    patched["spec"]["hosts"] = ["ratings"]
    code, put, _ = _req(daemon, "PUT", f"{BASE}/target", _padded_json(json.dumps(patched)))
    assert code == 200 and put["spec"]["hosts"] == ["ratings"], put
    assert int(put["metadata"]["resourceVersion"]) > int(patched["metadata"]["resourceVersion"])
    code, dry, _ = _req(daemon, "PATCH", f"{BASE}/target?dryRun=All",
                        _padded_json('{"spec": {"hosts": ["details"]}}'), merge)
    assert code == 200 and dry["spec"]["hosts"] == ["details"], dry
    assert _req(daemon, "GET", f"{BASE}/target")[1] == put, "a dry run changes nothing"


def test_a_full_pool_answers_429_with_retry_after(daemon: Daemon) -> None:
    _, bg = _in_worker(daemon, "POST", BASE + "?dryRun=All", big_vs_yaml("first"), "application/yaml")
    small_large = _padded_json(VS_JSON % ("second", '{"route":[{"destination":{"host":"a"}}]}'))
    code, status, headers = _req(daemon, "POST", BASE, small_large)
    assert code == 429 and status["reason"] == "TooManyRequests", status
    assert status["message"] == "Too many requests, please try again later."
    assert headers.get("Retry-After") == "1"
    assert bg.join()[0] == 201
    assert _req(daemon, "POST", BASE, small_large)[0] == 201, "accepted once the worker is free"


def test_a_worker_killed_mid_decode_fails_that_request_only(daemon: Daemon) -> None:
    pid, bg = _in_worker(daemon, "POST", BASE, big_vs_yaml("killed"), "application/yaml")
    os.kill(pid, signal.SIGKILL)
    code, status, _ = bg.join()
    assert code == 500 and status["reason"] == "InternalError", status
    assert "killed by SIGKILL" in status["message"] and "nothing was changed" in status["message"], status
    assert _req(daemon, "GET", f"{BASE}/killed")[0] == 404
    code, obj, _ = _req(daemon, "POST", BASE, big_vs_yaml("after-kill", routes=500), "application/yaml")
    assert code == 201 and obj["metadata"]["name"] == "after-kill", obj
    assert _req(daemon, "GET", f"{BASE}/after-kill")[1] == obj, "the answer is the stored object"
    assert pid not in _workers(daemon), "a fresh worker"


def test_the_daemon_stop_leaves_no_worker(tmp_path: Path) -> None:
    d = start_daemon(tmp_path / "home", extra=["--no-runtime"])
    try:
        body = _padded_json(VS_JSON % ("one", '{"route":[{"destination":{"host":"a"}}]}'))
        assert _req(d, "POST", BASE, body)[0] == 201
        pids = _wait(lambda: _workers(d), "a worker")
        # and one in the middle of a job when the daemon stops
        _, bg = _in_worker(d, "POST", BASE + "?dryRun=All", big_vs_yaml("at-stop"), "application/yaml")
    finally:
        stop_daemon(d)
    assert d.proc is not None and d.proc.returncode == 0
    code, status, _ = bg.join()
    assert code in (0, 503), status  # answered at once (or the connection closed), not left hanging
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists(), f"worker {pid} outlived the daemon"


def test_large_service_and_scale_bodies_are_decoded_in_the_worker_and_admitted(daemon: Daemon) -> None:
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "big-svc"},
           "spec": {"selector": {"app": "x"}, "ports": [{"port": 9080}]}}
    code, obj, _ = _req(daemon, "POST", "/api/v1/namespaces/default/services", _padded_json(json.dumps(svc)))
    assert code == 201 and obj["spec"]["clusterIP"].startswith("10.96."), obj
    code, obj, _ = _req(daemon, "PATCH", "/api/v1/namespaces/default/services/big-svc",
                        _padded_json('{"metadata": {"labels": {"big": "yes"}}}'), "application/merge-patch+json")
    assert code == 200 and obj["metadata"]["labels"] == {"big": "yes"}, obj
    code, status, _ = _req(daemon, "PATCH", "/api/v1/namespaces/default/services/absent", _padded_json("{"),
                           "application/merge-patch+json")
    assert code == 404, status
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "big-dep"},
           "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "d"}},
                    "template": {"metadata": {"labels": {"app": "d"}},
                                 "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["true"]}]}}}}
    assert _req(daemon, "POST", "/apis/apps/v1/namespaces/default/deployments", json.dumps(dep).encode())[0] == 201
    code, scale, _ = _req(daemon, "PATCH", "/apis/apps/v1/namespaces/default/deployments/big-dep/scale",
                          _padded_json('{"spec": {"replicas": 3}}'), "application/merge-patch+json")
    assert code == 200 and scale["kind"] == "Scale" and scale["spec"]["replicas"] == 3, scale
    code, status, _ = _req(daemon, "PATCH", "/apis/apps/v1/namespaces/default/deployments/big-dep/scale",
                           _padded_json('{"spec": {"replicas" 3}}'), "application/merge-patch+json")
    want = _req(daemon, "PATCH", "/apis/apps/v1/namespaces/default/deployments/big-dep/scale",
                b'{"spec": {"replicas" 3}}', "application/merge-patch+json")
    assert (code, status) == want[:2] and code == 400, status


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_worker_does_not_outlive_a_killed_daemon(tmp_path: Path) -> None:
    d = start_daemon(tmp_path / "home", extra=["--no-runtime"])
    try:
        _, bg = _in_worker(d, "POST", BASE + "?dryRun=All", big_vs_yaml("orphan"), "application/yaml")
        (pid,) = _workers(d)
        assert d.proc is not None
        d.proc.kill()  # kill -9: no shutdown runs; the kernel stops the worker (PR_SET_PDEATHSIG)
        d.proc.wait()
        _wait(lambda: not _running(pid), "the worker to stop with its daemon", 30)
        bg.join()
    finally:
        stop_daemon(d)


def test_kubectl_applies_a_large_virtual_service_twice(daemon: Daemon, tmp_path: Path) -> None:
    """kubectl sends the create as JSON and the second apply as a merge patch carrying the
    last-applied annotation (the whole object): both over 64 KiB, both through the worker."""
    def apply(routes: int) -> subprocess.CompletedProcess[str]:
        (tmp_path / "vs.yaml").write_bytes(big_vs_yaml("applied", routes=routes))
        return subprocess.run([str(TOOLS / "kubectl-1.35"), "apply", "-f", str(tmp_path / "vs.yaml")],
                              env=daemon.env, capture_output=True, text=True, timeout=120)

    first = apply(300)
    assert first.returncode == 0 and "created" in first.stdout, first.stderr
    second = apply(301)
    assert second.returncode == 0 and "configured" in second.stdout, second.stderr
    code, obj, _ = _req(daemon, "GET", f"{BASE}/applied")
    assert code == 200 and len(obj["spec"]["http"]) == 302 and obj["metadata"]["generation"] == 2
