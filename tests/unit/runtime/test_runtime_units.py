"""Pure parts of the runtime: image mapping, environment, pod phase, back-off, log options, the shim's format."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sluice.api.errors import ApiError
from sluice.runtime import images
from sluice.runtime.environment import container_env, expand
from sluice.runtime.ipam import IPAllocator
from sluice.runtime.logs import parse_options
from sluice.runtime.status import pod_phase
from sluice.runtime.supervisor import BackOff


@pytest.mark.parametrize(("image", "svc", "env"), [
    ("docker.io/istio/examples-bookinfo-reviews-v1:1.20.2", "reviews", {"ENABLE_RATINGS": "false"}),
    ("istio/examples-bookinfo-reviews-v2:1.18.0", "reviews", {"ENABLE_RATINGS": "true", "STAR_COLOR": "black"}),
    ("registry.istio.io/release/examples-bookinfo-reviews-v3:latest", "reviews",
     {"ENABLE_RATINGS": "true", "STAR_COLOR": "red"}),
    ("docker.io/istio/examples-bookinfo-productpage-v1:1.20.2", "productpage", {}),
    ("docker.io/istio/examples-bookinfo-ratings-v1", "ratings", {}),
])
def test_bookinfo_images(image: str, svc: str, env: dict[str, str]) -> None:
    p = images.resolve({"name": "c", "image": image, "ports": [{"containerPort": 9080}]})
    assert p.argv == [sys.executable, "-m", f"sluice.samples.bookinfo.{svc}"]
    assert p.env["SERVICE_VERSION"] == "v" + image.split("-v")[-1].split(":")[0]
    assert p.env["SLUICE_PORT"] == "9080"
    assert env.items() <= p.env.items()


def test_curl_proxy_command_and_unknown_images() -> None:
    assert images.resolve({"name": "sleep", "image": "curlimages/curl",
                           "command": ["/bin/sleep", "infinity"]}).argv == ["/bin/sleep", "infinity"]
    assert images.resolve({"name": "sleep", "image": "curlimages/curl:8.1"}).argv == ["curl"]  # the image's CMD
    gw = images.resolve({"name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.24.0",
                         "args": ["proxy", "router"]})
    assert gw.builtin == "proxy" and gw.proxy_mode == "router"
    assert images.resolve({"name": "x", "image": "alpine", "args": ["echo", "hi"]}).argv == ["echo", "hi"]
    with pytest.raises(images.ImageError) as e:
        images.resolve({"name": "x", "image": "nginx"})
    assert e.value.reason == "ErrImagePull" and '"nginx"' in e.value.message


def test_env_order_and_expansion() -> None:
    pod = {"metadata": {"name": "p", "namespace": "ns", "labels": {"app": "a"}}, "spec": {}}
    c = {"name": "c", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "$(A)-$(NOPE)-$$(A)"},
                              {"name": "SLUICE_BIND", "value": "0.0.0.0"}]}
    prog = images.Program(["x"], "id")
    env = container_env(pod, c, prog, pod_ip="127.1.0.9", host_ip="127.0.0.1", has_sidecar=True,
                        configmaps=lambda ns, name: None)
    assert env["B"] == "1-$(NOPE)-$(A)"
    assert env["SLUICE_BIND"] == "0.0.0.0"  # the container's own env wins
    assert env["HTTP_PROXY"] == "http://127.1.0.9:15001" and env["NO_PROXY"] == "localhost,127.0.0.1,127.2.0.9"
    assert expand("$(X)", {"X": "y"}) == "y"


@pytest.mark.parametrize(("states", "policy", "phase"), [
    ([{"state": {"waiting": {"reason": "ErrImagePull"}}}], "Always", "Pending"),
    ([{"state": {"running": {}}}], "Always", "Running"),
    ([{"state": {"waiting": {}}, "lastState": {"terminated": {"exitCode": 1}}}], "Always", "Running"),
    ([{"state": {"terminated": {"exitCode": 0}}}], "OnFailure", "Succeeded"),
    ([{"state": {"terminated": {"exitCode": 1}}}], "Never", "Failed"),
    ([{"state": {"terminated": {"exitCode": 0}}}, {"state": {"running": {}}}], "Never", "Running"),
])
def test_pod_phase(states: list[dict[str, object]], policy: str, phase: str) -> None:
    assert pod_phase(states, policy) == phase


_WAITING: dict[str, object] = {"state": {"waiting": {"reason": "PodInitializing"}}}


@pytest.mark.parametrize(("inits", "policy", "phase"), [
    ([{"name": "i", "state": {"running": {}}}], "Always", "Pending"),
    ([{"name": "i", "state": {"waiting": {}}, "lastState": {"terminated": {"exitCode": 2}}}], "Always", "Pending"),
    ([{"name": "i", "state": {"terminated": {"exitCode": 2}}}], "Never", "Failed"),
    # a sidecar (restartable) that runs but has not started holds the pod back; once started, it counts as running
    ([{"name": "s", "state": {"running": {}}, "started": False}], "Always", "Pending"),
])
def test_pod_phase_with_init_containers(inits: list[dict[str, object]], policy: str, phase: str) -> None:
    assert pod_phase([_WAITING], policy, inits, frozenset({"s"})) == phase
    done = [{"name": "i", "state": {"terminated": {"exitCode": 0}}},
            {"name": "s", "state": {"running": {}}, "started": True}]
    assert pod_phase([{"state": {"terminated": {"exitCode": 0}}}], "Never", done, frozenset({"s"})) == "Running"


def test_backoff_is_kubelets() -> None:
    b = BackOff()
    assert [b.delay(n) for n in range(8)] == [0, 10, 20, 40, 80, 160, 300, 300]


def test_log_option_validation() -> None:
    assert parse_options({"tailLines": "3", "timestamps": "true"}).tail_lines == 3
    since = parse_options({"sinceSeconds": "10"}, now_ns=1_700_000_010_000_000_000).since
    assert since == "2023-11-14T22:13:20.000000000Z"
    for bad in ({"tailLines": "-1"}, {"limitBytes": "0"}, {"sinceSeconds": "0"}, {"tailLines": "x"},
                {"sinceTime": "yesterday"}, {"sinceSeconds": "1", "sinceTime": "2020-01-01T00:00:00Z"}):
        with pytest.raises(ApiError) as e:
            parse_options(bad)
        assert e.value.code == 400


def test_ip_allocation_persists_and_skips_used(tmp_path: Path) -> None:
    a = IPAllocator(tmp_path / "ipam.json")
    first, second = a.allocate(), a.allocate()
    assert first != second
    b = IPAllocator(tmp_path / "ipam.json", in_use=[first, second])
    third = b.allocate()
    assert third not in (first, second)
    b.release(first)
    assert b.allocate() != first  # round-robin: a freed IP is not handed out again at once


def test_shim_writes_cri_lines_and_exit(tmp_path: Path) -> None:
    prog = [sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr); "
            "sys.stdout.write('partial'); sys.exit(4)"]
    subprocess.run([sys.executable, "-m", "sluice.runtime.shim", str(tmp_path), "0", "", "--", *prog],
                   check=True, timeout=20)
    lines = (tmp_path / "0.log").read_text().splitlines()
    parsed = sorted((line.split(" ", 3)[1:] for line in lines), key=lambda x: x[2])
    assert parsed == [["stderr", "F", "err"], ["stdout", "F", "out"], ["stdout", "F", "partial"]]
    code, sig, _ = (tmp_path / "0.exit").read_text().split()
    assert (code, sig) == ("4", "0")
    pid, start, _ = (tmp_path / "0.pid").read_text().split()
    assert pid.isdigit() and start.isdigit()
