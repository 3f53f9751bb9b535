"""Reading the environment contract shared by the Bookinfo services (see the package docstring)."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Listen", "listen_from_env", "proxy_from_env", "service_url", "pod_name"]

DEFAULT_PORT = 9080


@dataclass(frozen=True)
class Listen:
    """Where a service accepts connections."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT


def listen_from_env(env: Mapping[str, str] | None = None, argv: list[str] | None = None) -> Listen:
    """`SLUICE_BIND`/`SLUICE_PORT`; a port given as the only argument wins, like `ruby details.rb 9080`."""
    env = os.environ if env is None else env
    host = env.get("SLUICE_BIND") or "127.0.0.1"
    raw = argv[0] if argv else env.get("SLUICE_PORT") or str(DEFAULT_PORT)
    try:
        port = int(raw)
    except ValueError:
        raise SystemExit(f"invalid port {raw!r}: expected a number") from None
    if not 0 <= port <= 65535:
        raise SystemExit(f"invalid port {port}: expected 0-65535")
    return Listen(host=host, port=port)


def proxy_from_env(env: Mapping[str, str] | None = None) -> str | None:
    """The HTTP proxy every outgoing call goes through (the pod's sidecar), or None to connect directly."""
    env = os.environ if env is None else env
    # Lower case first, as curl and most HTTP clients do.
    value = env.get("http_proxy") or env.get("HTTP_PROXY")
    return value.strip() or None if value else None


def service_url(service: str, env: Mapping[str, str] | None = None) -> str:
    """`http://<SERVICE_HOSTNAME><.SERVICES_DOMAIN>:<SERVICE_SERVICE_PORT>`, defaults as in the originals."""
    env = os.environ if env is None else env
    upper = service.upper()
    host = env.get(f"{upper}_HOSTNAME") or service
    domain = env.get("SERVICES_DOMAIN")
    suffix = f".{domain}" if domain else ""
    port = env.get(f"{upper}_SERVICE_PORT") or str(DEFAULT_PORT)
    return f"http://{host}{suffix}:{port}"


def pod_name(env: Mapping[str, str] | None = None) -> str:
    """`HOSTNAME` (the pod name the runtime sets); a shell that did not export it gets the machine's name."""
    env = os.environ if env is None else env
    return env.get("HOSTNAME") or socket.gethostname()
