"""Istio's sample images map to built-in programs with Kubernetes' command/args rules against the real
images' ENTRYPOINT and CMD; `kubectl exec` of the image's own binary finds the built-in too."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from sluice.runtime import images

PY = [sys.executable, "-m"]


def resolve(container: dict[str, Any]) -> images.Program:
    return images.resolve({"name": "c", **container})


def test_istio_manifest_images_run_builtins() -> None:
    p = resolve({"image": "docker.io/mccutchen/go-httpbin:v2.15.0"})
    assert (p.argv, p.builtin) == ([*PY, "sluice.samples.httpbin", "go"], "go-httpbin")
    p = resolve({"image": "docker.io/kennethreitz/httpbin"})
    assert p.argv == [*PY, "sluice.samples.httpbin", "kennethreitz", "gunicorn", "-b", "0.0.0.0:80",
                      "httpbin:app", "-k", "gevent"]
    p = resolve({"image": "docker.io/fortio/fortio:latest_release"})
    assert p.argv == [*PY, "sluice.samples.fortio", "server", "-config-dir", "/etc/fortio"]
    p = resolve({"image": "registry.istio.io/release/examples-helloworld-v2:1.0"})
    assert (p.argv[:3], p.env, p.builtin) == ([*PY, "sluice.samples.helloworld"], {"SERVICE_VERSION": "v2"},
                                              "helloworld")
    p = resolve({"image": "docker.io/istio/examples-helloworld-v1"})
    assert p.env == {"SERVICE_VERSION": "v1"}
    p = resolve({"image": "registry.istio.io/release/tcp-echo-server:1.3", "args": ["9000,9001,9002", "one"]})
    assert p.argv == [*PY, "sluice.samples.tcpecho", "9000,9001,9002", "one"]
    assert resolve({"image": "docker.io/istio/tcp-echo-server:1.2"}).argv[-2:] == ["9000", "hello"]


def test_command_and_args_follow_the_images_entrypoint() -> None:
    # The mirroring task's httpbin command line still runs httpbin (with its access log).
    p = resolve({"image": "docker.io/kennethreitz/httpbin",
                 "command": ["gunicorn", "--access-logfile", "-", "-b", "0.0.0.0:80", "httpbin:app"]})
    assert p.builtin == "httpbin" and p.argv[-5:] == ["--access-logfile", "-", "-b", "0.0.0.0:80", "httpbin:app"]
    assert resolve({"image": "fortio/fortio", "args": ["load", "-n", "5", "http://x"]}).argv[3:] == [
        "load", "-n", "5", "http://x"]
    assert resolve({"image": "fortio/fortio", "command": ["/usr/bin/fortio", "server"]}).builtin == "fortio"
    assert resolve({"image": "mccutchen/go-httpbin", "args": ["/bin/go-httpbin", "-port", "8081"]}).argv[3:] == [
        "go", "-port", "8081"]
    # Another program of the image runs as written.
    p = resolve({"image": "docker.io/kennethreitz/httpbin", "command": ["/bin/sleep", "3650d"]})
    assert (p.argv, p.builtin) == (["/bin/sleep", "3650d"], "")
    p = resolve({"image": "fortio/fortio", "command": ["sh", "-c", "true"]})
    assert (p.argv, p.builtin) == (["sh", "-c", "true"], "")


def test_exec_finds_the_images_binary() -> None:
    fortio = {"name": "fortio", "image": "docker.io/fortio/fortio:latest_release"}
    assert images.exec_argv(fortio, ["/usr/bin/fortio", "load", "-c", "2", "http://httpbin:8000/get"]) == [
        *PY, "sluice.samples.fortio", "load", "-c", "2", "http://httpbin:8000/get"]
    assert images.exec_argv(fortio, ["fortio", "curl", "http://x"])[3:] == ["curl", "http://x"]
    assert images.exec_argv(fortio, ["curl", "-s", "http://x"]) == ["curl", "-s", "http://x"]
    tcp = {"name": "tcp-echo", "image": "istio/tcp-echo-server:1.3"}
    assert images.exec_argv(tcp, ["/bin/tcp-echo", "9000", "x"])[2:] == ["sluice.samples.tcpecho", "9000", "x"]
    sleep = {"name": "sleep", "image": "curlimages/curl"}
    assert images.exec_argv(sleep, ["/usr/bin/fortio", "load"]) == ["/usr/bin/fortio", "load"]


def test_unknown_images_list_what_runs() -> None:
    with pytest.raises(images.ImageError) as e:
        resolve({"image": "nginx:1.25"})
    assert e.value.reason == "ErrImagePull"
    for name in ("kennethreitz/httpbin", "mccutchen/go-httpbin", "fortio/fortio", "examples-helloworld-v<N>",
                 "tcp-echo-server", "examples-bookinfo", "curlimages/curl"):
        assert name in e.value.message
