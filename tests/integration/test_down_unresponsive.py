"""`sluice down` with a daemon that does not answer (issue 9, point 7): the daemon is killed after the grace
period and every pod's app and Envoy are stopped by `sluice down` itself; nothing of the mesh keeps running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TOOLS, free_port, wait_for

SLUICE = str(Path(sys.executable).parent / "sluice")

POD = """apiVersion: v1
kind: Pod
metadata: {name: sleeper, labels: {app: sleeper}}
spec:
  containers:
  - name: app
    image: busybox
    command: ["/bin/sleep", "infinity"]
"""


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "SLUICE_HOME": str(home), "KUBECONFIG": str(home / "kubeconfig"),
            "HOME": str(home / "userhome")}


def _prepare(home: Path) -> None:
    (home / "userhome").mkdir(parents=True)
    # `network` as the suite's start_daemon picks it (config.yaml keys a daemon does not know are ignored)
    (home / "config.yaml").write_text(f"network: {os.environ.get('SLUICE_TEST_NETWORK', 'loopback')}\n")


def _sluice(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SLUICE, *args], env=_env(home), capture_output=True, text=True, timeout=120)


def _mesh_pids(home: Path) -> dict[int, str]:
    """Pid → what it is, for every live program and shim the runtime recorded under `home`."""
    from sluice.daemon.leftovers import running

    out: dict[int, str] = {}
    for run in running(home):
        if run.program is not None and run.program.alive():
            out[run.program.pid] = f"{run.pod}/{run.container}"
        if run.shim is not None and run.shim.alive():
            out[run.shim.pid] = f"{run.pod}/{run.container} shim"
    return out


def _processes_mentioning(home: Path) -> list[str]:
    """Processes whose command line names the state directory (shims, Envoys, the daemon)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if str(home) in cmdline and state != "Z":
            found.append(f"{entry.name}: {cmdline[:200]}")
    return found


@pytest.mark.skipif(not Path(SLUICE).exists(), reason="the sluice console script is not installed")
def test_down_kills_a_frozen_daemon_and_stops_every_pod(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _prepare(home)
    api = free_port()
    cp = _sluice(home, "up", "--api-port", str(api), "--xds-port", str(free_port()), "--metrics-port",
                 str(free_port()), "--console-port", str(free_port()))
    assert cp.returncode == 0, cp.stdout + cp.stderr
    daemon_pid = int((home / "daemon.pid").read_text())
    stopped = False
    try:
        (tmp_path / "pod.yaml").write_text(POD)
        kubectl = subprocess.run([str(TOOLS / "kubectl-1.35"), "apply", "-f", str(tmp_path / "pod.yaml")],
                                 env=_env(home), capture_output=True, text=True, timeout=60)
        assert kubectl.returncode == 0, kubectl.stderr
        # the app and its Envoy run, each under its shim
        wait_for(lambda: sorted(_mesh_pids(home).values()) == [
            "default/sleeper/app", "default/sleeper/app shim",
            "default/sleeper/istio-proxy", "default/sleeper/istio-proxy shim"], timeout=60)
        pids = _mesh_pids(home)

        os.kill(daemon_pid, signal.SIGSTOP)  # the daemon stops answering anything, SIGTERM included
        stopped = True
        cp = _sluice(home, "down")
        assert cp.returncode == 0, cp.stdout + cp.stderr
        assert f"the sluice daemon (pid {daemon_pid}) did not stop within 15s; killing it" in cp.stderr
        assert "stopped 2 containers the daemon left running" in cp.stdout, cp.stdout
        assert "sluice stopped" in cp.stdout

        assert not Path(f"/proc/{daemon_pid}").exists() or \
            Path(f"/proc/{daemon_pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
        still = {pid: what for pid, what in pids.items() if Path(f"/proc/{pid}").exists()
                 and Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"}
        assert not still, still
        assert not _processes_mentioning(home)
        assert "not running" in _sluice(home, "status").stdout
    finally:
        if stopped and Path(f"/proc/{daemon_pid}").exists():
            os.kill(daemon_pid, signal.SIGCONT)
        _sluice(home, "down")


@pytest.mark.skipif(not Path(SLUICE).exists(), reason="the sluice console script is not installed")
def test_down_after_kill_9_stops_the_pods_left_behind(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _prepare(home)
    cp = _sluice(home, "up", "--api-port", str(free_port()), "--xds-port", str(free_port()), "--metrics-port",
                 str(free_port()), "--console-port", str(free_port()))
    assert cp.returncode == 0, cp.stdout + cp.stderr
    try:
        (tmp_path / "pod.yaml").write_text(POD)
        assert subprocess.run([str(TOOLS / "kubectl-1.35"), "apply", "-f", str(tmp_path / "pod.yaml")],
                              env=_env(home), capture_output=True, timeout=60).returncode == 0
        wait_for(lambda: len(_mesh_pids(home)) == 4, timeout=60)
        # a node-level process the runtime records as runtime/<name>.pid (as netns mode's cluster DNS is)
        node = subprocess.Popen(["sleep", "600"], start_new_session=True)
        started = Path(f"/proc/{node.pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
        (home / "runtime" / "node-helper.pid").write_text(f"{node.pid} {started}\n")
        os.kill(int((home / "daemon.pid").read_text()), signal.SIGKILL)
        cp = _sluice(home, "down")
        assert cp.returncode == 0, cp.stdout + cp.stderr
        assert "sluice is not running; stopped 2 containers left running" in cp.stdout
        assert not _mesh_pids(home) and not _processes_mentioning(home)
        assert node.wait(10) == -signal.SIGTERM
    finally:
        _sluice(home, "down")


@pytest.mark.skipif(not Path(SLUICE).exists(), reason="the sluice console script is not installed")
def test_a_daemon_whose_home_is_deleted_stops_itself_and_its_pods(tmp_path: Path) -> None:
    """`rm -rf $SLUICE_HOME` (a test's temporary directory, a reset by hand) leaves no `sluice down` able to find
    the daemon: it notices its pid file is gone and shuts down, stopping every pod, instead of running on."""
    import shutil

    home = tmp_path / "home"
    _prepare(home)
    cp = _sluice(home, "up", "--api-port", str(free_port()), "--xds-port", str(free_port()), "--metrics-port",
                 str(free_port()), "--console-port", str(free_port()))
    assert cp.returncode == 0, cp.stdout + cp.stderr
    daemon_pid = int((home / "daemon.pid").read_text())
    pids: dict[int, str] = {}
    try:
        (tmp_path / "pod.yaml").write_text(POD)
        assert subprocess.run([str(TOOLS / "kubectl-1.35"), "apply", "-f", str(tmp_path / "pod.yaml")],
                              env=_env(home), capture_output=True, timeout=60).returncode == 0
        wait_for(lambda: len(_mesh_pids(home)) == 4, timeout=60)
        pids = {daemon_pid: "daemon", **_mesh_pids(home)}

        shutil.rmtree(home)

        def alive() -> dict[int, str]:
            out = {}
            for pid, what in pids.items():
                try:
                    if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                        out[pid] = what
                except OSError:
                    pass  # gone
            return out

        left: dict[int, str] = {}

        def stopped() -> bool:
            nonlocal left
            left = alive()
            return not left

        try:
            wait_for(stopped, timeout=60)
        except AssertionError:
            raise AssertionError(f"still running a minute after the home was deleted: {left}") from None
        wait_for(lambda: not _processes_mentioning(home), timeout=10)  # the fork server dies with the daemon
    finally:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if home.exists():
            _sluice(home, "down")
