"""Helpers for end-to-end tests against a full daemon: Bookinfo running as processes with real Envoys."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, config

from tests.conftest import TOOLS, Daemon, start_daemon, stop_daemon, wait_for

SAMPLES = Path(__file__).resolve().parents[2] / "src" / "sluice" / "samples"
STORY_NS = "tutorial"


def start_story_mesh(tmp: Path, *, config: str = "", extra: Sequence[str] = ()) -> Daemon:
    """A daemon (state in `tmp/home`, `config` its config.yaml) running the story's namespace: Bookinfo, its
    DestinationRules and sleep, then the `extra` manifests; returns once every Deployment is available."""
    home = tmp / "home"
    home.mkdir(parents=True, exist_ok=True)
    if config:
        (home / "config.yaml").write_text(config)
    d = start_daemon(home)
    kube = [str(TOOLS / "kubectl-1.35"), f"--cache-dir={tmp}/kc", "-n", STORY_NS]
    try:
        subprocess.run([*kube, "create", "namespace", STORY_NS], env=d.env, capture_output=True)
        for f in ("bookinfo.yaml", "destination-rule-all.yaml", "sleep.yaml"):
            subprocess.run([*kube, "apply", "-f", str(SAMPLES / f)], env=d.env, check=True, capture_output=True)
        for doc in extra:
            subprocess.run([*kube, "apply", "-f", "-"], input=doc, env=d.env, check=True, capture_output=True,
                           text=True)
        apps = client.AppsV1Api(api_client(d))
        wait_for(lambda: deployments_ready(apps, STORY_NS), timeout=120, interval=0.25)
    except BaseException:
        stop_daemon(d)
        raise
    return d


def api_client(d: Daemon) -> client.ApiClient:
    return config.new_client_from_config(str(d.kubeconfig))


def pod_ips(core: client.CoreV1Api, ns: str, selector: str) -> list[str]:
    return [p.status.pod_ip for p in core.list_namespaced_pod(ns, label_selector=selector).items
            if p.status and p.status.pod_ip and p.metadata.deletion_timestamp is None]


def deployments_ready(apps: client.AppsV1Api, ns: str) -> bool:
    items = apps.list_namespaced_deployment(ns).items
    return bool(items) and all((d.status.available_replicas or 0) >= (d.spec.replicas or 0)
                               and d.status.observed_generation == d.metadata.generation for d in items)


def via(proxy_ip: str, url: str, headers: dict[str, str] | None = None, timeout: float = 10) -> tuple[int, bytes]:
    """A request sent the way an app in the pod sends it: through its sidecar as an HTTP proxy."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": f"http://{proxy_ip}:15001"}))
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with opener.open(req, timeout=timeout) as r:
            return int(r.status), r.read()
    except urllib.error.HTTPError as e:
        return int(e.code), e.read()


def reviews_version(body: bytes) -> str:
    """Which reviews version answered, from its own response: no ratings = v1, black = v2, red = v3."""
    doc = json.loads(body)
    colors = {(r.get("rating") or {}).get("color") for r in doc.get("reviews", [])}
    if colors == {None}:
        return "v1"
    return {"black": "v2", "red": "v3"}.get(next(iter(colors - {None}), ""), "?")


def config_dump(pod_ip: str, resource: str = "dynamic_route_configs") -> dict[str, Any]:
    with urllib.request.urlopen(f"http://{pod_ip}:15000/config_dump?resource={resource}", timeout=5) as r:
        return dict(json.loads(r.read()))


def route_weights(pod_ip: str, vhost_prefix: str = "reviews.") -> dict[str, int]:
    """The weighted clusters a sidecar currently holds for the reviews virtual host."""
    out: dict[str, int] = {}
    for cfg in config_dump(pod_ip).get("configs", []):
        for vh in cfg.get("route_config", {}).get("virtual_hosts", []):
            if not vh.get("name", "").startswith(vhost_prefix):
                continue
            for route in vh.get("routes", []):
                action = route.get("route", {})
                if "weighted_clusters" in action:
                    for c in action["weighted_clusters"]["clusters"]:
                        out[c["name"].split("|")[2]] = int(c.get("weight", 0))
                elif "cluster" in action:
                    out[action["cluster"].split("|")[2] or "-"] = 100
            return out
    return out


@dataclass
class SteadyLoad:
    """Requests at a steady pace through a pod's sidecar until stopped; counts answers by status and version."""

    proxy_ip: str
    url: str
    interval: float = 0.01
    codes: Counter[int] = field(default_factory=Counter)
    versions: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> SteadyLoad:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        deadline = time.monotonic() + 600  # stops by itself
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                code, body = via(self.proxy_ip, self.url)
                self.codes[code] += 1
                if code == 200 and "/reviews/" in self.url:
                    self.versions[reviews_version(body)] += 1
                elif code != 200:
                    self.failures.append(f"{code}: {body[:200]!r}")
            except OSError as e:
                self.failures.append(repr(e))
            time.sleep(self.interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    @property
    def total(self) -> int:
        return sum(self.codes.values())


__all__ = ["SAMPLES", "STORY_NS", "start_story_mesh", "api_client", "pod_ips", "deployments_ready", "via", "reviews_version", "config_dump",
           "route_weights", "SteadyLoad", "wait_for"]
