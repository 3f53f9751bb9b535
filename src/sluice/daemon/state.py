"""The state directory (`SLUICE_HOME`, default `~/.sluice`): where things live and the files that say so.

Used by the daemon (writes) and by `sluice up/down/status` and the CLI (reads).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sluice.daemon.pki import ensure_pki
from sluice.paths import home_from_env

__all__ = ["Home", "DaemonOptions", "home_from_env"]


@dataclass(frozen=True)
class DaemonOptions:
    api_port: int = 6443
    xds_port: int = 15010
    metrics_port: int = 9090
    console_port: int = 20001
    relative_weights: bool = False
    runtime: bool = True  # run pods (kubelet, sidecars, xDS); off = API server and controllers only
    scrape_interval: float = 5.0  # seconds between samples of the mesh's metrics into the embedded TSDB
    retention_hours: float = 24.0  # how long the embedded TSDB keeps samples
    prometheus_url: str = ""  # query this Prometheus (console, CLI, stat) instead of the embedded store
    # "netns" (each pod in its own network namespace, Istio's transparent capture), "loopback" (pods share
    # the host's network, apps use HTTP_PROXY), or "auto": netns wherever the daemon can make namespaces.
    network: str = "auto"
    # PromQL safeguards, as Prometheus's --query.timeout, --query.max-samples and --query.max-concurrency;
    # queries beyond the running ones wait in a queue of query_max_queue, and past that get a 503.
    query_timeout: float = 120.0
    query_max_samples: int = 50_000_000
    query_max_concurrency: int = 2
    query_max_queue: int = 16
    # Connection hygiene on the HTTP ports (sluice.daemon.guarded_site)
    header_timeout: float = 10.0  # seconds to finish TLS and a request's headers
    # seconds a keep-alive connection may sit without a request: past client-go's 90 s IdleConnTimeout, so
    # kubectl drops an idle connection before the server does and never races a close with a new request
    idle_timeout: float = 120.0
    max_connections: int = 0  # per HTTP port; 0 = from the file descriptor limit
    # Container log rotation, as the kubelet's containerLogMaxSize (a quantity) and containerLogMaxFiles
    container_log_max_size: str = "10Mi"
    container_log_max_files: int = 5
    # Series one reporting workload's access logs may create, counted as a scrape stores them (Prometheus's
    # sample_limit, per workload; entries beyond it are dropped and counted in
    # sluice_telemetry_series_limit_exceeded_total); 0 = none.
    telemetry_series_limit: int = 20_000
    # Start container shims, and Sluice's built-in Python programs, by forking a process that has their
    # imports done (sluice.runtime.zygote); false: a fresh interpreter for each.
    fork_server: bool = True
    # LoadBalancer Service port → the host port serving it on 127.0.0.1 (e.g. {80: 18080}); unset ports below
    # ip_unprivileged_port_start move by 8000 when the daemon is not root (sluice.resources.loadbalancer).
    gateway_ports: dict[int, int] = field(default_factory=dict)
    # Run the Argo Rollouts controller (sluice.rollouts) inside the daemon; off when one runs elsewhere
    rollouts_controller: bool = True


@dataclass(frozen=True)
class Home:
    root: Path

    @property
    def store(self) -> Path:
        return self.root / "store.db"

    @property
    def pidfile(self) -> Path:
        return self.root / "daemon.pid"

    @property
    def runfile(self) -> Path:
        return self.root / "daemon.json"

    @property
    def logfile(self) -> Path:
        return self.root / "logs" / "daemon.log"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def tokenfile(self) -> Path:
        return self.root / "token"

    @property
    def xds_socket(self) -> Path:
        """The xDS/ALS Unix socket sidecars in their own network namespaces connect to."""
        return self.root / "xds.sock"

    @property
    def configfile(self) -> Path:
        return self.root / "config.yaml"

    def prepare(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        (self.root / "logs").mkdir(exist_ok=True)

    def token(self) -> str:
        if not self.tokenfile.exists():
            fd = os.open(self.tokenfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
        return self.tokenfile.read_text().strip()

    def load_options(self, overrides: DaemonOptions | None) -> DaemonOptions:
        """Ports and mesh settings: flags override `config.yaml`, which overrides the defaults."""
        data: dict[str, Any] = {}
        if self.configfile.exists():
            loaded = yaml.safe_load(self.configfile.read_text()) or {}
            if isinstance(loaded, dict):
                data = {k.replace("-", "_"): v for k, v in loaded.items()}
        base = DaemonOptions(**{k: v for k, v in data.items() if k in DaemonOptions.__dataclass_fields__})
        if overrides is None:
            return base
        merged = asdict(base)
        for k, v in asdict(overrides).items():
            if v != getattr(DaemonOptions(), k):
                merged[k] = v
        return DaemonOptions(**merged)

    def write_kubeconfig(self, api_port: int) -> None:
        pki = ensure_pki(self.root / "pki")
        ca = base64.b64encode(pki.ca_cert.read_bytes()).decode()
        cfg = {
            "apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": "sluice", "cluster": {"server": f"https://127.0.0.1:{api_port}",
                                                        "certificate-authority-data": ca}}],
            "users": [{"name": "sluice-admin", "user": {"token": self.token()}}],
            "contexts": [{"name": "sluice", "context": {"cluster": "sluice", "user": "sluice-admin",
                                                        "namespace": "default"}}],
            "current-context": "sluice",
        }
        tmp = self.kubeconfig.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump(cfg, f, sort_keys=False)
        os.replace(tmp, self.kubeconfig)

    def read_run(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.runfile.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def write_run(self, info: dict[str, Any]) -> None:
        tmp = self.runfile.with_suffix(".tmp")
        tmp.write_text(json.dumps(info, indent=2))
        os.replace(tmp, self.runfile)
