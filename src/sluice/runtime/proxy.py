"""The `istio-proxy` container: write the Envoy bootstrap for a pod and build Envoy's command line.

Called by the pod worker when it prepares a sidecar or ingress-gateway container. The bootstrap comes from
`sluice.xds.bootstrap.proxy_bootstrap` (or a factory the kubelet options supply, for tests); the command from
`sluice.xds.envoy.envoy_command`. Both are imported lazily so the runtime loads without the xDS package.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sluice import mesh

if TYPE_CHECKING:
    from sluice.xds.identity import ProxyIdentity

__all__ = ["BootstrapFactory", "IssuedCredential", "ProxyIssuer", "proxy_argv", "node_cluster", "ADMIN_PORT"]

ADMIN_PORT = mesh.PROXY_ADMIN_PORT


# (node_id, pod, pod_ip, xds_address, admin_address (host and port, or a Unix socket's path), cluster, and in
# netns mode network) -> bootstrap.
BootstrapFactory = Callable[..., dict[str, Any]]


@dataclass(frozen=True)
class IssuedCredential:
    """A proxy's client certificate, its key and the CA that verifies the xDS server, as files."""

    cert_file: Path
    key_file: Path
    ca_file: Path


class ProxyIssuer(Protocol):
    """`sluice.daemon.pki.ProxyCa`: writes a client certificate naming the pod into its state directory."""

    def issue(self, identity: ProxyIdentity, directory: Path) -> IssuedCredential: ...


def node_cluster(pod: dict[str, Any]) -> str:
    """Istio's service cluster for a proxy: `<app>.<namespace>` (the canonical service name)."""
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    app = labels.get("service.istio.io/canonical-name") or labels.get("app.kubernetes.io/name") \
        or labels.get("app") or meta.get("name")
    return f"{app}.{meta.get('namespace') or 'default'}"


def _default_factory() -> BootstrapFactory:
    from sluice.xds.bootstrap import proxy_bootstrap

    return proxy_bootstrap


_MAX_SOCKET_PATH = 107  # sockaddr_un.sun_path holds 108 bytes, the last one a NUL


def proxy_argv(*, pod: dict[str, Any], pod_ip: str, mode: str, xds_address: tuple[str, int], bootstrap_file: Path,
               factory: BootstrapFactory | None, concurrency: int, log_level: str,
               admin_address: tuple[str, int] | str, xds_socket: str | None = None,
               issuer: ProxyIssuer | None = None) -> list[str]:
    """Write the bootstrap and return Envoy's command line. `admin_address` is a Unix socket's path (loopback
    mode) or host and port (netns mode: 127.0.0.1:15000 inside the pod)."""
    if isinstance(admin_address, str) and len(os.fsencode(admin_address)) > _MAX_SOCKET_PATH:
        raise OSError(f"the Envoy admin socket path {admin_address} is longer than the {_MAX_SOCKET_PATH} bytes "
                      "a Unix socket path may have: use a shorter SLUICE_HOME")
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    name, ns = str(meta.get("name")), str(meta.get("namespace") or "default")
    kind = "router" if mode == "router" else "sidecar"
    node_id = (mesh.router_node_id if kind == "router" else mesh.sidecar_node_id)(pod_ip, name, ns)
    build = factory or _default_factory()
    # netns mode: the sidecar reaches xDS over the daemon's Unix socket (its network has no route to it).
    extra: dict[str, Any] = {"network": "netns"} if xds_socket else {}
    if issuer is not None:
        # A fresh certificate naming exactly this pod (UID and IP included) at every start: the xDS/ALS
        # endpoint answers only proxies that present one, and only about the pod it names.
        from sluice.xds.identity import ProxyCredential, ProxyIdentity

        sa = str(spec.get("serviceAccountName") or spec.get("serviceAccount") or "default")
        identity = ProxyIdentity(kind, pod_ip, name, ns, str(meta.get("uid") or ""), sa)
        issued = issuer.issue(identity, bootstrap_file.parent)
        extra["credential"] = ProxyCredential(str(issued.cert_file), str(issued.key_file), str(issued.ca_file))
    bootstrap = build(node_id=node_id, pod=pod, pod_ip=pod_ip, xds_address=xds_socket or xds_address,
                      admin_address=admin_address, cluster=node_cluster(pod), **extra)
    tmp = bootstrap_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(bootstrap, indent=1))
    os.replace(tmp, bootstrap_file)
    from sluice.xds.envoy import envoy_command

    return envoy_command(bootstrap_file, concurrency=concurrency, log_level=log_level)
