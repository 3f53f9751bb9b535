"""One VirtualService that breaks the translation never stops pushes for the rest, against a real daemon
with real Envoy sidecars (issue 9, point 4).

The broken object is a real one, not an injected failure: `timeout: 400000000000s` passes Istio's
validation (a duration of at least 1ms) but is beyond protobuf's Duration range (±315,576,000,000 s), so
generating the route for it raises. After it is stored, a valid VirtualService still reaches every
sidecar (read from Envoy's own config dump through `sluice proxy-config`), the object carries a Warning
Event, `sluice analyze` reports it as IST0001, proxy-status shows every proxy SYNCED (the rest of the
config is served) and names the object left out, and once fixed it is pushed too. A regex Envoy refuses (an RE2 program larger than
Envoy's default limit of 100) is not a translation failure: Envoy NACKs it, and `sluice proxy-status`
shows NACK with Envoy's error.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import TOOLS, Daemon, child_processes, start_daemon, stop_daemon, wait_for
from tests.integration.cli_helpers import Sluice

NS = "iso"
SAMPLES = Path(__file__).resolve().parents[2] / "src" / "sluice" / "samples"
TIMEOUT = 60.0


def _details_only() -> str:
    docs = [d for d in yaml.safe_load_all((SAMPLES / "bookinfo.yaml").read_text()) if d]
    keep = [d for d in docs if (d["metadata"].get("labels") or {}).get("app") == "details"
            or d["metadata"]["name"] in ("details", "bookinfo-details")]
    return yaml.safe_dump_all(keep)


def vs(name: str, host: str, timeout: str = "", regex: str = "") -> str:
    rule: dict[str, Any] = {"route": [{"destination": {"host": host}}]}
    if timeout:
        rule["timeout"] = timeout
    if regex:
        rule["match"] = [{"uri": {"regex": regex}}]
    return yaml.safe_dump({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                           "metadata": {"name": name, "namespace": NS},
                           "spec": {"hosts": [host], "http": [rule]}})


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, Any, Sluice]]:
    tmp = tmp_path_factory.mktemp("push-isolation")
    d = start_daemon(tmp / "home")
    cache = tmp / "kc"

    def kubectl(*args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        cp = subprocess.run([str(TOOLS / "kubectl-1.35"), f"--cache-dir={cache}", "-n", NS, *args], input=input,
                            env=d.env, capture_output=True, text=True, timeout=60)
        assert not check or cp.returncode == 0, f"kubectl {' '.join(args)}: {cp.stdout}{cp.stderr}"
        return cp

    try:
        kubectl("create", "namespace", NS)
        kubectl("apply", "-f", str(SAMPLES / "sleep.yaml"))
        kubectl("apply", "-f", "-", input=_details_only())
        yield d, kubectl, Sluice(d.env)
    finally:
        stop_daemon(d)


def pods(kubectl: Any) -> list[str]:
    out = json.loads(kubectl("get", "pods", "-o", "json").stdout)
    return sorted(f"{p['metadata']['name']}.{NS}" for p in out["items"]
                  if (p.get("status") or {}).get("podIP"))


def syncz(sluice: Sluice) -> tuple[dict[str, list[str]], str]:
    """proxy-status as {proxy: [CDS, LDS, EDS, RDS]} and its stderr."""
    cp = sluice("proxy-status")
    assert cp.returncode == 0 and "Traceback" not in cp.stderr, cp.stdout + cp.stderr
    rows = {}
    for line in cp.stdout.splitlines()[1:]:
        cells = line.split()
        rows[cells[0]] = [c for c in cells[2:] if c in ("SYNCED", "STALE", "NACK", "NOT", "STALE")][:4]
    return rows, cp.stderr


def all_synced(sluice: Sluice, proxies: list[str]) -> bool:
    rows, _ = syncz(sluice)
    return sorted(rows) == proxies and all(states == ["SYNCED"] * 4 for states in rows.values())


def route_timeouts(sluice: Sluice, proxy: str, host: str) -> list[str]:
    """The timeouts of the routes of `host`'s virtual host in the proxy's Envoy (its own config dump)."""
    cp = sluice("proxy-config", "routes", proxy, "-o", "json")
    assert cp.returncode == 0, cp.stdout + cp.stderr
    out = []
    for rc in json.loads(cp.stdout):
        for vh in rc.get("virtual_hosts") or []:
            if vh["name"].startswith(f"{host}.{NS}.svc.cluster.local:"):
                out.extend(str((r.get("route") or {}).get("timeout")) for r in vh.get("routes") or [])
    return out


def test_a_broken_virtual_service_is_skipped_and_the_rest_is_pushed(mesh: tuple[Daemon, Any, Sluice]) -> None:
    d, kubectl, sluice = mesh
    wait_for(lambda: len(pods(kubectl)) == 2, timeout=TIMEOUT, interval=0.25)
    proxies = pods(kubectl)
    wait_for(lambda: all_synced(sluice, proxies), timeout=TIMEOUT, interval=0.25)

    # 1. A VirtualService the translation cannot turn into Envoy config is accepted by the API ...
    kubectl("apply", "-f", "-", input=vs("details-broken", "details", timeout="400000000000s"))
    # ... and a valid change after it reaches every sidecar.
    kubectl("apply", "-f", "-", input=vs("sleep-timeout", "sleep", timeout="7s"))
    for proxy in proxies:
        wait_for(lambda p=proxy: route_timeouts(sluice, p, "sleep") == ["7s"], timeout=TIMEOUT, interval=0.25)
        assert route_timeouts(sluice, proxy, "details") != ["400000000000s"]
    wait_for(lambda: all_synced(sluice, proxies), timeout=TIMEOUT, interval=0.25)
    # Every proxy holds all the rest of the config (SYNCED, as istiod says); proxy-status names what is left out.
    _, err = syncz(sluice)
    assert "VirtualService iso/details-broken is not pushed to any proxy (the rest of the config is): " in err, err

    # 2. The broken object carries a Warning Event naming the failure ...
    def events() -> list[dict[str, Any]]:
        items = json.loads(kubectl("get", "events", "-o", "json").stdout)["items"]
        return [e for e in items if e["involvedObject"].get("name") == "details-broken"]

    wait_for(events, timeout=TIMEOUT, interval=0.25)
    [event] = events()
    assert event["type"] == "Warning" and event["reason"] == "InvalidConfig", event
    assert event["involvedObject"]["kind"] == "VirtualService"
    assert "Not pushed to any proxy" in event["message"] and "400000000000s" in event["message"], event
    # ... and `sluice analyze` reports it (istioctl's exit status for errors).
    cp = sluice("analyze", "-n", NS)
    assert cp.returncode == 79, cp.stdout + cp.stderr
    [line] = [ln for ln in cp.stdout.splitlines() if "IST0001" in ln]
    assert line.startswith("Error [IST0001] (VirtualService iso/details-broken) Internal error: not pushed to any "
                           "proxy, translating it failed: "), line
    assert "400000000000s" in line

    # 3. Fixed (a new resourceVersion): tried again and pushed to every sidecar; analyze is clean of it.
    kubectl("apply", "-f", "-", input=vs("details-broken", "details", timeout="5s"))
    for proxy in proxies:
        wait_for(lambda p=proxy: route_timeouts(sluice, p, "details") == ["5s"], timeout=TIMEOUT, interval=0.25)
    assert "IST0001" not in sluice("analyze", "-n", NS).stdout
    assert "details-broken" not in syncz(sluice)[1]

    # 4. A route Envoy itself refuses (an RE2 program larger than Envoy allows) is a NACK with Envoy's error.
    # (The same VirtualService as before: a second one for the host would be ignored, as in Istio.)
    kubectl("apply", "-f", "-", input=vs("sleep-timeout", "sleep", timeout="7s", regex="a{1000}"))

    def nacked() -> str:
        rows, err = syncz(sluice)
        return err if rows and all("NACK" in states for states in rows.values()) else ""

    wait_for(nacked, timeout=TIMEOUT, interval=0.25)
    err = nacked()
    assert "RDS version" in err and "rejected" in err and "program size" in err, err
    kubectl("apply", "-f", "-", input=vs("sleep-timeout", "sleep", timeout="8s"))
    for proxy in proxies:
        wait_for(lambda p=proxy: route_timeouts(sluice, p, "sleep") == ["8s"], timeout=TIMEOUT, interval=0.25)
    wait_for(lambda: all_synced(sluice, proxies), timeout=TIMEOUT, interval=0.25)


def _search_workers(daemon_pid: int) -> list[int]:
    """The daemon's culprit-search worker processes (`python -m sluice.xds.isolation`)."""
    return child_processes(daemon_pid, "sluice.xds.isolation")


