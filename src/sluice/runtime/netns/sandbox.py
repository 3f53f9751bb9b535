"""A pod's sandbox in netns mode: its network namespace, capture rules and the files bound into it.

The pod worker calls `PodNetwork.setup_pod` (from a thread) before any container starts: it makes the
pod's namespace on the node network (`sluice.runtime.netns.node`), applies istio-init's capture rules to
sidecar pods (`sluice.runtime.netns.capture`), and writes the pod's `/etc/resolv.conf` and `/etc/hosts` as the
kubelet does; `sluice.runtime.enter` binds those over the host's files for every process of the pod.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sluice import mesh
from sluice.runtime.netns.capture import capture_config, capture_rules
from sluice.runtime.netns.node import NodeNetwork

__all__ = ["PodNetwork", "PodFiles", "resolv_conf", "hosts_file"]


def resolv_conf(namespace: str, nameserver: str = mesh.DNS_SERVICE_IP) -> str:
    """The kubelet's ClusterFirst resolv.conf."""
    domain = mesh.CLUSTER_DOMAIN
    return (f"search {namespace}.svc.{domain} svc.{domain} {domain}\n"
            f"nameserver {nameserver}\noptions ndots:5\n")


def hosts_file(pod_ip: str, hostname: str, subdomain: str = "", namespace: str = "") -> str:
    """The kubelet-managed /etc/hosts of a pod."""
    fqdn = f"{hostname}.{subdomain}.{namespace}.svc.{mesh.CLUSTER_DOMAIN}" if subdomain and namespace else ""
    return ("# Kubernetes-managed hosts file.\n"
            "127.0.0.1\tlocalhost\n"
            "::1\tlocalhost ip6-localhost ip6-loopback\n"
            "fe00::0\tip6-localnet\n"
            "fe00::0\tip6-mcastprefix\n"
            "fe00::1\tip6-allnodes\n"
            "fe00::2\tip6-allrouters\n"
            f"{pod_ip}\t{fqdn + chr(9) if fqdn else ''}{hostname}\n")


@dataclass(frozen=True)
class PodFiles:
    resolv_conf: Path
    hosts: Path


@dataclass(frozen=True)
class PodNetwork:
    node: NodeNetwork
    xds_socket: str  # the daemon's xDS/ALS Unix socket, reachable from every namespace
    host_netns: str  # a file naming the host's network namespace (the gateway listens there)

    @staticmethod
    def pod_files(pod_root: Path) -> PodFiles:
        return PodFiles(pod_root / "resolv.conf", pod_root / "hosts")

    def setup_pod(self, pod: dict[str, Any], ip: str, pod_root: Path, capture: bool, adopt: bool) -> str:
        """The pod's namespace path, made now (or kept, when adopting a running pod whose namespace exists)."""
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        name = str(meta.get("name") or "")
        files = self.pod_files(pod_root)
        pod_root.mkdir(parents=True, exist_ok=True)
        files.resolv_conf.write_text(resolv_conf(str(meta.get("namespace") or "default")))
        files.hosts.write_text(hosts_file(ip, str(spec.get("hostname") or name), str(spec.get("subdomain") or ""),
                                          str(meta.get("namespace") or "default")))
        if adopt and self.node.has_pod(ip):
            return self.node.pod_path(ip)
        rules = None
        if capture:
            annotations = {str(k): str(v) for k, v in (meta.get("annotations") or {}).items()}
            rules = capture_rules(capture_config(annotations))
        return self.node.add_pod(ip, rules)
