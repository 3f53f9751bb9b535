"""Which URLs the load generator may hit, and parsing of the small option languages (durations, headers).

Sluice only ever sends load to this machine: directly to a loopback address (127.0.0.0/8, ::1,
`localhost`), or through a proxy on a loopback address (a pod's sidecar), in which case the target may be a
service name the proxy resolves, or from inside a pod's own network namespace in netns mode (`contained`),
where every address leads only to the pods and Services of the Sluice that made it. Anything else is refused
before a single request is sent.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from sluice.mesh import NODE_POD_GATEWAY

__all__ = ["TargetRefused", "Target", "check_target", "parse_duration", "parse_header", "in_sluice_pod"]


class TargetRefused(ValueError):
    """The URL or proxy is not one the load generator may send to; the message says why."""


@dataclass(frozen=True)
class Target:
    url: str
    host: str
    proxy: str | None


def _loopback(host: str) -> bool | None:
    """True/False for an IP literal or `localhost`, None for a name."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return None


def _split(url: str, what: str) -> tuple[str, str]:
    parts = urlsplit(url)
    if parts.scheme != "http":
        raise TargetRefused(f"{what} {url!r} must be an http:// URL")
    try:
        host = parts.hostname or ""
        _ = parts.port  # raises on a malformed port
    except ValueError as e:
        raise TargetRefused(f"{what} {url!r} is not a valid URL: {e}") from None
    if not host:
        raise TargetRefused(f"{what} {url!r} has no host")
    return parts.scheme, host


def in_sluice_pod(env: Mapping[str, str], route_table: str = "/proc/net/route") -> bool:
    """Whether this process runs in a netns-mode Sluice pod: the kubelet says so (SLUICE_NETWORK=netns) and
    the network it sees really is a pod's: its default route goes to the Sluice node's pod gateway, which
    leads nowhere but the mesh."""
    if env.get("SLUICE_NETWORK") != "netns":
        return False
    try:
        with open(route_table) as f:
            rows = [line.split() for line in f.read().splitlines()[1:]]
    except OSError:
        return False
    gateways = {row[2] for row in rows if len(row) > 2 and row[1] == "00000000"}  # the default route(s)
    # /proc/net/route prints addresses as little-endian hex.
    gateway = ipaddress.ip_address(NODE_POD_GATEWAY).packed[::-1].hex().upper()
    return gateways == {gateway}


def check_target(url: str, proxy: str | None = None, contained: bool = False) -> Target:
    """Accept `url` (and `proxy`) or raise TargetRefused with a message for the user."""
    _, host = _split(url, "target")
    if contained and not proxy:
        return Target(url=url, host=host, proxy=None)  # the pod's network reaches only the mesh
    if proxy:
        _, proxy_host = _split(proxy, "proxy")
        if _loopback(proxy_host) is not True:
            raise TargetRefused(f"refusing proxy {proxy!r}: the load generator only uses proxies on this "
                                "machine (127.0.0.0/8, ::1 or localhost)")
        if _loopback(host) is False:
            raise TargetRefused(f"refusing target {url!r}: {host} is not a loopback address; through a proxy, "
                                "use a service name (e.g. http://productpage:9080/) or a loopback address")
        return Target(url=url, host=host, proxy=proxy)
    if _loopback(host) is not True:
        raise TargetRefused(f"refusing target {url!r}: without --proxy the load generator only sends to "
                            "127.0.0.0/8, ::1 or localhost (send to a service name with --proxy or --via)")
    return Target(url=url, host=host, proxy=None)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str) -> float | None:
    """`10s`, `1.5m`, `500ms`, `2h` or plain seconds; `0` (any unit) means run until stopped → None."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"invalid duration {text!r}: expected e.g. 30s, 2m, 500ms or 0 for no limit")
    seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if not math.isfinite(seconds):
        raise ValueError(f"invalid duration {text!r}")
    return None if seconds == 0 else seconds


def parse_header(text: str) -> tuple[str, str]:
    """`'Name: value'` → (`Name`, `value`), as curl's -H."""
    name, sep, value = text.partition(":")
    name = name.strip()
    if not sep or not name or any(c.isspace() for c in name):
        raise ValueError(f"invalid header {text!r}: expected 'Name: value'")
    return name, value.strip()
