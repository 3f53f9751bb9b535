"""Container image → local program: what sluice runs instead of pulling an image.

Called by the pod worker (`sluice.runtime.pod`) for every container before it starts. Pure. The Bookinfo
images run the built-in Python services, `curlimages/curl` runs the container's command (the sleep sample) or
waits, the `istio-proxy` container runs Envoy, and any other container that sets `command`/`args` runs that
program. Everything else is an `ImageError` that the pod status shows as `ErrImagePull`, never a no-op.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from typing import Any

from sluice import mesh

__all__ = ["Program", "ImageError", "resolve", "BOOKINFO_SERVICES"]

BOOKINFO_SERVICES = ("productpage", "details", "reviews", "ratings")
_BOOKINFO = re.compile(r"(?:^|/)examples-bookinfo-(productpage|details|reviews|ratings)-v(\d+)(?::[\w.\-]+)?"
                       r"(?:@sha256:[0-9a-f]{64})?$")
_CURL = re.compile(r"^(?:docker\.io/)?curlimages/curl(?::[\w.\-]+)?(?:@sha256:[0-9a-f]{64})?$")
_PROXY = re.compile(r"(?:^|/)proxyv2(?::[\w.\-]+)?(?:@sha256:[0-9a-f]{64})?$")
_REVIEWS = {1: ("false", ""), 2: ("true", "black"), 3: ("true", "red")}
_TRAFFIC = re.compile(r"^sluice\.dev/traffic-generator(?::[\w.\-]+)?$")


class ImageError(Exception):
    """The container cannot be run here; `reason` and `message` go into its waiting state."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Program:
    """What to run for a container. `proxy_mode` is set for Envoy, whose command needs a bootstrap file."""

    argv: list[str]
    image_id: str
    env: dict[str, str] = field(default_factory=dict)  # the image's own environment, under the container's
    builtin: str = ""  # "bookinfo", "curl", "proxy" or "" for a plain command
    proxy_mode: str = ""  # "sidecar" or "router"


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _command(container: dict[str, Any]) -> list[str]:
    return _strings(container.get("command")) + _strings(container.get("args"))


def resolve(container: dict[str, Any]) -> Program:
    """The program for one container of a pod spec (raises `ImageError` if sluice cannot run it)."""
    image = str(container.get("image") or "")
    name = str(container.get("name") or "")
    args = _strings(container.get("args"))
    if _PROXY.search(image) or (name == mesh.SIDECAR_CONTAINER and args[:1] == ["proxy"]):
        mode = args[1] if len(args) > 1 and args[0] == "proxy" else "sidecar"
        if mode not in ("sidecar", "router"):
            raise ImageError("CreateContainerConfigError",
                             f'istio-proxy mode "{mode}" is not supported: sluice runs "sidecar" and "router"')
        return Program([], f"sluice://builtin/envoy-{mode}", builtin="proxy", proxy_mode=mode)
    m = _BOOKINFO.search(image)
    if m:
        svc, version = m.group(1), int(m.group(2))
        env = {"SERVICE_VERSION": f"v{version}"}
        if svc == "reviews":
            enable, colour = _REVIEWS.get(version, ("true", "red"))
            env["ENABLE_RATINGS"] = enable
            if colour:
                env["STAR_COLOR"] = colour
        ports = [p for p in container.get("ports") or [] if isinstance(p, dict) and p.get("containerPort")]
        env["SLUICE_PORT"] = str(ports[0]["containerPort"]) if ports else "9080"
        return Program([sys.executable, "-m", f"sluice.samples.bookinfo.{svc}"],
                       f"sluice://builtin/bookinfo-{svc}-v{version}", env, builtin="bookinfo")
    if _TRAFFIC.match(image):
        # sluice's own load generator (`python -m sluice.load URL …`), for the demo's steady traffic.
        return Program([sys.executable, "-m", "sluice.load", *args], "sluice://builtin/traffic-generator",
                       builtin="traffic-generator")
    if _CURL.match(image):
        command = _strings(container.get("command"))
        if command:
            argv = command + args
        elif args:
            argv = ["curl", *args]  # the image's entrypoint is curl
        else:
            argv = ["sleep", "infinity"]
        return Program(argv, "sluice://builtin/curl", builtin="curl")
    argv = _command(container)
    if argv:
        return Program(argv, f"sluice://local/{argv[0]}")
    raise ImageError(
        "ErrImagePull",
        f'sluice cannot pull image "{image}": it runs no container images, only the Bookinfo images '
        "(*/examples-bookinfo-{productpage,details,reviews,ratings}-v<N>), curlimages/curl, istio/proxyv2 and "
        "sluice.dev/traffic-generator "
        "as built-in programs, and any container that sets command/args as a local process")
