"""The files the kubelet writes into a pod for name resolution: `/etc/resolv.conf` and `/etc/hosts`. Pure.

`resolv_conf` is what a ClusterFirst pod gets (`search <ns>.svc.<zone> svc.<zone> <zone>`, the cluster DNS
server, `options ndots:5`); `pod_resolv_conf` applies a pod's `dnsPolicy` and `dnsConfig` the kubelet's way.
`hosts_file` is the kubelet's managed hosts file (`managedHostsFileContent`): localhost lines, the pod's IPs
with its hostname (and FQDN when it has a subdomain), then `hostAliases`. `nsswitch_conf` is what a container
image would bring: pods here share the host's files, whose name service order may skip DNS for `.local`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sluice.dns.names import DEFAULT_ZONE
from sluice.objects import Obj

__all__ = ["resolv_conf", "pod_resolv_conf", "hosts_file", "pod_hosts_file", "pod_hostname", "sandbox_hostname",
           "HostResolv", "parse_resolv_conf", "nsswitch_conf"]

_HOSTS_HEADER = "# Kubernetes-managed hosts file.\n"
_HOSTS_BASE = ("127.0.0.1\tlocalhost\n"
               "::1\tlocalhost ip6-localhost ip6-loopback\n"
               "fe00::0\tip6-localnet\n"
               "fe00::0\tip6-mcastprefix\n"
               "fe00::1\tip6-allnodes\n"
               "fe00::2\tip6-allrouters\n")


@dataclass(frozen=True)
class HostResolv:
    """The node's own resolver settings (what `dnsPolicy: Default` copies, and ClusterFirst's extra searches)."""

    nameservers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = field(default_factory=tuple)


def parse_resolv_conf(text: str) -> HostResolv:
    ns: list[str] = []
    search: list[str] = []
    opts: list[str] = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split(";", 1)[0].split()
        if not words:
            continue
        if words[0] == "nameserver" and len(words) > 1:
            ns.append(words[1])
        elif words[0] in ("search", "domain"):
            search = words[1:]  # the last one wins, as in the resolver
        elif words[0] == "options":
            opts += words[1:]
    return HostResolv(tuple(ns), tuple(search), tuple(opts))


def _format(nameservers: Sequence[str], searches: Sequence[str], options: Sequence[str]) -> str:
    lines = []
    if searches:
        lines.append("search " + " ".join(searches))
    lines += [f"nameserver {n}" for n in nameservers]
    if options:
        lines.append("options " + " ".join(options))
    return "".join(line + "\n" for line in lines)


def _cluster_searches(namespace: str, zone: str) -> list[str]:
    return [f"{namespace}.svc.{zone}", f"svc.{zone}", zone]


def resolv_conf(namespace: str, nameserver: str, *, zone: str = DEFAULT_ZONE,
                host_searches: Iterable[str] = ()) -> str:
    """A ClusterFirst pod's resolv.conf (the node's search domains, if any, follow the cluster's)."""
    searches = _cluster_searches(namespace, zone)
    searches += [s for s in host_searches if s not in searches]
    return _format([nameserver], searches, ["ndots:5"])


def _merge_options(base: list[str], extra: Iterable[Any]) -> list[str]:
    out: dict[str, str] = {}
    for o in base:
        name, _, value = o.partition(":")
        out[name] = o
    for o in extra:
        if isinstance(o, dict) and o.get("name"):
            out[str(o["name"])] = f"{o['name']}:{o['value']}" if o.get("value") not in (None, "") else str(o["name"])
    return list(out.values())


