"""Istio's sample images in loopback mode (no network namespaces): the built-ins listen on the pod's
`$SLUICE_BIND` and fortio sends through the pod's sidecar (`HTTP_PROXY`), so the docs' commands still work."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.conftest import start_daemon, stop_daemon
from tests.integration.netns.test_istio_samples import FORTIO, HELLOWORLD, HTTPBIN, SLEEP, Kube, _exec_ok


@pytest.fixture(scope="module")
def loopback(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kube]:
    d = start_daemon(tmp_path_factory.mktemp("samples-loopback-home"), network="loopback")
    k = Kube(d)
    try:
        for manifest in (SLEEP, HTTPBIN, FORTIO, HELLOWORLD):
            k("apply", "-f", "-", input=manifest)
        k("wait", "--for=condition=Available", "deployment", "--all", "--timeout=180s")
        yield k
    finally:
        stop_daemon(d)


def test_samples_answer_in_loopback_mode(loopback: Kube) -> None:
    code = _exec_ok(loopback, "deploy/sleep", "--", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                    "http://httpbin:8000/status/418")
    assert code == "418"
    out = _exec_ok(loopback, "deploy/sleep", "--", "curl", "-s", "http://helloworld:5000/hello")
    assert re.fullmatch(r"Hello version: v[12], instance: helloworld-v[12]-\S+\n", out), out
    cp = loopback.run("exec", "deploy/fortio-deploy", "-c", "fortio", "--", "/usr/bin/fortio", "load", "-c", "2",
                      "-qps", "0", "-n", "10", "-loglevel", "Warning", "http://httpbin:8000/get")
    assert cp.returncode == 0 and "Code 200 : 10 (100.0 %)" in cp.stderr, cp.stderr
