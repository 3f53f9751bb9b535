"""Hostile bodies through the real API server: each attack is refused with kube-apiserver's kind of Status,
nothing is stored, and the API keeps answering (issue 9, points 3 and 4)."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TOOLS, Daemon, start_daemon, stop_daemon
from tests.integration.test_api_semantics import VS, _http

BASE = "/apis/networking.istio.io/v1/namespaces/default/virtualservices"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = start_daemon(tmp_path_factory.mktemp("bounded-home"), extra=["--no-runtime"])
    yield d
    stop_daemon(d)


@pytest.fixture(autouse=True)
def api_answers_after(daemon: Daemon) -> Iterator[None]:
    yield
    assert _http(daemon, "GET", "/api/v1/namespaces")[0] == 200, "the API answers after the attack"


def _names(d: Daemon) -> list[str]:
    code, body = _http(d, "GET", BASE)
    assert code == 200, body
    return sorted(i["metadata"]["name"] for i in body["items"])


class _Poller:
    """GETs the API in a loop while an attack runs; every answer must be a 200."""

    def __init__(self, d: Daemon) -> None:
        self.d = d
        self.codes: list[int] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:  # at least one answer, however short the attack
            self.codes.append(_http(self.d, "GET", "/api/v1/namespaces")[0])
            if self.stop.wait(0.05):
                return

    def __enter__(self) -> _Poller:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)
        assert self.codes and set(self.codes) == {200}, self.codes


def laughs_vs(name: str, levels: int = 9, fanout: int = 9) -> str:
    lines = ["apiVersion: networking.istio.io/v1", "kind: VirtualService", f"metadata: {{name: {name}}}",
             "spec:", "  hosts: [reviews]", '  a0: &a0 ["lol"]']
    lines += [f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * fanout)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def vs(name: str, **spec: Any) -> dict[str, Any]:
    return {**VS, "metadata": {"name": name}, "spec": {**VS["spec"], **spec}}


def test_yaml_alias_bomb_is_refused_naming_the_limit(daemon: Daemon) -> None:
    body = laughs_vs("bomb").encode()
    assert len(body) < 700
    with _Poller(daemon):
        code, status = _http(daemon, "POST", BASE, body, "application/yaml")
    assert code == 400 and status["reason"] == "BadRequest", status
    assert "excessive aliasing" in status["message"] and "10000" in status["message"]
    assert "bomb" not in _names(daemon)


def test_yaml_alias_expansion_past_3mib_is_refused(daemon: Daemon) -> None:
    body = ("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: wide}\nspec:\n"
            "  hosts: [reviews]\n  s: &s " + "x" * 400_000 + "\n  l: [" + ", ".join(["*s"] * 10) + "]\n")
    code, status = _http(daemon, "POST", BASE, body.encode(), "application/yaml")
    assert code == 413 and status["message"] == "Request entity too large: limit is 3145728", status
    assert "wide" not in _names(daemon)


@pytest.mark.parametrize("ctype", ["application/json", "application/yaml"])
def test_deep_nesting_is_a_400_not_a_recursion_error(daemon: Daemon, ctype: str) -> None:
    deep = "[" * 5000 + "]" * 5000
    body = ('{"apiVersion":"networking.istio.io/v1","kind":"VirtualService","metadata":{"name":"deep"},'
            '"spec":{"hosts":["r"],"x":' + deep + "}}")
    with _Poller(daemon):
        code, status = _http(daemon, "POST", BASE, body.encode(), ctype)
    assert code == 400 and "exceeded max depth of 100" in status["message"], status
    assert "Recursion" not in status["message"]
    assert "deep" not in _names(daemon)


@pytest.mark.parametrize("ctype", ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                                   "text/plain"])
def test_form_bodies_are_refused_with_415(daemon: Daemon, ctype: str) -> None:
    body = b"a=" + b"b" * (3 * 1000 * 1000)  # the 3 MB form POST that answered 500 on main
    with _Poller(daemon):
        code, status = _http(daemon, "POST", BASE, body, ctype)
    assert code == 415 and status["reason"] == "UnsupportedMediaType", status
    assert status["message"] == ("the body of the request was in an unknown format - accepted media types include: "
                                 "application/json, application/yaml, application/vnd.kubernetes.protobuf")


@pytest.mark.parametrize(("body", "ctype"), [
    ('{"apiVersion":"networking.istio.io/v1","kind":"VirtualService","metadata":{"name":"nan"},'
     '"spec":{"hosts":["ratings"],"http":[{"fault":{"abort":{"httpStatus":500,"percentage":{"value":NaN}}},'
     '"route":[{"destination":{"host":"ratings"}}]}]}}', "application/json"),
    ("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: nan}\nspec:\n"
     "  hosts: [ratings]\n  http:\n  - fault: {abort: {httpStatus: 500, percentage: {value: .nan}}}\n"
     "    route: [{destination: {host: ratings}}]\n", "application/yaml"),
    ('{"apiVersion":"networking.istio.io/v1","kind":"VirtualService","metadata":{"name":"nan"},'
     '"spec":{"hosts":["ratings"],"http":[{"fault":{"abort":{"httpStatus":500,"percentage":{"value":1e999}}},'
     '"route":[{"destination":{"host":"ratings"}}]}]}}', "application/json"),
])
def test_non_finite_numbers_are_never_stored(daemon: Daemon, body: str, ctype: str) -> None:
    code, status = _http(daemon, "POST", BASE, body.encode(), ctype)
    assert code == 400, status
    cause = status["details"]["causes"][0]
    assert cause["field"] == "spec.http[0].fault.abort.percentage.value", status
    assert "spec.http[0].fault.abort.percentage.value" in status["message"]
    assert "nan" not in _names(daemon)


def test_non_finite_numbers_cannot_be_patched_in(daemon: Daemon) -> None:
    assert _http(daemon, "POST", BASE, json.dumps(vs("patched")).encode())[0] == 201
    before = _http(daemon, "GET", f"{BASE}/patched")[1]
    for ctype, patch in [
        ("application/merge-patch+json", '{"spec":{"http":[{"mirrorPercentage":{"value":Infinity},'
                                         '"route":[{"destination":{"host":"reviews"}}]}]}}'),
        ("application/json-patch+json", '[{"op":"add","path":"/spec/http/0/mirrorPercentage",'
                                        '"value":{"value":-1e400}}]'),
    ]:
        code, status = _http(daemon, "PATCH", f"{BASE}/patched", patch.encode(), ctype)
        assert code == 400 and "unsupported value" in status["message"], status
    assert _http(daemon, "GET", f"{BASE}/patched")[1] == before


def test_json_patch_copy_bomb_changes_nothing(daemon: Daemon) -> None:
    obj = vs("copied")
    obj["metadata"]["annotations"] = {"big": "y" * 50_000}
    assert _http(daemon, "POST", BASE, json.dumps(obj).encode())[0] == 201
    before = _http(daemon, "GET", f"{BASE}/copied")[1]
    # every copy holds all the previous ones: the object doubles with each operation
    ops = [{"op": "copy", "from": "/metadata/annotations", "path": f"/metadata/annotations/c{i}"} for i in range(60)]
    with _Poller(daemon):
        code, status = _http(daemon, "PATCH", f"{BASE}/copied", json.dumps(ops).encode(),
                             "application/json-patch+json")
    assert code == 422 and "accumulated size" in status["message"], status
    assert _http(daemon, "GET", f"{BASE}/copied")[1] == before
    many = [{"op": "test", "path": "/kind", "value": "VirtualService"}] * 10001
    code, status = _http(daemon, "PATCH", f"{BASE}/copied", json.dumps(many).encode(), "application/json-patch+json")
    assert code == 413 and "10000" in status["message"], status


def _kubectl(d: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(TOOLS / "kubectl-1.35"), *args], env=d.env, capture_output=True, text=True,
                          timeout=60)


def test_kubectl_apply_of_the_alias_bomb_prints_the_refusal(daemon: Daemon, tmp_path: Path) -> None:
    (tmp_path / "bomb.yaml").write_text(laughs_vs("kbomb"))
    cp = _kubectl(daemon, "apply", "-f", str(tmp_path / "bomb.yaml"))
    assert cp.returncode != 0
    assert "excessive aliasing" in cp.stderr, cp.stderr
    assert "kbomb" not in _names(daemon)
    # The same bytes sent as they are (no client-side conversion) meet the server's own limit.
    cp = _kubectl(daemon, "create", "--raw", BASE, "-f", str(tmp_path / "bomb.yaml"))
    assert cp.returncode != 0 and "Error from server (BadRequest)" in cp.stderr, cp.stderr
    assert "kbomb" not in _names(daemon)
    assert _kubectl(daemon, "get", "ns").returncode == 0


def test_kubectl_prints_the_non_finite_refusal(daemon: Daemon, tmp_path: Path) -> None:
    (tmp_path / "nan.json").write_text(
        '{"apiVersion":"networking.istio.io/v1","kind":"VirtualService","metadata":{"name":"knan"},'
        '"spec":{"hosts":["ratings"],"http":[{"fault":{"abort":{"httpStatus":500,"percentage":{"value":NaN}}},'
        '"route":[{"destination":{"host":"ratings"}}]}]}}')
    cp = _kubectl(daemon, "create", "--raw", BASE, "-f", str(tmp_path / "nan.json"))
    assert cp.returncode != 0, cp.stdout
    assert "spec.http[0].fault.abort.percentage.value" in cp.stderr, cp.stderr
    assert "knan" not in _names(daemon)
