"""What a container runs (`Program`) and why it cannot run (`ImageError`): the image lookup's result
(`sluice.runtime.images`) and what the container environment (`sluice.runtime.environment`) builds on."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ImageError", "Program"]


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
