"""The load balancer's 127.0.0.1 seen from inside a pod: kube-proxy's job for a LoadBalancer IP, in the pod.

Sluice's load balancer is the host's 127.0.0.1 (`sluice.resources.loadbalancer`): a LoadBalancer Service says
`status.loadBalancer.ingress[0].ip: 127.0.0.1`, and Istio's recipes (`INGRESS_HOST`) hand that address to
commands the tasks run inside pods, e.g. `kubectl exec … -c sleep -- sh -c "… | nc $INGRESS_HOST
$TCP_INGRESS_PORT"`. On Kubernetes, kube-proxy catches a connection to a LoadBalancer IP before it leaves the
node and DNATs it to an endpoint; here the address is loopback, so the packet never leaves the pod's own
namespace, and the catching has to happen there: a connection to 127.0.0.1:<Service port> is DNATed to one
of the Service's ready endpoints (at the port the Endpoints give, i.e. the targetPort), picked at random as
kube-proxy does.

Leaving loopback with a loopback source is what kube-proxy's localhost NodePorts do too, and the same two
kernel settings make it work: `route_localnet=1` on `eth0` (set by the applier, `NodeNetwork.nft_pod`) and a
masquerade to the pod's IP on the way out. With `route_localnet`, kube's "block incoming localnet
connections" rule comes along: nothing from outside the pod may reach its 127.0.0.0/8 except replies.

A pod's own loopback is never taken from it: the rules leave alone traffic of the sidecar (uid or gid 1337,
as istio-init's capture does), the daemon's own connections into the pod (`kubectl port-forward` reaches the
pod's real 127.0.0.1, as on Kubernetes; marked by `sluice.runtime.netns.dial`), every port the pod declares
(`containerPort` of any container) and Istio's own ports (Envoy, pilot-agent, the status port). A port nobody declares but the pod listens on at 127.0.0.1 is
taken, as on a node where kube-proxy's rules come before a local listener at a NodePort.

`rules(services, endpoints, own_ports)` is pure; `LoopbackBalancer` keeps it applied in every pod's
namespace while Services, Endpoints and pods come and go.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sluice import mesh
from sluice.objects import Obj
from sluice.runtime.netns.capture import PROXY_GID, PROXY_UID
from sluice.runtime.netns.dial import DIAL_MARK
from sluice.runtime.netns.kubeproxy import ServiceWatch, dnat_statement, endpoint_targets
from sluice.store import Store

__all__ = ["rules", "own_ports", "LoopbackBalancer", "TABLE", "ISTIO_PORTS"]

log = logging.getLogger("sluice.runtime")

TABLE = "sluice-loopback-lb"
# The sidecar's own ports (Envoy admin, outbound, pilot-agent's XDS proxy, inbound, HBONE, HBONE plaintext,
# the status port, health, DNS proxy, Prometheus merge): a pod's 127.0.0.1 keeps them whatever a Service says.
ISTIO_PORTS = (15000, 15001, 15004, 15006, 15008, 15009, 15020, 15021, 15053, 15090)
# After istio-init's capture (output, -100): that table lets an app's loopback traffic through untouched (it
# returns for 127.0.0.1), so the order only matters for who wins the NAT binding, and kube-proxy comes after
# the sidecar on Kubernetes too.
OUTPUT_PRIORITY = -90


def own_ports(pod: Obj) -> tuple[int, ...]:
    """The ports the pod keeps on its own loopback: its containers' `containerPort`s (any protocol) and
    Istio's, the status port its annotation names included."""
    spec = pod.get("spec") or {}
    ports: set[int] = set(ISTIO_PORTS)
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(key) or []:
            for p in (c.get("ports") or []) if isinstance(c, dict) else []:
                if isinstance(p, dict) and isinstance(p.get("containerPort"), int):
                    ports.add(int(p["containerPort"]))
    status = str(((pod.get("metadata") or {}).get("annotations") or {}).get(mesh.STATUS_PORT_ANNOTATION, ""))
    if status.strip().isdigit():
        ports.add(int(status))
    return tuple(sorted(p for p in ports if 0 < p < 65536))


def _loopback_ingress(svc: Obj) -> list[str]:
    """The Service's load-balancer addresses that are loopback (Sluice's 127.0.0.1), for a LoadBalancer."""
    if (svc.get("spec") or {}).get("type") != "LoadBalancer":
        return []
    out: list[str] = []
    for ing in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
        ip = str((ing or {}).get("ip") or "") if isinstance(ing, dict) else ""
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            continue
        if addr.version == 4 and addr.is_loopback and ip not in out:
            out.append(ip)
    return out


