"""Pods as local processes: status, IPs, environment, images, restarts, probes, termination."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import sys
import time
from pathlib import Path

from sluice import mesh
from tests.integration.runtime.harness import (
    POD as POD_RT,
)
from tests.integration.runtime.harness import (
    Cluster,
    http_get,
    listening,
    pod,
    server_container,
    wait_until,
)


async def test_pod_runs_and_reports_status(cluster: Cluster) -> None:
    cluster.create(pod("web-a", [server_container(port=8080)]))
    cluster.create(pod("web-b", [server_container(port=8080)]))
    await wait_until(lambda: cluster.ready("web-a") and cluster.ready("web-b"))
    a, b = cluster.status("web-a"), cluster.status("web-b")
    assert a["phase"] == b["phase"] == "Running"
    assert a["podIP"] != b["podIP"]
    for st in (a, b):
        assert ipaddress.ip_address(st["podIP"]) in mesh.POD_NETWORK
        assert st["podIPs"] == [{"ip": st["podIP"]}]
        assert st["hostIP"] == "127.0.0.1" and st["startTime"]
        conds = {c["type"]: c["status"] for c in st["conditions"]}
        assert conds["PodScheduled"] == conds["Initialized"] == conds["ContainersReady"] == conds["Ready"] == "True"
        (cs,) = st["containerStatuses"]
        assert cs["name"] == "app" and cs["ready"] is True and cs["started"] is True and cs["restartCount"] == 0
        assert "running" in cs["state"] and cs["state"]["running"]["startedAt"]
        assert cs["lastState"] == {} and cs["image"] == "local/python"
        assert cs["containerID"].startswith("sluice://") and cs["imageID"]
    # Without a sidecar the app listens on the pod IP and sees its own name. (Ready without a readiness probe
    # says the process started, not that it listens yet: wait for the listener itself.)
    await wait_until(lambda: listening(a["podIP"], 8080))
    code, body = http_get(f"http://{a['podIP']}:8080/hello")
    assert (code, body) == (200, "web-a /hello")


async def test_env_and_field_refs(cluster: Cluster, tmp_path: Path) -> None:
    out = tmp_path / "env.txt"
    script = ("import os; open(os.environ['OUT'], 'w').write('\\n'.join(f'{k}={os.environ.get(k)}' for k in "
              "['HOSTNAME','POD_NAME','POD_NAMESPACE','POD_IP','SLUICE_BIND','HTTP_PROXY','MY_IP','MY_NAME',"
              "'GREETING','APP'])); import time; time.sleep(60)")
    c = {"name": "env", "image": "busybox", "command": [sys.executable, "-c", script], "env": [
        {"name": "OUT", "value": str(out)},
        {"name": "MY_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "MY_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "GREETING", "value": "hi $(MY_NAME)"}], "workingDir": str(tmp_path)}
    cluster.create(pod("envpod", [c]))
    await wait_until(out.exists)
    env = dict(line.split("=", 1) for line in (await wait_until(lambda: out.read_text())).splitlines())
    ip = cluster.status("envpod")["podIP"]
    assert env == {"HOSTNAME": "envpod", "POD_NAME": "envpod", "POD_NAMESPACE": "default", "POD_IP": ip,
                   "SLUICE_BIND": ip, "HTTP_PROXY": "None", "MY_IP": ip, "MY_NAME": "envpod",
                   "GREETING": "hi envpod", "APP": "envpod"}


async def test_unknown_image_is_err_image_pull(cluster: Cluster) -> None:
    cluster.create(pod("nginx", [{"name": "web", "image": "nginx:1.25"}]))
    cs = await wait_until(lambda: cluster.container("nginx", "web").get("state", {}).get("waiting", {}).get("reason")
                          == "ErrImagePull" and cluster.container("nginx", "web"))
    assert 'image "nginx:1.25"' in cs["state"]["waiting"]["message"]
    assert "examples-bookinfo" in cs["state"]["waiting"]["message"] and "command" in cs["state"]["waiting"]["message"]
    assert cs["ready"] is False and "containerID" not in cs
    assert cluster.status("nginx")["phase"] == "Pending"
    code, body = await cluster.logs("nginx")
    assert code == 400
    assert json.loads(body)["message"] == 'container "web" in pod "nginx" is waiting to start: image can\'t be pulled'


async def test_missing_program_is_a_start_error(cluster: Cluster) -> None:
    cluster.create(pod("nope", [{"name": "c", "image": "x", "command": ["no-such-program-here"]}],
                       restartPolicy="Never"))
    await wait_until(lambda: cluster.status("nope").get("phase") == "Failed")
    term = cluster.container("nope", "c")["state"]["terminated"]
    assert term["reason"] == "StartError" and term["exitCode"] == 128
    assert 'exec: "no-such-program-here": executable file not found in $PATH' in term["message"]


async def test_crash_loop_back_off_and_restart_count(cluster: Cluster) -> None:
    crash = {"name": "boom", "image": "x",
             "command": [sys.executable, "-c", "import sys; print('about to fail', flush=True); sys.exit(3)"]}
    cluster.create(pod("crasher", [crash]))
    seen_backoff = await wait_until(lambda: cluster.container("crasher", "boom").get("state", {}).get("waiting", {})
                                    .get("reason") == "CrashLoopBackOff" and cluster.container("crasher", "boom"))
    assert "restarting failed container=boom pod=crasher_default(" in seen_backoff["state"]["waiting"]["message"]
    cs = await wait_until(lambda: (s := cluster.container("crasher", "boom")).get("restartCount", 0) >= 3 and s)
    last = cs["lastState"]["terminated"]
    assert last["exitCode"] == 3 and last["reason"] == "Error" and last["finishedAt"]
    assert cluster.status("crasher")["phase"] == "Running"  # restartPolicy Always: crash-looping, not Failed
    # Not ready while it waits out its back-off (each short run, with no probe, is ready while it lasts).
    await wait_until(lambda: not cluster.ready("crasher"))
    code, body = await cluster.logs("crasher", previous="true")
    assert code == 200 and body == "about to fail\n"


async def test_restart_policies_and_terminal_phases(cluster: Cluster) -> None:
    ok = {"name": "job", "image": "x", "command": [sys.executable, "-c", "print('done')"]}
    bad = {"name": "job", "image": "x", "command": [sys.executable, "-c", "import sys; sys.exit(2)"]}
    cluster.create(pod("succeeds", [ok], restartPolicy="OnFailure"))
    cluster.create(pod("fails", [bad], restartPolicy="Never"))
    await wait_until(lambda: cluster.status("succeeds").get("phase") == "Succeeded")
    await wait_until(lambda: cluster.status("fails").get("phase") == "Failed")
    t = cluster.container("succeeds", "job")
    assert t["state"]["terminated"]["reason"] == "Completed" and t["state"]["terminated"]["exitCode"] == 0
    assert t["restartCount"] == 0
    f = cluster.container("fails", "job")
    assert f["state"]["terminated"]["reason"] == "Error" and f["state"]["terminated"]["exitCode"] == 2
    assert f["restartCount"] == 0
    code, body = await cluster.logs("succeeds")
    assert (code, body) == (200, "done\n")


async def test_readiness_probe_drives_ready(cluster: Cluster, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    probe = {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 1, "failureThreshold": 1}
    c = server_container(port=8081, readinessProbe=probe, workingDir=str(work))
    c["ports"] = [{"name": "http", "containerPort": 8081}]
    cluster.create(pod("probed", [c]))
    await wait_until(lambda: "running" in cluster.container("probed", "app").get("state", {}))
    assert not cluster.ready("probed")
    (work / "ready").touch()
    await wait_until(lambda: cluster.ready("probed"))
    assert cluster.container("probed", "app")["ready"] is True
    (work / "ready").unlink()
    await wait_until(lambda: not cluster.ready("probed"))
    cond = next(c for c in cluster.status("probed")["conditions"] if c["type"] == "Ready")
    assert cond["reason"] == "ContainersNotReady" and cond["message"] == "containers with unready status: [app]"


async def test_liveness_probe_restarts_container(cluster: Cluster) -> None:
    c = server_container(port=8082, livenessProbe={"exec": {"command": ["false"]}, "periodSeconds": 1,
                                                   "failureThreshold": 2})
    cluster.create(pod("unlively", [c], terminationGracePeriodSeconds=2))
    cs = await wait_until(lambda: (s := cluster.container("unlively", "app")).get("restartCount", 0) >= 1 and s)
    # The server exits 0 on SIGTERM; a liveness kill still restarts it under restartPolicy Always.
    assert cs["lastState"]["terminated"]["exitCode"] == 0
    code, body = await cluster.logs("unlively", previous="true")
    assert "got SIGTERM" in body


async def test_exec_probe_runs_the_images_own_tool(cluster: Cluster) -> None:
    # `/usr/bin/fortio` exists only in fortio's image: the probe runs the built-in that stands in for it, as
    # `kubectl exec` does, or the pod would never be ready here
    c = server_container(port=8085, image="fortio/fortio:1.69.5",
                         readinessProbe={"exec": {"command": ["/usr/bin/fortio", "version"]}, "periodSeconds": 1})
    cluster.create(pod("fortio-probed", [c]))
    await wait_until(lambda: cluster.ready("fortio-probed"))
    assert cluster.container("fortio-probed", "app")["ready"] is True


async def test_tcp_and_startup_probes(cluster: Cluster) -> None:
    c = server_container(port=8083, startupProbe={"tcpSocket": {"port": 8083}, "periodSeconds": 1},
                         readinessProbe={"tcpSocket": {"port": 8083}, "periodSeconds": 1})
    cluster.create(pod("tcp", [c]))
    await wait_until(lambda: cluster.ready("tcp"))
    assert cluster.container("tcp", "app")["started"] is True


async def test_graceful_termination(cluster: Cluster, tmp_path: Path) -> None:
    marker = tmp_path / "term.txt"
    c = server_container(port=8084, env=[{"name": "MARKER", "value": str(marker)}])
    cluster.create(pod("doomed", [c], terminationGracePeriodSeconds=5))
    await wait_until(lambda: cluster.ready("doomed"))
    ip = cluster.status("doomed")["podIP"]
    await wait_until(lambda: listening(ip, 8084))  # its SIGTERM handler is in place once it listens
    uid = cluster.get("doomed")["metadata"]["uid"]  # type: ignore[index]
    cluster.registry.delete(POD_RT, "v1", "default", "doomed", {})
    await wait_until(lambda: marker.exists() and "SIGTERM" in marker.read_text(), timeout=15)
    await wait_until(lambda: cluster.get("doomed") is None, timeout=15)
    await wait_until(lambda: not listening(ip, 8084))
    assert not (cluster.home.root / "runtime" / "pods" / uid).exists()  # IP freed, state dropped


async def test_pod_leaves_endpoints_first_and_object_goes_last(cluster: Cluster, tmp_path: Path) -> None:
    marker = tmp_path / "term.txt"
    c = server_container(port=8086, env=[{"name": "MARKER", "value": str(marker)}])
    cluster.create(pod("ordered", [c], terminationGracePeriodSeconds=5))
    await wait_until(lambda: cluster.ready("ordered"))
    await wait_until(lambda: listening(cluster.status("ordered")["podIP"], 8086))  # its SIGTERM handler is set
    watcher, _ = cluster.store.watch(POD_RT.key, "default", None)
    cluster.registry.delete(POD_RT, "v1", "default", "ordered", {})
    await wait_until(lambda: cluster.get("ordered") is None, timeout=15)
    events = []
    while not watcher.queue.empty():
        ev = watcher.queue.get_nowait()
        assert ev is not None
        events.append((time.time(), ev))
    cluster.store.unwatch(watcher)
    kinds = []
    for _, e in events:
        conds = {cd["type"]: cd["status"] for cd in (e.object.get("status") or {}).get("conditions") or []}
        kinds.append("not-ready" if e.type == "MODIFIED" and conds.get("Ready") == "False" else e.type)
    # deletionTimestamp set (MODIFIED) → not Ready (MODIFIED) → … → DELETED, and SIGTERM came before DELETED.
    assert "not-ready" in kinds and kinds[-1] == "DELETED", kinds
    assert kinds.index("not-ready") < len(kinds) - 1
    assert "SIGTERM" in marker.read_text()


async def test_sigkill_after_grace_period(cluster: Cluster) -> None:
    stubborn = {"name": "stubborn", "image": "x", "command": [
        sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ignoring', flush=True); time.sleep(600)"]}
    cluster.create(pod("stubborn", [stubborn], terminationGracePeriodSeconds=1))
    await wait_until(lambda: cluster.ready("stubborn"))
    pid_file = next((cluster.home.root / "runtime" / "pods").glob("*/containers/stubborn/0.pid"))
    pid = int(pid_file.read_text().split()[0])
    cluster.registry.delete(POD_RT, "v1", "default", "stubborn", {})
    await wait_until(lambda: not Path(f"/proc/{pid}").exists() or Path(f"/proc/{pid}/stat").read_text().split()[2]
                     == "Z", timeout=10)
    await wait_until(lambda: cluster.get("stubborn") is None, timeout=10)


async def test_pod_ips_are_unique_and_survive_restart(cluster: Cluster) -> None:
    for i in range(6):
        cluster.create(pod(f"p{i}", [{"name": "s", "image": "curlimages/curl:8.8.0",
                                       "command": ["/bin/sleep", "infinity"]}]))
    ips = await wait_until(lambda: (v := [cluster.status(f"p{i}").get("podIP") for i in range(6)]) and all(v) and v)
    assert len(set(ips)) == 6
    await wait_until(lambda: all(cluster.ready(f"p{i}") for i in range(6)))


async def test_namespace_deletion_stops_pods(cluster: Cluster, tmp_path: Path) -> None:
    from sluice.resources.kinds import by_kind

    cluster.registry.ensure_namespace("gone")
    marker = tmp_path / "ns-term.txt"
    cluster.create(pod("inns", [server_container(port=8085, env=[{"name": "MARKER", "value": str(marker)}])]),
                   ns="gone")
    await wait_until(lambda: cluster.ready("inns", "gone"))
    ip = cluster.status("inns", "gone")["podIP"]
    # Ready (no probe) means started; the app has its SIGTERM handler once it listens.
    await wait_until(lambda: listening(ip, 8085))
    ns_rt = by_kind("", "Namespace")
    assert ns_rt is not None
    cluster.registry.delete(ns_rt, "v1", None, "gone", {})
    await wait_until(lambda: marker.exists() and "SIGTERM" in marker.read_text(), timeout=15)
    await wait_until(lambda: not listening(ip, 8085))



async def test_bookinfo_image_runs_the_builtin_service(cluster: Cluster) -> None:
    details = {"name": "details", "image": "docker.io/istio/examples-bookinfo-details-v1:1.20.2",
               "ports": [{"containerPort": 9080}]}
    cluster.create(pod("details-v1", [details]))
    await wait_until(lambda: cluster.ready("details-v1"), timeout=30)
    ip = cluster.status("details-v1")["podIP"]
    code, body = await asyncio.to_thread(lambda: _get_retry(f"http://{ip}:9080/details/0"))
    assert code == 200 and json.loads(body)["id"] == 0


def _get_retry(url: str) -> tuple[int, str]:
    for _ in range(50):
        try:
            return http_get(url)
        except OSError:
            time.sleep(0.1)
    return http_get(url)
