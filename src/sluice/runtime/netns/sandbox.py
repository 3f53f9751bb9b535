"""A pod's sandbox in netns mode: its network namespace, capture rules and the files bound into it.

The pod worker calls `PodNetwork.setup_pod` (from a thread) before any container starts: it makes the
pod's namespace on the node network (`sluice.runtime.netns.node`), applies istio-init's capture rules to
sidecar pods (`sluice.runtime.netns.capture`), and writes the pod's `/etc/resolv.conf` and `/etc/hosts` as the
kubelet does (`sluice.dns.files`); `sluice.runtime.enter` binds those over the host's files for every process of the pod.
The worker then registers the namespace with the loopback load balancer (`sluice.runtime.netns.loopback_lb`), so
the pod reaches 127.0.0.1's LoadBalancer ports from its first process on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sluice import mesh
from sluice.dns.files import nsswitch_conf, pod_hosts_file, pod_resolv_conf
from sluice.runtime.netns.capture import capture_config, capture_rules
from sluice.runtime.netns.loopback_lb import LoopbackBalancer
from sluice.runtime.netns.node import NodeNetwork

__all__ = ["PodNetwork", "PodFiles"]


@dataclass(frozen=True)
class PodFiles:
    resolv_conf: Path
    hosts: Path
    nsswitch: Path

    def binds(self) -> tuple[tuple[str, str], ...]:
        """(file, where it appears inside the pod) for `sluice.runtime.enter`."""
        return ((str(self.resolv_conf), "/etc/resolv.conf"), (str(self.hosts), "/etc/hosts"),
                (str(self.nsswitch), "/etc/nsswitch.conf"))


@dataclass(frozen=True)
class PodNetwork:
    node: NodeNetwork
    xds_socket: str  # the daemon's xDS/ALS Unix socket, reachable from every namespace
    host_netns: str  # a file naming the host's network namespace (the gateway listens there)
    loopback: LoopbackBalancer | None = None  # 127.0.0.1's LoadBalancer ports inside each pod

    @staticmethod
    def pod_files(pod_root: Path) -> PodFiles:
        return PodFiles(pod_root / "resolv.conf", pod_root / "hosts", pod_root / "nsswitch.conf")

    def setup_pod(self, pod: dict[str, Any], ip: str, pod_root: Path, capture: bool, adopt: bool) -> str:
        """The pod's namespace path, made now (or kept, when adopting a running pod whose namespace exists)."""
        meta = pod.get("metadata") or {}
        files = self.pod_files(pod_root)
        pod_root.mkdir(parents=True, exist_ok=True)
        files.resolv_conf.write_text(pod_resolv_conf(pod, mesh.DNS_SERVICE_IP))
        files.hosts.write_text(pod_hosts_file(pod, ip))
        files.nsswitch.write_text(nsswitch_conf())  # no mDNS in front of the cluster DNS
        if adopt and self.node.has_pod(ip):
            return self.node.pod_path(ip)
        rules = None
        if capture:
            annotations = {str(k): str(v) for k, v in (meta.get("annotations") or {}).items()}
            rules = capture_rules(capture_config(annotations))
        return self.node.add_pod(ip, rules)