def test_the_culprit_search_runs_in_a_worker_process_replaced_when_killed(mesh: tuple[Daemon, Any, Sluice]) -> None:
    """The search for the object a push fails on runs in a process of its own (the daemon's event loop does not
    share the GIL with it); killed, it is replaced and the next broken object is still found."""
    d, kubectl, sluice = mesh
    assert d.proc is not None
    wait_for(lambda: len(pods(kubectl)) == 2, timeout=TIMEOUT, interval=0.25)
    kubectl("delete", "virtualservices", "--all")  # a host's second VirtualService would be ignored
    kubectl("apply", "-f", "-", input=vs("details-broken-a", "details", timeout="400000000000s"))
    wait_for(lambda: "details-broken-a" in syncz(sluice)[1], timeout=TIMEOUT, interval=0.25)
    [worker] = _search_workers(d.proc.pid)
    kubectl("delete", "virtualservice", "details-broken-a")

    os.kill(worker, signal.SIGKILL)
    wait_for(lambda: not _search_workers(d.proc.pid) if d.proc else False, timeout=TIMEOUT, interval=0.1)
    kubectl("apply", "-f", "-", input=vs("details-broken-b", "details", timeout="400000000000s"))
    wait_for(lambda: "details-broken-b" in syncz(sluice)[1], timeout=TIMEOUT, interval=0.25)
    [replacement] = _search_workers(d.proc.pid)
    assert replacement != worker
    cp = sluice("analyze", "-n", NS)
    assert "(VirtualService iso/details-broken-b) Internal error: not pushed to any proxy" in cp.stdout, cp.stdout
    kubectl("delete", "virtualservice", "details-broken-b")
