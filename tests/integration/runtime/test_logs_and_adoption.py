"""Container logs over `GET pods/<name>/log`, daemon restarts (adoption) and `sluice down` (stop everything)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import time
from pathlib import Path

from tests.integration.runtime.harness import (
    POD,
    TOKEN,
    Cluster,
    listening,
    pod,
    restart_kubelet,
    server_container,
    wait_until,
)

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z ")


def _pids(c: Cluster, name: str) -> dict[str, int]:
    """Container name → program pid, from the shims' records."""
    uid = c.get(name)["metadata"]["uid"]  # type: ignore[index]
    out = {}
    for d in (c.home.root / "runtime" / "pods" / uid / "containers").iterdir():
        n = json.loads((d / "state.json").read_text())["attempt"]
        out[d.name] = int((d / f"{n}.pid").read_text().split()[0])
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


async def test_log_options(cluster: Cluster) -> None:
    script = ("import sys, time\nfor i in range(1, 6): print('line', i, flush=True)\n"
              "print('oops', file=sys.stderr, flush=True)\ntime.sleep(0.5)\nprint('late', flush=True)\n"
              "time.sleep(600)")
    cluster.create(pod("talker", [{"name": "t", "image": "x", "command": [sys.executable, "-c", script]}]))
    await wait_until(lambda: cluster.ready("talker"))

    async def text(**q: str) -> str:
        code, body = await cluster.logs("talker", **q)
        assert code == 200, body
        return body

    everything = await wait_until_async(lambda: text(), lambda b: b.endswith("late\n"))
    assert everything == "line 1\nline 2\nline 3\nline 4\nline 5\noops\nlate\n"
    assert await text(tailLines="2") == "oops\nlate\n"
    assert await text(tailLines="0") == ""
    stamped = (await text(timestamps="true", tailLines="1")).splitlines()
    assert len(stamped) == 1 and TS.match(stamped[0]) and stamped[0].endswith(" late")
    assert await text(limitBytes="9") == "line 1\nli"
    assert await text(sinceSeconds="3600") == everything
    assert await text(sinceTime="2100-01-01T00:00:00Z") == ""
    assert await text(sinceTime="2000-01-01T00:00:00.123456789Z") == everything
    code, body = await cluster.logs("talker", tailLines="-1")
    assert code == 400 and "tailLines" in json.loads(body)["message"]
    code, body = await cluster.logs("talker", sinceSeconds="5", sinceTime="2000-01-01T00:00:00Z")
    assert code == 400 and "at most one of `sinceTime` or `sinceSeconds`" in json.loads(body)["message"]
    code, body = await cluster.logs("talker", previous="true")
    assert code == 400 and json.loads(body)["message"] == 'previous terminated container "t" in pod "talker" not found'


async def wait_until_async(get, ok, timeout: float = 20.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await get()
        if ok(last):
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"condition not met; last value: {last!r}")


async def test_follow_streams_until_the_container_exits(cluster: Cluster, tmp_path: Path) -> None:
    # The program prints two lines, then waits for the test to have read them before printing the rest:
    # a log that was not streamed as written would never let it finish.
    go = tmp_path / "go"
    script = ("import os, time\nfor i in range(2): print('tick', i, flush=True)\n"
              f"while not os.path.exists({str(go)!r}): time.sleep(0.05)\n"
              "for i in range(2, 4): print('tick', i, flush=True)\n")
    cluster.create(pod("ticker", [{"name": "t", "image": "x", "command": [sys.executable, "-c", script]}],
                   restartPolicy="Never"))
    await wait_until(lambda: "running" in cluster.container("ticker", "t").get("state", {}))
    url = cluster.server.make_url("/api/v1/namespaces/default/pods/ticker/log")
    got: list[str] = []
    async with cluster.http.get(url, params={"follow": "true"}, headers={"Authorization": f"Bearer {TOKEN}"}) as r:
        assert r.status == 200
        async for line in r.content:
            got.append(line.decode())
            if len(got) == 2:
                go.touch()
    assert got == [f"tick {i}\n" for i in range(4)]
    await wait_until(lambda: cluster.status("ticker")["phase"] == "Succeeded")