def rules(services: Iterable[Obj], endpoints: Callable[[str, str], Obj | None], own: Iterable[int]) -> str:
    """The `nft -f` script (re)creating a pod's table: its loopback LoadBalancer ports → their endpoints."""
    t = f"ip {TABLE}"
    lines = [f"add table {t}", f"flush table {t}",
             f"add chain {t} output {{ type nat hook output priority {OUTPUT_PRIORITY} ; }}",
             f"add chain {t} postrouting {{ type nat hook postrouting priority srcnat ; }}",
             f"add chain {t} input {{ type filter hook input priority filter ; }}",
             f"add chain {t} services"]

    def rule(chain: str, body: str) -> None:
        lines.append(f"add rule {t} {chain} {body}")

    rule("output", "ip daddr != 127.0.0.0/8 return")
    rule("output", f"meta skuid {PROXY_UID} return")
    rule("output", f"meta skgid {PROXY_GID} return")
    rule("output", f"meta mark {DIAL_MARK:#x} return")  # the daemon's own dial-ins (port-forward)
    keep = sorted(set(own))
    if keep:
        rule("output", f"meta l4proto {{ tcp, udp }} th dport {{ {', '.join(map(str, keep))} }} return")
    rule("output", "jump services")
    # Out of eth0 with a loopback source only after the DNAT above: the reply must find the pod's IP.
    rule("postrouting", 'oifname != "lo" ip saddr 127.0.0.0/8 masquerade')
    # route_localnet lets eth0 carry 127.0.0.0/8: only the replies of those connections may come in that way.
    rule("input", 'iifname != "lo" ip daddr 127.0.0.0/8 ip saddr != 127.0.0.0/8 '
                  "ct state != { established, related } ct status & dnat == 0 drop")
    seen: set[tuple[str, str, int]] = set()
    for svc in sorted(services, key=lambda s: (s["metadata"].get("namespace", ""), s["metadata"]["name"])):
        addresses = _loopback_ingress(svc)
        if not addresses:
            continue
        meta = svc["metadata"]
        ep = endpoints(str(meta.get("namespace") or "default"), str(meta["name"]))
        for port in (svc.get("spec") or {}).get("ports") or []:
            if not isinstance(port.get("port"), int) or int(port["port"]) in keep:
                continue
            proto = str(port.get("protocol") or "TCP")
            if proto not in ("TCP", "UDP"):
                continue
            targets = endpoint_targets(ep, str(port.get("name") or ""), proto)
            if not targets:
                continue  # nothing to reach: the pod's own kernel answers (refused), as if no rule were there
            l4 = proto.lower()
            for addr in addresses:
                if (addr, l4, port["port"]) in seen:
                    continue  # two Services on one address and port: the first (by namespace/name) has it
                seen.add((addr, l4, port["port"]))
                rule("services", f"ip daddr {addr} {l4} dport {port['port']} {dnat_statement(targets)}")
    return "\n".join(lines) + "\n"


@dataclass
class _Pod:
    own: tuple[int, ...]
    applied: str | None = None  # the script last applied (None: not yet, or the last apply failed)


class LoopbackBalancer(ServiceWatch):
    """Keeps `rules` applied in every registered pod's namespace as Services and Endpoints change.

    `apply(pod_ip, script)` runs `nft` in that pod's namespace (blocking: it is called from a thread).
    """

    def __init__(self, store: Store, apply: Callable[[str, str], None], debounce: float = 0.01) -> None:
        super().__init__(store, debounce, "loopback-lb")
        self._apply = apply
        self._lock = asyncio.Lock()  # one apply at a time: a pod is never written while it is removed
        self._pods: dict[str, _Pod] = {}

    def _script(self, own: Iterable[int]) -> str:
        return rules(self._services.list(), self._endpoints.get, own)

    async def add_pod(self, ip: str, pod: Obj) -> None:
        """Apply the rules in a new (or adopted) pod's namespace, before its containers start; raises what
        `apply` raises (the pod's sandbox is then not ready)."""
        async with self._lock:
            entry = _Pod(own_ports(pod))
            script = self._script(entry.own)
            await asyncio.to_thread(self._apply, ip, script)
            entry.applied = script
            self._pods[ip] = entry

    async def remove_pod(self, ip: str) -> None:
        """Forget a pod whose namespace is about to go (its table goes with it)."""
        async with self._lock:
            self._pods.pop(ip, None)

    async def sync(self) -> None:
        """Bring every registered pod's table up to date (only those whose script changed are written)."""
        async with self._lock:
            for ip, entry in list(self._pods.items()):
                script = self._script(entry.own)
                if script == entry.applied:
                    continue
                try:
                    await asyncio.to_thread(self._apply, ip, script)
                except Exception as e:  # one pod's failure must not keep the others stale
                    log.error("loopback load balancer: pod %s: applying the rules failed: %s", ip, e)
                    entry.applied = None
                    asyncio.get_running_loop().call_later(1.0, self._dirty.set)  # try again in a while
                    continue
                entry.applied = script
