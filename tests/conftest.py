"""Shared fixtures: a real daemon started per test session, and the real kubectl binaries."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / ".tools" / "bin"
KUBECTL_VERSIONS = ("1.35", "1.20")


def _ephemeral_ports() -> tuple[int, int]:
    try:
        lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


_EPHEMERAL = _ephemeral_ports()
_handed_out: set[int] = set()


def free_port() -> int:
    """A port on 127.0.0.1 that nothing is bound to, for a server a test starts a moment later.

    Not from the kernel's ephemeral range: a port from there, released here and bound by the daemon a moment
    later, can meanwhile become the local end of any outbound connection (a fresh-clone run lost a daemon's
    xDS port so: "Address already in use"). And never the same port twice in one test run.
    """
    lo, hi = _EPHEMERAL
    first, last = (10000, lo - 1) if lo - 10000 >= 4096 else (hi + 1, 65535)
    rng = random.Random()
    for _ in range(500):
        port = rng.randint(first, last)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    with socket.socket() as s:  # a crowded range: the kernel's pick, as before
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


ISTIO_GATEWAY_PORTS = (80, 443, 31400, 15443, 15021)  # the ingress gateway Service's ports (samples/ingressgateway.yaml)


def move_gateway_ports(home: Path) -> dict[int, int]:
    """Before start_daemon: have the daemon serve the ingress gateway's ports (80, 443, ...) at free ones instead
    (`gateway_ports` in config.yaml), so tests never bind them. Returns Istio's port → the one served."""
    ports = {p: free_port() for p in ISTIO_GATEWAY_PORTS}
    home.mkdir(parents=True, exist_ok=True)
    config = home / "config.yaml"
    previous = config.read_text() if config.exists() else ""
    config.write_text(previous + "gateway_ports: {" + ", ".join(f"{p}: {h}" for p, h in ports.items()) + "}\n")
    return ports


@dataclass
class Daemon:
    home: Path
    kubeconfig: Path
    api_url: str
    api_port: int
    token: str
    xds_port: int = 0
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    network: str | None = None
    extra: list[str] = field(default_factory=list)


def start_daemon(home: Path, port: int | None = None, extra: list[str] | None = None,
                 xds_port: int | None = None, network: str | None = None) -> Daemon:
    from sluice.daemon.control import wait_healthy
    from sluice.daemon.state import Home

    port = port or free_port()
    xds_port = xds_port or free_port()
    home.mkdir(parents=True, exist_ok=True)
    log = open(home / "test-daemon.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen([sys.executable, "-m", "sluice.daemon.main", "--home", str(home), "--api-port",
                             str(port), "--xds-port", str(xds_port), "--metrics-port", str(free_port()),
                             "--console-port", str(free_port()),
                             "--network", network or os.environ.get("SLUICE_TEST_NETWORK", "loopback"),
                             *(extra or [])], stdout=log,
                            stderr=subprocess.STDOUT,
                            start_new_session=True)
    if not wait_healthy(Home(home), proc, port, 30):
        proc.kill()
        raise RuntimeError("daemon did not start: " + (home / "test-daemon.log").read_text()[-2000:])
    env = dict(os.environ)
    env.update({"SLUICE_HOME": str(home), "KUBECONFIG": str(home / "kubeconfig"), "HOME": str(home / "userhome")})
    (home / "userhome").mkdir(exist_ok=True)
    return Daemon(home, home / "kubeconfig", f"https://127.0.0.1:{port}", port, (home / "token").read_text().strip(),
                  xds_port, env, proc, network, list(extra or []))


def stop_daemon(d: Daemon) -> None:
    """Stop the daemon and every pod it runs. A daemon a test killed is started again first (it adopts its
    pods), so its pods, namespaces and processes never outlive the test."""
    pods = d.home / "runtime" / "pods"
    if (d.proc is None or d.proc.poll() is not None) and pods.is_dir() and any(pods.iterdir()):
        try:
            d.proc = start_daemon(d.home, port=d.api_port, xds_port=d.xds_port, network=d.network,
                                  extra=d.extra).proc
        except RuntimeError:
            pass
    if d.proc is not None and d.proc.poll() is None:
        d.proc.send_signal(signal.SIGTERM)
        try:
            d.proc.wait(15)
        except subprocess.TimeoutExpired:
            d.proc.kill()
            d.proc.wait()


@pytest.fixture(scope="session")
def sluice_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = start_daemon(tmp_path_factory.mktemp("sluice-home"))
    yield d
    stop_daemon(d)


@dataclass
class Kubectl:
    version: str
    binary: Path
    daemon: Daemon
    cache: Path

    def __call__(self, *args: str, input: str | None = None, env: dict[str, str] | None = None,
                 check: bool = False, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        e = dict(self.daemon.env)
        e.update(env or {})
        cp = subprocess.run([str(self.binary), f"--cache-dir={self.cache}", *args], input=input, env=e,
                            capture_output=True, text=True, timeout=timeout)
        if check and cp.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({cp.returncode}):\n{cp.stdout}\n{cp.stderr}")
        return cp


@pytest.fixture(params=KUBECTL_VERSIONS, ids=[f"kubectl-{v}" for v in KUBECTL_VERSIONS])
def kubectl(request: pytest.FixtureRequest, sluice_daemon: Daemon,
            tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    binary = TOOLS / f"kubectl-{request.param}"
    if not binary.exists():
        pytest.fail(f"{binary} is missing: run `make tools`")
    return Kubectl(request.param, binary, sluice_daemon, tmp_path_factory.mktemp(f"kcache-{request.param}"))


def wait_for(pred: object, timeout: float = 20.0, interval: float = 0.05) -> None:
    """Poll until pred() is truthy; raise AssertionError with the last value otherwise (never a timed assert)."""
    assert callable(pred)
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return
        time.sleep(interval)
    raise AssertionError(f"condition not met; last value: {last!r}")


def child_processes(parent_pid: int, module: str) -> list[int]:
    """The pids of `parent_pid`'s children running `python -m MODULE` (a daemon's worker processes), from /proc."""
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmd = (p / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        if ppid == parent_pid and module.encode() in cmd:
            out.append(int(p.name))
    return out