async def test_daemon_restart_adopts_running_pods(cluster: Cluster) -> None:
    cluster.create(pod("keeper", [server_container(port=8090)]))
    crash = {"name": "c", "image": "x", "command": [sys.executable, "-c", "import time; time.sleep(600)"]}
    cluster.create(pod("victim", [crash]))
    await wait_until(lambda: cluster.ready("keeper") and cluster.ready("victim"))
    ip = cluster.status("keeper")["podIP"]
    await wait_until(lambda: listening(ip, 8090))  # Ready (no probe) means started, not listening
    before = _pids(cluster, "keeper")
    victim_pid = _pids(cluster, "victim")["c"]
    await cluster.kubelet.stop(stop_pods=False)
    # While the daemon is down: the pods keep serving, one process dies, and one Pod object disappears.
    assert listening(ip, 8090) and all(_alive(p) for p in before.values())
    os.kill(victim_pid, signal.SIGKILL)
    cluster.create(pod("orphan-to-be", [server_container(port=8091)]))
    await restart_kubelet(cluster)
    await wait_until(lambda: cluster.ready("orphan-to-be"))
    orphan_ip = cluster.status("orphan-to-be")["podIP"]
    orphan_pid = _pids(cluster, "orphan-to-be")["app"]
    await cluster.kubelet.stop(stop_pods=False)
    cluster.store.delete(POD.key, "default", "orphan-to-be")
    await restart_kubelet(cluster)
    # Adopted: same processes, same IP, no restart.
    await wait_until(lambda: cluster.ready("keeper"))
    assert _pids(cluster, "keeper") == before and cluster.status("keeper")["podIP"] == ip
    assert cluster.container("keeper", "app")["restartCount"] == 0
    # Died while down: restarted per policy, counted, its end recorded.
    cs = await wait_until(lambda: (s := cluster.container("victim", "c")).get("restartCount") == 1 and s.get("ready")
                          and s)
    assert cs["lastState"]["terminated"]["exitCode"] == 137
    assert _pids(cluster, "victim")["c"] != victim_pid
    # Object gone while down: its processes are stopped, nothing orphaned.
    await wait_until(lambda: not _alive(orphan_pid), timeout=10)
    await wait_until(lambda: not listening(orphan_ip, 8091))
    # Exactly one program per container: the restart started no duplicates.
    code, body = await cluster.logs("keeper")
    assert code == 200 and body.count("listening on") == 1


async def test_previous_logs_survive_adoption(cluster: Cluster) -> None:
    script = "import sys; print('run', flush=True); sys.exit(1)"
    cluster.create(pod("flappy", [{"name": "f", "image": "x", "command": [sys.executable, "-c", script]}]))
    await wait_until(lambda: cluster.container("flappy", "f").get("restartCount", 0) >= 1)
    await restart_kubelet(cluster)
    await wait_until(lambda: cluster.container("flappy", "f").get("restartCount", 0) >= 2)
    code, body = await cluster.logs("flappy", previous="true")
    assert (code, body) == (200, "run\n")


async def test_stop_with_pods_leaves_nothing_listening(cluster: Cluster) -> None:
    stubborn = {"name": "stubborn", "image": "x", "command": [
        sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"]}
    cluster.create(pod("s1", [server_container(port=8092)]))
    cluster.create(pod("s2", [server_container(port=8092), stubborn]))
    await wait_until(lambda: cluster.ready("s1") and cluster.ready("s2"))
    ips = [cluster.status(n)["podIP"] for n in ("s1", "s2")]
    pids = [*_pids(cluster, "s1").values(), *_pids(cluster, "s2").values()]
    await cluster.kubelet.stop(stop_pods=True)
    assert not any(listening(ip, 8092) for ip in ips)
    assert not any(_alive(p) for p in pids)
    # The Pods stay in the store (a later `sluice up` runs them again, with the same IPs).
    await restart_kubelet(cluster)
    await wait_until(lambda: cluster.ready("s1"))
    assert cluster.status("s1")["podIP"] == ips[0]