def pod_resolv_conf(pod: Obj, nameserver: str, *, zone: str = DEFAULT_ZONE, host: HostResolv | None = None) -> str:
    """The resolv.conf for `pod`: its `dnsPolicy` (ClusterFirst by default; Default = the node's; None =
    only `dnsConfig`) with `dnsConfig`'s nameservers and searches appended and its options merged by name."""
    host = host or HostResolv()
    spec = pod.get("spec") or {}
    ns = str((pod.get("metadata") or {}).get("namespace") or "default")
    policy = str(spec.get("dnsPolicy") or "ClusterFirst")
    if policy == "Default" or (policy == "ClusterFirst" and spec.get("hostNetwork")):
        servers, searches, options = list(host.nameservers), list(host.searches), list(host.options)
    elif policy == "None":
        servers, searches, options = [], [], []
    else:  # ClusterFirst, ClusterFirstWithHostNet
        servers = [nameserver]
        searches = _cluster_searches(ns, zone) + [s for s in host.searches if s not in _cluster_searches(ns, zone)]
        options = ["ndots:5"]
    config = spec.get("dnsConfig") or {}
    for s in config.get("nameservers") or []:
        if str(s) not in servers:
            servers.append(str(s))
    for s in config.get("searches") or []:
        if str(s) not in searches:
            searches.append(str(s))
    options = _merge_options(options, config.get("options") or [])
    return _format(servers, searches, options)


def pod_hostname(pod: Obj, zone: str = DEFAULT_ZONE) -> tuple[str, str]:
    """(hostname, domain) as the kubelet derives them: `spec.hostname` or the pod's name (at most 63
    characters), and `<subdomain>.<ns>.svc.<zone>` when the pod has a subdomain."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    hostname = str(spec.get("hostname") or meta.get("name") or "")
    if len(hostname) > 63:
        hostname = hostname[:63].rstrip("-.")
    sub = str(spec.get("subdomain") or "")
    domain = f"{sub}.{meta.get('namespace') or 'default'}.svc.{zone}" if sub else ""
    return hostname, domain


def sandbox_hostname(pod: Obj, zone: str = DEFAULT_ZONE) -> str:
    """The hostname the pod's UTS namespace gets: its hostname, or its FQDN with `setHostnameAsFQDN`
    (ValueError, with the kubelet's message, when that is longer than 64 characters)."""
    hostname, domain = pod_hostname(pod, zone)
    if not (pod.get("spec") or {}).get("setHostnameAsFQDN") or not domain:
        return hostname
    fqdn = f"{hostname}.{domain}"
    if len(fqdn) > 64:
        raise ValueError(f"failed to construct FQDN from pod hostname and cluster domain, FQDN {fqdn} is too long "
                         f"(64 characters is the max, {len(fqdn)} characters requested)")
    return fqdn


def hosts_file(pod_ips: str | Sequence[str], hostname: str, *, domain: str = "",
               host_aliases: Iterable[Obj] = ()) -> str:
    """The kubelet's managed /etc/hosts for a pod with these IPs and this hostname (and domain)."""
    ips = [pod_ips] if isinstance(pod_ips, str) else list(pod_ips)
    out = _HOSTS_HEADER + _HOSTS_BASE
    for ip in ips:
        out += f"{ip}\t{hostname}.{domain}\t{hostname}\n" if domain else f"{ip}\t{hostname}\n"
    aliases = [a for a in host_aliases if isinstance(a, dict) and a.get("ip")]
    if aliases:
        out += "\n# Entries added by HostAliases.\n"
        for a in aliases:
            out += f"{a['ip']}\t" + "\t".join(str(h) for h in a.get("hostnames") or []) + "\n"
    return out


def nsswitch_conf() -> str:
    """An /etc/nsswitch.conf for a pod's sandbox: host names from /etc/hosts, then DNS — as in container
    images. The host's own may put mDNS first (`mdns4_minimal [NOTFOUND=return]`), which would keep every
    `*.cluster.local` name from ever reaching the cluster DNS wherever avahi runs."""
    return ("passwd:         files\ngroup:          files\nshadow:         files\n"
            "hosts:          files dns\nnetworks:       files\n"
            "protocols:      files\nservices:       files\nethers:         files\nrpc:            files\n")


def pod_hosts_file(pod: Obj, pod_ip: str, zone: str = DEFAULT_ZONE) -> str:
    hostname, domain = pod_hostname(pod, zone)
    return hosts_file(pod_ip, hostname, domain=domain, host_aliases=(pod.get("spec") or {}).get("hostAliases") or [])
