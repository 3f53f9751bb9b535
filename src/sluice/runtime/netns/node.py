"""The pod network of one daemon: a "node" network namespace with a bridge, and a namespace per pod.

Used by the kubelet in netns mode. Nothing here touches the host's own network namespace: the node
namespace holds the bridge (`br0`, the pods' gateway 10.244.0.1) and the kube-dns address; each pod namespace
gets loopback, `eth0` (a veth whose peer is a port of `br0`) with its /32 pod IP, and routes through the
gateway, so pod-to-pod and pod-to-Service traffic always crosses the node namespace's L3 (where the
kube-proxy rules rewrite ClusterIPs) and the host never sees it. Namespaces are named
`sluice-<id>-node` / `sluice-<id>-p<ip>` (id = a hash of SLUICE_HOME), so several daemons never collide and a
restarted daemon finds its own. Setup calls `ip` and `nft` (blocking: call from a thread).
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import shutil
import subprocess
from pathlib import Path

from sluice import mesh
from sluice.runtime import linux

__all__ = ["NodeNetwork", "NetworkError", "netns_available", "NETNS_DIR"]

NETNS_DIR = Path("/run/netns")
BRIDGE = "br0"
BRIDGE_MAC = "02:00:0a:f4:00:01"  # locally administered; one bridge per node namespace, so one value serves all


class NetworkError(RuntimeError):
    """A namespace, link or rule could not be set up (the message says which command and why)."""


def netns_available() -> tuple[bool, str]:
    """Whether this process can make network namespaces (and why not)."""
    if os.geteuid() != 0:
        return False, "not running as root (network namespaces need CAP_NET_ADMIN and CAP_SYS_ADMIN)"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            hint = "iproute2" if tool == "ip" else "nftables"
            return False, f"`{tool}` is not installed (apt-get install {hint})"
    probe = f"sluice-probe-{os.getpid()}"
    try:
        _run(["ip", "netns", "add", probe])
    except NetworkError as e:
        return False, f"cannot create a network namespace: {e}"
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True, check=False)
    return True, "network namespaces available"


def _run(argv: list[str], stdin: str | None = None) -> str:
    try:
        done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise NetworkError(f"{' '.join(argv[:4])}: {e}") from None
    if done.returncode != 0:
        raise NetworkError(f"{' '.join(argv)}: {done.stderr.strip() or f'exit {done.returncode}'}")
    return done.stdout


def _hex_ip(ip: str) -> str:
    return f"{int(ipaddress.ip_address(ip)):08x}"


class NodeNetwork:
    def __init__(self, home_root: Path) -> None:
        digest = hashlib.sha256(str(home_root.resolve()).encode()).hexdigest()[:8]
        self.prefix = f"sluice-{digest}"
        self.node = f"{self.prefix}-node"

    # ------------------------------------------------------------------ names
    @property
    def node_path(self) -> str:
        return str(NETNS_DIR / self.node)

    def pod_netns(self, ip: str) -> str:
        return f"{self.prefix}-p{_hex_ip(ip)}"

    def pod_path(self, ip: str) -> str:
        return str(NETNS_DIR / self.pod_netns(ip))

    def owned(self) -> list[str]:
        """Every namespace of this daemon that exists (pods first, the node last; the host handle too)."""
        try:
            names = [n for n in os.listdir(NETNS_DIR) if n.startswith(self.prefix + "-")]
        except FileNotFoundError:
            return []
        return sorted(names, key=lambda n: (n == self.node, n))

    # ------------------------------------------------------------------ node
    def ensure_node(self) -> None:
        """Create the node namespace (bridge, gateway, kube-dns address, forwarding) unless it exists."""
        if (NETNS_DIR / self.node).exists():
            return
        n = self.node
        _run(["ip", "netns", "add", n])
        try:
            gw = mesh.NODE_POD_GATEWAY
            plen = mesh.NETNS_POD_NETWORK.prefixlen
            _run(["ip", "-n", n, "-batch", "-"], "\n".join([
                "link set lo up",
                # A fixed MAC: a bridge otherwise takes the lowest MAC of its ports, so a new pod's veth could
                # change it, and every pod's ARP entry for the gateway would point nowhere until it expired
                # (connections through the gateway stalled for many seconds whenever a pod started).
                f"link add {BRIDGE} address {BRIDGE_MAC} type bridge",
                f"addr add {gw}/{plen} dev {BRIDGE}",
                f"link set {BRIDGE} up",
                f"addr add {mesh.DNS_SERVICE_IP}/32 dev lo",  # kube-dns: the daemon serves DNS here
                # Service addresses end here unless kube-proxy's DNAT sent them on: a port nobody serves
                # is refused at once (kernel reset, or kube-proxy's reject for a Service with no endpoint).
                f"route add local {mesh.SERVICE_NETWORK} dev lo",
            ]) + "\n")
            # Forward between pods; never tell a pod to skip the gateway (ICMP redirects), so every packet
            # keeps crossing the node's L3 and its NAT.
            _run(["ip", "netns", "exec", n, "sysctl", "-qw", "net.ipv4.ip_forward=1",
                  "net.ipv4.conf.all.send_redirects=0", f"net.ipv4.conf.{BRIDGE}.send_redirects=0"])
        except NetworkError:
            subprocess.run(["ip", "netns", "del", n], capture_output=True, check=False)
            raise

    def nft_node(self, script: str) -> None:
        """Apply an nft script in the node namespace (the kube-proxy rules)."""
        _run(["ip", "netns", "exec", self.node, "nft", "-f", "-"], script)

    @property
    def host_netns_path(self) -> str:
        return str(NETNS_DIR / f"{self.prefix}-host")

    def pin_host_netns(self) -> str:
        """A file naming the daemon's own (host) network namespace, stable across daemon restarts: the
        gateway's Envoy creates its host-facing listeners there (`network_namespace_filepath`)."""
        path = Path(self.host_netns_path)
        own = os.stat("/proc/self/ns/net")
        try:
            st = os.stat(path)
            if (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino):
                return str(path)
            _run(["umount", str(path)])
        except FileNotFoundError:
            pass
        except NetworkError:
            pass
        NETNS_DIR.mkdir(parents=True, exist_ok=True)
        path.touch()
        linux.mount("/proc/self/ns/net", str(path), None, linux.MS_BIND)
        return str(path)

    # ------------------------------------------------------------------ pods
    def add_pod(self, ip: str, capture: str | None) -> str:
        """Create (or re-create) the pod's namespace with its address and, for sidecar pods, the capture
        rules; returns the namespace's path."""
        name = self.pod_netns(ip)
        if (NETNS_DIR / name).exists():
            self.remove_pod(ip)  # a leftover from a crash: start clean
        veth = "v" + _hex_ip(ip)
        gw = mesh.NODE_POD_GATEWAY
        _run(["ip", "netns", "add", name])
        try:
            _run(["ip", "-n", self.node, "-batch", "-"], "\n".join([
                f"link add {veth} type veth peer name eth0 netns {name}",
                f"link set {veth} master {BRIDGE} up",
            ]) + "\n")
            _run(["ip", "-n", name, "-batch", "-"], "\n".join([
                "link set lo up",
                f"addr add {ip}/32 dev eth0",
                "link set eth0 up",
                f"route add {gw} dev eth0 scope link",
                f"route add default via {gw} dev eth0 src {ip}",
            ]) + "\n")
            if capture:
                _run(["ip", "netns", "exec", name, "nft", "-f", "-"], capture)
        except NetworkError:
            self.remove_pod(ip)
            raise
        return str(NETNS_DIR / name)

    def nft_pod(self, ip: str, script: str) -> None:
        """Apply the loopback load balancer's nft script in the pod's namespace (`sluice.runtime.netns.
        loopback_lb`), with `route_localnet` on eth0 so that its DNATed 127.0.0.1 connections may leave."""
        _run(["ip", "netns", "exec", self.pod_netns(ip), "sh", "-c",
              "sysctl -qw net.ipv4.conf.eth0.route_localnet=1 && exec nft -f -"], script)

    def has_pod(self, ip: str) -> bool:
        return (NETNS_DIR / self.pod_netns(ip)).exists()

    def remove_pod(self, ip: str) -> None:
        """Delete the pod's namespace (its veth goes with it). Idempotent."""
        subprocess.run(["ip", "netns", "del", self.pod_netns(ip)], capture_output=True, check=False)

    def teardown(self) -> None:
        """Remove every namespace this daemon made (pods, then the node)."""
        for name in self.owned():
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
