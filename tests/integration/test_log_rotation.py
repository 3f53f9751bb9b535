"""Pod logs rotate as the kubelet rotates them, and `kubectl logs` reads across the files (issue 9, point 8).

A real daemon with a small rotation size (config.yaml: 2Ki × 3 files) runs a pod that prints numbered lines for
a few seconds; `kubectl logs -f` started before the first line sees every line once across the rotations, and
`--tail`, `--since-time` and `--previous` read across the rotated files of the run.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from sluice.runtime import logfiles
from tests.conftest import TOOLS, Daemon, start_daemon, stop_daemon, wait_for

LINES = 400
# Run 1: waits for ./go, prints line-1 … line-400 over a few seconds, then exits (the pod restarts it);
# run 2 says so and stays up, so run 1's files are the `--previous` ones.
PRINTER = ("import os, time\n"
           "if os.path.exists('ran'):\n"
           "    print('second run', flush=True)\n"
           "    time.sleep(3600)\n"
           "while not os.path.exists('go'):\n"
           "    time.sleep(0.05)\n"
           f"for i in range(1, {LINES + 1}):\n"
           "    print(f'line-{i}', flush=True)\n"
           "    time.sleep(0.012)\n"
           "open('ran', 'w').close()\n")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    home = tmp_path_factory.mktemp("logrot-home")
    (home / "config.yaml").write_text("container_log_max_size: 2Ki\ncontainer_log_max_files: 3\n")
    d = start_daemon(home)
    try:
        yield d
    finally:
        stop_daemon(d)


def kubectl(d: Daemon, *args: str, input: str | None = None, timeout: float = 60
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(TOOLS / "kubectl-1.35"), *args], input=input, env=d.env, capture_output=True,
                          text=True, timeout=timeout)


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line]


def test_kubectl_logs_across_rotated_files(daemon: Daemon, tmp_path: Path) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "printer", "annotations": {"sidecar.istio.io/inject": "false"}},
           "spec": {"containers": [{"name": "p", "image": "local/python", "workingDir": str(tmp_path),
                                    "command": ["python3", "-c", PRINTER]}]}}
    kubectl(daemon, "apply", "-f", "-", input=json.dumps(pod))
    wait_for(lambda: kubectl(daemon, "get", "pod", "printer", "-o", "jsonpath={.status.phase}").stdout == "Running",
             timeout=60)
    follow = subprocess.Popen([str(TOOLS / "kubectl-1.35"), "logs", "-f", "printer"], env=daemon.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        (tmp_path / "go").touch()
        out, err = follow.communicate(timeout=90)  # -f ends when the run ends
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.wait()
    assert _lines(out) == [f"line-{i}" for i in range(1, LINES + 1)], err

    # The run's files on disk: rotated as the kubelet names them, at most 3, older ones compressed.
    uid = kubectl(daemon, "get", "pod", "printer", "-o", "jsonpath={.metadata.uid}").stdout
    wait_for(lambda: "second run" in kubectl(daemon, "logs", "printer").stdout, timeout=60)
    cdir = daemon.home / "runtime" / "pods" / uid / "containers" / "p"
    files = logfiles.chain(str(cdir / "0.log"))
    assert 2 <= len(files) <= 3, sorted(p.name for p in cdir.iterdir())
    assert all(logfiles.stamp_of(f) for f in files[:-1])
    current_lines = len(logfiles.read_whole(files[-1]).splitlines())
    kept = sum(len(logfiles.read_whole(f).splitlines()) for f in files)

    # --previous --tail: more lines than the run's current file holds, so they come from rotated files too.
    tail = min(kept, current_lines + 30)
    cp = kubectl(daemon, "logs", "printer", "--previous", f"--tail={tail}")
    assert cp.returncode == 0, cp.stderr
    assert _lines(cp.stdout) == [f"line-{i}" for i in range(LINES - tail + 1, LINES + 1)]
    everything = _lines(kubectl(daemon, "logs", "printer", "--previous").stdout)
    assert len(everything) == kept and everything[-1] == f"line-{LINES}"

    # --since-time: from a line in the oldest file kept on.
    stamped = _lines(kubectl(daemon, "logs", "printer", "--previous", "--timestamps").stdout)
    ts, first_line = stamped[5].split(" ", 1)
    since = _lines(kubectl(daemon, "logs", "printer", "--previous", f"--since-time={ts}").stdout)
    assert since[0] in everything[:6] and since[-1] == f"line-{LINES}"
    assert first_line in since

    kubectl(daemon, "delete", "pod", "printer", "--grace-period=0", "--force")
